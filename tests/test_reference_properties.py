"""Property tests of the oracle: agreement with torch in float64, independent formulations at high
precision, and the gradient against numerical differentiation."""

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference as R
from reference import registry
from reference.numerics import MP
from reference.settle import Evaluation

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def r64(v):
    return R.to_dtype(v, "float64").astype(float)


def tt(a):
    if a is None:
        return None
    a = np.array(a)  # keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)
    return torch.from_numpy(a)


@st.composite
def class_calls(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    spatial = draw(st.sampled_from([(), (3,), (2, 2)]))
    x = rng.standard_normal((n, c) + spatial) * draw(st.sampled_from([1.0, 4.0]))
    loss = draw(st.sampled_from(["cross_entropy", "nll_loss"]))
    prob = loss == "cross_entropy" and draw(st.booleans())
    kw = {"reduction": draw(st.sampled_from(["none", "sum", "mean"]))}
    if draw(st.booleans()):
        kw["weight"] = rng.uniform(0.1, 2.0, c)
    if prob:
        t = rng.dirichlet(np.ones(c), (n,) + spatial)
        t = np.moveaxis(t, -1, 1)
    else:
        t = rng.integers(0, c, (n,) + spatial)
        if draw(st.booleans()):
            ii = draw(st.sampled_from([-100, 0, c + 3]))
            kw["ignore_index"] = ii
            t = np.where(rng.random(t.shape) < 0.3, ii, t)
    if loss == "cross_entropy" and draw(st.booleans()):
        kw["label_smoothing"] = draw(st.sampled_from([0.1, 0.2, 1.0]))
    return loss, x, t, kw


def torch_value_and_grad(loss, x, t, kw, go, wrt="input"):
    """torch's value and its gradient w.r.t. ``wrt`` (input, or a floating target)."""
    xt = tt(x).clone().requires_grad_(wrt == "input")
    tt_ = None if t is None else tt(t).clone().requires_grad_(wrt == "target")
    tkw = {k: (tt(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    out = getattr(F, loss)(xt, *([] if t is None else [tt_]), **tkw)
    out.backward(tt(go))
    return out.detach().numpy(), (xt if wrt == "input" else tt_).grad.numpy()


def agree(exact, torch_vals, rtol):
    ours = exact.rounded.astype(np.float64)
    np.testing.assert_allclose(ours, torch_vals, rtol=rtol, atol=1e-13, equal_nan=True)


# torch's float64 kernels are accurate to a few ulps on these moderate inputs (|x| <= ~16, C <= 6);
# 1e-12 relative is ~4500 ulps of float64: loose enough for torch's own rounding, far too tight for
# any semantic difference (a wrong denominator or a dropped smoothing term moves values by >1e-3).
RTOL = 1e-12


@SETTINGS
@given(class_calls())
def test_class_losses_agree_with_torch_float64(call):
    loss, x, t, kw = call
    if (t == kw.get("ignore_index", -100)).all() and kw.get("reduction") == "mean" and t.dtype.kind == "i":
        pass  # all ignored: NaN on both sides, still compared below
    ex = R.evaluate(loss, x, t, **kw)
    go = np.random.default_rng(1).uniform(0.5, 2, ex.shape)
    tv, tg = torch_value_and_grad(loss, x, t, kw, go)
    agree(ex, tv, RTOL)
    eg = R.evaluate_grad(loss, x, t, grad_output=go, **kw)
    agree(eg, tg, RTOL)
    if t.dtype.kind == "f":  # probability targets: torch differentiates them too
        _, tgt = torch_value_and_grad(loss, x, t, kw, go, wrt="target")
        agree(R.evaluate_grad(loss, x, t, grad_output=go, wrt="target", **kw), tgt, RTOL)


@st.composite
def elementwise_calls(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from([(4,), (3, 4), (2, 3, 2)]))
    loss = draw(st.sampled_from(["binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss"]))
    kw = {"reduction": draw(st.sampled_from(["none", "sum", "mean"]))}
    if loss == "binary_cross_entropy":
        x = rng.uniform(0.001, 0.999, shape)
        y = rng.uniform(0, 1, shape) if draw(st.booleans()) else rng.integers(0, 2, shape).astype(float)
    elif loss == "binary_cross_entropy_with_logits":
        x = rng.standard_normal(shape) * 8
        y = rng.uniform(0, 1, shape)
        if draw(st.booleans()):
            kw["pos_weight"] = rng.uniform(0, 3, shape[-1:])
    else:
        x, y = rng.standard_normal(shape) * 10, rng.standard_normal(shape)
    if loss != "mse_loss" and draw(st.booleans()):
        kw["weight"] = rng.uniform(0, 2, shape[-1:])
    return loss, x, y, kw


@SETTINGS
@given(elementwise_calls())
def test_elementwise_losses_agree_with_torch_float64(call):
    loss, x, y, kw = call
    ex = R.evaluate(loss, x, y, **kw)
    go = np.random.default_rng(2).uniform(0.5, 2, ex.shape)
    tv, tg = torch_value_and_grad(loss, x, y, kw, go)
    agree(ex, tv, RTOL)
    agree(R.evaluate_grad(loss, x, y, grad_output=go, **kw), tg, RTOL)
    _, tgt = torch_value_and_grad(loss, x, y, kw, go, wrt="target")  # every one of these has grad:target
    agree(R.evaluate_grad(loss, x, y, grad_output=go, wrt="target", **kw), tgt, RTOL)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from([(5,), (3, 4), (2, 3, 4), (2, 2, 3, 2)]),
       st.sampled_from(["softmax", "log_softmax"]), st.data())
def test_softmax_family_agrees_with_torch_float64(seed, shape, loss, data):
    x = np.random.default_rng(seed).standard_normal(shape) * 6
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    ex = R.evaluate(loss, x, dim=dim)
    go = np.random.default_rng(seed + 1).uniform(-1, 2, shape)
    tv, tg = torch_value_and_grad(loss, x, None, {"dim": dim}, go)
    agree(ex, tv, RTOL)
    agree(R.evaluate_grad(loss, x, dim=dim, grad_output=go), tg, RTOL)


# ---- independent formulations, at high precision ------------------------------------------------

def textbook_ce_row(row, t):
    """-log(exp(x_t) / sum exp(x_j)) with no shift and no log1p: a different evaluation order."""
    return -mpmath.log(mpmath.exp(row[t]) / mpmath.fsum(mpmath.exp(v) for v in row))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_settled_ce_equals_textbook_formula_at_300_bits(dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((40, 7)) * 6).astype(R.FORMATS[dtype].np_dtype)
    x[0] = [30, 0, 0, 0, 0, 0, 0]  # the confident-row cliff (tiny loss)
    t = rng.integers(0, 7, 40)
    t[0] = 0
    ex = R.evaluate("cross_entropy", x, t, reduction="none")
    with mpmath.workprec(300):
        want = np.array([textbook_ce_row([mpmath.mpf(float(v)) for v in r], k) for r, k in zip(x, t)], dtype=object)
        assert np.array_equal(R.to_dtype(want, dtype).view(np.uint8), ex.rounded.view(np.uint8))
        rel = max(abs(a - b) / abs(b) for a, b in zip(ex.values, want))
    # values carry enough bits to settle the format (not more): within half an ulp, relatively
    assert rel < 2.0 ** -R.FORMATS[dtype].p


def test_log_softmax_equals_log_of_softmax_at_high_precision():
    x = np.random.default_rng(3).standard_normal((6, 9)) * 10
    ls = R.evaluate("log_softmax", x, dim=1)
    with mpmath.workprec(200):
        rows = [[mpmath.mpf(float(v)) for v in r] for r in x]
        want = [[mpmath.log(mpmath.exp(v) / mpmath.fsum(mpmath.exp(u) for u in r)) for v in r] for r in rows]
    # settled values round alike; the two formulations differ only below the format's precision
    assert np.array_equal(R.to_dtype(np.array(want, dtype=object), "float64"), ls.rounded)


def test_bce_log1p_form_equals_plain_log_at_high_precision():
    x = np.array([1e-30, 1e-8, 0.3, 1 - 2.0 ** -40, 0.999999])
    y = np.array([0.0, 0.25, 1.0, 0.0, 0.5])
    ex = R.evaluate("binary_cross_entropy", x, y, reduction="none")
    want = []
    with mpmath.workprec(400):
        for xi, yi in zip(x, y):
            xi, yi = mpmath.mpf(float(xi)), mpmath.mpf(float(yi))
            want.append(-(yi * max(mpmath.log(xi), -100) + (1 - yi) * max(mpmath.log(1 - xi), -100)))
    assert np.array_equal(R.to_dtype(np.array(want, dtype=object), "float64"), ex.rounded)


def test_bce_with_logits_equals_sigmoid_form_at_high_precision():
    x = np.array([-700.0, -50, -1, 0, 3, 40, 700])
    y = np.array([1.0, 0.5, 0, 1, 0.25, 0, 1])
    pw = np.array([2.5])
    ex = R.evaluate("binary_cross_entropy_with_logits", x, y, pos_weight=pw, reduction="none")
    want = []
    with mpmath.workprec(2000):
        for xi, yi in zip(x, y):
            s = 1 / (1 + mpmath.exp(-mpmath.mpf(float(xi))))
            want.append(-(2.5 * yi * mpmath.log(s) + (1 - yi) * mpmath.log(1 - s)))
    assert np.array_equal(R.to_dtype(np.array(want, dtype=object), "float64"), ex.rounded)


# ---- gradients against numerical differentiation ---------------------------------------------

def numerical_grad(loss, args, kwargs, go, prec=120, wrt="input"):
    """d/da_i of <go, loss(a)> by mpmath.diff for argument ``wrt``, through the kernel in mpmath."""
    d = registry.get(loss)
    problem = d.prepare(args, kwargs)
    ev = Evaluation(problem, d.kernel(problem))
    key = "x" if wrt == "input" else ("y" if "y" in problem.rows else "p")  # the argument's rows
    base = problem.rows[key]
    go_rows = np.asarray(go, np.float64)
    if problem.reduction == "elementwise":
        go_rows = problem.go_rows(go_rows)
    go_rows = go_rows.reshape(ev.compute(MP)[0].shape) if problem.reduction != "elementwise" else go_rows
    out = np.empty(base.shape, dtype=object)
    with mpmath.workprec(prec):
        for idx in np.ndindex(base.shape):
            def f(t, idx=idx):
                xo = MP.asarray(base).copy()
                xo[idx] = t
                problem.rows[key] = xo
                v = ev.compute(MP)[0]
                return mpmath.fsum(a * mpmath.mpf(float(g)) for a, g in zip(v.ravel(), go_rows.ravel()))
            out[idx] = mpmath.diff(f, mpmath.mpf(float(base[idx])))
    problem.rows[key] = base
    return problem.to_input(out)


@pytest.mark.parametrize("loss,args,kwargs", [
    ("cross_entropy", (np.array([[0.5, -1, 2], [3, 0.25, -2]]), np.array([2, 0])),
     {"weight": np.array([0.5, 2, 1]), "label_smoothing": 0.2, "reduction": "mean"}),
    ("cross_entropy", (np.array([[0.5, -1, 2], [3, 0.25, -2]]), np.array([[0.2, 0.3, 0.5], [1, 0, 0]])),
     {"reduction": "none"}),
    ("nll_loss", (np.array([[0.5, -1, 2], [3, 0.25, -2]]), np.array([1, -100])), {"reduction": "sum"}),
    ("binary_cross_entropy", (np.array([0.2, 0.7, 0.01]), np.array([1.0, 0.25, 0])), {"reduction": "mean"}),
    ("binary_cross_entropy_with_logits", (np.array([-3.0, 0.5, 20]), np.array([1.0, 0.25, 0])),
     {"pos_weight": np.array([2.0]), "reduction": "none"}),
    ("softmax", (np.array([[1.0, 2, 3], [0, -1, 5]]),), {"dim": 0}),
    ("log_softmax", (np.array([[1.0, 2, 3], [0, -1, 5]]),), {"dim": 1}),
    ("mse_loss", (np.array([1.0, -2, 3]), np.array([0.5, 0.5, 0.5])), {"reduction": "sum"}),
    ("binary_cross_entropy", (np.array([0.2, 0.7, 0.01]), np.array([1.0, 0.25, 0])),
     {"weight": np.array([0.5, 2, 1]), "reduction": "sum"}),
    ("binary_cross_entropy_with_logits", (np.array([-3.0, 0.5, 20]), np.array([1.0, 0.25, 0])),
     {"reduction": "mean"}),
])
def test_gradient_matches_numerical_differentiation(loss, args, kwargs):
    ex = R.evaluate(loss, *args, **kwargs)
    go = np.random.default_rng(5).uniform(0.5, 2.0, ex.shape)
    for wrt in registry.get(loss).differentiable_for(args, kwargs):  # input, and target where floating
        g = R.evaluate_grad(loss, *args, grad_output=go, wrt=wrt, **kwargs)
        num = numerical_grad(loss, args, kwargs, go, wrt=wrt)
        with mpmath.workprec(120):
            for a, b in zip(g.values.ravel(), num.ravel()):
                assert abs(a - b) <= 1e-15 * max(1, abs(b)), (wrt, a, b)
