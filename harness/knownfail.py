"""Known failures: turn an accepted failure into "xfail" with its reason.

Why: a project adopting the gate may already know of a defect it cannot fix today; listing it keeps
the gate green without loosening tolerances for everything else.  An entry that matches no failing
check is reported (``unmatched``) so stale entries get removed once the defect is fixed.

File format (TOML or JSON, chosen by the extension; ``.json`` is JSON, anything else TOML)::

    [[known_failures]]
    match = "numpy-naive:cross_entropy:ce.extreme:*:*"    # or a 16-hex case id
    reason = "textbook softmax overflows"

    {"known_failures": [{"match": "...", "reason": "..."}]}   # JSON (a bare list also works)

``match`` is a case id or an fnmatch pattern tried against the case id and against
``"backend:loss:family:dtype:check"``.  A record of a drop-in whose function *is* torch's own
(``delegates: "torch"``, see TorchFunctionalBackend.delegates_to) is matched as torch's too.

Torch's own known failures ship with the package (``known_failures_torch.toml``), and so do those of
the built-in ``inductor`` backend (``known_failures_inductor.toml``; each pattern names its
backend): :meth:`builtin` gives them, and every gate (CLI, pytest plugin, library) applies them
before the user's file, so a plain ``losscheck gate`` passes in any directory.  A built-in entry is reported unmatched only
when it met its checks and none failed (a fixed torch); a user's entry whenever it matched nothing.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from harness.check import final_verdict

__all__ = ["KnownFailure", "KnownFailures"]


BUILTIN = Path(__file__).with_name("known_failures_torch.toml")
#: every file of shipped known failures: torch's, then the inductor backend's
BUILTIN_FILES = (BUILTIN, Path(__file__).with_name("known_failures_inductor.toml"))


@dataclass(frozen=True)
class KnownFailure:
    match: str
    reason: str
    builtin: bool = False

    def matches(self, record: dict) -> bool:
        case_id = str(record.get("case_id", ""))
        if self.match == case_id or fnmatch.fnmatchcase(case_id, self.match):
            return True
        rest = ":".join(str(record.get(k, "")) for k in ("loss", "family", "dtype", "check"))
        names = [str(record.get("backend", ""))]
        if record.get("delegates"):
            names.append(str(record["delegates"]))
        return any(fnmatch.fnmatchcase(f"{name}:{rest}", self.match) for name in names)


class KnownFailures:
    def __init__(self, entries: list[KnownFailure] | tuple[KnownFailure, ...] = (), source: str = ""):
        self.entries = tuple(entries)
        self.source = source
        self._used: set[int] = set()
        self._seen: set[int] = set()  # built-in entries that met a record, whatever its verdict

    @classmethod
    def builtin(cls) -> KnownFailures:
        """The known failures shipped with losscheck (torch's and inductor's)."""
        entries = [KnownFailure(e.match, e.reason, builtin=True)
                   for path in BUILTIN_FILES for e in cls.load(path).entries]
        return cls(entries, source="built-in")

    @classmethod
    def combined(cls, path: str | Path | None) -> KnownFailures:
        """The built-in entries, then those of the user's file (ValueError on a bad file)."""
        base = cls.builtin()
        if path is None:
            return base
        user = cls.load(path)
        return cls(base.entries + user.entries, source=user.source)

    @classmethod
    def load(cls, path: str | Path) -> KnownFailures:
        """Read a known-failures file; any problem -> ValueError naming the file and the problem."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"known-failures file {path}: cannot read ({exc.strerror or exc})") from None
        try:
            if path.suffix.lower() == ".json":
                doc: Any = json.loads(raw.decode("utf-8"))
            else:
                doc = tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"known-failures file {path}: not valid "
                             f"{'JSON' if path.suffix.lower() == '.json' else 'TOML'} ({msg})") from None
        if isinstance(doc, dict):
            extra = sorted(set(doc) - {"known_failures"})
            if extra:
                raise ValueError(f"known-failures file {path}: unknown key(s) {', '.join(extra)}; "
                                 f"expected a 'known_failures' list")
            doc = doc.get("known_failures", [])
        if not isinstance(doc, list):
            raise ValueError(f"known-failures file {path}: 'known_failures' must be a list of entries")  # noqa: TRY004
        entries = []
        for i, item in enumerate(doc):
            if not isinstance(item, dict):
                raise ValueError(f"known-failures file {path}: entry {i} is not a table/object")  # noqa: TRY004
            extra = sorted(set(item) - {"match", "reason"})
            if extra:
                raise ValueError(f"known-failures file {path}: entry {i} has unknown key(s) {', '.join(extra)}")
            match, reason = item.get("match"), item.get("reason")
            if not isinstance(match, str) or not match.strip():
                raise ValueError(f"known-failures file {path}: entry {i} needs a non-empty string 'match'")
            if not isinstance(reason, str) or not reason.strip():
                raise ValueError(f"known-failures file {path}: entry {i} ({match!r}) needs a non-empty "
                                 f"string 'reason'")
            entries.append(KnownFailure(match.strip(), reason.strip()))
        return cls(entries, source=str(path))

    def apply(self, record: dict, strict: bool = False) -> dict:
        """A copy of ``record`` with verdict "xfail" (and ``xfail_reason``) when it fails and an
        entry matches; other records are returned unchanged.  ``strict`` as in final_verdict."""
        if final_verdict(record, strict) not in ("fail", "error"):
            for i, entry in enumerate(self.entries):
                if entry.matches(record):
                    if entry.builtin:
                        self._seen.add(i)
                    if record.get("verdict") == "warn":  # still there, as a named warning: not stale
                        self._used.add(i)
            return record
        for i, entry in enumerate(self.entries):
            if entry.matches(record):
                self._used.add(i)
                out = dict(record)
                out["verdict"] = "xfail"
                out["xfail_reason"] = entry.reason
                out["message"] = f"known failure ({entry.reason}): {record.get('message', '')}"
                return out
        return record

    def unmatched(self, builtin: bool = True) -> list[KnownFailure]:
        """Entries that have not turned any failing record into xfail so far.  Built-in ones only
        when ``builtin`` (a run of the suites they were calibrated on, unfiltered) and they met
        their checks: on a small or filtered run torch's deviations need not show."""
        return [e for i, e in enumerate(self.entries)
                if i not in self._used and (not e.builtin or (builtin and i in self._seen))]
