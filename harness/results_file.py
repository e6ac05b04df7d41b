"""The results file: a run header plus one JSON line per (backend, case, check), flushed as written,
so a killed run loses nothing and ``--resume`` continues it (a torn last line is cut off)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any

SCHEMA = "losscheck.results/2"


from harness.task import jsonable


class RunError(Exception):
    """Bad usage detected by the runner (e.g. an unusable results file); one-line message."""


# ---------------------------------------------------------------------------------------------------
# results file

def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("losscheck", "torch", "numpy", "mpmath", "ml_dtypes"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def tolerances_dict(tolerances: Any) -> Any:
    """The tolerances as JSON for the run header, whatever shape the Tolerances object has."""
    import dataclasses

    if tolerances is None:
        return {}
    if hasattr(tolerances, "to_dict"):
        return jsonable(tolerances.to_dict())
    if dataclasses.is_dataclass(tolerances):
        return jsonable(dataclasses.asdict(tolerances))
    if isinstance(tolerances, dict):
        return jsonable(tolerances)
    return str(tolerances)


def read_finished(path: Path) -> tuple[dict | None, list[dict]]:
    """Header and result records of an existing results file, cutting off a truncated last line.

    The file is truncated to its last complete line so that appending continues it cleanly.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, []
    except OSError as exc:
        raise RunError(f"{path}: cannot read results file ({exc})") from None
    header, records = None, []
    lines = data.split(b"\n")
    offset = good_end = 0
    for i, raw in enumerate(lines):
        last = i == len(lines) - 1
        end = offset + len(raw) + (0 if last else 1)
        if raw.strip():
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if all(not rest.strip() for rest in lines[i + 1:]):  # a killed run's half-written line
                    warnings.warn(f"{path}: dropped a truncated last line", stacklevel=2)
                    break
                raise RunError(f"{path}: line {i + 1} is not JSON; cannot resume") from None
            if not isinstance(obj, dict) or (header is None and obj.get("type") != "run"):
                raise RunError(f"{path}: not a losscheck results file (no run header); cannot resume")
            if obj.get("type") == "run":
                header = header or obj
            elif obj.get("type") == "result":
                records.append(obj)
        offset = good_end = end
    if good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    if good_end and not data[:good_end].endswith(b"\n"):
        with open(path, "ab") as fh:
            fh.write(b"\n")
    return header, records


#: run-header fields that must agree for --resume to continue a file (the verdicts depend on them)
RESUME_FIELDS = ("suite", "seed", "backends", "grad", "strict", "tolerances", "known_failures",
                 "oracle_version", "versions", "device", "strict_dtype")
#: what a header written before a field existed meant by its absence
HEADER_DEFAULTS = {"device": "cpu", "strict_dtype": False}


def known_failures_digest(known: Any) -> str | None:
    """A short digest of the known-failure entries in force (None when there are none)."""
    entries = getattr(known, "entries", None)
    if not entries:
        return None
    text = json.dumps([[e.match, e.reason] for e in entries])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def header_differences(old: dict, new: dict) -> list[str]:
    """What differs between the header of a file being resumed and this run's, one phrase each."""
    out = []
    for key in RESUME_FIELDS:
        a, b = old.get(key, HEADER_DEFAULTS.get(key)), new.get(key, HEADER_DEFAULTS.get(key))
        if key == "backends":
            a, b = sorted(a or []), sorted(b or [])
        if a == b:
            continue
        if key == "versions" and isinstance(a, dict) and isinstance(b, dict):
            names = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            out.append("versions of " + ", ".join(f"{n} ({a.get(n)} there, {b.get(n)} now)" for n in names))
        elif key in ("tolerances", "known_failures"):
            out.append(key)  # long: naming it is enough
        else:
            out.append(f"{key} ({a!r} there, {b!r} now)")
    return out


def holds_results(path: Path) -> bool:
    """Whether ``path`` is a non-empty file (an earlier run's results, or something else)."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


class ResultsLock:
    """An exclusive lock on ``<results>.lock`` for the whole run: a second run writing the same
    results file is refused at once (two writers would interleave and lose records).  POSIX
    ``flock``; where it does not exist, no lock."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"{self.path}: cannot create the results lock ({exc.strerror or exc})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise RunError(f"{self.path.with_suffix('')}: another losscheck run is writing it") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None


class ResultsWriter:
    """Appends one JSON line per record, flushed at once, so a killed run loses nothing written."""

    def __init__(self, path: Path, header: dict, append: bool) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 - lives for the run
        except OSError as exc:
            raise RunError(f"{path}: cannot write the results file ({exc.strerror or exc})") from None
        self.write(header)

    def write(self, obj: dict) -> None:
        """One line, flushed; a full disk (or /dev/full) is a RunError: the run stops, every line
        written before it stays."""
        try:
            self.fh.write(json.dumps(jsonable(obj), separators=(",", ":"), allow_nan=False) + "\n")
            self.fh.flush()
        except OSError as exc:
            raise RunError(f"{self.path}: cannot write the results file ({exc.strerror or exc}); the "
                           "records written before are kept (--resume continues)") from None

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError:  # the failed write already said why
            pass


