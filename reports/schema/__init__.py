"""The versioned JSON Schemas of one results line, and a validator for whole results files.

The schemas live in JSON files (not Python) so that tools outside losscheck can read them too; a
file is validated against the version its run header names (``/1`` files against results-1, ``/2``
against results-2). jsonschema is imported lazily: rendering reports must not depend on it.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from reports.results import SCHEMA, SCHEMAS, ResultsError, header_version, schema_version

#: the version harness writes today, used where a line alone does not say its version
CURRENT = SCHEMAS[SCHEMA]
SCHEMA_PATHS = {v: Path(__file__).with_name(f"results-{v}.schema.json") for v in sorted(SCHEMAS.values())}
SCHEMA_PATH = SCHEMA_PATHS[CURRENT]


class SchemaError(ResultsError):
    """A results line does not match the schema (message names file, line and the problem)."""


@cache
def load_schema(version: int = CURRENT) -> dict:
    """The schema document (draft 2020-12) for one line of ``losscheck.results/<version>``."""
    if version not in SCHEMA_PATHS:
        raise ResultsError(f"no results schema version {version!r} (known: {sorted(SCHEMA_PATHS)})")
    return json.loads(SCHEMA_PATHS[version].read_text(encoding="utf-8"))


@cache
def _validator(version: int):
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is in the [test] extra
        raise ResultsError("schema validation needs jsonschema (pip install 'losscheck[test]')") from None
    cls = jsonschema.Draft202012Validator
    cls.check_schema(load_schema(version))
    return cls(load_schema(version))


def _describe(error) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(line)"
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"{where}: {message}"


def _line_version(obj: Any) -> int:
    """A run header's own version when it names a known schema; else the current one."""
    if isinstance(obj, dict) and obj.get("type") == "run":
        return schema_version(obj.get("schema")) or CURRENT
    return CURRENT


def line_errors(obj: Any, version: int | None = None) -> list[str]:
    """Problems of one parsed line against schema ``version`` ([] when it validates).

    Without ``version``, a run header is checked against the version it names, anything else
    against the current version.
    """
    version = _line_version(obj) if version is None else version
    validator = _validator(version)
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind in ("run", "result"):
        # validate against the branch the line claims, for precise messages
        sub = {"$defs": load_schema(version)["$defs"], "$ref": f"#/$defs/{kind}"}
        validator = validator.evolve(schema=sub)
    return [_describe(e) for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.path))]


def _file_version(obj: Any, where: str) -> int:
    """The version a run header sets for the lines below it; SchemaError for an unknown schema."""
    return header_version(obj, where, SchemaError)


def validate_file(path: str | Path) -> int:
    """Validate every line of a results file; return the number of lines, raise SchemaError if bad.

    Each line is checked against the version named by the run header above it. Stricter than
    :func:`reports.load_results`: a truncated last line is an error here.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    count = version = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
        is_run = isinstance(obj, dict) and obj.get("type") == "run"
        if count == 0 and not is_run:
            raise SchemaError(f"{path}:{lineno}: the first line must be a run header")
        if is_run:
            version = _file_version(obj, f"{path}:{lineno}")
        problems = line_errors(obj, version)
        if problems:
            raise SchemaError(f"{path}:{lineno}: {problems[0]}")
        count += 1
    if count == 0:
        raise SchemaError(f"{path}: empty file")
    return count
