"""gaussian_nll_loss: l = 1/2 (log v + (x - y)^2 / v) (+ 1/2 log(2 pi) with full), v = max(var, eps).

torch (torch/nn/functional.py) clamps a *clone* of var in place under ``torch.no_grad()``: the
forward sees v = max(var, eps) (eps converted to var's dtype by clamp_), while autograd sees the
clone as the identity, so dl/dvar = 1/2 (1/v - (x - y)^2 / v^2) evaluated at the clamped v, even
where var < eps.  var is heteroscedastic (input's shape) or homoscedastic: one dimension short of
input (unsqueezed at the end) or input's ndim with exactly one dimension of size 1 where input's
differs.  Row form: the broadcast dimension moved last, (M, K) with M = var.numel() rows of K
elements; v is (M, 1), the var gradient sums each row.
"""
from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np

from ..formats import dtype_name
from ..lossdef import Arg, Call, LossDef, Problem, f64, fail, float_array
from ..numerics import F64
from ..sampling import cast, finfo, log_uniform, normal
from ._elementwise import brute_reduce, brute_upstream, exponent_span, one
from ._families import reduction
from ._numpy import elementwise_upstream, reduce_elementwise
from .poisson_nll_loss import dyadic, half_log_2pi, real_option, row_factors

GAUSS = "gaussian_nll_loss"
_DEFAULT_EPS = 1e-6


def eps_in(eps: float, dtype: str) -> float:
    """eps as clamp_(min=eps) uses it: the Python float converted to var's dtype (via float32 for
    the 16-bit formats, as c10's Half/BFloat16 take a float)."""
    if dtype == "float64":
        return float(eps)
    with np.errstate(all="ignore"):
        e32 = np.float32(eps)
    return float(e32) if dtype == "float32" else float(cast(float(e32), dtype))


def var_axis(input_shape: tuple, var_shape: tuple) -> tuple[tuple, int | None]:
    """(var's shape as torch broadcasts it, the broadcast axis or None): torch's size rules, with
    torch's messages; a ValueError names ``var``."""
    if var_shape == input_shape:
        return var_shape, None
    if len(input_shape) >= 1 and input_shape[:-1] == var_shape:
        return var_shape + (1,), len(input_shape) - 1
    if len(input_shape) == len(var_shape):
        diff = [i for i, (a, b) in enumerate(zip(input_shape, var_shape)) if a != b]
        if sum(var_shape[i] for i in diff) == 1:
            ones = [i for i in diff if var_shape[i] == 1]
            if len(ones) == 1 and len(diff) == 1:
                return var_shape, ones[0]
            fail("var", f"shape {var_shape} does not broadcast to the input's shape {input_shape}")
    fail("var", f"var is of incorrect size: {var_shape} for input {input_shape}")


class GaussProblem(Problem):
    """Row form (M, K) with the broadcast axis moved last: unreduced values go back through it."""

    def rows_to_output(self, a):
        return self.to_input(a)


class GaussKernel:
    def __init__(self, problem):
        self.problem = problem
        self.full = problem.options["full"]

    def denominator(self, ns, rows):
        return ns.const(rows["x"].size), 0.0

    def _xyv(self, ns, rows):
        return ns.asarray(rows["x"]), ns.asarray(rows["y"]), ns.asarray(rows["v"])

    def _terms(self, ns, rows):
        x, y, v = self._xyv(ns, rows)
        with np.errstate(all="ignore"):
            lg = _log_nonneg(ns, v, rows["v"])
            d = x - y
            q = (d * d) / v
            half = ns.const(0.5)
            val = half * (lg + q)
            mag = half * (np.abs(lg) + np.abs(q))
            if self.full:
                c = half_log_2pi(ns)
                val, mag = val + c, mag + abs(c)
        return val, mag

    def parts(self, ns, rows):
        v, mag = self._terms(ns, rows)
        return [(one, v, mag)]

    def _abs(self, rows):
        x, y, v = rows["x"], rows["y"], rows["v"]
        return np.abs(x - y), np.abs(x) + np.abs(y), v

    def scales(self, rows):
        """cond = |terms| + the sensitivity to x, y (2|d|(|x|+|y|)/v) and v (1/2 + d^2/v) +
        d^2/v again for the squaring; scale = |terms| + |d|(|x|+|y|)/v + 1/2; 2 terms (3 with full)."""
        ad, s, v = self._abs(rows)
        with np.errstate(all="ignore"):
            mag = np.asarray(self._terms(F64, rows)[1], np.float64)
            q = ad * ad / v
            sens = 2 * ad * s / v
            cond = mag + sens + 2 * q + 0.5
            scale = mag + sens / 2 + 0.5
        cond = np.where(np.isnan(cond), np.inf, cond)
        scale = np.where(np.isnan(scale), 0.0, scale)
        # a reduced value sums M K elements (settle.py counts M rows)
        k = max(rows["x"].shape[1], 1) if self.problem.reduced else 1
        return cond, scale, np.full(cond.shape, (3 if self.full else 2) * k, np.int64)

    def grad(self, ns, rows, gof, wrt):
        x, y, v = self._xyv(ns, rows)
        g = ns.asarray(gof)
        if g.ndim == 1:  # a reduced output's factor per row
            g = g[:, None]
        with np.errstate(all="ignore"):
            d = x - y
            if wrt in ("input", "target"):
                r = (g * d) / v
                r = -r if wrt == "target" else r
                return r, (None if ns.exact else np.abs(r))
            # 1/2 sum_k g_k (1/v - d_k^2 / v^2) = 1/2 (sum_k g_k - sum_k g_k (d_k/v)^2) / v
            t = g / v - (g * (d / v)) * (d / v)
            half = ns.const(0.5)
            s = ns.sum(t, axis=-1, keepdims=True)
            r = half * s
            mag = None if ns.exact else half * ns.sum(np.abs(g / v) + np.abs((g * (d / v)) * (d / v)),
                                                      axis=-1, keepdims=True)
        return r, mag

    def grad_scales(self, rows, gof, wrt):
        ad, s, v = self._abs(rows)
        ag = np.abs(np.asarray(gof, np.float64))
        ag = np.broadcast_to(ag[:, None] if ag.ndim == 1 else ag, ad.shape)
        with np.errstate(all="ignore"):
            if wrt in ("input", "target"):
                scale = ag * ad / v
                cond = 2 * ag * (ad + s) / v
                n = np.ones(ad.shape, np.int64)
            else:
                a = ag / v
                b = ag * (ad / v) * (ad / v)
                scale = np.sum(a + b, axis=-1, keepdims=True) / 2
                cond = np.sum(a + 3 * b + 2 * ag * ad * s / (v * v), axis=-1, keepdims=True)
                n = np.full(cond.shape, max(ad.shape[1], 1), np.int64)
        cond = np.where(np.isnan(cond), np.inf, cond)
        scale = np.where(np.isnan(scale), 0.0, scale)
        return cond, scale, n

    def exact_prec(self, rows, wrt, grad_output):
        """(bits, exact rows): the rows whose gradient (a rational function of the inputs) is dyadic
        -- v a power of two, or its odd part cancelled by (x - y) g -- and, for the value, v = 1
        without full (log 1 = 0): exact at these bits, so a value on a rounding midpoint is decided
        correctly."""
        v = rows["v"][:, 0]
        if wrt is None:
            if self.full:
                return None
            mask = v == 1
        else:  # the rows whose exact (rational) VJP is dyadic
            gs = np.broadcast_to(np.asarray(row_factors(self.problem, rows, grad_output), np.float64).reshape(
                rows["x"].shape[0], -1), rows["x"].shape)
            mask = np.zeros(v.shape, bool)
            for j in range(v.shape[0]):
                vals = [v[j], *rows["x"][j].tolist(), *rows["y"][j].tolist(), *gs[j].tolist()]
                if not (all(math.isfinite(t) for t in vals) and v[j] > 0):
                    continue
                fv = Fraction(v[j])
                ds = [Fraction(a) - Fraction(b) for a, b in zip(rows["x"][j].tolist(), rows["y"][j].tolist())]
                g = [Fraction(t) for t in gs[j].tolist()]
                if wrt == "var":
                    mask[j] = dyadic(sum(gk * (1 / fv - dk * dk / (fv * fv)) for gk, dk in zip(g, ds)))
                else:
                    # a row with a dyadic element: its other elements, non-dyadic rationals of
                    # bounded denominator, lie far beyond 2^-bits from every rounding boundary
                    mask[j] = any(dyadic(gk * dk / fv) for gk, dk in zip(g, ds))
        span = exponent_span(rows["x"], rows["y"], v, grad_output)
        n = max(rows["x"].size, 1)
        return 4 * (span + 60) + int(np.log2(n)) + 64, mask


def _log_nonneg(ns, v, vf):
    """log v for v >= 0 (-inf at 0), NaN for v < 0 and NaN."""
    ok = np.asarray(vf) >= 0
    lg = ns.log(np.where(ok, v, ns.const(1)))
    return np.where(ok, lg, ns.const("nan"))


class GaussianNllLoss(LossDef):
    name = GAUSS
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True),
                  Arg("var", "ftarget", required=True, differentiable=True))
    options = (Arg("full", "bool", False), Arg("eps", "float", _DEFAULT_EPS), Arg("reduction", "reduction", "mean"))
    option_families = ("plain", "full")
    summary = "(log v + (x - y)^2 / v) / 2 (+ log(2 pi)/2 with full), v = max(var, eps) with var's gradient through the clamp"
    notes = """\
- torch/nn/functional.py: var must have no negative entry (`var has negative entry/entries`), and
  be input's shape, one dimension short of it (unsqueezed at the end), or input's ndim with exactly
  one dimension of size 1 where input's differs (`var is of incorrect size`), all refused here with
  the same conditions; var is a tensor of input's dtype (torch also takes a Python float, not
  checked); target has input's shape (torch would broadcast it: refused here).
- `var = var.clone(); with torch.no_grad(): var.clamp_(min=eps)`: the value uses v = max(var, eps)
  with eps converted to var's dtype (float16: 1e-6 -> 1.013e-6); autograd sees the clone only, so
  `grad:var` is (1/v - (x - y)^2/v^2)·g/2 at the clamped v even where var < eps (not 0), summed over
  the broadcast dimension for a homoscedastic var.  `grad:input` = (x - y)·g/v = -`grad:target`.
- `full` adds 0.5·log(2π) (exact here; torch adds the float64 constant).  A NaN var stays NaN.
- torch squares `input - target` in the storage dtype: float16 differences beyond 256 overflow there
  (the families keep (x - y)^2 in range).
"""

    def prepare(self, args, kwargs):
        self.check_call(args, kwargs)
        x = float_array("input", args[0])
        dtype = dtype_name(x)
        y = float_array("target", args[1], dtype)
        var = float_array("var", args[2], dtype)
        full = kwargs.get("full", False)
        if not isinstance(full, (bool, np.bool_)):
            fail("full", f"must be a bool, got {full!r}")
        eps = real_option("eps", kwargs.get("eps", _DEFAULT_EPS))
        vf = f64(var)
        if np.any(vf < 0):
            fail("var", "var has negative entry/entries")
        shape = x.shape
        vshape, axis = var_axis(shape, var.shape)
        if y.shape != shape:
            fail("target", f"shape {y.shape} does not match the input's shape {shape}")
        e = eps_in(eps, dtype)
        with np.errstate(invalid="ignore"):
            vc = np.where(np.isnan(vf), np.nan, np.maximum(vf, e)).reshape(vshape)
        moved = shape if axis is None else tuple(np.moveaxis(np.empty(shape, bool), axis, -1).shape)
        k = 1 if axis is None else shape[axis]
        m = int(np.prod(moved[:-1] if axis is not None else moved, dtype=np.int64))

        def rows_of(a):
            a = np.asarray(a, np.float64)
            return (a if axis is None else np.moveaxis(a, axis, -1)).reshape(m, k)

        def to_input(g):
            g = np.asarray(g).reshape(moved)
            return g if axis is None else np.moveaxis(g, -1, axis)

        vrows = (vc if axis is None else np.moveaxis(vc, axis, -1)).reshape(m, 1)
        rows = {"x": rows_of(f64(x)), "y": rows_of(f64(y)), "v": vrows, "i": np.arange(m)[:, None]}
        return GaussProblem(dtype=dtype, reduction=self.reduction_of(kwargs), rows=rows, nclass=max(k, 1),
                            unreduced_shape=shape, input_shape=shape, options={"full": bool(full), "eps": e},
                            to_input=to_input, to_arg={"var": lambda g: np.asarray(g).reshape(var.shape)},
                            grad_output_rows=rows_of)

    def kernel(self, problem):
        return GaussKernel(problem)

    def option_family(self, args, kwargs):
        return "full" if kwargs.get("full", False) else "plain"

    def output_shape(self, args, kwargs):
        if self.reduction_of(kwargs) != "none":
            return ()
        return tuple(np.shape(args[0]))

    def describe(self, args, kwargs, check, index):
        if check == "value" and self.reduction_of(kwargs) != "none":
            return None
        if check == "grad:var":
            return f"var {float(np.asarray(args[2])[index]):.6g}"
        x, y = np.asarray(args[0]), np.asarray(args[1])
        return f"input {float(x[index]):.6g}, target {float(y[index]):.6g}"

    def strategy(self, dtype=None, max_size: int = 5, reductions=("none", "sum", "mean"), full=(False, True)):
        """gaussian_nll_loss: inputs and targets in [-10, 10], variances in [0, 4] (some below eps),
        heteroscedastic or homoscedastic var (one dimension short, or a last dimension of 1)."""
        from hypothesis import strategies as st

        from ._strategies import dtypes, floats

        dts = dtypes(dtype)
        reds = tuple(reductions)
        bad = [r for r in reds if r not in ("none", "sum", "mean")]
        if bad:
            raise ValueError(f"unknown reduction(s) {bad}")
        fulls = tuple(full)

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            shape = (draw(st.integers(1, max_size)), draw(st.integers(1, 4)))
            x = floats(draw, shape, dt, -10.0, 10.0)
            y = floats(draw, shape, dt, -10.0, 10.0)
            vshape = draw(st.sampled_from([shape, shape[:-1], (shape[0], 1)]))
            var = floats(draw, vshape, dt, 0.0, 4.0)
            kw = {"reduction": draw(st.sampled_from(reds)), "full": draw(st.sampled_from(fulls))}
            if draw(st.booleans()):
                kw["eps"] = draw(st.sampled_from([1e-6, 1e-3, 0.25]))
            return Call((x, y, var), kw)
        return strategy()

    # -- NumPy (the numpy backend) ----------------------------------------------------------------
    @staticmethod
    def _np_parts(nx, input, target, var, eps):
        X, Y, V = nx.work(input), nx.work(target), nx.work(var)
        vshape, axis = var_axis(np.shape(input), np.shape(var))
        dtype = dtype_name(np.asarray(input))
        e = eps_in(eps, dtype) if not nx.naive else eps
        with np.errstate(invalid="ignore"):
            Vc = np.where(np.isnan(V), np.nan, np.maximum(V, e)).reshape(vshape)
        return X, Y, Vc, axis

    def numpy_value(self, nx, input, target, var, full=False, eps=_DEFAULT_EPS, reduction="mean"):
        X, Y, V, _ = self._np_parts(nx, input, target, var, eps)
        with np.errstate(all="ignore"):
            d = X - Y
            q = (d * d) / V if nx.naive else (d / V) * d
            per = 0.5 * (np.log(V) + q)
            if full:
                per = per + 0.5 * math.log(2 * math.pi)
            per = np.asarray(per, X.dtype)
        return reduce_elementwise(nx, per, reduction)

    def numpy_grads(self, nx, input, target, var, grad_output, full=False, eps=_DEFAULT_EPS, reduction="mean"):
        X, Y, V, axis = self._np_parts(nx, input, target, var, eps)
        g = elementwise_upstream(nx, grad_output, reduction, X.size)
        with np.errstate(all="ignore"):
            d = X - Y
            r = d / V
            gx = np.broadcast_to(g * r, X.shape)
            gv = 0.5 * (g / V - (g * r) * r)
            gv = np.broadcast_to(gv, X.shape)
            if axis is not None:
                gv = np.sum(gv, axis=axis, keepdims=True)
        return {"input": np.asarray(gx, np.float64).copy(), "target": -np.asarray(gx, np.float64),
                "var": np.asarray(gv, np.float64).reshape(np.shape(var)).copy()}

    # -- brute force (reference/audit.py) ----------------------------------------------------------
    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): v = max(var, eps in var's dtype) per element through an
        index map of torch's broadcast, 1/2 (log v + (x - y)^2 / v) (+ 1/2 log 2 pi), fsum and one
        division; gradients (x - y) g / v and, for var, fsum over the elements sharing a var of
        1/2 g (1/v - (x - y)^2 / v^2)."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        y = np.asarray(args[1]).astype(np.float64)
        var = np.asarray(args[2])
        dtype = dtype_name(np.asarray(args[0]))
        red = kwargs.get("reduction", "mean")
        full = bool(kwargs.get("full", False))
        e = mpf(eps_in(float(kwargs.get("eps", _DEFAULT_EPS)), dtype))
        vshape, _ = var_axis(x.shape, var.shape)
        owner = np.broadcast_to(np.arange(var.size).reshape(vshape), x.shape).reshape(-1)
        vs = []
        for a in var.astype(np.float64).reshape(-1):
            a = mpf(float(a))
            vs.append(a if mpmath.isnan(a) else max(a, e))
        xs = [mpf(float(a)) for a in x.reshape(-1)]
        ys = [mpf(float(a)) for a in y.reshape(-1)]

        def log(a):
            return mpf("-inf") if a == 0 else mpmath.log(a)

        if wrt is None:
            c = mpmath.log(2 * mpmath.pi) / 2 if full else mpf(0)
            vals = []
            for a, b, j in zip(xs, ys, owner):
                v = vs[j]
                vals.append((log(v) + (a - b) ** 2 / v) / 2 + c)
            return brute_reduce(vals, red, x.shape)
        gs = brute_upstream(grad_output, red, x.shape)
        if wrt in ("input", "target"):
            sign = 1 if wrt == "input" else -1
            out = [sign * (a - b) * g / vs[j] for a, b, g, j in zip(xs, ys, gs, owner)]
            return np.array(out, dtype=object).reshape(x.shape)
        acc = [[] for _ in vs]
        for a, b, g, j in zip(xs, ys, gs, owner):
            v = vs[j]
            acc[j].append(g * (1 / v - (a - b) ** 2 / v ** 2) / 2)
        return np.array([mpmath.fsum(t) for t in acc], dtype=object).reshape(var.shape)


LOSS = GaussianNllLoss()


def _kw(i: int, full: bool, **extra) -> dict:
    return {"reduction": reduction(i), "full": full, **extra}


def _var_shapes(n: int, d: int) -> list:
    return [(n, d), (n,), (n, 1)]


@LOSS.family("gaussian.random")
def gaussian_random(rng, dtype, size):
    """N(0, 4) inputs and targets against log-uniform variances in [0.1, 100] (float16's backward
    intermediates (x - y)^2/v^2 stay in range):
    heteroscedastic (input's shape), homoscedastic (N,) and (N, 1), a 3-d input with var (N, 1, d),
    and a 1-d input with a 0-d var; both full values, every reduction."""
    out, i = [], 0
    n, d = size.batch, 4
    for full in (False, True):
        for vshape in _var_shapes(n, d):
            for _ in range(size.repeats):
                x, y = normal(rng, 2.0, (n, d), dtype), normal(rng, 2.0, (n, d), dtype)
                v = log_uniform(rng, 0.1, 100.0, vshape, dtype)
                out.append(Call((x, y, v), _kw(i, full), meta={"note": f"var {vshape}"}))
                i += 1
        x, y = normal(rng, 1.0, (n, 3, 2), dtype), normal(rng, 1.0, (n, 3, 2), dtype)
        out.append(Call((x, y, log_uniform(rng, 0.1, 10.0, (n, 1, 2), dtype)), _kw(i, full),
                        meta={"note": "var (N, 1, d): the middle dimension broadcast"}))
        i += 1
        x, y = normal(rng, 1.0, (5,), dtype), normal(rng, 1.0, (5,), dtype)
        out.append(Call((x, y, log_uniform(rng, 0.1, 10.0, (), dtype)), _kw(i, full),
                        meta={"note": "1-d input, 0-d var"}))
        i += 1
    return out


@LOSS.family("gaussian.var_eps")
def gaussian_var_eps(rng, dtype, size):
    """Variances below, at and just above eps (in var's dtype), 0, subnormal, exactly 1 and powers
    of two, with the default eps and eps 1e-3, 0.25: the clamp and its pass-through gradient."""
    fi = finfo(dtype)
    out, i = [], 0
    for eps in (None, 1e-3, 0.25):
        e = eps_in(_DEFAULT_EPS if eps is None else eps, dtype)
        ce = cast(e, dtype)
        up = float(np.nextafter(ce, cast(1.0, dtype)))
        down = float(np.nextafter(ce, cast(0.0, dtype)))
        v = np.array([0.0, float(fi.smallest_subnormal), down, e, up, e / 4, 1.0, 0.5, 4.0, 2 * e])
        x = normal(rng, 1.0, v.shape, dtype).astype(np.float64)
        y = normal(rng, 1.0, v.shape, dtype).astype(np.float64)
        if dtype == "float16" and e < 1e-4:  # (x - y)^2 / 1e-6 must stay in float16's range
            y = x + np.clip(y - x, -0.125, 0.125)
        for full in (False, True):
            extra = {} if eps is None else {"eps": eps}
            out.append(Call((cast(x, dtype), cast(y, dtype), cast(v, dtype)), _kw(i, full, **extra),
                            meta={"note": f"var near eps {e:.3g}"}))
            i += 1
    return out


@LOSS.family("gaussian.magnitudes")
def gaussian_magnitudes(rng, dtype, size):
    """Large differences (squares near max/64, var >= 1), tiny differences (squares underflow),
    nearly equal input and target, huge and tiny variances."""
    fi = finfo(dtype)
    big = math.sqrt(float(fi.max)) / 8
    shape = (size.batch, 4)
    out, i = [], 0
    xn = normal(rng, 10.0, shape, dtype)
    steps = rng.integers(-3, 4, size=shape).astype(np.float64)
    variants = [
        ("large differences", log_uniform(rng, big / 16, big, shape, dtype, signed=True),
         cast(np.zeros(shape), dtype), log_uniform(rng, 1.0, 64.0, shape, dtype)),
        ("tiny differences", log_uniform(rng, float(fi.smallest_subnormal), 1e-3, shape, dtype, signed=True),
         cast(np.zeros(shape), dtype), log_uniform(rng, 0.01, 4.0, shape, dtype)),
        ("nearly equal", xn, cast(xn.astype(np.float64) * (1 + steps * float(fi.eps)), dtype),
         log_uniform(rng, 0.01, 4.0, shape, dtype)),
        ("huge variances", normal(rng, 4.0, shape, dtype), normal(rng, 4.0, shape, dtype),
         log_uniform(rng, float(fi.max) / 64, float(fi.max) / 2, shape, dtype)),
    ]
    for note, x, y, v in variants:
        for full in (False, True):
            out.append(Call((x, y, v), _kw(i, full), meta={"note": note}))
            i += 1
    return out
