"""Misbehaving backend: cross_entropy kills its interpreter (os._exit(3))."""
import os

from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)


def cross_entropy(input, target, *args, **kwargs):
    os._exit(3)
