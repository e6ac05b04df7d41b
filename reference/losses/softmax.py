"""softmax and log_softmax along ``dim``: row form (M, C) with the dim moved last; elementwise output."""
from __future__ import annotations

import mpmath
import numpy as np

from ..formats import dtype_name
from ..lossdef import Arg, Call, Convention, LossDef, Problem, Variant, f64, fail, float_array, int_option
from ..numerics import F64, shifted_lse
from ..sampling import cast, exp_edge, finfo, normal
from ._elementwise import one, safe_mul, span_bits, tied_rows
from ._families import absorption_rows, fits
from ._policy import PADDLE_SHIFT_CLIP, VARIANT_PREC, clip_bites, mp_clipped_log_softmax, row_magnitude


class SoftmaxKernel:
    """softmax (``log=False``) / log_softmax (``log=True``) along the class dim of row form (M, C)."""

    def __init__(self, problem: Problem, log: bool):
        self.log = log
        self.c = problem.nclass

    def exact_prec(self, rows, wrt, grad_output):
        """Tied rows (every finite entry the max, a power-of-two count of them): softmax is exactly
        1/count or 0 there, and both gradients are sums and products of it and grad_output;
        log_softmax's value is log(count): irrational unless the count is 1."""
        if self.log and wrt is None:
            return None
        return span_bits(rows["x"], grad_output), tied_rows(rows["x"])

    def denominator(self, ns, rows):  # never reduced
        raise NotImplementedError

    def _pieces(self, ns, x, xf=None):
        y, e, _, s, self._lns, _ = shifted_lse(ns, x, xf)
        return y, e, s

    def parts(self, ns, rows):
        x = ns.asarray(rows["x"])
        y, e, s = self._pieces(ns, x, rows["x"])
        if not self.log:
            v = e / s
            return [(one, v, np.abs(v))]
        lns = self._lns  # log1p(rest): relatively accurate
        return [(one, y - lns, np.abs(y) + lns)]

    def scales(self, rows):
        x = rows["x"]
        with np.errstate(all="ignore"):
            y, e, s = self._pieces(F64, x)
            p = e / s
            ay = np.abs(y)
            sp = safe_mul(ay, p).sum(axis=1, keepdims=True)
            sens = safe_mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p)
            if not self.log:
                cond = p + safe_mul(p, sens)
                scale = np.ones_like(p)
            else:
                mag = ay + self._lns
                cond = mag + sens
                scale = 1 + mag
        return cond, scale, np.full(x.shape, self.c, np.int64)

    def grad(self, ns, rows, go, wrt="input"):
        """VJP: softmax s*(go - <go, s>);  log_softmax go - s * sum(go)."""
        x = ns.asarray(rows["x"])
        go = ns.asarray(go)
        _, e, s = self._pieces(ns, x, rows["x"])
        p = e / s
        if not self.log:
            dot = ns.sum(go * p, axis=1, keepdims=True)
            g = p * (go - dot)
            mag = p * (np.abs(go) + ns.sum(np.abs(go) * p, axis=1, keepdims=True))
        else:
            tot = ns.sum(go, axis=1, keepdims=True)
            g = go - p * tot
            mag = np.abs(go) + p * ns.sum(np.abs(go), axis=1, keepdims=True)
        return g, mag

    def grad_scales(self, rows, go, wrt="input"):
        x = rows["x"]
        with np.errstate(all="ignore"):
            _, mag = self.grad(F64, rows, go)
            y, e, s = self._pieces(F64, x)
            p = e / s
            ay = np.abs(y)
            sp = safe_mul(ay, p).sum(axis=1, keepdims=True)
            sens = safe_mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p)
            amax = np.abs(go).max(axis=1, keepdims=True, initial=0.0)
            # p_j's sensitivity times what multiplies p_j: <go, p> (at most max|go|) for softmax,
            # sum(go) for log_softmax
            mult = np.abs(go).sum(axis=1, keepdims=True) if self.log else amax
            cond = mag + safe_mul(safe_mul(p, sens), mult) * 2
            scale = mag if self.log else np.broadcast_to(amax, mag.shape)
        return cond, scale, np.full(x.shape, self.c, np.int64)


class _Softmax(LossDef):
    log = False
    options = (Arg("dim", "int", None, required=True),)
    positional = (Arg("input", "input", required=True, differentiable=True),)
    option_families = ("last_dim", "inner_dim")
    has_reduction = False

    def prepare(self, args, kwargs):
        self.check_call(args, kwargs)
        x = float_array("input", args[0])
        dim = int_option("dim", kwargs.get("dim"), f"{self.name} requires an integer dim")
        nd = max(x.ndim, 1)
        if not -nd <= dim < nd:
            fail("dim", f"dimension {dim} out of range for a {x.ndim}-d input")
        xx = x.reshape(1) if x.ndim == 0 else x
        d = dim % nd
        moved_shape = np.moveaxis(xx, d, -1).shape
        c = moved_shape[-1]

        def to_rows(a):
            a = np.asarray(a).reshape(xx.shape)
            moved = np.moveaxis(a, d, -1)
            return moved.reshape(int(np.prod(moved.shape[:-1], dtype=np.int64)), c)  # c may be 0

        def to_input(g):
            g = np.asarray(g).reshape(moved_shape)
            return np.moveaxis(g, -1, d).reshape(x.shape)

        return Problem(dtype=dtype_name(x), reduction="elementwise", rows={"x": f64(to_rows(x))}, nclass=c,
                       unreduced_shape=x.shape, input_shape=x.shape, options={"dim": dim}, to_input=to_input,
                       grad_output_rows=lambda go: to_rows(np.asarray(go, np.float64)))

    def kernel(self, problem):
        return SoftmaxKernel(problem, self.log)

    def magnitude(self, args, kwargs, check):
        """max |x| of the row behind the element: softmax is invariant under a shift of a row, so a
        formula that does not subtract the row max first errs by u * max|x| (docs/verdicts.md)."""
        return row_magnitude(self.prepare(tuple(args), dict(kwargs)), check)

    def conventions(self, args, kwargs, check):
        """A row holding +inf (and no NaN): torch and the oracle return NaN for the whole row
        (x - max is inf - inf); the limit as those entries grow is 1/k (log: -log k) at the k
        infinite entries and 0 (log: -inf) elsewhere, what SciPy returns.  Value only."""
        if check != "value":
            return None
        p = self.prepare(tuple(args), dict(kwargs))
        x = p.rows["x"]
        if not x.size:
            return None
        rows = np.any(x == np.inf, axis=1) & ~np.any(np.isnan(x), axis=1)
        if not rows.any():
            return None
        k = np.sum(x == np.inf, axis=1, keepdims=True).astype(np.float64)
        k = np.maximum(k, 1.0)  # rows without +inf are not used
        top = -np.log(k) if self.log else 1.0 / k
        other = -np.inf if self.log else 0.0
        alt = np.where(x == np.inf, top, other)
        mask = np.broadcast_to(rows[:, None], x.shape)
        return Convention(np.asarray(p.rows_to_output(mask), bool),
                          np.asarray(p.rows_to_output(np.where(mask, alt, np.nan)), np.float64),
                          "a row holding +inf: torch's NaN, or the limit (1/k at the k infinite entries, 0 elsewhere)")

    def option_family(self, args, kwargs):
        x = args[0]
        dim = kwargs.get("dim")
        dim = dim % x.ndim if x.ndim else 0
        return "last_dim" if dim == max(x.ndim - 1, 0) else "inner_dim"

    def output_shape(self, args, kwargs):
        return tuple(np.shape(args[0]))

    def describe(self, args, kwargs, check, index):
        """The whole row along dim behind an element."""
        x = np.asarray(args[0])
        dim = kwargs.get("dim", -1) % max(x.ndim, 1)
        sl = list(index)
        sl[dim] = slice(None)
        flat = np.asarray(x[tuple(sl)]).reshape(-1)
        vals = ", ".join(f"{float(v):.6g}" for v in flat[:8])
        return f"row [{vals}{', ...' if flat.size > 8 else ''}]"

    def strategy(self, dtype=None, max_dims: int = 4, max_side: int = 6, max_abs: float = 100.0):
        """Any dim of a 1-D to max_dims-D input with values in [-max_abs, max_abs]."""
        from hypothesis import strategies as st

        from ._strategies import dtypes, floats

        dts = dtypes(dtype)  # validated now, not at the first draw

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims)))
            dim = draw(st.integers(-len(shape), len(shape) - 1))
            return Call((floats(draw, shape, dt, -max_abs, max_abs),), {"dim": dim})
        return strategy()


    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops over the rows along ``dim`` (see LossDef.brute): m = max, e = exp(x - m),
        S = fsum(e); softmax e / S, log_softmax (x - m) - log(S); a row holding NaN or +inf, or only
        -inf, is NaN.  VJPs: softmax s (g - fsum(g s)), log_softmax g - s fsum(g)."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        xx = x.reshape(1) if x.ndim == 0 else x
        d = int(kwargs["dim"]) % xx.ndim
        go = np.ones(xx.shape) if grad_output is None else np.asarray(grad_output).astype(np.float64).reshape(xx.shape)
        nan = mpf("nan")
        out = np.empty(xx.shape, dtype=object)
        others = tuple(n for i, n in enumerate(xx.shape) if i != d)
        for idx in np.ndindex(*others):
            at = [idx[:d] + (j,) + idx[d:] for j in range(xx.shape[d])]
            row = [mpf(float(xx[i])) for i in at]
            if any(mpmath.isnan(v) or v == mpmath.inf for v in row) or all(v == -mpmath.inf for v in row):
                for i in at:
                    out[i] = nan
                continue
            m = max(row)
            e = [mpmath.exp(v - m) for v in row]
            total = mpmath.fsum(e)
            sm = [ev / total for ev in e]
            if wrt is None:
                log_total = mpmath.log(total)
                vals = [(v - m) - log_total for v in row] if self.log else sm
            else:
                g = [mpf(float(go[i])) for i in at]
                if self.log:
                    sg = mpmath.fsum(g)
                    vals = [gj - sj * sg for gj, sj in zip(g, sm)]
                else:
                    dot = mpmath.fsum(gj * sj for gj, sj in zip(g, sm))
                    vals = [sj * (gj - dot) for gj, sj in zip(g, sm)]
            for i, v in zip(at, vals):
                out[i] = v
        return out.reshape(x.shape)


def _paddle_clip(log: bool):
    """Paddle's softmax / log_softmax: each shifted logit clipped below at -64 before exp, so a
    probability never drops below about e^-64 = 1.6e-28 (log: -64).  Value only."""
    def value(args, kwargs, check, dtype=None, grad_output=None):
        if check != "value":
            return None
        p = (LOG_SOFTMAX if log else SOFTMAX).prepare(tuple(args), dict(kwargs))
        x = p.rows["x"]
        bites = clip_bites(x, PADDLE_SHIFT_CLIP)
        if not bites.any():
            return None
        out = np.full(x.shape, np.nan)  # NaN: no other answer where the clip changes nothing
        with mpmath.workprec(VARIANT_PREC):
            for n in np.flatnonzero(bites):
                logp = mp_clipped_log_softmax(x[n], PADDLE_SHIFT_CLIP)
                out[n] = [float(v if log else mpmath.exp(v)) for v in logp]
        return np.asarray(p.rows_to_output(out), np.float64)
    return value


class Softmax(_Softmax):
    name = "softmax"
    summary = "softmax along dim"
    notes = """\
- Evaluated as exp(y) / (1 + rest) with y = x - max and rest the sum of the non-max exponentials,
  so a confident row keeps its tiny probabilities to full relative precision.
- A row holding NaN or +inf, or only -inf, is NaN; a -inf entry of a finite row is exactly 0.
- Gradient: s ⊙ (g - <g, s>).
"""
    variants = (Variant("shifted-logit clip at -64 (Paddle)", "softmax(max(x - max x, -64))", "softmax(x - max x)",
                        _paddle_clip(log=False)),)

    def numpy_value(self, nx, input, dim):
        return nx.softmax(nx.work(input), axis=dim)

    def numpy_grads(self, nx, input, grad_output, dim):
        p = nx.softmax(nx.work(input), axis=dim)
        G = nx.work(grad_output)
        return {"input": p * (G - np.sum(G * p, axis=dim, keepdims=True))}


class LogSoftmax(_Softmax):
    name = "log_softmax"
    log = True
    summary = "log_softmax along dim"
    notes = """\
- Evaluated as y - log1p(rest) (y = x - max): relatively accurate on confident rows.
- A row holding NaN or +inf, or only -inf, is NaN; a -inf entry of a finite row is -inf.
- Gradient: g - s · sum(g).
"""
    variants = (Variant("shifted-logit clip at -64 (Paddle)", "log_softmax(max(x - max x, -64))",
                        "log_softmax(x - max x)", _paddle_clip(log=True)),)

    def numpy_value(self, nx, input, dim):
        return nx.log_softmax(nx.work(input), axis=dim)

    def numpy_grads(self, nx, input, grad_output, dim):
        p = nx.softmax(nx.work(input), axis=dim)
        G = nx.work(grad_output)
        return {"input": G - p * np.sum(G, axis=dim, keepdims=True)}


SOFTMAX, LOG_SOFTMAX = Softmax(), LogSoftmax()
LOSSES = (SOFTMAX, LOG_SOFTMAX)


# ------------------------------------------------------------------------------ case families
# registered once per function: each generator is built for the loss it registers with

def _dims():
    def gen(rng, dtype, size):
        """Each dim of 1-D to 4-D inputs (and negative dims), N(0, 4^2)."""
        out = []
        for shape in ((7,), (3, 5), (2, 3, 4), (2, 3, 2, 3)):
            for dim in range(len(shape)):
                out.append(Call((normal(rng, 4.0, shape, dtype),), {"dim": dim},
                                     meta={"note": f"shape {shape}, dim {dim}"}))
            out.append(Call((normal(rng, 4.0, shape, dtype),), {"dim": -1},
                                 meta={"note": f"shape {shape}, dim -1"}))
        return out
    return gen


def _extreme():
    def gen(rng, dtype, size):
        """Large shifts, exp-overflow edges, +-1e4, near-max values, ties, -inf masks, NaN and +inf."""
        out = []
        edge, big = exp_edge(dtype), float(finfo(dtype).max) / 2
        rows = [("exp-overflow edge +", edge + rng.normal(0, 1, 6)), ("exp-overflow edge -", -edge + rng.normal(0, 1, 6)),
                ("+-1e4", 1e4 * rng.choice([-1.0, 1.0], 6) + rng.normal(0, 1, 6)),
                ("half max", np.array([big, -big, big / 4, 0.0, -big / 4, big])),
                ("ties", np.full(6, float(rng.normal(0, 8)))),
                ("-inf masked entries", np.where(np.arange(6) % 3 == 0, -np.inf, rng.normal(0, 3, 6))),
                ("row of -inf", np.full(6, -np.inf)),
                ("single -inf", np.array([-np.inf, 0.0, 1.0, 2.0, 3.0, 4.0])),
                ("NaN entry (row is NaN)", np.array([0.0, np.nan, 1.0, 2.0, 3.0, 4.0])),
                ("+inf entry", np.array([np.inf, 0.0, 1.0, 2.0, 3.0, 4.0]))]
        for s in (1e4, 1e6, 1e8):
            if fits(s, dtype):
                rows.append((f"common shift +{s:g}", s + rng.normal(0, 2, 6)))
        if not fits(1e6, dtype):
            rows.append(("common shift -3e4", -3e4 + rng.normal(0, 30, 6)))
        for i, (note, row) in enumerate(rows):
            x = cast(np.stack([row, np.roll(row, 2), rng.normal(0, 2, 6)]), dtype)
            dim = 1 if i % 3 else -1
            out.append(Call((x,), {"dim": dim}, meta={"note": note}))
            if i % 2 == 0:
                out.append(Call((np.ascontiguousarray(x.T),), {"dim": 0},
                                     meta={"note": note + " (inner dim)"}))
        return out
    return gen


def _large():
    def gen(rng, dtype, size):
        """Long reduction dims: size.sweep and the large counts (1-2 rows each)."""
        out = []
        for i, n in enumerate(tuple(c for c in size.sweep if c >= 2) + size.large):
            rows = 2 if n <= 4096 else 1
            x = normal(rng, 4.0, (rows, n), dtype)
            if i % 2 and n <= 4096:
                out.append(Call((np.ascontiguousarray(x.T),), {"dim": 0},
                                     meta={"note": f"length {n} along dim 0",
                                           "drive": {"name": "classes", "value": float(n)}}))
            else:
                out.append(Call((x,), {"dim": 1},
                                     meta={"note": f"length {n}", "drive": {"name": "classes", "value": float(n)}}))
        return out
    return gen


def _absorption():
    def gen(rng, dtype, size):
        """Long rows with one dominant entry and n-1 terms just below half an ulp of 1."""
        n = size.large[0] // 4 if size.large else 512  # 2048 in gate: long enough to absorb hundreds of terms
        return [Call((absorption_rows(rng, dtype, n),), {"dim": 1},
                          meta={"note": f"length {n}, one 0, the rest at e^-d ~ 0.7u",
                                "drive": {"name": "classes", "value": float(n)}})]
    return gen


for _loss in LOSSES:
    for _suffix, _make in (("dims", _dims), ("extreme", _extreme), ("large", _large),
                           ("absorption", _absorption)):
        _loss.family(f"{_loss.name}.{_suffix}")(_make())
