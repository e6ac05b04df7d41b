"""sigmoid_focal_loss (torchvision.ops.sigmoid_focal_loss) on row form (M, 1), differentiable in
inputs and targets (torchvision/ops/focal_loss.py, a composite differentiated by autograd):

    p = sigmoid(x);  ce = binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p t + (1 - p)(1 - t);  loss = ce (1 - p_t)^gamma
    if alpha >= 0: loss *= alpha t + (1 - alpha)(1 - t)

The kernel never forms 1 - p_t by subtraction: q = 1 - p_t = t sigmoid(-x) + (1-t) sigmoid(x), in
log space log q = logaddexp(log t - softplus(x), log(1-t) - softplus(-x)), so q^gamma = e^(gamma log q)
keeps its relative accuracy however confident the logit; ce = t softplus(-x) + (1-t) softplus(x).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np

from ..lossdef import Arg, Call, LossDef, SweepDef
from ..sampling import cast, normal
from ._elementwise import TermsKernel, brute_reduce, brute_upstream, fail, one, prepare_pair, span_bits
from ._families import reduction
from ._numpy import elementwise_upstream, reduce_elementwise

FOCAL = "sigmoid_focal_loss"
_REDUCTIONS = ("none", "mean", "sum")


def _log_softplus(z):
    """log(log(1 + e^z)) in float64 without underflow: z + log1p(-e^z / 2 + e^2z / 3) for z < -30."""
    z = np.asarray(z, np.float64)
    with np.errstate(all="ignore"):
        small = z < -30
        e = np.exp(np.where(small, z, 0.0))
        tail = z + np.log1p(-e / 2 + e * e / 3)
        return np.where(small, tail, np.log(np.logaddexp(0.0, np.where(small, 0.0, z))))


def _max(a, b):
    return np.where(a > b, a, b)


def _lae(ns, a, b):
    """log(e^a + e^b) for a, b >= -inf (not both -inf)."""
    m = _max(a, b)
    d = np.where(a > b, b - a, a - b)
    return m + ns.log1p(ns.exp(d))


def _safe_log(ns, a, af):
    """log a for a >= 0 (-inf at 0)."""
    pos = af > 0
    lg = ns.log(np.where(pos, a, ns.const(1)))
    return np.where(pos, lg, ns.const("-inf"))


class FocalKernel(TermsKernel):
    def __init__(self, problem):
        super().__init__(problem)
        self.alpha, self.gamma = problem.options["alpha"], problem.options["gamma"]

    # -- pieces (every one relative to its own magnitude) ----------------------------------------
    def pieces(self, ns, rows):
        x, t = ns.asarray(rows["x"][:, 0]), ns.asarray(rows["y"][:, 0])
        xf, tf = rows["x"][:, 0], rows["y"][:, 0]
        one_ = ns.const(1)
        omt = one_ - t
        sp_neg, sp_pos = ns.softplus(-x), ns.softplus(x)  # -log sigmoid(x), -log sigmoid(-x)
        ce = t * sp_neg + omt * sp_pos
        lt, lomt = _safe_log(ns, t, tf), _safe_log(ns, omt, 1.0 - tf)
        lq = _lae(ns, lt - sp_pos, lomt - sp_neg)  # log(t sigmoid(-x) + (1-t) sigmoid(x))
        zero = xf == 0  # sigmoid(0) = 1/2 exactly (keeps the dyadic gradients at x = 0 exact)
        half = ns.const(0.5)
        s = np.where(zero, half, ns.exp(-sp_neg))
        sb = np.where(zero, half, ns.exp(-sp_pos))
        if self.alpha >= 0:
            a = ns.const(self.alpha)
            at = a * t + (one_ - a) * omt
        else:
            at = None
        return x, t, omt, sp_neg, sp_pos, ce, lq, s, sb, at

    def _qg(self, ns, lq, gamma):
        return ns.exp(ns.const(gamma) * lq)

    def terms(self, ns, rows):
        *_, ce, lq, _s, _sb, at = self.pieces(ns, rows)
        v = ce * self._qg(ns, lq, self.gamma)
        return [(ns.const(1) if at is None else at, v)]

    def parts(self, ns, rows):
        (c, v), = self.terms(ns, rows)
        val = c * v
        return [(one, val, np.abs(val))]

    # -- scales ------------------------------------------------------------------------------
    def _f64(self, rows):
        """float64 magnitudes in log space (no underflow): (|x|, log q, log ce, M, F)."""
        x, t = rows["x"][:, 0], rows["y"][:, 0]
        with np.errstate(all="ignore"):
            sp_neg, sp_pos = np.logaddexp(0, -x), np.logaddexp(0, x)
            lt = np.where(t > 0, np.log(t), -np.inf)
            lomt = np.where(t < 1, np.log1p(-t), -np.inf)
            lq = np.logaddexp(lt - sp_pos, lomt - sp_neg)
            lce = np.logaddexp(lt + np.log(sp_neg), lomt + np.log(sp_pos))
            a = self.alpha
            M = np.abs(a * t) + abs(1 - a) * np.abs(1 - t) if a >= 0 else np.ones_like(x)
            g = self.gamma
            fin = lambda v: np.where(np.isfinite(v), np.abs(v), 0.0)
            # relative error of e^(gamma log q) and of the sigmoids: exp's argument errs by u |arg|
            F = 8 + (4 + 4 * g) * (np.abs(x) + 1) + 4 * g * (fin(lq) + fin(lt) + fin(lomt))
        return np.abs(x), lq, lce, M, F

    def scales(self, rows):
        """cond = M ce q^gamma F with M = |alpha t| + |1-alpha||1-t| (alpha_t's terms) and F the
        relative error budget 8 + 4(1+gamma)(|x|+1) + 4 gamma(|log q| + |log t| + |log(1-t)|);
        scale = M (q^gamma (1 + ce + |x|) + gamma ce q^(gamma-1)): the absolute unit of an
        implementation that forms 1 - p_t with an absolute error of u."""
        ax, lq, lce, M, F = self._f64(rows)
        g = self.gamma
        with np.errstate(all="ignore"):
            qg = np.exp(g * lq)
            v = M * np.exp(lce + g * lq)
            cond = v * F
            extra = g * np.exp(lce + (g - 1) * lq) if g > 0 else 0.0
            scale = M * (qg * (1 + np.exp(lce) + ax) + extra)
        cond = np.where(np.isnan(cond), np.inf, cond)
        scale = np.where(np.isnan(scale), 0.0, scale)
        return cond, scale, np.full(ax.shape, 2, np.int64)

    # -- gradients -----------------------------------------------------------------------------
    def _dyadic_target(self):
        return self.gamma == 0 and (self.alpha < 0 or self.alpha == 0.5)

    def d(self, ns, rows, wrt):
        x, t, _omt, _spn, _spp, ce, lq, s, sb, at = self.pieces(ns, rows)
        g = self.gamma
        qg = self._qg(ns, lq, g)
        if wrt == "target" and self._dyadic_target():
            return -x if self.alpha < 0 else -(x * ns.const(0.5))
        if g > 0:
            # ce gamma q^(gamma-1): in log space (ce may underflow where q^(gamma-1) overflows)
            lce = _safe_log(ns, ce, np.asarray(ce > 0, bool).astype(np.float64))
            k = ns.const(g) * ns.exp(lce + ns.const(g - 1) * lq)
        if wrt == "input":
            one_ = ns.const(1)
            r = (s - t) * qg
            if g > 0:
                r = r + k * (one_ - t - t) * (s * sb)
            return r if at is None else at * r
        # target: d alpha_t/dt ce q^g + alpha_t (-x q^g + gamma ce q^(g-1) (sigmoid(-x) - sigmoid(x)))
        r = -x * qg
        if g > 0:
            r = r + k * (sb - s)
        if at is None:
            return r
        return ns.const(2 * self.alpha - 1) * ce * qg + at * r

    def exact_prec(self, rows, wrt, grad_output):
        """gamma = 0: grad:target is -x g (alpha < 0) or -x g / 2 (alpha = 1/2); grad:input at
        x = 0 is alpha_t (1/2 - t) g: products of the inputs, which can sit on a midpoint."""
        if wrt == "target" and self._dyadic_target():
            return span_bits(rows["x"], grad_output)
        if wrt == "input" and self.gamma == 0:
            return span_bits(rows["x"], rows["y"], grad_output), rows["x"][:, 0] == 0
        return None

    def grad_scales(self, rows, gof, wrt):
        ax, lq, lce, M, F = self._f64(rows)
        t = rows["y"][:, 0]
        g = self.gamma
        ag = np.abs(np.asarray(gof, np.float64))
        with np.errstate(all="ignore"):
            s = 1 / (1 + np.exp(-rows["x"][:, 0]))
            qg = np.exp(g * lq)
            ce = np.exp(lce)
            k = g * np.exp(lce + (g - 1) * lq) if g > 0 else np.zeros_like(ax)
            Fk = F + 4 * np.where(np.isfinite(lce), np.abs(lce), 0.0)
            if wrt == "input":
                mag = (s + np.abs(s - t)) * qg * F + k * np.abs(1 - 2 * t) * s * (1 - s) * Fk
                mag = M * mag
            else:
                mag = (ax * qg * F + k * Fk) * M
                if self.alpha >= 0:
                    mag = mag + abs(2 * self.alpha - 1) * ce * qg * F
            cond = ag * mag
            scale = ag * M * ((1 + ax) * qg + k + ce * qg)
        cond = np.where(np.isnan(cond), np.inf, cond)
        scale = np.where(np.isnan(scale), 0.0, scale)
        return cond[:, None], scale[:, None], np.ones((ax.shape[0], 1), np.int64)


def _real(name, v) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        fail(name, f"must be a real number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        fail(name, f"must be finite, got {v!r}")
    return f


class SigmoidFocalLoss(LossDef):
    name = FOCAL
    positional = (Arg("input", "input", required=True, differentiable=True),
                  Arg("target", "ftarget", required=True, differentiable=True))
    options = (Arg("alpha", "float", 0.25), Arg("gamma", "float", 2), Arg("reduction", "reduction", "none"))
    option_families = ("plain", "no_alpha")
    summary = "alpha_t ce (1 - p_t)^gamma, ce = BCE-with-logits, p_t = p t + (1-p)(1-t) (torchvision.ops)"
    sweep = SweepDef(grid=(("target", (0, 1, 0.25)),))
    notes = """\
- torchvision/ops/focal_loss.py: `p = torch.sigmoid(inputs)`, `ce_loss =
  F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")`, `p_t = p * targets + (1 -
  p) * (1 - targets)`, `loss = ce_loss * ((1 - p_t) ** gamma)`, `if alpha >= 0: loss = alpha_t * loss`
  with `alpha_t = alpha * targets + (1 - alpha) * (1 - targets)`; then mean / sum / none (the
  default).  An unknown reduction is refused with torchvision's text ("Invalid Value for arg
  'reduction'"; older releases silently returned the unreduced loss).
- The oracle never forms 1 - p_t by subtraction: 1 - p_t = t sigmoid(-x) + (1-t) sigmoid(x)
  (sigmoid(-x) for t = 1, sigmoid(x) for t = 0), taken in log space, so a confident logit keeps
  its tiny, exact loss where torch's `1 - p_t` rounds to 0 (float32 from |x| ~ 17).
- The arguments are named `input`, `target` here (checks `grad:input`, `grad:target`), as every
  torch.nn.functional loss; torchvision names them `inputs`, `targets`, and both take them first and
  second, positionally.
- Refused, with reasons: targets outside [0, 1] or NaN (1 - p_t could be negative and its real
  power undefined; torchvision does not check), non-finite inputs (not checked here), gamma < 0
  (torchvision does not check; a negative exponent inverts the focusing and is inf at 1 - p_t = 0)
  and non-finite alpha or gamma.  alpha < 0 disables alpha_t (torchvision's `alpha >= 0` test).
- Both arguments are differentiated: grad:input = alpha_t [(p - t) q^gamma + gamma ce q^(gamma-1)
  (1 - 2t) p (1-p)] g and grad:target = [(2 alpha - 1) ce q^gamma + alpha_t (-x q^gamma + gamma ce
  q^(gamma-1) (1 - 2p))] g with q = 1 - p_t (alpha_t = 1 and no first term when alpha < 0).  For finite
  x, q > 0, so the exact derivatives are finite for every gamma >= 0, gamma < 1 included: the
  singular derivative of q^gamma at q = 0 is reached only at x = +-inf, and ce q^(gamma-1) stays
  bounded (ce ~ q there).  torch's autograd evaluates `gamma * q^(gamma-1)` at its rounded q: where
  1 - p_t rounds to 0 (saturated logits agreeing with the target), 0 < gamma < 1 gives inf times
  sigmoid's backward p (1 - p) = 0, i.e. NaN (inf when that factor is not 0), gamma = 1 gives
  q^0 = 1 and gamma = 0 gives 0 (pow's backward special-cases exponent 0); the oracle gives the
  exact, finite value.
- cond = M ce q^gamma F, M = |alpha t| + |1-alpha||1-t|, F = 8 + 4(1+gamma)(|x|+1) + 4 gamma(|log q|
  + |log t| + |log(1-t)|) (exp's argument errs relative to its size); scale adds the absolute unit
  gamma ce q^(gamma-1) of an implementation whose 1 - p_t errs by u.
"""

    def prepare(self, args, kwargs):
        r = kwargs.get("reduction", "none")
        if r not in _REDUCTIONS:
            fail("reduction", f"Invalid Value for arg 'reduction': '{r} \n Supported reduction modes: "
                              f"'none', 'mean', 'sum'")
        problem = prepare_pair(self, args, kwargs)
        x, t = problem.rows["x"], problem.rows["y"]
        if not np.isfinite(x).all():
            fail("input", "non-finite logits are not checked for sigmoid_focal_loss")
        bad = ~((t >= 0) & (t <= 1))
        if bad.any():
            fail("target", f"sigmoid_focal_loss needs targets in [0, 1], got {float(t[bad][0])!r}")
        alpha = _real("alpha", kwargs.get("alpha", 0.25))
        gamma = _real("gamma", kwargs.get("gamma", 2))
        if gamma < 0:
            fail("gamma", f"must be >= 0 (the focusing exponent), got {gamma!r}")
        problem.options = {"alpha": alpha, "gamma": gamma}
        return problem

    def kernel(self, problem):
        return FocalKernel(problem)

    def option_family(self, args, kwargs):
        return "no_alpha" if kwargs.get("alpha", 0.25) < 0 else "plain"

    def strategy(self, dtype=None, max_size: int = 6, reductions=_REDUCTIONS, max_abs: float = 40.0):
        """sigmoid_focal_loss: logits in [-max_abs, max_abs], binary or soft targets, gamma in
        {0, 0.5, 1, 2, 5}, alpha in {-1, 0.25, 0.5}."""
        from hypothesis import strategies as st

        from ._strategies import dtypes, floats

        dts = dtypes(dtype)
        reds = tuple(reductions)
        bad = [r for r in reds if r not in _REDUCTIONS]
        if bad:
            raise ValueError(f"unknown reduction(s) {bad}")

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            shape = (draw(st.integers(1, max_size)), draw(st.integers(1, 3)))
            x = floats(draw, shape, dt, -max_abs, max_abs)
            y = floats(draw, shape, dt, 0.0, 1.0)
            if draw(st.booleans()):
                y = cast(np.round(y.astype(np.float64)), dt)
            kw = {"reduction": draw(st.sampled_from(reds)), "gamma": draw(st.sampled_from([0, 0.5, 1, 2, 5])),
                  "alpha": draw(st.sampled_from([-1, 0.25, 0.5]))}
            return Call((x, y), kw)
        return strategy()

    # -- NumPy (the numpy backend) ----------------------------------------------------------------
    @staticmethod
    def _np(X, T, alpha, gamma):
        sp_neg, sp_pos = np.logaddexp(0.0, -X), np.logaddexp(0.0, X)
        ce = T * sp_neg + (1 - T) * sp_pos
        with np.errstate(all="ignore"):
            lt = np.where(T > 0, np.log(T), -np.inf)
            lomt = np.where(T < 1, np.log1p(-T), -np.inf)
            lq = np.logaddexp(lt - sp_pos, lomt - sp_neg)
            # log ce in log space: softplus(-1000) = e^-1000 underflows float64, its log does not
            # (ce q^(gamma-1) is e^-500 at x = 1000, t = 1, gamma = 1/2)
            lce = np.logaddexp(lt + _log_softplus(-X), lomt + _log_softplus(X))
        at = alpha * T + (1 - alpha) * (1 - T) if alpha >= 0 else None
        return sp_neg, sp_pos, ce, lq, lce, at

    def numpy_value(self, nx, inputs, targets, alpha=0.25, gamma=2, reduction="none"):
        X, T = nx.work(inputs), nx.work(targets)
        with np.errstate(all="ignore"):
            _, _, ce, lq, _, at = self._np(X, T, alpha, gamma)
            per = ce * np.exp(gamma * lq)
            if at is not None:
                per = at * per
            per = np.asarray(per, X.dtype)
        return reduce_elementwise(nx, per, reduction)

    def numpy_grads(self, nx, inputs, targets, grad_output, alpha=0.25, gamma=2, reduction="none"):
        X, T = nx.work(inputs), nx.work(targets)
        up = elementwise_upstream(nx, grad_output, reduction, X.size)
        with np.errstate(all="ignore"):
            sp_neg, sp_pos, ce, lq, lce, at = self._np(X, T, alpha, gamma)
            s, sb = np.exp(-sp_neg), np.exp(-sp_pos)  # sigmoid(x), sigmoid(-x)
            qg = np.exp(gamma * lq)
            k = gamma * np.exp(lce + (gamma - 1) * lq) if gamma > 0 else 0.0
            # p - t as (1 - t) p - t (1 - p): no cancellation when p rounds to 1; k p (1 - p) in log
            # space, so that neither factor under- or overflows alone (|x| ~ 1000)
            kpp = gamma * np.exp(lce + (gamma - 1) * lq - sp_neg - sp_pos) if gamma > 0 else 0.0
            gx = ((1 - T) * s - T * sb) * qg + kpp * (1 - 2 * T)
            gt = -X * qg + k * (sb - s)
            if at is not None:
                gx = at * gx
                gt = (2 * alpha - 1) * ce * qg + at * gt
        shape = np.shape(inputs)
        return {"input": np.broadcast_to(np.asarray(gx * up, np.float64), shape).copy(),
                "target": np.broadcast_to(np.asarray(gt * up, np.float64), shape).copy()}

    # -- brute force (reference/audit.py) ----------------------------------------------------------
    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): p = 1/(1 + e^-x), ce = t log(1 + e^-x) + (1-t) log(1 + e^x),
        q = t (1-p) + (1-t) p with 1 - p = 1/(1 + e^x), loss = alpha_t ce q^gamma (q^0 = 1); fsum and one
        division.  The analytic derivatives of the notes."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        y = np.asarray(args[1]).astype(np.float64)
        red = kwargs.get("reduction", "none")
        alpha, gamma = mpf(float(kwargs.get("alpha", 0.25))), mpf(float(kwargs.get("gamma", 2)))
        use_a = alpha >= 0
        out = []
        gs = None if wrt is None else brute_upstream(grad_output, red, x.shape)
        for j, (xv, tv) in enumerate(zip(x.reshape(-1).tolist(), y.reshape(-1).tolist())):
            x_, t_ = mpf(xv), mpf(tv)
            p, pb = 1 / (1 + mpmath.exp(-x_)), 1 / (1 + mpmath.exp(x_))
            # log1p: log(1 + e^-1000) at 1000 bits would round the tiny term away
            ce = t_ * mpmath.log1p(mpmath.exp(-x_)) + (1 - t_) * mpmath.log1p(mpmath.exp(x_))
            q = t_ * pb + (1 - t_) * p
            qg = mpf(1) if gamma == 0 else q ** gamma
            at = alpha * t_ + (1 - alpha) * (1 - t_) if use_a else mpf(1)
            if wrt is None:
                out.append(at * ce * qg)
                continue
            dq = mpf(0) if gamma == 0 else gamma * q ** (gamma - 1)
            if wrt == "input":  # p - t as (1 - t) p - t (1 - p): p rounds to 1 at x = 1000
                d = at * (((1 - t_) * p - t_ * pb) * qg + ce * dq * (1 - 2 * t_) * p * pb)
            else:
                d = at * (-x_ * qg + ce * dq * (pb - p))
                if use_a:
                    d = d + (2 * alpha - 1) * ce * qg
            out.append(d * gs[j])
        if wrt is None:
            return brute_reduce(out, red, x.shape)
        return np.array(out, dtype=object).reshape(x.shape)


LOSS = SigmoidFocalLoss()

GAMMAS = (0, 0.5, 1, 2, 5)
ALPHAS = (-1, 0.25, 0.5)


def _kw(i: int, gamma, alpha) -> dict:
    return {"reduction": reduction(i), "gamma": gamma, "alpha": alpha}


def _detection_targets(rng, shape, dtype, frac=0.1):
    y = (rng.random(shape) < frac).astype(np.float64)
    y.reshape(-1)[0] = 1.0
    return cast(y, dtype)


@LOSS.family("focal.detection")
def focal_detection(rng, dtype, size):
    """Detection-like: mostly-negative binary targets with a few positives, logits N(-2, 3^2),
    every gamma in {0, 0.5, 1, 2, 5} x alpha in {-1, 0.25, 0.5}, every reduction."""
    out, i = [], 0
    shape = (size.batch, 6)
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            x = cast(rng.normal(-2.0, 3.0, shape), dtype)
            out.append(Call((x, _detection_targets(rng, shape, dtype)), _kw(i, gamma, alpha),
                            meta={"note": f"gamma {gamma:g}, alpha {alpha:g}"}))
            i += 1
    return out


@LOSS.family("focal.confident")
def focal_confident(rng, dtype, size):
    """Confident logits +-{5, 17, 30, 50, 100, 1000} agreeing and disagreeing with binary targets
    (1 - p_t is sigmoid(-|x|): torch's 1 - p_t rounds to 0), every gamma and alpha."""
    mags = np.array([5.0, 17.0, 30.0, 50.0, 100.0, 1000.0])
    x = np.concatenate([mags, -mags, mags, -mags])
    y = np.concatenate([np.ones(6), np.zeros(6), np.zeros(6), np.ones(6)])
    out, i = [], 0
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            out.append(Call((cast(x, dtype), cast(y, dtype)), _kw(i, gamma, alpha),
                            meta={"note": f"|x| up to 1000, gamma {gamma:g}, alpha {alpha:g}"}))
            i += 1
    return out


@LOSS.family("focal.soft")
def focal_soft(rng, dtype, size):
    """Soft targets in (0, 1) (and near 0 and 1) against logits N(0, sigma^2), sigma in {1, 8},
    every gamma and alpha."""
    out, i = [], 0
    shape = (size.batch, 5)
    for gamma in GAMMAS:
        for alpha in ALPHAS:
            sigma = 1.0 if i % 2 else 8.0
            t = rng.uniform(0, 1, shape)
            t.reshape(-1)[:2] = [0.001, 0.999]
            out.append(Call((normal(rng, sigma, shape, dtype), cast(t, dtype)), _kw(i, gamma, alpha),
                            meta={"note": f"soft targets, sigma {sigma:g}"}))
            i += 1
    return out
