"""Read a results file (JSONL, ``losscheck.results/1``): the only input reports/ accepts.

Loading is lenient where a run can legitimately leave a mess (a killed run's truncated last line,
several run headers from ``--resume``) and strict everywhere else, so a wrong file fails with one
line naming the file and the problem instead of producing an empty report.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "losscheck.results/1"

#: verdicts that count as a failure (a backend raising is as bad as a wrong value)
FAILING = frozenset({"fail", "error"})

_NUMERIC = ("max_ulp", "median_ulp", "max_bits", "max_rel_u", "frac_correctly_rounded", "frac_le_1ulp",
            "elapsed")
_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_KEY_FIELDS = ("backend", "case_id", "check")

Key = tuple[str, str, str]


class ResultsError(ValueError):
    """The file is not a readable results file (message: one line, names the file)."""


class ResultsWarning(UserWarning):
    """Something was skipped while reading a results file (e.g. a truncated last line)."""


def number(value: Any) -> float | None:
    """A results-format number (float, int or "inf"/"-inf"/"nan") as a float; None if absent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _SPECIAL.get(value.strip().lower())
    return None


def fmt_number(value: float | None, digits: int = 3) -> str:
    """Compact display of an error figure: '—' when absent, 'inf', or ``digits`` significant digits."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def jsonable(value: Any) -> Any:
    """Replace non-finite floats by the results format's strings so json.dumps stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


@dataclass
class Results:
    """Run header(s) and records of one results file; records keyed by (backend, case_id, check).

    Record dicts are kept as written, except that the error figures listed in ``_NUMERIC`` (and
    ``worst["ulp"]``) are decoded to floats (``None`` when absent) so callers never parse "inf".
    A key written twice (a resumed run re-doing a case) keeps the last record.
    """

    path: Path
    runs: list[dict]
    records: dict[Key, dict]
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    @property
    def backends(self) -> list[str]:
        """Backends in the order the run headers list them, then any others seen in records."""
        seen: dict[str, None] = {}
        for run in self.runs:
            for name in run.get("backends") or []:
                seen.setdefault(str(name), None)
        for backend, _, _ in self.records:
            seen.setdefault(backend, None)
        present = {b for b, _, _ in self.records}
        return [b for b in seen if b in present] or list(seen)


def _decode(record: dict) -> dict:
    for name in _NUMERIC:
        record[name] = number(record.get(name))
    worst = record.get("worst")
    if isinstance(worst, dict) and "ulp" in worst:
        worst["ulp"] = number(worst["ulp"])
    if not isinstance(record.get("meta"), dict):
        record["meta"] = {}
    return record


def load_results(path: str | Path) -> Results:
    """Read ``path``; raise :class:`ResultsError` if it is not a ``losscheck.results/1`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results file ({exc.__class__.__name__}: {exc})") from None

    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise ResultsError(f"{path}: empty file, not a losscheck results file")

    runs: list[dict] = []
    records: dict[Key, dict] = {}
    notes: list[str] = []
    for pos, (lineno, line) in enumerate(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if pos == len(lines) - 1 and pos > 0:
                note = f"{path}:{lineno}: skipped truncated last line ({exc.msg})"
                notes.append(note)
                warnings.warn(note, ResultsWarning, stacklevel=2)
                break
            raise ResultsError(f"{path}:{lineno}: not JSON ({exc.msg}); not a losscheck results file") from None
        if not isinstance(obj, dict):
            raise ResultsError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        kind = obj.get("type")
        if pos == 0 and kind != "run":
            raise ResultsError(f"{path}:{lineno}: first line is not a run header "
                               f"(type={kind!r}); not a losscheck results file")
        if kind == "run":
            if obj.get("schema") != SCHEMA:
                raise ResultsError(f"{path}:{lineno}: unsupported schema {obj.get('schema')!r} "
                                   f"(expected {SCHEMA!r})")
            runs.append(obj)
        elif kind == "result":
            missing = [k for k in _KEY_FIELDS if not isinstance(obj.get(k), str)]
            if missing:
                raise ResultsError(f"{path}:{lineno}: result record without {', '.join(missing)}")
            records[(obj["backend"], obj["case_id"], obj["check"])] = _decode(obj)
        else:
            raise ResultsError(f"{path}:{lineno}: unknown line type {kind!r}")
    return Results(path=path, runs=runs, records=records, warnings=notes)
