"""The Case record and its content-hash id.

The id hashes everything that decides what is checked: loss name, family, scalar kwargs (canonical
JSON), every array's dtype name, shape and little-endian bytes (args, array kwargs, grad_output) and
the grad flag.  ``family`` is included so two families may share inputs and still be told apart in
results; ``meta`` (notes, drive values derived from the inputs) is excluded so rewording a note never
changes an id.  The same inputs therefore give the same id on every machine and process.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference import registry
from reference.sampling import grad_output as _random_grad_output
from reference.sampling import rng_for

ID_LENGTH = 16


@dataclass(frozen=True, eq=False)
class Case:
    """One check: call ``loss(*args, **kwargs)`` (and its input gradient when ``grad``)."""

    loss: str
    args: tuple[np.ndarray, ...]
    kwargs: dict
    family: str
    options: str
    grad: bool
    grad_output: np.ndarray | None
    meta: dict = field(default_factory=dict)
    id: str = ""

    @property
    def dtype(self) -> str:
        return str(self.args[0].dtype)

    @property
    def reduction(self) -> str:
        return registry.get(self.loss).reduction_of(self.kwargs)

    @property
    def checks(self) -> tuple[str, ...]:
        """``value``, and ``grad:<arg>`` for every argument the loss differentiates when ``grad``."""
        d = registry.get(self.loss)
        return d.checks_for(self.args, self.kwargs) if self.grad else ("value",)

    def call(self) -> tuple[tuple[np.ndarray, ...], dict]:
        """(args, kwargs) ready for ``reference.evaluate(case.loss, *args, **kwargs)``."""
        return self.args, dict(self.kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Case) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.args)
        scalars = ", ".join(f"{k}={v!r}" for k, v in sorted(self.kwargs.items())
                            if not isinstance(v, np.ndarray))
        return f"Case({self.id} {self.loss}({shapes}{', ' if scalars else ''}{scalars}) {self.family})"


def _le_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    u = a.view(np.dtype(f"u{a.dtype.itemsize}"))
    return u.astype(u.dtype.newbyteorder("<"), copy=False).tobytes()


def _arrays(args, kwargs, grad_output) -> list[tuple[str, np.ndarray]]:
    out = [(f"arg{i}", a) for i, a in enumerate(args)]
    out += [(f"kw:{k}", kwargs[k]) for k in sorted(kwargs) if isinstance(kwargs[k], np.ndarray)]
    if grad_output is not None:
        out.append(("grad_output", grad_output))
    return out


def case_id(loss: str, args, kwargs: Mapping[str, Any], family: str, grad: bool,
            grad_output: np.ndarray | None) -> str:
    arrays = _arrays(args, kwargs, grad_output)
    header = {
        "v": 1, "loss": loss, "family": family, "grad": bool(grad),
        "kwargs": {k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)},
        "arrays": [[role, str(a.dtype), list(a.shape)] for role, a in arrays],
    }
    h = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())
    for _, a in arrays:
        data = _le_bytes(a)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:ID_LENGTH]


def output_shape(loss: str, args, kwargs: Mapping[str, Any]) -> tuple[int, ...]:
    return registry.get(loss).output_shape(tuple(args), kwargs)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def make_case(loss: str, args, kwargs: Mapping[str, Any] | None = None, *, family: str,
              meta: Mapping[str, Any] | None = None, grad: bool | None = None,
              grad_output: np.ndarray | None = None) -> Case:
    """Validate (with the loss's one validator), freeze and label one case.  ``options`` comes from
    the loss definition, never a label.

    With ``grad`` unset, gradients are checked wherever the loss has them; a missing grad_output is
    drawn from a generator seeded by the inputs' hash, so it is as deterministic as the inputs.
    """
    spec = registry.get(loss)
    args = tuple(_frozen(np.asarray(a)) for a in args)
    kwargs = {k: (_frozen(v) if isinstance(v, np.ndarray) else v)
              for k, v in (kwargs or {}).items() if v is not None}
    spec.validate(args, kwargs)
    grad = spec.has_grad if grad is None else bool(grad)
    if grad and grad_output is None:
        rng = rng_for(0, "grad_output", case_id(loss, args, kwargs, family, True, None))
        grad_output = _random_grad_output(rng, output_shape(loss, args, kwargs), str(args[0].dtype))
    if not grad:
        grad_output = None
    elif grad_output is not None:
        grad_output = _frozen(np.asarray(grad_output))
        want = output_shape(loss, args, kwargs)
        if grad_output.shape != want or str(grad_output.dtype) != str(args[0].dtype):
            raise ValueError(f"{loss}: grad_output must be {args[0].dtype}{list(want)}, "
                             f"got {grad_output.dtype}{list(grad_output.shape)}")
    meta = dict(meta or {})
    json.dumps(meta, allow_nan=False)  # meta must stay JSON-able (it is saved and reported)
    return Case(loss=loss, args=args, kwargs=kwargs, family=family,
                options=spec.option_family(args, kwargs), grad=grad,
                grad_output=grad_output, meta=meta,
                id=case_id(loss, args, kwargs, family, grad, grad_output))
