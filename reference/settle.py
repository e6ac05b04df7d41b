"""Precision escalation: evaluate a loss until every output element settles in its format.

An element is accepted only when an enclosure of its exact value rounds to a single value of the
output format; the rest is reported undetermined, never guessed (docs/oracle.md, "Settling").

Stage 0 (vectorised): for formats of at most 24 bits and kernels that allow it (``stage64``),
float64 alone first, with u = 4 * 2^-53, an absolute slack and a 2^8-wide margin; then long double
(and quad); accepted when the value +- the kernel's error bound (16 + 4 log2 n) u (cond + |v|)
rounds to one value (and, for formats of at most 24 bits, the float64 value rounds to it too).
Unreduced calls are settled in blocks of CHUNK_ROWS rows.  The exact path: rows a kernel can
evaluate exactly (``Kernel.exact_prec``) are computed once without rounding and rounded directly,
so a dyadic value on a midpoint is decided correctly.  The split stage: an element a kernel writes
as an exact dyadic part plus a tail of known sign (``Kernel.split``) is decided from that sum, so a
midpoint next to a tail no precision can see is settled by the tail's sign.  Stage 1 (mpmath): the rest at P and P + 32 bits; accepted
when [v - b, v + b] with b = (64 + 8 log2 n) 2^-(P+32) (cond + |v|) rounds to one value that the
P value agrees with; P doubles up to :data:`PREC_CAP`.  A reduced value goes row by row first
(:func:`_reduced_rows_stage`: each row at the precision its share of the error budget needs, an
exact sum, and on escalation only the rows still above their share again).  A value exactly on a
midpoint because a tiny term lies below both precisions is never decided by the tie rule.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from typing import NamedTuple

import mpmath
import numpy as np
from mpmath import libmp

from .formats import Format, round_float, round_mpf, round_raw, ulp_of_value
from .numerics import F64, LD, MP, QUAD, ieee_div

FIGURE_ULP_EXP = -10
FIGURE_ULP = 2.0 ** FIGURE_ULP_EXP  # a stored exact value is within this many ulps: figures right to 1e-3 ulp
PREC_CAP = 32768  # e^-20000 (±1e4 logits in the *.extreme families) is visible next to its exact part
WORK_CAP = 2 ** 26  # past 4096 bits, escalate only while rows x columns x bits stays below this
EXACT_CAP = 20000  # the most bits an exact (polynomial) evaluation may take
GUARD = 12  # bits the working precision must keep beyond the output precision
CHUNK_ROWS = 1 << 15  # unreduced calls settle this many rows at a time: the temporaries stay in cache
PROGRESS_ELEMENTS = 1_000_000  # calls this big say how settling goes (logger "losscheck.oracle", INFO)
LOG = logging.getLogger("losscheck.oracle")


class Evaluation:
    """One output (the loss value, or its gradient w.r.t. argument ``wrt``) of one problem, in row space."""

    def __init__(self, problem, kernel, grad_output=None, wrt: str | None = None):
        self.p = problem
        self.k = kernel
        self.wrt = wrt
        self.want_grad = wrt is not None
        self.reduced = problem.reduced
        self.go = grad_output  # float64 array: output shape, or 0-d when reduced
        self.undivided = False  # compute without the mean's division (the exact path divides after)

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
        if self.p.reduction != "sum" and not self.undivided:
            d, _ = self.k.denominator(ns, self.p.rows)
            if d == 0:
                # a mean over nothing (total weight 0): the loss is constant in the input (0/0 or
                # +-inf), its derivative undefined -- NaN, as torch's autograd gives
                go = np.array([ns.const("nan")] * n, dtype=object) if ns is MP else np.full(n, np.nan, ns.dtype)
            elif ns is MP:
                go = np.array([ieee_div(ns, g, d) for g in go], dtype=object)
            else:
                go = ieee_div(ns, go, d)
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
        if self.p.reduction != "sum" and not self.undivided:
            d, _ = self.k.denominator(ns, self.p.rows)
        for mult, val, mg in parts:
            tot = ns.sum(val)
            if d is not None:
                tot = ieee_div(ns, tot, d)
            mlt = mult(ns)
            v = v + mlt * tot
            mag += float(abs(mlt)) * float(np.sum(ns.to_float64(mg)))
        v = np.array([[v]], dtype=object if ns is MP else ns.dtype)
        return v, np.array([[mag]])

    def row_values(self, ns, idx=None):
        """The unreduced loss of each row (M_sub,), whatever the reduction: the terms a reduced
        value sums (``compute`` of a reduced value is their sum, divided by the mean's denominator)."""
        v = None
        for mult, val, _ in self.k.parts(ns, self._rows(idx)):
            mlt = mult(ns)
            term = val if _is_one(mlt) else val * mlt
            v = term if v is None else v + term
        return np.asarray(v).reshape(-1)

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

    def exact_prec(self, idx=None):
        """(bits, d) when the kernel can name a precision at which ``compute(MP, idx)`` is exact
        with the mean's division left out (its formula is sums and products of the inputs:
        ``Kernel.exact_prec``; values and gradients are linear in the division), d being that
        denominator (None for 'sum' and unreduced outputs); None otherwise.  An exact value needs
        no error bound, so a dyadic result on a rounding midpoint is decided correctly."""
        f = getattr(self.k, "exact_prec", None)
        if f is None:
            return None
        go = None if self.go is None else np.asarray(self.go, np.float64)
        got = f(self._rows(idx), self.wrt, go)
        if got is None:
            return None
        bits, mask = got if isinstance(got, tuple) else (got, None)  # mask: the rows that are exact
        if mask is not None and not self.separable and not np.all(mask):
            return None  # a reduced value is exact only when every row is
        d = None
        if self.reduced and self.p.reduction != "sum":
            with mpmath.workprec(bits):
                d, _ = self.k.denominator(MP, self.p.rows)
        return bits, d, mask

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
    """(M,) or (M, K) row results as (M, K); empty inputs stay empty (torch returns empty tensors)."""
    a = np.asarray(a)
    if not a.ndim:
        return a.reshape(1, 1)
    return a.reshape(a.shape[0], int(np.prod(a.shape[1:], dtype=np.int64)) if a.ndim > 1 else 1)


def exact_mpf(man: int, exp: int) -> mpmath.mpf:
    """man * 2**exp as an mpf, exactly, whatever the caller's mpmath precision."""
    v = mpmath.mpf.__new__(mpmath.mpf)
    v._mpf_ = libmp.from_man_exp(man, exp)  # exact: from_man_exp rounds only when given a precision
    return v


def _wrap(tup) -> mpmath.mpf:
    v = mpmath.mpf.__new__(mpmath.mpf)
    v._mpf_ = tup
    return v


def ld_array_to_mpf(v: np.ndarray) -> list:
    """Exact mpfs of a 1-d float64/long double array, vectorised up to the object creation (never
    rounded to the caller's mpmath precision)."""
    v = np.asarray(v, np.longdouble)
    fin = np.isfinite(v) & (v != 0)
    m, e = np.frexp(np.where(fin, v, 1))
    man = np.ldexp(m, 64)  # integers held exactly (64-bit mantissa at most)
    hi = man.astype(np.float64)
    lo = (man - hi.astype(np.longdouble)).astype(np.float64)
    out = []
    for f, h, l_, ee, raw in zip(fin.tolist(), hi.tolist(), lo.tolist(), (e - 64).tolist(), v.astype(np.float64).tolist()):
        out.append(exact_mpf(int(h) + int(l_), ee) if f else _wrap(libmp.from_float(raw)))
    return out


def _same(a: float, b: float) -> bool:
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))


def _interval_round(v: mpmath.mpf, b, fmt: Format):
    """The value of ``fmt`` every point of [v - b, v + b] rounds to, or None when the interval
    straddles a rounding boundary (a midpoint, or the overflow threshold).  The ends are computed
    exactly, so a value sitting on a midpoint is never decided by the tie rule: it escalates until
    the bound is small enough to see which side of the midpoint the exact value lies on.  Zeros:
    an interval that rounds to zero at both ends gives a zero with v's sign (+0 for v = 0)."""
    lo = round_raw(libmp.mpf_sub(v._mpf_, b._mpf_, 0), fmt)
    hi = round_raw(libmp.mpf_add(v._mpf_, b._mpf_, 0), fmt)
    if lo != hi:  # -0.0 == 0.0: both ends round to zero
        return None
    if lo == 0:
        return -0.0 if v < 0 else 0.0
    return lo


def _round_quotient(v: mpmath.mpf, d, fmt: Format, bits: int, grad: bool = False):
    """(value, rounded) of the exact v / d (v exact, d the mean's exact denominator or None), or
    None when it cannot be decided here.  A dyadic quotient is rounded directly; a non-dyadic one
    is no midpoint, and an enclosure 2^-(P-2) wide decides it unless it lies closer than that."""
    if d is None:
        return v, round_mpf(v, fmt)
    if d == 0 and grad:  # see Evaluation._gof: the derivative of a mean over nothing is NaN
        q = mpmath.mpf("nan")
        return q, round_mpf(q, fmt)
    if d == 0 or not mpmath.isfinite(v):
        q = ieee_div(MP, v, d)
        return q, round_mpf(q, fmt)
    prec = bits + 64 + max(int(abs(mpmath.mpf(d)._mpf_[1])).bit_length(), 1)
    with mpmath.workprec(prec):
        q = v / d
    if libmp.mpf_mul(q._mpf_, mpmath.mpf(d)._mpf_, 0) == v._mpf_:  # exact quotient
        return q, round_mpf(q, fmt)
    with mpmath.workprec(64):
        err = mpmath.ldexp(abs(q), -(prec - 2))
    r = _interval_round(q, err, fmt)
    return None if r is None else (q, r)


def _fpu_is_clean() -> bool:
    """Round-to-nearest with subnormals kept (no flush-to-zero, no denormals-are-zero) for float64
    array arithmetic: what stage 0's bound assumes.  A caller that changed them (a backend under
    test setting FTZ, fesetround) gets mpmath-only settling, which uses no hardware floats."""
    one, tiny = np.array([1.0]), np.array([2.0 ** -1074])
    with np.errstate(all="ignore"):
        nearest = (one + 0.75 * 2.0 ** -52)[0] == 1.0 + 2.0 ** -52 and (one + 0.25 * 2.0 ** -52)[0] == 1.0
        nearest = nearest and (-one - 0.75 * 2.0 ** -52)[0] == -1.0 - 2.0 ** -52
        subnormals = (tiny * 1.0)[0] != 0 and (np.array([2.0 ** -1022]) * 0.5)[0] != 0
    ld, eps = np.longdouble, np.finfo(np.longdouble).eps  # whatever long double is on this machine
    with np.errstate(all="ignore"):
        ld_nearest = ld(1) + ld(0.75) * eps == ld(1) + eps and ld(1) + ld(0.25) * eps == ld(1)
    return bool(nearest and subnormals and ld_nearest)


class _Lazy:
    """A value computed on first call (the float64 evaluation: most float64 outputs never need it)."""

    def __init__(self, fn):
        self.fn, self.v = fn, None

    def __call__(self):
        if self.v is None:
            with np.errstate(all="ignore"):
                self.v = self.fn()
        return self.v


class Settled(NamedTuple):
    """settle()'s answer, all in row space: ``values`` holds mpfs, or None where the element is
    held as the float64 pair ``hi + lo`` (exact for long double; within 2^-104 relative for quad,
    counted in the figure check)."""

    values: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    rounded: np.ndarray
    undetermined: np.ndarray
    cond: np.ndarray
    scale: np.ndarray
    nterms: np.ndarray


def _float_stages(fmt: Format) -> list:
    """The vectorised namespaces worth trying for ``fmt``: a stage whose unit roundoff leaves
    fewer than 20 bits beyond the format's precision can settle the rounding but never the
    figures (FIGURE_ULP), so long double serves formats up to 44 bits and quad the rest."""
    return [ns for ns in (LD, QUAD) if ns is not None and ns.bits >= fmt.p + 20]


# The float64 stage (formats of at most 24 bits, kernels with ``stage64``): float64's u, times 4
# because NumPy's float64 exp/log/log1p/expm1/tanh err by up to 4 ulp where they are its own SIMD
# or SVML code (glibc's are within 1-2; tests/test_reference_fastpath.py measures them), an
# absolute slack for intermediates that underflow float64 (exp below e^-708: 2^-1074 each, scaled
# by at most a few input-format factors afterwards), and acceptance only when an enclosure
# MARGIN64 times as wide rounds to one value: a bound wrong by less than that changes no answer,
# and what lies closer to a boundary goes on to long double with float64 as its second opinion.
U64 = 4 * 2.0 ** -53
ABS64 = 2.0 ** -600
MARGIN64 = 2.0 ** 8
STAGE64_MAX_P = 24


def _rows_of(todo: np.ndarray, ncols: int) -> np.ndarray:
    """The distinct rows of sorted flat indices ``todo`` (np.flatnonzero's), in O(n): no sort."""
    if ncols == 1:
        return todo
    r = todo // ncols
    if r.size < 2:
        return r
    return r[np.concatenate(([True], r[1:] != r[:-1]))]


def _f64_stage(ev, fmt, cflat, depth, v64, hi, lo, rounded, done) -> None:
    """Settle what the float64 evaluation alone can, for formats of at most 24 bits (see U64):
    b = (18 + 4 log2 n) U64 (cond + |v|) (1 + 2^-48) + ABS64 (never 0); accepted when both ends of
    [v - w, v + w], w = MARGIN64 b (1 + 2^-10), formed in float64, round to one value of the format
    with one sign and neither end is 0 (an end's own rounding moves it by at most 2^-53 of it,
    less than the 2^-10 w of room, so every point of [v - MARGIN64 b, v + MARGIN64 b] lies between
    them and rounds alike: rounding is monotone), and b <= 2^-10 max(2^-p |r|, 2^qmin) <= 2^-10
    ulp(r) (FIGURE_ULP).  v is stored as the pair (v, 0).  Non-finite values go on to the next
    stage (two precisions decide them)."""
    v = v64()
    with np.errstate(all="ignore"):
        # no exact-zero rule here (cond = v = 0): float64 cond and v both underflow where every
        # term is below 2^-1074 (-e^-745.5 reads 0 next to cond 0), so b >= ABS64 always and the
        # sign of a zero is left to long double
        b = (18 + 4 * depth) * U64 * (cflat + np.abs(v)) * (1 + 2.0 ** -48) + ABS64
        w = b * (MARGIN64 * (1 + 2.0 ** -10))
        e_lo, e_hi = v - w, v + w
        r = round_float(e_lo, fmt)
        ok = (r == round_float(e_hi, fmt)) & (np.signbit(e_lo) == np.signbit(e_hi)) & np.isfinite(r)
        ok &= (e_lo != 0) & (e_hi != 0)
        ok &= b * 2.0 ** (fmt.p - FIGURE_ULP_EXP) <= np.maximum(np.abs(r), 2.0 ** (fmt.qmin + fmt.p))
    np.copyto(hi, v, where=ok)  # masked copies: no index arrays (most elements settle here)
    np.copyto(lo, 0.0, where=ok)
    np.copyto(rounded, r, where=ok)
    done |= ok


def _float_stage(ev, ns, fmt, todo, ncols, cflat, depth, v64, values, hi, lo, rounded, done) -> None:
    """Settle what a vectorised evaluation in ``ns`` can.  The kernels' evaluation error is at
    most (16 + 4 log2 n) u (cond + |v|); the enclosure [v - b, v + b] uses
    b = (18 + 4 log2 n) u (cond + |h|) (1 + 2^-48) + 2^-1070, formed in float64 (h = float64(v):
    the 2 more, the relative and the absolute slack cover forming b and its underflow; b = 0 for
    an element with no terms, cond = v = 0).  An
    element is accepted when the enclosure rounds to one value, b plus the stored pair's own error
    is within FIGURE_ULP of an ulp, and, for formats of at most 24 bits, the float64 evaluation
    rounds alike (a second opinion from another precision)."""
    if ev.separable:
        every = todo.size == cflat.size  # every row left: compute on the problem's own rows, no copy
        rows = _rows_of(todo, ncols)
        idx = rows if ncols == 1 else (rows[:, None] * ncols + np.arange(ncols)[None, :]).reshape(-1)
        with np.errstate(all="ignore"):
            v = np.asarray(ev.compute(ns, None if every else rows)[0], ns.dtype).reshape(-1)
    else:
        idx = np.arange(cflat.size)
        with np.errstate(all="ignore"):
            v = np.asarray(ev.compute(ns)[0], ns.dtype).reshape(-1)
    full = idx.size == cflat.size  # idx is then 0..n-1 in order: slices and masks, no gathers
    sel = slice(None) if full else idx
    with np.errstate(all="ignore"):
        zero = ns.const(0)
        fin_v = ns.isfinite(v)
        vf = v if fin_v.all() else np.where(fin_v, v, zero)
        # the float64 pair h + low that will hold v: v - h is exact in ns (h is within an ulp of
        # v), its float64 rounding errs by 2^-53 |v - h| at most (0 for long double: 64 bits fit)
        h, low = ns.split_pair(vf)
        b = (18 + 4 * depth[sel]) * ns.u * (cflat[sel] + np.abs(h)) * (1 + 2.0 ** -48) + 2.0 ** -1070
        b = np.where((cflat[sel] == 0) & (vf == zero), 0.0, b)  # no terms, no error: an exact zero
        fin = fin_v & np.isfinite(h) & np.isfinite(b)
        pair_ok = fin & ((np.abs(h) >= 2.0 ** -900) | (vf == zero)) & (np.abs(h) <= 2.0 ** 1000)
        ok, r_v, ulp = _round_enclosure(vf, b, h, low, fmt, fin, ns)
        if not fin_v.all():
            r_v[~fin_v] = round_float(v[~fin_v], fmt)
        pair_err = np.abs(low) * 2.0 ** -52 if ns.bits > 64 else 0.0
        fig = (b + pair_err <= ulp * FIGURE_ULP) | (b == 0)  # an underflowed right side only refuses
    ok &= fig
    if fmt.p <= 24:
        r64 = round_float(v64()[sel], fmt)
        ok &= (r64 == r_v) | (np.isnan(r64) & np.isnan(r_v))
    # identical specials at two precisions are exact (inf/nan arise only from exact conditions)
    spec = np.zeros(v.shape, bool)
    if not fin_v.all():
        w64 = v64()[sel]
        v_as64 = v.astype(np.float64)
        spec = ~fin_v & ~np.isfinite(w64) & ((np.isnan(v) & np.isnan(w64)) | (v_as64 == w64))
        h = np.where(spec, v_as64, h)
        low = np.where(spec, 0.0, low)
    ok |= spec
    ok &= ~done[sel]
    special_or_far = ok & ~(pair_ok | spec)
    if np.any(special_or_far):
        # a value outside the float64 pair's range: long double converts exactly; quad leaves it
        # to the exact stages (its values beyond float64's range are rare: overflowed outputs)
        if ns is LD:
            far = np.flatnonzero(special_or_far)
            for i, val in zip(idx[far], ld_array_to_mpf(v[far])):
                values[i] = val
        else:
            ok &= ~special_or_far
    pair = ok & (pair_ok | spec)
    hi[pair if full else idx[pair]] = h[pair]
    lo[pair if full else idx[pair]] = low[pair]
    rounded[ok if full else idx[ok]] = r_v[ok]
    done[ok if full else idx[ok]] = True


def _round_enclosure(v, b, h, low, fmt, fin, ns):
    """(ok, rounded, ulp): whether every point of [v - b, v + b] rounds to one value of ``fmt``, and
    v's rounding.  Most elements are decided in float64: with h = float64(v), low = float64(v - h)
    and r = h rounded to ``fmt``, the interval rounds to r when |(h - r) + low| + b stays below
    half the smaller spacing next to r (h - r is exact; the sum is inflated by a relative 2^-50
    and one subnormal for its own rounding).  The rest is rounded end by end in ``ns``
    (round_float: correct to the last midpoint)."""
    ok = np.zeros(v.shape, bool)
    r_v = np.full(v.shape, np.nan)
    r = round_float(h, fmt)
    ulp = np.ones(v.shape)
    a = np.abs(r)
    ulp_r = ulp_of_value(r, fmt)
    m, _ = np.frexp(np.where(np.isfinite(a), a, 1.0))
    half = np.where((m == 0.5) & (a > np.ldexp(1.0, fmt.emin)), ulp_r / 4, ulp_r / 2)  # a binade's first value
    dist = np.abs((h - r) + low) * (1 + 2.0 ** -50) + 2.0 ** -1074 + b
    fast = fin & np.isfinite(r) & (dist < half) & ((r != 0) | (b == 0))  # a zero's sign: end by end
    ok[fast] = True
    r_v[fast] = r[fast]
    ulp[fast] = ulp_r[fast]
    k = np.flatnonzero(fin & ~fast)
    if k.size:
        vk, bk = v[k], b[k].astype(ns.dtype)
        r_lo, r_hi, r_k = round_float(vk - bk, fmt), round_float(vk + bk, fmt), round_float(vk, fmt)
        ok[k] = (r_lo == r_hi) & (np.signbit(r_lo) == np.signbit(r_hi))
        r_v[k] = r_k
        ulp[k] = ulp_of_value(np.where(np.isfinite(r_k), r_k, 0.0), fmt)
    return ok, r_v, ulp


SPLIT_TAIL_PREC = 128  # bits of the split stage's tails: far more than a 24-bit format needs


def _split_stage(ev, fmt, todo, values, rounded, done) -> None:
    """Elements a kernel can write as exact + coef * tail (``Kernel.split``: exact and coef sums
    and products of the inputs, exact at ``split_bits``; tail(ns) one transcendental with relative
    error at most 4 u, evaluated at P = SPLIT_TAIL_PREC bits, u = 2^-P).  The enclosure is the
    exact sum exact + coef * tail widened by |coef * tail| 2^-(P-4): its width is relative to the tail,
    not to the value, so a dyadic exact part on a rounding midpoint next to a tail far below any
    precision the mpmath stage could afford (e^-11000 next to 8000) is decided by the tail's sign.
    The stored value is that sum rounded to P + 32 bits towards the tail's side (never onto the
    midpoint the exact part sits on); it must round to the same value."""
    rows = todo
    rd = ev._rows(rows)
    gof = np.asarray(ev._gof(F64, rows), np.float64) if ev.want_grad else None
    bits = ev.k.split_bits(rd, ev.wrt, gof)
    if bits is None or bits > EXACT_CAP:
        return
    with mpmath.workprec(bits):
        mask, ex, co, tail = ev.k.split(MP, rd, ev.wrt, ev._gof(MP, rows) if ev.want_grad else None)
    with mpmath.workprec(SPLIT_TAIL_PREC):
        tl = tail(MP)
    bits = SPLIT_TAIL_PREC  # the tail's precision: its relative error is within 4 * 2^-bits
    for j in np.flatnonzero(mask):
        t = libmp.mpf_mul(co[j]._mpf_, tl[j]._mpf_)  # exact products and sums (no precision given)
        got = _below_grid(ex[j]._mpf_, t, fmt)
        if got is not None:
            i = rows[j]
            values[i], rounded[i], done[i] = _wrap(got[0]), got[1], True
            continue
        c = libmp.mpf_add(ex[j]._mpf_, t)
        if c in (libmp.fnan, libmp.finf, libmp.fninf):
            continue
        err = libmp.mpf_shift(libmp.mpf_abs(t), -(bits - 4))
        r = _interval_round(_wrap(c), _wrap(err), fmt)
        if r is None or not math.isfinite(r):
            continue
        if r != 0:
            q = max(math.frexp(abs(r))[1] - fmt.p, fmt.qmin)  # ulp(r) = 2^q
            if libmp.mpf_cmp(err, libmp.from_man_exp(1, q + FIGURE_ULP_EXP)) > 0:
                continue
        if t == libmp.fzero:
            stored = c
        else:
            mode = libmp.round_floor if t[0] else libmp.round_ceiling
            stored = libmp.mpf_pos(c, bits + 32, mode)
        got = round_raw(stored, fmt)
        if got == r or (got == 0 and r == 0):
            i = rows[j]
            values[i], rounded[i], done[i] = _wrap(stored), r, True


def _below_grid(ex, t, fmt):
    """(stored, rounded) of exact + t when the tail t lies below the grid that holds both the
    exact part and every rounding boundary of ``fmt``, else None (then the exact sum is formed).
    Every boundary (a value of the format, a midpoint, the overflow threshold) is a multiple of
    2^(qmin - 1), and a nonzero exact part is a multiple of its lowest bit, so both are multiples
    of G = 2^k, k = min(lowest bit of exact, qmin - 11): no boundary lies strictly between exact
    and exact +- G.  A tail with |t| (1 + 2^-(P-4)) < G (its enclosure) leaves the value strictly
    inside that gap, on the tail's side, so it rounds as exact +- G/2 does, which is stored (within
    G <= 2^-11 ulp of the value: FIGURE_ULP; the overflow threshold is a boundary like the
    others).  This decides e^-3e38 next to 3e38 from exponents alone: the exact sum would need an
    integer of 4e38 bits (bfloat16 BCE-with-logits at huge |x|)."""
    if ex in (libmp.fzero, libmp.fnzero) or t in (libmp.fzero, libmp.fnzero):
        return None
    if ex in (libmp.fnan, libmp.finf, libmp.fninf) or t in (libmp.fnan, libmp.finf, libmp.fninf):
        return None
    k = min(int(ex[2]), fmt.qmin - 11)  # mpf mantissas are odd: ex[2] is exact's lowest bit
    if int(t[2]) + int(t[3]) + 1 > k:  # |t| (1 + 2^-124) < 2^(exp + bc + 1) must be at most G
        return None
    stored = libmp.mpf_add(ex, libmp.from_man_exp(-1 if t[0] else 1, k - 1))  # exact: small shifts
    r = round_raw(stored, fmt)  # +-inf past the overflow threshold, as the mpmath stage rounds
    if r == 0:
        r = -0.0 if ex[0] else 0.0  # |exact| >= G > |t|: the value has exact's sign
    return stored, r


def _reduced_rows_stage(ev: Evaluation, fmt: Format, v64, cond, depth, values, rounded, done) -> bool:
    """Settle a reduced value (sum or mean) from its rows: each row's unreduced loss is evaluated
    in mpmath at the precision its own share of the error budget needs, the rows are summed,
    and the sum is divided by the mean's exact denominator once.  On escalation only the
    rows whose error is still above their new share are evaluated again; the others keep their
    values.  So a sum that cancels exactly costs one evaluation of each row at the precision the
    cancellation needs, not a full re-evaluation at every doubling.  (The sum is rounded at
    64 + log2 m bits past the highest row precision, each addition's error added to the radius:
    an exact sum of e^-1e300 next to 1 would not fit in memory.)

    Each row's enclosure is the unreduced settling's own: |v_i - exact_i| <=
    (64 + 8 log2 n_i + 1) (cond_i + |v_i|) 2^-P_i.  An answer is accepted when [S/d - r, S/d + r]
    rounds to one value of ``fmt`` (r: the rows' bounds over |d| plus the quotient's rounding), its
    stored value is good to FIGURE_ULP, and it intersects the float64 evaluation's own enclosure
    (the float stages' bound at u = 2^-53 with the reduced value's ``cond`` and ``depth``: a second
    opinion from another precision and another order of operations; a disagreement leaves the
    value to the whole-problem stage).  Returns False when the stage does not apply, True when it
    decided: settled, or left undetermined at the precision cap."""
    m = ev.p.m
    if ev.separable or not hasattr(ev.k, "parts") or m == 0 or done[0] or not _fpu_is_clean():
        return False
    rows_all = ev.p.rows
    with np.errstate(all="ignore"):
        cond_r, _, nterms_r = ev.k.scales(rows_all)
        cond_r = np.asarray(cond_r, np.float64).reshape(-1)
        nterms_r = np.asarray(nterms_r).reshape(-1)
        v_r = np.asarray(ev.row_values(F64), np.float64).reshape(-1)
    if cond_r.size != m or v_r.size != m or nterms_r.size != m:
        return False
    if not (np.isfinite(cond_r).all() and np.isfinite(v_r).all()):
        return False  # infinities and NaN are the whole-problem stage's (exact conditions)
    d = None
    if ev.p.reduction != "sum":
        with mpmath.workprec(2200 + m.bit_length()):  # a sum of float64 weights, exactly
            d, _ = ev.k.denominator(MP, rows_all)
            d = mpmath.mpf(d)  # at that precision: never the caller's
        if d == 0 or not mpmath.isfinite(d):
            return False
    est = abs(float(v64()[0]))
    log_d = 0 if d is None else _mag(libmp.mpf_abs(d._mpf_)) - 1  # floor(log2 |d|)
    # the radius aimed at for the reduced value: GUARD + 8 bits below its estimate, or, for an
    # estimate of 0 (total cancellation), within the format's zero-rounding range
    tau = (math.frexp(est)[1] - 1 - fmt.p - GUARD - 8) if 0 < est < math.inf else fmt.qmin - 2
    share = tau + log_d - max(m - 1, 1).bit_length()  # each row's share of the sum's radius: 2^share
    fr = (64 + 8 * _ceil_log2(nterms_r) + 1).astype(np.int64)
    with np.errstate(all="ignore"):
        lead = np.ceil(np.log2(fr * (cond_r + 2 * np.abs(v_r)) + 2.0 ** -1074)).astype(np.int64) + 2
    have = np.zeros(m, np.int64)  # the precision each row's value was evaluated at (0: none yet)
    vals = [libmp.fzero] * m
    errs = [libmp.fzero] * m
    want = np.clip(((lead - share + 31) // 32) * 32, 64, PREC_CAP)
    while True:
        redo = want > have
        for p in np.unique(want[redo]):
            idx = np.flatnonzero(redo & (want == p))
            with mpmath.workprec(int(p)):
                vv = ev.row_values(MP, idx)
            for j, i in enumerate(idx.tolist()):
                vi = vv[j]._mpf_ if isinstance(vv[j], mpmath.mpf) else libmp.from_float(float(vv[j]))
                s_ = libmp.mpf_add(libmp.from_float(float(cond_r[i])), libmp.mpf_abs(vi), 64, libmp.round_up)
                errs[i] = libmp.mpf_shift(libmp.mpf_mul(s_, libmp.from_int(int(fr[i])), 64, libmp.round_up), -int(p))
                vals[i] = vi
            have[idx] = p
        if any(v in (libmp.fnan, libmp.finf, libmp.fninf) for v in vals):
            return False
        tot, err = libmp.fzero, libmp.fzero
        p_s = int(have.max()) + 64 + m.bit_length()  # the sum's precision: each addition errs by at
        for v, e in zip(vals, errs):  # most 2^-(p_s - 1) of its result (an exact sum of e^-1e300
            tot = libmp.mpf_add(tot, v, p_s, libmp.round_nearest)  # next to 1 would not fit in memory)
            err = libmp.mpf_add(err, libmp.mpf_add(e, libmp.mpf_shift(libmp.mpf_abs(tot), -(p_s - 1)), 64,
                                                   libmp.round_up), 64, libmp.round_up)
        p_q = int(have.max()) + 64
        if d is None:
            q, qerr = tot, err
        else:
            q = libmp.mpf_div(tot, d._mpf_, p_q, libmp.round_nearest)
            qerr = libmp.mpf_add(libmp.mpf_div(err, libmp.mpf_abs(d._mpf_), 64, libmp.round_up),
                                 libmp.mpf_shift(libmp.mpf_abs(q), -(p_q - 1)), 64, libmp.round_up)
        r = _interval_round(_wrap(q), _wrap(qerr), fmt)
        if r is not None and math.isfinite(r) and r != 0:
            e_ulp = max(math.frexp(abs(r))[1] - fmt.p, fmt.qmin) + FIGURE_ULP_EXP  # FIGURE_ULP of ulp(r)
            r = r if libmp.mpf_cmp(qerr, libmp.from_man_exp(1, e_ulp)) <= 0 else None
        if r is not None:  # +-inf too: the whole enclosure lies past the format's overflow threshold
            w = float(v64()[0])
            b64 = (18 + 4 * float(depth)) * 2.0 ** -53 * (float(cond) + abs(w)) * (1 + 2.0 ** -48) + 2.0 ** -1070
            if math.isfinite(w) and math.isfinite(b64):
                gap = libmp.mpf_abs(libmp.mpf_sub(q, libmp.from_float(w), 0))
                agree = libmp.mpf_cmp(gap, libmp.mpf_add(qerr, libmp.from_float(b64), 64, libmp.round_up)) <= 0
            else:  # float64 overflowed too: it can only say the side
                agree = math.isinf(r) and math.isinf(w) and (r > 0) == (w > 0)
            if not agree:
                # a kernel's float stages may abstain (kl_div's underflowing terms give 0 there):
                # the whole-problem stage, with its own second opinion, decides instead
                LOG.info("reduced value: the row-wise enclosure misses the float64 one; left to the "
                         "whole-problem stage")
                return False
            values[0], rounded[0], done[0] = _wrap(q), r, True
            return True
        if int(have.max()) >= PREC_CAP or (have.max() >= 4096 and 2 * int(have.sum()) > WORK_CAP):
            return True  # undetermined: never a guess
        more = _needs_more(errs, err)
        share = _mag(err) - 34 - max(int(more.sum()) - 1, 1).bit_length()  # the other half, shared
        want = np.where(more, np.maximum(((lead - share + 31) // 32) * 32, have + 32).clip(64, PREC_CAP), have)


def _mag(e) -> int:
    """An upper bound on log2 of a nonnegative mpf tuple (-2^30 for 0)."""
    return -(1 << 30) if e == libmp.fzero else e[2] + e[3]


def _needs_more(errs: list, err) -> np.ndarray:
    """The rows to evaluate again when the sum's radius ``err`` must shrink 2^32-fold: the largest
    errors, until what the rows left keep is at most half the new radius (rows whose errors are
    already that small keep their values; the others share the other half)."""
    goal = libmp.mpf_shift(err, -33)  # half of err / 2^32
    order = sorted(range(len(errs)), key=lambda i: _mag(errs[i]))
    more = np.ones(len(errs), bool)
    kept = libmp.fzero
    for i in order:  # smallest first
        kept = libmp.mpf_add(kept, errs[i], 64, libmp.round_up)
        if libmp.mpf_cmp(kept, goal) > 0:
            break
        more[i] = False
    return more


@contextlib.contextmanager
def previous_path():
    """The settling as it was before the elementwise fast path (long double first, float64 only
    as its second opinion, one block, no split stage): what benchmarks/bench_elementwise.py and
    tests/test_reference_fastpath.py compare the fast path with.  Not thread-safe: it swaps this
    module's settings for the duration."""
    global STAGE64_MAX_P, CHUNK_ROWS, _split_stage
    saved = STAGE64_MAX_P, CHUNK_ROWS, _split_stage
    STAGE64_MAX_P, CHUNK_ROWS = 0, 1 << 60
    _split_stage = _no_split
    try:
        yield
    finally:
        STAGE64_MAX_P, CHUNK_ROWS, _split_stage = saved


def _no_split(*args, **kwargs) -> None:
    return None


def _ceil_log2(n: np.ndarray) -> np.ndarray:
    """ceil(log2(max(n, 1))) of term counts, as float64: the bit length of n - 1 (frexp's exponent;
    exact below 2^53), without a logarithm per element."""
    if n.size and n.min() == n.max():  # one term count (elementwise kernels): one frexp
        return np.full(n.shape, float(np.frexp(max(int(n.flat[0]), 1) - 1)[1]))
    return np.frexp(np.maximum(n, 1) - 1)[1].astype(np.float64)


def _chunks(ev: Evaluation):
    """Evaluations of consecutive row blocks of an unreduced ``ev`` (each element depends on its
    own row only), or None when ``ev`` is reduced or small.  Settling block by block keeps the
    vectorised stages' temporaries in cache; the mpmath stage's WORK_CAP then counts a block's
    rows, not the call's."""
    m = ev.p.m
    if not ev.separable or ev.reduced or m <= 2 * CHUNK_ROWS:
        return None
    rows_go = None if ev.go is None else np.asarray(ev.p.go_rows(ev.go), np.float64)
    return [_sub(ev, slice(a, min(a + CHUNK_ROWS, m)), rows_go) for a in range(0, m, CHUNK_ROWS)]


def _sub(ev: Evaluation, sel, rows_go) -> Evaluation:
    """The evaluation of rows ``sel`` (a slice or indices) of an unreduced ``ev``."""
    p = dataclasses.replace(ev.p, rows={k: v[sel] for k, v in ev.p.rows.items()}, grad_output_rows=_identity)
    return Evaluation(p, ev.k, grad_output=None if rows_go is None else rows_go[sel], wrt=ev.wrt)


def _identity(a):
    return a


def settle(ev: Evaluation, fmt: Format) -> Settled:
    """Settle every element of ``ev`` for ``fmt`` (see :class:`Settled`).  A call in row blocks
    whose kernel takes the float64 stage runs that stage block by block, then every later stage
    once on the rows left in all blocks together (a few hundred of a million float32 elements:
    the long-double stage's fixed cost per call, about 0.4 ms, was a tenth of the time when paid
    per block)."""
    chunks = _chunks(ev)
    if chunks is not None:
        t0 = time.perf_counter()
        f64_only = fmt.p <= STAGE64_MAX_P and getattr(ev.k, "stage64", False) and _fpu_is_clean()
        out, a = None, 0
        for j, sub in enumerate(chunks):
            part = _settle(sub, fmt, f64_only)
            if out is None:
                out = Settled(*(np.empty((ev.p.m,) + f.shape[1:], f.dtype) for f in part))
            for whole, f in zip(out, part):
                if f.dtype != object or not f64_only:  # a float64-stage block holds no mpf values
                    whole[a:a + len(f)] = f
            a += len(part.values)
            if ev.p.m >= PROGRESS_ELEMENTS and (j + 1) % 32 == 0:
                LOG.info("settled %d of %d row blocks (%.1f s)", j + 1, len(chunks), time.perf_counter() - t0)
        if f64_only:
            left = _rows_of(np.flatnonzero(out.undetermined.reshape(-1)), out.undetermined.shape[1])
            if left.size:
                rows_go = None if ev.go is None else np.asarray(ev.p.go_rows(ev.go), np.float64)
                part = _settle(_sub(ev, left, rows_go), fmt)
                for whole, f in zip(out, part):
                    whole[left] = f
                if ev.p.m >= PROGRESS_ELEMENTS:
                    LOG.info("the %s rows the 53-bit stage left settled (%.1f s)", f"{left.size:,}",
                             time.perf_counter() - t0)
        return out
    return _settle(ev, fmt)


def _settle(ev: Evaluation, fmt: Format, f64_only: bool = False) -> Settled:
    """Settle ``ev``; ``f64_only``: only the float64 stage (the caller checked that it applies),
    the rest flagged undetermined, for :func:`settle` to finish."""
    cond, scale, nterms = ev.scales()
    shape = cond.shape
    n = cond.size
    values = np.empty(n, dtype=object)
    rounded = np.full(n, np.nan)
    done = np.zeros(n, dtype=bool)
    if n == 0:
        return Settled(values.reshape(shape), rounded.reshape(shape), rounded.reshape(shape),
                       rounded.reshape(shape), done.reshape(shape), cond, scale, nterms)
    ncols = shape[1]
    cflat, nflat = cond.reshape(-1), nterms.reshape(-1)
    # sums are pairwise (FloatNS.sum) or exact (MpNS.sum), so the term count enters through log2 n
    depth = _ceil_log2(nflat)
    v64 = _Lazy(lambda: np.asarray(ev.compute(F64)[0], np.float64).reshape(-1))
    hi = np.full(n, np.nan)  # float-backed stored values hi + lo (values[i] stays None)
    lo = np.zeros(n)
    big = n >= PROGRESS_ELEMENTS
    t0 = time.perf_counter()
    if big:
        LOG.info("settling %s elements for %s", f"{n:,}", fmt.name)
    if _fpu_is_clean():
        if fmt.p <= STAGE64_MAX_P and getattr(ev.k, "stage64", False):
            _f64_stage(ev, fmt, cflat, depth, v64, hi, lo, rounded, done)
            if f64_only:
                return Settled(values.reshape(shape), hi.reshape(shape), lo.reshape(shape), rounded.reshape(shape),
                               ~done.reshape(shape), cond, scale, nterms)
            if big:
                LOG.info("53-bit stage: %s of %s settled (%.1f s)", f"{int(done.sum()):,}", f"{n:,}",
                         time.perf_counter() - t0)
        for ns in _float_stages(fmt):
            todo = np.flatnonzero(~done)
            if not todo.size:
                break
            _float_stage(ev, ns, fmt, todo, ncols, cflat, depth, v64, values, hi, lo, rounded, done)
            if big:
                LOG.info("%d-bit stage: %s of %s settled (%.1f s)", ns.bits, f"{int(done.sum()):,}", f"{n:,}",
                         time.perf_counter() - t0)

    if done.all():  # no headroom to estimate, nothing left for the exact stages
        return Settled(values.reshape(shape), hi.reshape(shape), lo.reshape(shape), rounded.reshape(shape),
                       ~done.reshape(shape), cond, scale, nterms)
    todo = np.flatnonzero(~done)
    need = np.zeros(n)
    if todo.size:  # only the elements left need it (the float stages settle most)
        est, c_t, n_t, d_t = np.abs(v64()[todo]), cflat[todo], nflat[todo], depth[todo]
        nd = np.zeros(todo.size)
        with np.errstate(all="ignore"):
            ratio = (16 + 2 * n_t) * c_t / est
            good = np.isfinite(ratio) & (ratio > 1)
            nd[good] = np.log2(ratio[good])
            # a float64 estimate of exactly 0 next to terms (total cancellation): no precision below
            # the one whose enclosure fits inside the format's zero-rounding range can settle it, so
            # start there instead of doubling through every smaller one (each a full re-evaluation)
            zero = (est == 0) & (c_t > 0) & np.isfinite(c_t)
            nd[zero] = (np.log2((72 + 8 * d_t[zero]) * c_t[zero]) - fmt.qmin + 1 - 32
                        - fmt.p - GUARD - 8 + 2)
        need[todo] = nd
    exact = ev.exact_prec(_rows_of(todo, ncols) if ev.separable else None) if todo.size else None
    if exact is not None and exact[0] <= EXACT_CAP:
        bits, d, mask = exact
        rows = _rows_of(todo, ncols) if ev.separable else np.array([0])
        if mask is not None and ev.separable:
            rows = rows[np.asarray(mask, bool)]
        ev.undivided = True
        try:
            with mpmath.workprec(bits):
                vx = ev.compute(MP, rows if ev.separable else None)[0] if rows.size else None
        finally:
            ev.undivided = False
        for j, r in enumerate(rows):
            for c in range(ncols):
                i = r * ncols + c
                if not done[i]:
                    got = _round_quotient(vx[j, c], d, fmt, bits, ev.want_grad)
                    if got is not None:
                        values[i], rounded[i], done[i] = got[0], got[1], True
    todo = np.flatnonzero(~done)
    if (todo.size and ncols == 1 and hasattr(ev.k, "split") and ev.separable
            and (not ev.reduced or ev.p.reduction == "sum")):  # a mean's seed is no product of inputs
        _split_stage(ev, fmt, todo, values, rounded, done)
    decided = not done.all() and _reduced_rows_stage(ev, fmt, v64, cflat[0], depth[0], values, rounded, done)
    if decided and big:
        LOG.info("row-wise stage: %s (%.1f s)", "settled" if done.all() else "undetermined",
                 time.perf_counter() - t0)
    # at least 64 bits: every float64 input, grad_output and option converts exactly
    prec = max(64, fmt.p + GUARD + 20)
    while not done.all() and not decided:
        todo = np.flatnonzero(~done)
        if ev.separable:
            rows = _rows_of(todo, ncols)
            idx = rows
        else:
            rows, idx = np.array([0]), None
        extra = math.ceil(float(np.max(need[todo]))) if np.isfinite(np.max(need[todo])) else 0
        p_eff = min(max(prec, fmt.p + GUARD + extra + 8), PREC_CAP)
        with mpmath.workprec(p_eff):
            va = ev.compute(MP, idx)[0]
        p_b = p_eff + 32
        with mpmath.workprec(p_b):
            vb = ev.compute(MP, idx)[0]
        factor = (64 + 8 * depth).astype(np.int64)
        for j, r in enumerate(rows):
            for c in range(ncols):
                i = r * ncols + c
                if done[i]:
                    continue
                a, b = va[j, c], vb[j, c]
                ra = round_mpf(a, fmt)
                if not mpmath.isfinite(b):  # inf/nan arise only from exact conditions: same at both
                    if _same(ra, round_mpf(b, fmt)):
                        values[i], rounded[i], done[i] = b, round_mpf(b, fmt), True
                    continue
                # the error bound as an mpf (no float64 underflow; its operations round up): the
                # kernels' bound with room to spare at mpmath's precision, or, where
                # no finite scale exists (it overflowed float64), a relative bound with 16 bits to
                # spare next to the agreement of the two precisions checked below
                ab = _wrap(libmp.mpf_abs(b._mpf_))
                if np.isfinite(cflat[i]):
                    s_ = libmp.mpf_add(libmp.from_float(float(cflat[i])), ab._mpf_, 64, libmp.round_up)
                    err = _wrap(libmp.mpf_shift(libmp.mpf_mul(s_, libmp.from_int(int(factor[i]) + 1), 64,
                                                              libmp.round_up), -p_b))
                else:
                    err = _wrap(libmp.mpf_shift(ab._mpf_, -(p_eff - 16)))
                r_b = _interval_round(b, err, fmt)
                if r_b is not None and r_b != 0 and math.isfinite(r_b):
                    # the stored value must also be good to FIGURE_ULP of an ulp (error figures)
                    q = max(math.frexp(abs(r_b))[1] - fmt.p, fmt.qmin)  # ulp(r_b) = 2^q
                    r_b = r_b if err <= exact_mpf(1, q + FIGURE_ULP_EXP) else None  # no float underflow
                if r_b is not None and (_same(ra, r_b) or (ra == 0 and r_b == 0)):
                    values[i], rounded[i], done[i] = b, r_b, True
        if big:
            LOG.info("mpmath at %d bits: %s of %s settled (%.1f s)", p_b, f"{int(done.sum()):,}", f"{n:,}",
                     time.perf_counter() - t0)
        width = (len(rows) if ev.separable else max(ev.p.m, 1)) * ncols
        if p_eff >= PREC_CAP or (p_eff >= 4096 and 2 * p_eff * width > WORK_CAP):
            break  # what is left is reported undetermined: never a guess
        prec = 2 * p_eff
    undetermined = ~done
    for i in np.flatnonzero(undetermined):
        values[i] = mpmath.mpf("nan")
    return Settled(values.reshape(shape), hi.reshape(shape), lo.reshape(shape), rounded.reshape(shape),
                   undetermined.reshape(shape), cond, scale, nterms)
