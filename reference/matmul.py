"""Exact matrix products of low-precision inputs on float64 BLAS (an Ozaki-style splitting).

``linear_cross_entropy`` needs hidden @ weight.T *exactly* at LLM shapes (256 x 1024 x 32768), where
mpmath per product is out of the question.  Each row of A is cut into slices whose entries are
integers of at most ``beta`` bits times one power of two per row and slice (likewise the rows of
B), with 2 beta + ceil(log2 k) <= 53: a product of two slices is then a sum of k integers below
2^(2 beta), every partial sum an integer below 2^53 -- exact in float64 whatever order or blocking
BLAS uses, FMA or not.  The product is the sum of a few such exact matrices, each scaled by a power
of two, which is accumulated into float64 pairs ``hi + lo`` with error-free transformations; an
element whose exact sum does not fit a pair (or whose scaling under- or overflows) is flagged, and
its caller must not treat the pair as exact.

For bfloat16/float16 inputs of ordinary spread one slice per matrix suffices (one BLAS call); the
number of slices grows with the spread of magnitudes within a row.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["exact_matmul_t", "slice_bits"]

MAX_SLICES = 8  # beyond this the spread within a row is extreme: the product is flagged instead


def slice_bits(k: int) -> int:
    """beta: the most bits per slice entry so that k products of two slices sum exactly."""
    return (53 - max(1, math.ceil(math.log2(max(k, 2))))) // 2


def _exponent(m: np.ndarray) -> np.ndarray:
    """e with 2^(e-1) <= m < 2^e for positive finite float64 m (exact: frexp)."""
    return np.frexp(m)[1].astype(np.int64)


def _row_span(a: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(top, low) per row: max |a| < 2^top and every entry a multiple of 2^low (an entry of at
    most ``bits`` significant bits with |x| >= 2^(e-1) is a multiple of 2^(e-bits)); only the
    row's largest and smallest nonzero magnitudes are needed, two reductions over the matrix."""
    if not a.shape[1]:
        z = np.zeros(a.shape[0], np.int64)
        return z, z
    mag = np.abs(a)
    big = np.max(mag, axis=1)
    small = np.min(np.where(mag > 0, mag, np.inf), axis=1)
    empty = big == 0
    top = _exponent(np.where(empty, 1.0, big))
    low = np.maximum(_exponent(np.where(empty, 1.0, small)) - bits, -1074)
    return np.where(empty, 0, top), np.where(empty, 0, low)


def _times_pow2(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """a * 2^k[:, None], by one or two multiplications by exact powers of two (faster than
    ldexp with an exponent array); exact where the result is representable without rounding."""
    k1 = np.clip(k, -1000, 1000)
    out = a * np.ldexp(1.0, k1.astype(np.int32))[:, None]
    if np.any(k1 != k):
        out *= np.ldexp(1.0, (k - k1).astype(np.int32))[:, None]
    return out


def _slices(a: np.ndarray, beta: int, bits: int) -> tuple[list[np.ndarray], np.ndarray, bool]:
    """Integer-valued slices S_s (entries |.| < 2^beta) and row exponents q (rows, nslices) with
    a = sum_s S_s * 2^q[:, s]; the per-row flag is False where MAX_SLICES could not hold every bit."""
    top, low = _row_span(a, bits)
    n = int(min(MAX_SLICES, max(1, -(-int(np.max(top - low, initial=0)) // beta))))
    if n == 1:  # the common case: the row scaled to integers is the one slice
        q = top - beta
        return [_times_pow2(a, -q)], q[:, None], np.ones(a.shape[0], bool)
    rest = a.copy()
    out, qs = [], []
    for s in range(n):
        q = top - beta * (s + 1)
        # a power-of-two scaling: exact (the scaled entries stay below 2^beta, within range)
        ints = np.trunc(np.ldexp(rest, (-q)[:, None].astype(np.int32)))
        out.append(ints)
        qs.append(q)
        rest = rest - np.ldexp(ints, q[:, None].astype(np.int32))  # exact: the bits above 2^q
    return out, np.stack(qs, axis=1), ~np.any(rest != 0, axis=1)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def exact_matmul_t(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None, bits: int = 53
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a @ b.T (+ bias) exactly, as float64 pairs: returns (hi, lo, exact).

    ``a`` (m, k) and ``b`` (n, k) hold float64 copies of low-precision inputs; where ``exact`` is
    True, hi + lo is the exact product (|lo| <= ulp(hi) / 2); where False the pair is only close
    (and NaN when an input is not finite) and the caller must not settle from it.  ``bits``: the
    inputs' significand width (8 for bfloat16), which sets how many slices a row needs.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    m, k = a.shape
    n = b.shape[0]
    finite = np.all(np.isfinite(a), axis=1)[:, None] & np.all(np.isfinite(b), axis=1)[None, :]
    if bias is not None:
        finite &= np.isfinite(np.asarray(bias, np.float64))[None, :]
    a0 = np.where(np.isfinite(a), a, 0.0)
    b0 = np.where(np.isfinite(b), b, 0.0)
    beta = slice_bits(k)
    sa, qa, whole_a = _slices(a0, beta, bits)
    sb, qb, whole_b = _slices(b0, beta, bits)
    exact = finite & whole_a[:, None] & whole_b[None, :]
    hi = np.zeros((m, n))
    lo = np.zeros((m, n))
    terms = []
    for s in range(len(sa)):
        for t in range(len(sb)):
            p = sa[s] @ sb[t].T  # exact: integers below 2^53
            # scaled by 2^qa (rows) and 2^qb (columns): exact products by powers of two unless a
            # result falls below the normal range, which the round trip then checks
            qs, qt = qa[:, s], qb[:, t]
            # a row whose slice is all zero contributes nothing, whatever its (unused) exponent
            va = ((qs >= -1074) & (qs <= 1023)) | ~np.any(sa[s] != 0, axis=1)
            vb = ((qt >= -1074) & (qt <= 1023)) | ~np.any(sb[t] != 0, axis=1)
            exact &= va[:, None] & vb[None, :]
            with np.errstate(all="ignore"):
                ra = np.where((qs >= -1074) & (qs <= 1023), np.ldexp(1.0, np.clip(qs, -1074, 1023).astype(np.int32)), 1.0)
                rb = np.where((qt >= -1074) & (qt <= 1023), np.ldexp(1.0, np.clip(qt, -1074, 1023).astype(np.int32)), 1.0)
                scaled = (p * ra[:, None]) * rb[None, :]
                if np.any((np.abs(scaled) < 2.0 ** -1022) & (p != 0)):
                    exact &= ((scaled / rb[None, :]) / ra[:, None] == p) | (p == 0)
            exact &= np.isfinite(scaled)
            terms.append(scaled)
    if bias is not None:
        terms.append(np.broadcast_to(np.where(np.isfinite(bias), bias, 0.0)[None, :], (m, n)))
    # largest terms first keeps the pair short; each TwoSum is error-free, the low parts are
    # summed with TwoSum too and any error there makes the element inexact
    if len(terms) == 1:  # one exact product, nothing to add
        hi = terms[0]
    else:
        for term in terms:
            hi, err = _two_sum(hi, term)
            lo, err2 = _two_sum(lo, err)
            exact &= err2 == 0
        hi, lo = _two_sum(hi, lo)  # renormalise: |lo| <= ulp(hi)/2 when exact
    nan = ~finite
    if nan.any():
        # non-finite inputs: IEEE's answer from a plain product (inf*0 = nan and so on)
        with np.errstate(all="ignore"):
            plain = a @ b.T + (0.0 if bias is None else np.asarray(bias, np.float64)[None, :])
        hi = np.where(nan, plain, hi)
        lo = np.where(nan, 0.0, lo)
        exact |= nan & ~np.isfinite(plain)  # inf/nan follow from IEEE rules alone: exact
    return hi, lo, exact
