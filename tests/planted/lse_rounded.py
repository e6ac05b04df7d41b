"""Defect: cross_entropy rounds logsumexp to the input dtype before subtracting the target logit.

docs/design.md's example: bfloat16 logits [-60000, -60000, -60000] have exact loss log 3; torch
returns 1.1015625, this returns 0 (logsumexp -59998.9 rounds back to -60000 in bfloat16).
Class-index targets without label smoothing take the defective path; the rest is torch's.
In float32 and float64 rounding the lse to the input's format is the logsumexp(x) - x[t] form the
verdict policy names (docs/verdicts.md): there it warns "magnitude-dependent"; it fails in the half
formats, where torch accumulates in float32.
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


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if target.is_floating_point() or label_smoothing:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    class_dim = 0 if input.dim() == 1 else 1
    lse = torch.logsumexp(input, dim=class_dim, keepdim=True)  # rounded to input.dtype here
    return F.nll_loss(input - lse, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
