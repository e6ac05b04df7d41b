"""cross_entropy and nll_loss on row form (M, C): the formulas of DESIGN.md, written once.

Class-index targets:  a[n, c] = (1-eps) * w[t_n] * [c == t_n] * valid_n + (eps/C) * w_c * valid_n
and l_n = sum_c a[n, c] * (-logp[n, c]), which torch splits into the nll part and the smoothing
part; the mean divides each part by D = sum_n w[t_n] * valid_n separately, as torch does (so
D = 0 gives NaN, not inf).  Probability targets: a[n, c] = w_c * ((1-eps) * p[n, c] + eps/C),
mean over positions.  nll_loss is the class-index case with logp := input and eps = 0.

An exactly-zero coefficient contributes nothing (0 * log 0 = 0), so a masked (-inf) logit of a
class whose coefficient is zero is harmless, as DESIGN.md requires.
"""
from __future__ import annotations

import numpy as np

from .numerics import F64, shifted_lse


def _one(ns):
    return ns.const(1)


def _safe_mul(a, b):
    """a * b with 0 * inf := 0, for float64 scale arithmetic."""
    with np.errstate(invalid="ignore"):
        return np.where((a == 0) | (b == 0), 0.0, a * b)


class ClassKernel:
    """Kernels for cross_entropy / nll_loss (class-index or probability targets)."""

    def __init__(self, loss: str, opts: dict, nclass: int):
        self.loss = loss
        self.opts = opts
        self.c = nclass
        self.eps = float(opts.get("label_smoothing", 0.0))
        self.prob = bool(opts.get("prob", False))
        self.w = opts.get("weight")

    # -- shared pieces ------------------------------------------------------------------------
    def _logp(self, ns, x, xf=None):
        """(logp, y, lnS) along the class dim; nll_loss takes the input as logp."""
        if self.loss == "nll_loss":
            return x, None, None
        y, _, _, _, lns, _ = shifted_lse(ns, x, xf)
        return y - lns, y, lns

    def _weights(self, ns, m):
        if self.w is None:
            return None
        return ns.asarray(self.w)

    def coef_matrix(self, ns, rows):
        """a[n, c] as parts [(multiplier fn, (M, C) coefficient, (M, C) present mask)].

        ``present`` marks the terms torch's formula actually contains: the target class of a
        non-ignored position for the NLL part (a gather), every class of a non-ignored position
        for the smoothing part.  Absent terms contribute exactly 0 whatever their log-probability
        (a -inf non-target logit is harmless); present terms are multiplied out with IEEE rules,
        as torch does (weight 0 times an infinite -log p is NaN).
        """
        m = rows["x"].shape[0]
        w = self._weights(ns, m)
        if self.prob:
            p = ns.asarray(rows["p"])
            tp = p if self.eps == 0 else self.keep(ns) * p + self.spread(ns)
            a = tp if w is None else tp * w[None, :]
            return [(_one, a, np.ones(a.shape, dtype=bool))]
        t = rows["t"]
        valid = t != self.opts["ignore_index"]
        tc = np.where(valid, t, 0)
        onehot = np.zeros((m, self.c), dtype=bool)
        onehot[np.arange(m), tc] = True
        onehot &= valid[:, None]
        one, zero = ns.const(1), ns.const(0)
        if w is None:
            nll = np.where(onehot, one, zero)
        else:
            nll = np.where(onehot, np.broadcast_to(w[None, :], (m, self.c)), zero)
        parts = [(self.keep if self.eps > 0 else _one, nll, onehot)]
        if self.eps > 0:
            base = one if w is None else w[None, :]
            present = np.broadcast_to(valid[:, None], (m, self.c))
            sm = np.where(present, np.broadcast_to(base, (m, self.c)), zero)
            parts.append((self.spread, sm, present))
        return parts

    # multipliers are computed in the working precision (never pre-rounded to float64)
    def keep(self, ns):
        return ns.const(1) - ns.const(self.eps)

    def spread(self, ns):
        return ns.const(self.eps) / ns.const(self.c)

    def denominator(self, ns, rows):
        """Mean denominator and the sum of |terms| it adds (for the error bound)."""
        if self.prob:
            m = rows["x"].shape[0]
            return ns.const(m), 0.0  # an exact count: no rounding error to carry
        t = rows["t"]
        valid = t != self.opts["ignore_index"]
        if self.w is None:
            n = int(valid.sum())
            return ns.const(n), 0.0
        wt = ns.asarray(self.w)[np.where(valid, t, 0)]
        wt = np.where(valid, wt, ns.const(0))
        return ns.sum(wt), float(np.abs(F64.asarray(self.w)[np.where(valid, t, 0)] * valid).sum())

    # -- values ---------------------------------------------------------------------------------
    def parts(self, ns, rows):
        """[(multiplier fn, value rows (M,), magnitude rows (M,))]: l_n = sum_k mult_k(ns) * value_k."""
        x = ns.asarray(rows["x"])
        logp, _, _ = self._logp(ns, x, rows["x"])
        out = []
        for mult, a, present in self.coef_matrix(ns, rows):
            terms = np.where(present, a * -logp, ns.const(0))
            val = ns.sum(terms, axis=1)
            mag = ns.sum(np.abs(terms), axis=1)
            out.append((mult, val, mag))
        return out

    def scales(self, rows):
        """(cond, scale, nterms) per row, float64 (see reference/exact.py for their meaning)."""
        x = rows["x"]
        with np.errstate(all="ignore"):
            logp, y, lns = self._logp(F64, x)
            a = sum(mult(F64) * coef for mult, coef, _ in self.coef_matrix(F64, rows))
            absa = np.abs(a)
            mag = _safe_mul(absa, np.abs(logp)).sum(axis=1)
            if self.loss == "nll_loss":
                cond = mag
                scale = _safe_mul(absa, 1 + np.abs(x)).sum(axis=1)
                return cond, scale, np.ones(x.shape[0], np.int64)
            p = np.exp(logp)
            g = a.sum(axis=1, keepdims=True) * p - a  # d l_n / d x_j
            g = np.where(np.isnan(g) & (a == 0), 0.0, g)
            cond = mag + _safe_mul(np.abs(y), np.abs(g)).sum(axis=1) + np.abs(g).sum(axis=1)
            scale = _safe_mul(absa, 1 + np.abs(y) + lns).sum(axis=1)
        return cond, scale, np.full(x.shape[0], self.c, np.int64)

    # -- gradients ------------------------------------------------------------------------------
    def grad(self, ns, rows, gof):
        """VJP rows (M, C): gof_n * (A_n p_j - a_j), written without cancellation as

        (A - a_j) p_j - a_j (S - e_j) / S, where S - e_j is summed from the other classes (for the
        argmax it is ``rest``; elsewhere S - e_j >= S/2, so the subtraction is benign) and A - a_j
        is exact when a row has a single nonzero coefficient (class-index targets, no smoothing).
        Returns (g, magnitude of the terms) -- the magnitude bounds the evaluation error.
        """
        x = ns.asarray(rows["x"])
        a = None
        for mult, coef, _ in self.coef_matrix(ns, rows):
            term = coef if mult is _one else mult(ns) * coef
            a = term if a is None else a + term
        gof = ns.asarray(gof)[:, None]
        # an ignored position is absent from the formula: its gradient is exactly 0, even when the
        # mean's denominator is 0 and gof is inf (torch agrees); a present zero weight is not absent
        if self.prob:
            dead = np.zeros((a.shape[0], 1), dtype=bool)
        else:
            dead = (rows["t"] == self.opts["ignore_index"])[:, None]
        if self.loss == "nll_loss":
            onehot = np.zeros(a.shape, dtype=bool)
            onehot[np.arange(a.shape[0]), np.where(dead[:, 0], 0, rows["t"])] = True
            g = np.where(dead | ~onehot, ns.const(0), gof * -a)
            return g, np.abs(g)
        _, e, rest, s, _, k = shifted_lse(ns, x, rows["x"])
        big_a = ns.sum(a, axis=1, keepdims=True)
        p = e / s
        if self.eps == 0 and not self.prob:
            # one coefficient per row (the target's): A - a_j is A off the target and exactly 0 on
            # it, and only the target needs a_t (S - e_t) / S -- computed there alone
            rows_i = np.arange(a.shape[0])
            tc = np.where(dead[:, 0], 0, rows["t"])
            a_t = a[rows_i, tc]
            s_excl_t = np.where(k[rows_i, tc], rest[:, 0], s[:, 0] - e[rows_i, tc])
            t2_t = a_t * (s_excl_t / s[:, 0])
            t1 = (gof * big_a) * p
            t1[rows_i, tc] = np.where(a_t != 0, ns.const(0), t1[rows_i, tc])
            g = t1.copy()
            g[rows_i, tc] = t1[rows_i, tc] - gof[:, 0] * t2_t
            g = np.where(dead, ns.const(0), g)
            if ns.exact:  # magnitudes only feed float scales and the stage-0 bound
                return g, None
            mag = np.abs(t1)
            mag[rows_i, tc] = mag[rows_i, tc] + np.abs(gof[:, 0] * t2_t)
            return g, mag
        a_excl = big_a - a
        s_excl = np.where(k, np.broadcast_to(rest, a.shape), s - e)
        t1 = a_excl * p
        t2 = a * (s_excl / s)
        g = np.where(dead, ns.const(0), gof * (t1 - t2))
        if ns.exact:
            return g, None
        suma = ns.sum(np.abs(a), axis=1, keepdims=True)
        mag = np.abs(gof) * (suma * p + np.abs(t2))
        return g, mag

    def grad_scales(self, rows, gof):
        """cond: the term magnitudes plus p_j's sensitivity to relative perturbations of the
        shifted logits and to exp's own rounding (no '+1': a gradient that rounds p_t to 1 on a
        confident row is a cliff, judged on the absolute rung like the loss's own cliff)."""
        x = rows["x"]
        with np.errstate(all="ignore"):
            _, mag = self.grad(F64, rows, gof)
            mag = np.nan_to_num(mag, nan=0.0)
            if self.loss == "nll_loss":
                return mag, mag, np.ones(x.shape, np.int64)
            logp, y, _ = self._logp(F64, x)
            p = np.exp(logp)
            a = sum(mult(F64) * coef for mult, coef, _ in self.coef_matrix(F64, rows))
            big_a = np.abs(a.sum(axis=1, keepdims=True) * gof[:, None])
            ay = np.abs(y)
            sp = _safe_mul(ay, p).sum(axis=1, keepdims=True)
            sens_p = _safe_mul(p, _safe_mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p))
            cond = mag + _safe_mul(big_a, sens_p)
            # natural unit: the textbook terms A*p_j and a_j (softmax minus one-hot), so that a
            # p_t - 1 evaluated with p_t rounded to 1 is judged on the absolute rung, like the cliff
            scale = np.abs(gof)[:, None] * (_safe_mul(np.abs(a.sum(axis=1, keepdims=True)), p) + np.abs(a))
        return cond, np.nan_to_num(scale, nan=0.0), np.full(x.shape, self.c, np.int64)
