"""The scipy and paddle library backends (issue 11): real cases through each where the library is
installed (skipped, saying why, where not), judged by the verdict policy, so each finding of the
issue lands on its named rung.  Loading and the one-line "unavailable" error are covered for every
library backend by tests/test_backends_frameworks.py."""
from __future__ import annotations

import re

import numpy as np
import pytest

import reference
from cases import make_case
from harness.backends import Unsupported, framework, load
from harness.check import check_observation
from harness.tolerances import DEFAULTS


def needs(name):
    why = framework.unavailable(name)
    return pytest.mark.skipif(why is not None, reason=f"{name}: {why}")


def judge(backend, loss, args, kwargs):
    """(the backend's observation, the record of its value) for one call."""
    c = make_case(loss, list(args), kwargs, family="test.libraries", grad=False)
    obs = backend.evaluate(c)
    exact = reference.evaluate(loss, *c.args, **c.kwargs)
    return obs, check_observation(c, "value", exact, np.asarray(obs.value), DEFAULTS.for_dtype(exact.dtype),
                                  backend=backend.name)


# --- scipy ----------------------------------------------------------------------------------------

@needs("scipy")
def test_scipy_gives_values_only_in_the_input_dtype():
    b = load("scipy")
    x = np.array([[1.0, 2.5, -3.0], [0.0, 1e-3, 7.0]], np.float16)
    c = make_case("binary_cross_entropy_with_logits", (x, np.full_like(x, 0.25)), {"reduction": "none"},
                  family="t")
    obs = b.evaluate(c)  # log_expit has no float16 loop: float64 inside, rounded back once
    assert c.grad and obs.value.dtype == np.float16 and obs.grads == {}
    with pytest.raises(Unsupported):
        b.evaluate(make_case("cross_entropy", (x, np.array([0, 1])), {"label_smoothing": 0.1}, family="t"))


@needs("scipy")
def test_scipy_log_softmax_of_a_row_holding_inf_is_a_convention_warning():
    _, rec = judge(load("scipy"), "log_softmax", [np.array([[np.inf, 1.0, 2.0], [1.0, 2.0, 3.0]])], {"dim": 1})
    assert rec["verdict"] == "warn" and rec["worst"]["rung"] == "convention" and "limit" in rec["note"]


@needs("scipy")
def test_scipy_lse_minus_target_at_large_logits_is_the_magnitude_warning():
    """logsumexp(x) - x[t] rounds lse ~ max x first: exact 6.91e-13, SciPy-style code 0."""
    x, t = np.array([[1e4, 1e4 - 28, 1e4 - 40]]), np.array([0])
    obs, rec = judge(load("scipy"), "cross_entropy", [x, t], {"reduction": "none"})
    assert obs.value[0] == 0.0
    assert rec["verdict"] == "warn" and rec["worst"]["rung"] == "magnitude", rec["message"]
    assert "max|x|" in rec["message"]


@needs("scipy")
def test_scipy_cross_entropy_matches_torch_semantics_on_weights_and_ignored_targets():
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -2.0], [1.0, 1.0, 1.0]], np.float64)
    t, w = np.array([2, -100, 0]), np.array([0.5, 2.0, 1.5])
    for kwargs in ({"weight": w, "reduction": "mean"}, {"reduction": "none"}, {"weight": w, "reduction": "sum"}):
        _, rec = judge(load("scipy"), "cross_entropy", [x, t], kwargs)
        assert rec["verdict"] == "pass", (kwargs, rec["message"])
    y = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    _, rec = judge(load("scipy"), "cross_entropy", [x, y], {"weight": w, "reduction": "mean"})
    assert rec["verdict"] == "pass", rec["message"]


@needs("scipy")
def test_scipy_gate_end_to_end_warns_by_name(capsys, tmp_path, monkeypatch):
    """The gate passes SciPy's log_softmax on the extreme rows with the convention named, and its
    gradient checks are unsupported, not failed."""
    from harness.cli import main
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["gate", "--backend", "scipy", "--loss", "log_softmax", "--family", "log_softmax.extreme",
                 "--dtype", "float32", "--jobs", "1", "--results", str(tmp_path / "r.jsonl")])
    out = capsys.readouterr().out
    assert code == 0 and "PASSED" in out, out
    assert re.search(r"warnings by symptom \(warn\):.*convention \d", out), out
    import json
    recs = [json.loads(ln) for ln in (tmp_path / "r.jsonl").read_text().splitlines() if '"result"' in ln]
    grads = [r for r in recs if r["check"] != "value"]
    assert grads and all(r["status"] == "unsupported" for r in grads)


# --- paddle ---------------------------------------------------------------------------------------

@needs("paddle")
def test_paddle_cross_entropy_clip_is_a_semantic_difference():
    x, t = np.array([[0.0, -200.0, 1.0], [2.0, 1.0, 0.0]], np.float32), np.array([1, 0])
    for reduction in ("none", "mean", "sum"):
        obs, rec = judge(load("paddle"), "cross_entropy", [x, t], {"reduction": reduction})
        assert rec["verdict"] == "fail" and rec["worst"]["rung"] == "semantic", rec["message"]
        assert "shifted-logit clip at -64 (Paddle)" in rec["note"]
    assert abs(float(np.asarray(obs.value)) - (64.31326 + 0.40761)) < 1e-3  # sum: the capped row + row 2


@needs("paddle")
def test_paddle_mean_over_all_zero_weights_is_a_convention_warning():
    x, t = np.log(np.array([[0.2, 0.8], [0.6, 0.4]])), np.array([0, 1])
    for loss in ("cross_entropy", "nll_loss"):
        obs, rec = judge(load("paddle"), loss, [x, t], {"weight": np.zeros(2)})
        assert float(obs.value) == 0.0
        assert rec["verdict"] == "warn" and rec["worst"]["rung"] == "convention", (loss, rec["message"])


@needs("paddle")
def test_paddle_gradients_and_what_it_lacks():
    b = load("paddle")
    x, y = np.array([0.3, 0.6]), np.array([0.2, 0.9])
    c = make_case("binary_cross_entropy", (x, y), {"reduction": "sum"}, family="t")
    obs = b.evaluate(c)
    assert set(obs.grads) == {"input"}  # Paddle does not differentiate labels: grad:target unsupported
    assert np.allclose(obs.grads["input"], (x - y) / (x * (1 - x)) * float(np.asarray(c.grad_output)))
    with pytest.raises(Unsupported, match="float16"):
        b.evaluate(make_case("softmax", (x.astype(np.float16),), {"dim": 0}, family="t"))
    with pytest.raises(Unsupported):
        b.evaluate(make_case("nll_loss", (x, np.array(0)), {}, family="t"))
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    obs = b.evaluate(make_case("cross_entropy", (np.log(p), p), {"reduction": "none"}, family="t"))
    assert obs.value.shape == (2,)  # Paddle's (N, 1) for soft labels, squeezed



@needs("paddle")
def test_paddle_findings_the_gate_names():
    """Paddle's row weight on probability targets is a named semantic difference; its mean with a
    negative ignore_index divides by every position (a real bug: off by a simple factor)."""
    b = load("paddle")
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -2.0]])
    y, w = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]), np.array([0.5, 2.0, 1.5])
    _, rec = judge(b, "cross_entropy", [x, y], {"weight": w, "reduction": "mean"})
    assert rec["worst"]["rung"] == "semantic" and "(Paddle)" in rec["note"], rec["message"]
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -2.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    _, rec = judge(b, "cross_entropy", [x, np.array([-100, 0, -100, 2])], {})
    assert rec["verdict"] == "fail" and "simple factor" in rec["message"], rec["message"]


@needs("paddle")
def test_paddle_keeps_dtypes_and_bits_both_ways():
    import ml_dtypes
    b = load("paddle")
    for dtype in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64, np.int64):
        x = np.array([[1.0, 2.5, -3.0], [0.0, 1e-3, 7.0]]).astype(dtype)
        back = b._to_numpy(b._to_lib(x))
        assert back.dtype == x.dtype and back.tobytes() == x.tobytes()
