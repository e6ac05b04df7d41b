"""Turning a ``--backend`` spec into a :class:`Backend`.

Resolution order: built-in name, entry point in group ``losscheck.backends``, then
``pkg.mod[:attr]``.  Every failure is a :class:`BackendLoadError` with one line that says which
spec and why, so the CLI can print it and exit 2.
"""
from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata
from typing import Any

from reference.registry import LOSSES

from .base import Backend, BackendLoadError, ForeignBackend, one_line
from .device import device_name

ENTRY_POINT_GROUP = "losscheck.backends"
BUILTIN = ("torch", "numpy", "numpy-naive", "jax", "inductor", "liger", "cce", "cce-compile", "mlx", "keras",
           "tensorflow", "tinygrad", "paddle", "scipy")
#: the non-torch library backends: name -> (module, class), each an optional extra (framework.py)
FRAMEWORKS = {"mlx": ("mlx_backend", "MlxBackend"), "keras": ("keras_backend", "KerasBackend"),
              "tensorflow": ("tensorflow_backend", "TensorflowBackend"),
              "tinygrad": ("tinygrad_backend", "TinygradBackend"), "paddle": ("paddle_backend", "PaddleBackend"),
              "scipy": ("scipy_backend", "ScipyBackend")}


def _builtin(spec: str, device: str = "cpu") -> Backend:
    if spec == "torch":
        import torch.nn.functional

        from .torch_backend import TorchFunctionalBackend
        return TorchFunctionalBackend("torch", torch.nn.functional, device=device)
    if spec in ("numpy", "numpy-naive"):
        from .numpy_backend import NumpyBackend
        return NumpyBackend(naive=spec == "numpy-naive", device=device)
    if spec == "inductor":
        from .inductor_backend import InductorBackend
        return InductorBackend(device=device)
    if spec == "liger":
        from .liger_backend import LigerBackend
        return LigerBackend(device=device)
    if spec in FRAMEWORKS:
        module, cls = FRAMEWORKS[spec]
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(device=device)
    if spec in ("cce", "cce-compile"):
        from .cce_backend import CCEBackend
        return CCEBackend(spec, device=device)
    from .jax_backend import JaxBackend
    return JaxBackend(device=device)


def entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load(spec: str, device: str = "cpu") -> Backend:
    """The backend named by ``spec`` (see the module docstring), its torch tensors on ``device``
    (backends that do not run on torch devices ignore it); raises BackendLoadError."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackendLoadError(f"backend {spec!r}: empty backend name")
    spec = spec.strip()
    device = device_name(device)
    if spec in BUILTIN:
        return _builtin(spec, device)
    ep = entry_points().get(spec)
    if ep is not None:
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a plugin's import error, kept to one line
            raise BackendLoadError(f"backend {spec!r}: entry point {ep.value!r} failed to load: "
                                   f"{one_line(exc)}") from None
        return from_object(spec, obj, device)
    return from_object(spec, _import_object(spec), device)


def from_object(name: str, obj: Any, device: str = "cpu") -> Backend:
    """A Backend (used as is), a class of one (given ``device`` when it takes one), an object with
    supports/evaluate, or a drop-in (its tensors on ``device``)."""
    if isinstance(obj, type) and issubclass(obj, Backend):
        obj = obj(device=device) if _takes_device(obj) else obj()
    if isinstance(obj, Backend):
        return obj
    if callable(getattr(obj, "evaluate", None)) and callable(getattr(obj, "supports", None)):
        return ForeignBackend(name, obj)
    if any(callable(getattr(obj, loss, None)) for loss in LOSSES):
        from .torch_backend import TorchFunctionalBackend
        return TorchFunctionalBackend(name, obj, device=device)
    raise BackendLoadError(f"backend {name!r}: provides none of {', '.join(LOSSES)}")


def is_dropin(spec: str) -> bool:
    """Whether ``pkg.mod[:attr]`` names a drop-in for torch.nn.functional (called ``F.loss(tensors)``)
    rather than a Backend class or instance, or an object with supports/evaluate (called with a
    Case): how a repro snippet calls it.  An unimportable spec counts as a drop-in."""
    try:
        obj = _import_object(spec)
    except BackendLoadError:
        return True
    if isinstance(obj, Backend) or (isinstance(obj, type) and issubclass(obj, Backend)):
        return False
    return not (callable(getattr(obj, "evaluate", None)) and callable(getattr(obj, "supports", None)))


def _takes_device(cls: type) -> bool:
    """Whether a Backend class's constructor accepts ``device`` (a plugin's may not)."""
    import inspect

    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "device" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _is_dotted_name(s: str) -> bool:
    return bool(s) and all(part.isidentifier() for part in s.split("."))


def _import_object(spec: str) -> Any:
    module_name, colon, attr = spec.partition(":")
    if not _is_dotted_name(module_name) or (colon and not _is_dotted_name(attr)):
        raise BackendLoadError(f"backend {spec!r}: unknown backend; use one of {', '.join(BUILTIN)}, "
                               f"an entry point in {ENTRY_POINT_GROUP!r}, or pkg.mod[:attr]")
    module = _import_module(spec, module_name)
    obj = module
    for part in attr.split(".") if colon else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BackendLoadError(f"backend {spec!r}: module {module_name!r} has no attribute "
                                   f"{attr!r}") from None
    return obj


def _missing_itself(exc: ModuleNotFoundError, module_name: str) -> bool:
    """True when the named module (or a parent package) is absent, not one of its imports."""
    return bool(exc.name) and (module_name == exc.name or module_name.startswith(exc.name + "."))


def _try_import(spec: str, module_name: str) -> Any:
    """The module, or None when the named module itself is absent; a broken module is an error."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _missing_itself(exc, module_name):
            return None
        raise BackendLoadError(f"backend {spec!r}: cannot import module {module_name!r}: "
                               f"{one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any import-time failure becomes a one-line load error
        raise BackendLoadError(f"backend {spec!r}: cannot import module {module_name!r}: "
                               f"{one_line(exc)}") from None


def _import_module(spec: str, module_name: str) -> Any:
    module = _try_import(spec, module_name)
    if module is None:
        # console scripts do not put the working directory on sys.path; a project's own module
        # (``--backend mypkg.losses`` run from its checkout) should still be found
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
            importlib.invalidate_caches()
            module = _try_import(spec, module_name)
            if module is None:
                sys.path.remove(cwd)
    if module is not None:
        return module
    if "." not in module_name and ":" not in spec:
        raise BackendLoadError(f"backend {spec!r}: unknown backend (not one of {', '.join(BUILTIN)}, "
                               f"no entry point in {ENTRY_POINT_GROUP!r}, no module of that name)")
    raise BackendLoadError(f"backend {spec!r}: cannot import module {module_name!r}")


def available() -> dict[str, str]:
    """Built-in backends (then installed entry points) -> one-line description with availability."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    torch_v, jax_v, optax_v = version("torch"), version("jax"), version("optax")
    out = {
        "torch": f"torch.nn.functional (torch {torch_v})" if torch_v else "unavailable: torch is not installed",
        "numpy": "careful NumPy: float64 with stable forms, rounded once; closed-form gradients",
        "numpy-naive": "textbook NumPy in the input dtype (no max-shift, no clamp); a demonstration "
                       "of instability, no gradients",
        "jax": (f"jax.nn / optax (jax {jax_v}, optax {optax_v}); unsupported where they lack an option"
                if jax_v and optax_v else
                "unavailable: pip install 'losscheck[jax]' (installs jax[cpu] and optax)"),
    }
    from .kernel_libraries import LIBRARIES, available_line  # installed? a GPU? (no torch import otherwise)
    out["inductor"] = (f"torch.compile (inductor) of torch.nn.functional (torch {torch_v})" if torch_v
                       else "unavailable: torch is not installed")
    out.update((name, available_line(name)) for name in LIBRARIES)
    from . import framework  # the same, for mlx / keras / tensorflow / tinygrad / paddle / scipy
    out.update((name, framework.available_line(name)) for name in FRAMEWORKS)
    for name, ep in sorted(entry_points().items()):
        out.setdefault(name, f"entry point {ep.value}")
    return out
