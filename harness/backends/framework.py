"""What the non-torch library backends (mlx, keras, tensorflow, tinygrad, paddle, scipy) share.

Each maps losscheck's torch-style call onto its library's own losses and reports the options the
library lacks as :class:`Unsupported` instead of re-implementing them (that would test our code,
not theirs).  This class does the rest once: arrays into the library's type in the case's dtype,
the value, one vector-Jacobian product with the case's ``grad_output`` for every differentiable
argument, and the outputs back to NumPy in whatever dtype the library returned (a float32 answer
to a float64 case is then judged in float32 and flagged, never silently widened).

The libraries are optional extras: :data:`LIBRARIES` says how to install each and
:func:`unavailable` why one cannot load, without importing it (``available()`` lists them).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from reference import registry

from .base import Backend, BackendLoadError, Observation, Unsupported
from .kernel_libraries import Library, not_installed, package_version

#: backend name -> its library (``devices=None``: it runs on the CPU, whatever ``--device`` says)
LIBRARIES: dict[str, Library] = {
    "mlx": Library("mlx", "mlx", "mlx", None, "MLX's mlx.nn.losses and mx.softmax (its CPU device on Linux)"),
    "keras": Library("keras", "keras", "keras", None,
                     "Keras 3's losses and keras.ops on its JAX backend (KERAS_BACKEND=jax|torch|tensorflow)"),
    "tensorflow": Library("tensorflow", "tensorflow", "tensorflow", None,
                          "TensorFlow's tf.nn losses (tensorflow-cpu)"),
    "tinygrad": Library("tinygrad", "tinygrad", "tinygrad", None,
                        "tinygrad's Tensor losses (its default device; the CPU one compiles with clang)"),
    "paddle": Library("paddlepaddle", "paddle", "paddle", None,
                      "PaddlePaddle's paddle.nn.functional losses, on its CPU place"),
    "scipy": Library("scipy", "scipy", "scipy", None,
                     "SciPy-style NumPy code: scipy.special's softmax, log_softmax, logsumexp, log_expit, "
                     "xlogy; values only (no autodiff)"),
}
#: other distributions that provide the same module
ALT_DISTS = {"tensorflow": ("tensorflow-cpu",), "mlx": ("mlx-cpu",), "paddle": ("paddlepaddle-gpu",)}


def version(name: str) -> str | None:
    lib = LIBRARIES[name]
    return next((v for d in (lib.dist, *ALT_DISTS.get(name, ())) if (v := package_version(d))), None)


def unavailable(name: str) -> str | None:
    """Why backend ``name``'s library cannot be imported here (one clause), or None."""
    return None if version(name) else not_installed(LIBRARIES[name])


def available_line(name: str) -> str:
    why = unavailable(name)
    if why:
        return f"unavailable: {why}"
    return f"{LIBRARIES[name].what} ({LIBRARIES[name].dist} {version(name) or '(version unknown)'})"


def load_error(name: str, exc: BaseException | None = None) -> BackendLoadError:
    """The one-line error of a backend whose library is missing or fails to import."""
    why = unavailable(name)
    if why is None and exc is not None:
        from .base import one_line
        why = f"importing {LIBRARIES[name].module} failed: {one_line(exc)}"
    return BackendLoadError(f"backend {name!r}: unavailable: {why}")


class FrameworkBackend(Backend):
    """Base of the library backends: subclasses set ``name`` and ``LOSSES``, implement the four
    array hooks and one ``_<loss>(args, kwargs) -> f`` per loss, where ``f`` maps the case's
    positional arguments by name (library arrays) to the output; each ``_<loss>`` pops the options
    it handles and raises Unsupported for the ones the library lacks."""

    LOSSES: ClassVar[tuple[str, ...]] = ()
    #: False for a library without autodiff: the value only, its gradient checks unsupported
    GRADIENTS: ClassVar[bool] = True

    # -- hooks --------------------------------------------------------------------------------------
    def _to_lib(self, a: np.ndarray) -> Any:
        raise NotImplementedError

    def _to_numpy(self, a: Any) -> np.ndarray:
        raise NotImplementedError

    def _vjp(self, f: Callable, primals: list, cotangent: np.ndarray) -> tuple[Any, list]:
        """(f(*primals), the gradients of <f, cotangent> with respect to each primal; None for one
        the library does not differentiate)."""
        raise NotImplementedError

    def _call(self, f: Callable, primals: list) -> Any:
        return f(*primals)

    # -- the shared part ----------------------------------------------------------------------------
    def supports(self, loss: str) -> bool:
        return loss in self.LOSSES

    def _evaluate(self, case: Any) -> Observation:
        kwargs = dict(case.kwargs)
        f = getattr(self, "_" + case.loss)(case.args, kwargs)
        if kwargs:
            raise Unsupported(f"backend {self.name!r}: {case.loss} option(s) {', '.join(sorted(kwargs))} "
                              "not offered")
        spec = registry.get(case.loss)
        arrays = {a.name: self._to_lib(np.asarray(v)) for a, v in zip(spec.positional, case.args)}
        wrt = [n for n in spec.differentiable_for(case.args, case.kwargs) if n in arrays]

        def g(*diff):
            return f({**arrays, **dict(zip(wrt, diff))})

        primals = [arrays[n] for n in wrt]
        if not (self.GRADIENTS and case.grad and case.grad_output is not None and wrt):
            return Observation(self._to_numpy(self._call(g, primals)))
        out, grads = self._vjp(g, primals, np.asarray(case.grad_output))
        value = self._to_numpy(out)
        if value.shape != np.shape(case.grad_output):  # a wrong shape: judged as such, no gradient
            return Observation(value)
        # a None gradient: the library does not differentiate that argument (Paddle's labels), so
        # the check is unsupported ("backend returned no grad:target"), not a gradient of 0
        return Observation(value, grads={n: self._to_numpy(d) for n, d in zip(wrt, grads) if d is not None})

    # -- helpers for the loss mappings --------------------------------------------------------------
    def _no(self, kwargs: dict, loss: str, *names: str) -> None:
        """Pop options at their defaults; raise Unsupported for one set to something else."""
        defaults = {"weight": None, "pos_weight": None, "softcap": None, "z_loss": 0.0, "label_smoothing": 0.0}
        for n in names:
            v = kwargs.pop(n, defaults.get(n))
            if v is not None and not (isinstance(v, float | int) and not isinstance(v, bool)
                                      and v == defaults.get(n)):
                raise Unsupported(f"backend {self.name!r}: {loss} has no {n}")

    def _ignored(self, target: np.ndarray, kwargs: dict, loss: str) -> None:
        """Class-index targets equal to ignore_index need an option these libraries lack."""
        ii = kwargs.pop("ignore_index", -100)
        if np.issubdtype(np.asarray(target).dtype, np.integer) and np.any(np.asarray(target) == ii):
            raise Unsupported(f"backend {self.name!r}: {loss} has no ignore_index")


def class_dim(x: np.ndarray) -> int:
    """torch's class dim: 0 for an unbatched (C,) input, else 1."""
    return 0 if np.ndim(x) == 1 else 1
