"""l1_loss: l = |input - target|, differentiable in both, torch's sign(0) = 0 at d = 0."""
from __future__ import annotations

from ..lossdef import Arg, SweepDef
from ._piecewise import PiecewiseLoss, kink_calls, overflow_calls, random_calls, subnormal_calls


class L1Loss(PiecewiseLoss):
    name = "l1_loss"
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("reduction", "reduction", "mean"),)
    summary = "|x - y|"
    sweep = SweepDef(grid=(("target", (0, 1, -1, 0.5, "min_subnormal")),))
    notes = """\
- torch differentiates both arguments: `grad:input` is sign(x - y)·g and `grad:target` its
  negative, with sign(0) = 0 (torch's backward is `sgn(input - target) * grad`): equal input and
  target get a zero gradient.
- The sign and |x - y| are those of the exact difference; a difference past the format's maximum is
  inf elementwise, while a mean of such differences can be finite (l1.overflow; torch subtracts in
  the storage dtype first and returns inf there).
- A NaN difference (a NaN argument, or inf - inf) gives NaN for the value and both gradients
  (IEEE); torch's sgn(NaN) is 0, so its gradient there is 0 (no gate family holds NaN).
- input and target must have the same shape and dtype (torch broadcasts other shapes with a
  warning that the result is likely wrong, and promotes dtypes; the oracle refuses both, like
  mse_loss).
"""

    def bs(self, kwargs):
        return 0.0, 1.0


LOSS = L1Loss()
_T = (None,)


@LOSS.family("l1.random")
def l1_random(rng, dtype, size):
    """N(0, sigma^2) pairs, nearly equal pairs (cancellation) and ordinal-uniform pairs."""
    return random_calls(rng, dtype, size, _T, None)


@LOSS.family("l1.kinks")
def l1_kinks(rng, dtype, size):
    """d = 0 exactly (sign(0) = 0), one ulp and one subnormal apart."""
    return kink_calls(rng, dtype, size, _T, None, 0.0)


@LOSS.family("l1.overflow")
def l1_overflow(rng, dtype, size):
    """Differences near and past overflow: inf elementwise, a finite exact mean."""
    return overflow_calls(rng, dtype, size, _T, None)


@LOSS.family("l1.subnormal")
def l1_subnormal(rng, dtype, size):
    """Subnormal inputs, targets and differences."""
    return subnormal_calls(rng, dtype, size, _T, None)
