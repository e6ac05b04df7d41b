"""Policy behaviour (convention, WARN): binary_cross_entropy_with_logits that drops a term whose
coefficient is exactly zero, so x = +inf, y = 1 (and x = -inf, y = 0) gives the limit 0 where torch
and the oracle give 0 * inf = NaN (issue 11)."""
import torch
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    cross_entropy,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)

from ._reduce import reduce


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    loss = F.binary_cross_entropy_with_logits(input, target, weight=weight, reduction="none", pos_weight=pos_weight)
    p = torch.ones_like(input) if pos_weight is None else pos_weight.expand_as(input)
    zero = (torch.isposinf(input) & (target == 1)) | (torch.isneginf(input) & (p * target == 0))
    return reduce(torch.where(zero, torch.zeros_like(loss), loss), reduction)
