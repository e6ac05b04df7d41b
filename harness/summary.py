"""The one-screen summary printed at the end of every run.

A table per backend x loss x dtype (verdict counts and the worst ulp error), then one plain line per
worst failing check naming backend, loss, family, dtype, check and case id: plain lines, never
wrapped, so a CI log or a test can grep them.
"""
from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from harness.backends.base import printable

COLUMNS = ("pass", "warn", "fail", "xfail", "unsupported", "error", "undetermined")


def number(value: Any) -> float | None:
    """A results-format number ("inf"/"nan" strings included) as a float; None if absent."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}"


def outcome(rec: dict, strict: bool = False) -> str:
    """The record's final standing: pass/warn/fail/xfail/unsupported/error/undetermined."""
    from harness.check import final_verdict

    return final_verdict(rec, strict)


def failing(records: Iterable[dict], strict: bool = False) -> list[dict]:
    """Records that fail the gate (error, crash, timeout and bad output included)."""
    return [r for r in records if outcome(r, strict) in ("fail", "error")]


def evaluated(rec: dict) -> bool:
    """Did the backend produce an output for this check (right or wrong)?"""
    return rec.get("status") in ("ok", "bad_output")


def _tally(records: Iterable[dict]) -> tuple[dict, dict, dict]:
    total: dict[tuple[str, str], int] = defaultdict(int)
    done: dict[tuple[str, str], int] = defaultdict(int)
    absent: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        key = (str(r.get("backend")), str(r.get("loss")))
        total[key] += 1
        done[key] += evaluated(r)
        absent[key] += r.get("provided") is False
    return total, done, absent


def unevaluated(records: Iterable[dict], asked: Sequence[str] = ()) -> list[tuple[str, str, int]]:
    """(backend, loss, checks) for every backend that evaluated none of the checks of a loss it was
    asked to check (all unsupported, erroring or timing out): such a backend has shown nothing, and
    a gate that counted only failures would pass it.  A loss the backend does not provide at all
    (a drop-in module without that function: records with ``provided: false``) was not asked of
    it, unless ``asked`` (the run's --loss list) names it."""
    total, done, absent = _tally(records)
    return [(b, loss, n) for (b, loss), n in total.items()
            if n and not done[(b, loss)] and (absent[(b, loss)] < n or loss in asked)]


def not_provided(records: Iterable[dict], asked: Sequence[str] = ()) -> dict[str, list[str]]:
    """backend -> the losses it does not provide (and was not asked for by name): reported, not failed."""
    total, _, absent = _tally(records)
    out: dict[str, list[str]] = defaultdict(list)
    for (b, loss), n in total.items():
        if n and absent[(b, loss)] == n and loss not in asked:
            out[b].append(loss)
    return dict(out)


def gate_fails(records: Sequence[dict], strict: bool = False, allow_unsupported: bool = False,
               asked: Sequence[str] = ()) -> bool:
    """The gate's decision: a failing check, or (unless allowed) a loss a backend evaluated nothing of."""
    return bool(failing(records, strict)) or (not allow_unsupported and bool(unevaluated(records, asked)))


_STATUS_ORDER = {"ok": 0, "bad_output": 1, "crash": 2, "timeout": 3, "error": 4}


def _severity(rec: dict) -> tuple:
    """Sort key, worst first: wrong numbers (by ulp error), then bad output, crashes, timeouts, errors."""
    ulp = number(rec.get("max_ulp"))
    return (_STATUS_ORDER.get(rec.get("status", "ok"), 5),
            -(ulp if ulp is not None and not math.isnan(ulp) else -1.0))


def symptom_of(rec: dict) -> str:
    """The record's symptom (harness.symptoms), or its status when it has no figures."""
    status = rec.get("status", "ok")
    if status != "ok":
        return {"bad_output": "bad output", "timeout": "timeout", "crash": "crash"}.get(status, str(status))
    return str(rec.get("symptom") or "inaccurate")


def failure_line(rec: dict, strict: bool = False) -> str:
    """``FAIL backend loss family=… dtype check case=… max_ulp=…: message`` (one line, greppable)."""
    verdict = outcome(rec, strict).upper()
    status = rec.get("status", "ok")
    what = f" [{status}]" if status != "ok" else ""
    message = " ".join(str(rec.get("message") or "").split())
    line = (f"{verdict}{what} {rec.get('backend')} {rec.get('loss')} family={rec.get('family')} "
            f"options={rec.get('options')} {rec.get('dtype')} {rec.get('check')} case={rec.get('case_id')} "
            f"max_ulp={fmt(number(rec.get('max_ulp')))}" + (f": {message}" if message else ""))
    return printable(line)  # a record read back from a file is as untrusted as a backend's text


def worst_note(rec: dict, verdict: str) -> str:
    """Why a row's worst figure may be large without failing: "xfail" (a known failure) or
    "stable" (within the backward-stable bound of an ill-conditioned element), so that a worst ulp
    never seems to contradict the verdicts beside it."""
    if verdict == "xfail":
        return "xfail"
    rung = (rec.get("worst") or {}).get("rung") if isinstance(rec.get("worst"), dict) else None
    if verdict in ("pass", "warn") and rung in ("stable", "recursive", "absolute", "magnitude", "flushed",
                                                 "convention"):
        return str(rung)
    return ""


def table_rows(records: Iterable[dict], strict: bool = False) -> list[tuple[tuple[str, str, str], dict]]:
    """((backend, loss, dtype), {column: count, "worst_ulp": float|None}), in backend order of first
    appearance, then registry order of losses and dtypes."""
    from reference.registry import DTYPES, LOSSES

    rows: dict[tuple[str, str, str], dict] = {}
    for rec in records:
        key = (str(rec.get("backend")), str(rec.get("loss")), str(rec.get("dtype")))
        row = rows.setdefault(key, defaultdict(int, worst_ulp=None, worst_note=""))
        verdict = outcome(rec, strict)
        row[verdict] += 1
        ulp = number(rec.get("max_ulp"))
        if ulp is not None and not math.isnan(ulp) and (row["worst_ulp"] is None or ulp > row["worst_ulp"]):
            row["worst_ulp"] = ulp
            row["worst_note"] = worst_note(rec, verdict)
    backends = list(dict.fromkeys(k[0] for k in rows))

    def order(item: tuple) -> tuple:
        (backend, loss, dtype), _ = item
        return (backends.index(backend), LOSSES.index(loss) if loss in LOSSES else len(LOSSES),
                DTYPES.index(dtype) if dtype in DTYPES else len(DTYPES))

    return sorted(rows.items(), key=order)


def print_summary(records: Sequence[dict], strict: bool = False, stats: Any = None, console: Any = None,
                  worst: int = 15, allow_unsupported: bool = False, hint: Any = None,
                  asked: Sequence[str] = ()) -> list[dict]:
    """Print the summary; return the failing records (worst first).  ``hint(record)`` gives the
    command that shows a failing record (``losscheck show ...``), printed under its line."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        tty = sys.stdout.isatty()
        console = Console(file=sys.stdout, width=None if tty else 160, highlight=False)
    rows = table_rows(records, strict)
    used = [c for c in COLUMNS if any(r.get(c) for _, r in rows)] or ["pass"]
    table = Table(title="losscheck summary", title_justify="left")
    for name in ("backend", "loss", "dtype"):
        table.add_column(name, no_wrap=True)
    for name in used:
        table.add_column(name, justify="right")
    table.add_column("worst ulp", justify="right")
    styles = {"fail": "red", "error": "red", "warn": "yellow"}
    for (backend, loss, dtype), row in rows:
        cells = []
        for name in used:
            n = row.get(name, 0)
            style = styles.get(name) if n else None
            cells.append(f"[{style}]{n}[/]" if style else str(n))
        note = f" ({row['worst_note']})" if row["worst_note"] else ""
        table.add_row(backend, loss, dtype, *cells, fmt(row["worst_ulp"]) + note)
    console.print(table)

    bad = sorted(failing(records, strict), key=_severity)
    if bad:
        groups: dict[tuple, list[dict]] = {}
        for rec in bad:  # worst first, so each group's first record is its worst
            key = (rec.get("backend"), rec.get("loss"), rec.get("family"), symptom_of(rec))
            groups.setdefault(key, []).append(rec)
        shown = list(groups.items())[:worst]
        console.print(f"failing checks by backend/loss/family and symptom ({len(shown)} of {len(groups)} "
                      f"groups, {len(bad)} failing checks; the worst of each):", markup=False)
        for (_, _, _, name), group in shown:
            dtypes = sorted({str(r.get("dtype")) for r in group})
            checks = sorted({str(r.get("check")) for r in group})
            head = f"  [{name}: {len(group)} check{'s' if len(group) > 1 else ''}, {'/'.join(dtypes)}, " \
                   f"{'/'.join(checks)}]"
            console.print(failure_line(group[0], strict) + printable(head), markup=False, soft_wrap=True)
            if hint is not None:
                console.print("    " + printable(hint(group[0])), markup=False, soft_wrap=True)
        by_backend: dict[str, int] = defaultdict(int)
        for rec in bad:
            by_backend[str(rec.get("backend"))] += 1
        console.print("FAILED: " + ", ".join(f"{b}: {n} failing checks" for b, n in by_backend.items()),
                      markup=False, soft_wrap=True)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        per[str(r.get("backend"))][0] += evaluated(r)
        per[str(r.get("backend"))][1] += 1
    console.print("evaluated: " + ", ".join(f"{b} {n}/{t}" for b, (n, t) in per.items()), markup=False)
    for backend, losses in not_provided(records, asked).items():
        console.print(printable(f"NOTE {backend} provides no {', '.join(losses)}: not checked (name a loss with "
                                "--loss to require it)"), markup=False, soft_wrap=True)
    empty = unevaluated(records, asked)
    for backend, loss, n in empty:
        word = "(allowed by --allow-unsupported)" if allow_unsupported else "(--allow-unsupported accepts that)"
        console.print(f"{'NOTE' if allow_unsupported else 'FAIL'} {backend} evaluated none of its {n} {loss} "
                      f"checks {word}", markup=False, soft_wrap=True)
    if empty and not allow_unsupported and not bad:
        names = ", ".join(sorted({b for b, _, _ in empty}))
        console.print(f"FAILED: {names}: a loss with no evaluated check", markup=False, soft_wrap=True)
    elif not bad:
        warns = sum(1 for r in records if outcome(r, strict) == "warn")
        xfails = sum(1 for r in records if outcome(r, strict) == "xfail")
        extra = [f"{warns} warning{'s' if warns != 1 else ''}"] if warns else []
        extra += [f"{xfails} expected failure{'s' if xfails != 1 else ''}"] if xfails else []
        console.print(f"PASSED{' with ' + ' and '.join(extra) if extra else ''}: {len(records)} checks, "
                      "none failing", markup=False)
    for line in notes(records, strict):
        console.print(printable(line), markup=False, soft_wrap=True)
    if stats is not None:
        console.print(f"time: {stats.line()}", markup=False, soft_wrap=True)
    return bad


def notes(records: Iterable[dict], strict: bool = False) -> list[str]:
    """The lines that tell warnings apart by symptom (an absolute-only cliff is not a flushed
    subnormal), and the backends whose outputs came back in another dtype than their inputs'."""
    warns: dict[str, int] = defaultdict(int)
    returned: dict[tuple[str, str, str, bool], int] = defaultdict(int)
    for r in records:
        if r.get("verdict") == "warn":
            warns[symptom_of(r)] += 1
        if r.get("out_dtype"):
            key = (str(r.get("backend")), str(r.get("out_dtype")), str(r.get("dtype")), r.get("status") == "bad_output")
            returned[key] += 1
    lines = []
    if warns:
        what = "fail under --strict" if strict else "warn"
        lines.append(f"warnings by symptom ({what}): " + ", ".join(f"{name} {n}" for name, n in sorted(warns.items())))
    for (backend, out, dtype, failed), n in sorted(returned.items()):
        how = ("failed as bad output (--strict-dtype)" if failed else
               f"judged against the oracle settled in {out} (--strict-dtype fails them)")
        lines.append(f"NOTE {backend} returned {out} for {dtype} input in {n} check{'s' if n != 1 else ''}: {how}")
    return lines
