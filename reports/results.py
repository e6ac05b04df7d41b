"""Read a results file (JSONL, ``losscheck.results/2`` or ``/1``): the only input reports/ accepts.

Both versions load into the same shape: a /1 record's ``check`` "grad" (always the gradient w.r.t.
the first argument, ``input``) becomes "grad:input", so every report and compare treats old and new
files alike. Loading is lenient where a run can legitimately leave a mess (a killed run's truncated
last line, several run headers from ``--resume``) and strict everywhere else, so a wrong file fails
with one line naming the file and the problem instead of producing an empty report.
"""
from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: schema names this reader knows -> version number; SCHEMA is the one harness writes today
SCHEMAS = {"losscheck.results/1": 1, "losscheck.results/2": 2}
SCHEMA = "losscheck.results/2"
#: a /2 check: the value, or the gradient w.r.t. one named tensor argument of the loss
CHECK_PATTERN = re.compile(r"^(value|grad:[A-Za-z_][A-Za-z0-9_]*)$")
#: what a /1 check means in /2 terms (/1 only had the gradient w.r.t. the first argument)
_V1_CHECKS = {"grad": "grad:input"}

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


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters (ANSI/OSC escapes, bidi overrides, line separators) written
    as ``\x1b``-style escapes; newlines and tabs kept.  Results files are untrusted input (the same
    rule as harness.backends.base.printable, which reports must not import)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", text)


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
    ``worst["ulp"]``) are decoded to floats (``None`` when absent) so callers never parse "inf",
    and a /1 ``check`` "grad" reads "grad:input".
    A key written twice (a resumed run re-doing a case) keeps the last record. ``schema`` is the
    first header's schema as written (``losscheck.results/1`` for an old file), although /1 records
    are normalised to /2 checks; each run header keeps its own ``"schema"`` too.
    """

    path: Path
    runs: list[dict]
    records: dict[Key, dict]
    warnings: list[str] = field(default_factory=list)
    schema: str = SCHEMA

    @property
    def version(self) -> int:
        """The results-format version the file was written in (1 or 2)."""
        return SCHEMAS[self.schema]

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


def run_device(run: dict) -> str:
    """The torch device a run header names; "cpu" for files written before devices existed."""
    device = run.get("device")
    return device if isinstance(device, str) and device else "cpu"


def run_devices(results: Results) -> set[str]:
    """The devices of a file's run headers (one, unless a resumed run was refused a mix)."""
    return {run_device(run) for run in results.runs} or {"cpu"}


def grad_arg(check: str) -> str | None:
    """The argument a gradient check differentiates w.r.t. ("grad:target" -> "target"); None for values."""
    return check[5:] if check.startswith("grad:") else None


def schema_version(name: object) -> int | None:
    """Version number of a results schema name, None if this reader does not know it."""
    return SCHEMAS.get(name) if isinstance(name, str) else None


def schema_note(schema: object) -> str:
    """How reports name a file's schema: a /1 file says its gradients were read as grad:input."""
    return f"{schema} (grad read as grad:input)" if schema_version(schema) == 1 else str(schema)


def header_version(obj: dict, where: str, error: type | None = None) -> int:
    """The schema version a run header sets; ``error`` (ResultsError by default) for an unknown one."""
    version = schema_version(obj.get("schema"))
    if version is None:
        raise (error or ResultsError)(f"{where}: unsupported schema {obj.get('schema')!r} "
                           f"(expected one of {', '.join(map(repr, SCHEMAS))})")
    return version


def _normalised_check(obj: dict, version: int, where: str) -> str:
    """The record's check in /2 terms; a /2 check must already be "value" or "grad:<arg>"."""
    check = obj["check"]
    if version == 1:
        return _V1_CHECKS.get(check, check)
    if not CHECK_PATTERN.match(check):
        raise ResultsError(f"{where}: check {check!r} is not 'value' or 'grad:<arg>' "
                           f"(losscheck.results/{version})")
    return check


#: record fields the reports use as text: anything else there is a malformed file, said in one line
_TEXT_FIELDS = ("loss", "family", "dtype", "options", "verdict", "status", "message", "xfail_reason",
                "repro", "reduction", "delegates", "note")


#: element counts per rung that files written before a rung existed lack (read as 0)
_LATER_COUNTS = ("flushed", "recursive", "magnitude", "convention", "semantic")


def _decode(record: dict) -> dict:
    for name in _NUMERIC:
        record[name] = number(record.get(name))
    counts = record.get("counts")
    if isinstance(counts, dict):
        for name in _LATER_COUNTS:
            counts.setdefault(name, 0)
    worst = record.get("worst")
    if isinstance(worst, dict) and "ulp" in worst:
        worst["ulp"] = number(worst["ulp"])
    if not isinstance(record.get("meta"), dict):
        record["meta"] = {}
    return record


def load_results(path: str | Path) -> Results:
    """Read ``path``; raise :class:`ResultsError` if it is not a ``losscheck.results/1`` or ``/2`` file.

    Records are read under the run header above them, so a /1 file resumed by a /2 writer still
    loads with every check in /2 terms.
    """
    path = Path(path)
    lines = _lines(path)
    runs: list[dict] = []
    records: dict[Key, dict] = {}
    notes: list[str] = []
    version = 0
    for pos, (lineno, line) in enumerate(lines):
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except RecursionError:
            raise ResultsError(f"{where}: JSON nested too deeply; not a losscheck results file") from None
        except json.JSONDecodeError as exc:
            if pos == len(lines) - 1 and pos > 0:
                note = f"{where}: skipped truncated last line ({exc.msg})"
                notes.append(note)
                warnings.warn(note, ResultsWarning, stacklevel=2)
                break
            raise ResultsError(f"{where}: not JSON ({exc.msg}); not a losscheck results file") from None
        if not isinstance(obj, dict):
            raise ResultsError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        kind = obj.get("type")
        if pos == 0 and kind != "run":
            raise ResultsError(f"{where}: first line is not a run header "
                               f"(type={kind!r}); not a losscheck results file")
        if kind == "run":
            version = header_version(obj, where)
            backends = obj.get("backends", [])
            if not (isinstance(backends, list) and all(isinstance(b, str) for b in backends)) or \
                    not isinstance(obj.get("suite", ""), str) or isinstance(obj.get("seed", 0), (dict, list)):
                raise ResultsError(f"{where}: run header with a field of the wrong type (backends, suite or seed)")
            runs.append(obj)
        elif kind == "result":
            missing = [k for k in _KEY_FIELDS if not isinstance(obj.get(k), str)]
            if missing:
                raise ResultsError(f"{where}: result record without {', '.join(missing)}")
            wrong = [k for k in _TEXT_FIELDS if obj.get(k) is not None and not isinstance(obj[k], str)]
            wrong += [k for k in ("worst", "meta") if obj.get(k) is not None and not isinstance(obj[k], dict)]
            if wrong:
                raise ResultsError(f"{where}: result record with a field of the wrong type: {', '.join(wrong)}")
            obj["check"] = _normalised_check(obj, version, where)
            records[(obj["backend"], obj["case_id"], obj["check"])] = _decode(obj)
        else:
            raise ResultsError(f"{where}: unknown line type {kind!r}")
    return Results(path=path, runs=runs, records=records, warnings=notes, schema=runs[0]["schema"])


def _lines(path: Path) -> list[tuple[int, str]]:
    """The non-blank lines of ``path`` with their 1-based numbers; ResultsError if unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read results file ({exc.__class__.__name__}: {exc})") from None
    # JSON lines end at "\n" only: str.splitlines would also split at U+2028 and other separators,
    # which JSON allows raw inside strings
    lines = [(i + 1, line.rstrip("\r")) for i, line in enumerate(text.split("\n")) if line.strip()]
    if not lines:
        raise ResultsError(f"{path}: empty file, not a losscheck results file")
    return lines
