"""The built-in NumPy backends: ``numpy`` (careful) and ``numpy-naive`` (textbook, no gradients)."""
from __future__ import annotations

from typing import Any

import numpy as np

from reference.registry import LOSSES

from .base import Backend, Observation
from .numpy_grads import GRADIENTS
from .numpy_losses import FUNCTIONS
from .numpy_numerics import CAREFUL, NAIVE, round_to


class NumpyBackend(Backend):
    """Evaluates cases with numpy_losses in the careful or the naive arithmetic."""

    def __init__(self, naive: bool = False):
        self.naive = naive
        self.name = "numpy-naive" if naive else "numpy"
        self._nx = NAIVE if naive else CAREFUL

    def supports(self, loss: str) -> bool:
        return loss in LOSSES

    def _evaluate(self, case: Any) -> Observation:
        # inf/nan are legitimate results here (and the point of numpy-naive): no warnings
        with np.errstate(all="ignore"):
            value = self._nx.out(FUNCTIONS[case.loss](self._nx, *case.args, **case.kwargs), case.dtype)
            grad = None
            if case.grad and not self.naive and case.grad_output is not None:
                g = GRADIENTS[case.loss](*case.args, grad_output=case.grad_output, **case.kwargs)
                grad = round_to(g, case.dtype)
        return Observation(np.asarray(value), grad)
