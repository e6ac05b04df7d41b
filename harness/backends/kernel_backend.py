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
from typing import Any, ClassVar

from .base import BackendLoadError, Observation, one_line
from .kernel_libraries import LIBRARIES, Library, not_installed, wrong_device
from .torch_backend import TorchFunctionalBackend


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

    devices: tuple[str, ...] | None = None  # set from the library's entry in LIBRARIES
    entry: str = ""  # the module the adapters wrap (imported only once the checks pass)
    not_differentiated: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, name: str, device: str = "cpu"):
        lib: Library = LIBRARIES[name]
        self.devices = lib.devices
        why = not_installed(lib) or wrong_device(device, self.devices)
        if why:
            raise BackendLoadError(f"backend {name!r}: unavailable: {why}")
        library = import_library(name, self.entry or lib.module)
        super().__init__(name, self.adapters(name, library), device=device)

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
