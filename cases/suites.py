"""Named suites: deterministic lists of cases for a seed."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

from reference import registry
from reference.sampling import rng_for

from .families import FAMILIES, SIZES
from .model import Case

SUITES: dict[str, str] = {
    "smoke": "seconds: a few tiny cases of every family and loss (unit tests of other layers)",
    "gate": "the default CI gate: every loss x option family x dtype, every reduction, all stress "
            "families, large C >= 8192 in every dtype (<= 120 s cold on 2 cores)",
    "full": "bigger: large C up to 2**17, more samples per family (minutes)",
}
SMOKE_PER_FAMILY = 2
T = TypeVar("T")


def _family_cases(name: str, dtype: str, size_name: str, seed: int) -> list[Case]:
    fam = FAMILIES[name]
    return fam.fn(rng_for(seed, name, dtype, size_name), dtype, SIZES[size_name])


@lru_cache(maxsize=8)
def _build(name: str, seed: int) -> tuple[Case, ...]:
    out: list[Case] = []
    for k, (fname, fam) in enumerate(FAMILIES.items()):
        dtypes = registry.get(fam.loss).dtypes
        if name == "smoke":   # one dtype per family, rotating, so every dtype appears
            dtype = dtypes[k % len(dtypes)]
            cases = _family_cases(fname, dtype, "smoke", seed)
            step = max(1, len(cases) // SMOKE_PER_FAMILY)
            out += cases[::step][:SMOKE_PER_FAMILY]
        else:
            for dtype in dtypes:
                out += _family_cases(fname, dtype, name, seed)
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise RuntimeError(f"suite {name!r}: duplicate case id {dup}")
    return tuple(out)


def build_suite(name: str, seed: int = 0) -> list[Case]:
    """The cases of suite ``name`` for ``seed``; the same ids come out on every run and machine."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
    return list(_build(name, int(seed)))


def find(case_id: str, suites=("smoke", "gate", "full"), seed: int = 0) -> Case | None:
    """The case with exactly this id in the first of ``suites`` holding it, else None."""
    return next((c for c, _ in find_prefix(case_id, suites, (seed,)) if c.id == case_id), None)


class AmbiguousId(LookupError):
    """An id prefix that matches more than one case; ``candidates`` holds them (up to a limit)."""

    def __init__(self, prefix: str, candidates: list, count: int) -> None:
        self.prefix, self.candidates, self.count = prefix, candidates, count
        super().__init__(f"case id prefix {prefix!r} matches {count} cases")


def by_prefix(prefix: str, items: Iterable[T], key: Callable[[T], str] = lambda c: c.id) -> list[T]:
    """The items whose id (``key``) starts with ``prefix`` (case-insensitive), one per id, in order;
    an exact id wins over longer ids that merely start with it."""
    p = prefix.strip().lower()
    seen: dict[str, T] = {}
    for item in items:
        k = key(item)
        if k.lower().startswith(p) and k not in seen:
            seen[k] = item
    exact = [v for k, v in seen.items() if k.lower() == p]
    return exact or list(seen.values())


def find_prefix(prefix: str, suites: Sequence[str] = ("smoke", "gate", "full"),
                seeds: Iterable[int] = (0,)) -> list[tuple[Case, int]]:
    """Every case whose id starts with ``prefix`` in ``suites`` built with each of ``seeds``, as
    (case, seed), one per id, in suite and seed order.  A unique prefix gives one pair; a case id
    is a content hash, so a case sitting in several suites (or seeds) is one match."""
    pairs = [(c, seed) for seed in seeds for name in suites for c in build_suite(name, seed)]
    return by_prefix(prefix, pairs, key=lambda pair: pair[0].id)


def find_unique(prefix: str, suites: Sequence[str] = ("smoke", "gate", "full"),
                seeds: Iterable[int] = (0,)) -> tuple[Case, int] | None:
    """The one (case, seed) whose id starts with ``prefix``; None when none does; raises
    :class:`AmbiguousId` (with up to 10 candidates) when several do."""
    found = find_prefix(prefix, suites, seeds)
    if len(found) > 1:
        raise AmbiguousId(prefix, [c for c, _ in found[:10]], len(found))
    return found[0] if found else None
