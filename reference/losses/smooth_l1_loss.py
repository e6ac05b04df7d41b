"""smooth_l1_loss: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = input - target)."""
from __future__ import annotations

from ..lossdef import Arg, SweepDef
from ._piecewise import (
    PiecewiseLoss,
    kink_calls,
    overflow_calls,
    random_calls,
    subnormal_calls,
    threshold_option,
)


class SmoothL1Loss(PiecewiseLoss):
    name = "smooth_l1_loss"
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("reduction", "reduction", "mean"), Arg("beta", "float", 1.0))
    threshold = "beta"
    strategy_thresholds = (1.0, 0.25, 1.5, 4.0, 0.0)
    summary = "0.5 (x - y)^2 / beta where |x - y| < beta, else |x - y| - 0.5 beta"
    sweep = SweepDef(grid=(("target", (0, 1, -1, 0.5)),))
    notes = """\
- The quadratic piece holds where |d| < beta strictly (torch's `z < beta`); at |d| = beta exactly
  the linear piece gives the same value. Both decided on the exact difference d = x - y.
- `grad:input` is d/beta·g inside and sign(d)·g elsewhere (torch's backward: `x <= -beta`,
  `x >= beta`, else `x / beta`; continuous at the kink); `grad:target` is its negative.
- beta = 0 is l1_loss (torch dispatches to it, gradient sign(d) with sign(0) = 0); beta < 0 and NaN
  are refused (torch: "smooth_l1_loss does not support negative values for beta"); beta = inf
  gives 0 for every finite difference. beta is the given double: torch rounds it to the input's
  dtype in its forward (the gate's betas are representable in every dtype).
- Where beta is not a power of two the quadratic piece is not dyadic (settled by enclosure);
  elsewhere values and gradients are exact. A NaN difference is NaN, value and gradients.
- input and target must have the same shape and dtype (as mse_loss; torch broadcasts with a warning).
"""

    def bs(self, kwargs):
        beta = threshold_option("beta", kwargs.get("beta", 1.0), allow_zero=True, loss=self.name)
        return beta, 1.0


LOSS = SmoothL1Loss()
_T = (None, 0.25, 1.5, 4.0, 0.0)


@LOSS.family("sl1.random")
def sl1_random(rng, dtype, size):
    """N(0, sigma^2), nearly equal and ordinal-uniform pairs, beta in {1 (default), 0.25, 1.5, 4, 0}."""
    return random_calls(rng, dtype, size, _T, "beta")


@LOSS.family("sl1.kinks")
def sl1_kinks(rng, dtype, size):
    """|d| = beta exactly and one ulp either side, d = 0 exactly, one ulp and one subnormal apart."""
    return kink_calls(rng, dtype, size, _T, "beta", 1.0)


@LOSS.family("sl1.overflow")
def sl1_overflow(rng, dtype, size):
    """Differences near and past overflow: inf elementwise, a finite exact mean."""
    return overflow_calls(rng, dtype, size, (None, 4.0, 0.0), "beta")


@LOSS.family("sl1.subnormal")
def sl1_subnormal(rng, dtype, size):
    """Subnormal inputs and differences: the quadratic piece underflows."""
    return subnormal_calls(rng, dtype, size, (None, 0.0), "beta")
