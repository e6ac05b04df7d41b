"""Defect: cross_entropy's backward ignores grad_output (returns the gradient for all ones).

The forward value is torch's exactly; only gradients with a grad_output other than 1 are wrong.
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


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, kwargs):
        with torch.enable_grad():
            x = input.detach().requires_grad_(True)
            out = F.cross_entropy(x, target, **kwargs)
            (grad_for_ones,) = torch.autograd.grad(out, x, torch.ones_like(out))
        ctx.save_for_backward(grad_for_ones)
        return out.detach()

    @staticmethod
    def backward(ctx, grad_output):
        (grad_for_ones,) = ctx.saved_tensors
        return grad_for_ones, None, None  # the defect: grad_output is never used


def cross_entropy(input, target, **kwargs):
    return _CrossEntropy.apply(input, target, kwargs)
