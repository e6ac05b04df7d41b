"""binary_cross_entropy and binary_cross_entropy_with_logits on row form (M, 1).

BCE:    l = -w [y max(log x, -100) + (1-y) max(log(1-x), -100)]      (torch's clamp, exact -100)
BCEWL:  l =  w [p y softplus(-x) + (1-y) softplus(x)]                 (= -w[p y log s(x) + (1-y) log(1-s(x))])
Means are plain element means.  Terms are multiplied out with IEEE rules, as the documented
formula and torch do: a zero coefficient against an infinite log (BCE-with-logits at x = +-inf,
a zero pos_weight or target) is NaN, not 0.
log(1-x) is evaluated as log1p(-x): the exact value, whatever torch does.
"""
from __future__ import annotations

import mpmath
import numpy as np

from ..lossdef import Arg, Call, Convention, LossDef, SweepDef, Variant
from ..numerics import F64
from ..sampling import cast, finfo, normal, ordinal_uniform
from ._elementwise import TermsKernel, brute_reduce, brute_upstream, fail, prepare_pair, safe_mul, span_bits
from ._families import reduction
from ._numpy import elementwise_upstream, reduce_elementwise, sigmoid
from ._policy import VARIANT_PREC, format_constant, reduce_mp

BCE, BCEL = "binary_cross_entropy", "binary_cross_entropy_with_logits"


class _BinaryKernel(TermsKernel):
    """Two terms, c1 * term1 + c2 * term2, with the coefficients of :meth:`coefs`."""

    def _w(self, ns, rows, name):
        return ns.asarray(rows[name][:, 0]) if name in rows else None

    def coefs(self, ns, rows):
        raise NotImplementedError

    def _coefs(self, ns, rows):
        """(x, y, c1, c2) with the element weight applied."""
        x = ns.asarray(rows["x"][:, 0])
        y = ns.asarray(rows["y"][:, 0])
        c1, c2 = self.coefs(ns, rows, y)
        w = self._w(ns, rows, "weight")
        if w is not None:
            c1, c2 = c1 * w, c2 * w
        return x, y, c1, c2

    def scales(self, rows):
        x = rows["x"][:, 0]
        with np.errstate(all="ignore"):
            terms = self.terms_of(F64, rows)
            g = np.nan_to_num(self.d_of(F64, rows, "input"), nan=0.0)
            cond = self.term_magnitude(rows) + safe_mul(np.abs(x), np.abs(g)) + np.abs(g)
            scale = sum(safe_mul(np.abs(c), 1 + np.abs(t)) for c, t in terms) + self.extra_scale(rows, terms)
        return cond, scale, np.full(x.shape, len(terms), np.int64)

    def extra_scale(self, rows, terms):
        return 0.0


class BceKernel(_BinaryKernel):
    def coefs(self, ns, rows, y):
        return -y, -(ns.const(1) - y)

    def terms(self, ns, rows):
        x, _, c1, c2 = self._coefs(ns, rows)
        lo = ns.const(-100)
        l1 = ns.log(x)
        l2 = ns.log1p(-x)
        return [(c1, np.where(l1 < lo, lo, l1)), (c2, np.where(l2 < lo, lo, l2))]

    def _logs(self, ns, rows):
        """The clamped logs (max(log x, -100), max(log(1-x), -100))."""
        x = ns.asarray(rows["x"][:, 0])
        lo = ns.const(-100)
        l1, l2 = ns.log(x), ns.log1p(-x)
        return np.where(l1 < lo, lo, l1), np.where(l2 < lo, lo, l2)

    def d(self, ns, rows, wrt):
        """d l / d x, a clamped log contributing nothing (it is constant there); d l / d y =
        w (log(1-x) - log x) with the clamped logs (l is linear in y)."""
        if wrt == "target":
            t1, t2 = self._logs(ns, rows)
            w = self._w(ns, rows, "weight")
            return t2 - t1 if w is None else w * (t2 - t1)
        x, _, c1, c2 = self._coefs(ns, rows)
        one, zero = ns.const(1), ns.const(0)
        lo = ns.const(-100)
        # unclamped where log x > -100 (log x == -100 exactly cannot happen for x > 0 rational)
        live1 = ns.log(x) > lo
        live2 = ns.log1p(-x) > lo
        g1 = np.where(live1, c1 / np.where(live1, x, one), zero)
        g2 = np.where(live2, -c2 / np.where(live2, one - x, one), zero)
        return g1 + g2

    def grad_scales(self, rows, gof, wrt):
        x = rows["x"][:, 0]
        with np.errstate(all="ignore"):
            g = self.grad_abs(rows, gof, wrt)
            if wrt == "target":
                # the two logs' own errors (they cancel near x = 1/2) and their sensitivity to a
                # relative perturbation of x: x/x = 1 and x/(1-x)
                t1, t2 = self._logs(F64, rows)
                w = np.abs(rows["weight"][:, 0]) if "weight" in rows else 1.0
                aw = np.abs(gof) * w
                cond = aw * (np.abs(t1) + np.abs(t2) + 1 + np.abs(x / (1 - x)))
                return cond[:, None], (aw * (1 + np.abs(t1) + np.abs(t2)))[:, None], np.full((x.shape[0], 1), 2)
            _, _, c1, c2 = self._coefs(F64, rows)
            coef = np.abs(gof) * (np.abs(c1) + np.abs(c2))  # the natural unit: |grad_output| * |w| * ...
            cond = 2 * g  # d(1/x)/dx * x = 1/x: same size as the term
            scale = g + coef
        return cond[:, None], scale[:, None], np.ones((x.shape[0], 1), np.int64)


def _tanh_gap_scalar(h):
    """h - tanh(h) > 0 for an exact mpf 0 < h < 1/2, within 2^-(P-1) relative at the current
    precision P: tanh is taken at P + 16 + 2 k bits (|h| >= 2^-k), within a few units of that
    (mpmath's mpf_tanh), i.e. within 2^-(P+14+2k) h absolutely, and h - tanh h >= h^3/4 >=
    2^-2k h / 4; the difference is exact, then rounded once to P bits."""
    if not h:
        return mpmath.mpf(0)
    prec = mpmath.mp.prec
    k = max(-(int(h._mpf_[2]) + int(h._mpf_[3])), 0) + 1  # h >= 2^(exp + bc - 1) = 2^-k
    with mpmath.workprec(prec + 16 + 2 * k):
        t = mpmath.tanh(h)
    return +mpmath.fsub(h, t, exact=True)  # the one rounding, at P


_tanh_gap = np.frompyfunc(_tanh_gap_scalar, 1, 1)


class BcelKernel(_BinaryKernel):
    def coefs(self, ns, rows, y):
        pw = self._w(ns, rows, "pos_weight")
        return (y if pw is None else pw * y), ns.const(1) - y

    def terms(self, ns, rows):
        x, _, c1, c2 = self._coefs(ns, rows)
        sp_pos, sp_neg = ns.softplus2(x)
        return [(c1, sp_neg), (c2, sp_pos)]

    def exact_prec(self, rows, wrt, grad_output):
        """grad:target without pos_weight is -w x g: products of the inputs, exact."""
        if wrt == "target" and "pos_weight" not in rows:
            return span_bits(rows["x"], rows.get("weight"), grad_output)
        return None

    def split_bits(self, rows, wrt, gof):
        """Bits at which :meth:`split`'s exact part and coefficient are exact (products of up to
        four inputs and grad_output, and 1 - y), or None: the value, grad:input, and grad:target
        with pos_weight (without it grad:target is exact: see exact_prec)."""
        if wrt not in (None, "input") and not (wrt == "target" and "pos_weight" in rows):
            return None
        return span_bits(rows["x"], rows["y"], rows.get("weight"), rows.get("pos_weight"), gof,
                         np.ones(1), factors=5)

    def split(self, ns, rows, wrt, gof):
        """(mask, exact, coef, tail): where ``mask`` (every input finite), the element is exactly
        exact + coef * tail(ns), with exact and coef sums and products of the inputs (exact in
        ``ns`` at split_bits) and tail(ns) > 0 one transcendental whose relative error in ``ns`` is
        at most 4 u, at the precision settle._split_stage picks for it.
        With c1 = w p y, c2 = w (1 - y) and L = log1p(e^-|x|): softplus(x) = max(x, 0) + L, so the
        value is c2 max(x, 0) + c1 max(-x, 0) + (c1 + c2) L; the gradient, with
        sigmoid(+-x) = 1 - sigmoid(-|x|) on the side of x's sign, is g (c2 or -c1) -+ g (c1 + c2)
        sigmoid(-|x|), and g (c2 - c1) / 2 at x = 0 -- for 0 < |x| < 1 instead, with h = |x|/2,
        g (c2 - c1) / 2 +- g (c1 + c2) / 2 h -+ g (c1 + c2) / 2 (h - tanh h); grad:target with pos_weight p is
        g w [p max(-x, 0) - max(x, 0)] + g w (p - 1) L.  A dyadic exact part on a rounding midpoint
        next to a tail below every working precision (e^-11000) is decided by the tail's sign."""
        x, _, c1, c2 = self._coefs(ns, rows)
        zero = ns.const(0)
        xf = rows["x"][:, 0]
        mask = np.all([np.isfinite(a[:, 0]) for a in rows.values()], axis=0)
        if gof is not None:
            mask &= np.isfinite(np.asarray(ns.to_float64(gof), np.float64))
        xs = np.where(mask, x, zero)
        pos, neg = xf > 0, xf < 0

        def e(ns2):
            return ns2.exp(-np.abs(xs))

        if wrt is None:
            exact = c2 * np.where(pos, xs, zero) - c1 * np.where(neg, xs, zero)
            return mask, exact, c1 + c2, lambda ns2: ns2.log1p(e(ns2))
        go = ns.asarray(gof)
        if wrt == "target":
            # g w [p softplus(-x) - softplus(x)] = g w [p max(-x, 0) - max(x, 0)] + g w (p - 1) L
            pw, w = self._w(ns, rows, "pos_weight"), self._w(ns, rows, "weight")
            gw = go if w is None else go * w
            exact = gw * (-pw * np.where(neg, xs, zero) - np.where(pos, xs, zero))
            return mask, exact, gw * (pw - ns.const(1)), lambda ns2: ns2.log1p(e(ns2))
        # |x| < 1: sigmoid(x) = (1 + tanh(x/2)) / 2 and tanh(h) = h - (h - tanh(h)), so with
        # h = |x|/2 the gradient is g (c2 - c1)/2 +- g (c1 + c2)/2 h -+ g (c1 + c2)/2 (h - tanh h):
        # no cancellation of (c1 + c2) sigmoid(-|x|) against c2 where the gradient is ~ x (c1 = c2:
        # target 1/2, or p y = 1 - y), and a dyadic c h on a midpoint (x = 4 * 2^-133, bfloat16)
        # is decided by the tail's sign.  Tiny bfloat16 logits left the mpmath stage some 10,000
        # elements per grid point before.
        small = mask & (np.abs(xf) < 1) & (pos | neg)
        half, two = (c2 - c1) / ns.const(2), ns.const(2)
        both = go * (c1 + c2)
        h = np.where(small, np.abs(xs) / two, zero)
        sgn_both = np.where(pos, both, -both) / two  # +- g (c1 + c2) / 2 by x's sign
        exact = np.where(small, go * half + sgn_both * h,
                         go * np.where(pos, c2, np.where(neg, -c1, half)))
        coef = np.where(small, -sgn_both, np.where(pos, -both, np.where(neg, both, zero)))
        ls, lb = np.flatnonzero(small), np.flatnonzero(~small)

        def tail(ns2):  # h - tanh(h) where 0 < |x| < 1, else sigmoid(-|x|) = e / (1 + e)
            out = np.empty(xs.shape, dtype=ns2.dtype)
            t = ns2.exp(-np.abs(xs[lb]))
            out[lb] = t / (ns2.const(1) + t)
            out[ls] = _tanh_gap(h[ls])
            return out

        return mask, exact, coef, tail

    def extra_scale(self, rows, terms):
        # the logit is the natural unit too: (1-y)*x - lw*log_sigmoid(x), torch's documented-stable
        # form, cancels two terms of size |x| for x < 0
        return sum(np.abs(c) for c, _ in terms) * np.abs(rows["x"][:, 0])

    def d(self, ns, rows, wrt):
        if wrt == "target":
            # w [p softplus(-x) - softplus(x)]; without pos_weight that is exactly -w x
            x = ns.asarray(rows["x"][:, 0])
            pw, w = self._w(ns, rows, "pos_weight"), self._w(ns, rows, "weight")
            dy = -x if pw is None else pw * ns.softplus(-x) - ns.softplus(x)
            return dy if w is None else w * dy
        (c1, sp_neg), (c2, sp_pos) = self.terms_of(ns, rows)  # the float64 ones computed once
        s_pos = ns.exp(-sp_neg)  # sigmoid(x)
        s_neg = ns.exp(-sp_pos)  # sigmoid(-x)
        return c2 * s_pos - c1 * s_neg

    def grad_scales(self, rows, gof, wrt):
        x = rows["x"][:, 0]
        with np.errstate(all="ignore"):
            g = self.grad_abs(rows, gof, wrt)
            if wrt == "target":
                aw = np.abs(gof) * (np.abs(rows["weight"][:, 0]) if "weight" in rows else 1.0)
                if "pos_weight" not in rows:  # -w x: one product
                    cond = 2 * aw * np.abs(x)
                    return cond[:, None], (aw * (1 + np.abs(x)))[:, None], np.ones((x.shape[0], 1), np.int64)
                ap = np.abs(rows["pos_weight"][:, 0])
                sp_neg, sp_pos = np.logaddexp(0, -x), np.logaddexp(0, x)
                sig = 1 / (1 + np.exp(-x))
                # both terms' magnitudes, and their sensitivity to a relative perturbation of x
                cond = aw * (ap * sp_neg + sp_pos + np.abs(x) * (ap * (1 - sig) + sig))
                return cond[:, None], (aw * (1 + ap + np.abs(x)))[:, None], np.full((x.shape[0], 1), 2)
            _, _, c1, c2 = self._coefs(F64, rows)
            coef = np.abs(gof) * (np.abs(c1) + np.abs(c2))
            s = 1 / (1 + np.exp(-np.abs(x)))
            cond = g + safe_mul(coef, (np.abs(x) + 1) * s * (1 - s)) * 2
            scale = g + coef
        return cond[:, None], scale[:, None], np.ones((x.shape[0], 1), np.int64)


_INPUT = Arg("input", "input", required=True, differentiable=True)
_TARGET = Arg("target", "ftarget", required=True, differentiable=True)
_WEIGHT = Arg("weight", "weight", None)
_REDUCTION = Arg("reduction", "reduction", "mean")


# ------------------------------------------------------------------------------ verdict policy data

def _broadcast(kwargs, name: str, shape) -> np.ndarray:
    v = kwargs.get(name)
    return np.ones(shape) if v is None else np.broadcast_to(np.asarray(v).astype(np.float64), shape)


_KERAS_EPS = 1e-7


def _bce_keras_clip(args, kwargs, check, dtype, grad_output=None):
    """Keras' binary_crossentropy on probabilities: x clipped to [1e-7, 1 - 1e-7] before the logs
    (torch clamps each log at -100 instead), with the bounds as ``dtype`` holds them.  Where that
    is no clip (1 - 1e-7 rounds to 1 in float16: log 0) the variant has no answer (NaN): its
    promise, a finite loss, does not hold there, so an inf or NaN stays "inf/nan where finite".
    Its gradients: -w [y/c - (1-y)/(1-c)] inside the clip and 0 outside it (the clip is constant
    there), -w [log c - log(1-c)] for the target; times grad_output (over N for the mean)."""
    if check not in ("value", "grad:input", "grad:target"):
        return None
    x = np.asarray(args[0]).astype(np.float64)
    y = np.asarray(args[1]).astype(np.float64)
    w = _broadcast(kwargs, "weight", x.shape)
    reduction = kwargs.get("reduction", "mean")
    if check != "value" and grad_output is None:
        return None
    vals, ws = [], []
    with mpmath.workprec(VARIANT_PREC):
        lo, hi = format_constant(_KERAS_EPS, dtype), format_constant(1 - _KERAS_EPS, dtype)
        for xv, yv, wv in zip(x.reshape(-1), y.reshape(-1), w.reshape(-1)):
            xm, ym, wm = mpmath.mpf(float(xv)), mpmath.mpf(float(yv)), mpmath.mpf(float(wv))
            c = min(max(xm, lo), hi)
            if check == "value":
                vals.append(-wm * (ym * mpmath.log(c) + (1 - ym) * mpmath.log(1 - c)))
            elif check == "grad:input":
                vals.append(-wm * (ym / c - (1 - ym) / (1 - c)) if lo <= xm <= hi else mpmath.mpf(0))
            else:
                vals.append(-wm * (mpmath.log(c) - mpmath.log(1 - c)))
            ws.append(mpmath.mpf(1))
        finite = [bool(mpmath.isfinite(v)) for v in vals]
        if check != "value":
            g = np.broadcast_to(np.asarray(grad_output).astype(np.float64), x.shape if reduction == "none" else ())
            scale = [mpmath.mpf(float(gv)) for gv in np.broadcast_to(g, x.shape).reshape(-1)]
            n = mpmath.mpf(x.size) if reduction == "mean" else mpmath.mpf(1)
            return np.array([float(v * s / n) if f else np.nan for v, s, f in zip(vals, scale, finite)]).reshape(x.shape)
        if reduction == "none":
            return np.array([float(v) if f else np.nan for v, f in zip(vals, finite)]).reshape(x.shape)
        return reduce_mp(vals, ws, reduction, x.shape) if all(finite) else np.asarray(np.nan)


BCE_VARIANTS = (
    Variant("probability clip 1e-7 (Keras)", "-w[y log c + (1-y) log(1-c)], c = clip(x, 1e-7, 1 - 1e-7)",
            "-w[y max(log x, -100) + (1-y) max(log(1-x), -100)]", _bce_keras_clip),
)


def _bcel_conventions(args, kwargs, check):
    """x = +inf with y = 1, or x = -inf with p y = 0: torch (and the oracle, which follows the
    formula) multiply an exactly-zero coefficient by an infinite softplus, 0 * inf = NaN; the term
    is identically 0 in x, so its limit (what a library that drops zero-coefficient terms returns)
    is 0.  Value only; a reduced value's other answer sums the others exactly."""
    if check != "value":
        return None
    x = np.asarray(args[0]).astype(np.float64)
    y = np.asarray(args[1]).astype(np.float64)
    p = _broadcast(kwargs, "pos_weight", x.shape)
    w = _broadcast(kwargs, "weight", x.shape)
    mask = ((x == np.inf) & (y == 1)) | ((x == -np.inf) & (p * y == 0))
    mask &= np.isfinite(w)
    if not mask.any():
        return None
    reduction = kwargs.get("reduction", "mean")
    vals, ws = [], []
    with mpmath.workprec(VARIANT_PREC):
        for xv, yv, pv, wv, m in zip(x.reshape(-1), y.reshape(-1), p.reshape(-1), w.reshape(-1), mask.reshape(-1)):
            if m:
                vals.append(mpmath.mpf(0))
            else:
                xm, ym = mpmath.mpf(float(xv)), mpmath.mpf(float(yv))
                sp_neg = mpmath.log1p(mpmath.exp(-xm)) if xm != mpmath.inf else mpmath.mpf(0)
                sp_pos = mpmath.log1p(mpmath.exp(xm)) if xm != -mpmath.inf else mpmath.mpf(0)
                vals.append(mpmath.mpf(float(wv)) * (mpmath.mpf(float(pv)) * ym * sp_neg + (1 - ym) * sp_pos))
            ws.append(mpmath.mpf(1))
        values = reduce_mp(vals, ws, reduction, x.shape)
    if reduction == "none":
        return Convention(mask, np.where(mask, values, np.nan), "0 * inf at a zero-coefficient infinite logit: "
                          "torch's NaN, or the limit 0")
    return Convention(np.asarray(True), values, "0 * inf at a zero-coefficient infinite logit: torch's NaN, "
                      "or the limit 0")


class BinaryCrossEntropy(LossDef):
    name = BCE
    positional = (_INPUT, _TARGET)
    options = (_WEIGHT, _REDUCTION)
    option_families = ("plain", "weight")
    variants = BCE_VARIANTS
    summary = "-w[y log x + (1-y) log(1-x)] with each log clamped at -100"
    # probabilities only (torch refuses the rest); targets at both ends and around the middle
    sweep = SweepDef(grid=(("target", (0, 1, 0.5, 0.25, 0.75, "min_subnormal", "min_normal", "1-ulp")),), domain=(0.0, 1.0))
    notes = """\
- Each log is clamped at -100 exactly (torch's clamp): inputs 0 and 1 give finite losses, and the
  gradient of a clamped term is 0 (it is constant there).
- Inputs and targets must lie in [0, 1] (NaN is refused), as torch checks.
- `weight` broadcasts to the input's shape; means are plain element means.
- torch's backward divides by max(x(1-x), 1e-12), not the derivative of its own forward near 0 and 1
  (a documented known failure on bce.edges).
- `grad:target` is w (max(log(1-x), -100) - max(log x, -100)): the loss is linear in y, so the
  clamped logs' difference is exact; torch uses -logit(x), unclamped (bce.edges known failure).
"""

    def prepare(self, args, kwargs):
        problem = prepare_pair(self, args, kwargs)
        for name, key in (("input", "x"), ("target", "y")):
            a = problem.rows[key]
            bad = ~((a >= 0) & (a <= 1))
            if bad.any():
                fail(name, f"binary_cross_entropy needs values in [0, 1], got {float(a[bad].reshape(-1)[0])!r}")
        return problem

    def kernel(self, problem):
        return BceKernel(problem)

    def strategy(self, dtype=None, max_size: int = 6, reductions=("none", "sum", "mean"), weights: bool = True):
        """binary_cross_entropy: probabilities and targets in [0, 1] (0 and 1 included)."""
        from ._strategies import pair_strategy

        return pair_strategy(dtype, max_size, reductions, weights, False, (0.0, 1.0), (0.0, 1.0))

    def numpy_value(self, nx, input, target, weight=None, reduction="mean"):
        X, Y = nx.work(input), nx.work(target)
        log_x, log_1mx = nx.bce_logs(X)
        per = -(Y * log_x + (1 - Y) * log_1mx)
        if weight is not None:
            per = per * nx.work(weight)
        return reduce_elementwise(nx, per, reduction)

    def numpy_grads(self, nx, input, target, grad_output, weight=None, reduction="mean"):
        """Derivative of the clamped loss: a clamped log (log x < -100) contributes nothing."""
        X, Y = nx.work(input), nx.work(target)
        live_x = np.log(X) > -100.0
        live_1mx = np.log1p(-X) > -100.0
        both = (X - Y) / (X * (1 - X))  # = (1-y)/(1-x) - y/x without the cancellation
        split = np.where(live_1mx, (1 - Y) / (1 - X), 0.0) - np.where(live_x, Y / X, 0.0)
        g = np.where(live_x & live_1mx, both, split)
        log_x, log_1mx = nx.bce_logs(X)
        gy = log_1mx - log_x  # l is linear in y: the clamped logs' difference, exactly
        if weight is not None:
            g, gy = g * nx.work(weight), gy * nx.work(weight)
        up = elementwise_upstream(nx, grad_output, reduction, X.size)
        return {"input": g * up, "target": gy * up}


    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): L1 = max(log x, -100), L0 = max(log(1 - x), -100) with
        1 - x formed exactly; l = -w (y L1 + (1-y) L0), fsum and division by the count.  Gradients:
        w ((1-y)/(1-x) - y/x) g, a clamped log's term 0 (it is constant there); w (L0 - L1) g."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        y = np.asarray(args[1]).astype(np.float64)
        w = kwargs.get("weight")
        w = np.ones(x.shape) if w is None else np.broadcast_to(np.asarray(w).astype(np.float64), x.shape)
        red = kwargs.get("reduction", "mean")
        lo = mpf(-100)
        elems = []
        for xv, yv, wv in zip(x.reshape(-1), y.reshape(-1), w.reshape(-1)):
            xm, ym, wm = mpf(float(xv)), mpf(float(yv)), mpf(float(wv))
            one_minus_x = mpmath.fsub(1, xm, exact=True)
            log_x, log_1mx = mpmath.log(xm), mpmath.log(one_minus_x)  # log 0 = -inf
            elems.append((xm, ym, wm, one_minus_x, log_x, log_1mx, max(log_x, lo), max(log_1mx, lo)))
        if wrt is None:
            vals = [-(w_ * (y_ * l1 + (1 - y_) * l0)) for _, y_, w_, _, _, _, l1, l0 in elems]
            return brute_reduce(vals, red, x.shape)
        gs = brute_upstream(grad_output, red, x.shape)
        out = []
        for (x_, y_, w_, omx, log_x, log_1mx, l1, l0), g in zip(elems, gs):
            if wrt == "target":
                out.append(w_ * (l0 - l1) * g)
                continue
            d1 = y_ / x_ if log_x > lo else mpf(0)
            d0 = (1 - y_) / omx if log_1mx > lo else mpf(0)
            out.append(w_ * (d0 - d1) * g)
        return np.array(out, dtype=object).reshape(x.shape)


class BinaryCrossEntropyWithLogits(LossDef):
    name = BCEL
    positional = (_INPUT, _TARGET)
    options = (_WEIGHT, _REDUCTION, Arg("pos_weight", "weight", None))
    option_families = ("plain", "weight", "pos_weight", "pos_weight+weight")
    summary = "-w[p y log sigmoid(x) + (1-y) log(1-sigmoid(x))], pos_weight broadcast on the last dim"
    sweep = SweepDef(grid=(("target", (0, 1, 0.5, 0.25, 0.75, "min_subnormal", "min_normal", "1-ulp")), ("pos_weight", (None, 3.0))))
    notes = """\
- Evaluated as w[p y softplus(-x) + (1-y) softplus(x)]; x = ±inf gives inf where one term is
  infinite and NaN where an exactly-zero coefficient meets an infinite log (0 · inf).
- `pos_weight` broadcasts along the last (class) dim, `weight` to the input's shape.
- The natural unit includes |x| times the coefficients: torch's documented-stable form
  (1-y)x - p y log sigmoid(x) cancels two terms of size |x| for x < 0.
- `grad:target` is w [p softplus(-x) - softplus(x)], exactly -w x without pos_weight.
"""

    def prepare(self, args, kwargs):
        return prepare_pair(self, args, kwargs)

    def conventions(self, args, kwargs, check):
        return _bcel_conventions(args, kwargs, check)

    def kernel(self, problem):
        return BcelKernel(problem)

    def strategy(self, dtype=None, max_size: int = 6, reductions=("none", "sum", "mean"), weights: bool = True,
                 pos_weight: bool = True, max_abs: float = 100.0):
        """binary_cross_entropy_with_logits: logits in [-max_abs, max_abs], targets in [0, 1]."""
        from ._strategies import pair_strategy

        return pair_strategy(dtype, max_size, reductions, weights, pos_weight, (-max_abs, max_abs), (0.0, 1.0))

    def numpy_value(self, nx, input, target, weight=None, reduction="mean", pos_weight=None):
        X, Y = nx.work(input), nx.work(target)
        neg_log_sig, neg_log_1msig = nx.neg_log_sigmoids(X)
        pos_coef = Y if pos_weight is None else nx.work(pos_weight) * Y  # pos_weight: per class, last dim
        per = nx.times(pos_coef, neg_log_sig) + nx.times(1 - Y, neg_log_1msig)
        if weight is not None:
            per = per * nx.work(weight)
        return reduce_elementwise(nx, per, reduction)

    def numpy_grads(self, nx, input, target, grad_output, weight=None, reduction="mean", pos_weight=None):
        X, Y = nx.work(input), nx.work(target)
        pos = Y * sigmoid(-X)
        if pos_weight is not None:
            pos = nx.work(pos_weight) * pos
        g = (1 - Y) * sigmoid(X) - pos
        gy = -X if pos_weight is None else nx.work(pos_weight) * np.logaddexp(0.0, -X) - np.logaddexp(0.0, X)
        if weight is not None:
            g, gy = g * nx.work(weight), gy * nx.work(weight)
        up = elementwise_upstream(nx, grad_output, reduction, X.size)
        return {"input": g * up, "target": gy * up}


    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): softplus(z) = log(1 + exp(z)) (inf at +inf, 0 at -inf),
        l = w (p y softplus(-x) + (1-y) softplus(x)) with IEEE products (0 * inf = NaN), fsum and
        division by the count.  Gradients: w ((1-y) sigmoid(x) - p y sigmoid(-x)) g with
        sigmoid(z) = 1 / (1 + exp(-z)); w (p softplus(-x) - softplus(x)) g, which is -w x g without
        pos_weight."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        y = np.asarray(args[1]).astype(np.float64)
        w, pw = kwargs.get("weight"), kwargs.get("pos_weight")
        w = np.ones(x.shape) if w is None else np.broadcast_to(np.asarray(w).astype(np.float64), x.shape)
        no_pw = pw is None
        pw = np.ones(x.shape) if pw is None else np.broadcast_to(np.asarray(pw).astype(np.float64), x.shape)
        red = kwargs.get("reduction", "mean")

        def softplus(z):
            return mpmath.log(1 + mpmath.exp(z))

        def sigmoid(z):
            return 1 / (1 + mpmath.exp(-z))

        elems = [tuple(mpf(float(v)) for v in e)
                 for e in zip(x.reshape(-1), y.reshape(-1), w.reshape(-1), pw.reshape(-1))]
        if wrt is None:
            vals = [w_ * (p_ * y_ * softplus(-x_) + (1 - y_) * softplus(x_)) for x_, y_, w_, p_ in elems]
            return brute_reduce(vals, red, x.shape)
        gs = brute_upstream(grad_output, red, x.shape)
        out = []
        for (x_, y_, w_, p_), g in zip(elems, gs):
            if wrt == "target":  # softplus(-x) - softplus(x) = -x exactly: the dyadic form without pos_weight
                dy = -x_ if no_pw else p_ * softplus(-x_) - softplus(x_)
                out.append(w_ * dy * g)
            else:
                out.append(w_ * ((1 - y_) * sigmoid(x_) - p_ * y_ * sigmoid(-x_)) * g)
        return np.array(out, dtype=object).reshape(x.shape)


BCE_LOSS, BCEL_LOSS = BinaryCrossEntropy(), BinaryCrossEntropyWithLogits()
LOSSES = (BCE_LOSS, BCEL_LOSS)


# ------------------------------------------------------------------------------ case families

def _targets(rng, shape, dtype, kind: str) -> np.ndarray:
    if kind == "binary":
        return cast(rng.integers(0, 2, size=shape), dtype)
    return cast(rng.uniform(0, 1, size=shape), dtype)


def _broadcast_weights(rng, shape, dtype):
    """(per-class (C,), per-row (N, 1), full shape, full with zeros)."""
    N, C = shape
    zero = rng.uniform(0.25, 3.0, size=shape)
    zero[rng.random(shape) < 0.4] = 0.0
    return [("per-class weight (C,)", cast(rng.uniform(0.25, 3.0, C), dtype)),
            ("per-row weight (N, 1)", cast(rng.uniform(0.25, 3.0, (N, 1)), dtype)),
            ("full-shape weight", cast(rng.uniform(0.25, 3.0, shape), dtype)),
            ("weights with zeros", cast(zero, dtype))]


# ---------------------------------------------------------------- binary_cross_entropy

@BCE_LOSS.family("bce.random")
def bce_random(rng, dtype, size):
    """Probabilities uniform and ordinal-uniform in (0, 1); binary and fractional targets."""
    out, i = [], 0
    shape = (size.batch, 5)
    for style in ("uniform", "ordinal"):
        for kind in ("binary", "fractional"):
            for _ in range(size.repeats):
                if style == "uniform":
                    x = cast(rng.uniform(0.001, 0.999, size=shape), dtype)
                else:
                    # every binade of [2^-14, 1 - 2^-14]: realistic extremes; the region where
                    # x(1-x) is tiny (where torch's backward clamps) is bce.edges' job
                    x = ordinal_uniform(rng, 2.0 ** -14, 1.0 - 2.0 ** -14, shape, dtype)
                out.append(Call((x, _targets(rng, shape, dtype, kind)), {"reduction": reduction(i)}, meta={"note": f"{style} inputs, {kind} targets"}))
                i += 1
    return out


@BCE_LOSS.family("bce.edges")
def bce_edges(rng, dtype, size):
    """Inputs exactly 0 and 1 (log clamped at -100), subnormal, tiny (1e-30, 1e-300), 1 - ulp."""
    fi = finfo(dtype)
    tiny = [float(fi.smallest_subnormal), float(fi.smallest_normal), float(fi.eps)]
    tiny += [v for v in (1e-30, 1e-300) if float(cast(v, dtype)) > 0]
    one_minus = float(1.0 - fi.epsneg)
    xs = cast(tiny + [one_minus, 0.5], dtype)
    ys = cast([0.0, 1.0, 0.25], dtype)
    x = np.repeat(xs, len(ys)).astype(xs.dtype)
    y = np.tile(ys, len(xs)).astype(ys.dtype)
    out = []
    for r in range(3):
        out.append(Call((x, y), {"reduction": reduction(r)},
                             meta={"note": "subnormal, tiny, 1 - ulp inputs x targets {0, 1, 0.25}"}))
    ends = cast([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype)
    yend = cast([0.0, 1.0, 0.5, 0.0, 1.0, 0.5], dtype)
    for r in range(3):
        # grad off: at exactly 0 and 1 the clamped log has no defined derivative (torch clamps its
        # denominator at 1e-12), so there is nothing exact to compare a gradient against.
        out.append(Call((ends, yend), {"reduction": reduction(r)}, grad=False,
                             meta={"note": "inputs exactly 0 and 1 (log clamped at -100); gradient not checked"}))
    return out


@BCE_LOSS.family("bce.weight")
def bce_weight(rng, dtype, size):
    """Element weights broadcast per class, per row, full shape, and with zeros."""
    out = []
    shape = (size.batch, 4)
    for i, (note, w) in enumerate(_broadcast_weights(rng, shape, dtype)):
        x = cast(rng.uniform(0.01, 0.99, size=shape), dtype)
        out.append(Call((x, _targets(rng, shape, dtype, "fractional")),
                             {"weight": w, "reduction": reduction(i)}, meta={"note": note}))
    return out


# ---------------------------------------------------------------- binary_cross_entropy_with_logits

@BCEL_LOSS.family("bcel.random")
def bcel_random(rng, dtype, size):
    """Logits N(0, sigma^2), sigma in {1, 4, 16}; binary and fractional targets."""
    out, i = [], 0
    shape = (size.batch, 5)
    for sigma in (1.0, 4.0, 16.0):
        for kind in ("binary", "fractional"):
            out.append(Call((normal(rng, sigma, shape, dtype), _targets(rng, shape, dtype, kind)),
                                 {"reduction": reduction(i)},
                                 meta={"note": f"N(0, {sigma:g}^2) logits, {kind} targets"}))
            i += 1
    return out


@BCEL_LOSS.family("bcel.edges")
def bcel_edges(rng, dtype, size):
    """One logit value x at +-{10, 17, 50, 88, 100, 1e4} against targets {0, 0.25, 0.5, 1}."""
    out, i = [], 0
    y = cast([0.0, 0.25, 0.5, 1.0], dtype)
    for mag in (10.0, 17.0, 50.0, 88.0, 100.0, 1e4):
        for sign in (1.0, -1.0):
            x = cast(np.full(4, sign * mag), dtype)
            v = float(x[0])
            out.append(Call((x, y), {"reduction": reduction(i)},
                                 meta={"note": f"x = {v:g}",
                                       **({"drive": {"name": "x", "value": v}} if np.isfinite(v) else {})}))
            i += 1
    return out


@BCEL_LOSS.family("bcel.infinite")
def bcel_infinite(rng, dtype, size):
    """x = +-inf against targets {0, 0.25, 0.5, 1}, reduction='none' so each element is judged.

    The documented formula gives inf where one term is infinite and NaN where an exactly-zero
    coefficient meets an infinite log (0 * inf)."""
    y = cast([0.0, 0.25, 0.5, 1.0], dtype)
    return [Call((cast(np.full(4, v), dtype), y), {"reduction": "none"},
                      meta={"note": f"x = {v:g}"}) for v in (np.inf, -np.inf)]


def _pos_weights(rng, C, dtype):
    return [("per-class pos_weight (C,)", cast(rng.uniform(0.25, 4.0, C), dtype)),
            ("broadcast pos_weight (1,)", cast([rng.uniform(0.25, 4.0)], dtype)),
            ("zero pos_weight", cast(np.zeros(C), dtype))]


@BCEL_LOSS.family("bcel.pos_weight")
def bcel_pos_weight(rng, dtype, size):
    """pos_weight per class, broadcast (1,) and zero, on moderate and large logits."""
    out, i = [], 0
    shape = (size.batch, 4)
    for note, pw in _pos_weights(rng, shape[1], dtype):
        for sigma in (2.0, 30.0):
            x = normal(rng, sigma, shape, dtype)
            out.append(Call((x, _targets(rng, shape, dtype, "fractional")),
                                 {"pos_weight": pw, "reduction": reduction(i)},
                                 meta={"note": f"{note}, sigma {sigma:g}"}))
            i += 1
    return out


@BCEL_LOSS.family("bcel.weight")
def bcel_weight(rng, dtype, size):
    """Element weights broadcast per class, per row, full shape, and with zeros."""
    out = []
    shape = (size.batch, 4)
    for i, (note, w) in enumerate(_broadcast_weights(rng, shape, dtype)):
        out.append(Call((normal(rng, 4.0, shape, dtype), _targets(rng, shape, dtype, "binary")),
                             {"weight": w, "reduction": reduction(i)}, meta={"note": note}))
    return out


@BCEL_LOSS.family("bcel.pos_weight_weight")
def bcel_both(rng, dtype, size):
    """pos_weight together with weight."""
    out = []
    shape = (size.batch, 4)
    for i, ((pn, pw), (wn, w)) in enumerate(zip(_pos_weights(rng, shape[1], dtype),
                                                _broadcast_weights(rng, shape, dtype))):
        out.append(Call((normal(rng, 4.0, shape, dtype), _targets(rng, shape, dtype, "fractional")),
                             {"weight": w, "pos_weight": pw, "reduction": reduction(i)}, meta={"note": f"{pn} + {wn}"}))
    return out
