"""The optional ``jax`` backend: jax.nn and optax, used only where they cover torch's semantics.

Options that JAX/optax do not offer (class weights, ignore_index, pos_weight, element weights,
cross_entropy's softcap and z_loss) raise :class:`Unsupported` instead of being re-implemented
here: re-implementing them would test our code, not JAX's.  Reductions are the plain jnp.sum /
jnp.mean of optax's per-example losses (kl_div's batchmean: their sum over input.shape[0]).
Every differentiable argument the case holds as a floating array (input, and target where torch
differentiates it) gets its gradient from one ``jax.vjp``.

Not mapped, because optax has no loss with torch's semantics: nll_loss, binary_cross_entropy,
l1_loss, poisson_nll_loss, gaussian_nll_loss, linear_cross_entropy, and smooth_l1_loss with
beta != 1.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from reference import registry
from reference.lossdef import is_float_array as is_probability_target

from .base import Backend, BackendLoadError, Observation, Unsupported

INSTALL_HINT = "pip install 'losscheck[jax]' (installs jax[cpu] and optax)"


def jax_version() -> str | None:
    """Installed jax version without importing it (importing jax is slow), or None."""
    from importlib import metadata
    try:
        return metadata.version("jax")
    except metadata.PackageNotFoundError:
        return None


class JaxBackend(Backend):
    name = "jax"
    _LOSSES = ("cross_entropy", "softmax", "log_softmax", "binary_cross_entropy_with_logits", "mse_loss",
               "kl_div", "huber_loss", "smooth_l1_loss", "sigmoid_focal_loss")

    def __init__(self, device: str = "cpu"):
        # JAX places arrays by its own configuration, not torch's device names: ``self.device``
        # stays "cpu" (--device does not apply; the CLI says so)
        try:
            import jax
            import jax.numpy as jnp
            import optax
        except ImportError as exc:
            raise BackendLoadError(f"backend 'jax': cannot import {exc.name or 'jax'}; {INSTALL_HINT}") from None
        # float64 cases need x64; set once at load time, never per call
        jax.config.update("jax_enable_x64", True)
        self._jax, self._jnp, self._optax = jax, jnp, optax

    def supports(self, loss: str) -> bool:
        return loss in self._LOSSES

    def _evaluate(self, case: Any) -> Observation:
        """Each ``_<loss>`` maps the case's options to optax (popping those it handles) and returns
        ``f(arrays)``, arrays being the positional arguments by name as jnp arrays."""
        jnp = self._jnp
        kwargs = dict(case.kwargs)
        f = getattr(self, "_" + case.loss)(case.args, kwargs)
        if kwargs:
            raise Unsupported(f"backend 'jax': {case.loss} option(s) {', '.join(sorted(kwargs))} not offered")
        spec = registry.get(case.loss)
        arrays = {a.name: jnp.asarray(v) for a, v in zip(spec.positional, case.args)}
        wrt = [n for n in spec.differentiable_for(case.args, case.kwargs) if n in arrays]

        def g(*diff):
            return f({**arrays, **dict(zip(wrt, diff))})

        primals = [arrays[n] for n in wrt]
        if not (case.grad and case.grad_output is not None and wrt):
            return Observation(np.asarray(g(*primals)))
        out, vjp = self._jax.vjp(g, *primals)
        grads = {}
        if tuple(out.shape) == tuple(np.shape(case.grad_output)):
            cotangents = vjp(jnp.asarray(case.grad_output).astype(out.dtype))
            grads = {n: np.asarray(c) for n, c in zip(wrt, cotangents)}
        return Observation(np.asarray(out), grads=grads)

    def _reduce(self, kwargs: dict) -> Callable:
        reduction = kwargs.pop("reduction", "mean")
        if reduction not in ("none", "sum", "mean"):
            raise ValueError(f"reduction: {reduction!r} is not one of none, sum, mean")
        return {"none": lambda v: v, "sum": self._jnp.sum, "mean": self._jnp.mean}[reduction]

    def _cross_entropy(self, args, kwargs) -> Callable:
        optax, jnp = self._optax, self._jnp
        x, t = args
        if kwargs.get("weight") is not None:
            raise Unsupported("backend 'jax': optax has no class weights")
        kwargs.pop("weight", None)
        # losscheck's LLM options: their defaults (no cap, no z-loss) are plain cross-entropy
        if kwargs.pop("softcap", None) is not None:
            raise Unsupported("backend 'jax': optax's softmax_cross_entropy has no softcap")
        if float(kwargs.pop("z_loss", 0.0)) != 0.0:
            raise Unsupported("backend 'jax': optax's softmax_cross_entropy has no z_loss")
        ignore_index = kwargs.pop("ignore_index", -100)
        eps = float(kwargs.pop("label_smoothing", 0.0))
        reduce = self._reduce(kwargs)
        cdim = 0 if np.ndim(x) == 1 else 1
        smooth = (lambda p: optax.smooth_labels(p, eps, axis=cdim)) if eps > 0 else (lambda p: p)
        if is_probability_target(t):  # the target is differentiated: smoothing inside f
            return lambda a: reduce(optax.softmax_cross_entropy(a["input"], smooth(a["target"]), axis=cdim))
        if np.any(np.asarray(t) == ignore_index):
            raise Unsupported("backend 'jax': optax has no ignore_index")
        if eps > 0:
            labels = smooth(self._jax.nn.one_hot(jnp.asarray(t), np.shape(x)[cdim], dtype=x.dtype, axis=cdim))
            return lambda a: reduce(optax.softmax_cross_entropy(a["input"], labels, axis=cdim))
        return lambda a: reduce(optax.softmax_cross_entropy_with_integer_labels(a["input"], a["target"], axis=cdim))

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._jax.nn.softmax(a["input"], axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda a: self._jax.nn.log_softmax(a["input"], axis=dim)

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        for name in ("weight", "pos_weight"):
            if kwargs.get(name) is not None:
                raise Unsupported(f"backend 'jax': optax.sigmoid_binary_cross_entropy has no {name}")
            kwargs.pop(name, None)
        reduce = self._reduce(kwargs)
        return lambda a: reduce(self._optax.sigmoid_binary_cross_entropy(a["input"], a["target"]))

    def _mse_loss(self, args, kwargs) -> Callable:
        reduce = self._reduce(kwargs)
        return lambda a: reduce(self._optax.squared_error(a["input"], a["target"]))

    def _huber_loss(self, args, kwargs) -> Callable:
        # optax: 0.5 min(|e|, d)^2 + d (|e| - min(|e|, d)), torch's 0.5 e^2 / d (|e| - d/2) with
        # the same value and derivative on both sides of |e| = d (C1 at the kink)
        delta = float(kwargs.pop("delta", 1.0))
        reduce = self._reduce(kwargs)
        return lambda a: reduce(self._optax.huber_loss(a["input"], a["target"], delta=delta))

    def _smooth_l1_loss(self, args, kwargs) -> Callable:
        # torch's smooth_l1_loss(beta) is huber_loss(delta=beta) / beta: optax's huber_loss with
        # delta = 1 is it exactly at beta = 1; another beta would need our division (untested
        # by optax), and beta = 0 (torch: l1_loss) is no huber loss at all
        beta = float(kwargs.pop("beta", 1.0))
        if beta != 1.0:
            raise Unsupported(f"backend 'jax': optax has no smooth_l1_loss; huber_loss is it at beta=1 "
                              f"only, not beta={beta:g}")
        reduce = self._reduce(kwargs)
        return lambda a: reduce(self._optax.huber_loss(a["input"], a["target"], delta=1.0))

    def _sigmoid_focal_loss(self, args, kwargs) -> Callable:
        # torchvision: alpha_t (1 - p_t)^gamma BCE, alpha_t = alpha t + (1 - alpha)(1 - t) when
        # alpha >= 0, no weighting when alpha < 0; optax's alpha=None is "no weighting", and its
        # (1 - p_t) is torchvision's p (1 - t) + (1 - p) t, evaluated in log space
        alpha = float(kwargs.pop("alpha", 0.25))
        gamma = float(kwargs.pop("gamma", 2.0))
        reduce = self._reduce({"reduction": kwargs.pop("reduction", "none")})
        weight = alpha if alpha >= 0 else None
        return lambda a: reduce(self._optax.sigmoid_focal_loss(a["input"], a["target"], alpha=weight, gamma=gamma))

    def _kl_div(self, args, kwargs) -> Callable:
        # optax.kl_divergence(log_predictions, targets) = sum of t (log t - x), with log t := 0
        # at t = 0, over `axis`; axis=() keeps torch's elementwise terms; with log_target optax's
        # kl_divergence_with_log_targets is torch's exp(t) (t - x).  Reductions: torch's sum,
        # mean (over numel), batchmean (the sum over input.shape[0]; a 0-d input's is its sum)
        losses = self._optax.losses
        kl = losses.kl_divergence_with_log_targets if kwargs.pop("log_target", False) else losses.kl_divergence
        reduction = kwargs.pop("reduction", "mean")
        n = np.shape(args[0])[0] if np.ndim(args[0]) else 1
        jnp = self._jnp
        reduce = {"none": lambda v: v, "sum": jnp.sum, "mean": jnp.mean,
                  "batchmean": lambda v: jnp.sum(v) / n}[reduction]
        return lambda a: reduce(kl(a["input"], a["target"], axis=()))
