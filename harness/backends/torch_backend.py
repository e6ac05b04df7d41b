"""Backends that take and return torch tensors: torch.nn.functional itself and any drop-in.

The case's arrays are converted bit-exactly, the function is called the way user code calls
``torch.nn.functional`` (``fn(input, target, **kwargs)``), the gradient comes from autograd with
the case's own ``grad_output``, and the result is converted back without rounding.  What the
function returns is not judged here: a wrong dtype or shape is the runner's to report.
"""
from __future__ import annotations

from typing import Any

import torch

from reference.registry import LOSSES

from .base import Backend, Observation
from .convert import to_numpy, to_torch, to_torch_arg


class TorchFunctionalBackend(Backend):
    """Wraps a module or object exposing torch.nn.functional-like loss functions."""

    def __init__(self, name: str, functions: Any):
        self.name = name
        self.functions = functions

    def supports(self, loss: str) -> bool:
        return loss in LOSSES and callable(getattr(self.functions, loss, None))

    def _evaluate(self, case: Any) -> Observation:
        fn = getattr(self.functions, case.loss)
        args = [to_torch(a) for a in case.args]
        kwargs = {k: to_torch_arg(v) for k, v in case.kwargs.items()}
        want_grad = bool(case.grad) and args[0].is_floating_point()
        if want_grad:
            args[0].requires_grad_(True)
        with torch.enable_grad() if want_grad else torch.no_grad():
            out = fn(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"backend {self.name!r}: {case.loss} returned {type(out).__name__}, "
                            "not a torch.Tensor")
        value = to_numpy(out)
        grad = None
        if want_grad and out.requires_grad and case.grad_output is not None:
            grad_output = to_torch(case.grad_output)
            # a wrong-shaped output is reported from its value; backward would only obscure that
            if tuple(grad_output.shape) == tuple(out.shape):
                out.backward(grad_output.to(out.dtype))
                if args[0].grad is not None:
                    grad = to_numpy(args[0].grad)
        return Observation(value, grad)
