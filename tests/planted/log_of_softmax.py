"""Defect: log_softmax as log(softmax(x)) (and cross_entropy on top of it).

A probability that underflows to 0 gives log 0 = -inf, so a confident row's loss on a
non-winning target is inf where torch returns a finite number.
"""
import torch
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    mse_loss,
    nll_loss,
    softmax,
)


def log_softmax(input, dim=None, **kwargs):
    return torch.log(F.softmax(input, dim=dim, **kwargs))


def cross_entropy(input, target, *args, **kwargs):
    # torch's own cross_entropy over log(softmax(x)): its log_softmax is ~identity on log-probs,
    # so every option keeps torch's semantics and only the underflow defect remains
    class_dim = 0 if input.dim() == 1 else 1
    return F.cross_entropy(log_softmax(input, dim=class_dim), target, *args, **kwargs)
