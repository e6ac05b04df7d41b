"""The optional ``paddle`` backend: PaddlePaddle's ``paddle.nn.functional`` losses on its CPU place
(``pip install 'losscheck[paddle]'``), differentiated by ``paddle.grad``.

==================================  ==============================================================
losscheck                           Paddle
==================================  ==============================================================
cross_entropy                       ``F.cross_entropy(x, t, weight, ignore_index, reduction,
                                    soft_label=<float target>, axis=class dim, label_smoothing)``
nll_loss                            ``F.nll_loss(x, t, weight, ignore_index, reduction)``
binary_cross_entropy                ``F.binary_cross_entropy(x, y, weight, reduction)``
binary_cross_entropy_with_logits    ``F.binary_cross_entropy_with_logits(x, y, weight, reduction,
                                    pos_weight)``
softmax, log_softmax                ``F.softmax(x, axis)``, ``F.log_softmax(x, axis)``
mse_loss, l1_loss                   ``F.mse_loss``, ``F.l1_loss``
smooth_l1_loss, huber_loss          ``F.smooth_l1_loss(delta=beta, is_huber=False)`` /
                                    ``(delta=delta, is_huber=True)`` (Paddle's default is Huber)
kl_div                              ``F.kl_div(x, t, reduction, log_target)``
poisson_nll_loss                    ``F.poisson_nll_loss(x, t, log_input, full, epsilon)``
gaussian_nll_loss                   ``F.gaussian_nll_loss(x, t, var, full, epsilon)``
sigmoid_focal_loss                  ``F.sigmoid_focal_loss(x, t, alpha, gamma, reduction)``
==================================  ==============================================================

Paddle's shape conventions are mapped: its soft-label (and label-smoothed) cross_entropy with
``reduction="none"`` keeps the class axis as 1 (squeezed), its gaussian var of one dimension fewer
is unsqueezed to (..., 1).  Gradients Paddle does not offer (its labels are not differentiated: ``paddle.grad`` gives None)
are unsupported checks.  Unsupported: softcap / z_loss, sigmoid_focal_loss's alpha < 0, label smoothing
with ignored targets, unbatched nll_loss, poisson epsilon 0, and what Paddle's CPU kernels are not
registered for (most float16 and bfloat16 kernels: Paddle's "kernel ... is not registered", or its refusal of a half-precision
"data type", becomes *unsupported*, not an error).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from reference.lossdef import is_float_array

from .base import Unsupported, one_line
from .dtypes import BFLOAT16
from .framework import FrameworkBackend, class_dim, load_error

_REDUCTIONS = ("none", "sum", "mean")


class PaddleBackend(FrameworkBackend):
    name = "paddle"
    LOSSES = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "softmax", "log_softmax", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
              "poisson_nll_loss", "gaussian_nll_loss", "sigmoid_focal_loss")

    def __init__(self, device: str = "cpu"):
        try:
            import warnings
            with warnings.catch_warnings():  # "No ccache found" at import: nothing to do with losses
                warnings.simplefilter("ignore")
                import paddle
                import paddle.nn.functional as F
            paddle.set_device("cpu")
        except Exception as exc:  # noqa: BLE001 - missing or broken: one line
            raise load_error("paddle", exc) from None
        self._paddle, self._F = paddle, F

    # -- arrays ---------------------------------------------------------------------------------
    def _to_lib(self, a: np.ndarray) -> Any:
        if a.dtype == BFLOAT16:  # Paddle takes no ml_dtypes array: through float32 (exact)
            return self._paddle.to_tensor(np.asarray(a, np.float32)).astype("bfloat16")
        return self._paddle.to_tensor(np.array(a, order="C", copy=True))

    def _to_numpy(self, a: Any) -> np.ndarray:
        if a.dtype == self._paddle.bfloat16:  # .numpy() gives the bits as uint16
            return np.asarray(a.numpy()).view(BFLOAT16)
        return np.asarray(a.numpy())

    def _vjp(self, f: Callable, primals: list, cotangent: np.ndarray) -> tuple[Any, list]:
        paddle = self._paddle
        leaves = []
        for p in primals:
            leaf = p.detach()
            leaf.stop_gradient = False
            leaves.append(leaf)
        out = f(*leaves)
        cot = self._to_lib(cotangent).astype(out.dtype)
        grads = paddle.grad([out], leaves, grad_outputs=[cot], allow_unused=True)
        return out, list(grads)  # None where Paddle does not differentiate (labels): unsupported

    def _evaluate(self, case: Any):
        try:
            with np.errstate(all="ignore"):
                return super()._evaluate(case)
        except (RuntimeError, ValueError) as exc:  # a dtype Paddle has no CPU kernel for, or refuses
            text = str(exc)
            if ("is not registered" in text and "kernel" in text) or (
                    case.dtype in ("float16", "bfloat16") and "data type" in text):
                raise Unsupported(f"backend 'paddle': {case.loss} {case.dtype}: {one_line(exc)[:160]}") from None
            raise

    # -- losses ---------------------------------------------------------------------------------
    def _reduction(self, kwargs: dict) -> str:
        r = kwargs.pop("reduction", "mean")
        if r not in _REDUCTIONS:
            raise Unsupported(f"backend 'paddle': no reduction {r!r}")
        return r

    def _weight(self, kwargs: dict, name: str = "weight") -> Any:
        w = kwargs.pop(name, None)
        return None if w is None else self._to_lib(np.asarray(w))

    def _cross_entropy(self, args, kwargs) -> Callable:
        x, t = args
        self._no(kwargs, "cross_entropy", "softcap", "z_loss")
        w = self._weight(kwargs)
        ii = int(kwargs.pop("ignore_index", -100))
        eps = float(kwargs.pop("label_smoothing", 0.0))
        r, axis, soft = self._reduction(kwargs), class_dim(x), is_float_array(t)
        if eps and not soft and np.any(np.asarray(t) == ii):
            raise Unsupported("backend 'paddle': cross_entropy with label_smoothing one-hots the labels (no "
                              "ignore_index)")
        keep_dim = r == "none" and (soft or eps or np.ndim(x) == 1)  # Paddle's soft losses keep a class dim of 1

        def f(a):
            out = self._F.cross_entropy(a["input"], a["target"], weight=w, ignore_index=ii, reduction=r,
                                        soft_label=soft, axis=axis, label_smoothing=eps)
            return out.squeeze(axis) if keep_dim and out.ndim == np.ndim(x) else out
        return f

    def _nll_loss(self, args, kwargs) -> Callable:
        if np.ndim(args[0]) < 2:
            raise Unsupported("backend 'paddle': nll_loss takes (N, C, ...) inputs only (no unbatched (C,))")
        w = self._weight(kwargs)
        ii = int(kwargs.pop("ignore_index", -100))
        r = self._reduction(kwargs)
        return lambda a: self._F.nll_loss(a["input"], a["target"], weight=w, ignore_index=ii, reduction=r)

    def _binary_cross_entropy(self, args, kwargs) -> Callable:
        w = self._weight(kwargs)
        r = self._reduction(kwargs)
        return lambda a: self._F.binary_cross_entropy(a["input"], a["target"], weight=w, reduction=r)

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        w, pw = self._weight(kwargs), self._weight(kwargs, "pos_weight")
        r = self._reduction(kwargs)
        return lambda a: self._F.binary_cross_entropy_with_logits(a["input"], a["target"], weight=w, reduction=r,
                                                                  pos_weight=pw)

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._F.softmax(a["input"], axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._F.log_softmax(a["input"], axis=dim)

    def _mse_loss(self, args, kwargs) -> Callable:
        r = self._reduction(kwargs)
        return lambda a: self._F.mse_loss(a["input"], a["target"], reduction=r)

    def _l1_loss(self, args, kwargs) -> Callable:
        r = self._reduction(kwargs)
        return lambda a: self._F.l1_loss(a["input"], a["target"], reduction=r)

    def _smooth_l1_loss(self, args, kwargs) -> Callable:
        beta = float(kwargs.pop("beta", 1.0))
        r = self._reduction(kwargs)
        return lambda a: self._F.smooth_l1_loss(a["input"], a["target"], reduction=r, delta=beta, is_huber=False)

    def _huber_loss(self, args, kwargs) -> Callable:
        delta = float(kwargs.pop("delta", 1.0))
        r = self._reduction(kwargs)
        return lambda a: self._F.smooth_l1_loss(a["input"], a["target"], reduction=r, delta=delta, is_huber=True)

    def _kl_div(self, args, kwargs) -> Callable:
        r = kwargs.pop("reduction", "mean")
        if r not in (*_REDUCTIONS, "batchmean"):
            raise Unsupported(f"backend 'paddle': no reduction {r!r}")
        log_target = bool(kwargs.pop("log_target", False))
        return lambda a: self._F.kl_div(a["input"], a["target"], reduction=r, log_target=log_target)

    def _poisson_nll_loss(self, args, kwargs) -> Callable:
        log_input, full = bool(kwargs.pop("log_input", True)), bool(kwargs.pop("full", False))
        eps = float(kwargs.pop("eps", 1e-8))
        if eps <= 0:
            raise Unsupported("backend 'paddle': poisson_nll_loss takes epsilon > 0 only")
        r = self._reduction(kwargs)
        return lambda a: self._F.poisson_nll_loss(a["input"], a["target"], log_input=log_input, full=full,
                                                  epsilon=eps, reduction=r)

    def _gaussian_nll_loss(self, args, kwargs) -> Callable:
        full, eps = bool(kwargs.pop("full", False)), float(kwargs.pop("eps", 1e-6))
        r = self._reduction(kwargs)
        # torch takes var with one dimension fewer than input; Paddle wants it as (..., 1)
        fewer = np.ndim(args[2]) == np.ndim(args[0]) - 1
        return lambda a: self._F.gaussian_nll_loss(a["input"], a["target"],
                                                   a["var"].unsqueeze(-1) if fewer else a["var"], full=full,
                                                   epsilon=eps, reduction=r)

    def _sigmoid_focal_loss(self, args, kwargs) -> Callable:
        alpha, gamma = float(kwargs.pop("alpha", 0.25)), float(kwargs.pop("gamma", 2.0))
        if alpha < 0:  # torchvision's "no alpha weighting"; Paddle multiplies by alpha whatever it is
            raise Unsupported("backend 'paddle': sigmoid_focal_loss has no alpha < 0 (torchvision's no weighting)")
        r = self._reduction(kwargs)
        return lambda a: self._F.sigmoid_focal_loss(a["input"], a["target"], alpha=alpha, gamma=gamma, reduction=r)
