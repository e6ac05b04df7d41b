"""Numeric namespaces the loss kernels are written against.

Each loss formula is written once (in its reference/losses/ module) against a small namespace of
array operations, and evaluated several ways: vectorised in float64, long double and quad (the
cheap first stage of the precision escalation) and elementwise in mpmath at any precision P (the
exact stage).  One formula, several precisions: a disagreement can only come from rounding, never
from two formulas drifting apart.
"""
from __future__ import annotations

import mpmath
import numpy as np
from mpmath import libmp


class FloatNS:
    """Vectorised namespace over a NumPy float type (float64 or longdouble)."""

    def __init__(self, dtype, bits: int | None = None):
        self.dtype = np.dtype(dtype)
        self.bits = bits if bits is not None else np.finfo(self.dtype).nmant + 1
        self.u = 2.0 ** -self.bits
        self.exact = False

    def asarray(self, a):
        return np.asarray(a).astype(self.dtype)

    def const(self, c):
        return self.dtype.type(c)

    def exp(self, a):
        return np.exp(a)

    def log(self, a):
        return np.log(a)

    def log1p(self, a):
        return np.log1p(a)

    def softplus(self, a):
        """log(1 + exp(a)) without overflow."""
        return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))

    def softplus2(self, a):
        """(softplus(a), softplus(-a)), the same values as two softplus calls, sharing their
        log1p(exp(-|a|))."""
        t = np.log1p(np.exp(-np.abs(a)))
        return np.maximum(a, 0) + t, np.maximum(-a, 0) + t

    def tanh(self, a):
        """The format's own tanh: glibc's for float64 and long double (measured within 2 and 4
        units of u), SLEEF's tanhq_u10 for quad (within 1; tests/test_reference_quad.py)."""
        return np.tanh(a)

    def isnan(self, a):
        return np.isnan(a)

    def isfinite(self, a):
        return np.isfinite(a)

    def abs(self, a):
        return np.abs(a)

    def sum(self, a, axis=None, keepdims=False):
        """Pairwise sum by explicit halving: its error bound, ceil(log2 n) * u * sum|a|, is ours
        to rely on (numpy's own reduction order is an implementation detail)."""
        a = np.asarray(a)
        if axis is None:
            r = _pairwise_last(a.reshape(-1))
            return r.reshape((1,) * a.ndim) if keepdims else r[()]
        a = np.moveaxis(a, axis, -1)
        r = _pairwise_last(a)
        if keepdims:
            r = np.expand_dims(r, axis if axis >= 0 else a.ndim + axis)
        return r

    def max(self, a, axis=-1, keepdims=True):
        return np.max(a, axis=axis, keepdims=keepdims)

    def to_float64(self, a):
        return np.asarray(a).astype(np.float64)

    def split_pair(self, v):
        """(h, low) for finite values ``v`` of this format: h = the format's cast to float64 (within
        an ulp of v, +-inf beyond float64's range: round to nearest for long double; numpy-quaddtype's
        rounds twice, see QuadNS) and low = float64(v - h), v - h being exact in the format wherever
        h is finite: the float64 pair the settling stores, within 2^-53 |low| of v."""
        with np.errstate(all="ignore"):
            h = v.astype(np.float64)
            d = v - np.where(np.isfinite(h), h, 0.0).astype(self.dtype)
            return h, d.astype(np.float64)


class QuadNS(FloatNS):
    """:class:`FloatNS` over IEEE binary128 (numpy-quaddtype), with the float64 <-> quad conversions
    done on the bits where the values allow (numpy-quaddtype's casts cost more than its products).
    float64 -> quad is its exact cast; split_pair's h is v rounded once to the nearest float64,
    where numpy-quaddtype's cast rounds twice (a value 2^-55 ulp past a float64 midpoint lands on
    the even side): the pair h + low is as exact either way, but with the nearest h stage 0's fast
    rounding check decides such elements instead of sending them end by end.
    tests/test_reference_quad.py pins both on ties, edges and specials against mpmath."""

    def asarray(self, a):
        a = np.asarray(a)
        if a.dtype != np.float64:
            return a.astype(self.dtype)
        return quad_from_f64(a, self.dtype)

    def isfinite(self, a):
        """From the exponent bits (numpy-quaddtype's own isfinite costs as much as a product)."""
        a = np.asarray(a, self.dtype)
        w1 = np.ascontiguousarray(a).view(np.uint64).reshape(a.shape + (2,))[..., 1]
        return (w1 & _EXP_Q) != _EXP_Q

    def split_pair(self, v):
        v = np.ascontiguousarray(v, self.dtype)
        h, low, fast = quad_split_bits(v)
        if not fast.all():
            slow = ~fast
            h[slow], low[slow] = FloatNS.split_pair(self, v[slow])
        return h, low


_M48 = np.uint64((1 << 48) - 1)
_M60 = np.uint64((1 << 60) - 1)
_EXP_Q = np.uint64(0x7FFF << 48)
_SIGN = np.uint64(1 << 63)  # binary128's exponent field in its high word


def quad_from_f64(a: np.ndarray, qdtype) -> np.ndarray:
    """float64 -> binary128, exactly: zeros and normal numbers by moving the bits (same sign, the
    exponent rebiased by 16383 - 1023, the 52 fraction bits on top of the 112), the rest (float64
    subnormals, infinities, NaN) by numpy-quaddtype's cast."""
    a = np.ascontiguousarray(a, np.float64)
    b = a.view(np.uint64)
    sign = b & np.uint64(1 << 63)
    e = (b >> np.uint64(52)) & np.uint64(0x7FF)
    frac = b & np.uint64((1 << 52) - 1)
    normal = (e != 0) & (e != 0x7FF)
    w1 = sign | np.where(normal, ((e + np.uint64(16383 - 1023)) << np.uint64(48)) | (frac >> np.uint64(4)), 0)
    w0 = np.where(normal, (frac & np.uint64(0xF)) << np.uint64(60), np.uint64(0))
    out = np.empty(a.shape + (2,), np.uint64)
    out[..., 0], out[..., 1] = w0, w1  # little-endian binary128: the low word first
    q = out.view(qdtype).reshape(a.shape)
    odd = ~normal & (frac != 0) | (e == 0x7FF)  # subnormal, inf, nan (zeros are done above)
    if odd.any():
        q[odd] = a[odd].astype(qdtype)
    return q


def quad_split_bits(v: np.ndarray):
    """(h, low, fast) for a contiguous binary128 array: where ``fast`` (zeros, and finite values
    with exponent in [-900, 1000]) h is v rounded to the nearest float64 (ties to even) and low is
    the exact v - h, a multiple of 2^(e - 112) below 2^61 of them, rounded to float64 (+0 when v - h
    is 0, as the subtraction gives); elsewhere h and low are undefined.  Unsigned arithmetic that
    wraps is used only where the result is undefined (not ``fast``)."""
    u = v.view(np.uint64).reshape(v.shape + (2,))
    w0, w1 = u[..., 0], u[..., 1]
    sign = w1 & _SIGN
    eq = (w1 >> np.uint64(48)) & np.uint64(0x7FFF)
    frac_hi = w1 & _M48
    zero = (eq | frac_hi | w0) == 0
    fast = zero | ((eq - np.uint64(16383 - 900)) <= np.uint64(1900))  # e in [-900, 1000]; wraps below
    m52 = (frac_hi << np.uint64(4)) | (w0 >> np.uint64(60))
    drop = w0 & _M60  # the 60 bits below float64's last
    odd = m52 & np.uint64(1)
    up = (drop + odd) > np.uint64(1 << 59)  # above half, or a tie onto an odd last bit (to even)
    hbits = ((eq - np.uint64(16383 - 1023)) << np.uint64(52)) + m52 + up  # a carry moves to the next binade
    hbits[zero] = 0
    hbits |= sign
    h = hbits.view(np.float64)
    rem = np.where(up, (np.uint64(1) << np.uint64(60)) - drop, drop).astype(np.float64)  # < 2^60: one rounding
    k = np.where(fast, eq.astype(np.int64) - (16383 + 112), 0).astype(np.int32)
    low = np.ldexp(rem, k)  # exact: e - 112 >= -1012
    np.negative(low, out=low, where=(sign != 0) != up)  # v - h: against v's sign when rounded up
    low[rem == 0] = 0.0
    return h, low, fast


def _pairwise_last(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis by repeated pairwise halving (zero-padded to even length)."""
    if a.shape[-1] == 0:
        return np.zeros(a.shape[:-1], a.dtype)
    while a.shape[-1] > 1:
        if a.shape[-1] % 2:
            a = np.concatenate([a, np.zeros(a.shape[:-1] + (1,), a.dtype)], axis=-1)
        a = a[..., 0::2] + a[..., 1::2]
    return a[..., 0]


_mp_exp = np.frompyfunc(mpmath.exp, 1, 1)
_mp_log = np.frompyfunc(mpmath.log, 1, 1)
_mp_log1p = np.frompyfunc(mpmath.log1p, 1, 1)
_mp_tanh = np.frompyfunc(mpmath.tanh, 1, 1)
_mp_isnan = np.frompyfunc(mpmath.isnan, 1, 1)
_mp_isfinite = np.frompyfunc(mpmath.isfinite, 1, 1)
_mp_float = np.frompyfunc(float, 1, 1)


def _mp_softplus_scalar(a):
    if mpmath.isinf(a):
        return a if a > 0 else mpmath.mpf(0)
    if mpmath.isnan(a):
        return a
    return max(a, 0) + mpmath.log1p(mpmath.exp(-abs(a)))


_mp_softplus = np.frompyfunc(_mp_softplus_scalar, 1, 1)


class MpNS:
    """Elementwise mpmath namespace on object arrays; every operation rounds at ``mp.prec``.

    Callers set the precision with ``mpmath.workprec(P)`` around a kernel call.
    """

    dtype = np.dtype(object)
    exact = True

    @property
    def bits(self) -> int:
        return mpmath.mp.prec

    @property
    def u(self) -> float:
        return 2.0 ** -mpmath.mp.prec

    def asarray(self, a):
        """Exact mpf copies of float arrays, whatever the current precision (no rounding)."""
        a = np.asarray(a)
        if a.dtype == object:
            return a
        if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            return a
        f = a.astype(np.float64)  # exact for every supported input format
        out = np.empty(f.shape, dtype=object)
        flat = out.reshape(-1)
        for i, v in enumerate(f.reshape(-1).tolist()):
            m = mpmath.mpf.__new__(mpmath.mpf)
            m._mpf_ = libmp.from_float(v)  # 53 bits: exact for a float64
            flat[i] = m
        return out

    def const(self, c):
        return mpmath.mpf(c)

    def exp(self, a):
        return _as_obj(_mp_exp(a))

    def log(self, a):
        return _as_obj(_mp_log(a))

    def log1p(self, a):
        return _as_obj(_mp_log1p(a))

    def softplus(self, a):
        return _as_obj(_mp_softplus(a))

    def softplus2(self, a):
        return self.softplus(a), self.softplus(-a)

    def tanh(self, a):
        return _as_obj(_mp_tanh(a))  # +-1 at +-inf, NaN at NaN, like NumPy's

    def isnan(self, a):
        return np.asarray(_mp_isnan(a), dtype=bool)

    def isfinite(self, a):
        return np.asarray(_mp_isfinite(a), dtype=bool)

    def abs(self, a):
        return np.abs(a)

    def sum(self, a, axis=None, keepdims=False):
        """mpmath.fsum: the exact sum, rounded once (so no term count enters the error bound)."""
        a = np.asarray(a, dtype=object)
        if axis is None:
            r = mpmath.fsum(a.reshape(-1))
            return _as_obj(np.full((1,) * a.ndim, r, dtype=object)) if keepdims else r
        moved = np.moveaxis(a, axis, -1)
        flat = moved.reshape(-1, moved.shape[-1]) if moved.size else np.empty((int(np.prod(moved.shape[:-1])), 0), object)
        out = np.empty(flat.shape[0], dtype=object)
        for i, row in enumerate(flat):
            out[i] = mpmath.fsum(row)
        out = out.reshape(moved.shape[:-1])
        return _as_obj(np.expand_dims(out, axis if axis >= 0 else a.ndim + axis)) if keepdims else out

    def max(self, a, axis=-1, keepdims=True):
        if a.shape[axis] == 0:
            return _as_obj(np.full(np.delete(a.shape, axis) if not keepdims else
                                   tuple(1 if i == axis % a.ndim else s for i, s in enumerate(a.shape)),
                                   mpmath.mpf("-inf"), dtype=object))
        return _as_obj(np.max(a, axis=axis, keepdims=keepdims))

    def to_float64(self, a):
        return np.asarray(_mp_float(a), dtype=np.float64)


def _as_obj(a):
    a = np.asarray(a, dtype=object) if not isinstance(a, np.ndarray) or a.dtype != object else a
    return a


F64 = FloatNS(np.float64)
LD = FloatNS(np.longdouble)
MP = MpNS()


def _quad_namespace():
    """IEEE binary128 arrays (113-bit significand, SLEEF's functions: <= 1 ulp) from the optional
    numpy-quaddtype package, or None where it is not installed: float64 outputs then settle in
    mpmath (slower, the same answers).  Quad is what lets a float64 output settle vectorised:
    long double's 64 bits leave too little room beyond float64's 53 for figures right to 2^-10 ulp.
    """
    try:
        import numpy_quaddtype
    except ImportError:  # the 'fast' extra is not installed (it needs numpy >= 2.4)
        return None
    ns = QuadNS(numpy_quaddtype.QuadPrecDType(backend="sleef"), bits=113)
    probe = np.array([1.0, 2.0 ** -1074, 2.0 ** 1023]).astype(ns.dtype)  # float64 -> quad is exact
    with np.errstate(all="ignore"):
        ok = np.array_equal((probe * 3).astype(np.float64), [3.0, 3 * 2.0 ** -1074, np.inf])
    # the bit-level conversions read and write little-endian binary128 (tests/test_reference_quad.py
    # compares them with the casts on ties, edges and specials)
    raw = np.array([0, 0x3FFF << 48, 0, 0xC000 << 48], np.uint64).view(ns.dtype)
    ok = ok and np.array_equal(raw.astype(np.float64), [1.0, -2.0])
    if not ok:
        return None  # a build whose arithmetic or casts are not what the bound assumes
    return ns


QUAD = _quad_namespace()


def ieee_div(ns, a, b):
    """a / b with IEEE rules for b == 0 in every namespace (mpmath raises): 0/0 and NaN/0 are NaN,
    else +-inf; the one such division the settling and the kernels share."""
    if ns.exact:
        if b == 0:
            if mpmath.isnan(a) or a == 0:
                return ns.const("nan")
            return ns.const("inf") if a > 0 else ns.const("-inf")
        return a / b
    with np.errstate(all="ignore"):
        return a / b


LSE_MEMO_MAX = 1 << 18  # elements: a shifted_lse this size or smaller is remembered (some 60 bytes each)
_LSE_MEMO: dict = {}  # namespace -> (x, xf, pieces) of its last shifted_lse


def forget() -> None:
    """Drop the remembered log-sum-exp pieces (benchmarks time cold calls with it)."""
    _LSE_MEMO.clear()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical arrays (same dtype and shape); unequal padding only costs a recomputation."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)))


def shifted_lse(ns, x, xf=None):
    """See :func:`_shifted_lse`.  In the vectorised stages' namespaces (more bits than float64: they
    run only under the oracle's clean floating-point state) the pieces of the last call are
    remembered per namespace, keyed by the bits of ``x`` and ``xf`` (compared in full, not hashed):
    a loss's value and its gradient for the same case -- the harness asks for them one after the
    other -- then exponentiate the logits once.  The pieces are the same numbers either way (a
    pure function of those bits) and are returned read-only, so no caller can change them."""
    xf_ = x if xf is None else xf
    memo = not ns.exact and ns.bits > 53 and 0 < np.size(x) <= LSE_MEMO_MAX and np.asarray(xf_).dtype != object
    if memo:
        got = _LSE_MEMO.get(ns)
        if got is not None and _same_bits(got[0], x) and _same_bits(got[1], np.asarray(xf_)):
            return got[2]
    out = _shifted_lse(ns, x, xf)
    if memo:
        for a in out:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        _LSE_MEMO[ns] = (np.array(x, copy=True), np.array(xf_, copy=True), out)
    return out


def _shifted_lse(ns, x, xf=None):
    """Row-wise pieces of log-sum-exp along the last axis, accurate *relative to the result*.

    y = x - max, e = exp(y); the first argmax contributes exactly 1 to S, so S = 1 + rest with
    rest = sum of the other e, and log S = log1p(rest).  Summing ``rest`` on its own keeps log S
    relatively accurate when the row is confident (log S ~ 1e-22 is not lost next to the 1), which
    is what lets the settling bound use the condition scale alone.  Returns (y, e, rest, S, lnS, k)
    with k the boolean mask of the argmax element, all with keepdims on the reduced axis.
    ``xf`` (the same values as float64, exact copies) lets the argmax and the masks be found at
    NumPy speed when ``x`` holds mpf objects.
    """
    if xf is None:
        xf = x
    xf = np.asarray(xf)
    if xf.dtype == object:  # masks and argmax only: any monotone copy of the values will do
        xf = MP.to_float64(xf)
    k = np.zeros(x.shape, dtype=bool)
    if x.shape[-1]:
        idx = np.argmax(xf, axis=-1)[..., None]
        np.put_along_axis(k, idx, True, axis=-1)
        m, mf = np.take_along_axis(x, idx, axis=-1), np.take_along_axis(xf, idx, axis=-1)
    else:
        m = mf = np.full(x.shape[:-1] + (1,), -np.inf)
    # a row holding NaN or +inf, or only -inf, has no finite max to shift by: the whole row is NaN
    # (lse - x is inf - inf there), as in torch
    bad = ~np.isfinite(mf) | np.any(np.isnan(xf), axis=-1, keepdims=True)
    y = x - m
    if bad.any():
        y = np.where(bad, ns.const("nan"), y)
    e = ns.exp(y)
    rest = ns.sum(np.where(k, ns.const(0), e), axis=-1, keepdims=True)
    s = ns.const(1) + rest
    lns = ns.log1p(rest)
    return y, e, rest, s, lns, k
