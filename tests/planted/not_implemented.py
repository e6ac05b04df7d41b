"""Misbehaving backend: every function raises NotImplementedError on bfloat16 (-> unsupported)."""
import functools

import torch
from torch.nn import functional as F


def _no_bfloat16(fn):
    @functools.wraps(fn)
    def wrapper(input, *args, **kwargs):
        if input.dtype == torch.bfloat16:
            raise NotImplementedError(f"{fn.__name__} has no bfloat16 kernel")
        return fn(input, *args, **kwargs)
    return wrapper


cross_entropy = _no_bfloat16(F.cross_entropy)
nll_loss = _no_bfloat16(F.nll_loss)
binary_cross_entropy = _no_bfloat16(F.binary_cross_entropy)
binary_cross_entropy_with_logits = _no_bfloat16(F.binary_cross_entropy_with_logits)
softmax = _no_bfloat16(F.softmax)
log_softmax = _no_bfloat16(F.log_softmax)
mse_loss = _no_bfloat16(F.mse_loss)
