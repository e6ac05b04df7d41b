"""A drop-in that replaces nothing it need not: it re-exports torch.nn.functional's own softmax,
log_softmax and cross_entropy (the docs' "reuse what you do not replace"), so it inherits torch's
documented deviations, which must count as torch's known failures (issue 10)."""
from torch.nn.functional import cross_entropy, log_softmax, softmax  # noqa: F401
