"""Defect: the weighted mean divides by the number of targets N instead of sum of w[t]."""
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    softmax,
)


def _over_n(fn, input, target, weight=None, reduction="mean", **kwargs):
    floating_target = target.is_floating_point()
    if weight is None or reduction != "mean" or floating_target:
        return fn(input, target, weight=weight, reduction=reduction, **kwargs)
    return fn(input, target, weight=weight, reduction="sum", **kwargs) / target.numel()


def cross_entropy(input, target, weight=None, reduction="mean", **kwargs):
    return _over_n(F.cross_entropy, input, target, weight=weight, reduction=reduction, **kwargs)


def nll_loss(input, target, weight=None, reduction="mean", **kwargs):
    return _over_n(F.nll_loss, input, target, weight=weight, reduction=reduction, **kwargs)
