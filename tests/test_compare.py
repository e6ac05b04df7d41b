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
    # issue 10 §4: a check of BASE that NEW lacks is a regression (a partial run proves nothing
    # about it) unless the user allows it
    assert c.exit_code == 1 and "missing from NEW" in c.markdown
    assert "### Only in BASE (1)" in c.markdown and "a" * 16 in c.markdown and "c" * 16 in c.html
    ok = compare(tmp_path / "a.jsonl", tmp_path / "b.jsonl", gate=True, allow_missing=True)
    assert ok.exit_code == 0 and "missing from NEW" not in ok.markdown


@pytest.mark.parametrize("other, needle", [
    ({"suite": "smoke"}, "BASE is suite 'gate', NEW is suite 'smoke'"),
    ({"seed": 3}, "BASE is seed 0, NEW is seed 3"),
])
def test_runs_of_another_suite_or_seed_are_refused(tmp_path, other, needle):
    from reports.results import ResultsError

    a = [rf.run_header(suite="gate", seed=0), rf.record(cid="a" * 16)]
    b = [rf.run_header(**{"suite": "gate", "seed": 0, **other}), rf.record(cid="a" * 16)]
    with pytest.raises(ResultsError, match=needle):
        compare(rf.write_results(tmp_path / "a.jsonl", a), rf.write_results(tmp_path / "b.jsonl", b), gate=True)


def test_runs_of_other_backend_sets_are_refused(tmp_path):
    from reports.results import ResultsError

    a = [rf.run_header(backends=["torch", "numpy"]), rf.record(backend="torch", cid="a" * 16),
         rf.record(backend="numpy", cid="a" * 16)]
    b = [rf.run_header(backends=["torch", "jax"]), rf.record(backend="torch", cid="a" * 16),
         rf.record(backend="jax", cid="a" * 16)]
    with pytest.raises(ResultsError, match="BASE has backends numpy, torch, NEW has jax, torch"):
        compare(rf.write_results(tmp_path / "a.jsonl", a), rf.write_results(tmp_path / "b.jsonl", b))


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


# ------------------------------------------------------------------ losscheck.results/1 against /2

@pytest.fixture(scope="module")
def v1_base(tmp_path_factory):
    """A /1 run and the /2 run of the same seed (same figures; /2 adds grad:target and kl_div)."""
    d = tmp_path_factory.mktemp("cmp12")
    v1, v2 = rf.synthetic_run(per_family=2, version=1), rf.synthetic_run(per_family=2)
    return rf.write_results(d / "base-v1.jsonl", v1), v1, v2


def test_v1_base_matches_v2_new_with_grad_as_grad_input(v1_base, tmp_path):
    base, v1, v2 = v1_base
    c = compare(base, rf.write_results(tmp_path / "new.jsonl", v2), out_dir=tmp_path / "o", gate=True)
    assert c.exit_code == 0 and not (c.worse or c.better or c.new_failures or c.only_base)
    assert len(c.pairs) == len(v1) - 1  # every /1 record found its /2 twin
    assert {p.base["check"] for p in c.pairs} == {p.new["check"] for p in c.pairs} == {"value", "grad:input"}
    # what only a /2 run checks is listed as new, not lost
    assert {(r["loss"], r["check"]) for r in c.only_new} == {
        ("mse_loss", "grad:target"), ("kl_div", "value"), ("kl_div", "grad:input"), ("kl_div", "grad:target")}
    assert c.base.version == 1 and c.new.version == 2
    assert "(losscheck.results/1 (grad read as grad:input))" in c.markdown
    assert "(losscheck.results/2)" in c.html


def test_v1_base_against_v2_new_finds_a_planted_gradient_regression(v1_base, tmp_path):
    base, _, v2 = v1_base
    new = [dict(r) for r in v2]
    planted = next(r for r in new[1:] if r["check"] == "grad:input" and r["backend"] == "torch"
                   and r["loss"] == "cross_entropy" and r["verdict"] == "pass")
    planted.update(verdict="fail", max_ulp=64.0, message="gradient drifted")
    c = compare(base, rf.write_results(tmp_path / "new.jsonl", new), gate=True)
    assert c.exit_code == 1
    key = (planted["backend"], planted["case_id"], "grad:input")
    assert [(p.new["backend"], p.new["case_id"], p.new["check"]) for p in c.new_failures] == [key]
    assert [(p.base["backend"], p.base["case_id"], p.base["check"]) for p in c.worse] == [key]
    assert c.worse[0].new_ulp == 64.0
    assert planted["case_id"] in c.markdown and "grad:input" in c.markdown
    # the same /2 file as BASE and the /1 file as NEW: the regression reads as a fix
    back = compare(tmp_path / "new.jsonl", base, gate=True, allow_missing=True)  # /1 has no kl_div
    assert back.exit_code == 0 and len(back.fixed_failures) == 1 and len(back.better) == 1


def test_one_backend_per_file_matches_across_versions(tmp_path):
    a = [rf.run_header(backends=["torch"], version=1), rf.record(cid="a" * 16, check="grad", max_ulp=0.5)]
    b = [rf.run_header(backends=["mykernel"]),
         rf.record(backend="mykernel", cid="a" * 16, check="grad:input", max_ulp=9.0)]
    c = compare(rf.write_results(tmp_path / "a.jsonl", a), rf.write_results(tmp_path / "b.jsonl", b), gate=True)
    assert c.mode == "torch vs mykernel" and len(c.pairs) == 1 and len(c.worse) == 1 and c.exit_code == 1
