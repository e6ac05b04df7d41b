"""cross_entropy and nll_loss: class-dim losses on row form (M, C), written once.

Class-index targets:  a[n, c] = (1-eps) * w[t_n] * [c == t_n] * valid_n + (eps/C) * w_c * valid_n
and l_n = sum_c a[n, c] * (-logp[n, c]), which torch splits into the nll part and the smoothing
part; the mean divides each part by D = sum_n w[t_n] * valid_n separately, as torch does (so
D = 0 gives NaN, not inf, unless mixed-sign weights make a nonzero part over D = 0: +-inf); the
gradient of a mean over D = 0 is NaN (torch agrees), an ignored position's still exactly 0.  Probability targets: a[n, c] = w_c * ((1-eps) * p[n, c] + eps/C),
mean over positions.  nll_loss is the class-index case with logp := input and eps = 0.

A term the formula does not contain (a non-target class of the NLL part, an ignored position)
contributes exactly 0, so a masked (-inf) logit there is harmless; a present term with a zero
coefficient is multiplied out with IEEE rules (zero weight times -inf is NaN), as torch does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np

from ..formats import dtype_name
from ..lossdef import (
    Arg,
    Call,
    Convention,
    LossDef,
    Problem,
    SweepDef,
    Variant,
    f64,
    fail,
    float_array,
    int_option,
    is_float_array,
)
from ..numerics import F64, MP, ieee_div, shifted_lse
from ..sampling import (
    cast,
    class_targets,
    exp_edge,
    finfo,
    log_uniform,
    normal,
    ordinal_uniform,
    precision,
    probabilities,
    sample,
)
from ._elementwise import one as _one
from ._elementwise import safe_mul, span_bits, tied_rows
from ._families import absorption_rows, fits, lead, reduction
from ._numpy import reduce_elementwise
from ._policy import (
    PADDLE_SHIFT_CLIP,
    VARIANT_PREC,
    clip_bites,
    format_constant,
    mp_clipped_log_softmax,
    mp_lse_minus,
    reduce_mp,
    row_magnitude,
)
from ._softcap import FAMILIES as LLM_FAMILIES
from ._softcap import OPTIONS as LLM_OPTIONS
from ._softcap import capped, llm_options, np_capped, np_sech2, sech2

CE, NLL = "cross_entropy", "nll_loss"


class ClassKernel:
    """Kernels for cross_entropy / nll_loss (class-index or probability targets)."""

    def __init__(self, problem, logits: bool):
        opts = problem.options
        self.logits = logits  # cross_entropy: log_softmax of the input; nll_loss: the input is logp
        self.opts = opts
        self.c = problem.nclass
        self.eps = float(opts.get("label_smoothing", 0.0))
        self.prob = bool(opts.get("prob", False))
        self.w = opts.get("weight")

    # -- shared pieces ------------------------------------------------------------------------
    def _logp(self, ns, x, xf=None):
        """(logp, y, lnS) along the class dim; nll_loss takes the input as logp."""
        if not self.logits:
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
        return self.parts_logits(ns, rows, ns.asarray(rows["x"]), rows["x"])[0]

    def parts_logits(self, ns, rows, x, xf):
        """(:meth:`parts` on the logits ``x`` the softmax sees, ``xf`` their float64 copy; the
        row-wise log S and argmax mask of the log-sum-exp, None for nll_loss)."""
        y = lns = logp = k = None
        if self.logits:
            y, _, _, _, lns, k = shifted_lse(ns, x, xf)
        out = []
        for mult, a, present in self.coef_matrix(ns, rows):
            if present.ndim == 2 and not np.any(np.count_nonzero(present, axis=1) > 1):
                # a gather (the NLL part): one term per row, formed there alone (+0 where absent;
                # adding +0 gives the sum's zero sign, as the full row sum would)
                r, c = np.nonzero(present)
                lp = y[r, c] - lns[r, 0] if self.logits else x[r, c]
                val = ns.asarray(np.zeros(present.shape[0]))
                val[r] = a[r, c] * -lp + ns.const(0)
                out.append((mult, val, np.abs(val)))
                continue
            if logp is None:
                logp = y - lns if self.logits else x
            terms = np.where(present, a * -logp, ns.const(0))
            val = ns.sum(terms, axis=1)
            mag = ns.sum(np.abs(terms), axis=1)
            out.append((mult, val, mag))
        return out, lns, k

    def scales(self, rows):
        """(cond, scale, nterms) per row, float64 (see reference/exact.py for their meaning)."""
        x = rows["x"]
        with np.errstate(all="ignore"):
            logp, y, lns = self._logp(F64, x)
            a = sum(mult(F64) * coef for mult, coef, _ in self.coef_matrix(F64, rows))
            absa = np.abs(a)
            mag = safe_mul(absa, np.abs(logp)).sum(axis=1)
            if not self.logits:
                cond = mag
                scale = safe_mul(absa, 1 + np.abs(x)).sum(axis=1)
                return cond, scale, np.ones(x.shape[0], np.int64)
            p = np.exp(logp)
            g = a.sum(axis=1, keepdims=True) * p - a  # d l_n / d x_j
            g = np.where(np.isnan(g) & (a == 0), 0.0, g)
            cond = mag + safe_mul(np.abs(y), np.abs(g)).sum(axis=1) + np.abs(g).sum(axis=1)
            scale = safe_mul(absa, 1 + np.abs(y) + lns).sum(axis=1)
        return cond, scale, np.full(x.shape[0], self.c, np.int64)

    # -- gradients ------------------------------------------------------------------------------
    def _target_scales(self, rows, gof):
        """|(1-eps) w_c g_n| times log p_c's magnitude and its sensitivity to relative
        perturbations of the logits (as log_softmax's)."""
        x = rows["x"]
        with np.errstate(all="ignore"):
            logp, y, lns = self._logp(F64, x)
            p = np.exp(logp)
            ay = np.abs(y)
            sp = safe_mul(ay, p).sum(axis=1, keepdims=True)
            sens = safe_mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p)
            coef = np.abs(np.asarray(gof, np.float64))[:, None] * np.abs(self._target_coef(F64))
            cond = safe_mul(coef, ay + lns + sens)
            scale = safe_mul(coef, 1 + ay + lns)
        return cond, scale, np.full(x.shape, self.c, np.int64)

    def exact_prec(self, rows, wrt, grad_output):
        """nll_loss (the input taken as log-probabilities) is sums of products -w x, and its
        gradient -w g: exact at span_bits.  cross_entropy's input gradient is exact on tied rows
        (softmax 1/count, a power of two) when label smoothing's eps/C is dyadic; else irrational."""
        w = None if self.w is None else np.asarray(self.w)
        bits = span_bits(rows["x"], w, grad_output, rows.get("p"))
        if not self.logits:
            return None if wrt == "target" else bits
        if wrt != "input" or (self.eps != 0 and self.c & (self.c - 1)):
            return None
        return bits, tied_rows(rows["x"])

    def _target_coef(self, ns):
        """d a[n, c] / d p[n, c] = (1 - eps) w_c (probability targets)."""
        k = self.keep(ns)
        return np.asarray(k)[None, None] if self.w is None else k * ns.asarray(self.w)[None, :]

    def grad_target(self, ns, rows, gof):
        """Probability targets: d l_n / d p[n, c] = -(1 - eps) w_c logp[n, c], times gof_n (IEEE: a
        zero coefficient against a -inf log-probability is NaN, as in the value)."""
        x = ns.asarray(rows["x"])
        logp, _, _ = self._logp(ns, x, rows["x"])
        g = ns.asarray(gof)[:, None] * (self._target_coef(ns) * -logp)
        return g, (None if ns.exact else np.abs(g))

    def grad(self, ns, rows, gof, wrt="input"):
        """VJP rows (M, C): gof_n * (A_n p_j - a_j), written without cancellation as

        (A - a_j) p_j - a_j (S - e_j) / S, where S - e_j is summed from the other classes (for the
        argmax it is ``rest``; elsewhere S - e_j >= S/2, so the subtraction is benign) and A - a_j
        is exact when a row has a single nonzero coefficient (class-index targets, no smoothing).
        Returns (g, magnitude of the terms) -- the magnitude bounds the evaluation error; it is
        formed in float64 only (the scales' namespace: the stages read values alone), None elsewhere.
        """
        if wrt == "target":
            return self.grad_target(ns, rows, gof)
        if ns is F64:  # asked twice a call (the scales, then stage 0's second opinion): one evaluation
            return self._grad_f64(rows, gof)[:2]
        return self.grad_logits(ns, rows, ns.asarray(rows["x"]), rows["x"], gof)

    def _grad_f64(self, rows, gof):
        """(g, mag, a, y, lnS) of the input gradient in float64, remembered for the last (rows, gof)
        asked (the same dict and equal seeds: settle.py asks for the scales and then for the float64
        values of the same rows); the arrays are read-only, so no caller can change them for the next."""
        gof = np.asarray(gof, np.float64)
        got = getattr(self, "_f64_memo", None)
        if got is not None and got[0] is rows and np.array_equal(got[1], gof, equal_nan=True):
            return got[2]
        out = self._grad_logits(F64, rows, F64.asarray(rows["x"]), rows["x"], gof)
        for arr in out:
            if isinstance(arr, np.ndarray):
                arr.flags.writeable = False
        self._f64_memo = (rows, gof.copy(), out)
        return out

    def grad_logits(self, ns, rows, x, xf, gof):
        """:meth:`grad` w.r.t. the logits ``x`` the softmax sees (``xf``: their float64 copy, for
        the argmax and the masks); the soft-capped kernel passes the capped logits."""
        return self._grad_logits(ns, rows, x, xf, gof)[:2]

    def _grad_logits(self, ns, rows, x, xf, gof):
        """(g, mag, a, y, lnS): :meth:`grad_logits` and the coefficients and shifted logits it used
        (y and lnS None for nll_loss), which :meth:`grad_scales` needs too."""
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
        if not self.logits:
            onehot = np.zeros(a.shape, dtype=bool)
            onehot[np.arange(a.shape[0]), np.where(dead[:, 0], 0, rows["t"])] = True
            g = np.where(dead | ~onehot, ns.const(0), gof * -a)
            return g, np.abs(g), a, None, None
        y, e, rest, s, lns, k = shifted_lse(ns, x, xf)
        if self.eps == 0 and not self.prob:
            # one coefficient per row (the target's): A - a_j is A off the target and exactly 0 on
            # it, and only the target needs a_t (S - e_t) / S -- computed there alone.  A is a_t
            # (+0: the zero sign of the row sum); A p_j is formed as e_j (A / S), one row factor
            # and one product per element, the same roundings as (A)(e_j / S)
            rows_i = np.arange(a.shape[0])
            tc = np.where(dead[:, 0], 0, rows["t"])
            a_t = a[rows_i, tc]
            big_a = (a_t + ns.const(0))[:, None]
            s_excl_t = np.where(k[rows_i, tc], rest[:, 0], s[:, 0] - e[rows_i, tc])
            t2_t = a_t * (s_excl_t / s[:, 0])
            t1 = e * ((gof * big_a) / s)
            t1[rows_i, tc] = np.where(a_t != 0, ns.const(0), t1[rows_i, tc])
            g = t1.copy() if ns is F64 else t1  # t1 is read again for the float64 magnitudes only
            g[rows_i, tc] = t1[rows_i, tc] - gof[:, 0] * t2_t
            if dead.any():
                g = np.where(dead, ns.const(0), g)
            if ns is not F64:  # magnitudes only feed the float64 scales (the bound's cond)
                return g, None, a, y, lns
            mag = np.abs(t1)
            mag[rows_i, tc] = mag[rows_i, tc] + np.abs(gof[:, 0] * t2_t)
            return g, mag, a, y, lns
        big_a = ns.sum(a, axis=1, keepdims=True)
        p = e / s
        a_excl = big_a - a
        s_excl = np.where(k, np.broadcast_to(rest, a.shape), s - e)
        t1 = a_excl * p
        t2 = a * (s_excl / s)
        g = np.where(dead, ns.const(0), gof * (t1 - t2))
        if ns is not F64:
            return g, None, a, y, lns
        suma = ns.sum(np.abs(a), axis=1, keepdims=True)
        mag = np.abs(gof) * (suma * p + np.abs(t2))
        return g, mag, a, y, lns

    def grad_scales(self, rows, gof, wrt="input"):
        """cond: the term magnitudes plus p_j's sensitivity to relative perturbations of the
        shifted logits and to exp's own rounding (no '+1': a gradient that rounds p_t to 1 on a
        confident row is a cliff, judged on the absolute rung like the loss's own cliff)."""
        x = rows["x"]
        if wrt == "target":
            return self._target_scales(rows, gof)
        with np.errstate(all="ignore"):
            _, mag, a, y, lns = self._grad_f64(rows, gof)
            mag = np.nan_to_num(mag, nan=0.0)
            if not self.logits:
                return mag, mag, np.ones(x.shape, np.int64)
            p = np.exp(y - lns)
            suma = a.sum(axis=1, keepdims=True)
            big_a = np.abs(suma * gof[:, None])
            ay = np.abs(y)
            # every factor below is >= 0, so a plain product differs from safe_mul (0 * inf := 0)
            # only by a NaN, which no later operation removes: without one, the plain products are
            # the same numbers
            for mul in (np.multiply, safe_mul):
                sp = mul(ay, p).sum(axis=1, keepdims=True)
                sens_p = mul(p, mul(ay, np.abs(1 - 2 * p)) + sp + 2 * (1 - p))
                cond_z = mul(big_a, sens_p)
                # natural unit: the textbook terms A*p_j and a_j (softmax minus one-hot), so that a
                # p_t - 1 evaluated with p_t rounded to 1 is judged on the absolute rung, like the cliff
                scale = np.abs(gof)[:, None] * (mul(np.abs(suma), p) + np.abs(a))
                if mul is safe_mul or not (np.isnan(cond_z).any() or np.isnan(scale).any()):
                    break
            cond = mag + cond_z
        return cond, np.nan_to_num(scale, nan=0.0), np.full(x.shape, self.c, np.int64)


class LlmClassKernel(ClassKernel):
    """cross_entropy with Liger-Kernel's ``softcap`` and/or ``z_loss`` (class-index targets only).

    The softmax sees z = c tanh(x / c) (x itself without a cap); a kept position adds s lse_n^2,
    lse_n = max z + log S.  d l / d z_j = gof_ce (A p_j - a_j) + gof_z 2 s lse p_j, times
    sech^2(x_j / c) for d l / d x_j.  Under 'mean' the cross-entropy part is divided by D = sum of
    w[t] and the z-loss part by the kept count N (Liger's ``n_non_ignore``): with one denominator
    settle.py cannot hold both, so this kernel divides itself and reports the denominator 1 (an
    exact count).  A mean over D = 0 keeps the class losses' rule: the value is 0/0 (NaN) or
    +-inf like torch's, the gradient NaN at every kept position.

    Condition scales (stage 0 relies on them: error <= (16 + 4 log2 n) u (cond + |v|)):
    - capping rounds each z_j by a few u relative to |z_j| (division, tanh <= 2 ulp, product):
      2 sum_j |d l / d z_j| |z_j| joins the value's cond, 2 (|z_j| + sum_i p_i |z_i|) joins p_j's
      sensitivity in the gradient's;
    - the z-loss term: lse = m + log S errs by u (|lse| + log S + 1 + sum_j p_j (|y_j| + 2|z_j|))
      (the sum is lse's sensitivity to relative perturbations of the logits: not shift-invariant),
      times 2 s |lse|, plus 3 s lse^2 for the square and the scale;
    - sech^2 errs by (2 |x/c| + 8) u relative (the rounding of x / c is amplified by 2 |x/c|,
      which is also that function's own conditioning).
    The natural scale of the gradient is taken in z (without sech^2): an implementation that forms
    sech^2 as 1 - tanh^2 commits u |d l / d z_j| where tanh rounds to +-1 -- absolute-only, like the
    confident-row cliff.
    """

    def __init__(self, problem, logits: bool = True):
        super().__init__(problem, logits)
        self.cap = self.opts.get("softcap")
        self.zl = float(self.opts.get("z_loss", 0.0))
        self.own_mean = self.zl != 0 and problem.reduction == "mean"
        self.all_rows = problem.rows

    # -- shared pieces ------------------------------------------------------------------------
    def _capped(self, ns, rows):
        """(the logits the softmax sees in ``ns``, their float64 copy for masks and the argmax).
        ``rows["x"]`` may hold mpf objects (logits formed beyond float64, e.g. a product computed
        exactly): mpmath takes them as they are, the masks their float64 roundings."""
        x = ns.asarray(rows["x"])
        xf = rows["x"] if rows["x"].dtype != object else MP.to_float64(rows["x"])
        if self.cap is None:
            return x, xf
        with np.errstate(all="ignore"):
            zf = capped(F64, xf, self.cap)
            return (zf if ns is F64 else capped(ns, x, self.cap)), zf

    def _kept(self, rows):
        return rows["t"] != self.opts["ignore_index"]

    def _count(self) -> int:
        """N: the kept positions of the whole call (the z-loss mean's denominator)."""
        return int(self._kept(self.all_rows).sum())

    def denominator(self, ns, rows):
        if self.own_mean:
            return ns.const(1), 0.0  # the parts and gradients divide themselves (see the class doc)
        return super().denominator(ns, rows)

    def _split_gof(self, ns, gof):
        """(the cross-entropy part's, the z-loss part's) per-row factors: gof itself, or under
        'mean' gof / D and gof / N (NaN everywhere when D = 0, as for a plain mean over nothing)."""
        gof = ns.asarray(gof)
        if not self.own_mean:
            return gof, gof
        d, _ = super().denominator(ns, self.all_rows)
        if d == 0:
            nan = np.array([ns.const("nan")] * len(gof), dtype=object) if ns.exact else np.full(len(gof), np.nan, ns.dtype)
            return nan, nan
        return ieee_div(ns, gof, d), ieee_div(ns, gof, ns.const(self._count()))

    # -- values ---------------------------------------------------------------------------------
    def parts(self, ns, rows):
        z, zf = self._capped(ns, rows)
        out, lns, k = self.parts_logits(ns, rows, z, zf)
        if self.own_mean:
            out = [(self._over_d(mult), val, mag) for mult, val, mag in out]
        if self.zl:
            lse = z[k] + lns[:, 0]
            val = np.where(self._kept(rows), lse * lse, ns.const(0))
            out.append((self._z_mult, val, np.abs(val)))
        return out

    def _over_d(self, mult):
        def mult_over_d(ns):
            return ieee_div(ns, mult(ns), super(LlmClassKernel, self).denominator(ns, self.all_rows)[0])
        return mult_over_d

    def _z_mult(self, ns):
        s = ns.const(self.zl)
        return ieee_div(ns, s, ns.const(self._count())) if self.own_mean else s

    def scales(self, rows):
        x = rows["x"]
        with np.errstate(all="ignore"):
            z = x if self.cap is None else capped(F64, x, self.cap)
            y, _, _, _, lns, k = shifted_lse(F64, z, z)
            logp = y - lns
            a = sum(mult(F64) * coef for mult, coef, _ in self.coef_matrix(F64, rows))
            absa = np.abs(a)
            mag = safe_mul(absa, np.abs(logp)).sum(axis=1)
            p = np.exp(logp)
            g = a.sum(axis=1, keepdims=True) * p - a  # d (cross-entropy part) / d z_j
            ag = np.abs(np.where(np.isnan(g) & (a == 0), 0.0, g))
            cond = mag + safe_mul(np.abs(y), ag).sum(axis=1) + ag.sum(axis=1)
            if self.cap is not None:
                cond = cond + 2 * safe_mul(np.abs(z), ag).sum(axis=1)
            scale = safe_mul(absa, 1 + np.abs(y) + lns).sum(axis=1)
            cz = sz = 0.0
            if self.zl:
                lse = z[k] + lns[:, 0]
                alse = np.abs(lse)
                sens = safe_mul(p, np.abs(y) + 2 * np.abs(z)).sum(axis=1) + lns[:, 0] + 1
                kept = self._kept(rows)
                cz = np.where(kept, self.zl * (2 * alse * sens + 3 * lse * lse), 0.0)
                sz = np.where(kept, self.zl * (1 + alse) ** 2, 0.0)
            if self.own_mean:
                d, dabs = super().denominator(F64, rows)
                ad, n = abs(float(d)), self._count()
                # the CE part over |D|, plus the rounding of D itself (|part| dabs / D^2)
                cond = (cond + mag * dabs / ad) / ad + cz / n if ad else np.full(cond.shape, np.inf)
                scale = scale / ad + sz / n if ad else np.full(scale.shape, np.inf)
            else:
                cond, scale = cond + cz, scale + sz
        return cond, scale, np.full(x.shape[0], self.c, np.int64)

    def exact_prec(self, rows, wrt, grad_output):
        """Never exact: tanh and log-sum-exp are transcendental."""
        return

    # -- gradients ------------------------------------------------------------------------------
    def grad(self, ns, rows, gof, wrt="input"):
        g, mag, _ = self._grad(ns, rows, gof)
        return g, mag

    def _grad(self, ns, rows, gof):
        """(g, magnitudes or None, the z-space magnitudes before sech^2 or None)."""
        z, zf = self._capped(ns, rows)
        g_ce, g_z = self._split_gof(ns, gof)
        g, mag = self.grad_logits(ns, rows, z, zf, g_ce)
        dead = ~self._kept(rows)[:, None]
        zt = None
        if self.zl:
            _, e, _, s, lns, k = shifted_lse(ns, z, zf)
            lse = z[k] + lns[:, 0]
            f = (ns.const(2) * ns.const(self.zl) * lse * g_z)[:, None] / s
            zt = np.where(dead, ns.const(0), e * f)  # 2 s lse p_j g_z, p_j = e_j / S
            g = g + zt
        h = None
        if self.cap is not None:
            h = sech2(ns, ns.asarray(rows["x"]), self.cap)
            g = np.where(dead, ns.const(0), g * h)  # an ignored NaN row stays exactly 0
            if not ns.exact:
                # sech^2 > 0 at a finite logit: where it underflowed the working format (|x/c| >
                # ~5680 in long double) the element would pass for an exact zero of unknown sign;
                # the float stages abstain there (NaN; 0 in float64, never an 'identical special')
                lost = ~dead & np.isfinite(rows["x"]) & (h == 0)
                if lost.any():
                    g = np.where(lost, ns.const(0) if ns is F64 else ns.const("nan"), g)
        if mag is None:  # ClassKernel gives magnitudes in float64 only (the scales' namespace)
            return g, None, None
        mag_z = mag if zt is None else mag + np.abs(zt)
        return g, (mag_z if h is None else mag_z * h), mag_z

    def grad_scales(self, rows, gof, wrt="input"):
        x = rows["x"]
        gof = np.asarray(gof, np.float64)
        with np.errstate(all="ignore"):
            g, mag, _ = self._grad(F64, rows, gof)
            mag = np.nan_to_num(mag, nan=0.0)
            z = x if self.cap is None else capped(F64, x, self.cap)
            y, _, _, _, lns, k = shifted_lse(F64, z, z)
            p = np.exp(y - lns)
            a = sum(mult(F64) * coef for mult, coef, _ in self.coef_matrix(F64, rows))
            big_a = a.sum(axis=1, keepdims=True)
            g_ce, g_z = (np.asarray(v, np.float64)[:, None] for v in self._split_gof(F64, gof))
            kept = self._kept(rows)[:, None]
            ay, az = np.abs(y), np.abs(z)
            sens = safe_mul(ay, np.abs(1 - 2 * p)) + safe_mul(ay, p).sum(axis=1, keepdims=True) + 2 * (1 - p)
            if self.cap is not None:
                sens = sens + 2 * (az + safe_mul(p, az).sum(axis=1, keepdims=True))
            lse = (z[k] + lns[:, 0])[:, None]
            zrow = np.where(kept, 2 * self.zl * np.abs(lse * g_z), 0.0)  # |2 s lse g_z|
            cond_z = safe_mul(np.abs(big_a * g_ce) + zrow, safe_mul(p, sens))
            if self.zl:  # lse's own error, u (|lse| + log S + 1 + sum p (|y| + 2|z|)), times 2 s p g_z
                dl = np.abs(lse) + lns + 1 + safe_mul(p, ay + 2 * az).sum(axis=1, keepdims=True)
                cond_z = cond_z + np.where(kept, safe_mul(2 * self.zl * np.abs(g_z) * p, dl), 0.0)
            if self.own_mean:  # the rounding of D in g_ce = gof / D
                d, dabs = super().denominator(F64, rows)
                if d != 0:
                    cond_z = cond_z + safe_mul(np.abs(g_ce * (big_a * p - a)), dabs / abs(float(d)))
            cond_z = np.where(kept, cond_z, 0.0)
            scale = np.abs(g_ce) * (safe_mul(np.abs(big_a), p) + np.abs(a)) + safe_mul(zrow, p)
            if self.cap is None:
                cond = mag + cond_z
            else:
                h = sech2(F64, x, self.cap)
                q = np.abs(x / self.cap)
                cond = mag + safe_mul(h, cond_z) + safe_mul(np.abs(np.nan_to_num(g, nan=0.0)), 2 * q + 8)
        return cond, np.nan_to_num(np.where(kept, scale, 0.0), nan=0.0), np.full(x.shape, self.c, np.int64)


# ------------------------------------------------------------------------------ row form

def _prepare_class(d: LossDef, args, kwargs, logits: bool) -> Problem:
    d.check_call(args, kwargs)
    x = float_array("input", args[0])
    dtype = dtype_name(x)
    if x.ndim == 0:
        fail("input", "expected shape (C,), (N, C) or (N, C, d1, ..., dk), got a 0-d array")
    unbatched = x.ndim == 1
    c = x.shape[0] if unbatched else x.shape[1]
    if c < 1:
        fail("input", "the class dimension is empty (C = 0)")
    xr = x.reshape(1, c) if unbatched else np.moveaxis(x, 1, -1).reshape(-1, c)
    target = args[1]
    if not isinstance(target, np.ndarray):
        fail("target", f"expected a NumPy array, got {type(target).__name__}")
    eps = float(kwargs.get("label_smoothing", 0.0) or 0.0)
    if not (0.0 <= eps <= 1.0):
        fail("label_smoothing", f"must be in [0, 1], got {eps}")
    weight = kwargs.get("weight")
    rows: dict = {"x": f64(xr)}
    rows_w = None
    if weight is not None:
        if weight.shape != (c,):
            fail("weight", f"expected shape ({c},) (one weight per class), got {weight.shape}")
        rows_w = f64(weight)
    positions = () if unbatched else (x.shape[0],) + x.shape[2:]
    if is_float_array(target):
        if not logits:
            fail("target", "nll_loss takes class indices (int64), not probabilities")
        float_array("target", target, dtype)
        if target.shape != x.shape:
            fail("target", f"probability targets must have the input's shape {x.shape}, got {target.shape}")
        ii = kwargs.get("ignore_index", -100)
        if ii is not None and int_option("ignore_index", ii) >= 0:
            fail("ignore_index", f"{ii} is not supported with probability targets (torch refuses a "
                                 "non-negative ignore_index for floating point targets)")
        rows["p"] = f64(target.reshape(1, c) if unbatched else np.moveaxis(target, 1, -1).reshape(-1, c))
        options = {"label_smoothing": eps, "weight": rows_w, "prob": True}
        if logits:
            llm_options(kwargs, prob=True)  # refuses softcap / z_loss with probability targets
    else:
        if target.dtype != np.int64:
            fail("target", f"expected int64 class indices or float probabilities, got dtype {target.dtype.name}")
        if target.shape != positions:
            fail("target", f"expected shape {positions} for input of shape {x.shape}, got {target.shape}")
        ii = int_option("ignore_index", kwargs.get("ignore_index", -100))
        t = target.reshape(-1)
        bad = (t != ii) & ((t < 0) | (t >= c))
        if bad.any():
            fail("target", f"class index {int(t[bad][0])} is out of range [0, {c}) and is not "
                           f"ignore_index ({ii})")
        rows["t"] = t
        options = {"label_smoothing": eps, "weight": rows_w, "prob": False, "ignore_index": ii}
        if logits:
            options.update(llm_options(kwargs, prob=False))  # nothing when both are at their defaults

    def to_input(g):
        g = np.asarray(g)
        if unbatched:
            return g.reshape(c)
        return np.moveaxis(g.reshape(positions + (c,)), -1, 1)

    return Problem(dtype=dtype, reduction=d.reduction_of(kwargs), rows=rows, nclass=c,
                   unreduced_shape=positions, input_shape=x.shape, options=options, to_input=to_input)


# ------------------------------------------------------------------------------ NumPy implementation

@dataclass(frozen=True)
class ClassLayout:
    """Where the classes are: dim 1 of (N, C, d1, ...), dim 0 of an unbatched (C,).

    ``flat`` moves classes last and flattens positions to (P, C); ``unflat`` undoes it.
    """

    shape: tuple[int, ...]

    @property
    def classes(self) -> int:
        return self.shape[0] if len(self.shape) == 1 else self.shape[1]

    @property
    def positions(self) -> tuple[int, ...]:
        return () if len(self.shape) == 1 else (self.shape[0], *self.shape[2:])

    def flat(self, a: np.ndarray) -> np.ndarray:
        if len(self.shape) == 1:
            return a.reshape(1, -1)
        return np.moveaxis(a, 1, -1).reshape(-1, self.classes)

    def unflat(self, a: np.ndarray) -> np.ndarray:
        if len(self.shape) == 1:
            return a.reshape(self.shape)
        return np.moveaxis(a.reshape(*self.positions, self.classes), -1, 1)


@dataclass
class NllParts:
    """Per-position pieces of the (weighted, ignored, smoothed) NLL, shared with the gradients."""

    nll: np.ndarray       # -w[t] logp[t] (0 where ignored), shape (P,)
    smooth: np.ndarray | None  # -sum_c w_c logp[c] (0 where ignored), or None without smoothing
    wt: np.ndarray        # w[t] * valid, shape (P,)
    valid: np.ndarray     # bool (P,)
    safe_t: np.ndarray    # target with ignored positions replaced by 0
    w: np.ndarray         # class weights (C,)


def nll_parts(nx, logp: np.ndarray, t: np.ndarray, weight, ignore_index: int, eps: float) -> NllParts:
    C = logp.shape[-1]
    t = np.asarray(t).astype(np.int64).reshape(-1)
    valid = t != ignore_index
    safe_t = np.where(valid, t, 0)
    w = nx.work(weight) if weight is not None else np.ones(C, logp.dtype)
    wt = np.where(valid, w[safe_t], 0)
    picked = np.take_along_axis(logp, safe_t[:, None], axis=-1)[:, 0]
    nll = np.where(valid, -wt * picked, 0)
    smooth = np.where(valid, -np.sum(w * logp, axis=-1), 0) if eps > 0 else None
    return NllParts(nll, smooth, wt, valid, safe_t, w)


def _reduce_nll(nx, parts: NllParts, eps: float, C: int, reduction: str, layout: ClassLayout):
    per = parts.nll if parts.smooth is None else (1 - eps) * parts.nll + (eps / C) * parts.smooth
    if reduction == "none":
        return per.reshape(layout.positions)
    k = nx.scale_exponent(parts.nll, parts.smooth)
    if reduction == "sum":
        return nx.unscale(nx.total(per, k), k)
    # mean: divided by the total weight of the non-ignored targets (NaN when that is 0)
    num = nx.total(parts.nll, k)
    if parts.smooth is not None:
        num = (1 - eps) * num + (eps / C) * nx.total(parts.smooth, k)
    return nx.unscale(num / nx.total(parts.wt), k)


def _lse(z: np.ndarray, logp: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp as z_k - logp_k at the argmax k: max + log1p(rest), one rounding, in
    the careful arithmetic (whose logp_k is exactly -log1p(rest)); log of a sum in the naive."""
    k = np.argmax(z, axis=-1)[:, None]
    return (np.take_along_axis(z, k, axis=-1) - np.take_along_axis(logp, k, axis=-1))[:, 0]


def _llm_active(name: str, kwargs) -> bool:
    """Is the extension option ``name`` (softcap, z_loss) away from its default in this call?"""
    v = kwargs.get(name)
    return v is not None and (name != "z_loss" or float(v) != 0)


def smoothed_probabilities(nx, target, eps: float, layout: ClassLayout) -> np.ndarray:
    T = nx.work(layout.flat(np.asarray(target)))
    return (1 - eps) * T + eps / layout.classes if eps > 0 else T


def _upstream(nx, grad_output, reduction: str, count) -> np.ndarray:
    """Per-position factor: grad_output itself ('none'), or the scalar over the mean's denominator."""
    g = nx.work(grad_output)
    if reduction == "none":
        return g.reshape(-1)
    return g.reshape(()) / count if reduction == "mean" else g.reshape(())


# ------------------------------------------------------------------------------ the definitions

class _ClassLoss(LossDef):
    logits = True
    option_families = ("plain", "weight", "ignore_index", "ignore_index+weight", "spatial", "unbatched")

    def prepare(self, args, kwargs):
        return _prepare_class(self, args, kwargs, self.logits)

    def kernel(self, problem):
        if any(n in problem.options for n in LLM_OPTIONS):
            return LlmClassKernel(problem, self.logits)
        return ClassKernel(problem, self.logits)

    def option_family(self, args, kwargs):
        x, t = args[0], args[1]
        prob = is_float_array(t)
        tags: list[str] = []
        if prob:
            tags.append("probability_target")
        elif x.ndim == 1:
            return "unbatched"
        elif x.ndim > 2:
            return "spatial"
        if kwargs.get("weight") is not None:
            tags.append("weight")
        if not prob and np.any(np.asarray(t) == kwargs.get("ignore_index", -100)):
            tags.append("ignore_index")
        if float(kwargs.get("label_smoothing", 0.0) or 0.0) > 0:
            tags.append("label_smoothing")
        if prob:
            return "+".join(["probability_target", *sorted(tags[1:])])
        return "+".join(sorted(tags)) or "plain"

    def output_shape(self, args, kwargs):
        if self.reduction_of(kwargs) != "none":
            return ()
        x = args[0]
        return tuple(x.shape[:1] + x.shape[2:]) if x.ndim >= 2 else ()

    def describe(self, args, kwargs, check, index):
        """The class row and target behind an element."""
        x, t = np.asarray(args[0]), np.asarray(args[1])
        cdim = 1 if x.ndim >= 2 else 0
        if check != "value":
            pos = index[:cdim] + index[cdim + 1:]
        elif self.reduction_of(kwargs) != "none":
            return None
        else:
            pos = index
        sl = pos[:cdim] + (slice(None),) + pos[cdim:]
        tgt = t[sl] if is_float_array(t) else t[pos]
        tgt_s = _fmt_row(tgt) if np.ndim(tgt) else str(int(tgt))
        return f"row {_fmt_row(x[sl])}, target {tgt_s}"

    def _strategy(self, dtype, max_classes, max_batch, reductions, label_smoothing, weights,
                  ignore_index, probability_targets, max_abs, softcap=(None,), z_loss=(0.0,)):
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        from ._strategies import dtypes, floats, option

        dts = dtypes(dtype)  # validated now, not at the first draw

        @st.composite
        def strategy(draw):
            dt = draw(dts)
            C = draw(st.integers(1, max_classes))
            B = draw(st.integers(1, max_batch))
            x = floats(draw, (B, C), dt, -max_abs, max_abs)
            kw = {"reduction": draw(st.sampled_from(tuple(reductions)))}
            if draw(option(probability_targets)):
                t = floats(draw, (B, C), dt, 0.0, 1.0)
            else:
                t = draw(hnp.arrays(np.int64, (B,), elements=st.integers(0, C - 1)))
                if draw(option(ignore_index)):
                    mask = draw(hnp.arrays(np.bool_, (B,)))
                    t = np.where(mask, -100, t).astype(np.int64)
                    kw["ignore_index"] = -100
            if draw(option(weights)):
                kw["weight"] = floats(draw, (C,), dt, 0.0, 4.0)
            if "label_smoothing" in self.option_names:
                kw["label_smoothing"] = draw(st.sampled_from(tuple(label_smoothing)))
            if not is_float_array(t):  # the extensions take class indices only
                cap, zl = draw(st.sampled_from(tuple(softcap))), draw(st.sampled_from(tuple(z_loss)))
                if cap is not None:
                    kw["softcap"] = cap
                if zl:
                    kw["z_loss"] = zl
            return Call((x, t), kw)
        return strategy()

    # -- brute force (reference/audit.py): loops over positions, mpmath at the current precision ----
    @staticmethod
    def _brute_div(a, b):
        """a / b with IEEE rules for b == 0 (mpmath raises): 0/0 and NaN/0 are NaN, else +-inf."""
        if b == 0:
            if mpmath.isnan(a) or a == 0:
                return mpmath.mpf("nan")
            return mpmath.mpf("inf") if a > 0 else mpmath.mpf("-inf")
        return a / b

    @staticmethod
    def _brute_positions(x: np.ndarray) -> list:
        """[(position index, fn class -> index into x)]: dim 1 of (N, C, d...), dim 0 of (C,)."""
        if x.ndim == 1:
            return [((), lambda c: (c,))]
        positions = (x.shape[0],) + tuple(x.shape[2:])
        return [(pos, (lambda c, pos=pos: (pos[0], c) + pos[1:])) for pos in np.ndindex(*positions)]

    @staticmethod
    def _brute_softmax_row(row: list) -> tuple[list, list]:
        """(log-probabilities, probabilities) of one row of logits: m + log(fsum(exp(x - m))).  A row
        holding NaN or +inf, or only -inf, has no finite max: all NaN."""
        nan = mpmath.mpf("nan")
        if not row or any(mpmath.isnan(v) or v == mpmath.inf for v in row) or all(v == -mpmath.inf for v in row):
            return [nan] * len(row), [nan] * len(row)
        m = max(row)
        e = [mpmath.exp(v - m) for v in row]
        s = mpmath.fsum(e)
        log_s = mpmath.log(s)
        return [(v - m) - log_s for v in row], [ev / s for ev in e]

    @staticmethod
    def _brute_go(grad_output, shape, reduction: str, denominator):
        """grad_output per position (a function of the position index): itself for 'none', the
        scalar for 'sum', the scalar over the mean's denominator for 'mean' (NaN when that is 0:
        the derivative of a mean over nothing, docs/oracle.md)."""
        mpf = mpmath.mpf
        go = np.ones(shape) if grad_output is None else np.asarray(grad_output).astype(np.float64)
        if reduction == "none":
            return lambda pos: mpf(float(go[pos]))
        g = mpf(float(go.reshape(())))
        if reduction == "mean":
            g = mpf("nan") if denominator == 0 else g / denominator
        return lambda pos: g


def _exact_mpf(v) -> mpmath.mpf:
    """A logit as an mpf without rounding to the current precision (a float, or an exact mpf)."""
    if isinstance(v, mpmath.mpf):
        out = mpmath.mpf.__new__(mpmath.mpf)
        out._mpf_ = v._mpf_
        return out
    return mpmath.mpf(float(v))


def _fmt_row(a: np.ndarray, n: int = 8) -> str:
    flat = np.asarray(a).reshape(-1)
    parts = [f"{float(v):.6g}" for v in flat[:n]]
    return "[" + ", ".join(parts) + (", ..." if flat.size > n else "") + "]"


_INPUT = Arg("input", "input", required=True, differentiable=True)
# differentiable where it is a probability tensor (LossDef.differentiable_for skips class indices)
_TARGET = Arg("target", "target", required=True, differentiable=True)
_WEIGHT = Arg("weight", "weight", None)
_IGNORE = Arg("ignore_index", "int", -100)
_REDUCTION = Arg("reduction", "reduction", "mean")


# ------------------------------------------------------------------------------ verdict policy data

def _plain_class_call(kwargs, args) -> bool:
    """Class-index targets, no label smoothing, no losscheck extension: where the per-position
    loss is -w[t] logp[t], which the variants below transform."""
    return (not is_float_array(args[1]) and not float(kwargs.get("label_smoothing", 0.0) or 0.0)
            and not any(_llm_active(n, kwargs) for n in LLM_OPTIONS))


def _per_position_nll(nll_of, applies=None):
    """A variant whose per-position loss is w[t] * nll_of(row, t, dtype) (an mpf; ``dtype`` the
    format the library computed in, whose numbers the variant's constants are), reduced as torch
    reduces (mean over D = sum of w[t] over kept positions); ``applies(rows)``: whether it differs
    from the loss at all (when not, it explains nothing and is not evaluated)."""
    def value(args, kwargs, check, dtype, grad_output=None):
        if check != "value" or not _plain_class_call(kwargs, args):
            return None
        p = CE_LOSS.prepare(tuple(args), dict(kwargs))
        x, t = p.rows["x"], p.rows["t"]
        if applies is not None and not applies(x):
            return None
        w = p.options["weight"]
        ii = p.options["ignore_index"]
        vals, ws = [], []
        with mpmath.workprec(VARIANT_PREC):
            for n in range(x.shape[0]):
                if t[n] == ii:
                    vals.append(mpmath.mpf(0))
                    ws.append(mpmath.mpf(0))
                    continue
                wt = mpmath.mpf(1.0 if w is None else float(w[t[n]]))
                vals.append(wt * nll_of(x[n], int(t[n]), dtype))
                ws.append(wt)
            return reduce_mp(vals, ws, p.reduction, p.unreduced_shape)
    return value


def _clamped_nll(bounds):
    """Per-position loss clamp(lse - x[t], lo, hi), ``bounds(dtype)`` giving (lo, hi) for the
    format the library computed in."""
    def nll_of(row, t, dtype):
        nll = mp_lse_minus(row, t)
        if mpmath.isnan(nll):
            return nll
        lo, hi = bounds(dtype)
        return min(max(nll, lo), hi)
    return _per_position_nll(nll_of)


def _paddle_row_weight(args, kwargs, check, dtype=None, grad_output=None):
    """Paddle's class weights on probability targets: each row's -sum_c y_c logp_c times its row
    weight sum_c w_c y_c, the mean divided by the sum of the row weights (torch weights each term
    by w_c and averages over positions).  Without label smoothing: Paddle smooths in float32."""
    if check != "value" or not is_float_array(args[1]) or kwargs.get("weight") is None \
            or float(kwargs.get("label_smoothing", 0.0) or 0.0):
        return None
    p = CE_LOSS.prepare(tuple(args), dict(kwargs))
    x, y, w = p.rows["x"], p.rows["p"], p.options["weight"]
    vals, ws = [], []
    with mpmath.workprec(VARIANT_PREC):
        for n in range(x.shape[0]):
            yn = [mpmath.mpf(float(v)) for v in y[n]]
            logp = mp_clipped_log_softmax(x[n], -mpmath.inf)
            rw = mpmath.fsum(mpmath.mpf(float(wc)) * yc for wc, yc in zip(w, yn))
            ce = -mpmath.fsum(yc * lp if yc else mpmath.mpf(0) for yc, lp in zip(yn, logp))
            vals.append(rw * ce)
            ws.append(rw)
        return reduce_mp(vals, ws, p.reduction, p.unreduced_shape)


_PADDLE_CAP = -math.log(1e-28)
_KERAS_EPS = 1e-7
def _keras_clip_bounds(dtype):
    """-log of Keras' clip bounds 1 - 1e-7 and 1e-7 as the format holds them (1 - 1e-7 is 1 in
    float16: no lower bound on the loss there)."""
    return (-mpmath.log(format_constant(1 - _KERAS_EPS, dtype)), -mpmath.log(format_constant(_KERAS_EPS, dtype)))


CE_VARIANTS = (
    # what paddlepaddle 3.3.1's CPU cross_entropy computes (its softmax's clip): [0, -200, 1], t = 1
    # gives 64.31; the cap below is issue 11's report, not seen on the CPU in 3.3.1
    Variant("shifted-logit clip at -64 (Paddle)", "-log softmax(max(x - max x, -64))_t", "-log p_t",
            _per_position_nll(lambda row, t, dtype: -mp_clipped_log_softmax(row, PADDLE_SHIFT_CLIP)[t],
                              lambda x: clip_bites(x, PADDLE_SHIFT_CLIP).any())),
    Variant("per-element cap -log(1e-28) = 64.47 (Paddle)", "min(-log p_t, -log(1e-28))", "-log p_t",
            _clamped_nll(lambda dtype: (mpmath.mpf(0), mpmath.mpf(_PADDLE_CAP)))),
    Variant("row weight sum_c w_c y_c (Paddle)", "(sum_c w_c y_c) (-sum_c y_c log p_c), mean over sum_n sum_c w_c y_c",
            "-sum_c w_c y_c log p_c, mean over positions", _paddle_row_weight),
    Variant("probability clip 1e-7 (Keras)", "-log(clip(p_t, 1e-7, 1 - 1e-7))", "-log p_t",
            _clamped_nll(_keras_clip_bounds)),
)


def _mean_over_no_weight(loss, args, kwargs, check):
    """A weighted mean over D = 0 (every target ignored or of weight 0): torch's 0/0 is NaN, the
    0/0 := 0 convention (Paddle) gives 0 -- a loss identically 0 for these weights, so its input
    gradient is 0 too (torch's is NaN at every kept position).  cross_entropy's and nll_loss's."""
    if check not in ("value", "grad:input") or is_float_array(args[1]) or loss.reduction_of(kwargs) != "mean":
        return None
    p = loss.prepare(tuple(args), dict(kwargs))
    kept = p.rows["t"] != p.options["ignore_index"]
    w = p.options["weight"]
    d = float(np.sum(w[p.rows["t"][kept]])) if w is not None else float(np.count_nonzero(kept))
    if d != 0 or (w is not None and np.any(w[p.rows["t"][kept]] != 0)):
        return None
    what = "" if check == "value" else " (its gradient 0)"
    return Convention(np.asarray(True), np.asarray(0.0), f"a mean over no weight: torch's 0/0 = NaN, or 0{what}")


class CrossEntropy(_ClassLoss):
    name = CE
    # two classes: every pair of logits (class 0's target; class 1's is the mirror image)
    sweep = SweepDef(width=2, grid=(("target", (0,)),))
    positional = (_INPUT, _TARGET)
    # softcap and z_loss: losscheck extensions with Liger-Kernel's semantics (torch has neither)
    options = (_WEIGHT, _IGNORE, _REDUCTION, Arg("label_smoothing", "float", 0.0),
               Arg("softcap", "float", None), Arg("z_loss", "float", 0.0))
    option_families = ("plain", "weight", "ignore_index", "label_smoothing",
                       "ignore_index+label_smoothing+weight", "probability_target",
                       "probability_target+label_smoothing+weight", "spatial", "unbatched",
                       "softcap", "z_loss", "softcap+z_loss", "ignore_index+label_smoothing+softcap+weight+z_loss")
    summary = ("log_softmax over the class dim, then the weighted, ignored, smoothed NLL (losscheck "
               "extensions: soft-capped logits, plus a z-loss s lse^2)")
    notes = """\
- Class dim 1 of (N, C, d1, ..., dk), or 0 of an unbatched (C,) input with a 0-d target.
- Class-index targets: l_n = -(1-eps) w[t_n] logp[n, t_n] - (eps/C) sum_c w_c logp[n, c]; an
  ignored position contributes nothing and its gradient is exactly 0. The mean divides the NLL part
  and the smoothing part each by D = sum_n w[t_n] over kept positions (D = 0 gives NaN, as torch).
- Probability targets: a[n, c] = w_c ((1-eps) p[n, c] + eps/C); the mean is over positions.
  torch differentiates them: `grad:target` is -(1-eps) w_c logp[n, c] g_n (class-index targets
  have no gradient, so their cases check `grad:input` only).
- 0 · log 0 = 0: a masked (-inf) logit is harmless where its coefficient is exactly zero; a present
  zero weight times an infinite -logp is NaN (IEEE), as in torch.
- A row holding NaN or +inf, or only -inf, is NaN.

losscheck extensions (Liger-Kernel's `LigerCrossEntropyFunction` semantics, read from
src/liger_kernel/ops/cross_entropy.py and its torch reference in test/transformers/
test_cross_entropy.py; torch.nn.functional has neither option, so torch reports such checks
unsupported). A call without them is exactly torch's cross_entropy, with the same answers.

- `softcap=c` (None, or a positive finite number): the softmax sees z = c tanh(x/c), for every
  class (target included) and in the smoothing part too; d z/d x = 1 - tanh^2(x/c) = sech^2(x/c).
  A +-inf logit caps to +-c (finite: it is no longer masked) with gradient exactly 0; NaN stays
  NaN. The oracle evaluates sech^2 without cancellation: an implementation that forms 1 - t*t
  (Liger's) returns 0 where tanh rounds to 1 (|x| > ~9c in float32), an error of u |d l/d z|
  that is judged on the absolute-only rung (warn), not stable.
- `z_loss=s` (a finite number >= 0; Liger's `lse_square_scale`, PaLM's z-loss): each kept
  position adds s lse_n^2, lse_n = logsumexp of its (capped) logits; an ignored position adds
  nothing (value and gradient exactly 0). The z-loss term is **not weighted** by `weight` (Liger:
  "TODO: Implement weighted z_loss") and label smoothing does not touch it. `none` returns
  l_n + s lse_n^2 per position, `sum` sums both, and `mean` divides the cross-entropy part by
  D = sum_n w[t_n] (torch's weighted mean, which Liger's `sum_non_ignore_weight` matches, the
  smoothing part included) but the z-loss part by N, the number of kept positions (Liger's
  `n_non_ignore`): mean = CE_sum / D + s sum_n lse_n^2 / N. Without weights D = N.
- Gradient: d l/d x_j = [g_ce (A p_j - a_j) + g_z 2 s lse_n p_j] sech^2(x_j/c), with g_ce =
  g_z = grad_output for `none`/`sum`, g_ce = grad_output / D and g_z = grad_output / N for `mean`
  (Liger: `dz_loss / n_non_ignore` next to `dloss_ori / sum_non_ignore_weight`).
- A mean over D = 0 keeps torch's rule for the cross-entropy part (0/0 is NaN, +-inf when
  mixed-sign weights sum to 0; the gradient is NaN at every kept position), and adding the
  z-loss part leaves it so. Liger returns 0 when every position is ignored (it skips the rows and
  divides nothing): there losscheck follows torch, as for the rest of the cross-entropy part.
- Case families `ce.softcap_saturation`, `ce.z_loss_large_lse`, `ce.llm_padding` and
  `ce.llm_edges` use dyadic z-loss scales (2^-13 ~ PaLM's 1e-4, 2^-7, 1), which every format
  holds exactly, and caps 1 and 30 (Gemma-2's; also 5 and 50 in `full`).
- Both options need class-index targets (Liger has no probability targets: refused, naming the
  option) and apply per position to any shape torch's cross_entropy takes (Liger's (BT, V) rows,
  also spatial and unbatched inputs). nll_loss takes log-probabilities and has neither option.
"""

    variants = CE_VARIANTS

    def magnitude(self, args, kwargs, check):
        """max |logit| of the rows behind the element: CE is invariant under a shift of a row, so
        an lse(x) - x[t] that does not subtract the row max first errs by u * max|x| (the
        magnitude-dependent rung, docs/verdicts.md)."""
        return row_magnitude(self.prepare(tuple(args), dict(kwargs)), check)

    def conventions(self, args, kwargs, check):
        return _mean_over_no_weight(self, args, kwargs, check)

    def option_family(self, args, kwargs):
        """The class losses' tags, plus ``softcap`` and ``z_loss`` when those are in play."""
        fam = super().option_family(args, kwargs)
        llm = [n for n in LLM_OPTIONS if _llm_active(n, kwargs)]
        if not llm:
            return fam
        if fam in ("spatial", "unbatched"):
            return "+".join([fam, *llm])
        return "+".join(sorted(([] if fam == "plain" else fam.split("+")) + llm))

    def strategy(self, dtype=None, max_classes: int = 16, max_batch: int = 8, reductions=("none", "sum", "mean"),
                 label_smoothing=(0.0, 0.1, 0.2, 1.0), weights: bool = True, ignore_index: bool = True,
                 probability_targets: bool = True, max_abs: float = 100.0,
                 softcap=(None,), z_loss=(0.0,)):
        """cross_entropy on (B, C) logits in [-max_abs, max_abs]; class or probability targets.
        ``softcap`` / ``z_loss``: the values to draw them from with class-index targets, e.g.
        ``softcap=(None, 1.0, 30.0), z_loss=(0.0, 2**-13)`` (default: neither, since torch and
        its drop-ins take neither option)."""
        return self._strategy(dtype, max_classes, max_batch, reductions, label_smoothing, weights,
                              ignore_index, probability_targets, max_abs, softcap, z_loss)

    def numpy_value(self, nx, input, target, weight=None, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0, softcap=None, z_loss=0.0):
        layout = ClassLayout(np.shape(input))
        C = layout.classes
        eps = float(label_smoothing)
        z = nx.work(layout.flat(np.asarray(input)))
        if softcap is not None:
            z = np_capped(z, float(softcap))
        logp = nx.log_softmax(z, axis=-1)
        if is_float_array(target):
            T = smoothed_probabilities(nx, target, eps, layout)
            wT = T * nx.work(weight) if weight is not None else T
            per = -np.sum(wT * logp, axis=-1)
            if reduction == "none":
                return per.reshape(layout.positions)
            return reduce_elementwise(nx, per, reduction)
        parts = nll_parts(nx, logp, target, weight, ignore_index, eps)
        ce = _reduce_nll(nx, parts, eps, C, reduction, layout)
        if not z_loss:
            return ce
        zl = np.where(parts.valid, float(z_loss) * np.square(_lse(z, logp)), 0)
        if reduction == "none":
            return ce + zl.reshape(layout.positions)
        # the z-loss part is unweighted: its mean is over the kept positions (Liger's n_non_ignore)
        return ce + reduce_elementwise(nx, zl, reduction, count=int(parts.valid.sum()))

    def numpy_grads(self, nx, input, target, grad_output, weight=None, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0, softcap=None, z_loss=0.0):
        """p - onehot, weighted and smoothed; p_t - 1 as expm1(logp_t) so the small stays small;
        plus 2 s lse p for the z-loss, times sech^2(x/c) formed without 1 - tanh^2's cancellation."""
        layout = ClassLayout(np.shape(input))
        C = layout.classes
        eps = float(label_smoothing)
        x = nx.work(layout.flat(np.asarray(input)))
        z = x if softcap is None else np_capped(x, float(softcap))
        logp = nx.log_softmax(z, axis=-1)
        p = np.exp(logp)
        if is_float_array(target):
            T = smoothed_probabilities(nx, target, eps, layout)
            wT = T * nx.work(weight) if weight is not None else T
            g = p * np.sum(wT, axis=-1, keepdims=True) - wT
            up = _upstream(nx, grad_output, reduction, logp.shape[0])
            keep = (1 - eps) if weight is None else (1 - eps) * nx.work(weight)
            return {"input": layout.unflat(g * up[..., None]), "target": layout.unflat(-keep * logp * up[..., None])}
        parts = nll_parts(nx, logp, target, weight, ignore_index, eps)
        rows = np.arange(logp.shape[0])
        g = (1 - eps) * parts.wt[:, None] * p
        g[rows, parts.safe_t] = (1 - eps) * parts.wt * np.expm1(logp[rows, parts.safe_t])
        if eps > 0:
            g = g + (eps / C) * (np.sum(parts.w) * p - parts.w[None, :])
        up = _upstream(nx, grad_output, reduction, nx.total(parts.wt))
        # an ignored position is absent from the loss: exactly 0, even when up is inf (D = 0)
        with np.errstate(invalid="ignore"):
            g = g * up[..., None]
            if z_loss:  # its mean is over the kept count N, not D (and NaN with the rest when D = 0)
                up_z = _upstream(nx, grad_output, reduction, int(parts.valid.sum()))
                g = g + (2 * float(z_loss)) * _lse(z, logp)[:, None] * p * up_z[..., None]
            if softcap is not None:
                g = g * np_sech2(x, float(softcap))
            return {"input": layout.unflat(np.where(parts.valid[:, None], g, 0.0))}


    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops over positions (see LossDef.brute): logp = (x - m) - log(fsum(exp(x - m))),
        l_n = -(1-eps) w[t] logp[t] - (eps/C) fsum(w_c logp_c) (the smoothing part only when eps > 0,
        nothing at an ignored position), reduced as the NLL and smoothing parts each over fsum and D;
        probability targets a_c = w_c ((1-eps) p_c + eps/C), l_n = -fsum(a_c logp_c), mean over
        positions.  Gradients: g_n (A softmax_c - a_c) with A = fsum(a_c) (exactly 0 at an ignored
        position), and for probability targets -(1-eps) w_c logp_c g_n.

        softcap c: every logit replaced by c tanh(x/c) (mpmath.tanh) before the above, and each
        input-gradient entry multiplied by mpmath.sech(x/c)^2; z_loss s: s lse_n^2 added at each
        kept position, lse_n = m + log(fsum(exp(z - m))), summed by fsum and divided by the kept
        count N for the mean; its gradient 2 s lse_n softmax_c times grad_output (over N for the
        mean)."""
        mpf = mpmath.mpf
        cap = kwargs.get("softcap")
        zl = mpf(float(kwargs.get("z_loss", 0.0) or 0.0))
        # logits as floats, or as exact mpf (linear_cross_entropy's brute force passes the exact
        # products, which float64 may not hold)
        x = np.asarray(args[0])
        x = x if x.dtype == object else x.astype(np.float64)
        target = np.asarray(args[1])
        prob = is_float_array(target)
        tf = target.astype(np.float64) if prob else target.astype(np.int64)
        C = x.shape[0] if x.ndim == 1 else x.shape[1]
        w = kwargs.get("weight")
        w = [mpf(1)] * C if w is None else [mpf(float(v)) for v in np.asarray(w).astype(np.float64)]
        eps = mpf(float(kwargs.get("label_smoothing", 0.0) or 0.0))
        ii = int(kwargs.get("ignore_index", -100))
        red = kwargs.get("reduction", "mean")
        zero = mpf(0)
        rows = []  # (position, index fn, logp, p, coefficients a_c or None when ignored)
        lses = {}  # position -> log-sum-exp of its (capped) logits, for the z-loss
        for pos, at in self._brute_positions(x):
            row = [_exact_mpf(x[at(c)]) for c in range(C)]
            if cap is not None:
                row = [mpf(cap) * mpmath.tanh(v / mpf(cap)) for v in row]
            logp, p = self._brute_softmax_row(row)
            if zl:
                m = max(row) if row else mpf("-inf")
                lses[pos] = (mpf("nan") if any(mpmath.isnan(v) for v in logp) else
                             m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in row)))
            if prob:
                a = [w[c] * ((1 - eps) * mpf(float(tf[at(c)])) + eps / C) if eps else w[c] * mpf(float(tf[at(c)]))
                     for c in range(C)]
            elif int(tf[pos]) == ii:
                a = None
            else:
                t = int(tf[pos])
                a = [((1 - eps) * w[c] if c == t else zero) + (eps / C * w[c] if eps else zero) for c in range(C)]
            rows.append((pos, at, logp, p, a))
        pos_shape = () if x.ndim == 1 else (x.shape[0],) + tuple(x.shape[2:])
        kept = mpf(sum(1 for *_, a in rows if a is not None))  # the z-loss mean's denominator
        if prob:
            denom = mpf(len(rows))
        else:
            denom = mpmath.fsum(w[int(tf[pos])] for pos, _, _, _, a in rows if a is not None)
        if wrt is None:
            nll, smooth = {}, {}
            for pos, _, logp, _, a in rows:
                if prob:
                    nll[pos] = -mpmath.fsum(a[c] * logp[c] for c in range(C))
                    smooth[pos] = zero
                elif a is None:
                    nll[pos] = smooth[pos] = zero
                else:
                    t = int(tf[pos])
                    nll[pos] = -(w[t] * logp[t])
                    smooth[pos] = -mpmath.fsum(w[c] * logp[c] for c in range(C)) if eps else zero
            keep, spread = (1 - eps, eps / C) if eps and not prob else (mpf(1), zero)
            zsq = {pos: (zl * lses[pos] ** 2 if a is not None else zero) for pos, _, _, _, a in rows} if zl else {}

            def combine(n, s):
                return n if not eps or prob else keep * n + spread * s

            if red == "none":
                out = np.empty(pos_shape, dtype=object)
                for pos, *_ in rows:
                    out[pos] = combine(nll[pos], smooth[pos]) + (zsq[pos] if zl else zero)
                return out
            tot_n, tot_s = mpmath.fsum(nll.values()), mpmath.fsum(smooth.values())
            tot_z = mpmath.fsum(zsq.values()) if zl else zero
            if red == "mean":
                tot_n, tot_s = self._brute_div(tot_n, denom), self._brute_div(tot_s, denom)
                tot_z = self._brute_div(tot_z, kept)
            return np.array(combine(tot_n, tot_s) + tot_z, dtype=object)
        gof = self._brute_go(grad_output, pos_shape if red == "none" else (), red, denom)
        gof_z = self._brute_go(grad_output, pos_shape if red == "none" else (), red, kept)
        out = np.empty(x.shape, dtype=object)
        for pos, at, logp, p, a in rows:
            g = gof(pos)
            if wrt == "target":  # probability targets: d l_n / d p_c = -(1-eps) w_c logp_c
                for c in range(C):
                    out[at(c)] = -((1 - eps) * w[c] * logp[c]) * g
            elif a is None:  # absent from the loss
                for c in range(C):
                    out[at(c)] = zero
            else:
                big_a = mpmath.fsum(a)
                for c in range(C):
                    d = g * (big_a * p[c] - a[c])
                    if zl:
                        d += gof_z(pos) * 2 * zl * lses[pos] * p[c]
                    if cap is not None:
                        d *= mpmath.sech(_exact_mpf(x[at(c)]) / mpf(cap)) ** 2
                    out[at(c)] = d
        return out


class NllLoss(_ClassLoss):
    name = NLL
    logits = False
    positional = (_INPUT, Arg("target", "target", required=True))
    options = (_WEIGHT, _IGNORE, _REDUCTION)
    summary = "-w[t] * input[n, t] on arbitrary real inputs"
    notes = """\
- The input is taken as log-probabilities but may be any real: l_n = -w[t_n] x[n, t_n].
- Class-index targets only (int64); ignore_index and the weighted mean as for cross_entropy.
- The gradient is -w[t_n] g_n at the target of a kept position and exactly 0 elsewhere; a zero
  weight over a zero total weight is NaN (IEEE), as in torch.
"""

    def strategy(self, dtype=None, max_classes: int = 16, max_batch: int = 8, reductions=("none", "sum", "mean"),
                 weights: bool = True, ignore_index: bool = True, max_abs: float = 100.0):
        """nll_loss on arbitrary real (B, C) inputs in [-max_abs, max_abs]."""
        return self._strategy(dtype, max_classes, max_batch, reductions, (0.0,), weights, ignore_index,
                              False, max_abs)

    def numpy_value(self, nx, input, target, weight=None, ignore_index=-100, reduction="mean"):
        layout = ClassLayout(np.shape(input))
        logp = nx.work(layout.flat(np.asarray(input)))
        return _reduce_nll(nx, nll_parts(nx, logp, target, weight, ignore_index, 0.0), 0.0,
                           layout.classes, reduction, layout)

    def numpy_grads(self, nx, input, target, grad_output, weight=None, ignore_index=-100, reduction="mean"):
        layout = ClassLayout(np.shape(input))
        logp = nx.work(layout.flat(np.asarray(input)))
        parts = nll_parts(nx, logp, target, weight, ignore_index, 0.0)
        up = _upstream(nx, grad_output, reduction, nx.total(parts.wt))
        g = np.zeros_like(logp)
        # only the gathered target of a kept position is in the loss; its -w[t] * up follows
        # IEEE rules (weight 0 over a zero total weight is NaN), every other entry is exactly 0
        with np.errstate(invalid="ignore"):
            tgt = -parts.wt * np.broadcast_to(up, parts.wt.shape)
        g[np.arange(logp.shape[0]), parts.safe_t] = np.where(parts.valid, tgt, 0.0)
        return {"input": layout.unflat(g)}

    def conventions(self, args, kwargs, check):
        return _mean_over_no_weight(self, args, kwargs, check)


    def brute(self, args, kwargs, *, grad_output=None, wrt=None):
        """Plain loops (see LossDef.brute): l_n = -w[t_n] x[n, t_n] at a kept position, 0 at an ignored
        one; sum = fsum, mean = fsum / fsum(w[t_n] kept).  Gradient: -w[t_n] g_n at the target of a
        kept position, exactly 0 elsewhere."""
        mpf = mpmath.mpf
        x = np.asarray(args[0]).astype(np.float64)
        t = np.asarray(args[1]).astype(np.int64)
        C = x.shape[0] if x.ndim == 1 else x.shape[1]
        w = kwargs.get("weight")
        w = [mpf(1)] * C if w is None else [mpf(float(v)) for v in np.asarray(w).astype(np.float64)]
        ii = int(kwargs.get("ignore_index", -100))
        red = kwargs.get("reduction", "mean")
        pos_shape = () if x.ndim == 1 else (x.shape[0],) + tuple(x.shape[2:])
        positions = self._brute_positions(x)
        kept = [(pos, at, int(t[pos])) for pos, at in positions if int(t[pos]) != ii]
        denom = mpmath.fsum(w[tc] for _, _, tc in kept)
        if wrt is None:
            out = np.full(pos_shape, mpf(0), dtype=object)
            for pos, at, tc in kept:
                out[pos] = -(w[tc] * mpf(float(x[at(tc)])))
            if red == "none":
                return out
            tot = mpmath.fsum(out.reshape(-1))
            return np.array(self._brute_div(tot, denom) if red == "mean" else tot, dtype=object)
        gof = self._brute_go(grad_output, pos_shape if red == "none" else (), red, denom)
        out = np.full(x.shape, mpf(0), dtype=object)
        for pos, at, tc in kept:
            out[at(tc)] = -(w[tc] * gof(pos))
        return out


CE_LOSS, NLL_LOSS = CrossEntropy(), NllLoss()
LOSSES = (CE_LOSS, NLL_LOSS)


# ------------------------------------------------------------------------------ case families

def _weights(rng, C: int, dtype: str, kind: str, targets=None) -> np.ndarray:
    w = rng.uniform(0.25, 4.0, size=C)
    if kind == "zero":
        w[rng.permutation(C)[: max(1, C // 3)]] = 0.0
    elif kind == "present_zero":      # every class that occurs as a target has weight 0
        w[np.unique(targets[targets >= 0])] = 0.0
    elif kind == "mixed_sign":
        w *= rng.choice([-1.0, 1.0], size=C)
        w[0] = -abs(w[0])
    return cast(w, dtype)


def _confident_rows(rng, dtype: str, B: int, C: int, offset: float, spread: float, delta: float):
    """B rows sharing one set of logit values (rolled, so the target moves) whose target logit
    leads the runner-up by ~delta.  Returns (x, t, actual lead from the stored bits)."""
    others = cast(offset + spread * rng.standard_normal(C - 1), dtype)
    top = cast(float(others.astype(np.float64).max()) + delta, dtype)
    row = np.concatenate([top.reshape(1), others])
    shifts = rng.permutation(C)[:B] if B <= C else rng.integers(0, C, size=B)
    x = np.stack([np.roll(row, s) for s in shifts])
    t = np.asarray(shifts % C, dtype=np.int64)
    return x, t, lead(row, 0)


# ---------------------------------------------------------------- shared by CE and nll_loss

def _ignore_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    B, C = max(size.batch, 4), 5
    t = class_targets(rng, (B,), C)
    variants = [
        ("default -100, some ignored", -100, np.where(np.arange(B) % 3 == 0, -100, t)),
        ("custom in-range ignore_index", 1, np.where(np.arange(B) % 2 == 0, 1, t)),
        ("ignore_index >= C", C + 2, np.where(np.arange(B) % 3 == 1, C + 2, t)),
        ("all targets ignored", -100, np.full(B, -100)),
        ("custom ignore_index not present", 3, np.where(t == 3, 0, t)),
    ]
    i = 0
    for note, ii, tt in variants:
        for with_weight in (False, True):
            kw = {"ignore_index": ii, "reduction": reduction(i)}
            if with_weight:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(Call((x_of(rng, (B, C)), tt.astype(np.int64)), kw,
                                 meta={"note": note + (" + weight" if with_weight else "")}))
            i += 1
    return out


def _weight_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    B, C = max(size.batch, 4), 6
    for i, kind in enumerate(("positive", "zero", "present_zero", "mixed_sign")):
        for r in range(3):
            t = class_targets(rng, (B,), C)
            kw = {"weight": _weights(rng, C, dtype, kind, t), "reduction": reduction(i + r)}
            out.append(Call((x_of(rng, (B, C)), t), kw, meta={"note": f"{kind} weights"}))
    return out


def _spatial_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    C = 4
    for k, shape in enumerate([(2, C, 5), (2, C, 3, 2), (1, C, 2, 2, 2)]):
        for r in range(3):
            t = class_targets(rng, shape[:1] + shape[2:], C)
            kw = {"reduction": reduction(k + r)}
            if r == 1:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            if r == 2:
                t.reshape(-1)[0] = -100
            if loss == CE and r == 2:
                kw["label_smoothing"] = 0.1
            out.append(Call((x_of(rng, shape), t), kw,
                                 meta={"note": f"{len(shape) - 2} spatial dim(s)"}))
    return out


def _unbatched_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    for i, C in enumerate((1, 5, 40)):
        for r in range(3):
            t = np.asarray(rng.integers(0, C), dtype=np.int64)
            kw = {"reduction": reduction(i + r)}
            note = "plain"
            if r == 1:
                kw["weight"], note = _weights(rng, C, dtype, "positive"), "weight"
                if loss == CE:
                    kw["label_smoothing"], note = 0.2, "weight + label_smoothing"
            if r == 2 and C > 1:
                t, note = np.asarray(-100, dtype=np.int64), "target ignored"
            out.append(Call((x_of(rng, (C,)), t), kw,
                                 meta={"note": f"unbatched (C,)={C}: {note}"}))
    return out


def _logits(sigma=4.0):
    return lambda rng, shape, dtype: normal(rng, sigma, shape, dtype)


def _bind(dtype, gen):
    return lambda rng, shape: gen(rng, shape, dtype)


# ---------------------------------------------------------------- cross_entropy

@CE_LOSS.family("ce.random")
def ce_random(rng, dtype, size):
    """Moderate N(0, sigma^2) logits, sigma in {1, 4, 16}, plus ordinal and log-uniform styles."""
    out, i = [], 0
    for sigma in (1.0, 4.0, 16.0):
        for C in size.classes:
            for _ in range(size.repeats):
                x = normal(rng, sigma, (size.batch, C), dtype)
                out.append(Call((x, class_targets(rng, (size.batch,), C)), {"reduction": reduction(i)}, meta={"note": f"N(0, {sigma:g}^2) logits, C={C}"}))
                i += 1
    for style, params in (("ordinal", {"lo": -30.0, "hi": 30.0}), ("log", {"lo": 1e-3, "hi": 50.0})):
        C = size.classes[-1]
        x = sample(style, rng, (size.batch, C), dtype, **params)
        out.append(Call((x, class_targets(rng, (size.batch,), C)), {"reduction": reduction(i)}, meta={"note": f"{style}-sampled logits {params}"}))
        i += 1
    return out


@CE_LOSS.family("ce.ties")
def ce_ties(rng, dtype, size):
    """Tied logits: whole rows equal (incl. [-60000]*3), target tied with the max, tied runners-up."""
    out = []
    for i, C in enumerate((2, 3, 7)):
        v = float(rng.normal(0, 8))
        equal = np.full((size.batch, C), v)
        tied_max = normal(rng, 2.0, (size.batch, C), dtype).astype(np.float64)
        t = class_targets(rng, (size.batch,), C)
        for n in range(size.batch):
            tied_max[n, t[n]] = tied_max[n].max()
            tied_max[n, (t[n] + 1) % C] = tied_max[n].max()
        for j, (x, note) in enumerate(((equal, f"all logits equal {v:.3g}"), (tied_max, "target tied with max"))):
            out.append(Call((cast(x, dtype), t), {"reduction": reduction(i + j)},
                                 meta={"note": note}))
    big = cast(np.full((1, 3), -60000.0), dtype)
    for r in range(3):
        out.append(Call((big, np.zeros(1, np.int64)), {"reduction": reduction(r)},
                             meta={"note": "equal large logits [-60000]*3: exact loss is log 3"}))
    return out


@CE_LOSS.family("ce.tiny_classes")
def ce_tiny(rng, dtype, size):
    """C = 1 (loss identically 0) and C = 2."""
    out = []
    for C in (1, 2):
        for r in range(3):
            x = normal(rng, 4.0, (size.batch, C), dtype)
            kw = {"reduction": reduction(r)}
            if r == 1:
                kw["label_smoothing"] = 0.1
            out.append(Call((x, class_targets(rng, (size.batch,), C)), kw,
                                 meta={"note": f"C={C}", "drive": {"name": "classes", "value": float(C)}}))
    return out


@CE_LOSS.family("ce.class_sweep")
def ce_class_sweep(rng, dtype, size):
    """Class-count sweep C in size.sweep (2 rows) and large C (>= 8192, 1-2 rows)."""
    out = []
    for i, C in enumerate(size.sweep + size.large):
        rows = 2 if C <= 4096 else 1 + (i % 2 if size.name == "full" else 0)
        x = normal(rng, 4.0, (rows, C), dtype)
        out.append(Call((x, class_targets(rng, (rows,), C)), {"reduction": reduction(i)},
                             meta={"note": f"C={C}", "drive": {"name": "classes", "value": float(C)}}))
    return out


@CE_LOSS.family("ce.absorption")
def ce_absorption(rng, dtype, size):
    """Long rows with one dominant logit and n-1 terms just below half an ulp of 1 (absorption)."""
    n = size.large[0] // 4 if size.large else 512  # 2048 in gate: long enough to absorb hundreds of terms
    x = absorption_rows(rng, dtype, n)
    dom = int(np.argmax(x[1].astype(np.float64)))
    t = np.array([0, (dom + 1) % n])  # the dominant class, and a small one
    return [Call((x, t), {"reduction": "none"},
                      meta={"note": f"C={n}, one logit 0, the rest at e^-d ~ 0.7u",
                            "drive": {"name": "classes", "value": float(n)}})]


def _offsets(dtype):
    edge = exp_edge(dtype)
    offs = [("exp-overflow edge +", edge, 1.0), ("exp-overflow edge -", -edge, 1.0),
            ("+-1e4 logits", 0.0, 1e4)]
    for s in (1e4, 1e6, 1e8):
        if fits(s, dtype):
            offs.append((f"common shift +{s:g}", s, 1.0))
    if fits(1e6, dtype):
        offs.append(("common shift -1e6", -1e6, 1.0))
    else:
        offs.append(("common shift -3e4", -3e4, 1.0))
        offs.append(("common shift +3e4", 3e4, 1.0))
    return offs


@CE_LOSS.family("ce.extreme")
def ce_extreme(rng, dtype, size):
    """Extreme logits: +-1e4, each dtype's exp-overflow edge, large common shifts, near-max values."""
    out, i = [], 0
    leads = (-20.0, 0.0, 2.0, 30.0)[: max(2, min(4, size.points))]
    for note, off, spread in _offsets(dtype):
        for d in leads:
            x, t, actual = _confident_rows(rng, dtype, min(size.batch, 3), 8, off, spread, d)
            out.append(Call((x, t), {"reduction": reduction(i)},
                                 meta={"note": f"{note}, lead ~{d:g}", "drive": {"name": "lead", "value": actual}}))
            i += 1
    h = float(finfo(dtype).max) / 2
    row = cast([h, -h, h / 4, -h / 4, 0.0, h], dtype)
    for r, tgt in enumerate((0, 1, 4)):
        x = np.stack([row, np.roll(row, 1)])
        t = np.array([tgt, (tgt + 1) % 6], np.int64)
        out.append(Call((x, t), {"reduction": reduction(r)},
                             meta={"note": "logits at half the dtype's max (x - max overflows naively)",
                                   "drive": {"name": "lead", "value": lead(row, tgt)}}))
    return out


@CE_LOSS.family("ce.confident_cliff")
def ce_cliff(rng, dtype, size):
    """Target ahead by lead near ln(1/u) + ln(C-1) and past it, where the true loss is tiny but > 0."""
    out, i = [], 0
    p = precision(dtype)
    under = -math.log(float(finfo(dtype).smallest_subnormal))
    for C in size.cliff_classes:
        star = p * math.log(2) + math.log(C - 1)
        dense = np.linspace(star - 4, star + 4, max(3, size.points - 3))
        past = np.linspace(star + 6, under + math.log(C - 1) + 4, 3)
        for d in np.concatenate([dense, past]):
            x, t, actual = _confident_rows(rng, dtype, 2, C, 0.0, 1.0, float(d))
            out.append(Call((x, t), {"reduction": reduction(i)},
                                 meta={"note": f"C={C}, cliff at lead {star:.2f}",
                                       "drive": {"name": "lead", "value": actual}}))
            i += 1
    return out


@CE_LOSS.family("ce.masked")
def ce_masked(rng, dtype, size):
    """-inf logits: in non-target classes, in the target class, and a whole row of -inf."""
    out, i = [], 0
    B, C = 3, 5
    for kind in ("non-target", "target", "row"):
        for extra in ({}, {"label_smoothing": 0.1}, {"weight": True}):
            x = normal(rng, 3.0, (B, C), dtype)
            t = class_targets(rng, (B,), C)
            if kind == "non-target":
                for n in range(B):
                    x[n, [(t[n] + 1) % C, (t[n] + 3) % C]] = -np.inf
            elif kind == "target":
                x[1, t[1]] = -np.inf
            else:
                x[2, :] = -np.inf
            kw = {"reduction": reduction(i), **extra}
            if "weight" in kw:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(Call((x, t), kw,
                                 meta={"note": f"-inf in {kind}" + (f" with {min(extra)}" if extra else "")}))
            i += 1
    return out


@CE_LOSS.family("ce.ignore_index")
def ce_ignore(rng, dtype, size):
    """ignore_index: default -100, custom in-range, >= C, some and all targets ignored (+ weight)."""
    return _ignore_cases(CE, "ce.ignore_index", rng, dtype, size, _bind(dtype, _logits()))


@CE_LOSS.family("ce.weight")
def ce_weight(rng, dtype, size):
    """Class weights: random positive, some zero, all present targets zero (mean = 0/0), mixed sign."""
    return _weight_cases(CE, "ce.weight", rng, dtype, size, _bind(dtype, _logits()))


@CE_LOSS.family("ce.label_smoothing")
def ce_smoothing(rng, dtype, size):
    """label_smoothing in {0, 0.1, 0.2, 1.0}: alone, with weight, with ignored targets, with both."""
    out, i = [], 0
    B, C = max(size.batch, 4), 6
    for eps in (0.0, 0.1, 0.2, 1.0):
        for w, ign in ((False, False), (True, False), (False, True), (True, True)):
            t = class_targets(rng, (B,), C)
            if ign:
                t[::2] = -100
            kw = {"label_smoothing": eps, "reduction": reduction(i)}
            if w:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(Call((normal(rng, 4.0, (B, C), dtype), t), kw,
                                 meta={"note": f"eps={eps}" + (" + weight" if w else "") + (" + ignored" if ign else "")}))
            i += 1
    return out


@CE_LOSS.family("ce.probability_target")
def ce_prob(rng, dtype, size):
    """Probability targets: soft, one-hot, with smoothing, with weight; also spatial and unbatched."""
    out, i = [], 0
    B, C = max(size.batch, 3), 5
    for kind in ("soft", "one_hot"):
        for eps, w in ((0.0, False), (0.1, False), (0.0, True), (0.2, True)):
            if kind == "soft":
                y = probabilities(rng, (B, C), dtype)
            else:
                y = cast(np.eye(C)[class_targets(rng, (B,), C)], dtype)
            kw = {"reduction": reduction(i)}
            if eps:
                kw["label_smoothing"] = eps
            if w:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(Call((normal(rng, 4.0, (B, C), dtype), y), kw,
                                 meta={"note": f"{kind} targets, eps={eps}" + (" + weight" if w else "")}))
            i += 1
    for shape, axis in (((2, C, 3), 1), ((C,), 0)):
        for r in range(3):
            kw = {"reduction": reduction(r)}
            if r == 1:
                kw["label_smoothing"] = 0.1
            if r == 2:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(Call((normal(rng, 4.0, shape, dtype), probabilities(rng, shape, dtype, axis)), kw, meta={"note": f"soft targets, shape {shape}"}))
    return out


@CE_LOSS.family("ce.probability_mass")
def ce_prob_mass(rng, dtype, size):
    """Probability targets whose rows do not sum to 1 (mass 0.5, 2, 3, 0), sparse rows with exact zeros, entries above 1.

    torch takes any float target as -sum_c w_c y_c log p_c without normalising it (its docs ask
    for entries in [0, 1] and check nothing), so lse - sum y x, which holds only for unit mass,
    is a semantic error that ce.probability_target (Dirichlet rows, mass ~1) cannot show.
    Negative entries are left out: nothing documents them."""
    out = []
    B, C = 4, 5

    def soft(mass, shape=(B, C), axis=-1):
        return cast(np.asarray(mass, np.float64) * probabilities(rng, shape, "float64", axis), dtype)

    sparse = probabilities(rng, (B, C), "float64") * (rng.random((B, C)) < 0.5)
    sparse[np.arange(B), rng.integers(0, C, B)] += 0.25
    counts = rng.integers(0, 4, (B, C)).astype(np.float64)
    counts[0] = [3, 0, 0, 0, 0][:C]  # a one-hot scaled by 3
    variants = [
        ("rows of mass 0.5", soft(0.5), {}),
        ("rows of mass 2", soft(2.0), {}),
        ("masses 0 (an all-zero row), 0.25, 1, 4", soft(np.array([[0.0], [0.25], [1.0], [4.0]])), {}),
        ("sparse rows with exact zeros, mass 1", cast(sparse / sparse.sum(-1, keepdims=True), dtype), {}),
        ("sparse rows with exact zeros + label_smoothing", cast(sparse / sparse.sum(-1, keepdims=True), dtype),
         {"label_smoothing": 0.1}),
        ("counts 0..3 (entries above 1)", cast(counts, dtype), {}),
        ("counts 0..3 + weight + label_smoothing", cast(counts, dtype),
         {"weight": _weights(rng, C, dtype, "positive"), "label_smoothing": 0.2}),
        ("rows of mass 3, spatial (2, C, 3)", soft(3.0, (2, C, 3), 1), {}),
        ("unbatched (C,) of mass 1.5 + weight", soft(1.5, (C,), 0), {"weight": _weights(rng, C, dtype, "positive")}),
    ]
    for i, (note, y, kw) in enumerate(variants):
        out.append(Call((normal(rng, 4.0, y.shape, dtype), y), {**kw, "reduction": reduction(i)},
                        meta={"note": note}))
    return out


@CE_LOSS.family("ce.spatial")
def ce_spatial(rng, dtype, size):
    """Spatial inputs (N, C, d1..dk), k = 1..3, plain, weighted and with ignored targets."""
    return _spatial_cases(CE, "ce.spatial", rng, dtype, size, _bind(dtype, _logits()))


@CE_LOSS.family("ce.unbatched")
def ce_unbatched(rng, dtype, size):
    """Unbatched (C,) input with a 0-d int64 target."""
    return _unbatched_cases(CE, "ce.unbatched", rng, dtype, size, _bind(dtype, _logits()))


# softcap / z_loss (reference/losses/_softcap.py), after the families above: suites keep their order
for _name, _fn in LLM_FAMILIES:
    CE_LOSS.family(_name)(_fn)


# ---------------------------------------------------------------- nll_loss

def _reals(rng, shape, dtype):
    """Arbitrary real inputs: signed log-uniform magnitudes, not only log-probabilities."""
    top = min(1e4, float(finfo(dtype).max) / 8)
    return log_uniform(rng, 1e-3, top, shape, dtype, signed=True)


@NLL_LOSS.family("nll.random")
def nll_random(rng, dtype, size):
    """Arbitrary real inputs: N(0, 16), signed log-uniform, ordinal-uniform, log-probability-like <= 0."""
    out, i = [], 0
    gens = [("N(0, 4^2)", lambda s: normal(rng, 4.0, s, dtype)),
            ("signed log-uniform", lambda s: _reals(rng, s, dtype)),
            ("ordinal-uniform in [-1e3, 1e3]", lambda s: ordinal_uniform(rng, -1e3, 1e3, s, dtype)),
            ("log-probability-like (<= 0)", lambda s: -log_uniform(rng, 1e-4, 30.0, s, dtype))]
    for note, g in gens:
        for C in size.classes:
            out.append(Call((g((size.batch, C)), class_targets(rng, (size.batch,), C)),
                                 {"reduction": reduction(i)}, meta={"note": f"{note}, C={C}"}))
            i += 1
    for j, C in enumerate(size.large if size.name == "full" else ()):
        out.append(Call((normal(rng, 4.0, (1, C), dtype), class_targets(rng, (1,), C)),
                             {"reduction": reduction(j)},
                             meta={"note": f"C={C}", "drive": {"name": "classes", "value": float(C)}}))
    return out


@NLL_LOSS.family("nll.extreme")
def nll_extreme(rng, dtype, size):
    """Inputs at +-inf and subnormal (sums that overflow are nll.sum_overflow)."""
    return _nll_specials(rng, dtype, "nll.extreme", [
        ("inf at target and non-target", np.inf), ("-inf at target", -np.inf),
        ("subnormal", float(finfo(dtype).smallest_subnormal) * 3)])


@NLL_LOSS.family("nll.sum_overflow")
def nll_sum_overflow(rng, dtype, size):
    """Target inputs at 0.75 * max: each term is finite, the sum overflows, the mean need not.

    Its own family because it tells implementations apart by how they accumulate (a running sum in
    the storage format overflows where the exact mean is finite)."""
    return _nll_specials(rng, dtype, "nll.sum_overflow", [("near max: sum overflows", float(finfo(dtype).max) * 0.75)])


def _nll_specials(rng, dtype, fam, specials):
    out = []
    B, C = 4, 3
    for i, (note, v) in enumerate(specials):
        for r in range(3):
            x = normal(rng, 2.0, (B, C), dtype).astype(np.float64)
            t = class_targets(rng, (B,), C)
            if "non-target" in note:
                x[0, (t[0] + 1) % C] = v
                x[1, t[1]] = v
            elif "-inf" in note:
                x[1, t[1]] = v
            else:
                x[np.arange(B), t] = v * rng.choice([1.0, -1.0], size=B) if "subnormal" in note else v
            out.append(Call((cast(x, dtype), t), {"reduction": reduction(i + r)},
                                 meta={"note": note}))
    return out


@NLL_LOSS.family("nll.ignore_index")
def nll_ignore(rng, dtype, size):
    """ignore_index: default -100, custom in-range, >= C, some and all targets ignored (+ weight)."""
    return _ignore_cases(NLL, "nll.ignore_index", rng, dtype, size, lambda r, s: _reals(r, s, dtype))


@NLL_LOSS.family("nll.weight")
def nll_weight(rng, dtype, size):
    """Class weights: random positive, some zero, all present targets zero (mean = 0/0), mixed sign."""
    return _weight_cases(NLL, "nll.weight", rng, dtype, size, lambda r, s: _reals(r, s, dtype))


@NLL_LOSS.family("nll.spatial")
def nll_spatial(rng, dtype, size):
    """Spatial inputs (N, C, d1..dk), k = 1..3."""
    return _spatial_cases(NLL, "nll.spatial", rng, dtype, size, lambda r, s: _reals(r, s, dtype))


@NLL_LOSS.family("nll.unbatched")
def nll_unbatched(rng, dtype, size):
    """Unbatched (C,) input with a 0-d int64 target."""
    return _unbatched_cases(NLL, "nll.unbatched", rng, dtype, size, lambda r, s: _reals(r, s, dtype))
