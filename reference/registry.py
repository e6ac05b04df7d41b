"""The one registry of losses.  Cases, the oracle, backends and reports all read it.

Each :class:`LossSpec` says what a loss is called (torch.nn.functional's name), which
positional tensors it takes, which keyword options it has and their defaults, the dtypes it is
checked in, where its oracle and exact gradient live, and which *option families* the gate suite
must cover.  The option family of a concrete call is computed from its arguments
(:func:`option_family`), so a case can never be mislabelled.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")


@dataclass(frozen=True)
class ArgSpec:
    """One argument.  ``kind`` is one of:

    ``input``      floating tensor in the checked dtype (the argument gradients are taken for)
    ``target``     class indices (int64) or, where the loss allows, probabilities (input's dtype)
    ``ftarget``    floating target in the input's dtype, same shape as input
    ``weight``     optional floating tensor in the input's dtype (class weights / element weights)
    ``int``        Python int option;  ``float`` Python float option;  ``reduction`` one of REDUCTIONS
    """

    name: str
    kind: str
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class LossSpec:
    name: str
    positional: tuple[ArgSpec, ...]
    options: tuple[ArgSpec, ...]
    option_families: tuple[str, ...]
    dtypes: tuple[str, ...] = DTYPES
    has_reduction: bool = True
    has_grad: bool = True
    # filled in by reference/__init__ once the oracle modules are imported (keeps this module
    # free of import cycles); names, not objects, so the registry stays declarative.
    oracle: str = ""
    doc: str = field(default="", compare=False)

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.options)

    @property
    def array_options(self) -> tuple[str, ...]:
        """Keyword options that carry tensors (converted like inputs by backends)."""
        return tuple(a.name for a in self.options if a.kind == "weight")

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.options if not a.required}


_REDUCTION = ArgSpec("reduction", "reduction", "mean")
_WEIGHT = ArgSpec("weight", "weight", None)

REGISTRY: dict[str, LossSpec] = {}


def _register(spec: LossSpec) -> None:
    REGISTRY[spec.name] = spec


_register(LossSpec(
    name="cross_entropy",
    positional=(ArgSpec("input", "input", required=True), ArgSpec("target", "target", required=True)),
    options=(_WEIGHT, ArgSpec("ignore_index", "int", -100), _REDUCTION,
             ArgSpec("label_smoothing", "float", 0.0)),
    option_families=("plain", "weight", "ignore_index", "label_smoothing",
                     "ignore_index+label_smoothing+weight", "probability_target",
                     "probability_target+label_smoothing+weight", "spatial", "unbatched"),
    doc="log_softmax over the class dim, then weighted/ignored/smoothed NLL (DESIGN.md).",
))
_register(LossSpec(
    name="nll_loss",
    positional=(ArgSpec("input", "input", required=True), ArgSpec("target", "target", required=True)),
    options=(_WEIGHT, ArgSpec("ignore_index", "int", -100), _REDUCTION),
    option_families=("plain", "weight", "ignore_index", "ignore_index+weight", "spatial", "unbatched"),
    doc="-w[t]*input[n, t] on arbitrary real inputs.",
))
_register(LossSpec(
    name="binary_cross_entropy",
    positional=(ArgSpec("input", "input", required=True), ArgSpec("target", "ftarget", required=True)),
    options=(_WEIGHT, _REDUCTION),
    option_families=("plain", "weight"),
    doc="-w[y log x + (1-y) log(1-x)] with each log clamped at -100.",
))
_register(LossSpec(
    name="binary_cross_entropy_with_logits",
    positional=(ArgSpec("input", "input", required=True), ArgSpec("target", "ftarget", required=True)),
    options=(_WEIGHT, _REDUCTION, ArgSpec("pos_weight", "weight", None)),
    option_families=("plain", "weight", "pos_weight", "pos_weight+weight"),
    doc="-w[p y log sigmoid(x) + (1-y) log(1-sigmoid(x))], pos_weight broadcast on the last dim.",
))
_register(LossSpec(
    name="softmax",
    positional=(ArgSpec("input", "input", required=True),),
    options=(ArgSpec("dim", "int", None, required=True),),
    option_families=("last_dim", "inner_dim"),
    has_reduction=False,
    doc="softmax along dim.",
))
_register(LossSpec(
    name="log_softmax",
    positional=(ArgSpec("input", "input", required=True),),
    options=(ArgSpec("dim", "int", None, required=True),),
    option_families=("last_dim", "inner_dim"),
    has_reduction=False,
    doc="log_softmax along dim.",
))
_register(LossSpec(
    name="mse_loss",
    positional=(ArgSpec("input", "input", required=True), ArgSpec("target", "ftarget", required=True)),
    options=(_REDUCTION,),
    option_families=("plain",),
    doc="(x - y)^2.",
))

LOSSES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> LossSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None


def option_family(loss: str, args: tuple[np.ndarray, ...], kwargs: Mapping[str, Any]) -> str:
    """The option family of a concrete call, derived from its arguments (never from a label).

    Tags are sorted and joined with '+'; a call with no option in play is 'plain'.
    """
    spec = get(loss)
    if loss in ("softmax", "log_softmax"):
        x = args[0]
        dim = kwargs.get("dim")
        dim = dim % x.ndim if x.ndim else 0
        return "last_dim" if dim == max(x.ndim - 1, 0) else "inner_dim"
    tags: list[str] = []
    if loss in ("cross_entropy", "nll_loss"):
        x, t = args[0], args[1]
        prob = np.issubdtype(np.asarray(t).dtype, np.floating) or str(np.asarray(t).dtype) == "bfloat16"
        if prob:
            tags.append("probability_target")
        elif x.ndim == 1:
            return "unbatched"
        elif x.ndim > 2:
            return "spatial"
        if kwargs.get("weight") is not None:
            tags.append("weight")
        if not prob and np.any(np.asarray(t) == kwargs.get("ignore_index", -100)):
            tags.append("ignore_index")
        if float(kwargs.get("label_smoothing", 0.0) or 0.0) > 0:
            tags.append("label_smoothing")
    else:
        for name in spec.array_options:
            if kwargs.get(name) is not None:
                tags.append(name)
    if "probability_target" in tags:
        rest = sorted(t for t in tags if t != "probability_target")
        return "+".join(["probability_target", *rest])
    return "+".join(sorted(tags)) or "plain"
