"""The piecewise-polynomial regression losses (l1_loss, smooth_l1_loss, huber_loss) on one pattern.

With d = x - y, a threshold b >= 0 and a scale s > 0 each is

    l(d) = s * 0.5 * d^2 / b     where |d| < b   (the quadratic piece; huber: s = b, so 0.5 d^2)
    l(d) = s * (|d| - 0.5 b)     elsewhere        (the linear piece; l1: b = 0, s = 1)

and torch's derivative is s d / b inside, s sign(d) elsewhere with sign(0) = 0 (only reachable when
b = 0: l1).  Which piece an element is on is decided from the *exact* difference (TwoSum of the
float64 copies), never from a rounded one, so every stage of the settling and the brute force agree.
Values and gradients are sums and products of the inputs (and b, s, grad_output) wherever the
division by b is exact (b a power of two or s = b): those rows are settled exactly (exact_prec).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np

from ..formats import dtype_name
from ..lossdef import Call, LossDef, Problem, fail
from ..sampling import cast, finfo, log_uniform, normal, ordinal_uniform
from ._elementwise import TermsKernel, brute_reduce, brute_upstream, prepare_pair, safe_mul, span_bits
from ._families import reduction
from ._numpy import elementwise_upstream, reduce_elementwise

# ------------------------------------------------------------------------------ options

def threshold_option(name: str, v, *, allow_zero: bool, loss: str) -> float:
    """beta / delta as torch's argument parser and its TORCH_CHECK take it: a real number (bool and
    int convert), not NaN; >= 0 (smooth_l1_loss) or > 0 (huber_loss); inf is accepted."""
    if v is None or isinstance(v, (str, bytes)) or not np.isscalar(v) or isinstance(v, complex):
        fail(name, f"must be a float, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        fail(name, f"must be a float, got {v!r}")
    bad = (math.isnan(f) or f < 0) if allow_zero else (math.isnan(f) or f <= 0)
    if bad:
        what = "negative" if allow_zero else "non-positive"
        fail(name, f"{loss} does not support {what} values for {name}, got {f!r}")
    return f


def prepare_piecewise(lossdef, args, kwargs, b: float, s: float) -> Problem:
    problem = prepare_pair(lossdef, args, kwargs)
    problem.options = {"b": float(b), "s": float(s)}
    return problem


# ------------------------------------------------------------------------------ exact classification

def split(x: np.ndarray, y: np.ndarray, b: float):
    """(quadratic mask, sign of the exact x - y) for float64 arrays: |x - y| < b and sign(x - y)
    decided exactly (d = fl(x - y) and its TwoSum error e, x - y = d + e when d is finite).
    sign is -1, 0, +1, or NaN where x - y is NaN."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    with np.errstate(all="ignore"):
        d = x - y
        bb = d - x
        e = (x - (d - bb)) + (-y - bb)
        e = np.where(np.isfinite(e) & np.isfinite(d), e, 0.0)
        sgn = np.where(np.isnan(d), np.nan, np.sign(d))
        ad = np.abs(d)
        quad = (ad < b) | ((ad == b) & (e * sgn < 0))
        if math.isinf(b):  # |x - y| of two finite floats is finite even where fl(x - y) overflows
            quad = np.isfinite(x) & np.isfinite(y)
    return quad, sgn


def _xy(rows):
    return rows["x"][:, 0], rows["y"][:, 0]


class PiecewiseKernel(TermsKernel):
    def __init__(self, problem: Problem):
        super().__init__(problem)
        self.b = problem.options["b"]
        self.s = problem.options["s"]
        self.unit = self.s == self.b  # s / b = 1: no division (huber)

    def _split(self, rows):
        x, y = _xy(rows)
        return split(x, y, self.b)

    def _over_b(self, ns, num):
        """num / b as the LAST operation (huber: num itself; non-unit thresholds have s = 1).

        With the division last, the exact stage's quotient is correctly rounded at its precision:
        exact when the true value is dyadic (1.484375 * 1.875 / 1.5 is a bfloat16 midpoint), and
        otherwise a rational of denominator b's odd part, farther from every midpoint than the
        precision's rounding can move it (see exact_prec)."""
        return num if self.unit else num / ns.const(self.b)

    def terms(self, ns, rows):
        x, y = _xy(rows)
        quad, _ = self._split(rows)
        d = ns.asarray(x) - ns.asarray(y)
        half = ns.const(0.5)
        lin = ns.const(self.s) * (ns.abs(d) - half * ns.const(self.b))
        if not quad.any():
            return [(ns.const(1), lin)]
        dq = np.where(quad, d, ns.const(0))  # the linear rows' d never meets the division
        q = self._over_b(ns, half * dq * dq)
        return [(ns.const(1), np.where(quad, q, lin))]

    def _grad_rows(self, ns, rows, gof, wrt):
        x, y = _xy(rows)
        quad, sgn = self._split(rows)
        g = ns.asarray(gof)
        lin = g * (ns.asarray(sgn) * ns.const(self.s))
        if quad.any():
            d = ns.asarray(x) - ns.asarray(y)
            out = np.where(quad, self._over_b(ns, g * np.where(quad, d, ns.const(0))), lin)
        else:
            out = lin
        return out if wrt == "input" else -out

    def d(self, ns, rows, wrt):
        return self._grad_rows(ns, rows, np.ones(rows["x"].shape[0]), wrt)

    def grad(self, ns, rows, gof, wrt):
        g = self._grad_rows(ns, rows, gof, wrt)
        return g[:, None], np.abs(g)[:, None]

    def exact_prec(self, rows, wrt, grad_output):
        """Sums and products of x, y, b, s and grad_output, exact at span_bits, with at most one
        final division by b.  Where b is not a power of two, the quotient N / (m 2^k) (m odd, at
        most 53 bits) is either dyadic -- and then exact at this precision -- or at least
        2^-(bits of N) relatively away from every dyadic midpoint: the 2 x 53 + 64 extra bits keep
        the one rounding of the division (and the sum of at most n such quotients of one sign)
        well inside that distance, so rounding the result directly is still correct."""
        x, y = _xy(rows)
        bits = span_bits(x, y, grad_output, np.array([self.b, self.s, 0.5]))
        if self.unit or math.isinf(self.b) or self.b == 0 or math.frexp(self.b)[0] == 0.5:
            return bits
        return bits + 2 * 53 + 64

    def _slope(self, rows):
        """|d l / d d| per element in float64 (NaN as 0): the sensitivity to the inputs."""
        x, y = _xy(rows)
        quad, sgn = self._split(rows)
        with np.errstate(all="ignore"):
            r = _ratio(self.b, self.s)
            q = safe_mul(np.abs(x - y), r)
            return quad, np.nan_to_num(np.where(quad, q, self.s * np.abs(sgn)), nan=0.0, posinf=np.inf)

    def scales(self, rows):
        x, y = _xy(rows)
        quad, slope = self._slope(rows)
        ax = np.abs(x) + np.abs(y)
        with np.errstate(all="ignore"):
            r = _ratio(self.b, self.s)
            lin_mag = self.s * (np.abs(x - y) + 0.5 * self.b)
            mag = np.where(quad, np.nan_to_num(self.term_magnitude(rows), nan=0.0), lin_mag)
            cond = mag + safe_mul(slope, ax)
            scale = np.where(quad, safe_mul(0.5 * r, ax * ax), self.s * (ax + 0.5 * self.b))
        return np.nan_to_num(cond, nan=0.0), np.nan_to_num(scale, nan=0.0), np.ones(x.shape, np.int64)

    def grad_scales(self, rows, gof, wrt):
        x, y = _xy(rows)
        quad, _ = self._slope(rows)
        with np.errstate(all="ignore"):
            r = _ratio(self.b, self.s)
            extra = np.where(quad, safe_mul(np.abs(gof) * r, np.abs(x) + np.abs(y)), 0.0)
            cond = self.grad_abs(rows, gof, wrt) + np.nan_to_num(extra, nan=0.0)
        return cond[:, None], cond[:, None], np.ones((x.shape[0], 1), np.int64)


# ------------------------------------------------------------------------------ NumPy (careful)

def _two_diff(X, Y):
    with np.errstate(all="ignore"):
        d = X - Y
        bb = d - X
        e = (X - (d - bb)) + (-Y - bb)
        return d, np.where(np.isfinite(e) & np.isfinite(d), e, 0.0)


def numpy_value(nx, input, target, reduction, b: float, s: float, degree: int):
    """torch's semantics in the arithmetic nx; ``degree``: l(2^-k x, 2^-k y; 2^-k b) = 2^-degree*k l."""
    X, Y = nx.work(input), nx.work(target)
    if nx.naive:
        with np.errstate(all="ignore"):
            z = np.abs(X - Y)
            per = np.where(z < b, 0.5 * z * z * _ratio(b, s), s * (z - 0.5 * b))
        return reduce_elementwise(nx, per.astype(X.dtype), reduction)
    with np.errstate(all="ignore"):
        fin = np.abs(np.concatenate([X.reshape(-1), Y.reshape(-1)]))
        big = reduction != "none" and np.max(np.where(np.isfinite(fin), fin, 0.0), initial=0.0) > 2.0**500
    k = 520 if big else 0
    per = _careful_per(np.ldexp(X, -k), np.ldexp(Y, -k), math.ldexp(b, -k), math.ldexp(s, -k * (degree - 1)))
    return nx.unscale(reduce_elementwise(nx, per, reduction), degree * k)


def _ratio(b: float, s: float) -> float:
    """s / b, the quadratic piece's factor (1 for huber, 1/beta for smooth_l1, 0 for beta = inf)."""
    return 1.0 if s == b else (s / b if b else 0.0)


def _careful_per(X, Y, b, s):
    quad, sgn = split(X, Y, b)
    d, e = _two_diff(X, Y)
    r = _ratio(b, s)
    with np.errstate(all="ignore"):
        q = np.zeros_like(d) if r == 0 else 0.5 * r * (d * d + 2.0 * d * e)
        lin = s * ((np.abs(d) + sgn * e) - 0.5 * b)
        return np.where(quad, q, lin)


def numpy_grads(nx, input, target, grad_output, reduction, b: float, s: float):
    X, Y = nx.work(input), nx.work(target)
    up = elementwise_upstream(nx, grad_output, reduction, X.size)
    if nx.naive:
        with np.errstate(all="ignore"):
            dd = X - Y
            g = np.where(np.abs(dd) < b, dd * _ratio(b, s), s * np.sign(dd)) * up
        return {"input": g, "target": -g}
    quad, sgn = split(X, Y, b)
    d, e = _two_diff(X, Y)
    r = _ratio(b, s)
    with np.errstate(all="ignore"):
        dq = np.zeros_like(d) if r == 0 else (d + e) if r == 1 else (d + e) / b * s
        g = np.where(quad, dq, s * sgn) * up
    return {"input": g, "target": -g}


# ------------------------------------------------------------------------------ brute force

def brute(args, kwargs, b: float, s: float, *, grad_output=None, wrt=None):
    """Plain loops over mpf elements: the two pieces chosen by comparing the exact |x - y| with b,
    fsum and one division for the mean; gradients s d / b (inside) and s sign(d) (outside) times g."""
    mpf = mpmath.mpf
    x = np.asarray(args[0]).astype(np.float64)
    y = np.asarray(args[1]).astype(np.float64)
    red = kwargs.get("reduction", "mean")
    B, S, half = mpf(b), mpf(s), mpf(1) / 2
    vals, slopes = [], []
    for a, c in zip(x.reshape(-1).tolist(), y.reshape(-1).tolist()):
        dd = mpf(a) - mpf(c)
        if abs(dd) < B:  # never for NaN nor for b = 0
            vals.append(half * dd * dd if b == s else S * dd * dd / (2 * B))  # S / inf = 0
            slopes.append(dd if b == s else S * dd / B)
        else:
            vals.append(S * (abs(dd) - half * B))
            sg = mpf("nan") if mpmath.isnan(dd) else mpf(mpmath.sign(dd))
            slopes.append(S * sg)
    if wrt is None:
        return brute_reduce(vals, red, x.shape)
    # the mean's 1/n applied last, once: a dyadic gradient on a rounding midpoint stays on it
    gs = brute_upstream(grad_output, "sum" if red == "mean" else red, x.shape)
    n = mpf(max(len(slopes), 1)) if red == "mean" else mpf(1)
    sign = 1 if wrt == "input" else -1
    return np.array([sign * sl * g / n for sl, g in zip(slopes, gs)], dtype=object).reshape(x.shape)


# ------------------------------------------------------------------------------ families

def kink_pairs(dtype: str, b: float, rng, cast, finfo) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(note, x, y) around the kinks: d = +-b exactly and one ulp either side (y = 0 and y = c with
    c + b exact), d = 0 exactly (x == y), one ulp and one subnormal apart."""
    fi = finfo(dtype)
    eps = float(fi.eps)
    tiny = float(fi.smallest_subnormal)
    out = []
    if b > 0:
        m, _ = math.frexp(b)
        up = b * (1 + eps) if m == 0.5 else b + b * eps  # next one up (b a power of two) / near it
        down = b * (1 - eps / 2) if m == 0.5 else b - b * eps
        d = np.array([b, -b, up, -up, down, -down, b, -b])
        xs = d.copy()
        ys = np.zeros_like(d)
        out.append(("|d| = b and +-1 ulp, y = 0", cast(xs.reshape(2, 4), dtype), cast(ys.reshape(2, 4), dtype)))
        c = 2.0 * b  # c + b = 3b and c - b = b: exact when b has few bits
        out.append(("|d| = b exactly, y = 2b", cast(np.array([[3 * b, b, 3 * b], [b, 3 * b, b]]), dtype),
                    cast(np.full((2, 3), c), dtype)))
    base = cast(rng.normal(0, 4, (2, 4)), dtype).astype(np.float64)
    nudged = base * (1 + np.array([[0, 1, -1, 0], [2, 0, -2, 1]]) * eps)
    out.append(("d = 0 exactly and +-1 ulp", cast(nudged, dtype), cast(base, dtype)))
    out.append(("d = 0 and +-1 subnormal", cast(np.array([[0.0, tiny, -tiny, 0.0], [tiny, -tiny, 2 * tiny, 0.0]]), dtype),
                cast(np.array([[0.0, 0.0, 0.0, -0.0], [tiny, tiny, tiny, tiny]]), dtype)))
    return out

# ------------------------------------------------------------------------------ the shared LossDef

class PiecewiseLoss(LossDef):
    """Base of the three definitions: a subclass sets the schema, ``threshold`` (the option's
    name, or None for l1), ``degree`` (homogeneity in (x, y, threshold)) and :meth:`bs`."""

    threshold: str | None = None
    degree: int = 1
    strategy_thresholds: tuple[float, ...] = ()

    def bs(self, kwargs) -> tuple[float, float]:
        """(b, s) of a call, validated."""
        raise NotImplementedError

    def prepare(self, args, kwargs):
        self.check_call(args, kwargs)  # arity and reduction first, as torch's parser
        b, s = self.bs(kwargs)
        return prepare_piecewise(self, args, kwargs, b, s)

    def kernel(self, problem):
        return PiecewiseKernel(problem)

    def numpy_value(self, nx, input, target, reduction="mean", **kw):
        b, s = self.bs(kw)
        return numpy_value(nx, input, target, reduction, b, s, self.degree)

    def numpy_grads(self, nx, input, target, grad_output, reduction="mean", **kw):
        b, s = self.bs(kw)
        return numpy_grads(nx, input, target, grad_output, reduction, b, s)

    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops over mpf elements (see :func:`brute`)."""
        b, s = self.bs(kwargs)
        return brute(args, kwargs, b, s, grad_output=grad_output, wrt=wrt)

    def strategy(self, dtype=None, max_size: int = 6, reductions=("none", "sum", "mean"), max_abs: float = 8.0,
                 thresholds=None):
        """Inputs and targets in [-max_abs, max_abs] (plus exact kinks: some targets at input -+ the
        threshold and some equal to the input), the threshold drawn from ``thresholds``."""
        from hypothesis import strategies as st

        from ..sampling import cast
        from ._strategies import pair_strategy

        pairs = pair_strategy(dtype, max_size, reductions, False, False, (-max_abs, max_abs), (-max_abs, max_abs))
        ths = tuple(self.strategy_thresholds if thresholds is None else thresholds)
        name = self.threshold

        @st.composite
        def strategy(draw):
            c = draw(pairs)
            kw = dict(c.kwargs)
            b = self.bs({})[0]
            if name is not None and ths:
                b = draw(st.sampled_from(ths))
                kw[name] = b
            x, y = c.args
            dt = dtype_name(x)
            mode = draw(st.sampled_from(("plain", "kink", "equal")))
            if mode != "plain":
                y64 = x.astype(np.float64) - (b if mode == "kink" else 0.0)
                y = cast(np.where(np.arange(y64.size).reshape(y64.shape) % 2 == 0, y64,
                                  y.astype(np.float64)), dt)
            return Call((x, y), kw)
        return strategy()


def random_calls(rng, dtype, size, thresholds, name):
    """N(0, sigma^2) pairs (sigma 1 and min(100, sqrt(max)/32)), a nearly equal pair and an
    ordinal-uniform pair, the thresholds and reductions in turn."""
    fi = finfo(dtype)
    out, i = [], 0
    shape = (size.batch, 6)
    lim = min(1e3, float(np.sqrt(float(fi.max))) / 8)
    for sigma in (1.0, min(100.0, float(np.sqrt(float(fi.max))) / 32)):
        for _ in range(2 * size.repeats):
            out.append(Call((normal(rng, sigma, shape, dtype), normal(rng, sigma, shape, dtype)),
                            _kw(i, name, thresholds[i % len(thresholds)]), meta={"note": f"sigma {sigma:g}"}))
            i += 1
    x = normal(rng, 4.0, shape, dtype)
    steps = rng.integers(-3, 4, size=shape).astype(np.float64)
    near = cast(x.astype(np.float64) * (1 + steps * float(fi.eps)), dtype)
    out.append(Call((x, near), _kw(i, name, thresholds[i % len(thresholds)]),
                    meta={"note": "nearly equal: y = x +- few ulps"}))
    i += 1
    out.append(Call((ordinal_uniform(rng, -lim, lim, shape, dtype), ordinal_uniform(rng, -lim, lim, shape, dtype)),
                    _kw(i, name, thresholds[i % len(thresholds)]),
                    meta={"note": "ordinal-uniform over +-min(1e3, sqrt(max)/8)"}))
    return out


def kink_calls(rng, dtype, size, thresholds, name, default):
    """Each threshold's |d| = b kinks, and d = 0 for the first threshold and b = 0 (kink_pairs),
    the reductions in turn."""
    out, i = [], 0
    for j, th in enumerate(thresholds):
        b = default if th is None else th
        for note, x, y in kink_pairs(dtype, b, rng, cast, finfo):
            if note.startswith("d = 0") and j and b != 0:
                continue
            out.append(Call((x, y), _kw(i, name, th), meta={"note": f"{note} (b = {b:g})"}))
            i += 1
    return out


def overflow_calls(rng, dtype, size, thresholds, name):
    """Differences near and past overflow (elementwise inf exactly where |x - y| rounds past max;
    a finite exact mean of differences that overflow the format)."""
    fi = finfo(dtype)
    big = float(fi.max)
    shape = (size.batch, 5)
    out = []
    for r in range(3):
        x = log_uniform(rng, big / 16, big, shape, dtype, signed=True)
        y = log_uniform(rng, big / 16, big, shape, dtype, signed=True)
        out.append(Call((x, y), _kw(r, name, thresholds[r % len(thresholds)]),
                        meta={"note": "large: differences near overflow"}))
    x = normal(rng, 1.0, shape, dtype).astype(np.float64)
    y = np.zeros(shape)
    x[0, 0], y[0, 0] = 0.75 * big, -0.75 * big
    for r, red in enumerate(("none", "sum", "mean")):
        kw = _kw(0, name, thresholds[0])
        kw["reduction"] = red
        out.append(Call((cast(x, dtype), cast(y, dtype)), kw, meta={"note": "one difference past overflow"}))
    return out


def subnormal_calls(rng, dtype, size, thresholds, name):
    """Subnormal inputs and differences (quadratic pieces underflow), subnormal and zero targets."""
    fi = finfo(dtype)
    tiny, normal_min = float(fi.smallest_subnormal), float(fi.smallest_normal)
    shape = (size.batch, 5)
    out, i = [], 0
    for th in thresholds:
        x = log_uniform(rng, tiny, 4 * normal_min, shape, dtype, signed=True)
        y = log_uniform(rng, tiny, 4 * normal_min, shape, dtype, signed=True)
        out.append(Call((x, y), _kw(i, name, th), meta={"note": "subnormal inputs and targets"}))
        out.append(Call((x, cast(np.zeros(shape), dtype)), _kw(i + 1, name, th),
                        meta={"note": "subnormal inputs, zero targets"}))
        i += 2
    return out


def _kw(i: int, name, th) -> dict:
    kw = {"reduction": reduction(i)}
    if name is not None and th is not None:
        kw[name] = th
    return kw
