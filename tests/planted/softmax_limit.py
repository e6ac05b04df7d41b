"""Policy behaviour (convention, WARN): softmax and log_softmax of a row holding +inf as SciPy
computes them, exp(x - logsumexp(x)): the finite entries get the limit (0, log: -inf), the infinite
ones NaN, where torch (and the oracle) make the whole row NaN (issue 11)."""
import torch
from torch.nn import functional as F
from torch.nn.functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    mse_loss,
    nll_loss,
)


def _limit(input, dim, log):
    out = F.log_softmax(input, dim=dim) if log else F.softmax(input, dim=dim)
    pos = torch.isposinf(input)
    row = pos.any(dim=dim, keepdim=True) & ~torch.isnan(input).any(dim=dim, keepdim=True)
    finite_value = torch.full_like(out, -torch.inf if log else 0.0)
    return torch.where(row & ~pos, finite_value, out)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _limit(input, dim, False)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _limit(input, dim, True)
