"""The two arithmetics the NumPy backends share their loss plumbing with.

:class:`Careful` works in float64 with the stable forms (max-shift with a log1p'd remainder,
logaddexp softplus, clamped BCE logs, exact differences, correctly rounded ``math.fsum``
reductions) and rounds once to the output format; :class:`Naive` is the textbook arithmetic in the
input dtype (float32 for bfloat16, which NumPy cannot compute in) and exists to show instability.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from .dtypes import BFLOAT16, NUMPY_DTYPES


def round_to(a, dtype: str) -> np.ndarray:
    """One round-half-even rounding of float64 ``a`` to ``dtype`` (no double rounding).

    NumPy rounds float64 -> float16/float32 directly; ml_dtypes goes float64 -> bfloat16 through
    float32, so bfloat16 goes through float32 rounded *to odd* first, which is exact for RNE with
    the 16 spare bits.
    """
    a = np.asarray(a, dtype=np.float64)
    if dtype != "bfloat16":
        return a.astype(NUMPY_DTYPES[dtype])
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range is inf in bfloat16 too
        r = a.astype(np.float32)
        inexact = (r.astype(np.float64) != a) & np.isfinite(r) & np.isfinite(a)
        even = (r.view(np.uint32) & 1) == 0
        toward = np.where(a > r, np.float32(np.inf), np.float32(-np.inf))
        r = np.where(inexact & even, np.nextafter(r, toward), r)
        return r.astype(ml_dtypes.bfloat16)


class Careful:
    """float64 arithmetic with stable forms; results are rounded once at the end."""

    naive = False
    dtype = np.dtype(np.float64)

    def work(self, a) -> np.ndarray:
        return np.asarray(a).astype(np.float64)  # exact from every checked format

    def out(self, a, dtype: str) -> np.ndarray:
        return round_to(a, dtype)

    def log_softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        """(x - max) - log1p(sum of exp(x - max) over all but one maximal entry)."""
        z, rest = self._shifted(x, axis)
        return z - np.log1p(rest)

    def softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        z, rest = self._shifted(x, axis)
        return np.exp(z) / (1.0 + rest)

    @staticmethod
    def _shifted(x: np.ndarray, axis: int):
        """z = x - max and r = sum over the non-max entries of exp(z), so logsumexp = max + log1p(r).

        Keeping the max's own exp(0) = 1 out of the sum is what lets a confident row's loss
        (log1p(r) ~ r ~ 1e-8) come out to full relative precision instead of 0.
        """
        m = np.max(x, axis=axis, keepdims=True)
        # no finite max to shift by (a +inf or NaN in the row, or only -inf): the row is NaN
        bad = ~np.isfinite(m) | np.any(np.isnan(x), axis=axis, keepdims=True)
        z = np.where(bad, np.nan, x - m)
        e = np.exp(z)
        if x.shape[axis] > 0:
            np.put_along_axis(e, np.argmax(x, axis=axis, keepdims=True), 0.0, axis=axis)
        return z, np.sum(e, axis=axis, keepdims=True)

    def bce_logs(self, x: np.ndarray):
        """(log x, log(1 - x)), each clamped at -100 as torch does."""
        return np.maximum(np.log(x), -100.0), np.maximum(np.log1p(-x), -100.0)

    def neg_log_sigmoids(self, x: np.ndarray):
        """(-log sigmoid(x), -log(1 - sigmoid(x))) = (softplus(-x), softplus(x))."""
        return np.logaddexp(0.0, -x), np.logaddexp(0.0, x)

    @staticmethod
    def times(coef: np.ndarray, term: np.ndarray) -> np.ndarray:
        """coef * term in IEEE arithmetic, as the documented formula (0 * inf is NaN)."""
        return coef * term

    def squared_difference(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(x - y)^2 with the difference's rounding error carried along (TwoSum)."""
        d = x - y
        b = d - x
        err = (x - (d - b)) + (-y - b)
        # near float64's top, d*d may overflow where (d + err)^2 does not: square scaled by 2^-512
        big = np.abs(d) > 2.0**500
        ds, es = np.where(big, np.ldexp(d, -512), d), np.where(big, np.ldexp(err, -512), err)
        sq = ds * ds + 2.0 * ds * es
        return np.where(big, np.ldexp(sq, 1024), sq)

    def total(self, a: np.ndarray, k: int = 0) -> np.float64:
        """Correctly rounded sum (fsum) of a * 2^-k when finite; NumPy's sum for inf/nan."""
        flat = np.ldexp(np.asarray(a, dtype=np.float64).ravel(), -k)
        if not np.all(np.isfinite(flat)):
            return np.float64(np.sum(flat))
        return np.float64(math.fsum(flat.tolist()))

    @staticmethod
    def scale_exponent(*arrays) -> int:
        """k such that sums of the arrays times 2^-k cannot overflow (0 unless near float64's top).

        A sum or mean whose partial sums exceed float64's range can still be finite (a mean of
        values near the maximum); summing scaled values and scaling back by 2^k is exact.
        """
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays if a is not None]
        finite = [np.abs(a[np.isfinite(a)]) for a in arrays]
        n = max((a.size for a in finite), default=1)
        top = max((float(a.max()) for a in finite if a.size), default=0.0)
        return 0 if top * n < 2.0**1000 else math.ceil(math.log2(max(n, 2))) + 2

    @staticmethod
    def unscale(v, k: int):
        return np.ldexp(np.float64(v), k) if k else np.float64(v)


class Naive:
    """Textbook formulas in the input dtype: exp without a shift, log of a quotient, no clamp."""

    naive = True
    dtype = None  # the input's

    def work(self, a) -> np.ndarray:
        a = np.asarray(a)
        return a.astype(np.float32) if a.dtype == BFLOAT16 else a.copy()

    def out(self, a, dtype: str) -> np.ndarray:
        return np.asarray(a).astype(NUMPY_DTYPES[dtype])

    def softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(x)
        return e / np.sum(e, axis=axis, keepdims=True)

    def log_softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        return np.log(self.softmax(x, axis))

    def bce_logs(self, x: np.ndarray):
        return np.log(x), np.log(1 - x)

    def neg_log_sigmoids(self, x: np.ndarray):
        s = 1 / (1 + np.exp(-x))
        return -np.log(s), -np.log(1 - s)

    def squared_difference(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x - y) ** 2

    @staticmethod
    def times(coef: np.ndarray, term: np.ndarray) -> np.ndarray:
        return coef * term

    def total(self, a: np.ndarray, k: int = 0):
        return np.sum(a)

    @staticmethod
    def scale_exponent(*arrays) -> int:
        return 0

    @staticmethod
    def unscale(v, k: int):
        return v


CAREFUL = Careful()
NAIVE = Naive()
