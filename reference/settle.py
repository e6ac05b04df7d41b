"""Precision escalation: evaluate a loss until every output element settles in its format.

Stage 0 (vectorised): the kernel runs in float64 and in long double.  An element is accepted when
the long-double value, widened by a bound on its evaluation error, (16 + 4 log2 n) * u_ld * cond (cond
is the loss's condition scale, which already contains every cancellation the formula can suffer),
rounds to one value of the output format -- and, for formats of at most 24 bits, the float64 value
rounds to that value too.  This settles nearly all float16/bfloat16/float32 elements and most
elementwise float64 ones at NumPy speed.

Stage 1 (Ziv, in mpmath): the rest is evaluated at precision P and P + 32, with P raised first
until P exceeds the output precision by a margin plus the cancellation bits log2(cond/|v|).  An
element is accepted when both evaluations round to the same value; otherwise P doubles, up to
:data:`PREC_CAP` bits, beyond which the element is reported undetermined (NaN plus a flag).
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
from mpmath import libmp

from .formats import Format, round_float, round_mpf
from .numerics import F64, LD, MP

PREC_CAP = 4096
GUARD = 12  # bits the working precision must keep beyond the output precision


def _div(ns, a, b):
    """a / b with IEEE semantics for b == 0 in every namespace (mpmath would raise)."""
    if ns is MP:
        if b == 0:
            if mpmath.isnan(a) or a == 0:
                return mpmath.mpf("nan")
            return mpmath.mpf("inf") if a > 0 else mpmath.mpf("-inf")
        return a / b
    with np.errstate(all="ignore"):
        return a / b


class Evaluation:
    """One output (the loss value, or its gradient w.r.t. argument ``wrt``) of one problem, in row space."""

    def __init__(self, problem, kernel, grad_output=None, wrt: str | None = None):
        self.p = problem
        self.k = kernel
        self.wrt = wrt
        self.want_grad = wrt is not None
        self.reduced = problem.reduced
        self.go = grad_output  # float64 array: output shape, or 0-d when reduced

    # -- layout ---------------------------------------------------------------------------------
    @property
    def separable(self) -> bool:
        """Can an element be recomputed from its own row alone?"""
        return self.want_grad or not self.reduced

    def _rows(self, idx):
        if idx is None:
            return self.p.rows
        return {k: v[idx] for k, v in self.p.rows.items()}

    def _gof(self, ns, idx):
        """Per-row grad factors in row space (the VJP seed), the mean's D computed over all rows."""
        if not self.reduced:
            rows_go = self.p.go_rows(self.go)
            return ns.asarray(rows_go if idx is None else rows_go[idx])
        n = self.p.m if idx is None else len(idx)
        go = ns.asarray(np.full(n, float(self.go)))
        if self.p.reduction != "sum":
            d, _ = self.k.denominator(ns, self.p.rows)
            if ns is MP:
                go = np.array([_div(ns, g, d) for g in go], dtype=object)
            else:
                go = _div(ns, go, d)
        return go

    # -- evaluation -----------------------------------------------------------------------------
    def compute(self, ns, idx=None):
        """(values, magnitudes) in row space: (M_sub, K), or (1, 1) for a reduced value."""
        rows = self._rows(idx)
        if self.want_grad:
            g, mag = self.k.grad(ns, rows, self._gof(ns, idx), self.wrt)
            return _2d(g), (None if mag is None else _2d(mag))
        parts = self.k.parts(ns, rows)
        if not self.reduced:
            v = mag = None
            for mult, val, mg in parts:
                mlt = mult(ns)
                term = val if _is_one(mlt) else val * mlt
                v = term if v is None else v + term
                mm = mg * abs(mlt)
                mag = mm if mag is None else mag + mm
            return _2d(v), _2d(mag)
        v = ns.const(0)
        mag = 0.0
        d = None
        if self.p.reduction != "sum":
            d, _ = self.k.denominator(ns, self.p.rows)
        for mult, val, mg in parts:
            tot = ns.sum(val)
            if d is not None:
                tot = _div(ns, tot, d)
            mlt = mult(ns)
            v = v + mlt * tot
            mag += float(abs(mlt)) * float(np.sum(ns.to_float64(mg)))
        v = np.array([[v]], dtype=object if ns is MP else ns.dtype)
        return v, np.array([[mag]])

    def scales(self):
        """(cond, scale, nterms) float64/int64 in row space."""
        rows = self.p.rows
        if self.want_grad:
            gof = np.asarray(self._gof(F64, None), np.float64)
            cond, scale, nterms = self.k.grad_scales(rows, gof, self.wrt)
            return _2d(cond), _2d(scale), _2d(nterms)
        cond, scale, nterms = self.k.scales(rows)
        if not self.reduced:
            return _2d(cond), _2d(scale), _2d(nterms)
        with np.errstate(all="ignore"):
            c, s = float(np.sum(cond)), float(np.sum(scale))
            nt = int(np.max(nterms, initial=1)) * max(self.p.m, 1)
            if self.p.reduction != "sum":
                d, dabs = self.k.denominator(F64, rows)
                v = float(self.compute(F64)[0][0, 0])
                ad = abs(float(d))
                c = (c + abs(v) * dabs) / ad if ad else math.inf
                s = s / ad if ad else math.inf
        return np.array([[c]]), np.array([[s]]), np.array([[nt]], np.int64)

    def to_output(self, a):
        a = np.asarray(a)
        if self.want_grad:
            return self.p.rows_to_arg(self.wrt, a)
        if self.reduced:
            return a.reshape(())
        return self.p.rows_to_output(a)


def _is_one(x) -> bool:
    try:
        return x == 1
    except Exception:  # noqa: BLE001 - mpf comparisons never raise, numpy scalars neither
        return False


def _2d(a):
    a = np.asarray(a)
    return a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1)


def ld_array_to_mpf(v: np.ndarray) -> list:
    """Exact mpfs of a 1-d float64/long double array, vectorised up to the object creation."""
    v = np.asarray(v, np.longdouble)
    fin = np.isfinite(v) & (v != 0)
    m, e = np.frexp(np.where(fin, v, 1))
    man = np.ldexp(m, 64)  # integers held exactly (64-bit mantissa at most)
    hi = man.astype(np.float64)
    lo = (man - hi.astype(np.longdouble)).astype(np.float64)
    out = []
    for f, h, l_, ee, raw in zip(fin.tolist(), hi.tolist(), lo.tolist(), (e - 64).tolist(), v.astype(np.float64).tolist()):
        if f:
            out.append(mpmath.mpf(libmp.from_man_exp(int(h) + int(l_), ee)))
        else:
            out.append(mpmath.mpf(raw))
    return out


def _same(a: float, b: float) -> bool:
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))


def settle(ev: Evaluation, fmt: Format):
    """Settle every element of ``ev`` for ``fmt``.

    Returns (values, rounded, undetermined, cond, scale, nterms), all in row space.
    """
    cond, scale, nterms = ev.scales()
    shape = cond.shape
    n = cond.size
    values = np.empty(n, dtype=object)
    done = np.zeros(n, dtype=bool)
    ncols = shape[1]
    with np.errstate(all="ignore"):
        v64 = np.asarray(ev.compute(F64)[0], np.float64).reshape(-1)
        vld = np.asarray(ev.compute(LD)[0], np.longdouble).reshape(-1)
        # every kernel is written so that its evaluation error is relative to the magnitudes of
        # its terms (log1p for log-sum-exp, exclusion sums for gradients), which cond contains
        # sums are pairwise (FloatNS.sum), so the term count enters through log2 n
        depth = np.ceil(np.log2(np.maximum(nterms.reshape(-1), 1)))
        bound = ((16 + 4 * depth) * LD.u * cond.reshape(-1)).astype(np.longdouble)
        fin = np.isfinite(vld) & np.isfinite(bound)
        lo = round_float(np.where(fin, vld - bound, 0), fmt)
        hi = round_float(np.where(fin, vld + bound, 0), fmt)
        r64 = round_float(v64, fmt)
        rld = round_float(vld, fmt)
    ok = fin & (lo == hi) & (np.signbit(lo) == np.signbit(hi))
    if fmt.p <= 24:
        ok &= (r64 == rld) | (np.isnan(r64) & np.isnan(rld))
    # identical specials at both precisions are exact (inf/nan arise only from exact conditions)
    spec = ~np.isfinite(vld) & ~np.isfinite(v64) & (
        (np.isnan(vld) & np.isnan(v64)) | (vld.astype(np.float64) == v64))
    ok |= spec
    okidx = np.flatnonzero(ok)
    for i, val in zip(okidx, ld_array_to_mpf(vld[okidx])):
        values[i] = val
    rounded = np.where(ok, rld, np.nan)
    done |= ok

    cflat, nflat = cond.reshape(-1), nterms.reshape(-1)
    est = np.abs(v64)
    need = np.zeros(n)
    with np.errstate(all="ignore"):
        ratio = (16 + 2 * nflat) * cflat / est
        good = np.isfinite(ratio) & (ratio > 1)
        need[good] = np.log2(ratio[good])
    prec = fmt.p + GUARD + 20
    while not done.all() and prec <= PREC_CAP:
        todo = np.flatnonzero(~done)
        if ev.separable:
            rows = np.unique(todo // ncols)
            idx = rows
        else:
            rows, idx = np.array([0]), None
        extra = math.ceil(float(np.max(need[todo]))) if np.isfinite(np.max(need[todo])) else 0
        p_eff = max(prec, fmt.p + GUARD + extra + 8)
        p_eff = min(p_eff, PREC_CAP)
        with mpmath.workprec(p_eff):
            va = ev.compute(MP, idx)[0]
        with mpmath.workprec(p_eff + 32):
            vb = ev.compute(MP, idx)[0]
        for j, r in enumerate(rows):
            for c in range(ncols):
                i = r * ncols + c
                if done[i]:
                    continue
                a, b = va[j, c], vb[j, c]
                if p_eff - need[i] < fmt.p + GUARD:
                    continue  # not enough bits survive the cancellation yet
                rb = round_mpf(b, fmt)
                if _same(round_mpf(a, fmt), rb):
                    values[i] = b
                    rounded[i] = rb
                    done[i] = True
        if p_eff >= PREC_CAP:
            break
        prec = 2 * p_eff
    undetermined = ~done
    for i in np.flatnonzero(undetermined):
        values[i] = mpmath.mpf("nan")
    return (values.reshape(shape), rounded.reshape(shape), undetermined.reshape(shape), cond, scale, nterms)
