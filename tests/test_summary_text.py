"""The terminal summary reads true (issue 12): warnings and expected failures named in the verdict
line, failures grouped by family and symptom, a worst figure marked where it is no failure."""
from __future__ import annotations

import io

from rich.console import Console

from harness.summary import print_summary


def _rec(verdict, backend="torch", loss="softmax", family="softmax.dims", dtype="float32", check="value",
         max_ulp=0.5, symptom=None, rung="accurate", cid="a" * 16, message="m"):
    rec = {"type": "result", "backend": backend, "loss": loss, "family": family, "dtype": dtype, "check": check,
           "case_id": cid, "verdict": verdict, "status": "ok", "max_ulp": max_ulp, "message": message,
           "worst": {"rung": rung}}
    if symptom:
        rec["symptom"] = symptom
    return rec


def _text(records, hint=None) -> str:
    buf = io.StringIO()
    print_summary(records, console=Console(file=buf, width=200, highlight=False), hint=hint)
    return buf.getvalue()


def test_passed_names_its_warnings_and_expected_failures():
    out = _text([_rec("pass"), _rec("warn", rung="absolute"), _rec("warn", rung="absolute"),
                 _rec("xfail", max_ulp=float("inf"), cid="b" * 16)])
    assert "PASSED with 2 warnings and 1 expected failure: 4 checks, none failing" in out
    assert "inf (xfail)" in out  # the row's worst figure comes from the known failure


def test_a_large_worst_figure_of_a_passing_row_is_marked_stable():
    out = _text([_rec("pass", max_ulp=4.49e13, rung="stable")])
    assert "4.49e+13 (stable)" in out and "PASSED: 1 checks" in out


def test_failures_are_grouped_by_family_and_symptom_with_counts():
    recs = [_rec("fail", family="ce.extreme", loss="cross_entropy", dtype=d, symptom="nan where finite",
                 max_ulp=float("inf"), cid=f"{i:016x}", message="nan where finite: 1/4 elements fail")
            for i, d in enumerate(["float16", "bfloat16", "float32"])]
    recs.append(_rec("fail", family="ce.extreme", loss="cross_entropy", symptom="off by a simple factor",
                     max_ulp=3e6, cid="f" * 16, message="off by a simple factor (×2): 4/4 elements fail"))
    out = _text(recs)
    assert "(2 of 2 groups, 4 failing checks; the worst of each)" in out
    assert "[nan where finite: 3 checks, bfloat16/float16/float32, value]" in out
    assert "[off by a simple factor: 1 check, float32, value]" in out
    assert "FAILED: torch: 4 failing checks" in out


def test_every_failure_group_prints_its_show_command():
    from harness.cli import show_command

    recs = [_rec("fail", symptom="nan where finite", cid="c" * 16, max_ulp=float("inf"), message="x")]
    out = _text(recs, hint=lambda r: show_command(r["case_id"], r["backend"], "full", 3))
    assert f"    losscheck show {'c' * 16} --backend torch --suite full --seed 3" in out
