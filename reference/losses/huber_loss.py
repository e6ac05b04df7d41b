"""huber_loss: 0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere (d = input - target)."""
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


class HuberLoss(PiecewiseLoss):
    name = "huber_loss"
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("reduction", "reduction", "mean"), Arg("delta", "float", 1.0))
    threshold = "delta"
    degree = 2
    strategy_thresholds = (1.0, 0.5, 1.5, 4.0)
    summary = "0.5 (x - y)^2 where |x - y| < delta, else delta (|x - y| - 0.5 delta)"
    sweep = SweepDef(grid=(("target", (0, 1, -1, 0.5)),))
    notes = """\
- The quadratic piece holds where |d| < delta strictly (torch's `z < delta`); at |d| = delta both
  pieces give 0.5 delta^2. Decided on the exact difference d = x - y.
- `grad:input` is d·g inside and delta·sign(d)·g elsewhere (torch's backward: `x <= -delta`,
  `x >= delta`, else `x`; continuous at the kink); `grad:target` is its negative. Values and
  gradients are sums and products of the inputs and delta: exact everywhere.
- delta <= 0 and NaN are refused (torch: "huber_loss does not support non-positive values for
  delta"); delta = inf is 0.5 d^2 for every finite difference. delta is the given double (torch
  rounds it to the input's dtype; the gate's deltas are representable in every dtype).
- A NaN difference is NaN, value and gradients. input and target must have the same shape and
  dtype (as mse_loss; torch broadcasts with a warning).
"""

    def bs(self, kwargs):
        delta = threshold_option("delta", kwargs.get("delta", 1.0), allow_zero=False, loss=self.name)
        return delta, delta


LOSS = HuberLoss()
_T = (None, 0.5, 1.5, 4.0)


@LOSS.family("huber.random")
def huber_random(rng, dtype, size):
    """N(0, sigma^2), nearly equal and ordinal-uniform pairs, delta in {1 (default), 0.5, 1.5, 4}."""
    return random_calls(rng, dtype, size, _T, "delta")


@LOSS.family("huber.kinks")
def huber_kinks(rng, dtype, size):
    """|d| = delta exactly and one ulp either side, d = 0 exactly, one ulp and one subnormal apart."""
    return kink_calls(rng, dtype, size, _T, "delta", 1.0)


@LOSS.family("huber.overflow")
def huber_overflow(rng, dtype, size):
    """Differences near and past overflow: inf elementwise, a finite exact mean."""
    return overflow_calls(rng, dtype, size, (None, 4.0), "delta")


@LOSS.family("huber.subnormal")
def huber_subnormal(rng, dtype, size):
    """Subnormal inputs and differences: the quadratic piece underflows."""
    return subnormal_calls(rng, dtype, size, (None,), "delta")
