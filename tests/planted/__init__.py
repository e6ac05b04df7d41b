"""Planted defects and misbehaving backends: drop-ins for torch.nn.functional, one flaw each.

Each module exposes all seven functions; everything but its one defect delegates to
torch.nn.functional, so a harness that catches the module caught exactly that defect.
Use as ``--backend tests.planted.NAME``.
"""

DEFECTS = ("log_of_softmax", "mean_over_n", "bce_no_clamp", "bcewl_via_sigmoid",
           "backward_ignores_grad_output", "lse_rounded", "lse_minus_dot")
MISBEHAVING = ("crash", "hang", "raises", "wrong_shape", "not_implemented")
#: behaviours the verdict policy names (docs/verdicts.md): each lands on its own rung, with the
#: verdict in parentheses -- lse_form (magnitude, warn), ftz (flushed, warn), recursive_sum
#: (recursive, warn), softmax_limit and bcewl_limit (convention, warn), keras_clip and paddle_cap
#: (semantic difference, fail)
POLICY = ("lse_form", "ftz", "recursive_sum", "softmax_limit", "bcewl_limit", "keras_clip", "paddle_cap")
