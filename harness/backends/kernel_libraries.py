"""The kernel libraries behind the ``liger``, ``cce`` and ``cce-compile`` backends, and why one
cannot run here: package missing (with the extra that installs it) or no CUDA device.

Kept apart from the backends themselves so that ``available()`` can say it without importing
torch or the library (metadata and, only where the package is installed, torch.cuda).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from importlib import metadata

#: the device types Triton kernels run on (torch names them cuda on ROCm too)
GPU_DEVICES = ("cuda",)


@dataclass(frozen=True)
class Library:
    dist: str  # the distribution users install
    module: str  # its top-level import name
    extra: str  # losscheck's extra that installs it
    devices: tuple[str, ...] | None  # device types it runs on; None: any
    what: str  # one line for available()


LIBRARIES: dict[str, Library] = {
    "liger": Library("liger-kernel", "liger_kernel", "liger", GPU_DEVICES,
                     "Liger-Kernel's Triton kernels: cross_entropy, linear_cross_entropy, kl_div, softmax"),
    "cce": Library("cut-cross-entropy", "cut_cross_entropy", "cce", GPU_DEVICES,
                   "cut-cross-entropy's linear_cross_entropy, impl='cce' (Triton)"),
    "cce-compile": Library("cut-cross-entropy", "cut_cross_entropy", "cce", None,
                           "cut-cross-entropy's linear_cross_entropy, impl='torch_compile'"),
}


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (no import), or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def not_installed(lib: Library) -> str | None:
    """Why ``lib`` cannot be imported (one clause), or None when it is installed."""
    if package_version(lib.dist) is not None or sys.modules.get(lib.module) is not None:
        return None
    try:
        if importlib.util.find_spec(lib.module) is not None:  # importable without metadata (a checkout)
            return None
    except (ImportError, ValueError):
        pass
    return f"{lib.dist} is not installed (pip install 'losscheck[{lib.extra}]')"


def wrong_device(device: str, devices: tuple[str, ...] | None) -> str | None:
    """Why ``device`` will not do for a library running on ``devices`` (None: any), or None."""
    if devices is None:
        return None
    kind = str(device).partition(":")[0]
    if kind not in devices:
        return "needs a CUDA device, run with --device cuda"
    import torch

    if kind == "cuda" and not torch.cuda.is_available():
        return f"needs a CUDA device, and torch {torch.__version__} sees none (torch.cuda.is_available() is False)"
    return None


def available_line(name: str) -> str:
    """The line ``available()`` shows for kernel backend ``name``: what it maps, or why it cannot run."""
    lib = LIBRARIES[name]
    why = not_installed(lib)
    if why:
        return f"unavailable: {why}"
    version = f"{lib.dist} {package_version(lib.dist) or '(version unknown)'}"
    if lib.devices is None:
        return f"{lib.what} ({version})"
    import torch

    if not torch.cuda.is_available():
        return f"unavailable: needs a CUDA device, torch sees none ({version} is installed)"
    return f"{lib.what} ({version}); run with --device cuda"
