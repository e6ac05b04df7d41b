"""The verdict ladder (docs/verdicts.md states each rule and its justification; docs/design.md the
data flow): one rung per output element, the first rung that holds.

0. undetermined  the oracle could not settle the value: reported, never judged
1. special       NaN vs number, inf vs finite, wrong sign of inf -> FAIL
2. accurate      ulp error <= tol.ulp (same NaN/inf on both sides also lands here)
3. stable        |err| <= (c0 + c1*log2 n) * (u*cond + eta): pairwise summation's bound (eta: the
                 smallest subnormal, the absolute error every underflowing operation may commit);
                 under ``--summation recursive`` the recursive rung's elements are stable too
4. flushed       beyond stable, observed +-0 where the correctly rounded value is a nonzero
                 subnormal of the output format -> WARN (flush-to-zero)
5. absolute      |err| <= c_abs * u * scale -> WARN (the float32 confident-row cliff)
6. recursive     beyond the pairwise bound, within the recursive one
                 (c0 + c1*(n-1)) * (u_acc*max(cond, scale) + eta) -> WARN (a one-after-another sum;
                 stable under --summation recursive; u_acc as for magnitude)
7. magnitude     |err| <= c_mag * u_acc * scale * (1 + max|x|) for losses that declare max|x|
                 (LossDef.magnitude) -> WARN: accurate only relative to the inputs' magnitudes
8. fail

Then, only for elements already failing, three relabellings that name what the other answer is:

- flushed (WARN): a failing element that is, within the stable bound, the answer for the inputs
  with their subnormals read as 0 (denormals-are-zero, the input side of flush-to-zero);

- convention (WARN): a special or failing element at a point where the loss declares torch's
  answer a convention (LossDef.conventions) and the observation is the other answer (the limit);
- semantic (FAIL): a failing element that matches one of the loss's declared variants
  (LossDef.variants: a probability clip, a cap) within the stable bound, where the variant's
  answer is not torch's.

No rung passes a NaN or inf where a finite answer exists, except the declared conventions.
"""
from __future__ import annotations

import numpy as np

from harness.metrics import special_masks
from harness.tolerances import ACCUMULATION, DtypeTolerance

__all__ = [
    "FAIL_RUNGS",
    "RUNGS",
    "RUNG_SEVERITY",
    "WARN_RUNGS",
    "bounds",
    "classify",
    "flushed_subnormal",
    "match_convention",
    "match_flushed_inputs",
    "match_variant",
    "record_verdict",
]

RUNGS = ("undetermined", "special", "accurate", "stable", "flushed", "absolute", "recursive", "magnitude",
         "convention", "semantic", "fail")
# order used to pick the worst element: higher is worse; undetermined is never "worst" if
# anything was judged
RUNG_SEVERITY = {"undetermined": -1, "accurate": 0, "stable": 1, "absolute": 2, "recursive": 3, "magnitude": 4,
                 "flushed": 5, "convention": 6, "semantic": 7, "fail": 8, "special": 9}
#: rungs whose elements make a record warn (FAIL under --strict, as every warn)
WARN_RUNGS = ("recursive", "absolute", "magnitude", "flushed", "convention")
#: rungs whose elements make a record fail
FAIL_RUNGS = ("special", "semantic", "fail")


def bounds(exact, tol: DtypeTolerance, magnitude=None) -> dict[str, np.ndarray]:
    """The ladder's per-element allowances (absolute errors), the one place they are derived:

    ``stable``        (c0 + c1*log2 n) * (u*cond + eta): pairwise summation's backward-error bound
    ``stable_no_eta`` the same without the underflow allowance eta
    ``recursive``     (c0 + c1*(n - 1)) * (u_acc*max(cond, scale) + eta): one-after-another
                      summation's, of the terms (cond) and of the loss's unit (scale: the sum
                      inside a log, whose error is absolute)
    ``absolute``      c_abs * u * scale
    ``magnitude``     c_mag * u_acc * scale * (1 + max|x|) (NaN where the loss declares no max|x|)
    Calibration (benchmarks/calibrate.py) divides errors by these to measure how much of each
    rung a backend uses.
    """
    from reference import formats

    shape = np.shape(exact.rounded)
    fmt = formats.FORMATS[exact.dtype]
    u, eta = float(fmt.u), float(np.ldexp(1.0, fmt.qmin))
    u_acc = float(formats.FORMATS[ACCUMULATION[exact.dtype]].u)
    nterms = np.maximum(np.asarray(exact.nterms, dtype=np.float64).reshape(shape), 1.0)
    cond = np.asarray(exact.cond, dtype=np.float64).reshape(shape)
    scale = np.asarray(exact.scale, dtype=np.float64).reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        factor = tol.c0 + tol.c1 * np.log2(nterms)
        recursive = (tol.c0 + tol.c1 * (nterms - 1)) * (u_acc * np.fmax(cond, scale) + eta)
        if magnitude is None:
            mag = np.full(shape, np.nan)
        else:
            m = np.broadcast_to(np.asarray(magnitude, np.float64), shape)
            mag = tol.c_mag * u_acc * scale * (1 + np.where(np.isfinite(m), m, np.nan))
        return {"stable": factor * (u * cond + eta), "stable_no_eta": factor * (u * cond),
                "recursive": recursive, "absolute": tol.c_abs * u * scale, "magnitude": mag}


def classify(exact, observed: np.ndarray, figs: dict[str, np.ndarray], tol: DtypeTolerance,
             magnitude=None) -> np.ndarray:
    """Per-element rung names (a str ndarray of the output's shape), before the convention and
    semantic relabellings (:func:`match_convention`, :func:`match_variant`)."""
    shape = np.shape(exact.rounded)
    undet = np.asarray(exact.undetermined, dtype=bool).reshape(shape)
    same, mismatch = special_masks(exact, observed)
    ulp, abs_err = figs["ulp"], figs["abs_err"]
    b = bounds(exact, tol, magnitude)
    with np.errstate(invalid="ignore", over="ignore"):
        accurate = same | (ulp <= tol.ulp)
        stable = abs_err <= b["stable"]
        recursive = abs_err <= b["recursive"]
        absolute = abs_err <= b["absolute"]
        mag = abs_err <= b["magnitude"]
    flushed = flushed_subnormal(exact, observed)
    declared = "stable" if tol.summation == "recursive" else "recursive"
    # np.select takes the first true condition: exactly the ladder's order
    return np.select([undet, mismatch, accurate, stable, flushed, absolute, recursive, mag],
                     ["undetermined", "special", "accurate", "stable", "flushed", "absolute", declared,
                      "magnitude"], default="fail").astype("<U12")


def _close(observed: np.ndarray, other: np.ndarray, allowance: np.ndarray, dtype: str) -> np.ndarray:
    """Where ``observed`` is ``other`` (float64) as values: the same NaN or inf, or both finite and
    within ``allowance`` plus 2 ulp (of the output format, at |other|) of each other."""
    from reference import formats

    fmt = formats.FORMATS[dtype]
    obs = np.asarray(observed).astype(np.float64).reshape(np.shape(other))
    with np.errstate(invalid="ignore", over="ignore"):
        both_nan = np.isnan(obs) & np.isnan(other)
        same_inf = np.isinf(obs) & (obs == other)
        mag = np.maximum(np.abs(other), np.ldexp(1.0, fmt.emin))
        ulp = np.ldexp(1.0, (np.floor(np.log2(np.where(np.isfinite(mag), mag, 1.0))) - (fmt.p - 1)).astype(int))
        near = np.isfinite(obs) & np.isfinite(other) & (np.abs(obs - other) <= allowance + 2 * ulp)
    return both_nan | same_inf | near


def match_convention(rungs: np.ndarray, exact, observed: np.ndarray, tol: DtypeTolerance, convention) -> np.ndarray:
    """The special or failing elements where ``observed`` is the loss's declared other answer
    (``convention``: a reference.lossdef.Convention) relabelled "convention"."""
    shape = rungs.shape
    mask = np.broadcast_to(np.asarray(convention.mask, bool), shape)
    other = np.broadcast_to(np.asarray(convention.values, np.float64), shape)
    hit = mask & np.isin(rungs, ("special", "fail")) & _close(observed, other, _allowance(exact, tol), exact.dtype)
    return np.where(hit, "convention", rungs).astype("<U12")


def match_variant(rungs: np.ndarray, exact, observed: np.ndarray, tol: DtypeTolerance, values) -> np.ndarray:
    """Where a failing element (special or fail) matches a declared variant's answer ``values``
    (float64, output-shaped, NaN where none) within the stable bound, and that answer is not
    torch's there (the clip or cap does not bite: the two are within the same allowance, so the
    variant cannot be what the observation shows): True."""
    other = np.broadcast_to(np.asarray(values, np.float64), rungs.shape)
    allowance = _allowance(exact, tol)
    torch_answer = np.asarray(exact.rounded).astype(np.float64).reshape(rungs.shape)
    return (np.isin(rungs, ("special", "fail")) & ~np.isnan(other) & _close(observed, other, allowance, exact.dtype)
            & ~_close(torch_answer, other, allowance, exact.dtype))


def match_flushed_inputs(rungs: np.ndarray, daz, observed: np.ndarray, tol: DtypeTolerance) -> np.ndarray:
    """Where a failing (not special) element is, within the stable bound, the oracle's answer
    ``daz`` for the inputs with their subnormals read as 0 (denormals-are-zero, which TensorFlow
    and XLA set on CPU with flush-to-zero): True.  A NaN or inf where a finite answer exists stays
    special: reading an input as 0 is allowed to cost digits, not the result."""
    other = np.asarray(daz.rounded).astype(np.float64).reshape(rungs.shape)
    return (rungs == "fail") & np.isfinite(other) & _close(observed, other, _allowance(daz, tol), daz.dtype)


def _allowance(exact, tol: DtypeTolerance) -> np.ndarray:
    """The stable bound where it is finite, else 0: at a special point the oracle's cond may be
    inf or NaN, and an infinite allowance would let any number match the other answer."""
    b = bounds(exact, tol)["stable"]
    return np.where(np.isfinite(b), b, 0.0)


def flushed_subnormal(exact, observed: np.ndarray) -> np.ndarray:
    """Where ``observed`` is +0 or -0 and the correctly rounded value is a nonzero subnormal of the
    output format: what flush-to-zero hardware and compilers return for a subnormal result."""
    from reference import formats

    fmt = formats.FORMATS[exact.dtype]
    shape = np.shape(exact.rounded)
    obs64 = np.asarray(observed).astype(np.float64).reshape(shape)
    r64 = np.asarray(exact.rounded).astype(np.float64).reshape(shape)
    with np.errstate(invalid="ignore"):
        return (obs64 == 0) & (r64 != 0) & (np.abs(r64) < np.ldexp(1.0, fmt.emin))


def record_verdict(rungs: np.ndarray) -> str:
    """Verdict of one check = its worst element: special/semantic/fail -> fail, a warn rung
    (flushed, recursive, absolute, magnitude, convention) -> warn, else pass; a check whose every
    element is undetermined is "undetermined"."""
    present = set(np.unique(rungs).tolist())
    if present & set(FAIL_RUNGS):
        return "fail"
    if present & set(WARN_RUNGS):
        return "warn"
    if present and present <= {"undetermined"}:
        return "undetermined"
    return "pass"
