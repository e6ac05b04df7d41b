"""Per-element error figures of an observed output against the oracle's Exact.

The float-format arithmetic (ulp of a value, ordinal steps, |obs - exact| from mpf) is
``reference.formats``'; this module only decides what the figures mean at the edges, so that the
verdict ladder and the reports read one consistent set of numbers:

* an observed value equal to the correctly rounded one that is itself non-finite (NaN vs NaN,
  +inf vs +inf, including an exact value that overflows the format) has every figure 0;
* a NaN on one side only, or an infinity against a finite value, has every figure inf;
* undetermined oracle elements have every figure NaN (they are reported, never judged).
"""
from __future__ import annotations

import mpmath
import numpy as np

from reference.formats import np_dtype

__all__ = ["FIGURE_NAMES", "figures", "special_masks"]

FIGURE_NAMES = ("ulp", "bits", "rel_u", "abs_err")


def figures(exact, observed: np.ndarray) -> dict[str, np.ndarray]:
    """``{"ulp", "bits", "rel_u", "abs_err"}`` -> float64 arrays of the output's shape.

    ``ulp``: |obs - exact| / ulp(exact) in the output format (subnormal ulp constant).
    ``bits``: log2(1 + ordinal distance between obs and the correctly rounded value).
    ``rel_u``: |obs - exact| / |exact| / u (0 when both are 0, inf when only exact is 0).
    ``abs_err``: |obs - exact| as float64.
    """
    from reference import formats

    dtype = exact.dtype
    u = float(formats.FORMATS[dtype].u)
    obs = np.asarray(observed)
    shape = np.shape(exact.rounded)
    undet = np.asarray(exact.undetermined, dtype=bool).reshape(shape)
    obs64 = obs.astype(np.float64)
    r64 = np.asarray(exact.rounded).astype(np.float64)

    if hasattr(exact, "hilo"):
        # the exact values as float64 pairs (to 2^-106 relative: every figure is right far below
        # 1e-3 ulp), vectorised; an mpf only for the few elements _rel_u needs it for.  An
        # undetermined element's NaN placeholder gives NaN figures, overwritten below
        src = exact
        hi, _ = exact.hilo()
        exact64 = np.asarray(hi, np.float64).reshape(shape)
        value_at = exact.values_at if hasattr(exact, "values_at") else (
            lambda idx: np.asarray(exact.values, dtype=object).reshape(-1)[idx])
    else:
        # undetermined elements: hand formats a harmless 0 so it never sees the oracle's NaN placeholder
        src = np.asarray(exact.values, dtype=object).copy()
        if undet.any():
            src[undet] = mpmath.mpf(0)
        exact64 = np.array(formats.as_float64(src), dtype=np.float64).reshape(shape)
        flat_src = src.reshape(-1)

        def value_at(idx):
            return flat_src[idx]
    ulp = np.array(formats.ulp_error(src, obs, dtype), dtype=np.float64).reshape(shape)

    obs_nan, r_nan = np.isnan(obs64), np.isnan(r64)
    either_nan = obs_nan | r_nan
    dist_obs = np.where(either_nan, 0.0, obs64).astype(np_dtype(dtype))
    dist_r = np.where(either_nan, 0.0, r64).astype(np_dtype(dtype))
    dist = np.array(formats.ordinal_distance(dist_obs, dist_r, dtype), dtype=np.float64).reshape(shape)
    bits = np.log2(1.0 + np.abs(dist))

    if dtype == "float64":
        abs_err = np.array(formats.abs_error(src, obs), dtype=np.float64).reshape(shape)
    else:
        # exact64 is within 2^-53 relative of the exact value, 2^-29 of a float32 ulp at worst:
        # float64 arithmetic is exact enough here and avoids a per-element mpf loop
        with np.errstate(invalid="ignore"):
            abs_err = np.array(np.abs(obs64 - exact64), dtype=np.float64)
        abs_err[np.isnan(abs_err)] = np.inf  # inf - inf: a mismatch, or zeroed below when alike
    rel_u = _rel_u(value_at, obs64, exact64, abs_err, u)

    same_special, mismatch = special_masks(exact, obs)
    # np ufuncs turn 0-d arrays (reduced losses) into scalars: make every figure a writable array
    out = {k: np.array(a, dtype=np.float64).reshape(shape)
           for k, a in (("ulp", ulp), ("bits", bits), ("rel_u", rel_u), ("abs_err", abs_err))}
    for arr in out.values():
        arr[same_special] = 0.0
        arr[mismatch] = np.inf
        arr[undet] = np.nan
    return out


def special_masks(exact, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(same_special, mismatch) boolean arrays, judged against the correctly rounded value.

    same_special: obs and rounded are the same NaN/inf (an exact value that overflows the format
    counts: +inf is then the right answer).  mismatch: NaN on one side only, an observed inf that
    is not the rounded value, or a finite observation of an exactly infinite value.
    """
    obs64 = np.asarray(observed).astype(np.float64)
    r64 = np.asarray(exact.rounded).astype(np.float64)
    obs_nan, r_nan = np.isnan(obs64), np.isnan(r64)
    same = ((obs64 == r64) & np.isinf(r64)) | (obs_nan & r_nan)
    mismatch = (obs_nan ^ r_nan) | (np.isinf(obs64) & ~same)
    maybe = np.flatnonzero(np.isinf(r64) & np.isfinite(obs64))
    if maybe.size:
        values = np.asarray(exact.values, dtype=object).reshape(-1)
        flat = mismatch.reshape(-1)  # a view: mismatch is a fresh contiguous array
        for i in maybe:
            if mpmath.isinf(values[i]):
                flat[i] = True
    undet = np.asarray(exact.undetermined, dtype=bool).reshape(r64.shape)
    return same & ~undet, mismatch & ~undet


def _rel_u(value_at, obs64, exact64, abs_err, u) -> np.ndarray:
    """abs_err / |exact| / u, in float64 where exact is a normal float64, in mpf where it is not
    (``value_at(flat indices)``: those exact values as mpf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = abs_err / np.abs(exact64) / u
    rel = np.array(np.where(abs_err == 0, 0.0, rel), dtype=np.float64)
    rel[np.isinf(abs_err)] = np.inf
    tiny = np.finfo(np.float64).tiny
    odd = ~(np.abs(exact64) >= tiny) | np.isinf(exact64)
    odd &= (abs_err != 0) & np.isfinite(abs_err) & np.isfinite(obs64)
    flat_rel, flat_obs = rel.reshape(-1), obs64.reshape(-1)
    idx = np.flatnonzero(odd)
    for i, v in zip(idx, value_at(idx) if idx.size else ()):
        if v == 0:
            flat_rel[i] = np.inf
        elif mpmath.isfinite(v):
            flat_rel[i] = float(abs(mpmath.mpf(float(flat_obs[i])) - v) / abs(v) / u)
    return rel
