"""Policy behaviour (semantic difference, FAIL): Paddle's cross_entropy, which silently caps each
position's loss at -log(1e-28) = 64.47 (issue 11): a confident wrong answer with a loss of 200 costs
64.47.  Class-index targets without label smoothing; everything else is torch's."""
import math

from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)

CAP = -math.log(1e-28)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if target.is_floating_point() or label_smoothing:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    class_dim = 0 if input.dim() == 1 else 1
    logp = F.log_softmax(input.double(), dim=class_dim).clamp(min=-CAP)
    w = None if weight is None else weight.double()
    return F.nll_loss(logp, target, weight=w, ignore_index=ignore_index, reduction=reduction).to(input.dtype)
