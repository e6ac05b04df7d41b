"""Defect: binary_cross_entropy_with_logits computed as binary_cross_entropy(sigmoid(x)).

sigmoid(x) rounds to 1 for large x, so log(1 - sigmoid(x)) hits torch's -100 clamp: the loss of
x = 30, y = 0 comes out 100 instead of 30 (and precision is lost well before that).
"""
import torch
from torch.nn import functional as F
from torch.nn.functional import binary_cross_entropy, cross_entropy, log_softmax, mse_loss, nll_loss, softmax  # noqa: F401

from ._reduce import reduce


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    s = torch.sigmoid(input)
    if pos_weight is None:
        return F.binary_cross_entropy(s, target, weight=weight, reduction=reduction)
    log_s = torch.clamp(torch.log(s), min=-100)
    log_1ms = torch.clamp(torch.log(1 - s), min=-100)
    loss = -(pos_weight * target * log_s + (1 - target) * log_1ms)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)
