"""Policy behaviour (semantic difference, FAIL): Keras 3's probability clip.  cross_entropy takes
softmax probabilities clipped to [1e-7, 1 - 1e-7] before the log (class-index targets without label
smoothing), binary_cross_entropy clips its input the same way instead of torch's log clamp at -100:
a confident wrong answer costs at most -log(1e-7) = 16.1 (issue 11).  The bounds are the input
format's numbers, as Keras' kernels compare with them (1 - 1e-7 is 1 - 2^-23 in float32)."""
import torch
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)

from ._reduce import reduce

EPS = 1e-7


def _bounds(dtype):
    """(1e-7, 1 - 1e-7) as ``dtype`` holds them, in float64."""
    lo, hi = torch.tensor([EPS, 1 - EPS], dtype=dtype).double().tolist()
    return lo, hi


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if target.is_floating_point() or label_smoothing:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    class_dim = 0 if input.dim() == 1 else 1
    x = input.double()
    p = torch.softmax(x, dim=class_dim).clamp(*_bounds(input.dtype))
    w = None if weight is None else weight.double()
    return F.nll_loss(torch.log(p), target, weight=w, ignore_index=ignore_index,
                      reduction=reduction).to(input.dtype)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    c = input.double().clamp(*_bounds(input.dtype))
    y = target.double()
    loss = -(y * torch.log(c) + (1 - y) * torch.log1p(-c))
    if weight is not None:
        loss = loss * weight.double()
    return reduce(loss, reduction).to(input.dtype)
