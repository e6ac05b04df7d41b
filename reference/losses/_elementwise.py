"""Row form and kernel plumbing shared by the elementwise losses (mse_loss, BCE, kl_div, ...).

An elementwise loss is l_i = sum_k coef_k(i) * term_k(i) on broadcast operands: row form is a
(M, 1) column per operand, the mean divides by the element count (an exact count: no rounding
error to carry), and every gradient is grad_output_i * d l_i / d arg_i.
"""
from __future__ import annotations

import numpy as np

from ..formats import dtype_name
from ..lossdef import Problem, broadcast_option, f64, fail, float_array
from ..numerics import F64


def one(ns):
    """The multiplier of a part that has none (compared by identity in settle.py)."""
    return ns.const(1)


def safe_mul(a, b):
    """a * b with 0 * inf := 0, for float64 scale arithmetic (the product's NaNs are looked at
    only where there are any: most calls have none)."""
    with np.errstate(invalid="ignore"):
        p = np.multiply(a, b, dtype=np.float64)
        p += 0.0  # a zero product is +0, as np.where's 0.0 was
        bad = np.isnan(p)
        if bad.any():
            p = np.where(bad & ((np.asarray(a) == 0) | (np.asarray(b) == 0)), 0.0, p)
        return p


def prepare_pair(lossdef, args: tuple, kwargs: dict) -> Problem:
    """Validate ``(input, target)`` of the same shape and dtype, broadcast array options to it."""
    lossdef.check_call(args, kwargs)
    x = float_array("input", args[0])
    dtype = dtype_name(x)
    y = float_array("target", args[1], dtype)
    if y.shape != x.shape:
        fail("target", f"shape {y.shape} does not match the input's shape {x.shape}")
    rows = {"x": f64(x).reshape(-1, 1), "y": f64(y).reshape(-1, 1)}
    for name in lossdef.array_options:
        if kwargs.get(name) is not None:
            rows[name] = broadcast_option(name, kwargs[name], dtype, x.shape).reshape(-1, 1)
    shape = x.shape
    return Problem(dtype=dtype, reduction=lossdef.reduction_of(kwargs), rows=rows, nclass=1,
                   unreduced_shape=shape, input_shape=shape,
                   to_input=lambda g: np.asarray(g).reshape(shape))


class TermsKernel:
    """l = sum_k coef_k * term_k per element; subclasses give ``terms``, ``d`` and the scales."""

    # settle.py may accept float64 values on their own for formats of at most 24 bits (its
    # float64 stage): these kernels treat float64 like any working format (no stand-in values)
    stage64 = True

    def __init__(self, problem: Problem):
        self.problem = problem
        self._memo = None

    def terms_of(self, ns, rows) -> list[tuple]:
        """``terms(ns, rows)``, the float64 ones computed once per rows object: the value, the
        scales and the float64 second opinion all start from them (the arrays are never written)."""
        if ns is not F64:
            return self.terms(ns, rows)
        if self._memo is None or self._memo[0] is not rows:
            self._memo = (rows, self.terms(F64, rows))  # holds rows: its id cannot be reused
        return self._memo[1]

    def d_of(self, ns, rows, wrt: str):
        """``d(ns, rows, wrt)``, the float64 one computed once per rows object and argument: a
        gradient's scales and its float64 value both start from it (the arrays are never written)."""
        if ns is not F64:
            return self.d(ns, rows, wrt)
        memo = getattr(self, "_dmemo", None)
        if memo is None or memo[0] is not rows or memo[1] != wrt:
            memo = self._dmemo = (rows, wrt, self.d(F64, rows, wrt))  # holds rows: its id cannot be reused
        return memo[2]

    def denominator(self, ns, rows):
        return ns.const(rows["x"].shape[0]), 0.0

    def terms(self, ns, rows) -> list[tuple]:
        raise NotImplementedError

    def d(self, ns, rows, wrt: str):
        """d l / d wrt per element, (M,)."""
        raise NotImplementedError

    def parts(self, ns, rows):
        val = mag = None
        for c, t in self.terms_of(ns, rows):
            v = c * t  # IEEE: 0 * inf is NaN, as in the documented formula and in torch
            val = v if val is None else val + v
            mag = np.abs(v) if mag is None else mag + np.abs(v)
        return [(one, val, mag)]

    def term_magnitude(self, rows) -> np.ndarray:
        """sum_k |coef_k| |term_k| in float64 (0 * inf counted as 0)."""
        return sum(safe_mul(np.abs(c), np.abs(t)) for c, t in self.terms_of(F64, rows))

    def grad(self, ns, rows, gof, wrt):
        g = ns.asarray(gof) * self.d_of(ns, rows, wrt)
        return g[:, None], np.abs(g)[:, None]

    def grad_abs(self, rows, gof, wrt) -> np.ndarray:
        """|the float64 gradient| (NaN as 0), the magnitude every gradient cond starts from."""
        g, _ = self.grad(F64, rows, gof, wrt)
        return np.abs(np.nan_to_num(g[:, 0], nan=0.0))


def exponent_span(*arrays) -> int:
    """The binary exponent span of the nonzero finite entries of these arrays (0 when none)."""
    exps = []
    for a in arrays:
        if a is None:
            continue
        f = np.asarray(a, np.float64).reshape(-1)
        f = f[np.isfinite(f) & (f != 0)]
        if f.size:
            e = np.frexp(f)[1]
            exps += [int(e.min()), int(e.max())]
    return (max(exps) - min(exps)) if exps else 0


def span_bits(*arrays, factors: int = 2) -> int:
    """Bits that hold any sum of products of ``factors`` of these float64 values exactly: the
    exponent span of their nonzero finite entries, once per factor, plus the significands and
    room for the carries of a long sum."""
    n = max((np.size(a) for a in arrays if a is not None), default=1)
    return factors * (exponent_span(*arrays) + 60) + int(np.log2(max(n, 1))) + 64


def tied_rows(x: np.ndarray) -> np.ndarray:
    """(M,) mask of the rows of (M, C) float64 logits whose finite entries all equal the row's max
    and number a power of two (no NaN, no +inf): there every shifted logit is 0 or -inf, so exp
    is exactly 1 or 0 and the softmax, 1/count, is dyadic -- sums and products of the inputs."""
    x = np.asarray(x, np.float64)
    if x.shape[-1] == 0:
        return np.zeros(x.shape[0], bool)
    with np.errstate(invalid="ignore"):
        m = np.max(x, axis=1, keepdims=True)
        ok = np.isfinite(m[:, 0]) & ~np.any(np.isnan(x), axis=1)
        k = np.sum(x == m, axis=1)
        tied = np.all((x == m) | (x == -np.inf), axis=1)
    return ok & tied & (k > 0) & ((k & (k - 1)) == 0)


def brute_reduce(vals: list, reduction: str, shape: tuple):
    """The brute forces' reduction of per-element mpf values: none, or fsum (over n for mean)."""
    import mpmath

    if reduction == "none":
        return np.array(vals, dtype=object).reshape(shape)
    tot = mpmath.fsum(vals)
    if reduction == "mean":
        tot = tot / len(vals) if vals else mpmath.mpf("nan")
    return np.array(tot, dtype=object)


def brute_upstream(grad_output, reduction: str, shape: tuple) -> list:
    """Each element's grad_output factor as an mpf (over n for mean): the brute forces' VJP seed."""
    import mpmath

    n = int(np.prod(shape, dtype=np.int64))
    go = np.ones(shape if reduction == "none" else ()) if grad_output is None else np.asarray(grad_output)
    go = go.astype(np.float64)
    if reduction == "none":
        return [mpmath.mpf(float(v)) for v in go.reshape(-1)]
    g = mpmath.mpf(float(go.reshape(())))
    return [(g / n if reduction == "mean" else g)] * n
