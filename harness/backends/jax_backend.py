"""The optional ``jax`` backend: jax.nn and optax, used only where they cover torch's semantics.

Options that JAX/optax do not offer (class weights, ignore_index, pos_weight, element weights)
raise :class:`Unsupported` instead of being re-implemented here: re-implementing them would test
our code, not JAX's.  Reductions are the plain jnp.sum / jnp.mean of optax's per-example losses.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

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
    _LOSSES = ("cross_entropy", "softmax", "log_softmax", "binary_cross_entropy_with_logits", "mse_loss")

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
        jnp = self._jnp
        kwargs = dict(case.kwargs)
        f = getattr(self, "_" + case.loss)(case.args, kwargs)
        if kwargs:
            raise Unsupported(f"backend 'jax': {case.loss} option(s) {', '.join(sorted(kwargs))} not offered")
        x = jnp.asarray(case.args[0])
        if not (case.grad and case.grad_output is not None):
            return Observation(np.asarray(f(x)), None)
        out, vjp = self._jax.vjp(f, x)
        grad = None
        if tuple(out.shape) == tuple(np.shape(case.grad_output)):
            (g,) = vjp(jnp.asarray(case.grad_output).astype(out.dtype))
            grad = np.asarray(g)
        return Observation(np.asarray(out), grad)

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
        ignore_index = kwargs.pop("ignore_index", -100)
        eps = float(kwargs.pop("label_smoothing", 0.0))
        reduce = self._reduce(kwargs)
        cdim = 0 if np.ndim(x) == 1 else 1
        if is_probability_target(t):
            labels = jnp.asarray(t)
        elif np.any(np.asarray(t) == ignore_index):
            raise Unsupported("backend 'jax': optax has no ignore_index")
        elif eps > 0:
            labels = self._jax.nn.one_hot(jnp.asarray(t), np.shape(x)[cdim], dtype=x.dtype, axis=cdim)
        else:
            labels_int = jnp.asarray(t)
            return lambda v: reduce(optax.softmax_cross_entropy_with_integer_labels(v, labels_int, axis=cdim))
        if eps > 0:
            labels = optax.smooth_labels(labels, eps, axis=cdim)
        return lambda v: reduce(optax.softmax_cross_entropy(v, labels, axis=cdim))

    def _softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda v: self._jax.nn.softmax(v, axis=dim)

    def _log_softmax(self, args, kwargs) -> Callable:
        dim = kwargs.pop("dim")
        return lambda v: self._jax.nn.log_softmax(v, axis=dim)

    def _binary_cross_entropy_with_logits(self, args, kwargs) -> Callable:
        for name in ("weight", "pos_weight"):
            if kwargs.get(name) is not None:
                raise Unsupported(f"backend 'jax': optax.sigmoid_binary_cross_entropy has no {name}")
            kwargs.pop(name, None)
        reduce = self._reduce(kwargs)
        y = self._jnp.asarray(args[1])
        return lambda v: reduce(self._optax.sigmoid_binary_cross_entropy(v, y))

    def _mse_loss(self, args, kwargs) -> Callable:
        reduce = self._reduce(kwargs)
        y = self._jnp.asarray(args[1])
        return lambda v: reduce(self._optax.squared_error(v, y))
