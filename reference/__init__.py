"""The exact oracle: torch.nn.functional's loss semantics in arbitrary precision (see DESIGN.md).

Every value is *settled*: evaluated until it rounds to one value of the output format (Ziv's test,
see reference/settle.py), or reported undetermined.  Loss semantics live here and nowhere else.
"""
from . import formats, registry

# Bump whenever the oracle's answers (values, rounding, scales) change: caches key on it.
ORACLE_VERSION = "3"
from .api import (
                  binary_cross_entropy,
                  binary_cross_entropy_with_logits,
                  cross_entropy,
                  evaluate,
                  evaluate_grad,
                  grad,
                  log_softmax,
                  mse_loss,
                  nll_loss,
                  softmax,
)
from .exact import Exact
from .formats import FORMATS, to_dtype
from .registry import DTYPES, LOSSES, REGISTRY

__all__ = [
                  "DTYPES",
                  "FORMATS",
                  "LOSSES",
                  "REGISTRY",
                  "Exact",
                  "binary_cross_entropy",
                  "binary_cross_entropy_with_logits",
                  "cross_entropy",
                  "evaluate",
                  "evaluate_grad",
                  "formats",
                  "grad",
                  "log_softmax",
                  "mse_loss",
                  "nll_loss",
                  "registry",
                  "softmax",
                  "to_dtype",
]
