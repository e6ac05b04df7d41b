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

from .sampling import DTYPES, rng_for
from .sampling import grad_output as _random_grad_output

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
        return self.kwargs.get("reduction", "mean") if registry.get(self.loss).has_reduction else "none"

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
    spec = registry.get(loss)
    x = args[0]
    if spec.has_reduction and kwargs.get("reduction", "mean") != "none":
        return ()
    if loss in ("cross_entropy", "nll_loss"):
        t = args[1]
        if t.dtype.kind == "i":
            return tuple(t.shape)
        return tuple(x.shape[:1] + x.shape[2:]) if x.ndim >= 2 else ()
    return tuple(np.broadcast_shapes(*(a.shape for a in args)))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _check(loss: str, args, kwargs: Mapping[str, Any]) -> None:
    """Refuse arguments torch would reject, so no suite ever carries an invalid case."""
    spec = registry.get(loss)
    if len(args) != len(spec.positional):
        raise ValueError(f"{loss}: expected {len(spec.positional)} positional arrays, got {len(args)}")
    unknown = set(kwargs) - set(spec.option_names)
    if unknown:
        raise ValueError(f"{loss}: unknown option(s) {sorted(unknown)}")
    x = args[0]
    dt = str(x.dtype)
    if dt not in spec.dtypes or dt not in DTYPES:
        raise ValueError(f"{loss}: input dtype {dt} not in {spec.dtypes}")
    for name in spec.array_options:
        w = kwargs.get(name)
        if w is not None and str(w.dtype) != dt:
            raise ValueError(f"{loss}: {name} dtype {w.dtype} differs from input dtype {dt}")
    for a, s in zip(args[1:], spec.positional[1:]):
        if a.dtype.kind == "i":
            if s.kind != "target" or a.dtype != np.int64:
                raise ValueError(f"{loss}: {s.name} must be int64 class indices or {dt}")
        elif str(a.dtype) != dt:
            raise ValueError(f"{loss}: {s.name} dtype {a.dtype} differs from input dtype {dt}")
    if spec.has_reduction and kwargs.get("reduction", "mean") not in registry.REDUCTIONS:
        raise ValueError(f"{loss}: reduction must be one of {registry.REDUCTIONS}")
    if loss in ("softmax", "log_softmax"):
        if not isinstance(kwargs.get("dim"), int) or not -max(x.ndim, 1) <= kwargs["dim"] < max(x.ndim, 1):
            raise ValueError(f"{loss}: dim must be an int within the input's {x.ndim} dims")
    elif loss in ("cross_entropy", "nll_loss"):
        _check_classes(loss, x, args[1], kwargs)
    else:
        if args[1].shape != x.shape:
            raise ValueError(f"{loss}: target shape {args[1].shape} differs from input {x.shape}")
        if loss == "binary_cross_entropy":
            for name, a in (("input", x), ("target", args[1])):
                f = a.astype(np.float64)
                if np.any(np.isnan(f) | (f < 0) | (f > 1)):
                    raise ValueError(f"{loss}: {name} must lie in [0, 1]")
        for name in spec.array_options:
            if kwargs.get(name) is not None:
                np.broadcast_shapes(kwargs[name].shape, x.shape)


def _check_classes(loss: str, x: np.ndarray, t: np.ndarray, kwargs: Mapping[str, Any]) -> None:
    if x.ndim == 0:
        raise ValueError(f"{loss}: input must have a class dimension")
    cdim = 1 if x.ndim >= 2 else 0
    C = x.shape[cdim]
    if C < 1:
        raise ValueError(f"{loss}: need at least one class")
    w = kwargs.get("weight")
    if w is not None and w.shape != (C,):
        raise ValueError(f"{loss}: weight shape {w.shape} must be ({C},)")
    if t.dtype.kind == "i":
        want = x.shape[:cdim] + x.shape[cdim + 1:]
        if t.shape != want:
            raise ValueError(f"{loss}: target shape {t.shape} must be {want}")
        ii = kwargs.get("ignore_index", -100)
        bad = (t != ii) & ((t < 0) | (t >= C))
        if np.any(bad):
            raise ValueError(f"{loss}: target class outside [0, {C}) and not ignore_index={ii}")
    else:
        if loss == "nll_loss":
            raise ValueError("nll_loss: target must be int64 class indices")
        if t.shape != x.shape:
            raise ValueError(f"{loss}: probability target shape {t.shape} must equal input {x.shape}")
    eps = float(kwargs.get("label_smoothing", 0.0))
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{loss}: label_smoothing must lie in [0, 1]")


def make_case(loss: str, args, kwargs: Mapping[str, Any] | None = None, *, family: str,
              meta: Mapping[str, Any] | None = None, grad: bool | None = None,
              grad_output: np.ndarray | None = None) -> Case:
    """Validate, freeze and label one case.  ``options`` comes from the registry, never a label.

    With ``grad`` unset, gradients are checked wherever the loss has them; a missing grad_output is
    drawn from a generator seeded by the inputs' hash, so it is as deterministic as the inputs.
    """
    spec = registry.get(loss)
    args = tuple(_frozen(np.asarray(a)) for a in args)
    kwargs = {k: (_frozen(v) if isinstance(v, np.ndarray) else v)
              for k, v in (kwargs or {}).items() if v is not None}
    _check(loss, args, kwargs)
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
                options=registry.option_family(loss, args, kwargs), grad=grad,
                grad_output=grad_output, meta=meta,
                id=case_id(loss, args, kwargs, family, grad, grad_output))
