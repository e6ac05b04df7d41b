"""The optional ``mlx`` backend: Apple's MLX (``mlx.nn.losses``, ``mx.softmax``), on its CPU device
on Linux (``pip install 'losscheck[mlx]'``: ``mlx[cpu]``), its default device on macOS.

==============================  ==================================================================
losscheck                       MLX
==============================  ==================================================================
cross_entropy                   ``nn.losses.cross_entropy(x, t, axis=class dim, label_smoothing,
                                reduction)``: class indices or probability targets
nll_loss                        ``nn.losses.nll_loss(x, t, axis=class dim, reduction)``
binary_cross_entropy[_with...]  ``nn.losses.binary_cross_entropy(x, y, weights, with_logits,
                                reduction)``, torch's broadcastable weight broadcast to x's shape
softmax, log_softmax            ``mx.softmax(x, axis, precise=False)``, ``nn.log_softmax(x, axis)``
mse_loss, l1_loss               ``nn.losses.mse_loss`` / ``l1_loss``
smooth_l1_loss, huber_loss      ``nn.losses.smooth_l1_loss(beta)`` / ``huber_loss(delta)``
kl_div                          ``nn.losses.kl_div_loss(x, t, axis=-1)`` (log targets, summed over
                                the last axis): torch's ``log_target=True`` with sum, or batchmean
                                of a 2-d input (MLX's mean of the row sums)
gaussian_nll_loss               ``nn.losses.gaussian_nll_loss(x, t, var, full, eps)``, var
                                broadcast to x's shape
==============================  ==================================================================

Unsupported, because MLX lacks them: class weights and ignore_index (MLX's ``weights`` are per
element, not per class), label_smoothing = 1 (MLX refuses [1, 1)'s complement), pos_weight,
softcap / z_loss, kl_div without log targets or with mean / none, poisson_nll_loss,
sigmoid_focal_loss, linear_cross_entropy.  Defaults are what MLX users run (``precise=False``;
half-precision logits reduced in their own dtype on the CPU, as MLX's docs say).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Unsupported
from .framework import FrameworkBackend, class_dim, load_error


class MlxBackend(FrameworkBackend):
    name = "mlx"
    LOSSES = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "softmax", "log_softmax", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
              "gaussian_nll_loss")

    def __init__(self, device: str = "cpu"):
        try:
            import mlx.core as mx
            from mlx import nn
        except Exception as exc:  # noqa: BLE001 - missing or broken: one line
            raise load_error("mlx", exc) from None
        self._mx, self._nn, self._L = mx, nn, nn.losses

    # -- arrays ---------------------------------------------------------------------------------
    def _to_lib(self, a: np.ndarray) -> Any:
        mx = self._mx
        if a.dtype == np.float64:  # mx.array(float64) would give float32
            return mx.array(a, dtype=mx.float64)
        return mx.array(a)  # float16, ml_dtypes.bfloat16, float32, int64 keep their type

    def _to_numpy(self, a: Any) -> np.ndarray:
        mx = self._mx
        if a.dtype == mx.bfloat16:  # no PEP 3118 format for bfloat16: through float32 (exact)
            import ml_dtypes
            return np.array(a.astype(mx.float32)).astype(ml_dtypes.bfloat16)
        return np.array(a)

    def _vjp(self, f: Callable, primals: list, cotangent: np.ndarray) -> tuple[Any, list]:
        outs, grads = self._mx.vjp(lambda *p: f(*p), primals, [self._to_lib(cotangent)])
        return outs[0], grads

    # -- losses ---------------------------------------------------------------------------------
    def _reduction(self, kwargs: dict) -> str:
        r = kwargs.pop("reduction", "mean")
        if r not in ("none", "sum", "mean"):
            raise Unsupported(f"backend 'mlx': no reduction {r!r}")
        return r

    def _cross_entropy(self, args, kwargs) -> Callable:
        x, t = args
        self._no(kwargs, "cross_entropy", "weight", "softcap", "z_loss")
        self._ignored(t, kwargs, "cross_entropy")
        eps = float(kwargs.pop("label_smoothing", 0.0))
        if eps >= 1:
            raise Unsupported("backend 'mlx': cross_entropy takes label_smoothing in [0, 1) only")
        r, axis = self._reduction(kwargs), class_dim(x)
        return lambda a: self._L.cross_entropy(a["input"], a["target"], axis=axis, label_smoothing=eps,
                                               reduction=r)

    def _nll_loss(self, args, kwargs) -> Callable:
        x, t = args
        self._no(kwargs, "nll_loss", "weight")
        self._ignored(t, kwargs, "nll_loss")
        r, axis = self._reduction(kwargs), class_dim(x)
        return lambda a: self._L.nll_loss(a["input"], a["target"], axis=axis, reduction=r)

    def _bce(self, args, kwargs, logits: bool) -> Callable:
        loss = "binary_cross_entropy" + ("_with_logits" if logits else "")
        if logits:
            self._no(kwargs, loss, "pos_weight")
        w = kwargs.pop("weight", None)
        w = None if w is None else self._to_lib(np.array(np.broadcast_to(w, np.shape(args[0])), order="C"))
        r = self._reduction(kwargs)
        return lambda a: self._L.binary_cross_entropy(a["input"], a["target"], weights=w, with_logits=logits,
                                                      reduction=r)

    def _binary_cross_entropy(self, args, kwargs) -> Callable:
        return self._bce(args, kwargs, logits=False)

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        return self._bce(args, kwargs, logits=True)

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._mx.softmax(a["input"], axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._nn.log_softmax(a["input"], axis=dim)

    def _mse_loss(self, args, kwargs) -> Callable:
        r = self._reduction(kwargs)
        return lambda a: self._L.mse_loss(a["input"], a["target"], reduction=r)

    def _l1_loss(self, args, kwargs) -> Callable:
        r = self._reduction(kwargs)
        return lambda a: self._L.l1_loss(a["input"], a["target"], reduction=r)

    def _smooth_l1_loss(self, args, kwargs) -> Callable:
        beta = float(kwargs.pop("beta", 1.0))
        r = self._reduction(kwargs)
        return lambda a: self._L.smooth_l1_loss(a["input"], a["target"], beta=beta, reduction=r)

    def _huber_loss(self, args, kwargs) -> Callable:
        delta = float(kwargs.pop("delta", 1.0))
        r = self._reduction(kwargs)
        return lambda a: self._L.huber_loss(a["input"], a["target"], delta=delta, reduction=r)

    def _kl_div(self, args, kwargs) -> Callable:
        # MLX: sum over `axis` of exp(t) (t - x), then its reduction over what is left
        if not kwargs.pop("log_target", False):
            raise Unsupported("backend 'mlx': kl_div_loss takes log targets only (log_target=True)")
        r = kwargs.pop("reduction", "mean")
        if r == "sum" and np.ndim(args[0]) >= 1:
            red = "sum"
        elif r == "batchmean" and np.ndim(args[0]) == 2:
            red = "mean"
        else:
            raise Unsupported(f"backend 'mlx': kl_div_loss sums over the last axis: no torch reduction {r!r} "
                              f"of a {np.ndim(args[0])}-d input")
        return lambda a: self._L.kl_div_loss(a["input"], a["target"], axis=-1, reduction=red)

    def _gaussian_nll_loss(self, args, kwargs) -> Callable:
        full, eps = bool(kwargs.pop("full", False)), float(kwargs.pop("eps", 1e-6))
        r = self._reduction(kwargs)
        shape = np.shape(args[0])  # MLX wants var of x's shape; torch's may lack a trailing 1 or be (..., 1)
        var = (lambda v: v.reshape(*v.shape, 1)) if np.ndim(args[2]) == len(shape) - 1 else (lambda v: v)
        return lambda a: self._L.gaussian_nll_loss(a["input"], a["target"],
                                                   self._mx.broadcast_to(var(a["var"]), shape), full=full,
                                                   eps=eps, reduction=r)

