"""One check of one case: observed output vs the oracle's Exact -> a result record.

The record is the JSONL line of docs/CONTRACTS.md ("Results format") minus what only the runner
knows (run id, status of the worker, elapsed time); the runner adds those.  Everything is
JSON-safe: non-finite floats are the strings "inf", "-inf", "nan".

ulp_hist buckets (over determined elements): [ulp == 0, 0 < ulp <= 1, 1 < ulp <= 2, 2 < ulp <= 3,
ulp > 3 (inf included)].  A correctly rounded value lands in bucket 0 or 1.
"""
from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np

from harness.metrics import figures
from harness.symptoms import describe_pair, factor_text, symptom
from harness.tolerances import DtypeTolerance
from harness.verdict import (
    RUNG_SEVERITY,
    WARN_RUNGS,
    classify,
    match_convention,
    match_flushed_inputs,
    match_variant,
    record_verdict,
)

__all__ = ["COUNT_KEYS", "check_observation", "final_verdict", "gate_failed", "json_float", "magnitude_of",
           "note_returned_dtype", "policy_labels", "returned_format"]

#: the rungs a record counts elements of (harness/verdict.py's ladder; reports read these names)
COUNT_KEYS = ("accurate", "stable", "flushed", "recursive", "absolute", "magnitude", "convention", "semantic",
              "fail", "special", "undetermined")


def json_float(x: Any) -> float | str | None:
    """A float for JSON: non-finite values as "inf"/"-inf"/"nan"."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def final_verdict(record: dict, strict: bool = False) -> str:
    """The verdict the gate acts on: under ``--strict`` a warn counts as a fail."""
    v = record.get("verdict", "fail")
    return "fail" if strict and v == "warn" else v


def gate_failed(record: dict, strict: bool = False) -> bool:
    """Whether this record makes the gate exit 1 (fail or error; warn too when strict)."""
    return final_verdict(record, strict) in ("fail", "error")


def case_fields(case, check: str) -> dict:
    """The fields a record copies from its case (also used for records of crashed workers)."""
    from reference import registry

    spec = registry.get(case.loss)
    reduction = spec.reduction_of(case.kwargs) if spec.has_reduction else None
    return {"type": "result", "case_id": case.id, "loss": case.loss, "family": case.family,
            "options": case.options, "dtype": case.dtype, "check": check, "reduction": reduction,
            "shape": [int(s) for s in np.shape(case.args[0])], "meta": case.meta}


def check_observation(case, check: str, exact, observed, tol: DtypeTolerance, *,
                      backend: str | None = None) -> dict:
    """Judge ``observed`` (one backend's output for ``check``: "value" or "grad:<arg>") against ``exact``.

    A wrong type, shape or dtype is status "bad_output" / verdict "fail" without figures.  With
    ``backend`` given, the record names it and carries a repro snippet when it is not a pass.
    """
    rec = case_fields(case, check)
    if backend is not None:
        rec = {"type": "result", "backend": backend, **{k: v for k, v in rec.items() if k != "type"}}
    want_shape = tuple(np.shape(exact.rounded))
    want = f"{exact.dtype} array of shape {list(want_shape)}"
    if not isinstance(observed, np.ndarray):
        got = f"{type(observed).__name__}"
        return _bad_output(rec, want, got, want_shape)
    if str(observed.dtype) != exact.dtype or observed.shape != want_shape:
        got = f"{observed.dtype} array of shape {list(observed.shape)}"
        return _bad_output(rec, want, got, want_shape)

    figs = figures(exact, observed)
    magnitude = magnitude_of(case, check, want_shape)
    rungs = classify(exact, observed, figs, tol, magnitude)
    rungs, note = policy_labels(case, check, exact, observed, tol, rungs)
    rec["status"] = "ok"
    rec["verdict"] = record_verdict(rungs)
    rec.update(_summary(exact, observed, figs, rungs, tuple(int(d) for d in np.shape(case.args[0]))))
    if rec["worst"] is not None:
        rec["worst"]["input"] = describe_input(case, check, rec["worst"]["index"])
        if rec["worst"]["rung"] == "magnitude":
            _magnitude_figure(rec, exact, magnitude)
    if note:
        rec["note"] = note
        rec["message"] = f"{rec['message']}; {note}"
    if backend is not None and rec["verdict"] not in ("pass", "undetermined"):
        from harness.repro import snippet

        # judged in a format the backend returned instead of the input's: the repro settles there too
        rec["repro"] = snippet(case, backend, check, exact.dtype if exact.dtype != case.dtype else None)
    return rec


def _spec(case):
    from reference import registry

    try:
        return registry.get(case.loss)
    except (KeyError, ValueError):
        return None


def magnitude_of(case, check: str, shape: tuple) -> np.ndarray | None:
    """The loss's max|x| per element of ``check`` (LossDef.magnitude), None where it declares none."""
    spec = _spec(case)
    if spec is None:
        return None
    try:
        m = spec.magnitude(case.args, case.kwargs, check)
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return None if m is None else np.broadcast_to(np.asarray(m, np.float64), shape)


def flushed_inputs(case):
    """``case`` with every subnormal of its floating arrays (inputs, array options, grad_output)
    read as a zero of the same sign, as denormals-are-zero arithmetic reads them; None when it
    holds no subnormal."""
    import dataclasses

    from reference import formats

    def daz(a):
        if not isinstance(a, np.ndarray) or str(a.dtype) not in formats.FORMATS:
            return a, False
        tiny = np.ldexp(1.0, formats.FORMATS[str(a.dtype)].emin)
        with np.errstate(invalid="ignore"):
            sub = (a != 0) & (np.abs(a.astype(np.float64)) < tiny)
        return (np.where(sub, a * 0, a).astype(a.dtype), True) if sub.any() else (a, False)

    args = [daz(a) for a in case.args]
    kwargs = {k: daz(v) for k, v in case.kwargs.items()}
    go = daz(case.grad_output) if case.grad_output is not None else (None, False)
    if not (any(f for _, f in args) or any(f for _, f in kwargs.values()) or go[1]):
        return None
    return dataclasses.replace(case, args=tuple(a for a, _ in args), kwargs={k: v for k, (v, _) in kwargs.items()},
                               grad_output=go[0])


def _label_flushed_inputs(case, check: str, exact, observed, tol: DtypeTolerance, rungs: np.ndarray):
    """(rungs, note or None): the failing elements that are the answer for the case's inputs with
    their subnormals read as 0 relabelled "flushed" (one more oracle call, only for a failing
    record whose case holds a subnormal)."""
    if not (rungs == "fail").any():
        return rungs, None
    daz_case = flushed_inputs(case)
    if daz_case is None:
        return rungs, None
    from harness.cache import compute

    try:
        daz = compute(daz_case, check, exact.dtype if exact.dtype != case.dtype else None)
    except (ValueError, ArithmeticError):
        return rungs, None
    hit = match_flushed_inputs(rungs, daz, observed, tol)
    if not hit.any():
        return rungs, None
    return (np.where(hit, "flushed", rungs).astype(rungs.dtype),
            "flushed inputs: the answer for the subnormal inputs read as 0 (denormals-are-zero)")


def policy_labels(case, check: str, exact, observed, tol: DtypeTolerance, rungs: np.ndarray):
    """The flushed-input, convention and semantic relabellings (harness/verdict.py), asked only
    where an element fails: (rungs, the record's note or None).  The note names the other answer
    (subnormal inputs read as 0, a convention) or both formulas (a semantic difference)."""
    rungs, daz_note = _label_flushed_inputs(case, check, exact, observed, tol, rungs)
    failing = np.isin(rungs, ("special", "fail"))
    spec = _spec(case) if failing.any() else None
    if spec is None:
        return rungs, daz_note
    notes = [daz_note] if daz_note else []
    conv = spec.conventions(case.args, case.kwargs, check)
    if conv is not None:
        relabelled = match_convention(rungs, exact, observed, tol, conv)
        if np.any(relabelled != rungs):
            notes.append(f"convention: {conv.text}")
            rungs = relabelled
    for variant in spec.variants:
        if not np.isin(rungs, ("special", "fail")).any():
            break
        values = variant.value(case.args, case.kwargs, check, exact.dtype, case.grad_output)
        if values is None:
            continue
        hit = match_variant(rungs, exact, observed, tol, values)
        if hit.any():
            notes.append(f"semantic difference: {variant.name}, {variant.formula} vs torch's {variant.torch_formula}")
            rungs = np.where(hit, "semantic", rungs).astype(rungs.dtype)
    return rungs, "; ".join(notes) or None


def _magnitude_figure(rec: dict, exact, magnitude) -> None:
    """The worst element's "error = k x u x max|x|" (u the accumulation format's unit roundoff)."""
    from harness.tolerances import ACCUMULATION
    from reference import formats

    idx = tuple(rec["worst"]["index"])
    m = float(np.asarray(magnitude)[idx]) if magnitude is not None else math.nan
    acc = ACCUMULATION[exact.dtype]
    u = float(formats.FORMATS[acc].u)
    try:
        err = abs(float(mpmath.mpf(rec["worst"]["exact"]) - mpmath.mpf(rec["worst"]["observed"])))
    except (ValueError, TypeError):
        return
    k = err / (u * m) if m > 0 else math.inf
    rec["worst"]["max_abs_x"] = json_float(m)
    rec["worst"]["k"] = json_float(k)
    p = formats.FORMATS[acc].p
    rec["message"] += f"; error = {k:.3g} × u × max|x| (u = 2^-{p}, {acc}; max|x| = {m:.3g})"


def returned_format(observed, exact) -> str | None:
    """The format ``observed`` came back in when it is another supported floating format than the
    oracle's ``exact`` (a fused kernel's float32 for float16 input) with the right shape; None when
    it is the same format, or anything else (not an array, a wrong shape, an integer or unknown
    dtype: those stay bad output)."""
    from reference.formats import FORMATS

    if not isinstance(observed, np.ndarray) or observed.shape != tuple(np.shape(exact.rounded)):
        return None
    name = str(observed.dtype)
    return name if name in FORMATS and name != exact.dtype else None


def note_returned_dtype(rec: dict, returned: str, expected: str, strict: bool) -> dict:
    """Mark a record whose output came back in ``returned`` instead of the input's ``expected``:
    the ``out_dtype`` field, and the message part that says so (judged in ``returned`` unless
    ``strict``, where the record is bad output)."""
    part = f"returned {returned} for {expected} input"
    part += " (a failure under --strict-dtype)" if strict else f" (judged in {returned})"
    rec["out_dtype"] = returned
    message = rec.get("message")
    rec["message"] = f"{message}; {part}" if message else part
    return rec


def _bad_output(rec: dict, want: str, got: str, shape: tuple) -> dict:
    n = int(np.prod(shape)) if shape else 1
    rec.update({"status": "bad_output", "verdict": "fail", "n": n,
                "counts": {k: 0 for k in COUNT_KEYS}, "max_ulp": None, "median_ulp": None,
                "max_bits": None, "max_rel_u": None, "frac_correctly_rounded": None,
                "frac_le_1ulp": None, "ulp_hist": [0, 0, 0, 0, 0], "worst": None,
                "message": f"bad output: expected {want}, got {got}"})
    return rec


def _summary(exact, observed: np.ndarray, figs: dict, rungs: np.ndarray, sizes: tuple[int, ...] = ()) -> dict:
    n = int(rungs.size)
    counts = {k: int(np.count_nonzero(rungs == k)) for k in COUNT_KEYS}
    det = rungs != "undetermined"
    ulp = figs["ulp"][det]
    obs64 = observed.astype(np.float64)[det]
    r64 = np.asarray(exact.rounded).astype(np.float64)[det]
    m = int(ulp.size)
    out: dict[str, Any] = {"n": n, "counts": counts}
    if m:
        out["max_ulp"] = json_float(np.max(ulp))
        out["median_ulp"] = json_float(np.median(ulp))
        out["max_bits"] = json_float(np.max(figs["bits"][det]))
        out["max_rel_u"] = json_float(np.max(figs["rel_u"][det]))
        same = (obs64 == r64) | (np.isnan(obs64) & np.isnan(r64))
        out["frac_correctly_rounded"] = float(np.count_nonzero(same) / m)
        out["frac_le_1ulp"] = float(np.count_nonzero(ulp <= 1.0) / m)
        hist = [np.count_nonzero(ulp == 0), np.count_nonzero((ulp > 0) & (ulp <= 1)),
                np.count_nonzero((ulp > 1) & (ulp <= 2)), np.count_nonzero((ulp > 2) & (ulp <= 3)),
                np.count_nonzero(ulp > 3)]
        out["ulp_hist"] = [int(h) for h in hist]
    else:
        out.update({"max_ulp": None, "median_ulp": None, "max_bits": None, "max_rel_u": None,
                    "frac_correctly_rounded": None, "frac_le_1ulp": None, "ulp_hist": [0, 0, 0, 0, 0]})
    worst = _worst(exact, observed, figs, rungs) if n else None
    out["worst"] = worst
    out["message"] = _message(counts, n, worst, out.get("max_ulp"), exact.dtype, sizes)
    bad = counts["fail"] + counts["special"] + counts["semantic"] + sum(counts[k] for k in WARN_RUNGS)
    if bad and worst is not None:
        out["symptom"] = symptom(worst, sizes=sizes)
    return out


def _worst(exact, observed: np.ndarray, figs: dict, rungs: np.ndarray) -> dict:
    """The element with the worst rung, then the largest ulp error."""
    sev = np.vectorize(RUNG_SEVERITY.__getitem__, otypes=[np.int64])(rungs).reshape(-1)
    ulp = np.nan_to_num(figs["ulp"].reshape(-1), nan=-1.0, posinf=np.inf)
    flat = int(np.lexsort((-ulp, -sev))[0])  # primary key: severity, then ulp, both descending
    idx = np.unravel_index(flat, rungs.shape) if rungs.ndim else ()
    v = (exact.values_at([flat])[0] if hasattr(exact, "values_at")
         else np.asarray(exact.values, dtype=object).reshape(-1)[flat])
    und = bool(np.asarray(exact.undetermined).reshape(-1)[flat])
    return {"index": [int(i) for i in idx],
            "exact": "undetermined" if und else mpmath.nstr(v, 17),
            "observed": _num_str(observed.reshape(-1)[flat]),
            "rounded": _num_str(np.asarray(exact.rounded).reshape(-1)[flat]),
            "ulp": json_float(figs["ulp"].reshape(-1)[flat]),
            "rung": str(rungs.reshape(-1)[flat])}


def describe_input(case, check: str, index: list[int], limit: int = 200) -> str:
    """A short description of the inputs behind output element ``index`` (for the worst element),
    as the loss definition gives it (``LossDef.describe``), or a summary of the whole input for
    reduced outputs."""
    try:
        text = _describe(case, check, tuple(index))
    except (IndexError, ValueError, TypeError):
        text = None
    if text is None:
        x = np.asarray(case.args[0]).astype(np.float64)
        lo, hi = (np.nanmin(x), np.nanmax(x)) if x.size and not np.all(np.isnan(x)) else (math.nan, math.nan)
        text = f"input {case.dtype}{list(x.shape)} in [{lo:.6g}, {hi:.6g}]"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(case, check: str, idx: tuple) -> str | None:
    from reference import registry

    return registry.get(case.loss).describe(case.args, case.kwargs, check, idx)


def _num_str(x) -> str:
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def _message(counts: dict, n: int, worst: dict | None, max_ulp, dtype: str = "",
             sizes: tuple[int, ...] = ()) -> str:
    """One line: the symptom first ("nan where finite: 3/10 elements fail; ..."), then the worst
    element with just enough digits to tell exact from observed (harness.symptoms)."""
    und = counts["undetermined"]
    tail = f"; {und} undetermined" if und else ""
    if worst is None:
        return "no elements" + tail
    where = f"at {worst['index']}: {describe_pair(worst, dtype)}"
    ulp = worst["ulp"]
    ulp_s = ulp if isinstance(ulp, str) else f"{ulp:.3g}"
    bad = counts["fail"] + counts["special"] + counts.get("semantic", 0)
    flushed = counts.get("flushed", 0)
    warned = {k: counts.get(k, 0) for k in WARN_RUNGS}
    if bad or any(warned.values()):
        name = symptom(worst, sizes=sizes) or "inaccurate"
        factor = factor_text(worst, sizes) if name == "off by a simple factor" else None
        head = f"{name} ({factor})" if factor else name
        flush = f"{flushed}/{n} elements with subnormals flushed to 0" if flushed else ""
        warns = [flush] if flush else []
        for key, text in (("recursive", "within the recursive-summation bound only"),
                          ("absolute", "only absolutely accurate"),
                          ("magnitude", "accurate only relative to max|x|"),
                          ("convention", "the other convention at a special point")):
            if warned[key]:
                warns.append(f"{warned[key]}/{n} elements {text}")
        if bad:
            spec = f" ({counts['special']} special mismatch)" if counts["special"] else ""
            sem = f" ({counts['semantic']} semantic difference)" if counts.get("semantic") else ""
            more = f"; {', '.join(warns)} (warn)" if warns else ""
            return f"{head}: {bad}/{n} elements fail{spec}{sem}{more}; worst {ulp_s} ulp {where}{tail}"
        return f"{head}: {', '.join(warns)} (warn); worst {ulp_s} ulp {where}{tail}"
    judged = n - und
    if not judged:
        return f"all {n} elements undetermined"
    mu = max_ulp if isinstance(max_ulp, str) else f"{max_ulp:.3g}"
    return (f"{judged}/{n} elements pass ({counts['accurate']} accurate, {counts['stable']} stable); "
            f"max {mu} ulp{tail}")
