"""Reductions shared by the NumPy implementations of the loss modules.

``nx`` is the backend's arithmetic (harness/backends/numpy_numerics.py: Careful or Naive); these
helpers only do what torch's reductions do, in that arithmetic.
"""
from __future__ import annotations

import numpy as np


def reduce_elementwise(nx, per, reduction: str, count: int | None = None):
    """none / sum / mean (over ``count`` elements, default all) of per-element losses."""
    if reduction == "none":
        return per
    k = nx.scale_exponent(per)
    total = nx.total(per, k)
    if reduction == "sum":
        return nx.unscale(total, k)
    return nx.unscale(total / (per.size if count is None else count), k)


def elementwise_upstream(nx, grad_output, reduction: str, count: int):
    """grad_output as each element's factor: itself ('none') or over the mean's count."""
    g = nx.work(grad_output)
    return g if reduction in ("none", "sum") else g / count


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below: no exp overflow, full relative precision."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
