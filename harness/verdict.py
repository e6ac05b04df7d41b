"""The verdict ladder (docs/design.md): one rung per output element, first rung that holds.

0. undetermined  the oracle could not settle the value: reported, never judged
1. special       NaN vs number, inf vs finite, wrong sign of inf -> FAIL
2. accurate      ulp error <= tol.ulp (same NaN/inf on both sides also lands here)
3. stable        |err| <= (c0 + c1*log2(max(nterms, 1))) * (u * cond + eta)   (backward-stable
                 bound; eta = the format's smallest subnormal, the absolute error every operation may
                 commit when its result underflows -- LAPACK's "eta" term)
4. absolute      |err| <= c_abs * u * scale -> WARN (the float32 confident-row cliff)
5. fail
"""
from __future__ import annotations

import numpy as np

from harness.metrics import special_masks
from harness.tolerances import DtypeTolerance

__all__ = ["RUNGS", "RUNG_SEVERITY", "bounds", "classify", "record_verdict"]

RUNGS = ("undetermined", "special", "accurate", "stable", "absolute", "fail")
# order used to pick the worst element: higher is worse; undetermined is never "worst" if
# anything was judged
RUNG_SEVERITY = {"undetermined": -1, "accurate": 0, "stable": 1, "absolute": 2, "fail": 3, "special": 4}


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
    # np.select takes the first true condition: exactly the ladder's order
    return np.select([undet, mismatch, accurate, stable, absolute],
                     ["undetermined", "special", "accurate", "stable", "absolute"],
                     default="fail").astype("<U12")


def record_verdict(rungs: np.ndarray) -> str:
    """Verdict of one check = its worst element: special/fail -> fail, absolute -> warn, else pass;
    a check whose every element is undetermined is "undetermined"."""
    present = set(np.unique(rungs).tolist())
    if present & {"special", "fail"}:
        return "fail"
    if "absolute" in present:
        return "warn"
    if present and present <= {"undetermined"}:
        return "undetermined"
    return "pass"
