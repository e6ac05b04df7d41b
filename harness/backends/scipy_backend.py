"""The optional ``scipy`` backend: the losses as SciPy-style NumPy code writes them (``pip install
'losscheck[scipy]'``).  SciPy has no loss functions, so this is the code its users write with
``scipy.special``'s numerically careful pieces, in the input dtype; it has no autodiff, so only
values are checked (every gradient check is *unsupported*, not failed).

==================================  ==============================================================
losscheck                           SciPy-style code
==================================  ==============================================================
softmax, log_softmax                ``special.softmax(x, axis=dim)``, ``special.log_softmax``
cross_entropy, class indices        ``special.logsumexp(x, axis) - x[t]`` (take_along_axis), times
                                    ``weight[t]``; ignored positions masked out; the mean divides
                                    by the kept weight, as torch
cross_entropy, probability targets  ``-(y * special.log_softmax(x, axis)).sum(axis)`` (class
                                    weights multiplied into y)
binary_cross_entropy_with_logits    ``-(pw * y * special.log_expit(x) + (1 - y) *
                                    special.log_expit(-x))`` times the element weight
kl_div                              ``special.xlogy(y, y) - y * x``; log targets
                                    ``exp(t) * (t - x)``
==================================  ==============================================================

Reductions are NumPy's ``sum`` / ``mean`` (pairwise); ``batchmean`` is the sum over ``len(x)``.
The arithmetic is NumPy's in the input dtype; where ``scipy.special`` has no float16 / bfloat16
loop it computes in float64, and the result is rounded back to the input dtype once, as code that
keeps its dtype does (otherwise a float16 case would be judged to float64's accuracy).  Unsupported: label smoothing, softcap / z_loss, and the losses SciPy has no
careful piece for (the rest is plain arithmetic, which would test NumPy, not SciPy).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from reference.lossdef import is_float_array

from .base import Observation, Unsupported
from .framework import FrameworkBackend, class_dim, load_error


class ScipyBackend(FrameworkBackend):
    name = "scipy"
    GRADIENTS = False
    LOSSES = ("cross_entropy", "binary_cross_entropy_with_logits", "softmax", "log_softmax", "kl_div")

    def __init__(self, device: str = "cpu"):
        try:
            from scipy import special
        except Exception as exc:  # noqa: BLE001 - missing or broken: one line
            raise load_error("scipy", exc) from None
        self._sp = special

    def _to_lib(self, a: np.ndarray) -> Any:
        return a

    def _to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def _call(self, f: Callable, primals: list) -> Any:
        with np.errstate(all="ignore"):  # inf - inf and 0 * inf are the record's business, not stderr's
            return f(*primals)

    def _evaluate(self, case: Any) -> Observation:
        """The value in the input's dtype: scipy.special has no float16 / bfloat16 loops (it
        returns float64 there), and code that keeps its dtype rounds the result back once."""
        obs = super()._evaluate(case)
        want = np.asarray(case.args[0]).dtype
        return obs if obs.value.dtype == want else Observation(obs.value.astype(want))

    def _reduce(self, kwargs: dict, batchmean: bool = False) -> Callable:
        r = kwargs.pop("reduction", "mean")
        if r == "batchmean" and batchmean:
            return lambda v: np.sum(v) / v.shape[0] if v.ndim else np.sum(v)
        if r not in ("none", "sum", "mean"):
            raise Unsupported(f"backend 'scipy': no reduction {r!r}")
        return {"none": lambda v: v, "sum": np.sum, "mean": np.mean}[r]

    # -- losses ---------------------------------------------------------------------------------
    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._sp.softmax(a["input"], axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._sp.log_softmax(a["input"], axis=dim)

    def _cross_entropy(self, args, kwargs) -> Callable:
        x, t = args
        sp = self._sp
        self._no(kwargs, "cross_entropy", "softcap", "z_loss", "label_smoothing")
        w = kwargs.pop("weight", None)
        ii = int(kwargs.pop("ignore_index", -100))
        r = kwargs.pop("reduction", "mean")
        if r not in ("none", "sum", "mean"):
            raise Unsupported(f"backend 'scipy': no reduction {r!r}")
        axis = class_dim(x)
        shape = [1] * np.ndim(x)
        if shape:
            shape[axis] = -1
        wc = None if w is None else np.asarray(w, np.asarray(x).dtype).reshape(shape)

        if is_float_array(t):
            reduce = {"none": lambda v: v, "sum": np.sum, "mean": np.mean}[r]

            def soft(a):
                y = a["target"] if wc is None else wc * a["target"]
                return reduce(-(y * sp.log_softmax(a["input"], axis=axis)).sum(axis=axis))
            return soft

        def hard(a):
            xs, ts = a["input"], np.asarray(a["target"])
            kept = ts != ii
            safe = np.expand_dims(np.where(kept, ts, 0), axis)
            picked = np.take_along_axis(xs, safe, axis=axis).squeeze(axis)
            nll = sp.logsumexp(xs, axis=axis) - picked
            wt = (np.ones_like(nll) if w is None else np.asarray(w, xs.dtype)[np.where(kept, ts, 0)])
            wt = np.where(kept, wt, np.zeros_like(wt))
            loss = np.where(kept, wt * nll, np.zeros_like(nll))
            if r == "none":
                return loss
            return np.sum(loss) if r == "sum" else np.sum(loss) / np.sum(wt)
        return hard

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        sp = self._sp
        w, pw = kwargs.pop("weight", None), kwargs.pop("pos_weight", None)
        reduce = self._reduce(kwargs)

        def f(a):
            x, y = a["input"], a["target"]
            pos = sp.log_expit(x) * (y if pw is None else np.asarray(pw, x.dtype) * y)
            loss = -(pos + (1 - y) * sp.log_expit(-x))
            return reduce(loss if w is None else np.asarray(w, x.dtype) * loss)
        return f

    def _kl_div(self, args, kwargs) -> Callable:
        sp = self._sp
        log_target = bool(kwargs.pop("log_target", False))
        reduce = self._reduce(kwargs, batchmean=True)
        if log_target:
            return lambda a: reduce(np.exp(a["target"]) * (a["target"] - a["input"]))
        return lambda a: reduce(sp.xlogy(a["target"], a["target"]) - a["target"] * a["input"])
