"""The oracle's audit: every settled element against an independent brute-force formulation.

Each loss module carries a second, plain formulation of its loss (``LossDef.brute``: loops, mpmath
functions, fsum, the analytic gradients; never the kernel nor the row form).  :func:`audit_case`
evaluates it at 1000 and 2000 bits and rounds both to the case's format.  An element is *decided*
when the two round alike and the 2000-bit value lies farther than 2^-(1000-64) max(|v|, tiny) from
every rounding boundary of the format (the midpoints between the rounded value and its neighbours,
formed exactly; tiny is the smallest subnormal); otherwise the precision doubles (the pair 2000 and
4000 bits, then 4000 and 8000, ... up to 40000 bits) with the margin taken from the lower one.  What
is still undecided then is *ambiguous*: reported, never a disagreement (a value exactly on a
midpoint, or within 2^-31936 relative of one).

A *disagreement* is a decided element whose rounding differs from the oracle's ``rounded`` (NaN
equals NaN, +0 equals -0) where the oracle did not report the element undetermined; the oracle's
undetermined elements are counted separately.  Nothing here knows a loss: ``registry.get(case.loss)``
does.  Workers of :func:`audit_suite` import only reference/ and cases/ (spawned, never forked from
a process that may hold a backend).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import mpmath
import numpy as np

from . import registry
from .api import evaluate_check
from .formats import from_ordinal, get_format, ordinal, round_mpf

#: brute-force precisions: decided on the first pair (P, next P) that settles an element
LEVELS: tuple[int, ...] = (1000, 2000, 4000, 8000, 16000, 32000, 40000)
#: the decision margin is 2^-(P - MARGIN_BITS) relative, P the lower precision of the pair
MARGIN_BITS = 64
#: disagreements and ambiguous elements listed per record (all are counted)
MAX_LISTED = 20


@dataclass
class AuditRecord:
    """The audit of one check of one case."""

    case_id: str
    loss: str
    family: str
    dtype: str
    check: str
    n: int  # elements of the output
    # index, oracle, brute (roundings), value (30 digits), from_boundary (v - nearest midpoint), prec
    disagreements: list[dict] = field(default_factory=list)
    n_disagreements: int = 0
    # index, oracle, brute (round-half-even of the value), value, from_boundary, on_boundary
    ambiguous: list[dict] = field(default_factory=list)
    n_ambiguous: int = 0
    undetermined: int = 0  # elements the oracle reported undetermined (not compared)
    max_prec: int = 0  # the highest brute-force precision this check needed
    oracle_s: float = 0.0
    brute_s: float = 0.0
    error: str | None = None  # the audit could not run (an exception's text): counted apart

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.n_disagreements == 0 and self.error is None


# ------------------------------------------------------------------------------ rounding boundaries

def _mpf(v: float) -> mpmath.mpf:
    r = mpmath.mpf(0)
    r._mpf_ = mpmath.libmp.from_float(float(v), 53, mpmath.libmp.round_nearest)  # exact at any prec
    return r


def _overflow_edge(fmt) -> mpmath.mpf:
    """max_finite + ulp/2: at and above it, round-half-even gives inf."""
    return mpmath.fadd(_mpf(fmt.max_finite), mpmath.ldexp(1, fmt.emax - fmt.p), exact=True)


def boundaries(r: float, fmt) -> list:
    """The exact rounding boundaries around ``r`` (a value of ``fmt``): the midpoints between r and
    its neighbours (+-(max + ulp/2) next to the largest finite values and the infinities)."""
    fmt = get_format(fmt)
    if math.isnan(r):
        return []
    edge = _overflow_edge(fmt)
    if math.isinf(r):
        return [edge if r > 0 else -edge]
    o = int(ordinal(np.array([r]), fmt)[0])
    out = []
    for step in (-1, 1):
        nb = float(np.asarray(from_ordinal(np.array([o + step]), fmt), np.float64)[0])
        if math.isinf(nb) or math.isnan(nb):
            out.append(edge if step > 0 else -edge)
        else:
            out.append(mpmath.ldexp(mpmath.fadd(_mpf(r), _mpf(nb), exact=True), -1))
    return out


def _same(a: float, b: float) -> bool:
    """Agreement of two rounded values: NaN equals NaN, +0 equals -0."""
    return a == b or (math.isnan(a) and math.isnan(b))


def decide(lo, hi, p_lo: int, fmt) -> float | None:
    """The rounding of an element evaluated at ``p_lo`` bits (``lo``) and more (``hi``), or None when
    the pair does not decide it (different roundings, or ``hi`` within the margin of a boundary)."""
    fmt = get_format(fmt)
    r_lo, r_hi = round_mpf(lo, fmt), round_mpf(hi, fmt)
    if not _same(r_lo, r_hi):
        return None
    if math.isnan(r_hi):
        return r_hi
    if not mpmath.isfinite(hi):  # an exact infinity (mpmath does not overflow): both must be it
        return r_hi if lo == hi else None
    tiny = mpmath.ldexp(1, fmt.qmin)
    margin = mpmath.ldexp(max(abs(hi), tiny), -(p_lo - MARGIN_BITS))
    for b in boundaries(r_hi, fmt):
        # the difference correctly rounded (an exact one may not fit in memory: e^-3e38 - 2^-150)
        if abs(mpmath.fsub(hi, b, prec=p_lo + 128)) <= margin:
            return None
    return r_hi


# ------------------------------------------------------------------------------ one check

def _index(i: int, shape) -> list[int]:
    return [int(k) for k in np.unravel_index(i, shape)] if shape else []


@dataclass
class BruteResult:
    """The brute force of one output, settled per element (flat, C order)."""

    shape: tuple[int, ...]
    rounded: np.ndarray  # float64: the decided rounding, NaN where not decided
    decided: np.ndarray  # bool
    values: np.ndarray  # object: the mpf of the highest precision evaluated for the element
    prec: np.ndarray  # int: the higher precision of the deciding pair (0: not decided)
    max_prec: int = 0


def settle_brute(loss: str, args, kwargs, fmt, *, grad_output=None, wrt=None, skip=None,
                 levels: tuple[int, ...] = LEVELS) -> BruteResult:
    """Evaluate ``registry.get(loss).brute`` at levels[0], levels[1], ... until every element (but
    those flagged in the flat bool array ``skip``) is decided (:func:`decide`) or the levels run out."""
    d = registry.get(loss)
    fmt = get_format(fmt)
    todo = None
    res = None
    prev, p_prev = None, None
    for prec in levels:
        with mpmath.workprec(prec):
            cur = np.asarray(d.brute(args, dict(kwargs), grad_output=grad_output, wrt=wrt), dtype=object)
        if res is None:
            n = cur.size
            res = BruteResult(tuple(cur.shape), np.full(n, np.nan), np.zeros(n, bool), np.empty(n, object),
                              np.zeros(n, np.int64))
            todo = [i for i in range(n) if skip is None or not skip[i]]
        elif tuple(cur.shape) != res.shape:
            raise ValueError(f"{loss}.brute returned shape {cur.shape} at {prec} bits, {res.shape} before")
        cur = cur.reshape(-1)
        res.max_prec = prec
        for i in todo:
            res.values[i] = cur[i]
        if prev is not None:
            left = []
            for i in todo:
                r = decide(prev[i], cur[i], p_prev, fmt)
                if r is None:
                    left.append(i)
                else:
                    res.rounded[i], res.decided[i], res.prec[i] = r, True, prec
            todo = left
        if not todo:
            break
        prev, p_prev = cur, prec
    return res


def on_boundary(v, fmt) -> bool:
    """Is the exact value ``v`` exactly a rounding boundary of ``fmt`` (a midpoint)?"""
    return bool(mpmath.isfinite(v)) and any(v == b for b in boundaries(round_mpf(v, fmt), fmt))


def offset(v, fmt) -> str:
    """v minus the nearest rounding boundary of its rounding (to 6 digits), '' for NaN and inf."""
    if not mpmath.isfinite(v):
        return ""
    ds = [mpmath.fsub(v, b, prec=64) for b in boundaries(round_mpf(v, fmt), fmt)]
    return mpmath.nstr(min(ds, key=abs), 6) if ds else ""


def audit_case(case, check: str, levels: tuple[int, ...] = LEVELS) -> AuditRecord:
    """Compare the oracle's answer for one check of ``case`` with the loss's brute force."""
    args, kwargs = case.call()
    rec = AuditRecord(case_id=case.id, loss=case.loss, family=case.family, dtype=case.dtype, check=check, n=0)
    t0 = time.perf_counter()
    ex = evaluate_check(case.loss, check, *args, grad_output=case.grad_output, **kwargs)
    rec.oracle_s = time.perf_counter() - t0
    fmt = get_format(ex.dtype)
    shape = tuple(ex.shape)
    rec.n = int(np.prod(shape, dtype=np.int64))
    und = np.asarray(ex.undetermined, bool).reshape(-1)
    oracle = np.asarray(ex.rounded).astype(np.float64).reshape(-1)
    rec.undetermined = int(und.sum())
    wrt = None if check == "value" else check.partition(":")[2]
    t0 = time.perf_counter()
    b = settle_brute(case.loss, args, kwargs, fmt, grad_output=case.grad_output if wrt else None, wrt=wrt,
                     skip=und, levels=levels)
    rec.brute_s = time.perf_counter() - t0
    if b.shape != shape:
        raise ValueError(f"{case.loss}.brute returned shape {b.shape} for {check}, the oracle {shape}")
    rec.max_prec = b.max_prec
    ambiguous = [i for i in range(rec.n) if not und[i] and not b.decided[i]]
    rec.n_ambiguous = len(ambiguous)
    for i in ambiguous[:MAX_LISTED]:
        v = b.values[i]  # exactly on a boundary: an exact midpoint (or a term below 2^-40000 hides)
        rec.ambiguous.append({"index": _index(i, shape), "oracle": float(oracle[i]), "brute": round_mpf(v, fmt),
                              "value": mpmath.nstr(v, 30), "from_boundary": offset(v, fmt),
                              "on_boundary": on_boundary(v, fmt)})
    bad = [i for i in range(rec.n) if b.decided[i] and not _same(float(b.rounded[i]), float(oracle[i]))]
    rec.n_disagreements = len(bad)
    for i in bad[:MAX_LISTED]:
        rec.disagreements.append({"index": _index(i, shape), "oracle": float(oracle[i]), "brute": float(b.rounded[i]),
                                  "value": mpmath.nstr(b.values[i], 30), "from_boundary": offset(b.values[i], fmt),
                                  "prec": int(b.prec[i])})
    return rec


# ------------------------------------------------------------------------------ suites

def _task(task) -> AuditRecord:
    case, check = task
    try:
        return audit_case(case, check)
    except Exception as e:  # noqa: BLE001 - a broken brute force is reported, the rest still runs
        return AuditRecord(case_id=case.id, loss=case.loss, family=case.family, dtype=case.dtype,
                           check=check, n=0, error=f"{type(e).__name__}: {e}")


def _indexed_task(item) -> tuple[int, AuditRecord]:
    k, task = item
    return k, _task(task)


def tasks_of(cases, checks=None) -> list[tuple]:
    """(case, check) for every check of every case (only those in ``checks`` when given)."""
    return [(c, check) for c in cases for check in c.checks if checks is None or check in checks]


def audit_suite(cases, jobs: int = 1, progress=None, checks=None) -> list[AuditRecord]:
    """Audit every check of every case (or only ``checks``); ``jobs`` > 1 spreads them over spawned
    worker processes.  Records come back in the cases' order; ``progress(record)`` is called as each
    one completes."""
    tasks = tasks_of(cases, checks)
    if jobs <= 1 or len(tasks) <= 1:
        out = []
        for t in tasks:
            out.append(_task(t))
            if progress:
                progress(out[-1])
        return out
    import multiprocessing as mp

    # the biggest first, so that no long check starts last
    order = sorted(range(len(tasks)), key=lambda k: -tasks[k][0].args[0].size)
    results: list[AuditRecord | None] = [None] * len(tasks)
    with mp.get_context("spawn").Pool(jobs) as pool:
        for k, rec in pool.imap_unordered(_indexed_task, [(k, tasks[k]) for k in order], chunksize=1):
            results[k] = rec
            if progress:
                progress(rec)
    return results  # type: ignore[return-value]


def worker_modules() -> list[str]:
    """The backend and harness packages loaded in this process (an audit worker must hold none)."""
    import sys

    return sorted({m.split(".")[0] for m in sys.modules} & {"torch", "jax", "jaxlib", "harness"})


def totals(records) -> dict:
    """Summary figures of a list of records."""
    return {
        "cases": len({r.case_id for r in records}),
        "checks": len(records),
        "elements": sum(r.n for r in records),
        "disagreements": sum(r.n_disagreements for r in records),
        "ambiguous": sum(r.n_ambiguous for r in records),
        "undetermined": sum(r.undetermined for r in records),
        "errors": sum(r.error is not None for r in records),
        "oracle_s": round(sum(r.oracle_s for r in records), 3),
        "brute_s": round(sum(r.brute_s for r in records), 3),
    }


def reproducer(rec: AuditRecord, index=None) -> str:
    """A copy-paste line printing the oracle's rounded answer for the record's element."""
    idx = "" if index is None else f"[{tuple(index)!r}]"
    return (f"python -c \"import cases, reference; c = cases.find('{rec.case_id}'); a, k = c.call(); "
            f"print(reference.evaluate_check(c.loss, '{rec.check}', *a, grad_output=c.grad_output, "
            f"**k).rounded{idx})\"")
