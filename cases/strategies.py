"""Hypothesis strategies producing :class:`cases.Case`, for users' own property tests.

Every strategy draws small shapes and plain values, so a failure shrinks to a minimal case
(few classes, values near 0).  All arguments are optional; ``dtype`` may be a name, a sequence of
names, or None (any of the four float dtypes).  Example (see docs/cases.md)::

    from hypothesis import given, settings
    from cases.strategies import cross_entropy_cases

    @given(cross_entropy_cases(dtype="float32", max_classes=8))
    def test_mine(case):
        args, kwargs = case.call()
        ...
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference.registry import DTYPES, REDUCTIONS

from .model import make_case
from .sampling import cast

_WIDTH = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}


def _dtypes(dtype: str | Sequence[str] | None) -> st.SearchStrategy[str]:
    names = DTYPES if dtype is None else ((dtype,) if isinstance(dtype, str) else tuple(dtype))
    bad = [d for d in names if d not in DTYPES]
    if bad:
        raise ValueError(f"unknown dtype(s) {bad}; known: {', '.join(DTYPES)}")
    return st.sampled_from(names)


def _floats(draw, shape, dtype: str, lo: float, hi: float) -> np.ndarray:
    """Values in [lo, hi] drawn at the dtype's width (bfloat16: float32, then one rounding)."""
    els = st.floats(lo, hi, width=_WIDTH[dtype], allow_nan=False, allow_infinity=False)
    return cast(draw(hnp.arrays(np.float64, tuple(shape), elements=els)), dtype)


def _option(flag: bool) -> st.SearchStrategy[bool]:
    return st.booleans() if flag else st.just(False)


def _class_case(loss: str, dtype, max_classes, max_batch, reductions, label_smoothing, weights,
                ignore_index, probability_targets, max_abs):
    dtypes = _dtypes(dtype)   # validated now, not at the first draw

    @st.composite
    def strategy(draw):
        dt = draw(dtypes)
        C = draw(st.integers(1, max_classes))
        B = draw(st.integers(1, max_batch))
        x = _floats(draw, (B, C), dt, -max_abs, max_abs)
        kw = {"reduction": draw(st.sampled_from(tuple(reductions)))}
        if draw(_option(probability_targets)):
            t = _floats(draw, (B, C), dt, 0.0, 1.0)
        else:
            t = draw(hnp.arrays(np.int64, (B,), elements=st.integers(0, C - 1)))
            if draw(_option(ignore_index)):
                mask = draw(hnp.arrays(np.bool_, (B,)))
                t = np.where(mask, -100, t).astype(np.int64)
                kw["ignore_index"] = -100
        if draw(_option(weights)):
            kw["weight"] = _floats(draw, (C,), dt, 0.0, 4.0)
        if loss == "cross_entropy":
            kw["label_smoothing"] = draw(st.sampled_from(tuple(label_smoothing)))
        return make_case(loss, (x, t), kw, family=f"strategy.{loss}")
    return strategy()


def cross_entropy_cases(dtype=None, max_classes: int = 16, max_batch: int = 8, reductions=REDUCTIONS,
                        label_smoothing=(0.0, 0.1, 0.2, 1.0), weights: bool = True,
                        ignore_index: bool = True, probability_targets: bool = True,
                        max_abs: float = 100.0) -> st.SearchStrategy:
    """cross_entropy on (B, C) logits in [-max_abs, max_abs]; class or probability targets."""
    return _class_case("cross_entropy", dtype, max_classes, max_batch, reductions, label_smoothing,
                       weights, ignore_index, probability_targets, max_abs)


def nll_loss_cases(dtype=None, max_classes: int = 16, max_batch: int = 8, reductions=REDUCTIONS,
                   weights: bool = True, ignore_index: bool = True, max_abs: float = 100.0) -> st.SearchStrategy:
    """nll_loss on arbitrary real (B, C) inputs in [-max_abs, max_abs]."""
    return _class_case("nll_loss", dtype, max_classes, max_batch, reductions, (0.0,), weights,
                       ignore_index, False, max_abs)


def _pair_case(loss: str, dtype, max_size, reductions, weights, pos_weight, x_range, y_range):
    dtypes = _dtypes(dtype)   # validated now, not at the first draw

    @st.composite
    def strategy(draw):
        dt = draw(dtypes)
        shape = (draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
        x = _floats(draw, shape, dt, *x_range)
        y = _floats(draw, shape, dt, *y_range)
        kw = {"reduction": draw(st.sampled_from(tuple(reductions)))}
        if draw(_option(weights)):
            wshape = draw(st.sampled_from([shape, shape[1:], (shape[0], 1)]))
            kw["weight"] = _floats(draw, wshape, dt, 0.0, 4.0)
        if draw(_option(pos_weight)):
            kw["pos_weight"] = _floats(draw, draw(st.sampled_from([shape[1:], (1,)])), dt, 0.0, 4.0)
        return make_case(loss, (x, y), kw, family=f"strategy.{loss}")
    return strategy()


def binary_cross_entropy_cases(dtype=None, max_size: int = 6, reductions=REDUCTIONS,
                               weights: bool = True) -> st.SearchStrategy:
    """binary_cross_entropy: probabilities and targets in [0, 1] (0 and 1 included)."""
    return _pair_case("binary_cross_entropy", dtype, max_size, reductions, weights, False, (0.0, 1.0), (0.0, 1.0))


def binary_cross_entropy_with_logits_cases(dtype=None, max_size: int = 6, reductions=REDUCTIONS,
                                           weights: bool = True, pos_weight: bool = True,
                                           max_abs: float = 100.0) -> st.SearchStrategy:
    """binary_cross_entropy_with_logits: logits in [-max_abs, max_abs], targets in [0, 1]."""
    return _pair_case("binary_cross_entropy_with_logits", dtype, max_size, reductions, weights, pos_weight,
                      (-max_abs, max_abs), (0.0, 1.0))


def mse_loss_cases(dtype=None, max_size: int = 6, reductions=REDUCTIONS, max_abs: float = 1e3) -> st.SearchStrategy:
    """mse_loss: inputs and targets in [-max_abs, max_abs]."""
    return _pair_case("mse_loss", dtype, max_size, reductions, False, False, (-max_abs, max_abs),
                      (-max_abs, max_abs))


def _softmax_case(loss: str, dtype, max_dims, max_side, max_abs):
    dtypes = _dtypes(dtype)   # validated now, not at the first draw

    @st.composite
    def strategy(draw):
        dt = draw(dtypes)
        shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims)))
        dim = draw(st.integers(-len(shape), len(shape) - 1))
        return make_case(loss, (_floats(draw, shape, dt, -max_abs, max_abs),), {"dim": dim},
                         family=f"strategy.{loss}")
    return strategy()


def softmax_cases(dtype=None, max_dims: int = 4, max_side: int = 6, max_abs: float = 100.0) -> st.SearchStrategy:
    """softmax over any dim of a 1-D to max_dims-D input."""
    return _softmax_case("softmax", dtype, max_dims, max_side, max_abs)


def log_softmax_cases(dtype=None, max_dims: int = 4, max_side: int = 6, max_abs: float = 100.0) -> st.SearchStrategy:
    """log_softmax over any dim of a 1-D to max_dims-D input."""
    return _softmax_case("log_softmax", dtype, max_dims, max_side, max_abs)


STRATEGIES = {
    "cross_entropy": cross_entropy_cases, "nll_loss": nll_loss_cases,
    "binary_cross_entropy": binary_cross_entropy_cases,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits_cases,
    "softmax": softmax_cases, "log_softmax": log_softmax_cases, "mse_loss": mse_loss_cases,
}


def cases_for(loss: str, **kwargs) -> st.SearchStrategy:
    """The strategy for ``loss`` (a registry name)."""
    try:
        return STRATEGIES[loss](**kwargs)
    except KeyError:
        raise ValueError(f"no strategy for loss {loss!r}; known: {', '.join(STRATEGIES)}") from None


def any_cases(dtype=None) -> st.SearchStrategy:
    """A case of any loss."""
    return st.one_of(*(f(dtype=dtype) for f in STRATEGIES.values()))
