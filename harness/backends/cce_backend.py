"""The ``cce`` and ``cce-compile`` backends: cut-cross-entropy's ``linear_cross_entropy``.

``cut_cross_entropy.linear_cross_entropy(e, c, targets, [bias,] ignore_index, softcap, reduction,
shift, filter_eps, ..., impl)`` (apple/ml-cross-entropy; ``bias`` exists from 25.6 on GitHub,
not in PyPI's 25.1.1) with ``impl="cce"`` (its Triton kernels: a CUDA device) or
``impl="torch_compile"`` (logits = e @ c.T, then F.cross_entropy of their float32 copy, under
torch.compile: any device, CPU included).  Mapped: hidden -> e, weight -> c, target -> targets,
bias, ignore_index, softcap, reduction; ``shift`` stays off (the case's targets are already
aligned).  Unsupported (cut-cross-entropy lacks them): label_smoothing, z_loss, a bias where the
installed version has no ``bias`` parameter, hidden that is not (N, D).

``filter_eps`` is left at the library's default ("high" in 25.1.1, "auto" in 25.6: both
finfo(dtype).eps / 32): the cce backward then skips every (token, vocabulary) block whose
entries of |softmax - one-hot| all lie below it (cce_backward.py), an approximation by design.  The backend checks what users get
by default, so a ``grad:input``/``grad:weight`` verdict (input: the hidden states) includes what that filtering drops; the
value is not filtered.  (``impl="torch_compile"`` ignores ``filter_eps``.)  A project that runs
with ``filter_eps=None`` checks that with a drop-in module of its own.
"""
from __future__ import annotations

import inspect
from typing import Any

from .base import Unsupported
from .kernel_backend import KernelBackend
from .kernel_libraries import package_version

#: backend name -> cut-cross-entropy's impl (the devices each runs on: kernel_libraries.LIBRARIES)
IMPLS = {"cce": "cce", "cce-compile": "torch_compile"}


class CCEFunctions:
    """losscheck's ``linear_cross_entropy`` over cut-cross-entropy's, with one ``impl``."""

    def __init__(self, name: str, library: Any, impl: str):
        self._name, self._impl = name, impl
        self._lce = library.linear_cross_entropy
        try:
            self._has_bias = "bias" in inspect.signature(self._lce).parameters
        except (TypeError, ValueError):
            self._has_bias = False

    def linear_cross_entropy(self, hidden, weight, target, bias=None, ignore_index=-100,
                             reduction="mean", label_smoothing=0.0, softcap=None, z_loss=0.0):
        for option, value, default in (("label_smoothing", label_smoothing, 0.0), ("z_loss", z_loss, 0.0)):
            if value != default:
                raise Unsupported(f"backend {self._name!r}: cut-cross-entropy has no {option}")
        if hidden.dim() != 2:
            raise Unsupported(f"backend {self._name!r}: linear_cross_entropy takes (N, D) hidden here, "
                              f"not {hidden.dim()}-d")
        kwargs: dict[str, Any] = {}
        if bias is not None:
            if not self._has_bias:
                raise Unsupported(f"backend {self._name!r}: cut-cross-entropy {package_version('cut-cross-entropy')} "
                                  "has no bias (its GitHub version 25.6+ has)")
            kwargs["bias"] = bias
        # filter_eps: the library's default, on purpose (module docstring)
        return self._lce(hidden, weight, target, ignore_index=ignore_index, softcap=softcap,
                         reduction=reduction, impl=self._impl, **kwargs)


class CCEBackend(KernelBackend):
    def __init__(self, name: str = "cce", device: str = "cpu"):
        if name not in IMPLS:
            raise ValueError(f"name: {name!r} is not one of {', '.join(IMPLS)}")
        self._impl = IMPLS[name]
        super().__init__(name, device)

    def adapters(self, name: str, library: Any) -> CCEFunctions:
        return CCEFunctions(name, library, self._impl)
