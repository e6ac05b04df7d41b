"""The flushed-subnormal rung (issue 13 §4, issue 11): a nonzero subnormal result returned as +0 or
-0 -- what flush-to-zero GPUs, XLA and MLX return -- is its own rung, ``flushed``, a warn (fail under
--strict), named in counts, message and symptom; it takes only elements beyond the stable bound, so a
zero where the exact result is a normal number still fails, and a NaN is still special.

``FLUSHING`` and ``ZEROING`` are drop-ins (``tests.test_flushed_rung:FLUSHING``): torch's softmax
with subnormal outputs flushed to 0, and with small *normal* outputs set to 0.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference
from cases.model import make_case
from harness.check import COUNT_KEYS, check_observation, final_verdict
from harness.cli import main
from harness.metrics import figures
from harness.symptoms import SYMPTOMS, symptom
from harness.tolerances import DEFAULTS
from harness.verdict import RUNG_SEVERITY, RUNGS, bounds, classify, record_verdict

REPO = Path(__file__).resolve().parents[1]


def _flush(input, dim=None, **kwargs):
    out = F.softmax(input, dim=dim)
    return torch.where(out.abs() < torch.finfo(out.dtype).tiny, torch.zeros_like(out), out)


def _zero_small_normals(input, dim=None, **kwargs):
    out = F.softmax(input, dim=dim)
    small = (out.abs() >= torch.finfo(out.dtype).tiny) & (out.abs() < 0.05)
    return torch.where(small, torch.zeros_like(out), out)


FLUSHING = SimpleNamespace(softmax=_flush)
ZEROING = SimpleNamespace(softmax=_zero_small_normals)


def _judge(loss, args, kwargs, edit):
    """(rungs, record) of the correctly rounded answer with ``edit(observed)`` applied."""
    exact = reference.evaluate(loss, *args, **kwargs)
    observed = np.array(exact.rounded, copy=True)
    edit(observed)
    tol = DEFAULTS.for_dtype(exact.dtype)
    rungs = classify(exact, observed, figures(exact, observed), tol)
    case = make_case(loss, args, kwargs, family="test.hand", grad=False)
    return rungs, check_observation(case, "value", exact, observed, tol, backend="b"), exact


def _mse16():
    x = np.array([1e-3, 0.5, 1e-2, 2e-3], np.float16)  # squares: 1e-6 and 4e-6 are float16 subnormals
    return "mse_loss", (x, np.zeros(4, np.float16)), {"reduction": "none"}


def test_the_rung_is_in_every_list_of_rungs():
    assert RUNGS.index("stable") < RUNGS.index("flushed") < RUNGS.index("absolute") < RUNGS.index("fail")
    assert RUNG_SEVERITY["absolute"] < RUNG_SEVERITY["flushed"] < RUNG_SEVERITY["fail"]
    assert "flushed" in COUNT_KEYS and "flushed subnormal" in SYMPTOMS
    assert record_verdict(np.array(["accurate", "flushed"])) == "warn"
    assert record_verdict(np.array(["flushed", "fail"])) == "fail"


@pytest.mark.parametrize("zero", [0.0, -0.0], ids=["+0", "-0"])
def test_a_flushed_subnormal_warns(zero):
    def flush(o):
        o[0] = zero
        o[3] = zero

    rungs, rec, exact = _judge(*_mse16(), flush)
    assert float(exact.rounded[0]) != 0 and abs(float(exact.rounded[0])) < 2.0**-14  # a subnormal
    assert rungs.tolist() == ["flushed", "accurate", "accurate", "flushed"]
    assert rec["verdict"] == "warn" and rec["counts"]["flushed"] == 2 and rec["counts"]["fail"] == 0
    assert rec["symptom"] == "flushed subnormal" and rec["worst"]["rung"] == "flushed"
    assert rec["message"].startswith("flushed subnormal: 2/4 elements with subnormals flushed to 0 (warn)")
    assert final_verdict(rec, strict=True) == "fail"  # as every warn under --strict


def test_the_same_element_without_the_rung_would_fail():
    """mse's natural unit is the square itself: without the rung a flushed square is a failure."""
    loss, args, kwargs = _mse16()
    exact = reference.evaluate(loss, *args, **kwargs)
    b = bounds(exact, DEFAULTS.for_dtype("float16"))
    assert float(exact.rounded[0]) > b["absolute"][0] and float(exact.rounded[0]) > b["stable"][0]


def test_a_zero_for_a_normal_result_still_fails():
    def zero_normal(o):
        o[2] = 0.0  # 1e-4: a normal float16

    rungs, rec, _ = _judge(*_mse16(), zero_normal)
    assert rungs.tolist()[2] == "fail" and rec["verdict"] == "fail"
    assert rec["counts"]["flushed"] == 0 and rec["symptom"] == "flushed to zero"


def test_a_wrong_nonzero_subnormal_or_a_nan_is_not_flushed():
    def wrong(o):
        o[0] = np.float16(3e-6)  # a subnormal, but not zero

    rungs, _, _ = _judge(*_mse16(), wrong)
    assert rungs[0] in ("fail", "absolute")

    def nan(o):
        o[0] = np.nan

    rungs, rec, _ = _judge(*_mse16(), nan)
    assert rungs[0] == "special" and rec["verdict"] == "fail"


def test_a_tiny_subnormal_within_the_stable_bound_stays_stable():
    """Returning 0 for the smallest subnormals is within what an underflowing operation may commit
    (the stable rung's eta): flushed only names errors beyond it."""
    x = np.array([0.0, -16.0], np.float16)  # softmax: 1 and e^-16, 1.9 subnormal ulps of float16
    rungs, _, exact = _judge("softmax", (x,), {"dim": 0}, lambda o: o.__setitem__(1, 0.0))
    assert float(exact.rounded[1]) == 2 * 2.0**-24 and rungs.tolist() == ["accurate", "stable"]


def test_softmax_of_very_negative_logits_flushed_in_float16_and_float32():
    for dtype, low in ((np.float16, -12.0), (np.float32, -90.0)):
        x = np.array([0.0, low, -1.0], dtype)
        rungs, rec, exact = _judge("softmax", (x,), {"dim": 0}, lambda o: o.__setitem__(1, 0.0))
        assert 0 < abs(float(exact.rounded[1])) < float(np.finfo(dtype).tiny)
        assert rungs.tolist() == ["accurate", "flushed", "accurate"], dtype
        assert rec["verdict"] == "warn" and rec["symptom"] == "flushed subnormal"


def test_symptom_of_a_flushed_worst_element():
    assert symptom({"exact": "1e-6", "observed": "0.0", "rung": "flushed"}) == "flushed subnormal"
    assert symptom({"exact": "1e-3", "observed": "0.0", "rung": "fail"}) == "flushed to zero"


# ---- end to end --------------------------------------------------------------------------------

SLICE = ["--loss", "softmax", "--family", "softmax.dims", "--dtype", "float16", "--no-grad", "--jobs", "2"]


@pytest.fixture
def cli_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "flushed-cache"))
    monkeypatch.chdir(REPO)


def _records(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == "result"]


def test_a_flushing_dropin_warns_and_fails_only_under_strict(capsys, tmp_path, cli_env):
    path = tmp_path / "r.jsonl"
    code = main(["gate", "--backend", "tests.test_flushed_rung:FLUSHING", *SLICE, "--results", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    recs = _records(path)
    flushed = [r for r in recs if r["counts"]["flushed"]]
    assert flushed and all(r["verdict"] == "warn" and r["symptom"] == "flushed subnormal" for r in flushed)
    assert all(r["verdict"] == "pass" for r in recs if not r["counts"]["flushed"])
    assert f"warnings by symptom (warn): flushed subnormal {len(flushed)}" in out
    code = main(["gate", "--backend", "tests.test_flushed_rung:FLUSHING", *SLICE, "--strict",
                 "--results", str(tmp_path / "strict.jsonl")])
    out = capsys.readouterr().out
    assert code == 1 and "flushed subnormal" in out


def test_a_dropin_zeroing_normal_results_fails(capsys, tmp_path, cli_env):
    path = tmp_path / "r.jsonl"
    assert main(["gate", "--backend", "tests.test_flushed_rung:ZEROING", *SLICE, "--results", str(path)]) == 1
    failing = [r for r in _records(path) if r["verdict"] == "fail"]
    assert failing and all(r["counts"]["flushed"] == 0 and r["symptom"] == "flushed to zero" for r in failing)


def test_reports_name_the_rung_and_read_files_without_it(tmp_path, cli_env, capsys):
    import reports
    from reports.results import load_results
    from tests.results_factory import synthetic_run

    path = tmp_path / "r.jsonl"
    main(["run", "--backend", "tests.test_flushed_rung:FLUSHING", *SLICE, "--results", str(path)])
    written = reports.render(path, tmp_path / "out")
    html = Path(written["index.html"]).read_text()
    md = Path(written["summary.md"]).read_text()
    assert "flushed subnormal" in html and "flush-to-zero (warn)" in html and "flushed subnormal" in md
    # a file written before the rung existed: counts without "flushed" read as 0
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps(line) + "\n" for line in synthetic_run()))
    assert all("flushed" not in r.get("counts", {}) for r in map(json.loads, old.read_text().splitlines()[1:]))
    res = load_results(old)
    assert all(r["counts"]["flushed"] == 0 for r in res if isinstance(r.get("counts"), dict))
    reports.render(old, tmp_path / "old-out")
    assert reports.compare(old, old).exit_code == 0
