"""Hostile backend: at import it sets flush-to-zero, NumPy errors that raise, mpmath's precision
to 8 bits and the rounding mode to upward; then it is torch's softmax. Neither the oracle's answers
nor another backend's verdicts may change (issue 10): the oracle runs where no backend is loaded,
and each backend in worker processes of its own."""
import ctypes
import ctypes.util

import mpmath
import numpy as np
import torch
from torch.nn import functional as F

torch.set_flush_denormal(True)
np.seterr(all="raise")
mpmath.mp.prec = 8
try:
    ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6").fesetround(0x800)  # FE_UPWARD on x86
except (OSError, AttributeError):
    pass

softmax = F.softmax
log_softmax = F.log_softmax
