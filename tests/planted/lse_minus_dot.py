"""Defect: cross_entropy with probability targets computed as logsumexp(x) - sum_c y_c x_c (MLX's form).

That equals torch's -sum_c y_c log_softmax(x)_c only when the row of targets sums to 1; torch takes
any float target without normalising it, so a row of mass s is off by (s - 1) logsumexp(x), and
the input gradient by (s - 1) softmax(x).  Label smoothing is folded into y first ((1 - eps) y +
eps / C keeps a unit mass at 1).  The target's gradient is torch's (-log_softmax(x), through a term
of value exactly 0), and class-index or weighted calls are torch's, so rows of unit mass -- all
that ce.probability_target draws -- pass up to rounding and only ce.probability_mass shows the flaw.
"""
import torch
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)

from ._reduce import reduce


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if not target.is_floating_point() or weight is not None:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    class_dim = 0 if input.dim() == 1 else 1
    y = target * (1 - label_smoothing) + label_smoothing / input.shape[class_dim]
    loss = torch.logsumexp(input, dim=class_dim) - (y.detach() * input).sum(dim=class_dim)
    # value 0 exactly (y - y.detach() is 0), gradient -log_softmax(x) for the target, 0 for the input
    loss = loss - ((y - y.detach()) * F.log_softmax(input.detach(), dim=class_dim)).sum(dim=class_dim)
    return reduce(loss, reduction)
