"""The ``inductor`` backend: torch.nn.functional's losses through ``torch.compile`` (TorchInductor).

What is under test is the code inductor generates (C++/OpenMP on CPU, Triton on a GPU) from
torch's decompositions, called and differentiated exactly as the ``torch`` backend calls eager
torch (TorchFunctionalBackend), so the two backends' records differ only by the compiler.

Settings, chosen so that every record is inductor's own code and reproducible:

- ``dynamic=True``: one graph per (loss, dtype, options, grad mode), whatever the shapes.  With
  torch's default (``dynamic=None``) the first shape a process sees compiles static and later
  ones dynamic, so a case's result would depend on which case its worker met first, and ``show``
  (a fresh process) could disagree with the run.  ``dynamic=False`` compiles once per shape: about
  100 graphs for the gate's 135 float32 cross_entropy cases, where dynamic=True took 38 compiles
  (3-6 s each on an idle 2-core machine, up to a minute on a loaded one).
- ``fullgraph=True`` and ``fail_on_recompile_limit_hit``: a graph break or a hit recompile limit
  raises instead of running eager torch in inductor's name; :class:`CompileFallback` says so (an
  error record).  The recompile limits are raised far above what a suite needs (each option
  value is a recompile of the same code object; torch's default of 8 would silently fall back).
- ``compile_threads = 1``: workers already fill the cores, and a compile pool per worker would
  outlive a worker killed at its timeout.
- The on-disk FX graph cache stays on (torch's default): a second run, or a second worker,
  loads compiled graphs instead of compiling them.
"""
from __future__ import annotations

from typing import Any

from .base import Unsupported
from .torch_backend import TorchFunctionalBackend

#: one graph per (loss, dtype, options, grad mode): see the module docstring
DYNAMIC = True
#: far above a suite's needs; hitting it raises (fail_on_recompile_limit_hit), never falls back
RECOMPILE_LIMIT = 100_000

_COMPILED: dict[str, Any] = {}  # loss name -> its compiled function, once per process


class CompileFallback(RuntimeError):
    """torch.compile did not run inductor's code for a call (graph break, recompile limit,
    lowering or C++ compile failure): an error of the backend, not a numerical verdict."""


def _configure() -> None:
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    dynamo_config.recompile_limit = RECOMPILE_LIMIT
    dynamo_config.accumulated_recompile_limit = RECOMPILE_LIMIT
    dynamo_config.fail_on_recompile_limit_hit = True
    dynamo_config.suppress_errors = False
    inductor_config.compile_threads = 1


class CompiledFunctional:
    """torch.nn.functional's functions, each ``torch.compile``-d the first time it is asked for
    (once per process: dynamo keys its cache on the function's code object anyway)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        fn = _COMPILED.get(name)
        if fn is None:
            import torch
            import torch.nn.functional as F

            eager = getattr(F, name)  # AttributeError: F has no such loss (not provided)
            fn = _COMPILED[name] = torch.compile(eager, backend="inductor", fullgraph=True,
                                                 dynamic=DYNAMIC)
        return fn


class InductorBackend(TorchFunctionalBackend):
    """TorchFunctionalBackend over :class:`CompiledFunctional`; compile failures are errors."""

    def __init__(self, device: str = "cpu"):
        _configure()
        super().__init__("inductor", CompiledFunctional(), device=device)

    def delegates_to(self, loss: str) -> str | None:
        """Never torch: inductor's kernels are its own, so torch's known failures do not apply."""
        return None

    def _evaluate(self, case: Any) -> Any:
        import torch._dynamo.exc as dynamo_exc

        try:
            return super()._evaluate(case)
        except Unsupported:
            raise
        except (dynamo_exc.TorchDynamoException, dynamo_exc.FailOnRecompileLimitHit) as exc:
            raise CompileFallback(_fallback_message(case, exc)) from exc
        except RuntimeError as exc:
            if type(exc).__module__.startswith("torch._inductor"):  # CppCompileError, lowering
                raise CompileFallback(_fallback_message(case, exc)) from exc
            raise


def _fallback_message(case: Any, exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return (f"torch.compile did not compile {case.loss} ({type(exc).__name__}: {first}); "
            "inductor's code was not run")
