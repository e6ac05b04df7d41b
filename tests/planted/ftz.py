"""Policy behaviour (flushed, WARN): torch's results with every subnormal flushed to zero, values
and gradients, as flush-to-zero hardware and compilers return them (XLA, MLX, TensorFlow: a
gradient of 9.9e-39 returned as 0, issue 11)."""
import torch
from torch.nn import functional as F


def _ftz(t):
    return torch.where(t.abs() < torch.finfo(t.dtype).tiny, torch.zeros_like(t), t)


class _FlushGrad(torch.autograd.Function):
    """Identity forward; the gradient flowing back through it is flushed."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return _ftz(g)


def _wrap(fn):
    def call(*args, **kwargs):
        args = tuple(_FlushGrad.apply(a) if torch.is_tensor(a) and a.is_floating_point() and a.requires_grad else a
                     for a in args)
        return _ftz(fn(*args, **kwargs))
    call.__name__ = fn.__name__
    return call


cross_entropy = _wrap(F.cross_entropy)
nll_loss = _wrap(F.nll_loss)
binary_cross_entropy = _wrap(F.binary_cross_entropy)
binary_cross_entropy_with_logits = _wrap(F.binary_cross_entropy_with_logits)
softmax = _wrap(F.softmax)
log_softmax = _wrap(F.log_softmax)
mse_loss = _wrap(F.mse_loss)
