"""Defect: binary_cross_entropy without torch's clamp of each log at -100.

x = 0 with y = 1 gives inf (torch: 100); x = 0 with y = 0 gives 0 * -inf = nan (torch: 0).
"""
import torch
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy_with_logits,
    cross_entropy,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)

from ._reduce import reduce


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    loss = -(target * torch.log(input) + (1 - target) * torch.log1p(-input))
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)
