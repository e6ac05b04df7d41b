"""The optional ``tensorflow`` backend: TensorFlow's own ``tf.nn`` losses (``pip install
'losscheck[tensorflow]'``: tensorflow-cpu), differentiated by ``tf.GradientTape``.  (Keras's loss
classes on TensorFlow are the ``keras`` backend with ``KERAS_BACKEND=tensorflow``.)

==================================  ==============================================================
losscheck                           TensorFlow
==================================  ==============================================================
cross_entropy                       class indices: ``tf.nn.sparse_softmax_cross_entropy_with_logits``
                                    (classes on the last axis: (N, C) or unbatched (C,));
                                    probability targets: ``tf.nn.softmax_cross_entropy_with_logits(
                                    labels, logits, axis=class dim)``
binary_cross_entropy_with_logits    ``tf.nn.sigmoid_cross_entropy_with_logits``; with pos_weight
                                    ``tf.nn.weighted_cross_entropy_with_logits``
softmax, log_softmax                ``tf.nn.softmax(x, axis)``, ``tf.nn.log_softmax(x, axis)``
mse_loss                            ``tf.math.squared_difference``
poisson_nll_loss                    ``tf.nn.log_poisson_loss(t, x, compute_full_loss=full)``, log
                                    input only
==================================  ==============================================================

Reductions are ``tf.reduce_sum`` / ``tf.reduce_mean`` of the per-element or per-row losses, as TF
code writes them.  Unsupported (tf.nn lacks them): class weights, ignore_index, label smoothing,
spatial class-index targets, element weights, softcap / z_loss, and the losses tf.nn has no form of.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from reference.lossdef import is_float_array

from .base import Unsupported
from .framework import FrameworkBackend, class_dim, load_error


class TensorflowBackend(FrameworkBackend):
    name = "tensorflow"
    LOSSES = ("cross_entropy", "binary_cross_entropy_with_logits", "softmax", "log_softmax", "mse_loss",
              "poisson_nll_loss")

    def __init__(self, device: str = "cpu"):
        try:
            import tensorflow as tf
        except Exception as exc:  # noqa: BLE001 - missing or broken: one line
            raise load_error("tensorflow", exc) from None
        self._tf = tf

    def _to_lib(self, a: np.ndarray) -> Any:
        return self._tf.constant(a)  # float16, bfloat16 (ml_dtypes), float32, float64, int64 as they are

    def _to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a.numpy())

    def _vjp(self, f: Callable, primals: list, cotangent: np.ndarray) -> tuple[Any, list]:
        tf = self._tf
        with tf.GradientTape() as tape:
            tape.watch(primals)
            out = f(*primals)
        grads = tape.gradient(out, primals, output_gradients=tf.cast(self._to_lib(cotangent), out.dtype))
        return out, [tf.zeros_like(p) if g is None else g for p, g in zip(primals, grads)]

    def _reduce(self, kwargs: dict) -> Callable:
        r = kwargs.pop("reduction", "mean")
        tf = self._tf
        if r not in ("none", "sum", "mean"):
            raise Unsupported(f"backend 'tensorflow': no reduction {r!r}")
        return {"none": lambda v: v, "sum": tf.reduce_sum, "mean": tf.reduce_mean}[r]

    def _cross_entropy(self, args, kwargs) -> Callable:
        x, t = args
        tf = self._tf
        self._no(kwargs, "cross_entropy", "weight", "softcap", "z_loss", "label_smoothing")
        self._ignored(t, kwargs, "cross_entropy")
        reduce, axis = self._reduce(kwargs), class_dim(x)
        if is_float_array(t):
            return lambda a: reduce(tf.nn.softmax_cross_entropy_with_logits(a["target"], a["input"], axis=axis))
        if np.ndim(x) > 2:
            raise Unsupported("backend 'tensorflow': sparse_softmax_cross_entropy_with_logits takes the classes "
                              "on the last axis (no spatial inputs)")
        return lambda a: reduce(tf.nn.sparse_softmax_cross_entropy_with_logits(a["target"], a["input"]))

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        tf = self._tf
        self._no(kwargs, "binary_cross_entropy_with_logits", "weight")
        pw = kwargs.pop("pos_weight", None)
        reduce = self._reduce(kwargs)
        if pw is None:
            return lambda a: reduce(tf.nn.sigmoid_cross_entropy_with_logits(a["target"], a["input"]))
        pos = self._to_lib(np.asarray(pw))
        return lambda a: reduce(tf.nn.weighted_cross_entropy_with_logits(a["target"], a["input"], pos))

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._tf.nn.softmax(a["input"], axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._tf.nn.log_softmax(a["input"], axis=dim)

    def _mse_loss(self, args, kwargs) -> Callable:
        reduce = self._reduce(kwargs)
        return lambda a: reduce(self._tf.math.squared_difference(a["input"], a["target"]))

    def _poisson_nll_loss(self, args, kwargs) -> Callable:
        if not kwargs.pop("log_input", True):
            raise Unsupported("backend 'tensorflow': log_poisson_loss takes log inputs only (log_input=True)")
        kwargs.pop("eps", None)  # used by torch only when log_input=False
        full = bool(kwargs.pop("full", False))
        reduce = self._reduce(kwargs)
        return lambda a: reduce(self._tf.nn.log_poisson_loss(a["target"], a["input"], compute_full_loss=full))
