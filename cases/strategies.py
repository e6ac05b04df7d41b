"""Hypothesis strategies producing :class:`cases.Case`, for users' own property tests.

Each loss definition owns its strategy (``LossDef.strategy``: small shapes and plain values, so a
failure shrinks to a minimal case); this module turns its Calls into Cases.  ``<loss>_cases`` exists
for every registered loss, e.g. ``cross_entropy_cases(dtype="float32", max_classes=8)``; ``dtype``
may be a name, a sequence of names, or None (any of the four float dtypes).  Example (docs/cases.md)::

    from hypothesis import given, settings
    from cases.strategies import cross_entropy_cases

    @given(cross_entropy_cases(dtype="float32", max_classes=8))
    def test_mine(case):
        args, kwargs = case.call()
        ...
"""
from __future__ import annotations

from functools import partial

from hypothesis import strategies as st

from reference import registry

from .model import make_case

SUFFIX = "_cases"


def cases_for(loss: str, **kwargs) -> st.SearchStrategy:
    """The strategy for ``loss`` (a registry name), drawing Cases of family ``strategy.<loss>``."""
    d = registry.get(loss)
    return d.strategy(**kwargs).map(
        lambda c: make_case(loss, c.args, c.kwargs, family=f"strategy.{loss}", meta=c.meta))


def any_cases(dtype=None) -> st.SearchStrategy:
    """A case of any loss."""
    return st.one_of(*(cases_for(name, dtype=dtype) for name in registry.LOSSES))


STRATEGIES = {name: partial(cases_for, name) for name in registry.LOSSES}


def __getattr__(attr: str):
    """``<loss>_cases(**kwargs)`` for every registered loss."""
    if attr.endswith(SUFFIX) and attr[: -len(SUFFIX)] in registry.REGISTRY:
        fn = partial(cases_for, attr[: -len(SUFFIX)])
        fn.__doc__ = registry.get(attr[: -len(SUFFIX)]).strategy.__doc__
        return fn
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def __dir__():
    return sorted(list(globals()) + [f"{n}{SUFFIX}" for n in registry.LOSSES])
