"""The oracle's own floating-point environment, whatever its caller did to the process.

A backend under test may set flush-to-zero / denormals-are-zero, another rounding mode, the x87
precision, ``np.seterr(all="raise")`` or ``mpmath.mp.prec``; none of it may change an answer.
:func:`oracle_state` saves the C floating-point environment, installs the C library's default
(round to nearest, subnormals kept, x87 extended precision: ``fesetenv(FE_DFL_ENV)``), ignores
NumPy floating-point errors and gives mpmath its default precision, then restores all of it.
Where the C library offers no ``fesetenv``, settle.py's own probe sends every element to mpmath.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager

import mpmath
import numpy as np

_FENV_BYTES = 64  # >= sizeof(fenv_t) on every platform glibc supports (32 on x86-64)
_FE_DFL_ENV = ctypes.c_void_p(-1)  # glibc's ((const fenv_t *) -1)


def _libm():
    """glibc's libm, or None: FE_DFL_ENV is ((const fenv_t *) -1) only there (macOS and others use
    a pointer to a global, so the trick is never tried elsewhere)."""
    import platform
    import sys

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        lib.fegetenv.argtypes = [ctypes.c_void_p]
        lib.fesetenv.argtypes = [ctypes.c_void_p]
        return lib
    except (OSError, AttributeError):
        return None


_LIBM = _libm()


@contextmanager
def oracle_state():
    """Run the oracle in the default floating-point environment; restore the caller's after."""
    saved = None
    if _LIBM is not None:
        buf = ctypes.create_string_buffer(_FENV_BYTES)
        if _LIBM.fegetenv(buf) == 0 and _LIBM.fesetenv(_FE_DFL_ENV) == 0:
            saved = buf
    try:
        with np.errstate(all="ignore"), mpmath.workprec(53):
            yield
    finally:
        if saved is not None:
            _LIBM.fesetenv(saved)
