"""Backends: what the runner evaluates cases with (docs/backends.md).

``load(spec, device="cpu")`` gives a :class:`Backend` for ``torch``, ``numpy``, ``numpy-naive``,
``jax``, the kernel backends (``inductor``, ``liger``, ``cce``, ``cce-compile``), the
non-torch libraries (``mlx``, ``keras``, ``tensorflow``, ``tinygrad``, ``paddle``, ``scipy``;
framework.py), an entry
point in group ``losscheck.backends``, or ``pkg.mod[:attr]`` (a drop-in for torch.nn.functional, a
Backend class or object), its torch tensors on ``device`` (harness/backends/device.py); ``available()``
lists the built-in ones.
"""
from .base import Backend, BackendLoadError, Observation, Unsupported
from .loading import BUILTIN, ENTRY_POINT_GROUP, available, from_object, load

__all__ = [
           "BUILTIN",
           "ENTRY_POINT_GROUP",
           "Backend",
           "BackendLoadError",
           "Observation",
           "Unsupported",
           "available",
           "from_object",
           "load",
]
