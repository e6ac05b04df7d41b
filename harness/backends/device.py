"""The torch device that torch-tensor backends run on (``--device``), checked before any work.

Why a module of its own: the name is checked twice -- its spelling where it is typed (CLI,
configuration, ``load``), with no torch import, and whether torch can use it here where a
torch-tensor backend is built -- and both checks must give the same one-line answer.
"""
from __future__ import annotations

import re
from typing import Any

from .base import BackendLoadError

DEFAULT_DEVICE = "cpu"
#: what ``--device`` accepts: torch's device types that losscheck places tensors on
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:[0-9]+)?|mps|xpu(:[0-9]+)?)$")
DEVICE_CHOICES = "cpu, cuda, cuda:N, mps, xpu"


class DeviceError(BackendLoadError):
    """A device that is misspelt or that torch cannot use here; the message is one line."""


def device_name(text: Any) -> str:
    """``text`` as a device name (``"cuda:0"``), or DeviceError naming it and what is accepted."""
    name = text.strip().lower() if isinstance(text, str) else text
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        raise DeviceError(f"unknown device {text!r}; use one of {DEVICE_CHOICES}")
    return name


def torch_device(text: Any) -> Any:
    """The ``torch.device`` for ``text`` when torch can place tensors on it in this process;
    DeviceError saying which device and why not (no CUDA build or GPU, an index past the last
    device, no MPS or XPU)."""
    import torch

    name = device_name(text)
    kind, _, index = name.partition(":")
    why = None
    if kind == "cuda":
        why = _missing("CUDA", torch.cuda, index, f"torch {torch.__version__}, torch.cuda.is_available() is False")
    elif kind == "xpu":
        xpu = getattr(torch, "xpu", None)
        why = _missing("XPU", xpu, index, f"torch {torch.__version__} has no usable torch.xpu")
    elif kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            why = f"no MPS device (torch {torch.__version__}, torch.backends.mps.is_available() is False)"
    if why is not None:
        raise DeviceError(f"device {name!r}: torch cannot use it here: {why}")
    return torch.device(name)


def _missing(label: str, module: Any, index: str, detail: str) -> str | None:
    """Why torch's ``module`` (torch.cuda, torch.xpu) cannot serve device ``index``, or None."""
    if module is None or not module.is_available():
        return f"no {label} device ({detail})"
    count = int(module.device_count())
    if index and int(index) >= count:
        return f"{label} device index {index} out of range ({count} {label} device{'s' if count != 1 else ''} here)"
    return None
