"""The one registry of losses: the :class:`~reference.lossdef.LossDef` objects of reference/losses/.

Cases, the oracle, backends and reports all read it.  Adding a loss is one module under
reference/losses/ plus its name in :data:`MODULES`; the registry order is the order of MODULES
(and of the losses within a module), which is the order suites, summaries and reports list them in.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .lossdef import DTYPES, REDUCTIONS, Arg, LossDef

__all__ = ["DTYPES", "LOSSES", "MODULES", "REDUCTIONS", "REGISTRY", "Arg", "LossDef", "get", "option_family"]

#: the modules under reference/losses/ that define losses (each exports LOSS or LOSSES)
MODULES: tuple[str, ...] = (
    "cross_entropy",
    "binary_cross_entropy",
    "softmax",
    "mse_loss",
    "kl_div",
    # regression losses
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    # likelihood losses
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "sigmoid_focal_loss",
    # LLM training
    "linear_cross_entropy",
)


def _load() -> dict[str, LossDef]:
    out: dict[str, LossDef] = {}
    for mod_name in MODULES:
        mod = importlib.import_module(f"{__package__}.losses.{mod_name}")
        for d in getattr(mod, "LOSSES", None) or (mod.LOSS,):
            if not isinstance(d, LossDef) or not d.name:
                raise TypeError(f"reference.losses.{mod_name}: {d!r} is not a named LossDef")
            if d.name in out:
                raise ValueError(f"loss {d.name!r} defined twice")
            out[d.name] = d
    return out


REGISTRY: dict[str, LossDef] = _load()
LOSSES: tuple[str, ...] = tuple(REGISTRY)


def get(name: str) -> LossDef:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None


def option_family(loss: str, args: tuple, kwargs: Mapping[str, Any]) -> str:
    """The option family of a concrete call (see LossDef.option_family)."""
    return get(loss).option_family(tuple(args), kwargs)
