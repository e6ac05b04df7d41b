"""Case families: the generators the loss definitions register (reference/losses/), by name.

A family function takes ``(rng, dtype, size)`` and returns Calls, which become content-hashed Cases
here; the suite builder seeds ``rng`` from (seed, family name, dtype), so each family is
reproducible on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from reference import registry

from ..model import Case, make_case


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
    """A loss definition's case family, bound to that loss: ``fn(rng, dtype, size)`` gives Cases."""

    name: str
    loss: str
    draw: Callable[[np.random.Generator, str, Size], list]
    doc: str

    def fn(self, rng: np.random.Generator, dtype: str, size: Size) -> list[Case]:
        return [make_case(self.loss, c.args, c.kwargs, family=self.name, meta=c.meta, grad=c.grad,
                          grad_output=c.grad_output) for c in self.draw(rng, dtype, size)]


def _collect() -> dict[str, Family]:
    """Every family of every registered loss, in registry order."""
    out: dict[str, Family] = {}
    for d in registry.REGISTRY.values():
        for f in d.families.values():
            if f.name in out:
                raise ValueError(f"family {f.name!r} registered by {out[f.name].loss} and {d.name}")
            out[f.name] = Family(f.name, d.name, f.fn, f.doc)
    return out


FAMILIES: dict[str, Family] = _collect()
