"""Policy behaviour (magnitude-dependent, WARN): cross_entropy as logsumexp(x) - x[t] and log_softmax
as x - logsumexp(x), without subtracting the row max from the result first (optax's, SciPy-style code's
and several fused kernels' form).  Half-precision inputs are computed in float32 and rounded once, as
those libraries do; float32/float64 in their own format.  Each result errs by about u * max|x| of its
row: backward stable in the textbook sense, harmful only when the logits are large next to the loss
(issue 11: exact 8.4e-13 returned as 0 in float64)."""
import torch
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    mse_loss,
    nll_loss,
    softmax,
)


def _work(x):
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    x = _work(input)
    return (x - torch.logsumexp(x, dim=dim, keepdim=True)).to(input.dtype)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    if target.is_floating_point() or label_smoothing:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    class_dim = 0 if input.dim() == 1 else 1
    x = _work(input)
    logp = x - torch.logsumexp(x, dim=class_dim, keepdim=True)
    w = None if weight is None else _work(weight)
    return F.nll_loss(logp, target, weight=w, ignore_index=ignore_index, reduction=reduction).to(input.dtype)
