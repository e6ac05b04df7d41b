"""Case families: generators parametrised by dtype and size, registered by name.

A family function takes ``(rng, dtype, size)`` and returns a list of Cases; the suite builder
seeds ``rng`` from (seed, family name, dtype), so each family is reproducible on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..model import Case


@dataclass(frozen=True)
class Size:
    """How big a family's cases are.  ``large`` holds the large class counts (1-2 rows each)."""

    name: str
    batch: int
    classes: tuple[int, ...]
    sweep: tuple[int, ...]
    large: tuple[int, ...]
    cliff_classes: tuple[int, ...]
    points: int
    repeats: int = 1


SIZES: dict[str, Size] = {
    "smoke": Size("smoke", batch=2, classes=(3,), sweep=(1, 2, 5), large=(), cliff_classes=(3,), points=3),
    "gate": Size("gate", batch=4, classes=(3, 10, 100), sweep=(1, 2, 3, 8, 64, 512),
                 large=(8192,), cliff_classes=(2, 10, 100), points=9),
    "full": Size("full", batch=16, classes=(3, 10, 100, 1000), sweep=(1, 2, 3, 8, 64, 512, 4096),
                 large=(8192, 16384, 65536, 2 ** 17), cliff_classes=(2, 10, 100, 1000),
                 points=25, repeats=3),
}


@dataclass(frozen=True)
class Family:
    name: str
    loss: str
    fn: Callable[[np.random.Generator, str, Size], list[Case]]
    doc: str


FAMILIES: dict[str, Family] = {}


def family(name: str, loss: str):
    """Register a family generator under ``name`` (its docstring is its description)."""
    def deco(fn):
        if name in FAMILIES:
            raise ValueError(f"family {name!r} registered twice")
        FAMILIES[name] = Family(name, loss, fn, (fn.__doc__ or "").strip().splitlines()[0])
        return fn
    return deco


def _load() -> None:
    from . import binary, classification, elementwise, softmax  # noqa: F401  (registration)


_load()
