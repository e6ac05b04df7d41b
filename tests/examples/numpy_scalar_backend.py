"""A Backend class over plain NumPy whose reductions return NumPy scalars (``arr.sum()`` gives
``np.float32``, not an array): the 0-d outputs a non-torch library hands back.

log_softmax in float64 with the max subtracted, cross_entropy of (N, C) class indices, rounded once
into the case's dtype; no gradients.  Not a defect: the tests use it to check that ``pkg.mod:Class``
loads from the command line, that NumPy scalars are judged as 0-d outputs and that ``show``'s repro
snippet rebuilds the class.
"""
from __future__ import annotations

import numpy as np

from harness.backends import Backend, Observation, Unsupported


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


class NumpyScalarBackend(Backend):
    name = "numpy-scalar"

    def supports(self, loss):
        return loss in ("log_softmax", "cross_entropy")

    def _evaluate(self, case):
        x = np.asarray(case.args[0])
        if x.dtype.name not in ("float32", "float64"):
            raise Unsupported("numpy-scalar: float32 and float64 only")
        if case.loss == "log_softmax":
            return Observation(_log_softmax(x.astype(np.float64), case.kwargs["dim"]).astype(x.dtype))
        t, kw = case.args[1], dict(case.kwargs)
        reduction = kw.pop("reduction", "mean")
        if x.ndim != 2 or t.dtype != np.int64 or any(v is not None and v != d for v, d in (
                (kw.get("weight"), None), (kw.get("label_smoothing", 0.0), 0.0), (kw.get("softcap"), None),
                (kw.get("z_loss", 0.0), 0.0))) or np.any(t == kw.get("ignore_index", -100)):
            raise Unsupported("numpy-scalar: plain (N, C) class-index cross_entropy only")
        per_row = -_log_softmax(x.astype(np.float64), 1)[np.arange(len(t)), t].astype(x.dtype)
        if reduction == "none":
            return Observation(per_row)
        total = per_row.astype(np.float64).sum()
        value = total if reduction == "sum" else total / len(t)
        return Observation(x.dtype.type(value))  # a NumPy scalar, not an array
