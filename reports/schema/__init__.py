"""The versioned JSON Schema of one results line, and a validator for whole results files.

The schema lives in a JSON file (not Python) so that tools outside losscheck can read it too.
jsonschema is imported lazily: rendering reports must not depend on it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from reports.results import ResultsError

SCHEMA_PATH = Path(__file__).with_name("results-1.schema.json")


class SchemaError(ResultsError):
    """A results line does not match the schema (message names file, line and the problem)."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The schema document (draft 2020-12) for one line of ``losscheck.results/1``."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator():
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is in the [test] extra
        raise ResultsError("schema validation needs jsonschema (pip install 'losscheck[test]')") from None
    cls = jsonschema.Draft202012Validator
    cls.check_schema(load_schema())
    return cls(load_schema())


def _describe(error) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(line)"
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"{where}: {message}"


def line_errors(obj: Any) -> list[str]:
    """Problems of one parsed line against the schema ([] when it validates)."""
    validator = _validator()
    kind = obj.get("type") if isinstance(obj, dict) else None
    schema = load_schema()
    if kind in ("run", "result"):
        # validate against the branch the line claims, for precise messages
        sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
        validator = validator.evolve(schema=sub)
    return [_describe(e) for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.path))]


def validate_file(path: str | Path) -> int:
    """Validate every line of a results file; return the number of lines, raise SchemaError if bad.

    Stricter than :func:`reports.load_results`: a truncated last line is an error here.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    count = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        if count == 0 and not (isinstance(obj, dict) and obj.get("type") == "run"):
            raise SchemaError(f"{path}:{lineno}: the first line must be a run header")
        problems = line_errors(obj)
        if problems:
            raise SchemaError(f"{path}:{lineno}: {problems[0]}")
        count += 1
    if count == 0:
        raise SchemaError(f"{path}: empty file")
    return count
