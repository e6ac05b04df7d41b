"""Shared helpers for the backend tests (no tests here): duck-typed cases, exact torch<->numpy.

The conversions here deliberately avoid harness.backends.convert (through float32/float64, which
hold every bfloat16/float16 value exactly) so the backend's own conversion is checked, not reused.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so `tests.planted.NAME` imports however pytest was started
    sys.path.append(str(ROOT))

DTYPES = ("float16", "bfloat16", "float32", "float64")
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
         "float64": torch.float64}
NUMPY = {"float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16),
         "float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}

# a drop-in lacking most functions, for `load("test_backends_support:PARTIAL")`
PARTIAL = SimpleNamespace(softmax=F.softmax, log_softmax=F.log_softmax)


def case(loss, args, kwargs=None, *, grad=False, grad_output=None, dtype=None):
    """A duck-typed Case (the fields backends read)."""
    args = tuple(args)
    dtype = dtype or ("bfloat16" if args[0].dtype == NUMPY["bfloat16"] else args[0].dtype.name)
    return SimpleNamespace(loss=loss, args=args, kwargs=dict(kwargs or {}), grad=grad,
                           grad_output=grad_output, dtype=dtype)


def np_of(t: torch.Tensor) -> np.ndarray:
    """Exact numpy copy of a tensor, via a wider type (no bit views)."""
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy().copy()


def torch_of(a: np.ndarray) -> torch.Tensor:
    """Exact tensor of a numpy array, via a wider type (no bit views)."""
    if a.dtype == NUMPY["bfloat16"]:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(a))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and values, NaN matching NaN (all formats are exact in float64)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "iub":
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))


def ordinal(a: np.ndarray, dtype: str) -> np.ndarray:
    """Monotone integer position of each value in its format (for ulp distances)."""
    bits = {"float16": np.int16, "bfloat16": np.int16, "float32": np.int32, "float64": np.int64}[dtype]
    i = np.asarray(a).astype(NUMPY[dtype]).view(bits).astype(np.int64)
    return np.where(i < 0, np.iinfo(bits).min - i, i)
