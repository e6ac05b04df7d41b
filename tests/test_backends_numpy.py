"""The NumPy backends: `numpy` matches torch's semantics and is accurate, `numpy-naive` is not."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_backends_support import NUMPY, case, ordinal, torch_of

import reference
from harness.backends import load
from harness.backends.numpy_numerics import round_to
from reference import registry

RNG = np.random.default_rng(1234)


def _configs():
    """(id, loss, args (float64), kwargs, output shape for reduction='none' or None)."""
    x = RNG.normal(size=(6, 5)) * 4
    t = RNG.integers(0, 5, size=6)
    t_ign = t.copy()
    t_ign[[1, 4]] = 2  # ignore_index=2 below, also a real class elsewhere
    w = RNG.uniform(0.3, 2.0, size=5)
    prob = RNG.dirichlet(np.ones(5), size=6)
    xs = RNG.normal(size=(2, 4, 3, 2)) * 3
    ts = RNG.integers(0, 4, size=(2, 3, 2))
    ts[0, 1, 1] = -100
    p = RNG.uniform(0.01, 0.99, size=(6, 5))
    y = RNG.uniform(0, 1, size=(6, 5))
    out = []
    ce = [("plain", (x, t), {}), ("weight", (x, t), {"weight": w}),
          ("ignore_index", (x, t_ign), {"ignore_index": 2}),
          ("label_smoothing", (x, t), {"label_smoothing": 0.15}),
          ("ii+ls+w", (x, t_ign), {"ignore_index": 2, "label_smoothing": 0.3, "weight": w}),
          ("probability_target", (x, prob), {}),
          ("prob+ls+w", (x, prob), {"label_smoothing": 0.2, "weight": w}),
          ("spatial", (xs, ts), {"weight": w[:4], "label_smoothing": 0.1}),
          ("spatial_prob", (xs, RNG.dirichlet(np.ones(4), size=(2, 3, 2)).transpose(0, 3, 1, 2)), {}),
          ("unbatched", (x[0], np.array(3)), {"label_smoothing": 0.05})]
    nll = [("plain", (x, t), {}), ("weight", (x, t), {"weight": w}),
           ("ii+w", (x, t_ign), {"ignore_index": 2, "weight": w}),
           ("spatial", (xs, ts), {}), ("unbatched", (x[1], np.array(0)), {})]
    for loss, items in (("cross_entropy", ce), ("nll_loss", nll)):
        for name, args, kw in items:
            for red in ("none", "sum", "mean"):
                out.append((f"{loss}-{name}-{red}", loss, args, {**kw, "reduction": red}))
    ew = [("binary_cross_entropy", (p, y), {}), ("binary_cross_entropy", (p, y), {"weight": w}),
          ("binary_cross_entropy_with_logits", (x, y), {}),
          ("binary_cross_entropy_with_logits", (x, y), {"weight": w[None, :]}),
          ("binary_cross_entropy_with_logits", (x, y), {"pos_weight": w}),
          ("binary_cross_entropy_with_logits", (x, y), {"pos_weight": w, "weight": p}),
          ("mse_loss", (x, y), {})]
    for i, (loss, args, kw) in enumerate(ew):
        for red in ("none", "sum", "mean"):
            out.append((f"{loss}-{i}-{red}", loss, args, {**kw, "reduction": red}))
    for loss in ("softmax", "log_softmax"):
        for dim in (0, 1, -1):
            out.append((f"{loss}-dim{dim}", loss, (xs,), {"dim": dim}))
    return out


CONFIGS = _configs()


def _cast(v, dtype):
    """Floating arrays (bfloat16 included: its NumPy kind is 'V') to ``dtype``; the rest as is."""
    floating = isinstance(v, np.ndarray) and (v.dtype.kind == "f" or v.dtype == NUMPY["bfloat16"])
    return v.astype(dtype) if floating else v


def _torch(loss, args, kwargs, grad_output, grads=None):
    """torch.nn.functional's value and input gradient, in float64 numpy; with a dict ``grads``,
    also every positional floating argument's gradient, by name."""
    targs = [torch_of(a) for a in args]
    for t in targs:
        if t.is_floating_point():
            t.requires_grad_(True)
    kw = {k: torch_of(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = getattr(F, loss)(*targs, **kw)
    out.backward(torch_of(grad_output).to(out.dtype))
    if grads is not None:
        names = [a.name for a in registry.get(loss).positional]
        grads.update({n: t.grad.double().numpy() for n, t in zip(names, targs) if t.grad is not None})
    return out.detach().double().numpy(), targs[0].grad.double().numpy()


def _grad_output(loss, args, kwargs, dtype):
    targs = [torch_of(_cast(a, np.float64)) for a in args]
    kw = {k: torch_of(_cast(v, np.float64)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    shape = tuple(getattr(F, loss)(*targs, **kw).shape)
    return np.asarray(RNG.uniform(0.5, 2.0, size=shape) * RNG.choice([-1, 1], size=shape)).astype(dtype)


@pytest.mark.parametrize("cid, loss, args, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_numpy_matches_torch_in_float64(cid, loss, args, kwargs):
    go = _grad_output(loss, args, kwargs, np.float64)
    obs = load("numpy").evaluate(case(loss, args, kwargs, grad=True, grad_output=go))
    torch_grads: dict = {}
    want, want_grad = _torch(loss, args, kwargs, go, torch_grads)
    assert obs.value.dtype == np.float64 and obs.value.shape == want.shape
    np.testing.assert_allclose(obs.value, want, rtol=1e-12, atol=1e-13 * np.max(np.abs(want)))
    assert obs.grad.dtype == np.float64 and obs.grad.shape == args[0].shape
    np.testing.assert_allclose(obs.grad, want_grad, rtol=1e-12, atol=1e-13 * np.max(np.abs(want_grad)))
    # every gradient torch computes (grad:target for mse_loss, BCE, probability targets ...)
    assert set(obs.grads) == set(torch_grads), (set(obs.grads), set(torch_grads))
    for name, g in torch_grads.items():
        np.testing.assert_allclose(obs.grads[name], g, rtol=1e-12, atol=1e-13 * np.max(np.abs(g)), err_msg=name)


LOW = [c for c in CONFIGS if c[0].endswith(("-none", "-mean")) or "softmax" in c[1]][::2]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_numpy_is_within_one_ulp_in_low_precision(dtype):
    """Inputs in ``dtype``; the float64 torch result on the same values is the near-exact answer."""
    backend = load("numpy")
    for cid, loss, args, kwargs in LOW:
        a = [_cast(v, NUMPY[dtype]) for v in args]
        kw = {k: _cast(v, NUMPY[dtype]) for k, v in kwargs.items()}
        go = _grad_output(loss, a, kw, NUMPY[dtype])
        obs = backend.evaluate(case(loss, a, kw, grad=True, grad_output=go, dtype=dtype))
        up = lambda v: _cast(v, np.float64) if isinstance(v, np.ndarray) else v
        want, want_grad = _torch(loss, [up(v) for v in a], {k: up(v) for k, v in kw.items()}, up(go))
        assert obs.value.dtype == NUMPY[dtype] and obs.grad.dtype == NUMPY[dtype]
        for got, ref in ((obs.value, want), (obs.grad, want_grad)):
            dist = np.abs(ordinal(got, dtype) - ordinal(ref, dtype))
            assert dist.max() <= 1, (cid, dtype, got, ref)


def test_confident_row_keeps_relative_precision():
    """CE of a confident row: log1p(2 e^-30) ~ 1.9e-13 in float32, where a plain log gives 0."""
    x = np.array([[30.0, 0.0, 0.0]], np.float32)
    exact = math.log1p(2 * math.exp(-30))
    obs = load("numpy").evaluate(case("cross_entropy", [x, np.array([0])], grad=True,
                                      grad_output=np.array(1, np.float32)))
    assert obs.value == np.float32(exact)
    assert obs.grad[0, 0] == np.float32(-2 * math.exp(-30) / (1 + 2 * math.exp(-30)))
    assert obs.grad[0, 1] == np.float32(math.exp(-30) / (1 + 2 * math.exp(-30)))
    assert F.cross_entropy(torch.from_numpy(x), torch.tensor([0])).item() == 0.0  # torch's cliff


def test_round_to_avoids_double_rounding():
    above_bf16_midpoint = 1 + 2**-8 + 2**-30  # float32 drops the 2^-30 and leaves a tie
    assert np.array([above_bf16_midpoint]).astype(ml_dtypes.bfloat16)[0] == 1.0  # the trap is real
    assert round_to(np.array([above_bf16_midpoint, -above_bf16_midpoint]), "bfloat16").tolist() == \
        [1 + 2**-7, -(1 + 2**-7)]
    assert round_to(np.array(1 + 2**-11 + 2**-40), "float16") == np.float16(1 + 2**-10)
    assert round_to(np.array(1 + 2**-8), "bfloat16") == 1.0  # a true tie goes to even
    specials = round_to(np.array([np.inf, -np.inf, np.nan, 1e300, 2.0**-130]), "bfloat16")
    assert specials.astype(np.float64)[:2].tolist() == [np.inf, -np.inf] and np.isnan(specials[2])
    assert np.isinf(specials[3]) and specials[4] == 2.0**-130


def test_bce_clamp_and_edges():
    x = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
    y = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    obs = load("numpy").evaluate(case("binary_cross_entropy", [x, y], {"reduction": "none"}, grad=True,
                                      grad_output=np.ones(4, np.float32)))
    assert obs.value.tolist() == [100.0, 0.0, 0.0, 100.0]
    assert obs.value.tolist() == F.binary_cross_entropy(torch.from_numpy(x), torch.from_numpy(y),
                                                        reduction="none").tolist()
    assert obs.grad.tolist() == [0.0, 1.0, -1.0, 0.0]  # a clamped log contributes nothing


@pytest.mark.parametrize("loss, args, message", [
    ("binary_cross_entropy", (np.array([1.5]), np.array([1.0])), "input: binary_cross_entropy needs"),
    ("cross_entropy", (np.zeros((2, 3)), np.array([0, 3])), r"target: class index 3 is out of range \[0, 3\)"),
    ("nll_loss", (np.zeros((2, 3)), np.array([-1, 0])), "target: class index -1 is out of range"),
])
def test_invalid_arguments_raise_value_error(loss, args, message):
    with pytest.raises(ValueError, match=message):
        load("numpy").evaluate(case(loss, args))


def test_every_target_ignored():
    x, t = np.ones((2, 3)), np.array([-100, -100])
    b = load("numpy")
    assert np.isnan(b.evaluate(case("cross_entropy", [x, t])).value)
    assert b.evaluate(case("cross_entropy", [x, t], {"reduction": "sum"})).value == 0.0
    g = b.evaluate(case("cross_entropy", [x, t], {"reduction": "sum"}, grad=True, grad_output=np.array(1.0))).grad
    assert g.tolist() == np.zeros((2, 3)).tolist()


def test_naive_overflows_where_careful_does_not():
    x = np.array([[12.0, 0.0, 0.0]], np.float16)  # exp(12) = 162755 > float16 max 65504
    naive, careful = load("numpy-naive"), load("numpy")
    ce = case("cross_entropy", [x, np.array([1])], grad=True, grad_output=np.array(1, np.float16))
    bad = naive.evaluate(ce)
    assert bad.value.dtype == np.float16 and not np.isfinite(bad.value) and bad.grad is None
    good = careful.evaluate(ce)
    assert good.value == np.float16(12 + math.log1p(2 * math.exp(-12)))
    sm = naive.evaluate(case("softmax", [x], {"dim": 1})).value
    assert np.isnan(sm[0, 0]) and sm[0, 1] == 0
    assert careful.evaluate(case("softmax", [x], {"dim": 1})).value[0, 0] == np.float16(1 / (1 + 2 * math.exp(-12)))
    # BCE-with-logits through sigmoid: x = 20 gives log(1 - 1) = -inf in float32
    z = np.array([20.0], np.float32)
    assert naive.evaluate(case("binary_cross_entropy_with_logits", [z, np.zeros(1, np.float32)])).value == np.inf
    assert careful.evaluate(case("binary_cross_entropy_with_logits", [z, np.zeros(1, np.float32)])).value == \
        np.float32(20 + math.log1p(math.exp(-20)))
    # BCE without the clamp: 0 * log 0 = nan
    assert np.isnan(naive.evaluate(case("binary_cross_entropy", [np.zeros(1), np.zeros(1)])).value)


@pytest.mark.parametrize("cid, loss, args, kwargs", CONFIGS[::7], ids=[c[0] for c in CONFIGS[::7]])
def test_naive_agrees_on_benign_float64_inputs(cid, loss, args, kwargs):
    """Its plumbing (weights, ignore, smoothing, reductions) is torch's; only the arithmetic is naive."""
    obs = load("numpy-naive").evaluate(case(loss, args, kwargs))
    targs = [torch_of(a) for a in args]
    kw = {k: torch_of(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    want = getattr(F, loss)(*targs, **kw).numpy()
    np.testing.assert_allclose(obs.value, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_mean_over_zero_total_weight_gradient_matches_the_oracle(loss):
    """D = 0: present terms give 0 * (1/0) = NaN (for CE the softmax spreads it over the row);
    terms absent from the formula (nll's non-target entries, ignored rows) are exactly 0."""
    x, t = np.ones((3, 3)), np.array([1, 2, -100])
    kw = {"weight": np.array([1.0, 0.0, 0.0])}
    obs = load("numpy").evaluate(case(loss, [x, t], kw, grad=True, grad_output=np.array(1.5)))
    want = reference.evaluate_grad(loss, x, t, grad_output=np.array(1.5), **kw).rounded
    assert np.isnan(obs.value)
    assert np.array_equal(obs.grad, want, equal_nan=True)
    assert (obs.grad[2] == 0).all() and np.isnan(obs.grad[0, 1])


def test_float64_extremes_do_not_overflow_early():
    big = np.array([1.3e154, -1.3e154])  # (x - y)^2 ~ 6.8e308 overflows; 1.3e154^2 = 1.69e308 does not
    b = load("numpy")
    assert b.evaluate(case("mse_loss", [big, np.zeros(2)], {"reduction": "none"})).value.tolist() == \
        [1.3e154**2, 1.3e154**2]
    assert b.evaluate(case("mse_loss", [big, np.zeros(2)], {"reduction": "mean"})).value == 1.3e154**2
    x = np.array([np.inf, -np.inf], np.float32)
    y = np.array([1.0, 0.0], np.float32)  # (1-y) * softplus(+inf) = 0 * inf: NaN, as in the formula
    assert np.isnan(b.evaluate(case("binary_cross_entropy_with_logits", [x, y], {"reduction": "none"})).value).all()


def test_float64_mean_of_overflowing_squares_is_finite():
    x = np.array([1.5e154, 0.0])  # 2.25e308 overflows; the mean 1.125e308 does not
    obs = load("numpy").evaluate(case("mse_loss", [x, np.zeros(2)]))
    assert np.isfinite(obs.value) and abs(obs.value / 1.125e308 - 1) < 1e-15
