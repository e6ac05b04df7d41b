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
    """N(0, sigma^2) inputs and targets, sigma in {1, min(100, sqrt(max)/32)}.

    Bounded so that no square and no sum of the batch overflows (float16: sigma 8); overflow is
    mse.overflow's job."""
    out, i = [], 0
    shape = (size.batch, 6)
    for sigma in (1.0, min(100.0, float(np.sqrt(float(finfo(dtype).max))) / 32)):
        for _ in range(3 * size.repeats):
            out.append(make_case(MSE, (normal(rng, sigma, shape, dtype), normal(rng, sigma, shape, dtype)),
                                 {"reduction": reduction(i)}, family="mse.random", meta={"note": f"sigma {sigma:g}"}))
            i += 1
    return out


@family("mse.overflow", MSE)
def mse_overflow(rng, dtype, size):
    """Squares near and past overflow: elementwise results may be inf exactly; a mean of squares
    that each overflow the format can still be finite (an accumulation test of its own)."""
    big = float(np.sqrt(float(finfo(dtype).max)))
    shape = (size.batch, 5)
    out = []
    for r in range(3):
        x = log_uniform(rng, big / 8, big * 2, shape, dtype, signed=True)
        y = log_uniform(rng, big / 8, big * 2, shape, dtype, signed=True)
        out.append(make_case(MSE, (x, y), {"reduction": reduction(r)}, family="mse.overflow",
                             meta={"note": "large: squares near overflow"}))
    # one square at 2.25 * max among small ones: inf elementwise, a finite exact mean
    x = normal(rng, 1.0, shape, dtype).astype(np.float64)
    x[0, 0] = 1.5 * big
    for red in ("none", "sum", "mean"):
        out.append(make_case(MSE, (cast(x, dtype), cast(np.zeros(shape), dtype)), {"reduction": red},
                             family="mse.overflow", meta={"note": "one square past overflow, finite mean"}))
    return out


@family("mse.magnitudes", MSE)
def mse_magnitudes(rng, dtype, size):
    """Small (squares underflow), nearly equal (cancellation) and ordinal-uniform values."""
    fi = finfo(dtype)
    small = float(np.sqrt(float(fi.smallest_subnormal)))
    shape = (size.batch, 5)
    x_near = normal(rng, 10.0, shape, dtype)
    steps = rng.integers(-3, 4, size=shape).astype(np.float64)
    lim = min(1e3, float(np.sqrt(float(fi.max))) / 8)
    variants = [
        ("small: squares underflow", log_uniform(rng, small / 4, small * 64, shape, dtype, signed=True),
         cast(np.zeros(shape), dtype)),
        ("nearly equal: y = x +- few ulps", x_near,
         cast(x_near.astype(np.float64) * (1 + steps * float(fi.eps)), dtype)),
        # bounded so no square overflows (float16: +-32); overflow is mse.overflow's job
        ("ordinal-uniform over +-min(1e3, sqrt(max)/8)", ordinal_uniform(rng, -lim, lim, shape, dtype),
         ordinal_uniform(rng, -lim, lim, shape, dtype)),
    ]
    out = []
    for i, (note, x, y) in enumerate(variants):
        for r in range(3):
            out.append(make_case(MSE, (x, y), {"reduction": reduction(i + r)}, family="mse.magnitudes",
                                 meta={"note": note}))
    return out
