"""Backends that take and return torch tensors: torch.nn.functional itself and any drop-in.

The case's arrays are converted bit-exactly and placed on the backend's device (every tensor of
the call: inputs, targets, weight/pos_weight, grad_output), the function is called the way user
code calls ``torch.nn.functional`` (``fn(input, target, **kwargs)``), every declared gradient
(input, target, ...) comes from autograd with the case's own ``grad_output``, and the result is
brought back to NumPy without rounding.  What the function returns is not judged here: a wrong
dtype or shape is the runner's to report.  A keyword option the function's signature does not
take is reported unsupported rather than called into a TypeError.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import torch

from reference import registry
from reference.registry import LOSSES

from .base import Backend, BackendLoadError, Observation, Unsupported
from .convert import to_numpy, to_torch, to_torch_arg
from .device import DEFAULT_DEVICE, DeviceError, torch_device


class TorchFunctionalBackend(Backend):
    """Wraps a module or object exposing torch.nn.functional-like loss functions; its tensors live
    on ``device`` (a torch device name; BackendLoadError when torch cannot use it here)."""

    def __init__(self, name: str, functions: Any, device: str = DEFAULT_DEVICE):
        self.name = name
        self.functions = functions
        try:
            self._device = torch_device(device)
        except DeviceError as exc:
            raise BackendLoadError(f"backend {name!r}: {exc}") from None
        self.device = str(self._device)

    def supports(self, loss: str) -> bool:
        return loss in LOSSES and callable(getattr(self.functions, loss, None))

    def delegates_to(self, loss: str) -> str | None:
        """"torch" when this drop-in's ``loss`` is torch.nn.functional's own function (re-exported,
        not wrapped): its records then get torch's known failures.  Told by the function's own
        module and name, not by identity with ``F.<loss>``, which a patching library replaces."""
        fn = getattr(self.functions, loss, None)
        if self.name == "torch" or fn is None or hasattr(fn, "__wrapped__"):
            return None
        own = getattr(fn, "__module__", None) == "torch.nn.functional" and getattr(fn, "__name__", None) == loss
        return "torch" if own else None

    def _options(self, fn: Any, loss: str, kwargs: dict) -> dict:
        """The case's keyword options that ``fn`` can be called with: {option: (keyword, value)}.

        An option its signature lacks (no such parameter, no ``**kwargs``) makes the case
        unsupported -- torch's cross_entropy has no ``softcap`` -- unless it holds the loss's
        default value, which asks for nothing (the option is then left out of the call).  Where no
        signature can be read (a C builtin), every option is passed, as user code would.
        """
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            return {k: (k, v) for k, v in kwargs.items()}
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return {k: (k, v) for k, v in kwargs.items()}
        takes = {n for n, p in params.items()
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
        spec = registry.get(loss)
        defaults = spec.defaults()
        out = {}
        for key, value in kwargs.items():
            # an option torch's own function names differently (linear_cross_entropy's bias is
            # F.linear_cross_entropy's linear_bias) goes by that name where the function takes it
            call = next(iter(spec.torch_kwargs({key: value}, takes.__contains__)))
            if call in takes:
                out[key] = (call, value)
            elif not (key in defaults and _is_default(value, defaults[key])):
                raise Unsupported(f"backend {self.name!r}: {loss} has no option {key!r}")
        return out

    def _evaluate(self, case: Any) -> Observation:
        fn = getattr(self.functions, case.loss)
        spec = registry.get(case.loss)
        options = self._options(fn, case.loss, dict(case.kwargs))
        args = [to_torch(a, self._device) for a in case.args]
        by_name = {k: to_torch_arg(v, self._device) for k, (_, v) in options.items()}
        kwargs = {call: by_name[k] for k, (call, _) in options.items()}
        # every tensor the loss differentiates (and the case holds as a floating tensor) gets a grad
        leaves: dict[str, torch.Tensor] = {}
        if case.grad:
            named = dict(zip((a.name for a in spec.positional), args))
            named.update({k: v for k, v in by_name.items() if isinstance(v, torch.Tensor)})
            leaves = {n: named[n] for n in spec.differentiable_for(case.args, case.kwargs)
                      if isinstance(named.get(n), torch.Tensor)}
        for t in leaves.values():
            t.requires_grad_(True)
        # the gate calls documented semantics on purpose (kl_div's reduction='mean', say): the
        # library's advice about them is noise on the user's terminal, once per worker
        with torch.enable_grad() if leaves else torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = fn(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"backend {self.name!r}: {case.loss} returned {type(out).__name__}, "
                            "not a torch.Tensor")
        value = to_numpy(out)
        grads: dict = {}
        missing: dict = {}
        if leaves and case.grad_output is not None and not out.requires_grad:
            # inputs that require grad and an output without a graph: the function cut autograd
            missing = {n: "output detached from autograd" for n in leaves}
        elif leaves and case.grad_output is not None:
            grad_output = to_torch(case.grad_output, self._device)
            # a wrong-shaped output is reported from its value; backward would only obscure that
            if tuple(grad_output.shape) == tuple(out.shape):
                out.backward(grad_output.to(out.dtype))
                grads = {n: to_numpy(t.grad) for n, t in leaves.items() if t.grad is not None}
                missing = {n: f"no gradient reached {n}" for n, t in leaves.items() if t.grad is None}
        return Observation(value, grads=grads, missing=missing)


def _is_default(value: Any, default: Any) -> bool:
    """Whether an option's value is its declared default (None, or an equal scalar)."""
    if value is None or default is None:
        return value is default
    if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False
