"""Shared by the built-in backends over GPU kernel libraries (``liger``, ``cce``, ``cce-compile``).

Each library is reached through an *adapter object*: functions with torch.nn.functional-shaped
signatures (losscheck's argument names and options) that map each argument to the library's own
and raise :class:`Unsupported` for what the library lacks.  Calling, device placement and
gradients are then TorchFunctionalBackend's, the same code every drop-in goes through.

Why an adapter and not a re-implementation: where a library lacks an option (probability targets,
a reduction), computing it around the library would test our code, not the library's.

Loading fails with one line, ``backend 'NAME': unavailable: <reason>``, when the package is not
installed (with the extra that installs it) or the device is not one the library runs on; the
package is not imported before those checks pass.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from typing import Any, ClassVar

from .base import BackendLoadError, Observation, one_line
from .torch_backend import TorchFunctionalBackend

#: the device types Triton kernels run on (torch names them cuda on ROCm too)
GPU_DEVICES = ("cuda",)


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (no import), or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def not_installed(dist: str, module: str, extra: str) -> str | None:
    """Why ``dist`` cannot be used (one clause), or None when it is installed."""
    if package_version(dist) is not None or module in sys.modules:
        return None
    try:
        if importlib.util.find_spec(module) is not None:  # importable without metadata (a checkout)
            return None
    except (ImportError, ValueError):
        pass
    return f"{dist} is not installed (pip install 'losscheck[{extra}]')"


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


def import_library(name: str, module: str) -> Any:
    """``module`` imported, or BackendLoadError ``backend 'NAME': unavailable: cannot import ...``
    (a missing Triton, an incompatible torch): the package is there but cannot be used."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import-time failure is one line
        raise BackendLoadError(f"backend {name!r}: unavailable: cannot import {module} "
                               f"({one_line(exc)})") from None


class KernelBackend(TorchFunctionalBackend):
    """A kernel library behind an adapter object; subclasses set the class attributes and
    :meth:`adapters`.

    ``not_differentiated``: {loss: argument names} whose gradient the library does not offer by
    design (Liger's kl_div treats the target as a constant): those checks are reported
    unsupported ("backend returned no grad:target"), not failed as a cut-off gradient.
    """

    dist: str = ""  # the distribution users install, e.g. "liger-kernel"
    module: str = ""  # its top-level import name
    entry: str = ""  # the module the adapters wrap (imported only once the checks pass)
    extra: str = ""  # losscheck's extra that installs it
    devices: tuple[str, ...] | None = GPU_DEVICES  # None: any device
    not_differentiated: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, name: str, device: str = "cpu"):
        why = not_installed(self.dist, self.module, self.extra) or wrong_device(device, self.devices)
        if why:
            raise BackendLoadError(f"backend {name!r}: unavailable: {why}")
        library = import_library(name, self.entry or self.module)
        super().__init__(name, self.adapters(name, library))
        self.device = device

    def adapters(self, name: str, library: Any) -> Any:
        """The adapter object over the imported ``entry`` module."""
        raise NotImplementedError

    def delegates_to(self, loss: str) -> str | None:
        return None  # the library's own kernels, never torch's

    def _evaluate(self, case: Any) -> Observation:
        obs = super()._evaluate(case)
        skip = self.not_differentiated.get(case.loss, ())
        if not skip:
            return obs
        return Observation(obs.value, grads={n: g for n, g in obs.grads.items() if n not in skip},
                           missing={n: w for n, w in obs.missing.items() if n not in skip})


def availability(dist: str, module: str, extra: str, devices: tuple[str, ...] | None, what: str) -> str:
    """The line ``available()`` shows for a kernel backend: what it maps, or why it cannot run."""
    why = not_installed(dist, module, extra)
    if why:
        return f"unavailable: {why}"
    if devices is not None:
        import torch

        if not torch.cuda.is_available():
            return f"unavailable: needs a CUDA device, torch sees none ({dist} {package_version(dist)} is installed)"
        return f"{what} ({dist} {package_version(dist)}); run with --device cuda"
    return f"{what} ({dist} {package_version(dist)})"
