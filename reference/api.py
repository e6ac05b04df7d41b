"""The oracle's public entry points, shaped like torch.nn.functional.

``evaluate`` / ``evaluate_grad`` return an :class:`~reference.exact.Exact` (values plus the scales
the verdict ladder needs); the torch-shaped functions return just the exact values.
"""
from __future__ import annotations

import numpy as np

from . import registry
from .exact import Exact
from .formats import FORMATS, get_format
from .losses_class import ClassKernel
from .losses_elementwise import ElementwiseKernel, SoftmaxKernel
from .problem import prepare
from .settle import Evaluation, settle

_KERNELS = {
    "cross_entropy": ClassKernel,
    "nll_loss": ClassKernel,
    "binary_cross_entropy": ElementwiseKernel,
    "binary_cross_entropy_with_logits": ElementwiseKernel,
    "mse_loss": ElementwiseKernel,
    "softmax": SoftmaxKernel,
    "log_softmax": SoftmaxKernel,
}


def _out_format(problem, out_dtype):
    if out_dtype is None:
        return get_format(problem.dtype)
    name = out_dtype if isinstance(out_dtype, str) else np.dtype(out_dtype).name
    if name not in FORMATS:
        raise ValueError(f"out_dtype: unsupported dtype {name!r}; supported: {', '.join(FORMATS)}")
    return FORMATS[name]


def _run(ev: Evaluation, fmt) -> Exact:
    values, rounded, und, cond, scale, nterms = settle(ev, fmt)
    out = ev.to_output
    return Exact.from_values(out(values), out(und), out(cond), out(scale), out(nterms), fmt.name,
                             rounded=out(rounded))


def evaluate(name: str, *args, out_dtype=None, **kwargs) -> Exact:
    """Exact value of loss ``name`` on the given arrays, settled for the output format."""
    problem = prepare(name, args, kwargs)
    kernel = _KERNELS[name](name, problem.options, problem.nclass)
    return _run(Evaluation(problem, kernel), _out_format(problem, out_dtype))


def evaluate_grad(name: str, *args, grad_output=None, out_dtype=None, **kwargs) -> Exact:
    """Exact gradient of loss ``name`` w.r.t. its first argument (the VJP with grad_output)."""
    spec = registry.get(name)
    if not spec.has_grad:
        raise ValueError(f"{name}: the oracle has no gradient for this loss")
    problem = prepare(name, args, kwargs)
    shape = problem.out_shape
    if grad_output is None:
        go = np.ones(shape, np.float64)
    else:
        go = np.asarray(grad_output)
        if go.dtype.kind not in "fiu" and go.dtype.name != "bfloat16":
            raise ValueError(f"grad_output: expected a floating array, got dtype {go.dtype.name}")
        go = go.astype(np.float64)
        if go.shape != shape:
            raise ValueError(f"grad_output: expected shape {shape} (the output's), got {go.shape}")
        if not np.all(np.isfinite(go)):
            raise ValueError("grad_output: must be finite")
    kernel = _KERNELS[name](name, problem.options, problem.nclass)
    return _run(Evaluation(problem, kernel, grad_output=go, want_grad=True), _out_format(problem, out_dtype))


def grad(name: str, *args, grad_output=None, **kwargs) -> np.ndarray:
    """Exact gradient values (object array of mpf) of ``name`` w.r.t. its first argument."""
    return evaluate_grad(name, *args, grad_output=grad_output, **kwargs).values


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                  out_dtype=None):
    return evaluate("cross_entropy", input, target, weight=weight, ignore_index=ignore_index,
                    reduction=reduction, label_smoothing=label_smoothing, out_dtype=out_dtype).values


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean", out_dtype=None):
    return evaluate("nll_loss", input, target, weight=weight, ignore_index=ignore_index,
                    reduction=reduction, out_dtype=out_dtype).values


def binary_cross_entropy(input, target, weight=None, reduction="mean", out_dtype=None):
    return evaluate("binary_cross_entropy", input, target, weight=weight, reduction=reduction,
                    out_dtype=out_dtype).values


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None,
                                     out_dtype=None):
    return evaluate("binary_cross_entropy_with_logits", input, target, weight=weight, reduction=reduction,
                    pos_weight=pos_weight, out_dtype=out_dtype).values


def softmax(input, dim, out_dtype=None):
    return evaluate("softmax", input, dim=dim, out_dtype=out_dtype).values


def log_softmax(input, dim, out_dtype=None):
    return evaluate("log_softmax", input, dim=dim, out_dtype=out_dtype).values


def mse_loss(input, target, reduction="mean", out_dtype=None):
    return evaluate("mse_loss", input, target, reduction=reduction, out_dtype=out_dtype).values
