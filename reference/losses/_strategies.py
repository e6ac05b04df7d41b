"""Hypothesis building blocks shared by the loss modules' strategies (imported lazily: hypothesis
is only needed by whoever draws cases)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..formats import FORMATS
from ..lossdef import DTYPES
from ..sampling import cast


def width(dtype: str) -> int:
    """hypothesis float width that holds every value of ``dtype`` (bfloat16: 32, then one rounding)."""
    bits = FORMATS[dtype].np_dtype.itemsize * 8
    return 32 if dtype == "bfloat16" else bits


def dtypes(dtype: str | Sequence[str] | None) -> st.SearchStrategy[str]:
    names = DTYPES if dtype is None else ((dtype,) if isinstance(dtype, str) else tuple(dtype))
    bad = [d for d in names if d not in DTYPES]
    if bad:
        raise ValueError(f"unknown dtype(s) {bad}; known: {', '.join(DTYPES)}")
    return st.sampled_from(names)


def floats(draw, shape, dtype: str, lo: float, hi: float) -> np.ndarray:
    """Values in [lo, hi] drawn at the dtype's width, rounded once into dtype."""
    els = st.floats(lo, hi, width=width(dtype), allow_nan=False, allow_infinity=False)
    return cast(draw(hnp.arrays(np.float64, tuple(shape), elements=els)), dtype)


def option(flag: bool) -> st.SearchStrategy[bool]:
    return st.booleans() if flag else st.just(False)


def pair_strategy(dtype, max_size, reductions, weights, pos_weight, x_range, y_range):
    """(input, target) of one random 2-d shape, optional broadcast weight / pos_weight."""
    from ..lossdef import Call

    dts = dtypes(dtype)  # validated now, not at the first draw

    @st.composite
    def strategy(draw):
        dt = draw(dts)
        shape = (draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
        x = floats(draw, shape, dt, *x_range)
        y = floats(draw, shape, dt, *y_range)
        kw = {"reduction": draw(st.sampled_from(tuple(reductions)))}
        if draw(option(weights)):
            wshape = draw(st.sampled_from([shape, shape[1:], (shape[0], 1)]))
            kw["weight"] = floats(draw, wshape, dt, 0.0, 4.0)
        if draw(option(pos_weight)):
            kw["pos_weight"] = floats(draw, draw(st.sampled_from([shape[1:], (1,)])), dt, 0.0, 4.0)
        return Call((x, y), kw)
    return strategy()
