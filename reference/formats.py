"""Binary floating-point formats: correct rounding, ulps and distances.

Everything that knows how a float16/bfloat16/float32/float64 number is laid out lives here, so the
oracle, the harness's error figures and the tests agree on one definition.  Rounding is done with
integer arithmetic on the exact value (never through another float format), round-half-even, with
the target's subnormals and overflow to +-inf.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import mpmath
import numpy as np
from mpmath import libmp


@dataclass(frozen=True)
class Format:
    name: str
    p: int  # precision in bits, hidden bit included
    emin: int  # exponent of the smallest normal: 2**emin
    emax: int  # exponent of the largest binade
    np_dtype: np.dtype
    uint: np.dtype  # unsigned integer of the same width (bit patterns)

    @property
    def u(self) -> float:
        """Unit roundoff 2**-p."""
        return 2.0 ** -self.p

    @property
    def qmin(self) -> int:
        """Exponent of the smallest subnormal (the quantum of the subnormal range)."""
        return self.emin - self.p + 1

    @property
    def max_finite(self) -> float:
        return math.ldexp(2 ** self.p - 1, self.emax - self.p + 1)


FORMATS: dict[str, Format] = {
    "float16": Format("float16", 11, -14, 15, np.dtype(np.float16), np.dtype(np.uint16)),
    "bfloat16": Format("bfloat16", 8, -126, 127, np.dtype(ml_dtypes.bfloat16), np.dtype(np.uint16)),
    "float32": Format("float32", 24, -126, 127, np.dtype(np.float32), np.dtype(np.uint32)),
    "float64": Format("float64", 53, -1022, 1023, np.dtype(np.float64), np.dtype(np.uint64)),
}


def dtype_name(x) -> str:
    """Canonical name of an array's (or dtype's) floating format, e.g. 'bfloat16'."""
    if isinstance(x, (np.ndarray, np.generic)):
        dt = x.dtype
    else:
        try:
            dt = np.dtype(x)
        except TypeError:
            raise ValueError(f"not a dtype: {x!r}") from None
    name = dt.name
    if name not in FORMATS:
        raise ValueError(f"unsupported dtype {name!r}; supported: {', '.join(FORMATS)}")
    return name


def np_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a format name (bfloat16 is ml_dtypes')."""
    try:
        return FORMATS[name].np_dtype
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(FORMATS)}") from None


def get_format(dtype) -> Format:
    if isinstance(dtype, Format):
        return dtype
    if isinstance(dtype, str) and dtype in FORMATS:
        return FORMATS[dtype]
    return FORMATS[dtype_name(dtype)]


# ---------------------------------------------------------------------------------------------
# Correct rounding of exact values (mpf) to a format


def _round_parts(sign: int, man: int, exp: int, fmt: Format) -> float:
    """Round (-1)**sign * man * 2**exp (man > 0) to fmt; returns a Python float holding it exactly."""
    top = exp + man.bit_length() - 1  # exponent of the leading bit
    q = max(top - fmt.p + 1, fmt.qmin)  # quantum exponent of the result
    if q > exp:
        shift = q - exp
        if shift > man.bit_length():  # below half the quantum (e.g. exp(-3e38)): rounds to zero
            return -0.0 if sign else 0.0
        r = man >> shift
        rem = man - (r << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and (r & 1)):
            r += 1
    else:
        r = man << (exp - q)
    if r == 0:
        return -0.0 if sign else 0.0
    # overflow: the value rounded with unbounded exponent exceeds the largest finite number
    if r.bit_length() + q - 1 > fmt.emax:
        return -math.inf if sign else math.inf
    v = math.ldexp(r, q)
    return -v if sign else v


def round_mpf(x, fmt) -> float:
    """One correct round-half-even rounding of an exact mpf (or float/int) to ``fmt``."""
    m = x._mpf_ if isinstance(x, mpmath.mpf) else mpmath.mpf(x)._mpf_
    return round_raw(m, get_format(fmt))


def round_raw(m: tuple, fmt: Format) -> float:
    """:func:`round_mpf` of a raw mpmath value tuple (sign, man, exp, bc), for hot loops."""
    if m == libmp.fzero:
        return 0.0
    if m == libmp.fnzero:
        return -0.0
    if m == libmp.finf:
        return math.inf
    if m == libmp.fninf:
        return -math.inf
    if m == libmp.fnan:
        return math.nan
    sign, man, exp, _bc = m
    return _round_parts(sign, int(man), int(exp), fmt)


def to_dtype(values, dtype) -> np.ndarray:
    """Correctly rounded NumPy array of ``dtype`` from exact values (object array of mpf).

    One round-half-even rounding per element, with the format's subnormals and overflow to
    +-inf; NaN stays NaN.  Never rounds through an intermediate format: the rounding is done on
    the exact value with integers and the result is exactly representable in float64, so the
    final cast is exact.
    """
    fmt = get_format(dtype)
    arr = np.asarray(values, dtype=object)
    out = np.empty(arr.shape, dtype=np.float64)
    flat_in = arr.reshape(-1)
    flat_out = out.reshape(-1)
    for i, v in enumerate(flat_in):
        flat_out[i] = round_mpf(v, fmt)
    return out.astype(fmt.np_dtype)


def _is_quad(dt) -> bool:
    from .numerics import QUAD

    return QUAD is not None and dt == QUAD.dtype


# float64 -> these formats is one correctly rounded conversion in NumPy (IEEE hardware for float32,
# npy_double_to_half for float16: round half to even, subnormals and overflow included); pinned by
# tests/test_reference_formats.py against the frexp/rint path below on every midpoint it tries
_CAST_EXACT = ("float32", "float16")


def _scale2(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """a * 2**k exactly for |k| <= 2100 (no over/underflow in long double or quad); quad has
    no ldexp loop for array exponents, so it multiplies by two float64 powers of two."""
    if a.dtype == np.float64 or a.dtype == np.longdouble:
        return np.ldexp(a, k.astype(np.int32))
    k1 = k // 2
    return a * np.ldexp(1.0, k1) * np.ldexp(1.0, k - k1)


def _bfloat16_via_odd(v: np.ndarray) -> np.ndarray:
    """float64 -> bfloat16, correctly rounded: first to float32 rounded *to odd* (an inexact result
    gets an odd last bit, which keeps the sticky information), then ml_dtypes' round-half-even
    float32 -> bfloat16 cast; to-odd with 16 spare bits makes the second rounding exact RNE.
    Pinned against the frexp/rint path on midpoints by tests/test_reference_formats.py."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = v.astype(np.float32)
        inexact = (r.astype(np.float64) != v) & np.isfinite(r) & np.isfinite(v)
        even = (r.view(np.uint32) & 1) == 0
        toward = np.where(v > r, np.float32(np.inf), np.float32(-np.inf))
        r = np.where(inexact & even, np.nextafter(r, toward), r)
        # beyond float32's range: bfloat16 shares float32's exponent range, so it is inf there too
        return r.astype(ml_dtypes.bfloat16).astype(np.float64)


def round_float(values: np.ndarray, dtype) -> np.ndarray:
    """Correctly round float64, long double or quad (numpy-quaddtype) values to ``dtype``, vectorised.

    Exact for any input format with at least the target's exponent range (rounding is done by
    frexp/ldexp/rint in the input's own format: quad's casts to float64 are not correctly rounded
    on subnormal midpoints); returns float64 arrays holding values representable in ``dtype``
    (cast with ``.astype`` exactly afterwards).
    """
    fmt = get_format(dtype)
    v = np.asarray(values)
    work = v.dtype if v.dtype == np.longdouble or _is_quad(v.dtype) else np.dtype(np.float64)
    v = v.astype(work)
    if fmt.name == "float64" and work == np.float64:
        return v.copy()
    if fmt.name in _CAST_EXACT and work == np.float64:
        with np.errstate(all="ignore"):
            return v.astype(fmt.np_dtype).astype(np.float64)
    if fmt.name == "bfloat16" and work == np.float64:
        return _bfloat16_via_odd(v)
    finite = np.isfinite(v) & (v != 0)
    a = np.where(finite, np.abs(v), work.type(1))
    with np.errstate(over="ignore"):
        big = a >= np.ldexp(work.type(1), fmt.emax + 1)  # past the last binade: rounds to inf
    a = np.where(big, work.type(1), a)
    _, e = np.frexp(a)  # a = m * 2**e with m in [0.5, 1): leading bit exponent e - 1
    q = np.maximum(e.astype(np.int64) - 1 - (fmt.p - 1), fmt.qmin)
    scaled = _scale2(a, -q)  # exact: a power-of-two scaling inside the work range
    r = np.rint(scaled)  # round-half-even, exact since scaled has few fraction bits
    res = _scale2(r, q)
    res = np.where(big | (res > fmt.max_finite), np.inf, res)
    res = np.where(np.signbit(v), -res, res)
    out = np.where(finite, res, v)
    return out.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Distances and ulp errors


def ulp_of(x, fmt) -> mpmath.mpf:
    """The ulp of the binade of exact value x in fmt (2**qmin for zero and subnormals)."""
    fmt = get_format(fmt)
    m = mpmath.mpf(x)._mpf_
    if m in (libmp.fzero, libmp.fnzero) or not mpmath.isfinite(mpmath.mpf(x)):
        return mpmath.ldexp(1, fmt.qmin)
    _, man, exp, _ = m
    top = int(exp) + int(man).bit_length() - 1
    top = min(top, fmt.emax)
    return mpmath.ldexp(1, max(top - fmt.p + 1, fmt.qmin))


def _hilo(exact_values):
    if hasattr(exact_values, "hilo"):
        return exact_values.hilo()
    ex = np.asarray(exact_values, dtype=object)
    hi = np.empty(ex.size)
    lo = np.empty(ex.size)
    with mpmath.workprec(200):
        for i, v in enumerate(ex.reshape(-1)):
            v = mpmath.mpf(v)
            h = round_mpf(v, "float64")
            hi[i] = h
            lo[i] = float(v - h) if (mpmath.isfinite(v) and math.isfinite(h)) else 0.0
    return hi.reshape(ex.shape), lo.reshape(ex.shape)


def ulp_of_value(r: np.ndarray, fmt) -> np.ndarray:
    """ulp_of_float(r, 0, fmt) for float64 arrays ``r`` (finite or not), from the exponent bits:
    the settling stage asks it of every element."""
    fmt = get_format(fmt)
    biased = (np.abs(np.asarray(r, np.float64)).view(np.int64) >> 52).astype(np.int64)
    top = np.where(biased == 0x7FF, 0, biased - 1023)  # inf/nan: any value, the caller masks them
    q = np.maximum(np.minimum(top, fmt.emax) - fmt.p + 1, fmt.qmin)  # float64 subnormals: top -1023
    q = np.where(r == 0, fmt.qmin, q)
    out = ((np.maximum(q, -1022) + 1023) << 52).view(np.float64)
    small = q < -1022  # float64's subnormal ulps
    if small.any():
        out[small] = np.ldexp(1.0, q[small])
    return out


def ulp_of_float(hi: np.ndarray, lo: np.ndarray, fmt) -> np.ndarray:
    """ulp(exact) in fmt for exact = hi + lo (float64 pair), vectorised; 2**qmin for 0/subnormals."""
    fmt = get_format(fmt)
    a = np.abs(hi)
    with np.errstate(all="ignore"):
        m, e = np.frexp(np.where(np.isfinite(a) & (a > 0), a, 1.0))
        top = e - 1
        # exact just below a power of two while hi rounded up onto it: the binade below
        top = np.where((m == 0.5) & (np.sign(lo) * np.sign(hi) < 0), top - 1, top)
        top = np.minimum(top, fmt.emax)
        q = np.maximum(top - fmt.p + 1, fmt.qmin)
        q = np.where(a > 0, q, fmt.qmin)
    return np.ldexp(1.0, q)


def ulp_error(exact_values, observed, dtype) -> np.ndarray:
    """|observed - exact| / ulp(exact) per element, in float64 (vectorised on hi + lo pairs).

    ``exact_values`` is an :class:`~reference.exact.Exact` (fast: its cached hi/lo pairs) or an
    object array of mpf.  Specials: both NaN, or the same infinity on both sides -> 0; otherwise a
    NaN or infinity on either side -> inf.
    """
    fmt = get_format(dtype)
    hi, lo = _hilo(exact_values)
    ob = np.asarray(observed).astype(np.float64)
    hi, lo = np.broadcast_to(hi, ob.shape), np.broadcast_to(lo, ob.shape)
    with np.errstate(all="ignore"):
        err = np.abs((ob - hi) - lo) / ulp_of_float(hi, lo, fmt)
    special = ~np.isfinite(hi) | ~np.isfinite(ob)
    same = (np.isnan(hi) & np.isnan(ob)) | (np.isinf(hi) & (hi == ob))
    return np.where(special, np.where(same, 0.0, np.inf), err)


def abs_error(exact_values, observed) -> np.ndarray:
    """|observed - exact| in float64 (0 for identical specials, inf for differing ones)."""
    hi, lo = _hilo(exact_values)
    ob = np.asarray(observed).astype(np.float64)
    hi, lo = np.broadcast_to(hi, ob.shape), np.broadcast_to(lo, ob.shape)
    with np.errstate(all="ignore"):
        err = np.abs((ob - hi) - lo)
    special = ~np.isfinite(hi) | ~np.isfinite(ob)
    same = (np.isnan(hi) & np.isnan(ob)) | (np.isinf(hi) & (hi == ob))
    return np.where(special, np.where(same, 0.0, np.inf), err)


def ordinal(values, dtype) -> np.ndarray:
    """Map floats of ``dtype`` to integers that are consecutive for consecutive floats.

    -0 and +0 map to the same integer; NaN is not meaningful (callers mask it).
    """
    fmt = get_format(dtype)
    a = np.ascontiguousarray(np.asarray(values).astype(fmt.np_dtype))
    bits = a.view(fmt.uint).astype(np.int64) if fmt.uint.itemsize < 8 else a.view(np.int64).copy()
    width = fmt.uint.itemsize * 8
    if width < 64:
        sign = (bits >> (width - 1)) & 1
        mag = bits & ((1 << (width - 1)) - 1)
    else:
        sign = (bits < 0).astype(np.int64)
        mag = bits & np.int64(0x7FFFFFFFFFFFFFFF)
    return np.where(sign == 1, -mag, mag)


def from_ordinal(o, dtype) -> np.ndarray:
    """Inverse of :func:`ordinal`: the floats of ``dtype`` at these ordinals (0 gives +0)."""
    fmt = get_format(dtype)
    o = np.asarray(o, dtype=np.int64)
    sign = np.uint64(1) << np.uint64(8 * fmt.uint.itemsize - 1)
    bits = np.where(o < 0, np.abs(o).astype(np.uint64) | sign, o.astype(np.uint64))
    return bits.astype(fmt.uint).view(fmt.np_dtype)


def ordinal_distance(a, b, dtype) -> np.ndarray:
    """Number of representable steps between a and b (same format); 0 for NaN/NaN, big for NaN/x."""
    oa, ob = ordinal(a, dtype), ordinal(b, dtype)
    d = np.abs(oa.astype(np.float64) - ob.astype(np.float64))  # float: no int64 overflow
    na = np.isnan(np.asarray(a).astype(np.float64))
    nb = np.isnan(np.asarray(b).astype(np.float64))
    d = np.where(na & nb, 0.0, d)
    d = np.where(na ^ nb, np.inf, d)
    return d


def as_float64(values) -> np.ndarray:
    """Exact values rounded to float64 (for plotting and scales, never for verdicts)."""
    return to_dtype(values, "float64")
