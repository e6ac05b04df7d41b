"""The verdict policy of issue 11 (docs/verdicts.md): each behaviour the policy names lands on its own
rung with its own symptom and verdict -- magnitude-dependent, flushed, recursive summation and
convention warn (FAIL under --strict), a semantic difference fails naming both formulas -- while
what the policy does not name (a NaN where a finite answer exists, a wrong value no declared variant
explains, a half-precision result accumulated in its storage format) still fails.

The observations come from the planted policy backends (tests/planted/__init__.py: POLICY), one
behaviour each, on small hand-made calls.
"""
from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

import reference
from cases.model import make_case
from harness.backends import load
from harness.check import check_observation, final_verdict
from harness.config import Config, ConfigError, _parse
from harness.symptoms import SYMPTOMS
from harness.tolerances import DEFAULTS, Tolerances
from harness.verdict import RUNG_SEVERITY, RUNGS, WARN_RUNGS, bounds
from reference import registry

BF16 = ml_dtypes.bfloat16


def _judge(backend: str, loss: str, args, kwargs=None, tolerances: Tolerances = DEFAULTS) -> dict:
    """The record of ``backend``'s value of one call (judged with ``tolerances``)."""
    c = make_case(loss, list(args), kwargs or {}, family="test.policy", grad=False)
    observed = np.asarray(load(backend).evaluate(c).value)
    exact = reference.evaluate(loss, *c.args, **c.kwargs)
    return check_observation(c, "value", exact, observed, tolerances.for_dtype(exact.dtype), backend=backend)


def _expect(rec: dict, rung: str, verdict: str, symptom: str) -> None:
    """The record's worst element is on ``rung``, counted there, with ``verdict`` and ``symptom``
    (named in the message too); a warn fails under --strict, a fail stays a fail."""
    assert rec["worst"]["rung"] == rung, rec["message"]
    assert rec["counts"][rung] >= 1 and rec["verdict"] == verdict, rec["message"]
    assert rec["symptom"] == symptom and rec["message"].startswith(symptom), rec["message"]
    assert final_verdict(rec, strict=True) == "fail"
    assert final_verdict(rec, strict=False) == verdict


# ------------------------------------------------------------------------------ the ladder itself

def test_every_rung_has_a_severity_and_the_warn_rungs_are_named():
    assert set(RUNG_SEVERITY) == set(RUNGS)
    assert set(WARN_RUNGS) == {"recursive", "absolute", "magnitude", "flushed", "convention"}
    for name in ("magnitude-dependent", "recursive summation", "convention", "semantic difference"):
        assert name in SYMPTOMS


def test_the_recursive_bound_contains_the_pairwise_one_and_counts_in_the_accumulation_unit():
    """(c0 + c1 (n-1)) (u_acc max(cond, scale) + eta) >= the pairwise bound; for a half format
    u_acc is float32's, so a recursive sum in the storage format is not covered."""
    x = np.linspace(-3, 3, 64).reshape(1, 64)
    b = bounds(reference.evaluate("log_softmax", x, dim=1), DEFAULTS["float64"])
    assert np.all(b["recursive"] >= b["stable"])
    half = bounds(reference.evaluate("log_softmax", x.astype(np.float16), dim=1), DEFAULTS["float16"])
    assert np.all(half["recursive"] < 65 * 2.0 ** -24 * 1e3)


# ------------------------------------------------------------------------------ magnitude-dependent

def test_lse_form_with_large_logits_is_magnitude_dependent_with_its_figure():
    """Issue 11's float64 example: a confident row at 1e4, exact 6.9e-13, the lse form returns 0."""
    x = np.array([[1e4, 1e4 - 28.0, 1e4 - 40.0]])
    rec = _judge("tests.planted.lse_form", "cross_entropy", [x, np.array([0])], {"reduction": "none"})
    _expect(rec, "magnitude", "warn", "magnitude-dependent")
    assert rec["worst"]["max_abs_x"] == 1e4 and 0 < rec["worst"]["k"] < 1
    assert "× u × max|x| (u = 2^-53, float64; max|x| = 1e+04)" in rec["message"]
    _expect(_judge("tests.planted.lse_form", "log_softmax", [x], {"dim": 1}), "magnitude", "warn",
            "magnitude-dependent")


def test_half_precision_accumulated_in_its_own_format_still_fails():
    """bfloat16 logits [-60000] * 3 (loss log 3): an lse rounded to bfloat16 gives 0.  The
    magnitude rung counts in float32's u for half formats (ACCUMULATION), so this is no warning."""
    x = np.full((1, 3), -60000, BF16)
    rec = _judge("tests.planted.lse_rounded", "cross_entropy", [x, np.array([0])], {"reduction": "none"})
    assert rec["verdict"] == "fail" and rec["worst"]["rung"] == "fail"
    ok = _judge("tests.planted.lse_form", "cross_entropy", [x, np.array([0])], {"reduction": "none"})
    assert ok["verdict"] == "pass"  # the same form accumulated in float32 is correctly rounded


def test_elementwise_losses_declare_no_magnitude():
    """Their natural scale already holds |x|: no second allowance."""
    x = np.array([1.0, -2.0])
    assert registry.get("binary_cross_entropy_with_logits").magnitude((x, x * 0), {}, "value") is None
    assert registry.get("cross_entropy").magnitude((x.reshape(1, 2), np.array([0])), {}, "value") == 2.0


# ------------------------------------------------------------------------------ flushed

def test_flush_to_zero_of_a_subnormal_is_the_flushed_warning():
    x = np.array([[0.0, -100.0, -95.0]], np.float32)  # e^-95, e^-100: float32 subnormals
    _expect(_judge("tests.planted.ftz", "softmax", [x], {"dim": 1}), "flushed", "warn", "flushed subnormal")


def _mse_grad_record(observed_first: float) -> dict:
    """TensorFlow's float32 mse_loss gradient of gate case 2d0b1950d807b21a, element [1, 3]: x =
    1.5039488e-34 next to a subnormal target 8.7851282e-39, which TF's denormals-are-zero reads
    as 0: 2(x - 0) instead of 2(x - y), 765 ulp off (873 in the mean of the case)."""
    x = np.array([1.5039488e-34, 0.5], np.float32)
    y = np.array([8.7851282e-39, 0.25], np.float32)
    go = np.ones(2, np.float32)
    c = make_case("mse_loss", [x, y], {"reduction": "none"}, family="test.policy", grad=True, grad_output=go)
    exact = reference.evaluate_grad("mse_loss", x, y, grad_output=go, wrt="input", reduction="none")
    observed = np.array([observed_first, 0.5], np.float32)
    return check_observation(c, "grad:input", exact, observed, DEFAULTS["float32"], backend="b")


def test_subnormal_inputs_read_as_zero_are_the_flushed_warning():
    rec = _mse_grad_record(2 * 1.5039488e-34)
    _expect(rec, "flushed", "warn", "flushed subnormal")
    assert "denormals-are-zero" in rec["note"]


def test_a_wrong_value_next_to_a_subnormal_input_stays_a_failure():
    """Only the answer for the flushed inputs is relabelled: another wrong number still fails."""
    rec = _mse_grad_record(3.0e-34)
    assert rec["verdict"] == "fail" and rec["counts"]["flushed"] == 0 and "note" not in rec


# ------------------------------------------------------------------------------ recursive summation

def _padded_rows() -> tuple[np.ndarray, np.ndarray]:
    """C = 8192 float32 logits, one at 0 and the rest equal: a one-after-another sum of the
    identical tail rounds the same way each time (77-160 ulp, issue 11's 90-232)."""
    x = np.full((3, 8192), -3.0, np.float32)
    x[:, 0] = 0.0
    x[1, 1:] = -8.0
    x[2, 1:] = -0.5
    return x, np.array([0, 5, 9])


def test_recursive_float32_sum_over_8192_classes_warns_and_is_stable_when_declared():
    x, t = _padded_rows()
    rec = _judge("tests.planted.recursive_sum", "cross_entropy", [x, t], {"reduction": "none"})
    _expect(rec, "recursive", "warn", "recursive summation")
    assert rec["max_ulp"] > 50
    declared = _judge("tests.planted.recursive_sum", "cross_entropy", [x, t], {"reduction": "none"},
                      DEFAULTS.with_summation("recursive"))
    assert declared["verdict"] == "pass" and declared["counts"]["recursive"] == 0
    assert _judge("torch", "cross_entropy", [x, t], {"reduction": "none"})["verdict"] == "pass"


# ------------------------------------------------------------------------------ conventions

def test_scipy_softmax_of_a_row_holding_inf_is_a_convention():
    x = np.array([[np.inf, 1.0, 2.0], [1.0, 2.0, 3.0]])
    for loss in ("softmax", "log_softmax"):
        rec = _judge("tests.planted.softmax_limit", loss, [x], {"dim": 1})
        _expect(rec, "convention", "warn", "convention")
        assert rec["counts"]["convention"] == 2 and "limit" in rec["note"] and rec["note"] in rec["message"]


def test_bce_with_logits_limit_at_infinite_logits_is_a_convention():
    x, y = np.array([np.inf, -np.inf, 1.0]), np.array([1.0, 0.0, 0.5])
    for reduction in ("none", "mean", "sum"):
        rec = _judge("tests.planted.bcewl_limit", "binary_cross_entropy_with_logits", [x, y],
                     {"reduction": reduction})
        _expect(rec, "convention", "warn", "convention")


def test_a_mean_over_no_weight_returned_as_0_is_a_convention():
    """Paddle's 0 for all-zero weights where torch divides 0 by 0."""
    x, t = np.array([[1.0, 2.0], [0.5, 0.0]]), np.array([0, 1])
    kwargs = {"weight": np.zeros(2)}
    c = make_case("cross_entropy", [x, t], kwargs, family="test.policy", grad=False)
    exact = reference.evaluate("cross_entropy", x, t, **kwargs)
    rec = check_observation(c, "value", exact, np.asarray(0.0), DEFAULTS["float64"], backend="b")
    _expect(rec, "convention", "warn", "convention")


def test_nll_loss_mean_over_no_weight_returned_as_0_is_a_convention_too():
    """The same 0/0 as cross_entropy's (Paddle's nll_loss with all-zero weights gives 0)."""
    x, t = np.array([[-1.0, -2.0], [-0.5, -3.0]]), np.array([0, 1])
    kwargs = {"weight": np.zeros(2)}
    c = make_case("nll_loss", [x, t], kwargs, family="test.policy", grad=False)
    exact = reference.evaluate("nll_loss", x, t, **kwargs)
    rec = check_observation(c, "value", exact, np.asarray(0.0), DEFAULTS["float64"], backend="b")
    _expect(rec, "convention", "warn", "convention")
    assert "0/0" in rec["note"]


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_the_gradient_of_a_mean_over_no_weight_returned_as_0_is_a_convention(loss):
    """Under 0/0 := 0 the loss is identically 0 for these weights: gradient 0, where torch's is NaN
    (Paddle's 0 gradient); a gradient that is neither stays a failure."""
    x, t = np.array([[-1.0, -2.0], [-0.5, -3.0]]), np.array([0, -100])
    kwargs = {"weight": np.array([0.0, 1.0])}
    c = make_case(loss, [x, t], kwargs, family="test.policy")
    exact = reference.evaluate_grad(loss, x, t, grad_output=c.grad_output, wrt="input", **kwargs)
    assert np.isnan(np.asarray(exact.rounded, np.float64)[0]).any()
    rec = check_observation(c, "grad:input", exact, np.zeros_like(x), DEFAULTS["float64"], backend="b")
    _expect(rec, "convention", "warn", "convention")
    assert "its gradient 0" in rec["note"]
    wrong = np.full_like(x, 0.5)
    rec = check_observation(c, "grad:input", exact, wrong, DEFAULTS["float64"], backend="b")
    assert rec["verdict"] == "fail" and rec["counts"]["convention"] == 0


def test_a_convention_never_hides_another_nan_or_number():
    """Only the declared other answer is a convention: NaN where the exact value is finite, or a
    wrong number at a convention point, stay failures."""
    x = np.array([[np.inf, 1.0, 2.0], [1.0, 2.0, 3.0]])
    c = make_case("softmax", [x], {"dim": 1}, family="test.policy", grad=False)
    exact = reference.evaluate("softmax", x, dim=1)
    wrong = np.array(exact.rounded, copy=True)
    wrong[0, 1] = 0.25  # a number that is not the limit 0
    wrong[1, 0] = np.nan  # NaN in a finite row
    rec = check_observation(c, "value", exact, wrong, DEFAULTS["float64"], backend="b")
    assert rec["verdict"] == "fail" and rec["counts"]["convention"] == 0 and "note" not in rec


# ------------------------------------------------------------------------------ semantic differences

@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("backend, variant", [("tests.planted.paddle_cap", "(Paddle)"),
                                              ("tests.planted.keras_clip", "(Keras)")])
def test_clips_and_caps_are_a_semantic_difference_naming_both_formulas(backend, variant, reduction):
    x, t = np.array([[0.0, -200.0, 1.0], [2.0, 1.0, 0.0]], np.float32), np.array([1, 0])
    rec = _judge(backend, "cross_entropy", [x, t], {"reduction": reduction})
    _expect(rec, "semantic", "fail", "semantic difference")
    assert variant in rec["note"] and "vs torch's -log p_t" in rec["note"]


def test_paddles_shifted_logit_clip_is_a_semantic_difference():
    """paddlepaddle 3.3.1 (CPU) clips x - max x at -64 inside softmax: CE of [0, -200, 1] at t = 1
    is 64.313 (not the issue's 64.47 cap), log_softmax of [0, -200, -200] is [0, -64, -64]; the
    values below are what Paddle returned.  Its softmax there, [1, 1.6e-28, 1.6e-28], is within
    u of the probabilities' unit: absolutely accurate (warn), not a semantic difference."""
    x, t = np.array([[0.0, -200.0, 1.0]], np.float32), np.array([1])
    c = make_case("cross_entropy", [x, t], {"reduction": "none"}, family="test.policy", grad=False)
    exact = reference.evaluate("cross_entropy", x, t, reduction="none")
    rec = check_observation(c, "value", exact, np.array([64.31326], np.float32), DEFAULTS["float32"], backend="b")
    _expect(rec, "semantic", "fail", "semantic difference")
    assert "shifted-logit clip at -64 (Paddle)" in rec["note"] and "vs torch's -log p_t" in rec["note"]
    x = np.array([[0.0, -200.0, -200.0]])
    for loss, got, rung in (("log_softmax", [0.0, -64.0, -64.0], "semantic"),
                            ("softmax", [1.0, 1.60381089e-28, 1.60381089e-28], "absolute")):
        c = make_case(loss, [x], {"dim": 1}, family="test.policy", grad=False)
        exact = reference.evaluate(loss, x, dim=1)
        rec = check_observation(c, "value", exact, np.array([got]), DEFAULTS["float64"], backend="b")
        assert rec["worst"]["rung"] == rung and rec["counts"][rung] == 2, rec["message"]
    assert rec["verdict"] == "warn"
    c = make_case("log_softmax", [x], {"dim": 1}, family="test.policy", grad=False)
    rec = check_observation(c, "value", reference.evaluate("log_softmax", x, dim=1), np.array([[0.0, -64.0, -64.0]]),
                            DEFAULTS["float64"], backend="b")
    _expect(rec, "semantic", "fail", "semantic difference")
    assert "log_softmax(max(x - max x, -64))" in rec["note"]


def test_paddles_row_weight_on_probability_targets_is_a_semantic_difference():
    """Paddle weights a probability-target row by sum_c w_c y_c (Paddle 3.3.1 returned these to
    1e-16): torch weights each term by w_c.  With label smoothing the variant is not claimed."""
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -2.0]])
    y, w = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]]), np.array([0.5, 2.0, 1.5])
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    rw, ce = y @ w, -(y * logp).sum(1)
    for reduction, got in (("none", rw * ce), ("sum", (rw * ce).sum()), ("mean", (rw * ce).sum() / rw.sum())):
        kwargs = {"weight": w, "reduction": reduction}
        c = make_case("cross_entropy", [x, y], kwargs, family="test.policy", grad=False)
        exact = reference.evaluate("cross_entropy", x, y, **kwargs)
        rec = check_observation(c, "value", exact, np.asarray(got), DEFAULTS["float64"], backend="b")
        _expect(rec, "semantic", "fail", "semantic difference")
        assert "row weight sum_c w_c y_c (Paddle)" in rec["note"]
    kwargs = {"weight": w, "reduction": "sum", "label_smoothing": 0.1}
    c = make_case("cross_entropy", [x, y], kwargs, family="test.policy", grad=False)
    rec = check_observation(c, "value", reference.evaluate("cross_entropy", x, y, **kwargs),
                            np.asarray((rw * ce).sum()), DEFAULTS["float64"], backend="b")
    assert rec["worst"]["rung"] == "fail" and "note" not in rec


def test_keras_clip_of_binary_cross_entropy_is_a_semantic_difference():
    x, y = np.array([0.0, 1e-9, 0.5], np.float32), np.ones(3, np.float32)
    rec = _judge("tests.planted.keras_clip", "binary_cross_entropy", [x, y], {"reduction": "none"})
    _expect(rec, "semantic", "fail", "semantic difference")
    assert "max(log x, -100)" in rec["note"]


#: Keras 3.15.1 (JAX) ops.binary_crossentropy of the inputs [0, 0, 0, 1, 1, 1] with targets
#: [0, 1, 0.5, 0, 1, 0.5] in float64 (gate case 326507a713b6d08d): its clip at fl(1 - 1e-7)
#: gives 16.118095651484676 at x = 1, 5e-10 from -log(1e-7), and 1 - c costs it 5e-17 at x = 0
KERAS_BCE_EDGES_F64 = [1.0000000494736474e-07, 16.11809565095832, 8.059047875479163, 16.118095651484676,
                       1.0000000494736474e-07, 8.05904787574234]


def test_keras_clip_bounds_are_the_formats_numbers():
    """The clip's 1 - 1e-7 is the format's number (float64 0.99999990000000005, float32 1 - 2^-23):
    every clipped element of Keras' float64 answer, and the planted clip's float32 none/mean/sum
    (x = 1: -log 2^-23 = 15.94, not 16.12), is the semantic difference, not "inaccurate"."""
    x = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    y = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    c = make_case("binary_cross_entropy", [x, y], {"reduction": "none"}, family="test.policy", grad=False)
    exact = reference.evaluate("binary_cross_entropy", x, y, reduction="none")
    rec = check_observation(c, "value", exact, np.array(KERAS_BCE_EDGES_F64), DEFAULTS["float64"], backend="b")
    _expect(rec, "semantic", "fail", "semantic difference")
    assert rec["counts"]["semantic"] == 6
    for reduction in ("none", "mean", "sum"):
        rec = _judge("tests.planted.keras_clip", "binary_cross_entropy",
                     [x.astype(np.float32), y.astype(np.float32)], {"reduction": reduction})
        _expect(rec, "semantic", "fail", "semantic difference")


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("check", ["grad:input", "grad:target"])
def test_keras_clip_gradients_are_a_semantic_difference(check, reduction):
    """The clip is constant outside [1e-7, 1 - 1e-7], so Keras' input gradient is 0 there where
    torch's is (x - y) / max(x (1 - x), 1e-12), and its target gradient is -[log c - log(1 - c)]
    of the clipped c: named, not "flushed to zero" or "inaccurate" (issue 11, gradients)."""
    x = np.array([0.0, 1e-9, 0.5, 1.0], np.float32)
    y = np.array([1.0, 1.0, 1.0, 0.0], np.float32)
    c = make_case("binary_cross_entropy", [x, y], {"reduction": reduction}, family="test.policy", grad=True)
    observed = np.asarray(load("tests.planted.keras_clip").evaluate(c).observed(check))
    exact = reference.evaluate_grad("binary_cross_entropy", x, y, grad_output=c.grad_output,
                                    wrt=check.partition(":")[2], reduction=reduction)
    rec = check_observation(c, check, exact, observed, DEFAULTS["float32"], backend="b")
    _expect(rec, "semantic", "fail", "semantic difference")
    assert rec["counts"]["fail"] == rec["counts"]["special"] == 0


def test_a_clip_the_format_cannot_hold_is_no_semantic_difference():
    """float16 holds 1 - 1e-7 as 1: the clip leaves log 0, and the inf (x = 1, y = 0) and NaN
    (x = 1, y = 1: 0 * log 0) where torch's clamp gives 100 and 0 stay special failures."""
    x, y = np.array([1.0, 1.0], np.float16), np.array([0.0, 1.0], np.float16)
    rec = _judge("tests.planted.keras_clip", "binary_cross_entropy", [x, y], {"reduction": "none"})
    assert rec["verdict"] == "fail" and rec["counts"]["special"] == 2 and rec["counts"]["semantic"] == 0
    assert rec["symptom"] in ("inf where finite", "nan where finite")


def test_a_variant_that_does_not_bite_explains_nothing():
    """optax's bfloat16 mean over rows of logits near -88 (gate case 5008aef279320dae): 1.5 for
    1.40536, 12 ulp off.  Paddle's cap at 64.47 and Keras' clip change nothing there, so their
    answer is torch's and the failure stays "inaccurate" instead of a semantic difference that
    the stable bound's slack would otherwise admit."""
    x = np.array([[-87.5, -88.0, -88.0, -88.5, -90.5, -89.0, -89.0, -87.5],
                  [-88.5, -90.5, -89.0, -89.0, -87.5, -87.5, -88.0, -88.0],
                  [-89.0, -89.0, -87.5, -87.5, -88.0, -88.0, -88.5, -90.5]]).astype(BF16)
    t = np.array([0, 5, 3])
    c = make_case("cross_entropy", [x, t], {"reduction": "mean"}, family="test.policy", grad=False)
    exact = reference.evaluate("cross_entropy", x, t, reduction="mean")
    rec = check_observation(c, "value", exact, np.asarray(1.5, BF16), DEFAULTS["bfloat16"], backend="b")
    assert rec["verdict"] == "fail" and rec["symptom"] == "inaccurate" and "note" not in rec


def test_a_wrong_value_no_variant_explains_stays_a_plain_failure():
    x, t = np.array([[0.0, -200.0, 1.0]], np.float32), np.array([1])
    c = make_case("cross_entropy", [x, t], {"reduction": "none"}, family="test.policy", grad=False)
    exact = reference.evaluate("cross_entropy", x, t, reduction="none")
    rec = check_observation(c, "value", exact, np.array([50.0], np.float32), DEFAULTS["float32"], backend="b")
    assert rec["verdict"] == "fail" and rec["worst"]["rung"] == "fail" and "note" not in rec


# ------------------------------------------------------------------------------ configuration and files

def test_summation_is_a_flag_a_config_key_and_a_header_field():
    assert Config().with_flags(summation="recursive").tolerances.summation == "recursive"
    with pytest.raises(ConfigError):
        Config().with_flags(summation="kahan")
    assert _parse({"summation": "recursive"}, __import__("pathlib").Path("p")).tolerances.summation == "recursive"
    with pytest.raises(ConfigError):
        _parse({"summation": "sorted"}, __import__("pathlib").Path("p"))
    header = DEFAULTS.with_summation("recursive").to_dict()
    assert Tolerances.from_dict(json.loads(json.dumps(header))).summation == "recursive"
    assert "summation" not in DEFAULTS.to_dict()["float32"]  # pairwise headers read as before


def test_a_header_written_before_c_mag_reads_with_the_default():
    old = {d: {k: v for k, v in t.items() if k != "c_mag"} for d, t in DEFAULTS.to_dict().items()}
    assert Tolerances.from_dict(old) == DEFAULTS


def test_results_written_before_the_new_rungs_read_with_zero_counts(tmp_path):
    """A file whose counts lack the new rungs (every file before issue 11) reads them as 0, and a
    new record's note and rung reach the reports."""
    from reports.html_report import RUNGS as HTML_RUNGS
    from reports.results import load_results
    from tests.results_factory import record, run_header, write_results

    new = record(cid="fedcba9876543210", verdict="warn", note="convention: the limit")
    new["counts"].update(convention=1, absolute=0)
    new["worst"]["rung"] = "convention"
    path = write_results(tmp_path / "r.jsonl", [run_header(), record(verdict="fail"), new])
    recs = list(load_results(path).records.values())
    for name in ("recursive", "magnitude", "convention", "semantic", "flushed"):
        assert recs[0]["counts"][name] == 0
    assert recs[1]["counts"]["convention"] == 1 and recs[1]["note"] == "convention: the limit"
    assert set(HTML_RUNGS) >= set(RUNGS) - {"undetermined"} | {"undetermined"}


def test_the_gate_declares_the_summation_order_and_strict_fails_the_warnings(capsys, tmp_path, monkeypatch):
    """torch's absorption checks (its CPU softmax sums one after another in vector lanes) warn
    "recursive summation" by default, pass with --summation recursive (recorded in the header), and
    fail under --strict unless a known failure expects them (torch's shipped entry does)."""
    from pathlib import Path

    from harness.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the workers import this checkout's harness
    args = ["gate", "--loss", "softmax", "--family", "softmax.absorption", "--dtype", "float32", "--no-grad",
            "--known-failures", str(tmp_path / "none.toml")]
    (tmp_path / "none.toml").write_text("")

    def run(*extra):
        path = tmp_path / f"r{len(list(tmp_path.iterdir()))}.jsonl"
        code = main([*args, *extra, "--results", str(path)])
        capsys.readouterr()
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return code, lines[0], [r for r in lines if r["type"] == "result"]

    code, header, recs = run()
    assert code == 0 and {r["symptom"] for r in recs if r["verdict"] == "warn"} == {"recursive summation"}
    code, header, recs = run("--summation", "recursive")
    assert code == 0 and {r["verdict"] for r in recs} == {"pass"}
    assert header["tolerances"]["float32"]["summation"] == "recursive"
    code, _, recs = run("--strict")
    assert code == 0 and {r["verdict"] for r in recs} == {"xfail"}  # torch's shipped entry, under --strict
