"""The oracle's own floating-point environment, whatever its caller did to the process.

A backend under test may set flush-to-zero / denormals-are-zero, another rounding mode, the x87
precision, ``np.seterr(all="raise")`` or ``mpmath.mp.prec``; none of it may change an answer.
:func:`oracle_state` saves the C floating-point environment, installs the C library's default
(round to nearest, subnormals kept, x87 extended precision: ``fesetenv(FE_DFL_ENV)``), ignores
NumPy floating-point errors and gives mpmath its default precision, then restores all of it.
Where the C library offers no ``fesetenv``, settle.py's own probe sends every element to mpmath.

It also keeps glibc's heap from shrinking between the oracle's NumPy temporaries (a few hundred KiB
each, freed and allocated again dozens of times a call, and again by the next call): with glibc's
default top pad of 128 KiB the heap is trimmed after them and grown again, and every page grown
again is a page fault -- 2,000 or so for a (32, 1000) cross-entropy gradient, 10-40 % of its time
(more on a loaded machine).  The first :func:`oracle_state` of a process asks glibc to keep
``TOP_PAD`` bytes (``$LOSSCHECK_TOP_PAD``, default 32 MiB; 0 leaves malloc alone) at the top of the
heap, for the rest of the process: a process that uses the oracle keeps up to that much freed
memory for reuse, and glibc's mmap threshold stops adapting (it keeps the one reached so far).
Set back after each call, the pad would be trimmed away between calls and buy nothing.  No number
depends on it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import warnings
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

_M_TOP_PAD = -2  # glibc's mallopt parameter


def _top_pad() -> int:
    """$LOSSCHECK_TOP_PAD in bytes (default 32 MiB); a value that is not an integer leaves malloc
    alone and says so, once."""
    raw = os.environ.get("LOSSCHECK_TOP_PAD", "").strip()
    if not raw:
        return 32 << 20
    try:
        return int(raw)
    except ValueError:
        warnings.warn(f"LOSSCHECK_TOP_PAD={raw!r} is not a number of bytes; leaving malloc alone", stacklevel=3)
        return 0


TOP_PAD = _top_pad()
_PADDED = [False]


def _pad_heap() -> None:
    """Once a process: glibc keeps TOP_PAD bytes at the top of the heap (see the module's doc)."""
    if _PADDED[0]:
        return
    _PADDED[0] = True
    if _LIBM is None or TOP_PAD <= 0:  # not glibc, or not wanted
        return
    try:
        f = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    f.argtypes = [ctypes.c_int, ctypes.c_int]
    f.restype = ctypes.c_int
    f(_M_TOP_PAD, TOP_PAD)


@contextmanager
def oracle_state():
    """Run the oracle in the default floating-point environment; restore the caller's after."""
    saved = None
    if _LIBM is not None:
        buf = ctypes.create_string_buffer(_FENV_BYTES)
        if _LIBM.fegetenv(buf) == 0 and _LIBM.fesetenv(_FE_DFL_ENV) == 0:
            saved = buf
    _pad_heap()
    try:
        with np.errstate(all="ignore"), mpmath.workprec(53):
            yield
    finally:
        if saved is not None:
            _LIBM.fesetenv(saved)
