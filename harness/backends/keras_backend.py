"""The optional ``keras`` backend: Keras 3's loss classes and ``keras.ops`` (``pip install
'losscheck[keras]'``), on the backend ``KERAS_BACKEND`` names -- ``jax`` when it is unset (jax is
then needed too; the extra installs it), ``torch`` or ``tensorflow`` otherwise.  It must be chosen
before keras is imported, which the backend's own worker process does first.

==============================  ==================================================================
losscheck                       Keras
==============================  ==================================================================
cross_entropy                   class indices: ``losses.SparseCategoricalCrossentropy(from_logits=
                                True, ignore_class=ignore_index, axis=class dim)``; probability
                                targets or label smoothing: ``losses.CategoricalCrossentropy(
                                from_logits=True, label_smoothing, axis)`` (class indices one-hot
                                by ``keras.ops.one_hot``)
binary_cross_entropy[_with...]  none / sum: ``ops.binary_crossentropy(y, x, from_logits)`` and
                                ``ops.sum``; mean: ``losses.BinaryCrossentropy(from_logits)``
softmax, log_softmax            ``ops.softmax(x, axis)``, ``ops.log_softmax(x, axis)``
mse_loss, l1_loss, huber_loss   ``losses.MeanSquaredError`` / ``MeanAbsoluteError`` /
                                ``Huber(delta)``, mean only (Keras averages over the last axis
                                first, so its none and sum are other quantities)
==============================  ==================================================================

Reductions: torch's none / sum / mean are Keras's None / "sum" / "sum_over_batch_size".  The loss
classes keep Keras's default ``dtype=None``, i.e. ``keras.config.floatx()`` (float32): that is what
Keras users run, and the records show what it does to float64 inputs.  Unsupported: class weights,
pos_weight, softcap / z_loss, nll_loss and the losses Keras has in other forms (kl_div on
probabilities with clipping, Poisson with its own epsilon).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from reference.lossdef import is_float_array

from .base import Unsupported
from .framework import FrameworkBackend, class_dim, load_error

_REDUCTION = {"none": None, "sum": "sum", "mean": "sum_over_batch_size"}


class KerasBackend(FrameworkBackend):
    name = "keras"
    LOSSES = ("cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits", "softmax",
              "log_softmax", "mse_loss", "l1_loss", "huber_loss")

    def __init__(self, device: str = "cpu"):
        os.environ.setdefault("KERAS_BACKEND", "jax")
        try:
            if os.environ["KERAS_BACKEND"] == "jax":
                import jax
                jax.config.update("jax_enable_x64", True)  # float64 cases stay float64
            import keras
        except Exception as exc:  # noqa: BLE001 - missing or broken: one line
            raise load_error("keras", exc) from None
        self._keras, self._ops, self.backend = keras, keras.ops, keras.backend.backend()
        if self.backend not in ("jax", "torch", "tensorflow"):
            raise load_error("keras", RuntimeError(f"KERAS_BACKEND={self.backend} is not one of jax, torch, "
                                                   "tensorflow"))

    # -- arrays: the native tensors of Keras's backend ------------------------------------------
    def _to_lib(self, a: np.ndarray) -> Any:
        if self.backend == "jax":
            import jax.numpy as jnp
            return jnp.asarray(a)
        if self.backend == "torch":
            from .convert import to_torch
            return to_torch(a)
        import tensorflow as tf
        return tf.constant(a)

    def _to_numpy(self, a: Any) -> np.ndarray:
        if self.backend == "torch":
            from .convert import to_numpy
            return to_numpy(a.detach())
        return np.asarray(a)

    def _vjp(self, f: Callable, primals: list, cotangent: np.ndarray) -> tuple[Any, list]:
        if self.backend == "jax":
            import jax
            out, vjp = jax.vjp(f, *primals)
            return out, list(vjp(self._to_lib(cotangent).astype(out.dtype)))
        if self.backend == "torch":
            import torch
            leaves = [p.detach().requires_grad_(True) for p in primals]
            out = f(*leaves)
            grads = torch.autograd.grad(out, leaves, self._to_lib(cotangent).to(out.dtype), allow_unused=True)
            return out, [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads)]
        import tensorflow as tf
        with tf.GradientTape() as tape:
            tape.watch(primals)
            out = f(*primals)
        grads = tape.gradient(out, primals, output_gradients=tf.cast(self._to_lib(cotangent), out.dtype))
        return out, [tf.zeros_like(p) if g is None else g for p, g in zip(primals, grads)]

    # -- losses -----------------------------------------------------------------------------------
    def _reduction(self, kwargs: dict, loss: str, mean_only: bool = False) -> Any:
        r = kwargs.pop("reduction", "mean")
        if r not in _REDUCTION or (mean_only and r != "mean"):
            raise Unsupported(f"backend 'keras': {loss} with reduction {r!r} (Keras averages over the last "
                              "axis first)" if mean_only else f"backend 'keras': no reduction {r!r}")
        return _REDUCTION[r]

    def _cross_entropy(self, args, kwargs) -> Callable:
        x, t = args
        L, ops = self._keras.losses, self._ops
        self._no(kwargs, "cross_entropy", "weight", "softcap", "z_loss")
        ii = kwargs.pop("ignore_index", -100)
        eps = float(kwargs.pop("label_smoothing", 0.0))
        r, axis = self._reduction(kwargs, "cross_entropy"), class_dim(x)
        if is_float_array(t):
            loss = L.CategoricalCrossentropy(from_logits=True, label_smoothing=eps, axis=axis, reduction=r)
            return lambda a: loss(a["target"], a["input"])
        ignored = bool(np.any(np.asarray(t) == ii))
        if eps:
            if ignored:
                raise Unsupported("backend 'keras': CategoricalCrossentropy has no ignore_class")
            loss = L.CategoricalCrossentropy(from_logits=True, label_smoothing=eps, axis=axis, reduction=r)
            c = np.shape(x)[axis]
            return lambda a: loss(ops.one_hot(a["target"], c, axis=axis, dtype=a["input"].dtype), a["input"])
        loss = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ii if ignored else None, axis=axis,
                                               reduction=r)
        return lambda a: loss(a["target"], a["input"])

    def _bce(self, args, kwargs, logits: bool) -> Callable:
        name = "binary_cross_entropy" + ("_with_logits" if logits else "")
        self._no(kwargs, name, "weight", *(("pos_weight",) if logits else ()))
        r = kwargs.pop("reduction", "mean")
        ops = self._ops
        if r == "mean":
            loss = self._keras.losses.BinaryCrossentropy(from_logits=logits)
            if np.ndim(args[0]) == 0:
                raise Unsupported(f"backend 'keras': BinaryCrossentropy of a 0-d input ({name})")
            return lambda a: loss(a["target"], a["input"])
        if r == "none":
            return lambda a: ops.binary_crossentropy(a["target"], a["input"], from_logits=logits)
        if r == "sum":
            return lambda a: ops.sum(ops.binary_crossentropy(a["target"], a["input"], from_logits=logits))
        raise Unsupported(f"backend 'keras': no reduction {r!r}")

    def _binary_cross_entropy(self, args, kwargs) -> Callable:
        return self._bce(args, kwargs, logits=False)

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        return self._bce(args, kwargs, logits=True)

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._ops.softmax(a["input"], axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._ops.log_softmax(a["input"], axis=dim)

    def _pointwise(self, cls: Any, loss: str, args, kwargs) -> Callable:
        self._reduction(kwargs, loss, mean_only=True)
        if np.ndim(args[0]) == 0:
            raise Unsupported(f"backend 'keras': {loss} of a 0-d input")
        return lambda a: cls(a["target"], a["input"])

    def _mse_loss(self, args, kwargs) -> Callable:
        return self._pointwise(self._keras.losses.MeanSquaredError(), "mse_loss", args, kwargs)

    def _l1_loss(self, args, kwargs) -> Callable:
        return self._pointwise(self._keras.losses.MeanAbsoluteError(), "l1_loss", args, kwargs)

    def _huber_loss(self, args, kwargs) -> Callable:
        delta = float(kwargs.pop("delta", 1.0))
        return self._pointwise(self._keras.losses.Huber(delta=delta), "huber_loss", args, kwargs)
