"""Aggregate records into what every output shows: the accuracy table, verdict totals, the issues.

One place computes the figures, so the HTML, Markdown, JSON and JUnit outputs cannot disagree.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median

from reports.results import FAILING, Results, grad_arg, jsonable, run_device

DTYPE_ORDER = ("float16", "bfloat16", "float32", "float64")
VERDICTS = ("pass", "warn", "fail", "xfail", "error", "unsupported", "undetermined")
#: issue listing order: what breaks CI first
ISSUE_ORDER = {"fail": 0, "error": 1, "warn": 2, "undetermined": 3}
HIST_LABELS = ("exact", "≤1", "≤2", "≤3", ">3")  # ulp_hist buckets (plots.HIST_BINS draws them)


def ulp_key(value: float | None) -> float:
    """Sort key for error figures: absent/NaN lowest, inf highest."""
    return -1.0 if value is None or math.isnan(value) else value


def dtype_key(dtype: str) -> tuple[int, str]:
    return (DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER), dtype)


def check_key(check: str) -> tuple[int, str]:
    """Display order of checks: the value, the input gradient, other gradients by argument name."""
    arg = grad_arg(check)
    if arg is None:
        return (0, "") if check == "value" else (3, check)
    return (1, "") if arg == "input" else (2, arg)


def has_figures(rec: dict) -> bool:
    return rec.get("status") == "ok" and rec.get("max_ulp") is not None


@dataclass
class Cell:
    """Records of one group (e.g. loss × check × dtype × backend) with their combined figures."""

    records: list[dict] = field(default_factory=list)

    def add(self, rec: dict) -> None:
        self.records.append(rec)

    @property
    def verdicts(self) -> Counter:
        return Counter(r.get("verdict", "error") for r in self.records)

    @property
    def elements(self) -> int:
        return sum(int(r.get("n") or 0) for r in self.records if has_figures(r))

    @property
    def worst(self) -> dict | None:
        """The record with the largest max ulp error (None when no record has figures)."""
        scored = [r for r in self.records if has_figures(r)]
        return max(scored, key=lambda r: ulp_key(r["max_ulp"])) if scored else None

    @property
    def max_ulp(self) -> float | None:
        worst = self.worst
        return worst["max_ulp"] if worst else None

    @property
    def median_ulp(self) -> float | None:
        vals = [r["median_ulp"] for r in self.records
                if has_figures(r) and r.get("median_ulp") is not None and not math.isnan(r["median_ulp"])]
        return median(vals) if vals else None

    @property
    def max_bits(self) -> float | None:
        vals = [r["max_bits"] for r in self.records if has_figures(r) and r.get("max_bits") is not None]
        return max(vals, key=ulp_key) if vals else None

    def _weighted(self, name: str) -> float | None:
        num = den = 0.0
        for r in self.records:
            frac, n = r.get(name), int(r.get("n") or 0)
            if has_figures(r) and frac is not None and not math.isnan(frac) and n > 0:
                num += frac * n
                den += n
        return num / den if den else None

    @property
    def frac_correctly_rounded(self) -> float | None:
        return self._weighted("frac_correctly_rounded")

    @property
    def frac_le_1ulp(self) -> float | None:
        return self._weighted("frac_le_1ulp")

    @property
    def ulp_hist(self) -> list[int]:
        total = [0] * len(HIST_LABELS)
        for r in self.records:
            hist = r.get("ulp_hist")
            if has_figures(r) and isinstance(hist, list) and len(hist) == len(total):
                total = [a + int(b) for a, b in zip(total, hist)]
        return total

    @property
    def worst_verdict(self) -> str:
        v = self.verdicts
        for name in ("fail", "error", "warn", "undetermined", "xfail", "pass", "unsupported"):
            if v.get(name):
                return name
        return "pass"


def group(records: Iterable[dict], *fields: str) -> dict[tuple, Cell]:
    """Records grouped by the given fields, in a stable display order."""
    cells: dict[tuple, Cell] = {}
    for rec in records:
        cells.setdefault(tuple(rec.get(f) for f in fields), Cell()).add(rec)

    def key(item):
        out = []
        for name, value in zip(fields, item[0]):
            value = "" if value is None else str(value)
            if name == "dtype":
                out.append(dtype_key(value))
            elif name == "check":
                out.append(check_key(value))
            else:
                out.append((0, value))
        return out

    return dict(sorted(cells.items(), key=key))


def table(results: Results) -> dict[tuple, Cell]:
    """The accuracy table: (loss, check, dtype, backend) -> Cell, backends in run order."""
    cells = group(results, "loss", "check", "dtype", "backend")
    order = {b: i for i, b in enumerate(results.backends)}
    return dict(sorted(cells.items(), key=lambda kv: (
        kv[0][0], check_key(str(kv[0][1])), dtype_key(kv[0][2]), order.get(kv[0][3], len(order)))))


def by_backend(results: Results) -> dict[str, Cell]:
    """Records per backend, in the run header's order."""
    cells = {k[0]: c for k, c in group(results, "backend").items()}
    order = results.backends
    return dict(sorted(cells.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def issues(results: Iterable[dict]) -> list[dict]:
    """Failures, errors, warnings and undetermined records: most severe first, worst error first."""
    found = [r for r in results if r.get("verdict") in ISSUE_ORDER]
    return sorted(found, key=lambda r: (ISSUE_ORDER[r["verdict"]], -ulp_key(r.get("max_ulp")),
                                        r["loss"], r.get("family", ""), r["case_id"]))


def is_ok(results: Results) -> bool:
    return not any(r.get("verdict") in FAILING for r in results)


def headline(results: Iterable[dict]) -> str:
    """"PASSED with 347 warnings and 36 expected failures" / "FAILED: 12 failing, 3 warnings":
    one wording for every output, so a PASS never hides its warnings."""
    v = Counter(r.get("verdict") for r in results)
    failing = sum(n for k, n in v.items() if k in FAILING)
    warns, xfails = v.get("warn", 0), v.get("xfail", 0)

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'s' if n != 1 else ''}"

    if failing:
        extra = [count(warns, "warning")] if warns else []
        extra += [count(xfails, "expected failure")] if xfails else []
        return f"FAILED: {failing} failing" + (", " + ", ".join(extra) if extra else "")
    extra = [count(warns, "warning")] if warns else []
    extra += [count(xfails, "expected failure")] if xfails else []
    return "PASSED" + (" with " + " and ".join(extra) if extra else "")


def symptom_of(rec: dict) -> str:
    """A failing or warning record's symptom (harness.symptoms names it when checking), or its
    status when it has no figures."""
    status = rec.get("status", "ok")
    if status not in (None, "ok"):
        return {"bad_output": "bad output"}.get(str(status), str(status))
    return str(rec.get("symptom") or "inaccurate")


def symptom_groups(found: Iterable[dict]) -> list[tuple[tuple[str, str, str, str], list[dict]]]:
    """Issues grouped by (backend, loss, family, symptom), most severe group first; each group's
    records keep the order of ``found`` (worst first)."""
    groups: dict[tuple, list[dict]] = {}
    for rec in found:
        key = (str(rec.get("backend")), str(rec.get("loss")), str(rec.get("family")), symptom_of(rec))
        groups.setdefault(key, []).append(rec)
    return list(groups.items())


def expected_failures(results: Iterable[dict]) -> list[tuple[str, list[dict]]]:
    """xfail records grouped by their reason, largest group first: what the known-failure lists
    excuse, and why."""
    groups: dict[str, list[dict]] = {}
    for rec in results:
        if rec.get("verdict") == "xfail":
            groups.setdefault(str(rec.get("xfail_reason") or "(no reason given)"), []).append(rec)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def case_brief(rec: dict) -> dict:
    """The identifying fields of a record, as written in every listing."""
    return {k: rec.get(k) for k in ("backend", "case_id", "loss", "family", "options", "dtype", "check",
                                    "reduction", "shape", "verdict", "status", "max_ulp", "message")}


def summary(results: Results) -> dict:
    """The machine-readable summary (written as summary.json)."""
    per_backend = by_backend(results)
    rows = []
    for (loss, check, dtype, backend), cell in table(results).items():
        worst = cell.worst
        rows.append({
            "loss": loss, "check": check, "dtype": dtype, "backend": backend,
            "records": len(cell.records), "elements": cell.elements, "max_ulp": cell.max_ulp,
            "max_bits": cell.max_bits, "frac_correctly_rounded": cell.frac_correctly_rounded,
            "frac_le_1ulp": cell.frac_le_1ulp, "verdicts": dict(cell.verdicts), "ulp_hist": cell.ulp_hist,
            "worst": None if worst is None else {
                "case_id": worst["case_id"], "family": worst.get("family"),
                "input": (worst.get("worst") or {}).get("input"), "max_ulp": worst["max_ulp"]},
        })
    found = issues(results)
    return jsonable({
        "schema": "losscheck.summary/1",
        "results": str(results.path),
        "results_schema": results.schema,
        "ok": is_ok(results),
        "runs": [{**{k: run.get(k) for k in ("run_id", "started", "suite", "seed", "backends", "versions")},
                  "device": run_device(run), "strict_dtype": run.get("strict_dtype") is True}
                 for run in results.runs],
        "records": len(results),
        "verdicts": {v: n for v, n in Counter(r.get("verdict") for r in results).items()},
        "backends": {b: {"records": len(c.records), "verdicts": dict(c.verdicts), "max_ulp": c.max_ulp}
                     for b, c in per_backend.items()},
        "table": rows,
        "failures": [case_brief(r) for r in found if r["verdict"] in FAILING],
        "warnings": [case_brief(r) for r in found if r["verdict"] not in FAILING],
        "load_warnings": list(results.warnings),
    })
