"""Exact, bit-preserving conversion between NumPy arrays and torch tensors.

bfloat16 has no NumPy-native type that torch understands, so its bits travel as int16 and are
re-viewed on the other side; nothing is ever rounded on the way in or out.
"""
from __future__ import annotations

import numpy as np
import torch

from .dtypes import BFLOAT16


def to_torch(a: np.ndarray) -> torch.Tensor:
    """A fresh tensor with exactly ``a``'s bits (a copy: case arrays are read-only)."""
    a = np.array(a, order="C", copy=True)  # not ascontiguousarray: that turns 0-d into 1-d
    if a.dtype == BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t``'s exact bits as a NumPy array (bfloat16 as ml_dtypes.bfloat16)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(BFLOAT16).copy()
    return t.numpy().copy()


def to_torch_arg(v):
    """Array options become tensors; NumPy scalars become Python scalars; the rest passes as is."""
    if isinstance(v, np.ndarray):
        return to_torch(v)
    if isinstance(v, np.generic):
        return v.item()
    return v
