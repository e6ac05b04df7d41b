"""The optional ``tinygrad`` backend: tinygrad's ``Tensor`` losses (``pip install
'losscheck[tinygrad]'``), on tinygrad's default device (``DEV=...`` chooses another; its CPU device
compiles every kernel with ``clang``, which must be on PATH).

==================================  ==============================================================
losscheck                           tinygrad
==================================  ==============================================================
cross_entropy                       ``x.cross_entropy(t, reduction, label_smoothing)``: class
                                    indices or probability targets, torch's class dim
nll_loss                            ``x.nll_loss(t, weight, ignore_index, reduction)``, (N, C) only
binary_cross_entropy                ``x.binary_crossentropy(y, reduction)``
binary_cross_entropy_with_logits    ``x.binary_crossentropy_logits(y, reduction, pos_weight)``
softmax, log_softmax                ``x.softmax(axis)``, ``x.log_softmax(axis)``
==================================  ==============================================================

Gradients come from ``out.gradient(*inputs, gradient=grad_output)``.  Unsupported (tinygrad's
signatures lack them): cross_entropy's class weights and ignore_index, softcap / z_loss, BCE's
element weights, and the other losses.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Unsupported
from .dtypes import BFLOAT16
from .framework import FrameworkBackend, load_error


class TinygradBackend(FrameworkBackend):
    name = "tinygrad"
    LOSSES = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "softmax", "log_softmax")

    def __init__(self, device: str = "cpu"):
        try:
            from tinygrad import Device, Tensor, dtypes
        except Exception as exc:  # noqa: BLE001 - missing or broken: one line
            raise load_error("tinygrad", exc) from None
        try:
            default = str(Device.DEFAULT)
        except Exception as exc:  # noqa: BLE001 - "no usable devices" and the like
            raise load_error("tinygrad", exc) from None
        if default.partition(":")[0] == "CPU" and shutil.which("clang") is None:
            raise load_error("tinygrad", RuntimeError("tinygrad's CPU device compiles with clang, which is not "
                                                      "on PATH (install clang, or set DEV=PYTHON for its "
                                                      "emulator)"))
        self._Tensor, self._dtypes = Tensor, dtypes

    def _to_lib(self, a: np.ndarray) -> Any:
        if a.dtype == BFLOAT16:  # through float32 (exact), then tinygrad's own bfloat16
            return self._Tensor(a.astype(np.float32)).cast(self._dtypes.bfloat16)
        return self._Tensor(np.array(a, order="C", copy=True))  # not ascontiguousarray: 0-d stays 0-d

    def _to_numpy(self, a: Any) -> np.ndarray:
        if a.dtype == self._dtypes.bfloat16:
            return np.asarray(a.float().numpy()).astype(BFLOAT16)
        return np.asarray(a.numpy())

    def _vjp(self, f: Callable, primals: list, cotangent: np.ndarray) -> tuple[Any, list]:
        out = f(*primals)
        return out, out.gradient(*primals, gradient=self._to_lib(cotangent).cast(out.dtype))

    def _reduction(self, kwargs: dict) -> str:
        r = kwargs.pop("reduction", "mean")
        if r not in ("none", "sum", "mean"):
            raise Unsupported(f"backend 'tinygrad': no reduction {r!r}")
        return r

    def _cross_entropy(self, args, kwargs) -> Callable:
        self._no(kwargs, "cross_entropy", "weight", "softcap", "z_loss")
        self._ignored(args[1], kwargs, "cross_entropy")
        eps = float(kwargs.pop("label_smoothing", 0.0))
        r = self._reduction(kwargs)
        return lambda a: a["input"].cross_entropy(a["target"], reduction=r, label_smoothing=eps)

    def _nll_loss(self, args, kwargs) -> Callable:
        if np.ndim(args[0]) != 2:
            raise Unsupported("backend 'tinygrad': nll_loss gathers along dim 1 of an (N, C) input only")
        w = kwargs.pop("weight", None)
        w = None if w is None else self._to_lib(np.asarray(w))
        ii = int(kwargs.pop("ignore_index", -100))
        r = self._reduction(kwargs)
        ignore = ii if np.any(np.asarray(args[1]) == ii) else None
        if ignore is not None and ignore < 0:  # tinygrad gathers before it masks: a -100 index is out of range
            raise Unsupported("backend 'tinygrad': nll_loss gathers ignored targets too (negative ignore_index)")
        return lambda a: a["input"].nll_loss(a["target"], weight=w, ignore_index=ignore, reduction=r)

    def _binary_cross_entropy(self, args, kwargs) -> Callable:
        self._no(kwargs, "binary_cross_entropy", "weight")
        r = self._reduction(kwargs)
        return lambda a: a["input"].binary_crossentropy(a["target"], reduction=r)

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        self._no(kwargs, "binary_cross_entropy_with_logits", "weight")
        pw = kwargs.pop("pos_weight", None)
        pw = None if pw is None else self._to_lib(np.asarray(pw))
        r = self._reduction(kwargs)
        return lambda a: a["input"].binary_crossentropy_logits(a["target"], reduction=r, pos_weight=pw)

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: a["input"].softmax(axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: a["input"].log_softmax(axis=dim)
