"""Misbehaving backend: cross_entropy never returns (for the runner's per-case timeout)."""
import time

from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_softmax,
    mse_loss,
    nll_loss,
    softmax,
)


def cross_entropy(input, target, *args, **kwargs):
    while True:
        time.sleep(3600)
