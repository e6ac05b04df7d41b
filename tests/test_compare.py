"""reports.compare: precision regression between two results files."""
from __future__ import annotations

import pytest
import results_factory as rf

from reports import ResultsError, compare
from reports.regression import grew


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    lines = rf.synthetic_run(per_family=2)
    return lines, rf.write_results(d / "base.jsonl", lines)


def test_run_against_itself_passes_the_gate(base, tmp_path):
    _, path = base
    c = compare(path, path, out_dir=tmp_path / "o", gate=True)
    assert c.exit_code == 0 and not c.regressed
    assert len(c.pairs) == len(base[0]) - 1 and not (c.worse or c.better or c.only_base or c.only_new)
    assert "✅ no regression: 0 worse, 0 new failures" in c.markdown
    assert sorted(c.paths) == ["compare.html", "compare.md"]
    assert (tmp_path / "o" / "compare.md").read_text() == c.markdown
    assert 'src="data:image/png;base64,' in (tmp_path / "o" / "compare.html").read_text()


def test_degraded_copy_fails_the_gate_and_names_the_cases(base, tmp_path):
    lines, path = base
    worse_lines, worse_ids, failed_ids = rf.degrade(lines, factor=10.0, new_failures=1)
    assert worse_ids and failed_ids
    new = rf.write_results(tmp_path / "new.jsonl", worse_lines)
    c = compare(path, new, out_dir=tmp_path / "o", gate=True)
    assert c.exit_code == 1
    assert [p.new["case_id"] for p in c.new_failures] == failed_ids
    assert {p.new["case_id"] for p in c.worse} == set(worse_ids) | set(failed_ids)  # 1 ulp -> inf grew too
    for cid in worse_ids[:10] + failed_ids:
        assert cid in c.markdown and cid in c.html
    assert "### New failures (1)" in c.markdown
    # the per-family table counts them
    assert sum(f.worse for f in c.families) == len(c.worse)
    assert sum(f.new_failures for f in c.families) == 1
    # without --gate the same comparison reports but exits 0
    assert compare(path, new, gate=False).exit_code == 0
    # and the reverse direction is an improvement plus a fixed failure, not a regression
    back = compare(new, path, gate=True)
    assert back.exit_code == 0 and len(back.better) == len(c.worse) and len(back.fixed_failures) == 1


def test_growth_needs_factor_and_floor():
    assert not grew(0.0, 0.5, 2.0, 1.0)      # 0 -> 0.5 ulp is noise, not infinite growth
    assert not grew(0.0, 2.0, 2.0, 1.0)
    assert grew(0.0, 2.5, 2.0, 1.0)
    assert grew(1.5, 3.5, 2.0, 1.0) and not grew(1.5, 2.9, 2.0, 1.0)
    assert grew(3.0, float("inf"), 2.0, 1.0) and not grew(float("inf"), float("inf"), 2.0, 1.0)


def test_factor_is_configurable(tmp_path):
    a = [rf.run_header(), rf.record(cid="a" * 16, max_ulp=2.0)]
    b = [rf.run_header(), rf.record(cid="a" * 16, max_ulp=7.0)]
    pa, pb = rf.write_results(tmp_path / "a.jsonl", a), rf.write_results(tmp_path / "b.jsonl", b)
    assert compare(pa, pb, gate=True, factor=2.0).exit_code == 1
    assert compare(pa, pb, gate=True, factor=4.0).exit_code == 0
    with pytest.raises(ResultsError, match="factor"):
        compare(pa, pb, factor=0.5)


def test_cases_in_only_one_set_are_listed(tmp_path):
    a = [rf.run_header(), rf.record(cid="a" * 16), rf.record(cid="b" * 16)]
    b = [rf.run_header(), rf.record(cid="b" * 16), rf.record(cid="c" * 16, family="ce.new")]
    c = compare(rf.write_results(tmp_path / "a.jsonl", a), rf.write_results(tmp_path / "b.jsonl", b), gate=True)
    assert [r["case_id"] for r in c.only_base] == ["a" * 16]
    assert [r["case_id"] for r in c.only_new] == ["c" * 16]
    assert c.exit_code == 0
    assert "### Only in BASE (1)" in c.markdown and "a" * 16 in c.markdown and "c" * 16 in c.html


def test_one_backend_per_file_is_matched_across_backends(tmp_path):
    a = [rf.run_header(backends=["torch"]), rf.record(backend="torch", cid="a" * 16, max_ulp=0.5)]
    b = [rf.run_header(backends=["mykernel"]),
         rf.record(backend="mykernel", cid="a" * 16, verdict="fail", max_ulp=40.0, message="drifted")]
    c = compare(rf.write_results(tmp_path / "a.jsonl", a), rf.write_results(tmp_path / "b.jsonl", b), gate=True)
    assert c.mode == "torch vs mykernel"
    assert len(c.pairs) == 1 and len(c.new_failures) == 1 and c.exit_code == 1
    assert "torch → mykernel" in c.markdown


def test_compare_rejects_a_non_results_file(tmp_path, base):
    bad = tmp_path / "x.jsonl"
    bad.write_text("{}\n")
    with pytest.raises(ResultsError, match="x.jsonl"):
        compare(base[1], bad)
