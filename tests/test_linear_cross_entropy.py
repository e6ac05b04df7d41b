"""linear_cross_entropy: the exact matrix product, the oracle against a brute force and torch's
float64 semantics, the NumPy backend and validation."""
from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest
import torch

from reference import api, registry
from reference.formats import round_mpf
from reference.matmul import exact_matmul_t, slice_bits

LCE = registry.get("linear_cross_entropy")
DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float32": np.float32}


def _exact_product(a, b, bias=None):
    a = [[Fraction(float(x)) for x in row] for row in a]
    b = [[Fraction(float(x)) for x in row] for row in b]
    out = [[sum(x * y for x, y in zip(ra, rb)) for rb in b] for ra in a]
    if bias is not None:
        out = [[v + Fraction(float(bias[j])) for j, v in enumerate(row)] for row in out]
    return out


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("spread", [0, 6, 30])
def test_exact_matmul_is_exact_where_it_says_so(dtype, spread):
    """hi + lo equals the exact rational product wherever the flag is set, whatever the spread of
    magnitudes (which sets the number of slices)."""
    rng = np.random.default_rng(spread)
    dt = DTYPES[dtype]
    spread = min(spread, 6) if dtype == "float16" and spread > 6 else spread  # no overflow to inf
    a = (rng.normal(size=(5, 33)) * 2.0 ** rng.integers(-spread, spread + 1, (5, 33))).astype(dt)
    b = (rng.normal(size=(7, 33)) * 2.0 ** rng.integers(-spread, spread + 1, (7, 33))).astype(dt)
    bias = rng.normal(size=7).astype(dt)
    hi, lo, ok = exact_matmul_t(a.astype(np.float64), b.astype(np.float64), bias.astype(np.float64),
                               bits={"bfloat16": 8, "float16": 11, "float32": 24}[dtype])
    want = _exact_product(a, b, bias)
    for i in range(5):
        for j in range(7):
            if ok[i, j]:
                assert Fraction(hi[i, j]) + Fraction(lo[i, j]) == want[i][j]
            assert abs(float(Fraction(hi[i, j]) + Fraction(lo[i, j]) - want[i][j])) <= 1e-12 * (
                1 + abs(float(want[i][j])))
    if spread <= 6:
        assert ok.all(), "inputs of ordinary spread fit the pairs"


def test_exact_matmul_flags_underflow_and_propagates_specials():
    t = 2.0 ** -1000
    a = np.array([[t, 3 * t], [1.0, 1.0], [np.inf, 1.0]])
    b = np.array([[2.0 ** -100, 2.0 ** -100], [0.0, 1.0]])
    hi, lo, ok = exact_matmul_t(a, b)
    assert not ok[0, 0]  # 4 * 2^-1100 underflows float64: never claimed exact
    assert ok[0, 1] and hi[0, 1] == 3 * t and lo[0, 1] == 0
    assert ok[1, 0] and hi[1, 0] == 2.0 ** -99 and ok[1, 1] and hi[1, 1] == 1.0
    assert np.isinf(hi[2, 0]) and ok[2, 0]  # inf * 2^-100 + 2^-100 = inf, exactly
    assert np.isnan(hi[2, 1]) and ok[2, 1]  # inf * 0: NaN by IEEE rules


def test_slice_bits_keeps_sums_exact():
    for k in (1, 2, 1024, 32768, 2 ** 20):
        beta = slice_bits(k)
        assert 2 * beta + int(np.ceil(np.log2(max(k, 2)))) <= 53


def _case(rng, dtype, n=3, d=5, v=6, bias=True, ignore=True):
    dt = DTYPES[dtype]
    h = rng.normal(size=(n, d)).astype(dt)
    w = (rng.normal(size=(v, d)) / 2).astype(dt)
    t = rng.integers(0, v, n).astype(np.int64)
    if ignore:
        t[0] = -100
    kw = {"bias": rng.normal(size=v).astype(dt)} if bias else {}
    return h, w, t, kw


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_oracle_agrees_with_the_brute_force(dtype, reduction, smoothing):
    """Every settled element equals the rounding of the mpmath brute force at 300 bits."""
    rng = np.random.default_rng(hash((dtype, reduction, smoothing)) % 2 ** 32)
    h, w, t, kw = _case(rng, dtype)
    kw = dict(kw, reduction=reduction, label_smoothing=smoothing)
    go = np.asarray(rng.normal(size=() if reduction != "none" else (3,))).astype(DTYPES[dtype])
    for check in LCE.checks_for((h, w, t), kw):
        wrt = None if check == "value" else check.partition(":")[2]
        ex = api.evaluate_check("linear_cross_entropy", check, h, w, t,
                                grad_output=None if wrt is None else go, **kw)
        with mpmath.workprec(300):
            bf = LCE.brute((h, w, t), kw, grad_output=None if wrt is None else go, wrt=wrt)
        bf = np.asarray(bf, dtype=object).reshape(np.shape(ex.rounded))
        und = np.asarray(ex.undetermined).reshape(-1)
        assert und.mean() < 0.5, f"{check}: mostly undetermined"
        for r, b, u in zip(np.asarray(ex.rounded, np.float64).reshape(-1), bf.reshape(-1), und):
            if not u:
                want = round_mpf(b, dtype)
                assert r == want or (np.isnan(r) and np.isnan(want)), (check, r, want)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_semantics_match_torch_in_float64(reduction):
    """The oracle's exact values (to float64) against torch's F.linear + F.cross_entropy in float64
    on float16 inputs (exact in float64), values and all three gradients."""
    rng = np.random.default_rng(7)
    h, w, t, kw = _case(rng, "float16", n=4, d=6, v=5)
    kw = dict(kw, reduction=reduction, label_smoothing=0.05)
    th = torch.tensor(h.astype(np.float64), requires_grad=True)
    tw = torch.tensor(w.astype(np.float64), requires_grad=True)
    tb = torch.tensor(kw["bias"].astype(np.float64), requires_grad=True)
    out = torch.nn.functional.cross_entropy(torch.nn.functional.linear(th, tw, tb), torch.tensor(t),
                                            reduction=reduction, label_smoothing=0.05)
    go = np.ones(out.shape)
    out.backward(torch.tensor(go))
    got = api.evaluate("linear_cross_entropy", h, w, t, out_dtype="float64", **kw)
    np.testing.assert_allclose(np.asarray(got.rounded, np.float64), out.detach().numpy(), rtol=1e-13)
    for name, tens in (("input", th), ("weight", tw), ("bias", tb)):
        g = api.evaluate_grad("linear_cross_entropy", h, w, t, grad_output=go.astype(np.float16), wrt=name,
                              out_dtype="float64", **kw)
        det = ~np.asarray(g.undetermined)
        np.testing.assert_allclose(np.asarray(g.rounded, np.float64)[det], tens.grad.numpy()[det],
                                   rtol=1e-12, atol=1e-15)


def test_numpy_backend_passes_its_gate_slice():
    from cases import suites
    from harness.backends.numpy_backend import NumpyBackend
    from harness.check import check_observation
    from harness.tolerances import DEFAULTS

    be = NumpyBackend()
    tol = DEFAULTS
    cases = [c for c in suites.build_suite("smoke") + suites.build_suite("gate")
             if c.loss == "linear_cross_entropy" and c.dtype != "float32"][:12]
    assert cases
    for c in cases:
        obs = be.evaluate(c)
        for check in c.checks:
            ex = api.evaluate_check(c.loss, check, *c.args, grad_output=c.grad_output, **c.kwargs)
            rec = check_observation(c, check, ex, obs.observed(check), tol.for_dtype(c.dtype))
            assert rec["verdict"] in ("pass", "undetermined"), rec["message"]


@pytest.mark.parametrize("bad, msg", [
    (lambda h, w, t: (h[0], w, t), "input: expected shape (N, D)"),
    (lambda h, w, t: (h, w[:, :2], t), "weight: expected shape"),
    (lambda h, w, t: (h, w, t.astype(np.int32)), "target: expected int64"),
    (lambda h, w, t: (h, w, np.array([0, 1, 99])), "target: class index 99 is out of range"),
    (lambda h, w, t: (h, w.astype(np.float32), t), "weight: dtype float32 does not match"),
])
def test_validation_names_the_argument(bad, msg):
    rng = np.random.default_rng(0)
    h, w, t, _ = _case(rng, "float16", ignore=False)
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        LCE.validate(bad(h, w, t), {})


def test_bias_shape_and_float64_refused():
    rng = np.random.default_rng(0)
    h, w, t, _ = _case(rng, "float16", ignore=False)
    with pytest.raises(ValueError, match="bias: expected shape"):
        LCE.validate((h, w, t), {"bias": np.zeros(2, np.float16)})
    with pytest.raises(ValueError, match="input: dtype float64 is not checked"):
        LCE.validate((h.astype(np.float64), w.astype(np.float64), t), {})


def test_pair_logits_are_enclosed_not_rounded():
    """Rows whose exact logits need a float64 pair (a bfloat16 row spanning 2^12 .. 2^-40): the
    oracle's settled values equal the rounding of a 300-bit formulation on the exact logits."""
    rng = np.random.default_rng(3)
    bf = ml_dtypes.bfloat16
    h = rng.normal(size=(3, 4)).astype(bf)
    h[:, 0] = (rng.normal(size=3) * 2.0 ** 12).astype(bf)
    h[:, 1] = (rng.normal(size=3) * 2.0 ** -40).astype(bf)
    w = rng.normal(size=(5, 4)).astype(bf)
    w[:, 0] = (rng.normal(size=5) * 2.0 ** -30).astype(bf)
    t = np.array([1, 4, 0])
    z = _exact_product(h, w)
    from reference.matmul import exact_matmul_t
    _, lo, ok = exact_matmul_t(h.astype(np.float64), w.astype(np.float64), bits=8)
    assert ok.all() and np.any(lo != 0), "the case must exercise the pair path"
    with mpmath.workprec(300):
        zm = [[mpmath.mpf(v.numerator) / v.denominator for v in row] for row in z]
        lse = [mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row)) for row in zm]
        want_val = [lse[n] - zm[n][t[n]] for n in range(3)]
        g = [[mpmath.exp(zm[n][j] - lse[n]) - (1 if j == t[n] else 0) for j in range(5)] for n in range(3)]
        want_gh = [[mpmath.fsum(g[n][j] * mpmath.mpf(float(w[j, d])) for j in range(5)) for d in range(4)]
                   for n in range(3)]
    ex = api.evaluate("linear_cross_entropy", h, w, t, reduction="none")
    gh = api.evaluate_grad("linear_cross_entropy", h, w, t, reduction="none", wrt="input",
                           grad_output=np.ones(3, bf))
    for got, want in ((ex, want_val), (gh, want_gh)):
        r = np.asarray(got.rounded, np.float64).reshape(-1)
        u = np.asarray(got.undetermined).reshape(-1)
        exp = [round_mpf(v, "bfloat16") for v in np.asarray(want, dtype=object).reshape(-1)]
        assert u.mean() < 0.5
        for a, b, und in zip(r, exp, u):
            assert und or a == b
