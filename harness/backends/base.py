"""The backend interface: what every backend returns and raises, whatever it wraps.

The runner only ever sees :class:`Backend`, :class:`Observation`, :class:`Unsupported` and
:class:`BackendLoadError`; the guard in :meth:`Backend.evaluate` turns a backend's "I can't do
this" (NotImplementedError, torch's "not implemented for '<dtype>'") into :class:`Unsupported`, so
a missing kernel is reported as unsupported rather than as a failure.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference.registry import LOSSES

# torch's dispatcher message for a missing dtype kernel, e.g. `"addmm_impl_cpu_" not implemented for 'Half'`
_NOT_IMPLEMENTED_FOR = re.compile(r"not implemented for '[^']+'")


class BackendLoadError(ValueError):
    """A backend spec that names nothing usable; the message is one line, fit for a CLI."""


class Unsupported(Exception):
    """The backend cannot evaluate this case (missing function, option or dtype): not a failure."""


@dataclass(frozen=True)
class Observation:
    """What a backend computed for one case.

    ``value`` is in the case's dtype (bfloat16 as ``ml_dtypes.bfloat16``) unless the backend
    returned something else, which the runner then flags; ``grads`` maps each differentiable
    argument's name to its gradient (absent when not asked for or not available).  ``grad`` (the
    input's gradient) is accepted for backends written against the one-gradient interface.
    """

    value: np.ndarray
    grad: np.ndarray | None = None
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    # gradients that were asked for and could not be had, with why ("output detached from
    # autograd"): a failure of the backend, unlike a gradient it does not offer at all
    missing: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a NumPy scalar (np.float32(...), what ``arr.sum()`` gives) is a 0-d output of its dtype;
        # a Python float is not (it has no format to judge it in)
        if isinstance(self.value, np.generic):
            object.__setattr__(self, "value", np.asarray(self.value))
        if isinstance(self.grad, np.generic):
            object.__setattr__(self, "grad", np.asarray(self.grad))
        if any(isinstance(g, np.generic) for g in self.grads.values()):
            object.__setattr__(self, "grads", {k: np.asarray(g) if isinstance(g, np.generic) else g
                                               for k, g in self.grads.items()})
        if self.grad is not None and "input" not in self.grads:
            object.__setattr__(self, "grads", {**self.grads, "input": self.grad})
        elif self.grad is None and "input" in self.grads:
            object.__setattr__(self, "grad", self.grads["input"])

    def observed(self, check: str) -> Any:
        """The array a check judges: the value, or the gradient ``grad:<arg>`` (None when absent)."""
        if check == "value":
            return self.value
        return self.grads.get(check.partition(":")[2])


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters written as escapes (``\x1b``): a backend's exception text
    must not clear the terminal, move the cursor or reorder a line (ANSI/OSC, bidi overrides)."""
    out = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)
    return out if keep_newlines else out.replace("\n", "\\n").replace("\t", " ")


def one_line(exc: BaseException) -> str:
    """``Type: first line of message``: exception text safe to put in a one-line error."""
    text = str(exc).strip().splitlines()
    name = printable(type(exc).__name__)
    return f"{name}: {printable(text[0])}" if text else name


class Backend:
    """Base class: subclasses set ``name`` and implement ``supports`` and ``_evaluate``.

    ``device`` is where the backend computes: a backend that places tensors on the ``device`` it
    was loaded with (``--device``) sets it; one that cannot (NumPy, JAX) keeps "cpu", which is how
    the CLI tells that ``--device`` does not apply to it.
    """

    name: str = "?"
    device: str = "cpu"

    def supports(self, loss: str) -> bool:
        raise NotImplementedError

    def _evaluate(self, case: Any) -> Observation:
        raise NotImplementedError

    def evaluate(self, case: Any) -> Observation:
        """Evaluate ``case``; raise :class:`Unsupported` for what this backend cannot do."""
        if not self.supports(case.loss):
            raise Unsupported(f"backend {self.name!r} does not provide {case.loss}")
        return guarded(self.name, self._evaluate, case)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def guarded(name: str, fn: Any, case: Any) -> Observation:
    """Call ``fn(case)``, converting "not implemented" errors into :class:`Unsupported`."""
    try:
        return fn(case)
    except Unsupported:
        raise
    except NotImplementedError as exc:
        raise Unsupported(f"backend {name!r}: {case.loss} {case.dtype}: {one_line(exc)}") from exc
    except RuntimeError as exc:
        if _NOT_IMPLEMENTED_FOR.search(str(exc)):
            raise Unsupported(f"backend {name!r}: {case.loss} {case.dtype}: {one_line(exc)}") from exc
        raise


class ForeignBackend(Backend):
    """Adapts a third-party object that already has ``supports``/``evaluate`` (an entry point)."""

    def __init__(self, name: str, obj: Any):
        self.name = str(getattr(obj, "name", None) or name)
        self._obj = obj

    def supports(self, loss: str) -> bool:
        return loss in LOSSES and bool(self._obj.supports(loss))

    def _evaluate(self, case: Any) -> Observation:
        obs = self._obj.evaluate(case)
        if isinstance(obs, Observation):
            return obs
        if isinstance(obs, tuple) and len(obs) == 2:  # a plugin may return (value, grad) or (value, grads)
            value, grads = np.asarray(obs[0]), obs[1]
            if isinstance(grads, dict):
                return Observation(value, grads={str(k): np.asarray(v) for k, v in grads.items()})
            return Observation(value, None if grads is None else np.asarray(grads))
        raise TypeError(f"backend {self.name!r}: evaluate returned {type(obs).__name__}, not an Observation")
