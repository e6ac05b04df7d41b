"""The exact oracle: torch.nn.functional's loss semantics in arbitrary precision (docs/oracle.md).

Every value is *settled*: evaluated until it rounds to one value of the output format (Ziv's test,
see reference/settle.py), or reported undetermined.  Loss semantics live in reference/losses/, one
LossDef per loss (reference/lossdef.py); ``reference.<loss>`` is each loss with torch's signature.
"""
from . import formats, registry

# Bump whenever the oracle's answers (values, rounding, scales) change: caches key on it.
ORACLE_VERSION = "13"
from .api import evaluate, evaluate_check, evaluate_grad, function, grad
from .exact import Exact
from .formats import FORMATS, to_dtype
from .registry import DTYPES, LOSSES, REGISTRY

for _name in LOSSES:
    globals()[_name] = function(_name)

__all__ = ["DTYPES", "FORMATS", "LOSSES", "REGISTRY", "Exact", "evaluate", "evaluate_check", "evaluate_grad",  # noqa: PLE0604
           "formats", "function", "grad", "registry", "to_dtype", *LOSSES]
