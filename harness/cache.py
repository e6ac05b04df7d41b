"""The oracle, cached on disk: exact values are expensive (mpmath), cases are content-hashed, so an
``Exact`` computed once for (case id, check) never needs computing again.

Entries are JSON, never pickle, written atomically (temp file + ``os.replace``) so concurrent
workers and killed runs can only ever leave whole files behind.  Each entry is an envelope that
names what it answers -- case id, check, oracle version -- and carries the sha256 of its payload
(``Exact.to_dict``): a torn, corrupt, misplaced or edited entry (one changed digit in a still-valid
JSON) is detected, warned about and recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: bump when the on-disk layout or the oracle's answers change, so stale entries are never read
LAYOUT = "v3"
ENTRY_SCHEMA = "losscheck.oracle-cache/1"


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class CacheWarning(UserWarning):
    """A cache entry could not be used (corrupt, unreadable) and was recomputed."""


def default_dir() -> Path:
    """``$LOSSCHECK_CACHE_DIR`` or ``~/.cache/losscheck``."""
    env = os.environ.get("LOSSCHECK_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "losscheck"


def compute(case: Any, check: str) -> Any:
    """The oracle's ``Exact`` for one check (``value`` or ``grad:<arg>``) of a case: the one place
    the runner calls reference/."""
    import reference

    args, kwargs = case.call()
    return reference.evaluate_check(case.loss, check, *args, grad_output=case.grad_output, **kwargs)


def oracle_version() -> str:
    """``reference.ORACLE_VERSION`` (bumped when the oracle's answers change), "0" when not set:
    part of every cache path, so a corrected oracle never serves answers of the old one."""
    import reference

    return str(getattr(reference, "ORACLE_VERSION", "0"))


def _exact_type() -> Any:
    from reference.exact import Exact

    return Exact


class OracleMissing(RuntimeError):
    """A read-only cache (a backend worker's) lacks an entry the oracle pass should have made."""


class OracleCache:
    """Exact values keyed by (case id, check):
    ``root/<LAYOUT>-oracle<version>/<id[:2]>/<id>.<check>.json`` (``grad:target`` -> ``grad-target``).

    ``oracle`` and ``exact_type`` are injectable (top-level, picklable callables) so the runner's
    machinery can be tested without the real oracle.
    """

    def __init__(self, root: str | Path | None = None, oracle: Callable[[Any, str], Any] | None = None,
                 exact_type: Callable[[], Any] | None = None, computes: bool = True) -> None:
        self.root = Path(root).expanduser() if root is not None else default_dir()
        self.oracle = oracle or compute
        # False in a worker that has loaded a backend under test: its process state must never
        # reach an oracle answer, so a missing entry is an error there, never computed
        self.computes = computes
        self._exact_type = exact_type or _exact_type
        self.hits = 0
        self.misses = 0

    def path(self, case_id: str, check: str) -> Path:
        name = check.replace(":", "-")  # no colons in file names (portable paths)
        return self.root / f"{LAYOUT}-oracle{oracle_version()}" / case_id[:2] / f"{case_id}.{name}.json"

    def has(self, case_id: str, check: str) -> bool:
        return self.path(case_id, check).is_file()

    def load(self, case_id: str, check: str) -> Any | None:
        """The cached Exact, or None when absent or unusable (corrupt entries warn)."""
        path = self.path(case_id, check)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            warnings.warn(f"oracle cache entry {path} unreadable ({exc}); recomputing", CacheWarning,
                          stacklevel=2)
            return None
        try:
            entry = json.loads(text)
            problem = self._mismatch(entry, case_id, check)
            if problem is None:
                return self._exact_type().from_dict(entry["exact"])
        except Exception as exc:  # noqa: BLE001 - any decoding problem: do not trust it, recompute
            problem = f"corrupt ({type(exc).__name__}: {exc})"
        warnings.warn(f"oracle cache entry {path} is {problem}; recomputing", CacheWarning, stacklevel=2)
        return None

    @staticmethod
    def _mismatch(entry: dict, case_id: str, check: str) -> str | None:
        """Why ``entry`` does not answer (case_id, check) of this oracle, or None when it does."""
        if not isinstance(entry, dict) or entry.get("schema") != ENTRY_SCHEMA:
            return "corrupt (not a losscheck.oracle-cache/1 entry)"
        if entry.get("case_id") != case_id or entry.get("check") != check:
            return f"misplaced (it answers {entry.get('case_id')}/{entry.get('check')})"
        if entry.get("oracle_version") != oracle_version():
            return f"stale (oracle version {entry.get('oracle_version')}, now {oracle_version()})"
        if entry.get("sha256") != _digest(entry.get("exact")):
            return "tampered (its checksum does not match its contents)"
        return None

    def store(self, case_id: str, check: str, exact: Any) -> None:
        path = self.path(case_id, check)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = exact.to_dict()
        entry = {"schema": ENTRY_SCHEMA, "case_id": case_id, "check": check,
                 "oracle_version": oracle_version(), "sha256": _digest(payload), "exact": payload}
        text = json.dumps(entry, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=f".{case_id}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def get(self, case: Any, check: str) -> Any:
        """The Exact for (case, check): from disk when present and sound, else computed and stored."""
        exact = self.load(case.id, check)
        if exact is not None:
            self.hits += 1
            return exact
        self.misses += 1
        if not self.computes:
            raise OracleMissing(f"no oracle value for {case.id}/{check} in the cache (the oracle runs only "
                                "in processes that load no backend under test)")
        exact = self.oracle(case, check)
        try:
            self.store(case.id, check, exact)
        except OSError as exc:  # a read-only or full disk costs speed, not the run
            warnings.warn(f"cannot write oracle cache entry {self.path(case.id, check)} ({exc})",
                          CacheWarning, stacklevel=2)
        return exact
