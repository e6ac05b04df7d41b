"""Small helpers shared by the case families of the loss modules."""
from __future__ import annotations

import numpy as np

from ..lossdef import REDUCTIONS
from ..sampling import cast, finfo


def reduction(i: int) -> str:
    """Rotate through the reductions so every family exercises all three."""
    return REDUCTIONS[i % len(REDUCTIONS)]


def fits(value: float, dtype: str, margin: float = 4.0) -> bool:
    """True when |value|*margin is finite in dtype (keeps shifted logits away from overflow)."""
    return abs(value) * margin < float(finfo(dtype).max)


def lead(row: np.ndarray, t: int) -> float:
    """Target logit's lead over the runner-up, from the stored bits."""
    r = row.astype(np.float64)
    others = np.delete(r, t)
    return float(r[t] - others.max()) if others.size else float("inf")


def absorption_rows(rng, dtype, n: int, rows: int = 2) -> np.ndarray:
    """Rows of n logits: one 0 and the rest at -d, with e^-d ~ 0.7 u of the dtype.

    Each small exponential is below half an ulp of an accumulator already holding the max's 1, so
    a running sum started at the max absorbs all of them (relative error ~ n u), while the exact
    sum of the small terms, ~0.7 n u, is far from negligible.  Pairwise or compensated sums, or
    summing the small terms first, do not lose them.
    """
    d = -np.log(0.7 * float(finfo(dtype).eps) / 2)
    x = np.full((rows, n), -d)
    for r in range(rows):
        x[r, 0 if r == 0 else int(rng.integers(0, n))] = 0.0
    return cast(x, dtype)
