"""Shared pieces of the per-loss verdict-policy declarations (docs/verdicts.md): the largest
input magnitude behind each element of a row-form loss, and mpmath helpers for the semantic
variants.  Each loss module decides whether to use them; generic code only calls the LossDef
hooks (``magnitude``, ``conventions``, ``variants``)."""
from __future__ import annotations

import mpmath
import numpy as np

from ..formats import round_float
from ..lossdef import Problem

#: working precision of a variant's evaluation: variants are compared within the stable bound plus
#: a few ulp of float64 at most, so 113 bits (binary128's) is ample
VARIANT_PREC = 113


def row_magnitude(problem: Problem, check: str) -> np.ndarray:
    """max |x| over the finite entries of each row of ``problem.rows["x"]``, in the shape of
    ``check``: per row for an unreduced value, broadcast over the row for the input's gradient,
    the largest over all rows for a reduced value and any other argument's gradient (a bound:
    a sum or mean of per-row errors is at most the reduction's scale times the largest row's)."""
    x = np.abs(np.asarray(problem.rows["x"], np.float64))
    x = np.where(np.isfinite(x), x, 0.0)
    per_row = x.max(axis=1) if x.shape[1] else np.zeros(x.shape[0])
    if check == "grad:input":
        return np.asarray(problem.to_input(np.broadcast_to(per_row[:, None], x.shape)), np.float64)
    if check == "value" and not problem.reduced:
        return np.asarray(problem.rows_to_output(per_row if problem.reduction != "elementwise"
                                                 else np.broadcast_to(per_row[:, None], x.shape)), np.float64)
    return np.asarray(per_row.max() if per_row.size else 0.0, np.float64)


def format_constant(value: float, dtype: str) -> mpmath.mpf:
    """A library's float constant (a Python float, e.g. ``1 - 1e-7``) as the format ``dtype``
    holds it: the number its kernel actually compares and subtracts with (``1 - 1e-7`` is
    1 - 2^-23 in float32 and 1 in float16)."""
    return mpmath.mpf(float(round_float(np.asarray([value], np.float64), dtype)[0]))


def mp_lse_minus(row: np.ndarray, t: int) -> mpmath.mpf:
    """logsumexp(row) - row[t] in mpmath at the current precision (NaN for a row without a finite
    max, as the oracle's cross-entropy)."""
    vals = [mpmath.mpf(float(v)) for v in row]
    finite = [v for v in vals if mpmath.isfinite(v)]
    if any(mpmath.isnan(v) for v in vals) or any(v == mpmath.inf for v in vals) or not finite:
        return mpmath.nan
    m = max(finite)
    return m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in vals)) - vals[t]


def reduce_mp(values: list, weights: list, reduction: str, shape: tuple, denominator=None) -> np.ndarray:
    """Per-position mpf values (already weighted) -> float64 in torch's output shape: ``none``
    as they are, ``sum`` their fsum, ``mean`` fsum / ``denominator`` (0/0 NaN, as torch)."""
    if reduction == "none":
        return np.array([float(v) for v in values], np.float64).reshape(shape)
    total = mpmath.fsum(values)
    if reduction == "sum":
        return np.asarray(float(total))
    d = mpmath.fsum(weights) if denominator is None else denominator
    if d == 0:
        return np.asarray(np.nan if total == 0 or mpmath.isnan(total) else float(mpmath.sign(total)) * np.inf)
    return np.asarray(float(total / d))


#: Paddle's softmax clips each shifted logit x - max x at -64 before exp (``ValueClip`` in its
#: softmax functor; paddlepaddle 3.3.1 on the CPU: softmax([0, -200]) = [1, 1.6e-28])
PADDLE_SHIFT_CLIP = -64.0


def mp_clipped_log_softmax(row: np.ndarray, lo: float) -> list:
    """log_softmax of ``row`` with every shifted logit x - max clipped below at ``lo`` (a -inf logit
    becomes ``lo`` too), as mpf at the current precision; all NaN for a row without a finite max or
    holding NaN or +inf (as the oracle, and Paddle)."""
    vals = [mpmath.mpf(float(v)) for v in row]
    finite = [v for v in vals if mpmath.isfinite(v)]
    if any(mpmath.isnan(v) for v in vals) or any(v == mpmath.inf for v in vals) or not finite:
        return [mpmath.nan] * len(vals)
    m = max(finite)
    z = [max(v - m, mpmath.mpf(lo)) for v in vals]
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
    return [v - lse for v in z]


def clip_bites(x: np.ndarray, lo: float) -> np.ndarray:
    """Per row of ``x`` (M, C): whether clipping x - max x below at ``lo`` changes anything (an
    entry, -inf included, more than -lo below a finite max).  Where it does not, the clipped
    variant is the loss itself and cannot explain a failure: its value need not be computed."""
    x = np.asarray(x, np.float64)
    if not x.size:
        return np.zeros(x.shape[0], bool)
    with np.errstate(invalid="ignore"):
        m = np.max(np.where(np.isfinite(x), x, -np.inf), axis=1, keepdims=True)
        return np.isfinite(m[:, 0]) & np.any(x - m < lo, axis=1)
