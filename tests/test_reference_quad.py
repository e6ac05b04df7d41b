"""The quad (binary128) stage: what its bound assumes of numpy-quaddtype, and that it changes no
answer (the same roundings as the mpmath-only path, stored values within FIGURE_ULP)."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from mpmath import libmp

import reference as R
from reference import settle
from reference.numerics import QUAD

pytestmark = pytest.mark.skipif(QUAD is None, reason="numpy-quaddtype is not installed (the 'fast' extra)")


def _mp(v: np.ndarray) -> list:
    """Exact mpfs of a finite quad array: frexp, then three float64 pieces of the mantissa."""
    m, e = np.frexp(v)
    hi = m.astype(np.float64)
    rest = m - hi.astype(v.dtype)
    mid = rest.astype(np.float64)
    lo = (rest - mid.astype(v.dtype)).astype(np.float64)
    return [mpmath.ldexp(mpmath.mpf(float(a)) + mpmath.mpf(float(b)) + mpmath.mpf(float(c)), int(k))
            for a, b, c, k in zip(hi, mid, lo, e)]


def _rel_err_ulps(got: np.ndarray, want: list) -> float:
    """Largest |got - want| / |want| in units of 2^-113 (quad's u)."""
    worst = 0.0
    with mpmath.workprec(400):
        for g, w in zip(_mp(got), want):
            if w != 0 and mpmath.isfinite(w):
                worst = max(worst, float(abs(g - w) / abs(w) * mpmath.mpf(2) ** 113))
    return worst


@pytest.mark.parametrize("fn, mp_fn, lo, hi", [
    ("exp", mpmath.exp, -11000.0, 11000.0), ("exp", mpmath.exp, -1.0, 1.0),
    ("log", mpmath.log, 1e-300, 1e300), ("log1p", mpmath.log1p, -0.999, 1e5), ("log1p", mpmath.log1p, -1e-20, 1e-20),
])
def test_elementary_functions_err_by_at_most_a_few_quad_ulps(fn, mp_fn, lo, hi):
    """The stage's bound charges each elementary operation a few units of 2^-113 (16 + 4 log2 n in
    all): SLEEF's functions are documented at <= 1 ulp; check they are, from float64 arguments."""
    rng = np.random.default_rng(7)
    x = rng.uniform(lo, hi, 3000) if lo < 0 or hi < 1e3 else np.exp(rng.uniform(np.log(lo), np.log(hi), 3000))
    got = getattr(np, fn)(x.astype(QUAD.dtype))
    with mpmath.workprec(400):
        want = [mp_fn(mpmath.mpf(float(v))) for v in x]
    assert _rel_err_ulps(got, want) <= 2.0  # 2 units of 2^-113: one ulp of a binade's top half


def test_arithmetic_is_correctly_rounded_enough():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal(3000) * 1e10, rng.standard_normal(3000) * 1e-10
    qa, qb = a.astype(QUAD.dtype), b.astype(QUAD.dtype)
    for got, op in ((qa * qb, lambda x, y: x * y), (qa / qb, lambda x, y: x / y), (qa + qb, lambda x, y: x + y)):
        with mpmath.workprec(400):
            want = [op(mpmath.mpf(float(x)), mpmath.mpf(float(y))) for x, y in zip(a, b)]
        assert _rel_err_ulps(got, want) <= 1.0


def _cases():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 7)) * np.array([[1], [10], [100], [1e-8], [30], [3]])
    t = np.array([0, 3, 6, 2, 1, 5])
    p = rng.dirichlet(np.ones(7), 6)
    z = rng.standard_normal(9) * 20
    y = rng.uniform(0, 1, 9)
    return [
        ("cross_entropy", (x, t), {"reduction": "none"}, "input"),
        ("cross_entropy", (x, t), {"reduction": "mean", "label_smoothing": 0.1}, "input"),
        ("cross_entropy", (x, p), {"reduction": "sum"}, "target"),
        ("log_softmax", (x,), {"dim": 1}, "input"),
        ("softmax", (x,), {"dim": 1}, "input"),
        ("binary_cross_entropy_with_logits", (z, y), {"reduction": "none"}, "input"),
        ("binary_cross_entropy_with_logits", (z, y), {"reduction": "mean"}, "target"),
        ("kl_div", (np.log(y), y[::-1].copy()), {"reduction": "none"}, "input"),
    ]


@pytest.mark.parametrize("loss, args, kwargs, wrt", _cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_quad_stage_changes_no_answer(monkeypatch, loss, args, kwargs, wrt):
    """float64 outputs settled with the quad stage and without it (mpmath only): the same correct
    roundings, stored values within FIGURE_ULP of each other's ulp, and the quad stage did settle."""
    with_q = [R.evaluate(loss, *args, **kwargs), R.evaluate_grad(loss, *args, wrt=wrt, **kwargs)]
    used = [np.isfinite(e._pair[0]).sum() if e._pair is not None else 0 for e in with_q]
    monkeypatch.setattr(settle, "QUAD", None)
    without = [R.evaluate(loss, *args, **kwargs), R.evaluate_grad(loss, *args, wrt=wrt, **kwargs)]
    assert sum(used) > 0, "the quad stage settled nothing"
    for a, b in zip(with_q, without):
        np.testing.assert_array_equal(a.rounded, b.rounded)
        assert not a.undetermined.any() and not b.undetermined.any()
        ha, la = a.hilo()
        hb, lb = b.hilo()
        ulp = np.spacing(np.abs(b.rounded.astype(np.float64)))
        fin = np.isfinite(ha) & np.isfinite(hb)
        diff = np.abs((ha[fin] - hb[fin]) + (la[fin] - lb[fin]))
        assert np.all(diff <= 2 * settle.FIGURE_ULP * ulp[fin])


def test_float32_midpoint_from_quad_is_decided_by_the_remainder():
    """A float64 output whose quad value lies within its bound of a float64 midpoint is not taken
    by the fast path: the reproducer of issue 9 (2044.5 + log1p(e^-2044.5) in float16, here in
    float64 with the same shape) still settles to the right side."""
    x = np.array([[0.5, -9007199254740988.0]])
    ex = R.evaluate("cross_entropy", x, np.array([1]), reduction="none")
    # exact: 9007199254740988.5 + log1p(e^-9007199254740988.5): above the midpoint, so ...989 --
    # the tiny term lies below every precision (an honest undetermined is allowed, a tie guess not)
    assert ex.undetermined.all() or ex.rounded[0] == 9007199254740989.0


def _quad_edges(rng) -> np.ndarray:
    """Quads around float64's roundings: random values, exact ties both ways (even and odd last
    bits), values just off them, both signs, zeros, the fast range's edges and values beyond it."""
    x = rng.standard_normal(4000) * 10.0 ** rng.integers(-300, 300, 4000)
    q = x.astype(QUAD.dtype)
    half = (np.spacing(np.abs(x)) * 0.5).astype(QUAD.dtype)
    tiny = (np.spacing(np.abs(x)) * 2.0 ** -55).astype(QUAD.dtype)
    odd = np.array([1.0 + 2.0 ** -52, 3.0, 2.0 ** -900, 2.0 ** 1000, 2.0 ** 1000 * (2 - 2.0 ** -52), 2.0 ** -901,
                    2.0 ** 1001, 1e-310, 5e-324, 1.7976931348623157e308]).astype(QUAD.dtype)
    third = q * QUAD.const(1) / QUAD.const(3)
    big = QUAD.const(2) ** QUAD.const(2000) * third[:10]
    small = QUAD.const(2) ** QUAD.const(-16400) * third[:10]  # binary128 subnormals
    zeros = np.array([0.0, -0.0]).astype(QUAD.dtype)
    out = np.concatenate([q, q + half, q - half, q + half + tiny, q - half - tiny, q + tiny, third,
                          odd, odd + odd * QUAD.const(2.0 ** -53), big, small, zeros])
    return np.concatenate([out, -out])


def test_bit_level_conversions_are_correctly_rounded():
    """QuadNS moves bits instead of casting: float64 -> quad is the exact cast (specials and
    subnormals included); split_pair's h is v rounded to the nearest float64 (ties to even) and its
    low the rounded remainder v - h -- checked against mpmath.  numpy-quaddtype's own quad ->
    float64 cast is not: it rounds twice (a value 2^-55 ulp past a midpoint goes to the even side),
    which the pair absorbs (v - h stays exact) but the bits avoid."""
    from reference.numerics import quad_split_bits

    rng = np.random.default_rng(7)
    f = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-320, 308, 3000),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -2e-310, 2.0 ** -1022, 1.7976931348623157e308]])
    assert np.array_equal(QUAD.asarray(f).view(np.uint64), f.astype(QUAD.dtype).view(np.uint64))
    v = _quad_edges(rng)
    h, low = QUAD.split_pair(v)
    fast = quad_split_bits(v)[2]
    assert fast.sum() > 0.9 * v.size and (~fast).sum() > 20
    with mpmath.workprec(300):
        neg = (v.view(np.uint64)[1::2] >> np.uint64(63)).astype(bool).tolist()  # mpmath has no -0
        for vq, hh, ll, bits, sb in zip(_mp(v), h.tolist(), low.tolist(), fast.tolist(), neg):
            if vq == 0:
                assert hh == 0 and ll == 0 and math.copysign(1, hh) == (-1 if sb else 1)
                assert math.copysign(1, ll) == 1  # v - h = +0, as the subtraction gives
                continue
            if not math.isfinite(hh) or not mpmath.isfinite(vq) or (vq != 0 and abs(vq) < 2.0 ** -1000):
                continue  # beyond float64 (the cast's inf) or the pair's range (the settling refuses those)
            want = libmp.to_float(vq._mpf_, rnd=libmp.round_nearest)
            if bits:  # the bit path: the nearest float64
                assert hh == want and math.copysign(1, hh) == math.copysign(1, want), (vq, hh, want)
            else:  # the cast (outside [2^-900, 2^1001)): within an ulp
                assert abs(vq - hh) <= 2 * abs(vq - want) + abs(want) * 2.0 ** -52
            assert ll == libmp.to_float((vq - mpmath.mpf(hh))._mpf_, rnd=libmp.round_nearest)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_value_and_gradient_share_the_exponentials_without_changing_an_answer(dtype):
    """shifted_lse remembers its last pieces per vectorised namespace (keyed by the bits): the
    gradient after the value reuses them, and every answer is the one a cold call gives."""
    from reference import numerics

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 50)).astype(dtype)
    t = rng.integers(0, 50, 6)

    def both():
        v = R.evaluate("cross_entropy", x, t, reduction="none")
        g = R.evaluate_grad("cross_entropy", x, t, reduction="none", grad_output=np.ones(6))
        return v, g

    numerics.forget()
    warm = both()
    assert numerics._LSE_MEMO  # the stages remembered their pieces
    pieces = next(iter(numerics._LSE_MEMO.values()))[2]
    assert all(not a.flags.writeable for a in pieces if isinstance(a, np.ndarray))
    cold = []
    for f in (lambda: R.evaluate("cross_entropy", x, t, reduction="none"),
              lambda: R.evaluate_grad("cross_entropy", x, t, reduction="none", grad_output=np.ones(6))):
        numerics.forget()
        cold.append(f())
    for a, b in zip(warm, cold):
        assert np.array_equal(a.rounded.view(np.uint8), b.rounded.view(np.uint8))
        for p, q in zip(a.hilo(), b.hilo()):
            assert np.array_equal(p.view(np.uint64), q.view(np.uint64))
    # one bit changed: a miss, not a stale answer
    x2 = x.copy()
    x2[3, 7] = np.nextafter(x2[3, 7], np.inf, dtype=x2.dtype)
    g2 = R.evaluate_grad("cross_entropy", x2, t, reduction="none", grad_output=np.ones(6))
    numerics.forget()
    g3 = R.evaluate_grad("cross_entropy", x2, t, reduction="none", grad_output=np.ones(6))
    assert np.array_equal(g2.rounded.view(np.uint8), g3.rounded.view(np.uint8))
    assert not np.array_equal(g2.hilo()[0], cold[1].hilo()[0])
