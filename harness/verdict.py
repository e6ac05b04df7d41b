"""The verdict ladder (docs/design.md): one rung per output element, first rung that holds.

0. undetermined  the oracle could not settle the value: reported, never judged
1. special       NaN vs number, inf vs finite, wrong sign of inf -> FAIL
2. accurate      ulp error <= tol.ulp (same NaN/inf on both sides also lands here)
3. stable        |err| <= (c0 + c1*log2(max(nterms, 1))) * (u * cond + eta)   (backward-stable
                 bound; eta = the format's smallest subnormal, the absolute error every operation may
                 commit when its result underflows -- LAPACK's "eta" term)
4. flushed       beyond the stable bound, observed +-0 where the correctly rounded value is a nonzero
                 subnormal of the output format -> WARN (flush-to-zero: GPUs, XLA, MLX)
5. absolute      |err| <= c_abs * u * scale -> WARN (the float32 confident-row cliff)
6. fail

``flushed`` takes only elements beyond the stable bound, which would otherwise warn (absolute) or
fail, and only for the one error flush-to-zero commits; it warns, so it never passes anything and
never hides a special mismatch.  A zero where the exact result is a normal number (or a nonzero
wrong value anywhere) still lands on absolute or fail.
"""
from __future__ import annotations

import numpy as np

from harness.metrics import special_masks
from harness.tolerances import DtypeTolerance

__all__ = ["RUNGS", "RUNG_SEVERITY", "WARN_RUNGS", "bounds", "classify", "flushed_subnormal", "record_verdict"]

RUNGS = ("undetermined", "special", "accurate", "stable", "flushed", "absolute", "fail")
# order used to pick the worst element: higher is worse; undetermined is never "worst" if
# anything was judged
RUNG_SEVERITY = {"undetermined": -1, "accurate": 0, "stable": 1, "absolute": 2, "flushed": 3, "fail": 4,
                 "special": 5}
#: rungs whose elements make a record warn (FAIL under --strict, as every warn)
WARN_RUNGS = ("absolute", "flushed")


def bounds(exact, tol: DtypeTolerance) -> dict[str, np.ndarray]:
    """The ladder's per-element allowances (absolute errors), the one place they are derived:

    ``stable``        (c0 + c1*log2(max(nterms, 1))) * (u * cond + eta)
    ``stable_no_eta`` the same without the underflow allowance eta
    ``absolute``      c_abs * u * scale
    Calibration (benchmarks/calibrate.py) divides errors by these to measure how much of each
    rung a backend uses.
    """
    from reference import formats

    shape = np.shape(exact.rounded)
    fmt = formats.FORMATS[exact.dtype]
    u, eta = float(fmt.u), float(np.ldexp(1.0, fmt.qmin))
    nterms = np.maximum(np.asarray(exact.nterms, dtype=np.float64).reshape(shape), 1.0)
    cond = np.asarray(exact.cond, dtype=np.float64).reshape(shape)
    scale = np.asarray(exact.scale, dtype=np.float64).reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        factor = tol.c0 + tol.c1 * np.log2(nterms)
        return {"stable": factor * (u * cond + eta), "stable_no_eta": factor * (u * cond),
                "absolute": tol.c_abs * u * scale}


def classify(exact, observed: np.ndarray, figs: dict[str, np.ndarray], tol: DtypeTolerance) -> np.ndarray:
    """Per-element rung names (a str ndarray of the output's shape)."""
    shape = np.shape(exact.rounded)
    undet = np.asarray(exact.undetermined, dtype=bool).reshape(shape)
    same, mismatch = special_masks(exact, observed)
    ulp, abs_err = figs["ulp"], figs["abs_err"]
    b = bounds(exact, tol)
    with np.errstate(invalid="ignore", over="ignore"):
        accurate = same | (ulp <= tol.ulp)
        stable = abs_err <= b["stable"]
        absolute = abs_err <= b["absolute"]
    flushed = flushed_subnormal(exact, observed)
    # np.select takes the first true condition: exactly the ladder's order
    return np.select([undet, mismatch, accurate, stable, flushed, absolute],
                     ["undetermined", "special", "accurate", "stable", "flushed", "absolute"],
                     default="fail").astype("<U12")


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
    """Verdict of one check = its worst element: special/fail -> fail, absolute/flushed -> warn,
    else pass; a check whose every element is undetermined is "undetermined"."""
    present = set(np.unique(rungs).tolist())
    if present & {"special", "fail"}:
        return "fail"
    if present & set(WARN_RUNGS):
        return "warn"
    if present and present <= {"undetermined"}:
        return "undetermined"
    return "pass"
