"""The built-in NumPy backends: ``numpy`` (careful) and ``numpy-naive`` (textbook, no gradients).

Each loss's NumPy implementation lives with its definition (``LossDef.numpy_value`` and
``numpy_grads`` in reference/losses/); this backend supplies the arithmetic and rounds once.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reference import registry
from reference.registry import LOSSES

from .base import Backend, Observation
from .numpy_numerics import CAREFUL, NAIVE, round_to


class NumpyBackend(Backend):
    """Evaluates cases with the loss definitions' NumPy code in the careful or the naive arithmetic."""

    def __init__(self, naive: bool = False, device: str = "cpu"):
        # NumPy computes on the CPU whatever ``device`` says: ``self.device`` stays "cpu", which
        # is how the CLI tells the user that --device does not apply here
        self.naive = naive
        self.name = "numpy-naive" if naive else "numpy"
        self._nx = NAIVE if naive else CAREFUL

    def supports(self, loss: str) -> bool:
        return loss in LOSSES

    def _evaluate(self, case: Any) -> Observation:
        # inf/nan are legitimate results here (and the point of numpy-naive): no warnings
        d = registry.get(case.loss)
        d.validate(case.args, case.kwargs)  # refuse what torch refuses, with the oracle's messages
        with np.errstate(all="ignore"):
            value = self._nx.out(d.numpy_value(self._nx, *case.args, **case.kwargs), case.dtype)
            grads = {}
            if case.grad and not self.naive and case.grad_output is not None:
                g = d.numpy_grads(CAREFUL, *case.args, grad_output=case.grad_output, **case.kwargs)
                grads = {name: round_to(a, case.dtype) for name, a in g.items()}
        return Observation(np.asarray(value), grads=grads)
