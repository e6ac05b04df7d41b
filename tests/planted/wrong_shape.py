"""Misbehaving backend: cross_entropy returns torch's value with an extra trailing dim."""
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)


def cross_entropy(input, target, *args, **kwargs):
    return F.cross_entropy(input, target, *args, **kwargs).unsqueeze(-1)
