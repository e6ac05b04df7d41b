"""Families for mse_loss."""
from __future__ import annotations

import numpy as np

from ..model import make_case
from ..sampling import cast, finfo, log_uniform, normal, ordinal_uniform
from . import family
from ._util import reduction

MSE = "mse_loss"


@family("mse.random", MSE)
def mse_random(rng, dtype, size):
    """N(0, sigma^2) inputs and targets, sigma in {1, 100}."""
    out, i = [], 0
    shape = (size.batch, 6)
    for sigma in (1.0, 100.0):
        for _ in range(3 * size.repeats):
            out.append(make_case(MSE, (normal(rng, sigma, shape, dtype), normal(rng, sigma, shape, dtype)),
                                 {"reduction": reduction(i)}, family="mse.random", meta={"note": f"sigma {sigma:g}"}))
            i += 1
    return out


@family("mse.magnitudes", MSE)
def mse_magnitudes(rng, dtype, size):
    """Large (squares overflow), small (squares underflow) and nearly equal (cancellation) values."""
    fi = finfo(dtype)
    big, small = float(np.sqrt(float(fi.max))), float(np.sqrt(float(fi.smallest_subnormal)))
    shape = (size.batch, 5)
    x_near = normal(rng, 10.0, shape, dtype)
    steps = rng.integers(-3, 4, size=shape).astype(np.float64)
    variants = [
        ("large: squares near overflow", log_uniform(rng, big / 8, big * 2, shape, dtype, signed=True),
         log_uniform(rng, big / 8, big * 2, shape, dtype, signed=True)),
        ("small: squares underflow", log_uniform(rng, small / 4, small * 64, shape, dtype, signed=True),
         cast(np.zeros(shape), dtype)),
        ("nearly equal: y = x +- few ulps", x_near,
         cast(x_near.astype(np.float64) * (1 + steps * float(fi.eps)), dtype)),
        ("ordinal-uniform over +-1e3", ordinal_uniform(rng, -1e3, 1e3, shape, dtype),
         ordinal_uniform(rng, -1e3, 1e3, shape, dtype)),
    ]
    out = []
    for i, (note, x, y) in enumerate(variants):
        for r in range(3):
            out.append(make_case(MSE, (x, y), {"reduction": reduction(i + r)}, family="mse.magnitudes",
                                 meta={"note": note}))
    return out
