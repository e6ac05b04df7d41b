"""The oracle's semantics at the edges docs/design.md fixes: specials, ignore_index, zero weights,
cancellation, the confident-row cliff, and the settling machinery itself."""
import math

import ml_dtypes
import mpmath
import numpy as np
import pytest

import reference as R
from reference import settle
from reference.exact import mpf_from_str, mpf_to_str

F32 = np.float32
INF = np.inf


def r64(v):
    return R.to_dtype(v, "float64").astype(float)


def test_cancellation_does_not_fool_the_oracle():
    # the example: log(1 + e^-20 + e^-1e4) with float32 logits
    x = np.array([1e4, 1e4 - 20, 0], F32)
    got = R.to_dtype(R.cross_entropy(x, np.array(0)), np.float32)
    want = float(mpmath.log1p(mpmath.exp(-20)))
    assert got == np.float32(want) and abs(float(got) - 2.0611536e-9) < 1e-15


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_confident_row_cliff_is_tiny_not_zero(dtype):
    """Long double evaluates log(1 + 2e^-50) as 0: stage 0 must not accept it."""
    dt = R.FORMATS[dtype].np_dtype
    x = np.array([50, 0, 0], dt)
    with mpmath.workprec(200):
        want = mpmath.log1p(2 * mpmath.exp(-50))
    ex = R.evaluate("cross_entropy", x, np.array(0))
    assert ex.rounded == R.to_dtype(np.array(want, dtype=object), dtype)
    assert float(ex.rounded.astype(float)) > 0 or dtype == "float16"  # float16 underflows to 0 exactly
    if dtype == "float16":
        assert float(ex.rounded.astype(float)) == 0.0  # 3.9e-22 is below half of float16's 6e-8


def test_bfloat16_shift_invariance_example_from_design():
    x = np.array([-60000, -60000, -60000], ml_dtypes.bfloat16)
    ex = R.evaluate("cross_entropy", x, np.array(1))
    assert float(ex.rounded.astype(float)) == 1.1015625  # log 3 correctly rounded to bfloat16
    assert ex.cond < 2.5 and ex.scale < 2.2  # built from x - max, never from |x| = 6e4


def test_masked_logits():
    x = np.array([[0, -INF, 1]], F32)
    assert abs(r64(R.cross_entropy(x, np.array([0]))) - math.log1p(math.e)) < 1e-15  # harmless
    assert r64(R.cross_entropy(x, np.array([1]))) == INF  # the target itself masked
    assert math.isnan(r64(R.cross_entropy(np.full((1, 3), -INF, F32), np.array([0]))))  # whole row
    assert r64(R.cross_entropy(x, np.array([0]), label_smoothing=0.1)) == INF  # smoothing sees it
    for bad in ([[0, INF, 1]], [[0, np.nan, 1]]):  # no finite max to shift by: the row is NaN
        assert np.isnan(r64(R.softmax(np.array(bad, F32), dim=1))).all()
        assert np.isnan(r64(R.cross_entropy(np.array(bad, F32), np.array([0])))).all()
    sm = r64(R.softmax(x, dim=1))
    assert sm[0, 1] == 0 and abs(sm.sum() - 1) < 1e-15
    assert r64(R.log_softmax(x, dim=1))[0, 1] == -INF


def test_absent_terms_vs_zero_coefficients():
    """Absent terms (non-target classes, ignored positions) contribute 0 whatever their log p;
    present terms multiply out with IEEE rules, as torch does: weight 0 times inf is NaN."""
    x = np.array([[0, -INF, 1]], F32)
    assert abs(r64(R.cross_entropy(x, np.array([0]), weight=np.array([1, 0, 1], F32))) - math.log1p(math.e)) < 1e-15
    v = r64(R.cross_entropy(x, np.array([0]), weight=np.array([1, 0, 1], F32), label_smoothing=0.3, reduction="sum"))
    assert math.isnan(v)  # the smoothing part holds 0 * inf for the masked class
    assert math.isnan(r64(R.cross_entropy(x, np.array([1]), weight=np.array([1, 0, 1], F32), reduction="sum")))
    p = np.array([[0.5, 0, 0.5]], F32)
    assert math.isnan(r64(R.cross_entropy(x, p, reduction="sum")))  # 0 * log 0 in a probability target
    assert r64(R.cross_entropy(x, np.array([-100]), reduction="sum")) == 0  # an ignored row is absent


def test_gradient_of_a_mean_over_nothing():
    x = np.array([[1, 2], [2, 1]], F32)
    # every position ignored: absent terms, gradient exactly 0 (the loss itself is NaN)
    g = R.evaluate_grad("cross_entropy", x, np.array([-100, -100]))
    assert np.array_equal(g.rounded.astype(float), np.zeros((2, 2)))
    # present targets with weight 0: D = 0, the gradient is 0 * (1/0) -> NaN
    g = R.evaluate_grad("nll_loss", x, np.array([0, 1]), weight=np.array([0, 0], F32))
    assert np.isnan(g.rounded.astype(float)[[0, 1], [0, 1]]).all() and (g.rounded.astype(float)[[0, 1], [1, 0]] == 0).all()


def test_ignore_index_variants():
    x = np.array([[1, 2, 3], [3, 2, 1]], F32)
    both = np.array([-100, -100])
    assert math.isnan(r64(R.cross_entropy(x, both)))  # mean over nothing
    assert r64(R.cross_entropy(x, both, reduction="sum")) == 0
    assert np.array_equal(r64(R.cross_entropy(x, both, reduction="none")), [0, 0])
    # an in-range ignore_index and one >= C
    a = r64(R.cross_entropy(x, np.array([1, 2]), ignore_index=1, reduction="mean"))
    b = r64(R.cross_entropy(x[1:], np.array([2]), reduction="mean"))
    assert a == b
    c = r64(R.cross_entropy(x, np.array([7, 2]), ignore_index=7, reduction="sum"))
    assert c == b
    with pytest.raises(ValueError, match="target: class index 7 is out of range"):
        R.cross_entropy(x, np.array([7, 2]))


def test_zero_weights_and_mixed_sign_weights():
    x = np.array([[1, 2], [1, 3]], F32)
    w0 = np.array([0, 0], F32)
    assert math.isnan(r64(R.cross_entropy(x, np.array([0, 1]), weight=w0)))  # D = 0
    # weights [1, -1] on mirrored rows give +l and -l: the sum cancels exactly, and the oracle
    # must settle it to exactly 0 (both precisions compute the same l twice), not undetermined
    xx = np.array([[1, 2], [2, 1]], F32)
    w = np.array([1, -1], F32)
    none = R.evaluate("cross_entropy", xx, np.array([0, 1]), weight=w, reduction="none")
    assert r64(none.values)[0] == -r64(none.values)[1] == math.log1p(math.e)
    tot = R.evaluate("cross_entropy", xx, np.array([0, 1]), weight=w, reduction="sum")
    assert not tot.undetermined.any() and r64(tot.values) == 0.0
    # and a partial cancellation settles to the exact difference
    part = R.evaluate("cross_entropy", np.array([[1, 2], [1, 2]], F32), np.array([0, 1]), weight=w, reduction="sum")
    with mpmath.workprec(300):
        want = mpmath.log(1 + mpmath.e) - mpmath.log(1 + mpmath.exp(-1))
    assert not part.undetermined.any() and r64(part.values) == float(want)


def test_label_smoothing_with_weight_and_ignore_matches_torch_formula():
    x = np.array([[1, 2], [1, 3]], F32)
    v = r64(R.cross_entropy(x, np.array([5, 1]), ignore_index=5, label_smoothing=0.2, weight=np.array([1, 2], F32)))
    lp = [3 - math.log(math.e + math.e ** 3) - 2, 3 - math.log(math.e + math.e ** 3)]  # row 2 logp
    lp = [1 - math.log(math.e + math.e ** 3), 3 - math.log(math.e + math.e ** 3)]
    nll = -2 * lp[1]
    smooth = -(1 * lp[0] + 2 * lp[1])
    assert abs(v - (0.8 * nll + 0.1 * smooth) / 2) < 1e-15  # D = w[1] = 2


def test_bce_clamp_and_bce_with_logits_at_infinity():
    assert r64(R.binary_cross_entropy(np.array([0.0], F32), np.array([1.0], F32), reduction="sum")) == 100
    assert r64(R.binary_cross_entropy(np.array([1.0], F32), np.array([0.0], F32), reduction="sum")) == 100
    assert r64(R.binary_cross_entropy(np.array([0.0], F32), np.array([0.0], F32), reduction="sum")) == 0
    x = np.array([INF, INF, -INF, -INF], F32)
    y = np.array([1, 0, 1, 0], F32)
    # the documented formula in IEEE arithmetic: (1-y) * log(1 - s(x)) is 0 * -inf at x=+inf, y=1
    got = r64(R.binary_cross_entropy_with_logits(x, y, reduction="none"))
    assert math.isnan(got[0]) and got[1] == INF and got[2] == INF and math.isnan(got[3])
    # BCE-with-logits at x = -100, y = 1: softplus(100) exactly, not the BCE clamp's 100
    v = r64(R.binary_cross_entropy_with_logits(np.array([-100.0]), np.array([1.0]), reduction="sum"))
    assert v == 100 + float(mpmath.log1p(mpmath.exp(-100)))


def test_unbatched_and_spatial_shapes():
    x = np.array([1, 2, 3], F32)
    ex = R.evaluate("cross_entropy", x, np.array(2), reduction="none")
    assert ex.shape == ()
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    t = rng.integers(0, 3, (2, 4, 5))
    none = R.evaluate("cross_entropy", xs, t, reduction="none")
    assert none.shape == (2, 4, 5)
    # the same positions laid out as a plain (N, C) batch give the same values
    flat = R.evaluate("cross_entropy", np.moveaxis(xs, 1, -1).reshape(-1, 3), t.reshape(-1), reduction="none")
    assert np.array_equal(none.rounded.reshape(-1), flat.rounded)
    g = R.evaluate_grad("cross_entropy", xs, t, reduction="mean")
    assert g.shape == xs.shape


def test_out_dtype_settles_for_a_finer_format():
    x = np.array([[0.1, 0.2, 0.3]], np.float16)
    a = R.evaluate("cross_entropy", x, np.array([1]), out_dtype="float64")
    b = R.evaluate("cross_entropy", x.astype(np.float64), np.array([1]))
    assert a.rounded.dtype == np.float64 and a.rounded == b.rounded


def test_undetermined_is_flagged_never_guessed(monkeypatch):
    """With a precision cap too low to settle anything in stage 1, values are NaN and flagged."""
    monkeypatch.setattr(settle, "PREC_CAP", 40)
    # the cliff log1p(2 e^-50) settles in the vectorised stages: take them away, so that it needs
    # stage 1, which the cap forbids
    monkeypatch.setattr(settle, "_float_stages", lambda fmt: [])
    x = np.array([[50, 0, 0]], np.float64)
    ex = R.evaluate("cross_entropy", x, np.array([0]), reduction="none")
    assert ex.undetermined.all() and np.isnan(ex.rounded).all()
    assert mpmath.isnan(ex.values[0])


def test_exact_serialises_bit_exactly():
    ex = R.evaluate("log_softmax", np.array([[1e-3, -INF, 40, 1e4]], F32), dim=1)
    back = R.Exact.from_dict(ex.to_dict())
    assert all(a == b or (mpmath.isnan(a) and mpmath.isnan(b)) for a, b in zip(ex.values.ravel(), back.values.ravel()))
    assert np.array_equal(back.rounded, ex.rounded) and np.array_equal(back.cond, ex.cond)
    with mpmath.workprec(200):
        third = mpmath.mpf(1) / 3
    assert mpf_from_str(mpf_to_str(third)) == third  # 200 bits survive, whatever mp.prec is now
    with pytest.raises(ValueError, match="malformed|schema"):
        R.Exact.from_dict({"schema": "losscheck.exact/1", "shape": [2]})


@pytest.mark.parametrize("loss, args, kwargs", [
    ("cross_entropy", (np.zeros((0, 3), np.float32), np.zeros(0, np.int64)), {"reduction": "none"}),
    ("cross_entropy", (np.zeros((0, 3), np.float32), np.zeros(0, np.int64)), {"reduction": "mean"}),
    ("cross_entropy", (np.zeros((0, 3), np.float32), np.zeros(0, np.int64)), {"reduction": "sum"}),
    ("nll_loss", (np.zeros((0, 3), np.float32), np.zeros(0, np.int64)), {"reduction": "none"}),
    ("mse_loss", (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)), {"reduction": "none"}),
    ("mse_loss", (np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)), {"reduction": "mean"}),
    ("softmax", (np.zeros((2, 0), np.float32),), {"dim": 1}),
    ("log_softmax", (np.zeros((0, 4), np.float32),), {"dim": 1}),
    ("kl_div", (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)), {"reduction": "none"}),
])
def test_empty_inputs_give_torchs_empty_or_reduced_results(loss, args, kwargs):
    """N = 0 or an empty softmax dim: torch returns empty tensors (or the empty sum 0, the empty
    mean NaN); so does the oracle, for the value and every gradient."""
    import torch
    import torch.nn.functional as F

    ts = [torch.from_numpy(a.copy()) for a in args]
    for t in ts:
        if t.is_floating_point():
            t.requires_grad_(True)
    out = getattr(F, loss)(*ts, **kwargs)
    ex = R.evaluate(loss, *args, **kwargs)
    assert ex.rounded.shape == tuple(out.shape)
    np.testing.assert_array_equal(ex.rounded.astype(np.float64), out.detach().double().numpy())
    go = np.ones(tuple(out.shape), np.float32)
    out.backward(torch.from_numpy(go))
    names = [a.name for a in R.registry.get(loss).positional]
    for arg in R.registry.get(loss).differentiable_for(args, kwargs):
        g = R.evaluate_grad(loss, *args, grad_output=go, wrt=arg, **kwargs)
        want = ts[names.index(arg)].grad
        assert g.rounded.shape == tuple(want.shape)
        np.testing.assert_array_equal(g.rounded.astype(np.float64), want.double().numpy())


@pytest.mark.parametrize("weight", [[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]], ids=["zero", "mixed_sign_sum_0"])
def test_mean_over_zero_total_weight_has_nan_gradient_like_torch(weight):
    """label smoothing + weights + mean with D = sum w[t] = 0: the loss is NaN or +-inf whatever
    the input, its derivative undefined: NaN everywhere, as torch's autograd says (ignored
    positions keep their exact 0)."""
    import torch
    import torch.nn.functional as F

    x = np.random.default_rng(3).standard_normal((3, 3))
    t = np.array([0, 1, -100])
    w = np.array(weight)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out = F.cross_entropy(xt, torch.from_numpy(t), weight=torch.from_numpy(w), label_smoothing=0.1)
    out.backward()
    ex = R.evaluate("cross_entropy", x, t, weight=w, label_smoothing=0.1)
    np.testing.assert_array_equal(ex.rounded, out.detach().numpy())
    g = R.evaluate_grad("cross_entropy", x, t, weight=w, label_smoothing=0.1).rounded
    want = xt.grad.numpy().copy()
    want[2] = 0.0  # torch's NaN reaches the ignored row too; the oracle keeps an absent term's 0
    assert np.isnan(g[:2]).all() and np.isnan(want[:2]).all()
    np.testing.assert_array_equal(g[2], want[2])


def test_probability_targets_refuse_a_non_negative_ignore_index_like_torch():
    import torch
    import torch.nn.functional as F

    x, p = np.zeros((2, 3)), np.full((2, 3), 1 / 3)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(torch.from_numpy(x), torch.from_numpy(p), ignore_index=0)
    with pytest.raises(ValueError, match=r"^ignore_index: 0 is not supported with probability targets"):
        R.cross_entropy(x, p, ignore_index=0)
    assert R.cross_entropy(x, p, ignore_index=-1) == R.cross_entropy(x, p)  # torch accepts negatives


def test_targets_must_be_int64_and_ignore_index_an_integer():
    x = np.zeros((2, 3), np.float32)
    big = np.array([2**64 - 100, 1], np.uint64)  # used to wrap to -100 and be ignored
    with pytest.raises(ValueError, match="^target: expected int64 class indices"):
        R.cross_entropy(x, big)
    with pytest.raises(ValueError, match="^ignore_index: must be an integer, got nan"):
        R.cross_entropy(x, np.array([0, 1]), ignore_index=float("nan"))


def test_probability_targets_of_any_mass_match_torch_element_by_element():
    """torch does not normalise probability targets (rows of mass 0, 0.5, 3, counts above 1): the
    oracle's -sum_c w_c ((1-eps) y_c + eps/C) log p_c agrees with float64 torch on every element,
    value and both gradients, with smoothing and class weights (ce.probability_mass's cases)."""
    import torch
    import torch.nn.functional as F

    import cases
    suite = [c for c in cases.build_suite("gate") if c.family == "ce.probability_mass" and c.dtype == "float64"]
    assert len(suite) >= 8
    for case in suite:
        x, y = (torch.from_numpy(np.array(a)).requires_grad_() for a in case.args)
        kw = {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
        out = F.cross_entropy(x, y, **kw)
        out.backward(torch.from_numpy(np.array(case.grad_output)))
        want = {"value": out.detach().numpy(), "input": x.grad.numpy(), "target": y.grad.numpy()}
        got = {"value": R.evaluate("cross_entropy", *case.args, **case.kwargs).rounded}
        for wrt in ("input", "target"):
            got[wrt] = R.evaluate_grad("cross_entropy", *case.args, grad_output=case.grad_output, wrt=wrt,
                                       **case.kwargs).rounded
        for k, w in want.items():
            np.testing.assert_allclose(got[k], w, rtol=1e-12, atol=1e-12, err_msg=f"{case.id} {k}")
