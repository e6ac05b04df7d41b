"""kl_div: the pointwise KL divergence on row form (M, 1), differentiable in input and target.

log_target=False:  l = t log t - t x      (torch: xlogy(t, t) - t * x)
log_target=True:   l = e^t (t - x)        (torch: exp(t) * (t - x))

``x`` (input) holds log-probabilities, ``t`` (target) probabilities or, with log_target,
log-probabilities.  A target that is exactly a zero probability (t == 0, or t == -inf with
log_target) is an *absent* term: it contributes exactly 0 to the value whatever the input
(0 log 0 = 0, as for cross_entropy's absent terms).  Reductions: none, sum, mean (over all
elements) and batchmean (the sum over input.shape[0], or the plain sum for a 0-d input).
"""
from __future__ import annotations

import mpmath
import numpy as np
from mpmath import libmp

from ..lossdef import Arg, Call, LossDef
from ..numerics import F64, MP
from ..sampling import cast, finfo, normal, probabilities
from ._elementwise import TermsKernel, fail, one, prepare_pair, safe_mul, span_bits
from ._numpy import elementwise_upstream, reduce_elementwise

KL = "kl_div"
KL_REDUCTIONS = ("none", "sum", "mean", "batchmean")

# e^t overflows float64 from t = 709.78 on; beyond 700 the float stages do not evaluate e^t (a
# stand-in value, cond inf) so that the exact stage decides: inf * 0 or inf - inf of an overflowed
# e^t must never be taken for an exact NaN
_EXP_BIG = 700.0
# settle.py forms the stage-0 bound (16 + 4 log2 n) u_ld cond in float64: below this cond it
# underflows to 0 and the long-double value would be taken as exact (a sum of underflowed e^t
# terms, a signed zero); there the float stages abstain and the exact stage decides
_SMALL_COND = 2.0 ** -1000


def batch_count(shape: tuple[int, ...]) -> int:
    """batchmean's divisor: input.size(0), or 1 for a 0-d input (torch then returns the sum)."""
    return int(shape[0]) if len(shape) else 1


def _explog(t, *factors):
    """e^t * prod(factors) (all >= 0) as float64, evaluated in long double as exp(t + sum log f):
    no spurious overflow of the factors and no underflow of e^t before it meets them."""
    with np.errstate(all="ignore"):
        s = np.asarray(t, np.longdouble)
        for f in factors:
            s = s + np.log(np.asarray(f, np.longdouble))
        return np.exp(s).astype(np.float64)


# -- the exact stage: sums and products of the (dyadic) inputs are formed exactly, so that a tiny
# irrational part (e^t - 1 for a tiny t, t log t for a tiny t) is never rounded away next to them
# (two precisions that both round it away agree, and Ziv's test would accept the wrong side)

def _mpf_exact(v: float):
    r = mpmath.mpf(0)
    r._mpf_ = libmp.from_float(v, 53, libmp.round_nearest)  # exact whatever mp.prec
    return r


_mp_in = np.frompyfunc(_mpf_exact, 1, 1)
_mp_add = np.frompyfunc(lambda a, b: mpmath.fadd(a, b, exact=True), 2, 1)
_mp_mul = np.frompyfunc(lambda a, b: mpmath.fmul(a, b, exact=True), 2, 1)
_mp_neg = np.frompyfunc(lambda a: mpmath.fneg(a, exact=True), 1, 1)
_mp_expm1 = np.frompyfunc(mpmath.expm1, 1, 1)
_mp_exp = np.frompyfunc(mpmath.exp, 1, 1)


def _obj(a):
    return np.asarray(a, dtype=object)


def _mp_exp_times(t, d, tf):
    """e^t d with d exact: d + expm1(t) d (one rounding, added exactly) for |t| < 1/2, where e^t is
    close to 1; e^t d (rounded) elsewhere.  ``tf``: t as float64, for the mask."""
    near = np.abs(tf) < 0.5
    out = np.empty(np.shape(d), dtype=object)
    if near.any():
        out[near] = _obj(_mp_add(d[near], _obj(_mp_expm1(t[near])) * d[near]))
    if (~near).any():
        out[~near] = _obj(_mp_exp(t[~near])) * d[~near]
    return out


def _finite(a):
    """NaN (the scale of a NaN result) as 0; infinities kept."""
    a = np.asarray(a, np.float64)
    return np.where(np.isnan(a), 0.0, a)


class KlKernel(TermsKernel):
    stage64 = False  # its float stages abstain with a float64 stand-in 0 (_abstain): a second opinion only
    """The value, both gradients and their scales; masks come from the float64 row copies."""

    def __init__(self, problem):
        super().__init__(problem)
        self.log_target = bool(problem.options.get("log_target", False))

    def exact_prec(self, rows, wrt, grad_output):
        """(bits, exact rows): grad:input without log_target is -t g, one exact product; elsewhere
        the rows whose log or exp meets an exact argument (log 1 = 0, e^0 = 1, e^-inf = 0, and the
        absent t = 0 terms) are sums and products of the inputs; the rest involve an irrational."""
        t = rows["y"][:, 0]
        bits = span_bits(rows["x"], rows["y"], grad_output)
        if wrt == "input" and not self.log_target:
            return bits
        if self.log_target:
            mask = (t == 0) | (t == -np.inf)
        else:
            mask = (t == 1) | ((t == 0) & (wrt is None))
        return bits, mask

    def denominator(self, ns, rows):
        if self.problem.reduction == "batchmean":
            return ns.const(batch_count(self.problem.input_shape)), 0.0
        return ns.const(rows["x"].shape[0]), 0.0

    # -- pieces ---------------------------------------------------------------------------------
    def _xy(self, ns, rows):
        if ns.exact:
            return _obj(_mp_in(rows["x"][:, 0])), _obj(_mp_in(rows["y"][:, 0]))
        return ns.asarray(rows["x"][:, 0]), ns.asarray(rows["y"][:, 0])

    def present(self, rows) -> np.ndarray:
        """Terms torch's formula contains with a nonzero weight (NaN targets are present)."""
        t = rows["y"][:, 0]
        return t != (-np.inf if self.log_target else 0.0)

    def _big(self, ns, rows):
        t = rows["y"][:, 0]
        if ns.exact:
            return np.zeros(t.shape, dtype=bool)
        return np.isfinite(t) & (t > _EXP_BIG)

    def _exp_t(self, ns, rows, t):
        """e^t, with a stand-in 1 where the float stages must not evaluate it (see _EXP_BIG)."""
        big = self._big(ns, rows)
        return ns.exp(np.where(big, ns.const(0), t)) if big.any() else ns.exp(t)

    def _x_inf(self, rows):
        """Infinite input against a finite target (log_target: e^t (t - x) is then t - x = -x)."""
        return np.isinf(rows["x"][:, 0]) & np.isfinite(rows["y"][:, 0])

    def _log_t(self, ns, rows, t):
        """log t for t > 0 (inf for t = inf), NaN for t <= 0 and NaN (mpmath would go complex)."""
        pos = rows["y"][:, 0] > 0
        lg = ns.log(np.where(pos, t, ns.const(1)))
        return np.where(pos, lg, ns.const("nan"))

    def _terms(self, ns, rows):
        """(value, magnitude) per element, both exactly 0 for absent terms."""
        x, t = self._xy(ns, rows)
        zero = ns.const(0)
        tf = rows["y"][:, 0]
        with np.errstate(all="ignore"):
            if self.log_target:
                if ns.exact:
                    d = _obj(_mp_add(t, _mp_neg(x)))
                    v = _mp_exp_times(t, d, tf)
                else:
                    d = t - x
                    v = self._exp_t(ns, rows, t) * d
                # e^t > 0 exactly for finite t: an infinite input gives -x even where e^t underflows
                v = np.where(self._x_inf(rows), d, v)
                mag = np.abs(v)
            else:
                a = t * self._log_t(ns, rows, t)
                # torch's structure t log t - t x: IEEE specials (t = inf, x = 0: inf - NaN) as torch
                if ns.exact:
                    b = _obj(_mp_mul(t, x))
                    v = _obj(_mp_add(a, _mp_neg(b)))
                else:
                    b = t * x
                    v = a - b
                mag = np.abs(a) + np.abs(b)
        keep = self.present(rows)
        return np.where(keep, v, zero), np.where(keep, mag, zero)

    # -- value ----------------------------------------------------------------------------------
    def terms(self, ns, rows):
        v, _ = self._terms(ns, rows)
        return [(ns.const(1), v)]

    def parts(self, ns, rows):
        v, mag = self._terms(ns, rows)
        if not ns.exact:
            v = self._abstain(ns, rows, v, self.scales(rows)[0], self.problem.reduced)
        return [(one, v, mag)]

    def term_magnitude(self, rows):
        return _finite(self._terms(F64, rows)[1].astype(np.float64))

    def _abstain(self, ns, rows, v, cond, reduced: bool):
        """The float stages abstain where the stage-0 bound would underflow (see _SMALL_COND): long
        double and quad give NaN, so they cannot accept, and float64 gives 0, so the two can never
        be taken for 'identical specials' (both only on finite present elements, never a real NaN)."""
        if ns.exact:
            return v
        fill = ns.const(0) if ns is F64 else ns.const("nan")
        live = self.present(rows) & np.isfinite(rows["y"][:, 0]) & np.isfinite(rows["x"][:, 0])
        if reduced:
            denom = 1.0
            if self.problem.reduction != "sum":
                denom = max(float(self.denominator(F64, rows)[0]), 1.0)
            if live.any() and not float(np.sum(cond)) / denom >= _SMALL_COND:
                return np.full(v.shape, fill)
            return v
        return np.where(live & ~(cond >= _SMALL_COND), fill, v)

    def scales(self, rows):
        """cond = |terms| + |x dl/dx| + |t dl/dt|; natural scale |t|(1 + |log t| + |x|) or
        e^t(1 + |t| + |x|); 2 terms."""
        x, t = rows["x"][:, 0], rows["y"][:, 0]
        ax, at = np.abs(x), np.abs(t)
        keep = self.present(rows)
        with np.errstate(all="ignore"):
            if self.log_target:
                s = at + ax
                cond = _explog(t, s) + _explog(t, ax) + _explog(t, at, s + 1)
                scale = _explog(t, s + 1)
                cond = np.where(self._big(F64, rows), np.inf, cond)
            else:
                lg = np.abs(np.log(np.where(t > 0, t, 1.0)))
                a, b = safe_mul(at, lg), safe_mul(at, ax)
                cond = 2 * a + 3 * b + at
                scale = a + b + at
            cond = np.where(keep, _finite(cond), 0.0)
            scale = np.where(keep, _finite(scale), 0.0)
        return cond, scale, np.full(x.shape, 2, np.int64)

    # -- gradients ------------------------------------------------------------------------------
    def d(self, ns, rows, wrt):
        x, t = self._xy(ns, rows)
        one_ = ns.const(1)
        with np.errstate(all="ignore"):
            if wrt == "input":
                y = self._exp_t(ns, rows, t) if self.log_target else t
                return -y
            if self.log_target:
                d1 = (t - x) + one_
                dt = np.where(self._x_inf(rows), d1, self._exp_t(ns, rows, t) * d1)
                return np.where(self.present(rows), dt, ns.const(0))  # the limit at t = -inf
            # at t = 0 the derivative of t log t does not exist (log 0 = -inf): NaN, as torch
            return (self._log_t(ns, rows, t) + one_) - x

    def _mp_grad(self, rows, gof, wrt):
        """The exact stage's VJP: the dyadic parts exact, one rounding for each irrational factor."""
        x, t = self._xy(MP, rows)
        tf = rows["y"][:, 0]
        g = _obj(MP.asarray(gof))
        if wrt == "input":  # -y g
            return _obj(_mp_neg(_mp_exp_times(t, g, tf) if self.log_target else _mp_mul(t, g)))
        one_ = mpmath.mpf(1)
        if self.log_target:  # e^t (t - x + 1) g, 0 at t = -inf
            d1 = _obj(_mp_add(_mp_add(t, _mp_neg(x)), one_))
            p1 = _obj(_mp_mul(d1, g))
            v = np.where(self._x_inf(rows), p1, _mp_exp_times(t, p1, tf))
            return np.where(self.present(rows), v, mpmath.mpf(0))
        # (log t + 1 - x) g: NaN for t <= 0
        lg = self._log_t(MP, rows, t)
        return _obj(_mp_mul(_mp_add(lg, _mp_add(one_, _mp_neg(x))), g))

    def grad(self, ns, rows, gof, wrt):
        if ns.exact:
            return self._mp_grad(rows, gof, wrt)[:, None], None
        with np.errstate(all="ignore"):
            g = ns.asarray(gof) * self.d(ns, rows, wrt)
            if wrt == "target" and self.log_target:
                g = np.where(self.present(rows), g, ns.const(0))  # 0 even for gof * 0 * inf
        cond = self.grad_scales(rows, np.asarray(gof, np.float64), wrt)[0][:, 0]
        g = self._abstain(ns, rows, g, cond, False)
        return g[:, None], np.abs(g)[:, None]

    def grad_scales(self, rows, gof, wrt):
        x, t = rows["x"][:, 0], rows["y"][:, 0]
        ax, at, ag = np.abs(x), np.abs(t), np.abs(np.asarray(gof, np.float64))
        with np.errstate(all="ignore"):
            if self.log_target:
                if wrt == "input":  # -e^t g: |e^t g| (1 + |t|) with exp's sensitivity
                    cond = _explog(t, ag, 1 + at)
                    scale = _explog(t, ag)
                else:  # g e^t (t - x + 1)
                    s = at + ax + 1
                    cond = _explog(t, ag, s) + _explog(t, ag, ax) + _explog(t, ag, at, s + 1)
                    scale = _explog(t, ag, s)
                cond = np.where(self._big(F64, rows), np.inf, cond)
                live = self.present(rows) | (wrt == "input")
            else:
                if wrt == "input":  # -t g
                    scale = safe_mul(at, ag)
                    cond = 2 * scale
                else:  # g (log t + 1 - x)
                    lg = np.abs(np.log(np.where(t > 0, t, 1.0)))
                    scale = safe_mul(ag, lg + 1 + ax)
                    cond = scale + safe_mul(ag, ax) + ag
                live = np.ones(t.shape, dtype=bool)
            cond = np.where(live, _finite(cond), 0.0)
            scale = np.where(live, _finite(scale), 0.0)
        n = np.ones((t.shape[0], 1), np.int64)
        return cond[:, None], scale[:, None], n


def _exp_times(t: np.ndarray, *factors: np.ndarray) -> np.ndarray:
    """e^t * prod(factors) in float64 without a subnormal or overflowed e^t where the product is
    representable: for |t| > 700, e^(t/2) f1 f2 ... e^(t/2) (t/2 is exact); a zero factor gives 0."""
    with np.errstate(all="ignore"):
        far = np.abs(t) > _EXP_BIG
        h = np.exp(np.where(far, t / 2, 0.0))
        v_far, v = h, np.exp(t)
        zero = np.zeros(np.shape(t), dtype=bool)
        for f in factors:
            v_far, v = v_far * f, v * f
            zero = zero | (f == 0)
        v = np.where(far, v_far * h, v)
        return np.where(zero, 0.0, v)


class KlDiv(LossDef):
    name = KL
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("reduction", "reduction", "mean"), Arg("log_target", "bool", False))
    option_families = ("plain", "log_target")
    reductions = KL_REDUCTIONS
    summary = "t (log t - x), or e^t (t - x) with log_target; batchmean divides the sum by input.size(0)"
    notes = """\
- `input` holds log-probabilities; `target` probabilities (log-probabilities with `log_target`).
  Same shape and dtype, no broadcasting.  Evaluated in torch's structure: `t log t - t x`
  (xlogy(t, t) - t * x) and `e^t (t - x)`.
- An exactly-zero target probability contributes exactly 0 (0 log 0 = 0 whatever the input, even
  ±inf or NaN, like cross_entropy's absent terms): `log_target=False` with t = ±0 and
  `log_target=True` with t = -inf.  torch computes 0 * (±inf) = NaN in some of those spots (t = 0
  with x = ±inf or NaN; every log_target element with t = -inf, since t - x = -inf there): that is
  torch's deviation, not the oracle's.
- Present terms follow IEEE otherwise: t > 0 with x = +inf gives -inf, t = +inf with x = 0 gives
  NaN (inf - NaN, as torch), a negative target gives NaN (log of a negative), NaN in gives NaN out.
- Reductions: `none`, `sum`, `mean` (divides by numel), `batchmean` (divides the sum by
  input.size(0); a 0-d input's batchmean is its sum, as torch).
- Gradients for both arguments, g = grad_output (over numel for mean, over N for batchmean):
  `grad:input` = -t g (-e^t g with log_target).  `grad:target` = (log t + 1 - x) g; at t = 0 the
  derivative does not exist (t log t has slope -inf at 0+, and t < 0 is outside the domain), so the
  oracle returns NaN there, as torch's xlogy backward (0/0) does.  With log_target it is
  e^t (t - x + 1) g, exactly 0 at t = -inf (the limit; torch gives NaN: 0 * -inf).
- For t = +inf the oracle's `grad:target` is (log t + 1 - x) g = inf for finite x; torch's xlogy
  backward computes t/t = NaN there.
- cond includes the sensitivity to relative perturbations of both arguments (|x dl/dx| and
  |t dl/dt|), which for log_target contains exp's |t| e^t factor.
"""

    def prepare(self, args, kwargs):
        problem = prepare_pair(self, args, kwargs)
        lt = kwargs.get("log_target", False)
        if not isinstance(lt, (bool, np.bool_)):
            fail("log_target", f"must be a bool, got {lt!r}")
        problem.options = {"log_target": bool(lt)}
        return problem

    def kernel(self, problem):
        return KlKernel(problem)

    def option_family(self, args, kwargs):
        return "log_target" if kwargs.get("log_target", False) else "plain"

    def strategy(self, dtype=None, max_size: int = 6, reductions=KL_REDUCTIONS, log_target=(False, True),
                 max_abs: float = 30.0, specials: bool = True):
        """kl_div: log-probability inputs in [-max_abs, 0], targets in [0, 1] (or log-targets in
        [-max_abs, 0]); with ``specials`` some targets are exact zero probabilities (0 or -inf) and
        some of their inputs -inf.  Shapes of 0 to 3 dims."""
        from hypothesis import strategies as st

        from ._strategies import dtypes, floats

        dts = dtypes(dtype)
        lts = tuple(log_target) if isinstance(log_target, (tuple, list)) else (bool(log_target),)
        reds = tuple(reductions)
        bad = [r for r in reds if r not in KL_REDUCTIONS]
        if bad:
            raise ValueError(f"unknown reduction(s) {bad}; known: {', '.join(KL_REDUCTIONS)}")

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            ndim = draw(st.integers(0, 3))
            shape = tuple(draw(st.integers(1, max(1, max_size if i == 0 else 3))) for i in range(ndim))
            lt = draw(st.sampled_from(lts))
            x = floats(draw, shape, dt, -max_abs, 0.0)
            t = floats(draw, shape, dt, -max_abs, 0.0) if lt else floats(draw, shape, dt, 0.0, 1.0)
            if specials and draw(st.booleans()):
                from hypothesis.extra import numpy as hnp

                zero = draw(hnp.arrays(bool, shape))
                inf_x = draw(hnp.arrays(bool, shape))
                t = np.where(zero, -np.inf if lt else 0.0, t.astype(np.float64)).astype(t.dtype)
                x = np.where(zero & inf_x, -np.inf, x.astype(np.float64)).astype(x.dtype)
            kw = {"reduction": draw(st.sampled_from(reds))}
            if lt or draw(st.booleans()):
                kw["log_target"] = lt
            return Call((x, t), kw)
        return strategy()

    # -- NumPy (the numpy backend) ----------------------------------------------------------------
    @staticmethod
    def _count(shape, reduction):
        return batch_count(shape) if reduction == "batchmean" else int(np.prod(shape, dtype=np.int64))

    def numpy_value(self, nx, input, target, reduction="mean", log_target=False):
        X, T = nx.work(input), nx.work(target)
        with np.errstate(all="ignore"):
            if log_target:
                e_d = np.exp(T) * (T - X) if nx.naive else _exp_times(T, T - X)
                per = np.where(T == -np.inf, 0.0, np.where(np.isinf(X) & np.isfinite(T), T - X, e_d))
            else:
                lg = np.where(T > 0, np.log(np.where(T > 0, T, 1)), np.nan)
                per = np.where(T == 0, 0.0, T * lg - T * X)
            per = np.asarray(per, X.dtype)
            if reduction == "batchmean":
                if X.ndim == 0:
                    return reduce_elementwise(nx, per, "sum")
                return reduce_elementwise(nx, per, "mean", count=batch_count(X.shape))
            return reduce_elementwise(nx, per, reduction)

    def numpy_grads(self, nx, input, target, grad_output, reduction="mean", log_target=False):
        X, T = nx.work(input), nx.work(target)
        red = "mean" if reduction == "batchmean" else reduction
        g = elementwise_upstream(nx, grad_output, red, self._count(X.shape, reduction))
        with np.errstate(all="ignore"):
            if log_target:
                if nx.naive:
                    gx, gt = -np.exp(T) * g, np.exp(T) * ((T - X) + 1) * g
                else:
                    gx = -_exp_times(T, np.broadcast_to(g, T.shape))
                    d1 = (T - X) + 1
                    gt = np.where(np.isinf(X) & np.isfinite(T), d1 * g, _exp_times(T, d1, g))
                gt = np.where(T == -np.inf, 0.0, gt)
            else:
                gx = -T * g
                lg = np.where(T > 0, np.log(np.where(T > 0, T, 1)), np.nan)
                gt = ((lg + 1) - X) * g
        shape = np.shape(input)
        return {"input": np.broadcast_to(np.asarray(gx, np.float64), shape).copy(),
                "target": np.broadcast_to(np.asarray(gt, np.float64), shape).copy()}


    # -- brute force (reference/audit.py) ----------------------------------------------------------
    @staticmethod
    def _brute_term(x, t, lt: bool):
        """One element's loss, written independently of the kernel: t (log t - x), or e^t (t - x)
        with log_target, for finite values; the specials spelled out case by case."""
        mpf, inf = mpmath.mpf, mpmath.inf
        if lt:
            if t == -inf:  # an exactly-zero probability: absent
                return mpf(0)
            if mpmath.isnan(x) or mpmath.isnan(t):
                return mpf("nan")
            if t == inf:
                return mpf("nan") if x == inf else mpf("inf")
            if mpmath.isinf(x):
                return -x
            return mpmath.exp(t) * (t - x)
        if t == 0:  # absent: 0 log 0 = 0 whatever the input
            return mpf(0)
        if mpmath.isnan(x) or mpmath.isnan(t) or t < 0:
            return mpf("nan")
        if t == inf:  # inf * inf - inf * x
            return mpf("inf") if x < 0 else mpf("nan")
        if mpmath.isinf(x):
            return -x
        return t * (mpmath.log(t) - x)

    @staticmethod
    def _brute_grad(x, t, g, lt: bool, wrt: str):
        """One element's VJP: -t g (-e^t g); (log t + 1 - x) g, NaN for t <= 0 (e^t (t - x + 1) g,
        0 at t = -inf)."""
        mpf, inf = mpmath.mpf, mpmath.inf
        if wrt == "input":
            y = mpmath.exp(t) if lt else t
            return -(y * g)
        if lt:
            if t == -inf:
                return mpf(0)
            return mpmath.exp(t) * ((t - x) + 1) * g
        if mpmath.isnan(t) or t <= 0:
            return mpf("nan")
        return (mpmath.log(t) + 1 - x) * g

    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops over elements (see LossDef.brute), fsum and one division by the count (numel
        for mean, input.size(0) for batchmean, 1 for a 0-d batchmean)."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        t = np.asarray(args[1]).astype(np.float64)
        red = kwargs.get("reduction", "mean")
        lt = bool(kwargs.get("log_target", False))
        count = {"batchmean": batch_count(x.shape), "mean": x.size}.get(red, 1)

        def div(v):
            if red in ("none", "sum"):
                return v
            return v / count if count else mpf("nan")

        xs = [mpf(float(v)) for v in x.reshape(-1)]
        ts = [mpf(float(v)) for v in t.reshape(-1)]
        if wrt is None:
            terms = [self._brute_term(a, b, lt) for a, b in zip(xs, ts)]
            if red == "none":
                return np.array(terms, dtype=object).reshape(x.shape)
            return np.array(div(mpmath.fsum(terms)), dtype=object)
        go = np.ones(x.shape if red == "none" else ()) if grad_output is None else np.asarray(grad_output)
        go = go.astype(np.float64)
        gs = [mpf(float(v)) for v in go.reshape(-1)] if red == "none" else [mpf(float(go.reshape(())))] * len(xs)
        out = [div(self._brute_grad(a, b, g, lt, wrt)) for a, b, g in zip(xs, ts, gs)]
        return np.array(out, dtype=object).reshape(x.shape)


LOSS = KlDiv()


# ------------------------------------------------------------------------------ case families

def _red(i: int) -> str:
    """Rotate through all four reductions (batchmean included)."""
    return KL_REDUCTIONS[i % len(KL_REDUCTIONS)]


def _log_softmax64(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(z, np.float64)
    m = np.max(z, axis=axis, keepdims=True)
    return (z - m) - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


def _logprobs(rng, shape, dtype, sigma: float = 2.0) -> np.ndarray:
    """log_softmax (along the last dim, in float64) of N(0, sigma^2) logits, rounded once into dtype."""
    return cast(_log_softmax64(normal(rng, sigma, shape, dtype)), dtype)


def _dirichlet64(rng, shape) -> np.ndarray:
    g = rng.gamma(1.0, size=tuple(shape))
    return g / g.sum(axis=-1, keepdims=True)


@LOSS.family("kl.random")
def kl_random(rng, dtype, size):
    """log_softmax of N(0, sigma^2) logits against Dirichlet(1) targets, both log_target values."""
    out, i = [], 0
    shape = (size.batch, 5)
    for sigma in (1.0, 4.0):
        for lt in (False, True):
            for _ in range(size.repeats):
                x = _logprobs(rng, shape, dtype, sigma)
                t = cast(np.log(_dirichlet64(rng, shape)), dtype) if lt else probabilities(rng, shape, dtype)
                kw = {"reduction": _red(i)}
                if lt:
                    kw["log_target"] = True
                out.append(Call((x, t), kw, meta={"note": f"sigma {sigma:g}, log_target {lt}"}))
                i += 1
    return out


@LOSS.family("kl.extreme")
def kl_extreme(rng, dtype, size):
    """Extreme log-probabilities near -max, e^t underflow edges (the format's and float64's),
    and inputs -inf / +inf."""
    fi = finfo(dtype)
    big = float(fi.max)
    out = []
    # inputs near -max: t * |x| near overflow (a sum may overflow the format: correctly inf)
    for i, lt in enumerate((False, True)):
        x = cast(np.array([-big, -big / 2, -big / 4, -1.0]), dtype)
        p = _dirichlet64(rng, (4,))
        t = cast(np.log(p), dtype) if lt else cast(p, dtype)
        out.append(Call((x, t), {"reduction": _red(i), **({"log_target": True} if lt else {})},
                        meta={"note": f"inputs near -max, log_target {lt}"}))
    # e^t near the underflow edges: of the format, of float64 and of the long double; -max
    edges = [np.log(float(fi.smallest_subnormal)), np.log(float(fi.smallest_normal)),
             np.log(float(fi.smallest_subnormal)) - 1.0, -708.4, -745.2, -11355.5, -11400.0, -big]
    tv = cast(np.array([e for e in edges if -e <= big]), dtype)
    xs = _logprobs(rng, tv.shape, dtype)
    for red in ("none", "sum"):
        out.append(Call((xs, tv), {"reduction": red, "log_target": True},
                        meta={"note": "log-targets at e^t underflow edges"}))
        # the input equal to the target: every term an exact 0 (signed-zero sums)
        out.append(Call((tv, tv), {"reduction": red, "log_target": True},
                        meta={"note": "input == target at e^t underflow edges"}))
    # tiny probabilities: t log t and t x tiny (log_target False)
    tp = cast(np.exp(tv.astype(np.float64)), dtype)
    tp = np.where(tp.astype(np.float64) > 0, tp, cast(float(fi.smallest_subnormal), dtype)).astype(tp.dtype)
    out.append(Call((xs, tp), {"reduction": "mean"}, meta={"note": "tiny probabilities"}))
    # infinite inputs: row 0 at -inf, row 1 at +inf, against targets (0.25 | 0.5, 1, 0)
    xi = cast(np.array([[-np.inf] * 3, [np.inf] * 3]), dtype)
    ti = cast(np.array([[0.25, 1.0, 0.0], [0.5, 1.0, 0.0]]), dtype)
    with np.errstate(divide="ignore"):
        tli = cast(np.log(ti.astype(np.float64)), dtype)  # log 0 = -inf: the absent log-target
    for lt, t in ((False, ti), (True, tli)):
        opt = {"log_target": True} if lt else {}
        out.append(Call((xi, t), {"reduction": "none", **opt},
                        meta={"note": f"inputs -inf / +inf, log_target {lt}"}))
        for r in (1, 2, 3):  # a reduced row: +inf (the -inf row) or -inf (the +inf row)
            row = r % 2
            out.append(Call((xi[row], t[row]), {"reduction": _red(r), **opt},
                            meta={"note": f"inputs {'+' if row else '-'}inf, log_target {lt}"}))
    return out


@LOSS.family("kl.zero_targets")
def kl_zero_targets(rng, dtype, size):
    """Targets exactly 0 (both signs, against finite and infinite inputs), subnormal and smallest
    normal targets, and targets 1 (t log t = 0 exactly)."""
    fi = finfo(dtype)
    sub, nrm = float(fi.smallest_subnormal), float(fi.smallest_normal)
    t = cast(np.array([0.0, -0.0, 0.0, 0.0, sub, 3 * sub, nrm, 1.0, 1.0, 0.5]), dtype)
    out = []
    for r in range(4):
        x = _logprobs(rng, t.shape, dtype).astype(np.float64)
        x[2], x[3] = -np.inf, (np.inf if r % 2 else -np.inf)
        x[8] = 0.0
        out.append(Call((cast(x, dtype), t), {"reduction": _red(r)},
                        meta={"note": "zero, subnormal and unit targets"}))
    return out


@LOSS.family("kl.log_target")
def kl_log_target(rng, dtype, size):
    """log_target=True: log-softmax targets with masked (-inf) entries, inputs finite or -inf where
    the target is -inf, and targets 0 (probability 1)."""
    out = []
    shape = (size.batch, 5)
    for r in range(4):
        x = _logprobs(rng, shape, dtype).astype(np.float64)
        z = rng.normal(0.0, 2.0, size=shape)
        mask = rng.random(shape) < 0.3
        mask[:, 0] = False  # every row keeps a live class
        z = np.where(mask, -np.inf, z)
        t = _log_softmax64(z)
        if r % 2:
            x = np.where(mask & (rng.random(shape) < 0.5), -np.inf, x)
        if r == 3:
            t[0, :] = -np.inf
            t[0, 0] = 0.0  # a one-hot target: probability 1 on class 0
        out.append(Call((cast(x, dtype), cast(t, dtype)), {"reduction": _red(r), "log_target": True},
                        meta={"note": "masked log-targets" + (", -inf inputs under them" if r % 2 else "")}))
    return out


@LOSS.family("kl.batchmean")
def kl_batchmean(rng, dtype, size):
    """batchmean on spatial shapes (N, C, d) and (N, C, d1, d2), 1-d (C,) and 0-d inputs (0-d:
    batchmean is the sum), with both log_target values."""
    out, i = [], 0
    for shape in [(size.batch, 3, 2), (size.batch, 2, 2, 2), (5,), ()]:
        for lt in (False, True):
            if shape:
                axis = 1 if len(shape) > 1 else 0
                x64 = _log_softmax64(rng.normal(0.0, 2.0, size=shape), axis=axis)
                g = rng.gamma(1.0, size=shape)
                p = g / g.sum(axis=axis, keepdims=True)
            else:
                x64, p = np.log(rng.uniform(0.05, 1.0, size=())), rng.uniform(0.05, 1.0, size=())
            t = np.log(p) if lt else p
            kw = {"reduction": "batchmean"} if i % 4 != 3 else {"reduction": "mean"}
            if lt:
                kw["log_target"] = True
            out.append(Call((cast(x64, dtype), cast(t, dtype)), kw,
                            meta={"note": f"shape {shape}, log_target {lt}"}))
            i += 1
    return out
