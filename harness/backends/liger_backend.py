"""The ``liger`` backend: Liger-Kernel's Triton losses (``liger_kernel.transformers.functional``).

Each losscheck argument is mapped to Liger's own (read from liger-kernel 0.8.5's source):

==========================  ===================================================================
losscheck                   Liger
==========================  ===================================================================
cross_entropy               ``liger_cross_entropy(input, target, weight, ignore_index=...,
                            reduction=..., label_smoothing=..., lse_square_scale=z_loss,
                            softcap=...)``: (N, C) logits and (N,) class indices only
linear_cross_entropy        ``liger_fused_linear_cross_entropy(hidden, weight, target, bias, ...)``,
                            the same options; Liger's class weight (``ce_weight``) has no
                            losscheck counterpart and is left at None
kl_div                      ``liger_kl_div(input, target, reduction=..., log_target=...)`` on
                            (N, C); Liger's ``eps`` keeps its default 1e-10 (a target below it
                            enters the log as 1e-10: Liger's semantics, which the records show)
softmax                     ``liger_softmax(input)``: the last dim only
==========================  ===================================================================

Unsupported (Liger lacks them): probability targets, inputs that are not (N, C) (unbatched,
spatial), kl_div's target gradient (Liger's backward returns None for it: the target is a
constant), softmax over another dim.  Liger computes in float32 whatever the input's dtype
(float64 included) and writes its input gradient into the input's storage during the forward.
"""
from __future__ import annotations

from typing import Any, ClassVar

from .base import Unsupported
from .kernel_backend import KernelBackend


def _rows(loss: str, name: str, x: Any, target: Any = None) -> None:
    """Liger's row kernels take (N, C) and (N,) class indices: anything else is unsupported."""
    if x.dim() != 2:
        raise Unsupported(f"backend 'liger': {loss} takes a 2-d (N, C) {name}, not {x.dim()}-d")
    if target is not None and (target.is_floating_point() or target.dim() != 1):
        raise Unsupported(f"backend 'liger': {loss} takes (N,) class-index targets only "
                          "(no probability or spatial targets)")


class LigerFunctions:
    """losscheck's loss signatures over ``liger_kernel.transformers.functional``."""

    def __init__(self, functional: Any):
        self._f = functional

    def cross_entropy(self, input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0, softcap=None, z_loss=0.0):
        _rows("cross_entropy", "input", input, target)
        # z_loss is Liger's lse_square_scale: + z_loss * lse^2 per kept position, unweighted
        return self._f.liger_cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                                           reduction=reduction, label_smoothing=label_smoothing,
                                           lse_square_scale=z_loss, softcap=softcap)

    def linear_cross_entropy(self, hidden, weight, target, bias=None, ignore_index=-100,
                             reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0):
        _rows("linear_cross_entropy", "hidden", hidden, target)
        return self._f.liger_fused_linear_cross_entropy(
            hidden, weight, target, bias=bias, ignore_index=ignore_index,
            lse_square_scale=z_loss, label_smoothing=label_smoothing, reduction=reduction,
            softcap=softcap)

    def kl_div(self, input, target, reduction="mean", log_target=False):
        _rows("kl_div", "input", input)
        # Liger's default reduction is batchmean, torch's mean: always pass the case's
        return self._f.liger_kl_div(input, target, reduction=reduction, log_target=log_target)

    def softmax(self, input, dim):
        if input.dim() == 0 or dim not in (-1, input.dim() - 1):
            raise Unsupported(f"backend 'liger': softmax over the last dim only (dim={dim} of a "
                              f"{input.dim()}-d input)")
        return self._f.liger_softmax(input)


class LigerBackend(KernelBackend):
    entry = "liger_kernel.transformers.functional"
    not_differentiated: ClassVar[dict[str, tuple[str, ...]]] = {"kl_div": ("target",)}

    def __init__(self, device: str = "cpu"):
        super().__init__("liger", device)

    def adapters(self, name: str, library: Any) -> LigerFunctions:
        return LigerFunctions(library)
