"""Exact, bit-preserving conversion between NumPy arrays and torch tensors.

bfloat16 has no NumPy-native type that torch understands, so its bits travel as int16 and are
re-viewed on the other side; nothing is ever rounded on the way in or out.
"""
from __future__ import annotations

import numpy as np
import torch

from .dtypes import BFLOAT16


def to_torch(a: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """A fresh tensor on ``device`` with exactly ``a``'s bits (a copy: case arrays are read-only).

    The bits are laid into a CPU tensor and then moved: a copy between devices never rounds, so
    the CPU path and a GPU's are the same code.
    """
    a = np.array(a, order="C", copy=True)  # not ascontiguousarray: that turns 0-d into 1-d
    if a.dtype == BFLOAT16:
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    return t.to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t``'s exact bits as a NumPy array (bfloat16 as ml_dtypes.bfloat16), from any device."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(BFLOAT16).copy()
    return t.numpy().copy()


def to_torch_arg(v, device: torch.device | str = "cpu"):
    """Array options become tensors on ``device``; NumPy scalars become Python scalars; the rest
    passes as is."""
    if isinstance(v, np.ndarray):
        return to_torch(v, device)
    if isinstance(v, np.generic):
        return v.item()
    return v
