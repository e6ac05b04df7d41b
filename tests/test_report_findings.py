"""summary.md says PASSED with its warnings, groups failures by family and symptom, and lists the
expected failures with their reasons (issue 12)."""
from __future__ import annotations

import results_factory as rf

import reports
from reports import load_results
from reports.summary import expected_failures, headline, symptom_groups


def _file(tmp_path, recs):
    return rf.write_results(tmp_path / "r.jsonl", [rf.run_header(), *recs])


def test_headline_never_hides_warnings_or_expected_failures(tmp_path):
    path = _file(tmp_path, [rf.record(cid="a" * 16), rf.record(cid="b" * 16, verdict="warn"),
                            rf.record(cid="c" * 16, verdict="xfail", xfail_reason="torch sums in lanes")])
    res = load_results(path)
    assert headline(res) == "PASSED with 1 warning and 1 expected failure"
    md = reports.render(path, tmp_path / "out")["summary.md"].read_text(encoding="utf-8")
    assert md.startswith("## losscheck: ✅ PASSED with 1 warning and 1 expected failure")
    assert "### Expected failures (1, known failures with their reasons)" in md and "torch sums in lanes" in md


def test_failures_group_by_family_and_symptom(tmp_path):
    recs = [rf.record(cid=f"{i:016x}", verdict="fail", family="ce.extreme", dtype=d, symptom="nan where finite",
                      max_ulp=float("inf"), message="nan where finite: 1/4 elements fail")
            for i, d in enumerate(["float16", "bfloat16"])]
    recs.append(rf.record(cid="f" * 16, verdict="fail", family="ce.weights", symptom="off by a simple factor",
                          max_ulp=1e6))
    path = _file(tmp_path, recs)
    res = load_results(path)
    groups = symptom_groups(r for r in res if r["verdict"] == "fail")
    assert [(k[2], k[3], len(v)) for k, v in groups] == [("ce.extreme", "nan where finite", 2),
                                                          ("ce.weights", "off by a simple factor", 1)]
    assert headline(res) == "FAILED: 3 failing"
    md = reports.render(path, tmp_path / "out")["summary.md"].read_text(encoding="utf-8")
    assert "### Failures and warnings by family and symptom (2 groups, 3 checks)" in md
    assert "| nan where finite | 2 | bfloat16/float16 |" in md


def test_expected_failures_group_by_reason(tmp_path):
    recs = [rf.record(cid=f"{i:016x}", verdict="xfail", xfail_reason="r1" if i < 3 else "r2") for i in range(5)]
    groups = expected_failures(load_results(_file(tmp_path, recs)))
    assert [(reason, len(v)) for reason, v in groups] == [("r1", 3), ("r2", 2)]


def test_the_html_header_reads_like_the_terminal(tmp_path):
    path = _file(tmp_path, [rf.record(cid="a" * 16), rf.record(cid="b" * 16, verdict="warn")])
    html = reports.render(path, tmp_path / "out")["index.html"].read_text(encoding="utf-8")
    assert "PASSED with 1 warning" in html and ">PASS<" not in html


def test_histogram_labels_agree_between_summary_and_plots():
    from reports import plots, summary

    assert summary.HIST_LABELS == plots.HIST_LABELS
