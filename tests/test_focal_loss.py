"""sigmoid_focal_loss (torchvision.ops): the oracle against a float64 transcription of torchvision's
function (values and both gradients, every reduction, gamma and alpha), against the module's brute
force at high precision on every case family, refusals, and the careful NumPy implementation."""
import math
import types

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference as R
from reference.formats import round_mpf
from reference.registry import get
from reference.sampling import grad_output as draw_grad_output

D = get("sigmoid_focal_loss")
SIZE = types.SimpleNamespace(name="test", batch=2, repeats=1)
U = 2.0 ** -53
GAMMAS = (0, 0.5, 1, 2, 5)
ALPHAS = (-1, 0.25, 0.5)


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """Transcribed from pytorch/vision torchvision/ops/focal_loss.py (sigmoid_focal_loss body)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "none":
        pass
    elif reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    else:
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported reduction modes: "
                         f"'none', 'mean', 'sum'")
    return loss


def same(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _tv(x, t, kw, go):
    X, T = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    out = torchvision_sigmoid_focal_loss(X, T, **kw)
    out.backward(torch.tensor(go))
    return out.detach().numpy(), X.grad.numpy(), T.grad.numpy()


def _close(got, want, cond, tol=64):
    with np.errstate(invalid="ignore"):
        return same(got, want) | (np.abs(got - want) <= tol * U * (cond + np.abs(got)) + 1e-300)


def test_registered():
    assert "sigmoid_focal_loss" in R.LOSSES
    assert D.checks == ("value", "grad:input", "grad:target")
    assert set(D.families) == {"focal.detection", "focal.confident", "focal.soft"}
    assert D.defaults() == {"alpha": 0.25, "gamma": 2, "reduction": "none"}


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("reduction", ("none", "sum", "mean"))
def test_against_torchvision_transcription(gamma, alpha, reduction):
    """Moderate logits (torch's 1 - p_t loses at most a few ulps relative to the loss there)."""
    rng = np.random.default_rng(abs(hash((gamma, alpha, reduction))) % 2**32)
    for shape in [(3, 4), (2, 3, 2), (5,), ()]:
        x = rng.normal(0, 2, shape)
        t = rng.uniform(0, 1, shape)
        if shape:
            t.reshape(-1)[:2] = [0.0, 1.0][: t.size]
        kw = {"alpha": alpha, "gamma": gamma, "reduction": reduction}
        go = rng.uniform(0.25, 2.0, D.output_shape((x, t), kw))
        v, gx, gt = _tv(x, t, kw, go)
        ex = R.evaluate("sigmoid_focal_loss", x, t, **kw)
        assert ex.rounded.shape == np.shape(v)
        # torch forms 1 - p_t by subtraction: relative error ~u/q, within 1e-9 for |x| < 10
        assert np.allclose(ex.rounded, v, rtol=1e-9, atol=0), (kw, ex.rounded, v)
        for wrt, tg in (("input", gx), ("target", gt)):
            g = R.evaluate_grad("sigmoid_focal_loss", x, t, grad_output=go, wrt=wrt, **kw)
            assert g.rounded.shape == tg.shape
            assert np.allclose(g.rounded, tg, rtol=1e-8, atol=1e-12), (kw, wrt, g.rounded, tg)


def test_confident_logits_exact_where_torch_rounds_q_to_zero():
    x, t = np.array([40.0, -40.0]), np.array([1.0, 0.0])
    for gamma in (0.5, 2.0):
        v = R.evaluate("sigmoid_focal_loss", x, t, gamma=gamma, alpha=-1).rounded
        want = [float(mpmath.log1p(mpmath.exp(-40)) * (1 / (1 + mpmath.exp(40))) ** gamma)] * 2
        assert np.allclose(v, want, rtol=1e-15) and np.all(v > 0)
        tv, gx, _ = _tv(x, t, {"gamma": gamma, "alpha": -1}, np.ones(2))
        assert np.all(tv == 0)  # torch: 1 - p_t = 0
        g = R.evaluate_grad("sigmoid_focal_loss", x, t, wrt="input", gamma=gamma, alpha=-1).rounded
        assert np.all(np.isfinite(g))
        if gamma < 1:
            assert not np.isfinite(gx).all()  # torch's autograd: gamma q^(gamma-1) at q = 0


def test_gamma_zero_dyadic_target_gradient():
    x = np.array([1 + 2.0 ** -23], np.float32)
    go = np.array([1.5], np.float32)
    g = R.evaluate_grad("sigmoid_focal_loss", x, np.array([1.0], np.float32), grad_output=go, wrt="target",
                        gamma=0, alpha=-1)
    assert not g.undetermined.any() and g.rounded[0] == np.float32(-(1.5 + 2.0 ** -22))


def test_refusals():
    x = np.zeros((2, 3))
    for kw, arg in [({"reduction": "median"}, "reduction"), ({"gamma": -1.0}, "gamma"),
                    ({"gamma": float("nan")}, "gamma"), ({"alpha": "a"}, "alpha"), ({"alpha": True}, "alpha"),
                    ({"beta": 1}, "beta")]:
        with pytest.raises(ValueError, match=rf"^{arg}: "):
            D.validate((x, x), kw)
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        D.validate((x, x), {"reduction": "median"})
    with pytest.raises(ValueError, match="Invalid Value for arg 'reduction'"):
        torchvision_sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduction="median")
    for bad_t in (np.full((2, 3), 1.5), np.full((2, 3), -0.5), np.full((2, 3), np.nan)):
        with pytest.raises(ValueError, match=r"^target: "):
            D.validate((x, bad_t), {})
    with pytest.raises(ValueError, match=r"^target: "):  # prepare_pair's generic argument name
        D.validate((x, np.zeros((3, 2))), {})
    with pytest.raises(ValueError, match=r"^target: "):
        D.validate((x, np.zeros((2, 3), np.float32)), {})
    with pytest.raises(ValueError, match=r"^input: "):
        D.validate((np.full((2, 3), np.inf), x), {})
    D.validate((x, x), {"alpha": -1, "gamma": 0})


def _brute_rounded(call, wrt, go, dtype):
    outs = []
    # 2000 and 3000 bits: at x = 1000 a term e^-1000 = 2^-1443 next to a float64 product such as
    # 0.75 g (a rounding midpoint) decides the rounding, and 1000 bits cannot see it
    for prec in (2000, 3000):
        with mpmath.workprec(prec):
            b = D.brute(call.args, call.kwargs, grad_output=go, wrt=wrt)
        outs.append(np.array([round_mpf(v, dtype) for v in b.reshape(-1)]).reshape(b.shape))
    assert same(*outs).all(), "brute force did not settle"
    return outs[1]


FAMILY_CALLS = [(fam, dt, D.families[fam].fn(np.random.default_rng(12345), dt, SIZE))
                for fam in sorted(D.families) for dt in R.DTYPES]


@pytest.mark.parametrize("fam,dtype,calls", FAMILY_CALLS, ids=[f"{f}-{d}" for f, d, _ in FAMILY_CALLS])
def test_families_match_brute_force(fam, dtype, calls):
    rng = np.random.default_rng(7)
    for k, call in enumerate(calls):
        D.validate(call.args, call.kwargs)
        assert D.option_family(call.args, call.kwargs) in D.option_families
        ex = R.evaluate("sigmoid_focal_loss", *call.args, **call.kwargs)
        assert not ex.undetermined.any(), (fam, dtype, k)
        want = _brute_rounded(call, None, None, dtype)
        assert same(ex.rounded, want).all(), (fam, dtype, k, ex.rounded, want)
        go = draw_grad_output(rng, D.output_shape(call.args, call.kwargs), dtype).astype(np.float64)
        for wrt in ("input", "target"):
            g = R.evaluate_grad("sigmoid_focal_loss", *call.args, grad_output=go, wrt=wrt, **call.kwargs)
            assert not g.undetermined.any(), (fam, dtype, k, wrt)
            want = _brute_rounded(call, wrt, go, dtype)
            assert same(g.rounded, want).all(), (fam, dtype, k, wrt, g.rounded, want)


def test_numpy_careful_matches_oracle_float64():
    from harness.backends.numpy_numerics import CAREFUL as nx

    rng = np.random.default_rng(3)
    for fam in D.families:
        for call in D.families[fam].fn(rng, "float64", SIZE):
            ex = R.evaluate("sigmoid_focal_loss", *call.args, **call.kwargs)
            got = np.asarray(D.numpy_value(nx, *call.args, **call.kwargs), np.float64)
            assert _close(got, ex.rounded.astype(np.float64), ex.cond, 8).all(), (fam, call.kwargs)
            go = draw_grad_output(rng, D.output_shape(call.args, call.kwargs), "float64")
            grads = D.numpy_grads(nx, *call.args, grad_output=go, **call.kwargs)
            for wrt in ("input", "target"):
                w = R.evaluate_grad("sigmoid_focal_loss", *call.args, grad_output=go, wrt=wrt, **call.kwargs)
                assert _close(grads[wrt], w.rounded, w.cond, 16).all(), (fam, call.kwargs, wrt)


def test_strategy_smoke():
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(D.strategy(dtype="float32"))
    def run(call):
        D.validate(call.args, call.kwargs)
        ex = R.evaluate("sigmoid_focal_loss", *call.args, **call.kwargs)
        assert not ex.undetermined.any()
        assert same(ex.rounded, _brute_rounded(call, None, None, "float32")).all()
    run()
    assert math.isfinite(1.0)
