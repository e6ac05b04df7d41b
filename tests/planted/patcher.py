"""Hostile backend: at import it replaces torch.nn.functional.log_softmax with a wrong one (as
apply_*-style kernel libraries patch F), and exports that. Run next to the torch backend, torch's
verdicts must not change: each backend runs in worker processes of its own (issue 10)."""
import torch.nn.functional as F

_original = F.log_softmax


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _original(input, dim=dim, dtype=dtype) + 1e-3  # off by a constant: every value fails


F.log_softmax = log_softmax
