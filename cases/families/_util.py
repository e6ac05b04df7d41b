"""Small helpers shared by the family modules."""
from __future__ import annotations

import numpy as np

from reference.registry import REDUCTIONS

from ..sampling import finfo


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
