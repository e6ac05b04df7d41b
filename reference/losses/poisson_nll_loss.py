"""poisson_nll_loss: the Poisson negative log-likelihood on row form (M, 1), differentiable in input
and target (torch: aten/src/ATen/native/Loss.cpp, a composite differentiated by autograd).

log_input=True:   l = e^x - y x
log_input=False:  l = x - y log(x + eps)
full=True adds the Stirling term  y log y - y + 1/2 log(2 pi y)  where NOT y <= 1 (torch's
``stirling_term.masked_fill(target <= 1, 0)``; a NaN target is not masked).
"""
from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

from ..lossdef import Arg, Call, LossDef, SweepDef
from ..numerics import F64
from ..sampling import cast, finfo, log_uniform, normal
from ._elementwise import TermsKernel, brute_reduce, brute_upstream, fail, one, prepare_pair, span_bits
from ._families import reduction
from ._numpy import elementwise_upstream, reduce_elementwise

POISSON = "poisson_nll_loss"
_DEFAULT_EPS = 1e-8


def half_log_2pi(ns):
    """1/2 log(2 pi) at the namespace's precision: mpmath's at the current precision, or the
    unevaluated sum of three float64s (159 bits) for the vectorised namespaces."""
    if ns.exact:
        return mpmath.log(2 * mpmath.pi) / 2
    with mpmath.workprec(240):
        c = mpmath.log(2 * mpmath.pi) / 2
        hi = float(c)
        mid = float(c - hi)
        lo = float(c - hi - mid)
    return (ns.const(hi) + ns.const(mid)) + ns.const(lo)


def dyadic(fr: Fraction) -> bool:
    """A rational whose denominator is a power of two: it may sit on a rounding midpoint."""
    return fr.denominator & (fr.denominator - 1) == 0


def row_factors(problem, rows, grad_output) -> np.ndarray:
    """The grad_output factor of each of ``rows`` (float64, (m,) or (m, K)): the rows carry their
    index (``rows["i"]``); a reduced output's single factor is shared (the mean's count is divided
    exactly afterwards, so it is left out)."""
    go = np.asarray(grad_output, np.float64)
    if problem.reduced:
        return np.full(rows["i"].shape[0], float(go))
    return np.asarray(problem.go_rows(go))[rows["i"][:, 0]]


def _quotient(ns, a, b, af, bf):
    """a / b with IEEE semantics where b == 0 (masks from the float64 copies ``af``, ``bf``)."""
    zero = bf == 0
    if not zero.any():
        return a / b
    q = a / np.where(zero, ns.const(1), b)
    with np.errstate(all="ignore"):
        special = np.asarray(af, np.float64) / np.where(zero, bf, 1.0)  # +-inf or NaN
    return np.where(zero, np.asarray([ns.const(float(s)) for s in special.reshape(-1)],
                                     dtype=object if ns.exact else ns.dtype).reshape(special.shape), q)


def _log_pos(ns, a, af):
    """log a for a >= 0 (-inf at 0), NaN for a < 0 and NaN (mpmath would go complex)."""
    ok = af >= 0
    lg = ns.log(np.where(ok, a, ns.const(1)))
    return np.where(ok, lg, ns.const("nan"))


class PoissonKernel(TermsKernel):
    def __init__(self, problem):
        super().__init__(problem)
        o = problem.options
        self.log_input, self.full, self.eps = o["log_input"], o["full"], o["eps"]

    # -- pieces --------------------------------------------------------------------------------
    def _xy(self, ns, rows):
        return ns.asarray(rows["x"][:, 0]), ns.asarray(rows["y"][:, 0])

    def _s(self, ns, rows):
        """x + eps (and its float64 copy, whose sign is exact)."""
        x, _ = self._xy(ns, rows)
        with np.errstate(all="ignore"):
            return x + ns.const(self.eps), rows["x"][:, 0] + self.eps

    def stirling_mask(self, rows) -> np.ndarray:
        """Where torch keeps the Stirling term: not (y <= 1); NaN targets included."""
        return ~(rows["y"][:, 0] <= 1)

    def _stirling(self, ns, rows):
        """(y log y - y + 1/2 log(2 pi) + 1/2 log y, its term magnitude) where kept, else 0."""
        _, y = self._xy(ns, rows)
        keep = self.stirling_mask(rows)
        yf = rows["y"][:, 0]
        ys = np.where(keep, y, ns.const(2))
        with np.errstate(all="ignore"):
            lg = _log_pos(ns, ys, np.where(keep, yf, 2.0))
            a, c, h = ys * lg, half_log_2pi(ns), lg / 2
            v = ((a - ys) + c) + h
            mag = np.abs(a) + np.abs(ys) + abs(c) + np.abs(h)
        return np.where(keep, v, ns.const(0)), np.where(keep, mag, ns.const(0))

    def _terms(self, ns, rows):
        x, y = self._xy(ns, rows)
        with np.errstate(all="ignore"):
            if self.log_input:
                a, b = ns.exp(x), y * x
            else:
                s, sf = self._s(ns, rows)
                a, b = x, y * _log_pos(ns, s, sf)
            v, mag = a - b, np.abs(a) + np.abs(b)
            if self.full:
                sv, smag = self._stirling(ns, rows)
                v, mag = v + sv, mag + smag
        return v, mag

    # -- value ----------------------------------------------------------------------------------
    def terms(self, ns, rows):
        return [(ns.const(1), self._terms(ns, rows)[0])]

    def parts(self, ns, rows):
        v, mag = self._terms(ns, rows)
        return [(one, v, mag)]

    def term_magnitude(self, rows):
        m = np.asarray(self._terms(F64, rows)[1], np.float64)
        return np.where(np.isnan(m), 0.0, m)

    def scales(self, rows):
        """cond = |terms| + |x dl/dx| + |y dl/dy| (+ exp's and log's own sensitivity); scale =
        |terms| + |y| + 1; 2 terms (3 with the Stirling term)."""
        x, y = rows["x"][:, 0], rows["y"][:, 0]
        ax, ay = np.abs(x), np.abs(y)
        with np.errstate(all="ignore"):
            mag = self.term_magnitude(rows)
            if self.log_input:
                ex = np.exp(x)
                sens = ex * (1 + ax) + 2 * ay * ax
            else:
                s = np.abs(x + self.eps)
                lg = np.abs(np.log(s))
                sens = ax + ay * (1 + lg) + ay * ax / s
            if self.full:
                keep = self.stirling_mask(rows)
                ly = np.abs(np.log(np.where(keep, ay, 2.0)))
                sens = sens + np.where(keep, ay * (ly + 2) + 1, 0.0)
            cond = mag + sens
            scale = mag + ay + 1
        cond = np.where(np.isnan(cond), np.inf, cond)
        scale = np.where(np.isnan(scale), 0.0, scale)
        n = np.full(x.shape, 3 if self.full else 2, np.int64)
        return cond, scale, n

    # -- gradients ------------------------------------------------------------------------------
    def d(self, ns, rows, wrt):
        x, y = self._xy(ns, rows)
        yf = rows["y"][:, 0]
        with np.errstate(all="ignore"):
            if wrt == "input":
                if self.log_input:
                    return ns.exp(x) - y
                s, sf = self._s(ns, rows)
                return ns.const(1) - _quotient(ns, y, s, yf, sf)
            if self.log_input:
                dt = -x
            else:
                s, sf = self._s(ns, rows)
                dt = -_log_pos(ns, s, sf)
            if self.full:  # d/dy (y log y - y + 1/2 log(2 pi y)) = log y + 1/(2y); 0 where masked
                keep = self.stirling_mask(rows)
                ys = np.where(keep, y, ns.const(2))
                yfs = np.where(keep, yf, 2.0)
                ds = _log_pos(ns, ys, yfs) + ns.const(1) / (ys + ys)
                dt = dt + np.where(keep, ds, ns.const(0))
            return dt

    def exact_prec(self, rows, wrt, grad_output):
        """(bits, exact rows): with log_input, grad:target is -x g where the Stirling term is
        masked (or off) and grad:input is (1 - y) g at x = 0 (e^0 = 1); without log_input grad:input
        is (1 - y/s) g where s = x + eps is exactly a power of two: products of the inputs, which
        can sit on a rounding midpoint.  Everything else meets a log or an exp."""
        if wrt is None:
            return None
        bits = span_bits(rows["x"], rows["y"], grad_output, np.float64(self.eps))
        if not self.log_input:
            if wrt != "input":
                return None
            # (1 - y/(x + eps)) g where that rational is dyadic (x + eps a power of two, or the
            # odd part of x + eps dividing y g)
            gs = row_factors(self.problem, rows, grad_output)
            mask = np.zeros(rows["x"].shape[0], bool)
            eps = Fraction(self.eps)
            for j, (a, b, g) in enumerate(zip(rows["x"][:, 0].tolist(), rows["y"][:, 0].tolist(), gs.tolist())):
                if math.isfinite(a) and math.isfinite(b) and math.isfinite(g):
                    s_ = Fraction(a) + eps
                    mask[j] = s_ != 0 and dyadic((1 - Fraction(b) / s_) * Fraction(g))
            return bits, mask
        if wrt == "target":
            mask = ~self.stirling_mask(rows) if self.full else np.ones(rows["x"].shape[0], bool)
        else:
            mask = rows["x"][:, 0] == 0
        return bits, mask

    def grad_scales(self, rows, gof, wrt):
        x, y = rows["x"][:, 0], rows["y"][:, 0]
        ax, ay, ag = np.abs(x), np.abs(y), np.abs(np.asarray(gof, np.float64))
        with np.errstate(all="ignore"):
            if wrt == "input":
                if self.log_input:
                    ex = np.exp(x)
                    c = ex * (2 + ax) + 2 * ay
                    s_ = ex + ay
                else:
                    s = np.abs(x + self.eps)
                    c = 1 + 3 * ay / s + ay * ax / (s * s)
                    s_ = 1 + ay / s
            else:
                if self.log_input:
                    c, s_ = 2 * ax, ax
                else:
                    s = np.abs(x + self.eps)
                    lg = np.abs(np.log(s))
                    c = lg + 1 + ax / s
                    s_ = lg
                if self.full:
                    keep = self.stirling_mask(rows)
                    ya = np.where(keep, ay, 2.0)
                    extra = np.where(keep, np.abs(np.log(ya)) + 2 + 2 / ya, 0.0)
                    c, s_ = c + extra, s_ + extra
            cond = ag * c
            scale = ag * s_
        cond = np.where(np.isnan(cond), np.inf, cond)
        scale = np.where(np.isnan(scale), 0.0, scale)
        return cond[:, None], scale[:, None], np.ones((x.shape[0], 1), np.int64)


def _bool(name, v) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        fail(name, f"must be a bool, got {v!r}")
    return bool(v)


def real_option(name, v) -> float:
    """A real scalar option (an int or a float, not a bool, not NaN)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        fail(name, f"must be a real number, got {v!r}")
    f = float(v)
    if math.isnan(f):
        fail(name, "must not be NaN")
    return f


class PoissonNllLoss(LossDef):
    name = POISSON
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("log_input", "bool", True), Arg("full", "bool", False),
               Arg("eps", "float", _DEFAULT_EPS), Arg("reduction", "reduction", "mean"))
    option_families = ("plain", "full", "rate", "rate+full")
    summary = "e^x - y x (log_input), or x - y log(x + eps); full adds y log y - y + log(2 pi y)/2 where y > 1"
    sweep = SweepDef(grid=(("target", (0, 1, 0.5, 4)),))
    notes = """\
- torch (aten/src/ATen/native/Loss.cpp) evaluates `exp(input) - target * input`, or
  `input - target * log(input + eps)` with `log_input=False`; `full=True` adds
  `(target*log(target) - target + 0.5*log(2*pi*target)).masked_fill(target <= 1, 0)`.  The oracle
  evaluates that structure exactly (IEEE specials: 0·inf and inf - inf are NaN as in torch; a NaN
  target is not masked).  `eps` is the Python float as given; input and target have the same shape
  and dtype (torch would broadcast: refused here).
- Both arguments are differentiated (torch's autograd through the composite): `grad:input` is
  (e^x - y)·g or (1 - y/(x + eps))·g; `grad:target` is -x·g or -log(x + eps)·g, plus
  (log y + 1/(2y))·g where the Stirling term is kept.  Where it is masked (y <= 1) the term is 0 on a
  neighbourhood of y, so its derivative is exactly 0; torch's masked_fill backward multiplies that 0
  by log y and 1/y, which gives NaN at y = 0 and y < 0 (poisson.zero_counts: a torch deviation).
- In float16 torch rounds `input + eps` to the storage format: for |x| below ~3e-8 with the default
  eps it is 0, log 0 = -inf, where the exact loss is x - y log(1e-8) (poisson.eps).
"""

    def prepare(self, args, kwargs):
        problem = prepare_pair(self, args, kwargs)
        problem.rows["i"] = np.arange(problem.m)[:, None]  # each row's index (exact_prec's grad_output)
        problem.options = {"log_input": _bool("log_input", kwargs.get("log_input", True)),
                           "full": _bool("full", kwargs.get("full", False)),
                           "eps": real_option("eps", kwargs.get("eps", _DEFAULT_EPS))}
        return problem

    def kernel(self, problem):
        return PoissonKernel(problem)

    def option_family(self, args, kwargs):
        base = "plain" if kwargs.get("log_input", True) else "rate"
        if kwargs.get("full", False):
            return "full" if base == "plain" else "rate+full"
        return base

    def strategy(self, dtype=None, max_size: int = 6, reductions=("none", "sum", "mean"),
                 log_input=(True, False), full=(False, True), max_count: float = 50.0):
        """poisson_nll_loss: log-rates in [-5, 5] (or rates in [0, 50]), counts (integers and
        fractions) in [0, max_count], every option combination."""
        from hypothesis import strategies as st

        from ._strategies import dtypes, floats

        dts = dtypes(dtype)
        reds = tuple(reductions)
        bad = [r for r in reds if r not in ("none", "sum", "mean")]
        if bad:
            raise ValueError(f"unknown reduction(s) {bad}")
        lis, fulls = tuple(log_input), tuple(full)

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            shape = (draw(st.integers(1, max_size)), draw(st.integers(1, 3)))
            li = draw(st.sampled_from(lis))
            x = floats(draw, shape, dt, -5.0, 5.0) if li else floats(draw, shape, dt, 0.0, 50.0)
            y = floats(draw, shape, dt, 0.0, max_count)
            if draw(st.booleans()):
                y = cast(np.round(y.astype(np.float64)), dt)
            kw = {"reduction": draw(st.sampled_from(reds)), "log_input": li, "full": draw(st.sampled_from(fulls))}
            if draw(st.booleans()):
                kw["eps"] = draw(st.sampled_from([1e-8, 1e-3, 0.5]))
            return Call((x, y), kw)
        return strategy()

    # -- NumPy (the numpy backend) ----------------------------------------------------------------
    @staticmethod
    def _stirling_np(Y):
        keep = ~(Y <= 1)
        ys = np.where(keep, Y, 2.0)
        lg = np.log(ys)
        v = ((ys * lg - ys) + 0.5 * math.log(2 * math.pi)) + 0.5 * lg
        return np.where(keep, v, 0.0), np.where(keep, lg + 0.5 / ys, 0.0)

    def numpy_value(self, nx, input, target, log_input=True, full=False, eps=_DEFAULT_EPS, reduction="mean"):
        X, Y = nx.work(input), nx.work(target)
        with np.errstate(all="ignore"):
            if log_input:
                per = np.exp(X) - Y * X
            else:
                per = X - Y * np.log(X + eps)
            if full:
                if nx.naive:
                    st = np.where(Y <= 1, 0, Y * np.log(Y) - Y + 0.5 * np.log(2 * np.pi * Y))
                else:
                    st = self._stirling_np(Y)[0]
                per = per + st
            per = np.asarray(per, X.dtype)
        return reduce_elementwise(nx, per, reduction)

    def numpy_grads(self, nx, input, target, grad_output, log_input=True, full=False, eps=_DEFAULT_EPS,
                    reduction="mean"):
        X, Y = nx.work(input), nx.work(target)
        g = elementwise_upstream(nx, grad_output, reduction, X.size)
        with np.errstate(all="ignore"):
            if log_input:
                gx, dt = np.exp(X) - Y, -X
            else:
                s = X + eps
                gx, dt = 1.0 - Y / s, -np.log(s)
            if full:
                dt = dt + self._stirling_np(Y)[1]
            gx, gt = gx * g, dt * g
        shape = np.shape(input)
        return {"input": np.broadcast_to(np.asarray(gx, np.float64), shape).copy(),
                "target": np.broadcast_to(np.asarray(gt, np.float64), shape).copy()}

    # -- brute force (reference/audit.py) ----------------------------------------------------------
    @staticmethod
    def _log(a):
        return mpmath.mpf("nan") if (mpmath.isnan(a) or a < 0) else (mpmath.mpf("-inf") if a == 0 else mpmath.log(a))

    def _brute_term(self, x, y, li, full, eps):
        if li:
            v = mpmath.exp(x) - y * x
        else:
            v = x - y * self._log(x + eps)
        if full and not (y <= 1):
            v = v + (y * self._log(y) - y + self._log(2 * mpmath.pi * y) / 2)
        return v

    def _brute_grad(self, x, y, li, full, eps, wrt):
        mpf = mpmath.mpf
        if wrt == "input":
            if li:
                return mpmath.exp(x) - y
            s = x + eps
            if s == 0:
                return mpf("nan") if (y == 0 or mpmath.isnan(y)) else (mpf("-inf") if y > 0 else mpf("inf"))
            return 1 - y / s
        d = -x if li else -self._log(x + eps)
        if full and not (y <= 1):
            d = d + self._log(y) + 1 / (2 * y)
        return d

    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): each element's e^x - y x or x - y log(x + eps), plus the
        Stirling term where not y <= 1; fsum and one division; the analytic derivatives."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        y = np.asarray(args[1]).astype(np.float64)
        red = kwargs.get("reduction", "mean")
        li, full = bool(kwargs.get("log_input", True)), bool(kwargs.get("full", False))
        eps = mpf(float(kwargs.get("eps", _DEFAULT_EPS)))
        xs = [mpf(float(v)) for v in x.reshape(-1)]
        ys = [mpf(float(v)) for v in y.reshape(-1)]
        if wrt is None:
            return brute_reduce([self._brute_term(a, b, li, full, eps) for a, b in zip(xs, ys)], red, x.shape)
        gs = brute_upstream(grad_output, red, x.shape)
        out = [self._brute_grad(a, b, li, full, eps, wrt) * g for a, b, g in zip(xs, ys, gs)]
        return np.array(out, dtype=object).reshape(x.shape)


LOSS = PoissonNllLoss()

_COMBOS = ((True, False), (True, True), (False, False), (False, True))


def _kw(i: int, li: bool, full: bool, **extra) -> dict:
    return {"reduction": reduction(i), "log_input": li, "full": full, **extra}


def _counts(rng, rate, dtype, floor: float = 0.0):
    """Poisson counts of the given rates (float64), at least ``floor``, rounded into dtype."""
    lam = np.minimum(np.asarray(rate, np.float64), 1e6)
    return cast(np.maximum(rng.poisson(lam).astype(np.float64), floor), dtype)


@LOSS.family("poisson.random")
def poisson_random(rng, dtype, size):
    """N(0, sigma^2) log-rates (or their exponentials as rates) against Poisson counts of those
    rates, sigma in {1, 2}, every log_input/full combination; with full, counts of at least 1
    (zero counts under full are poisson.zero_counts')."""
    out, i = [], 0
    shape = (size.batch, 5)
    for sigma in (1.0, 2.0):
        for li, full in _COMBOS:
            for _ in range(size.repeats):
                z = normal(rng, sigma, shape, dtype)
                x = z if li else cast(np.exp(z.astype(np.float64)), dtype)
                y = _counts(rng, np.exp(z.astype(np.float64)), dtype, 1.0 if full else 0.0)
                out.append(Call((x, y), _kw(i, li, full), meta={"note": f"sigma {sigma:g}"}))
                i += 1
    return out


@LOSS.family("poisson.magnitudes")
def poisson_magnitudes(rng, dtype, size):
    """Large and small magnitudes: e^x near the format's overflow, very negative log-rates against
    large counts (y x near max/16), huge and tiny rates, large counts under full."""
    fi = finfo(dtype)
    big = float(fi.max)
    lmax = math.log(big)
    root = math.sqrt(big) / 4
    shape = (size.batch, 4)
    out, i = [], 0
    variants = [
        (True, "e^x near overflow", rng.uniform(lmax - 4, lmax - 0.7, shape), rng.uniform(0, 8, shape)),
        (True, "very negative log-rates, large counts", -log_uniform(rng, 1.0, root, shape, dtype).astype(np.float64),
         log_uniform(rng, 1.0, root, shape, dtype).astype(np.float64)),
        (True, "tiny log-rates", log_uniform(rng, float(fi.smallest_subnormal), 1e-3, shape, dtype, signed=True)
         .astype(np.float64), rng.uniform(0, 4, shape)),
        (False, "huge rates and counts", log_uniform(rng, 1.0, root, shape, dtype).astype(np.float64),
         log_uniform(rng, 1.0, root, shape, dtype).astype(np.float64)),
        (False, "tiny rates", log_uniform(rng, float(fi.smallest_normal), 1e-3, shape, dtype).astype(np.float64),
         rng.uniform(0, 4, shape)),
    ]
    for li, note, x, y in variants:
        for full in (False, True):
            yy = np.round(y) if i % 2 else y
            if full:  # zero counts under full are poisson.zero_counts'
                yy = np.where(yy <= 0, 0.5, yy)
            out.append(Call((cast(x, dtype), cast(yy, dtype)), _kw(i, li, full), meta={"note": note}))
            i += 1
    return out


@LOSS.family("poisson.stirling")
def poisson_stirling(rng, dtype, size):
    """The Stirling mask edge: targets exactly 1 (masked), just above 1 (kept), in (0, 1), 2,
    and large counts, with and without full, both log_input values."""
    fi = finfo(dtype)
    one_up = float(np.nextafter(cast(1.0, dtype), cast(2.0, dtype)))
    y = np.array([1.0, 1.0, one_up, one_up, 0.5, 0.25, 2.0, 3.0, 1000.0 if float(fi.max) > 1e4 else 100.0, 1.5])
    out = []
    for i, (li, full) in enumerate(_COMBOS * 2):
        z = rng.normal(0, 1, y.shape)
        x = z if li else np.exp(z)
        out.append(Call((cast(x, dtype), cast(y, dtype)), _kw(i, li, full), meta={"note": "y = 1, 1+ulp, (0,1), >1"}))
    return out


@LOSS.family("poisson.zero_counts")
def poisson_zero_counts(rng, dtype, size):
    """Zero (+0, -0) and negative targets, with and without full: the masked Stirling term's
    derivative is exactly 0 there (torch's masked_fill backward makes it 0 * inf = NaN)."""
    y = np.array([0.0, -0.0, 0.0, 2.0, -1.0, 1.0])
    out = []
    for i, (li, full) in enumerate(_COMBOS):
        z = rng.normal(0, 1, y.shape)
        x = z if li else np.exp(z)
        out.append(Call((cast(x, dtype), cast(y, dtype)), _kw(i, li, full), meta={"note": "zero counts"}))
    return out


@LOSS.family("poisson.eps")
def poisson_eps(rng, dtype, size):
    """log_input=False near x = 0: rates 0, subnormal and tiny, with eps 1e-8 (default), 1e-3, 0.5
    and 0 (log 0 = -inf: an infinite loss); in float16 x + 1e-8 rounds to 0 in torch."""
    fi = finfo(dtype)
    out, i = [], 0
    for eps in (None, 1e-3, 0.5, 0.0):
        e = _DEFAULT_EPS if eps is None else eps
        x = np.array([0.0, float(fi.smallest_subnormal), float(fi.smallest_normal), 1e-3, 0.25, 1.0])
        if eps == 0.0:
            x = x[1:]
        y = np.round(rng.uniform(1, 5, x.shape))  # counts >= 1 (zero counts: poisson.zero_counts)
        y[0] = 2.0
        for full in (False, True):
            extra = {} if eps is None else {"eps": e}
            out.append(Call((cast(x, dtype), cast(y, dtype)), _kw(i, False, full, **extra),
                            meta={"note": f"rates near 0, eps {e:g}"}))
            i += 1
    return out
