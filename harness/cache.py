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


def compute(case: Any, check: str, out_dtype: str | None = None) -> Any:
    """The oracle's ``Exact`` for one check (``value`` or ``grad:<arg>``) of a case, settled for
    the loss's output format or for ``out_dtype`` (a format a backend returned instead): the one
    place the runner calls reference/."""
    import reference

    args, kwargs = case.call()
    return reference.evaluate_check(case.loss, check, *args, grad_output=case.grad_output,
                                    out_dtype=out_dtype, **kwargs)


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
    """Exact values keyed by (case id, check, output format):
    ``root/<LAYOUT>-oracle<version>/<id[:2]>/<id>.<check>.json`` (``grad:target`` -> ``grad-target``)
    for the loss's own output format, ``<id>.<check>.as-<dtype>.json`` for the answer settled in
    another format ``out_dtype`` (a backend that returns float32 for float16 input): an Exact
    settled for one format proves nothing about the rounding in another.

    ``oracle`` and ``exact_type`` are injectable (top-level, picklable callables) so the runner's
    machinery can be tested without the real oracle; ``oracle(case, check)`` is called for the
    own format, ``oracle(case, check, out_dtype=D)`` for another.
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

    def path(self, case_id: str, check: str, out_dtype: str | None = None) -> Path:
        name = check.replace(":", "-")  # no colons in file names (portable paths)
        if out_dtype is not None:
            name += f".as-{out_dtype}"
        return self.root / f"{LAYOUT}-oracle{oracle_version()}" / case_id[:2] / f"{case_id}.{name}.json"

    def has(self, case_id: str, check: str, out_dtype: str | None = None) -> bool:
        return self.path(case_id, check, out_dtype).is_file()

    def load(self, case_id: str, check: str, out_dtype: str | None = None) -> Any | None:
        """The cached Exact, or None when absent or unusable (corrupt entries warn)."""
        path = self.path(case_id, check, out_dtype)
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
            problem = self._mismatch(entry, case_id, check, out_dtype)
            if problem is None:
                exact = self._exact_type().from_dict(entry["exact"])
                if out_dtype is None or getattr(exact, "dtype", out_dtype) == out_dtype:
                    return exact
                problem = f"misplaced (settled for {exact.dtype}, not {out_dtype})"
        except Exception as exc:  # noqa: BLE001 - any decoding problem: do not trust it, recompute
            problem = f"corrupt ({type(exc).__name__}: {exc})"
        warnings.warn(f"oracle cache entry {path} is {problem}; recomputing", CacheWarning, stacklevel=2)
        return None

    @staticmethod
    def _mismatch(entry: dict, case_id: str, check: str, out_dtype: str | None = None) -> str | None:
        """Why ``entry`` does not answer (case_id, check, out_dtype) of this oracle, or None when
        it does (an entry without ``out_dtype`` answers in the loss's own format)."""
        if not isinstance(entry, dict) or entry.get("schema") != ENTRY_SCHEMA:
            return "corrupt (not a losscheck.oracle-cache/1 entry)"
        if entry.get("case_id") != case_id or entry.get("check") != check \
                or entry.get("out_dtype") != out_dtype:
            where = f"{entry.get('case_id')}/{entry.get('check')}"
            if entry.get("out_dtype") is not None:
                where += f" in {entry.get('out_dtype')}"
            return f"misplaced (it answers {where})"
        if entry.get("oracle_version") != oracle_version():
            return f"stale (oracle version {entry.get('oracle_version')}, now {oracle_version()})"
        if entry.get("sha256") != _digest(entry.get("exact")):
            return "tampered (its checksum does not match its contents)"
        return None

    def store(self, case_id: str, check: str, exact: Any, out_dtype: str | None = None) -> None:
        path = self.path(case_id, check, out_dtype)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = exact.to_dict()
        entry = {"schema": ENTRY_SCHEMA, "case_id": case_id, "check": check,
                 "oracle_version": oracle_version(), "sha256": _digest(payload), "exact": payload}
        if out_dtype is not None:  # entries of the own format keep the layout they always had
            entry["out_dtype"] = out_dtype
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

    def get(self, case: Any, check: str, out_dtype: str | None = None) -> Any:
        """The Exact for (case, check), settled for the loss's output format or for ``out_dtype``:
        from disk when present and sound, else computed and stored."""
        exact = self.load(case.id, check, out_dtype)
        if exact is not None:
            self.hits += 1
            return exact
        self.misses += 1
        if not self.computes:
            what = f"{case.id}/{check}" + (f" in {out_dtype}" if out_dtype is not None else "")
            raise OracleMissing(f"no oracle value for {what} in the cache (the oracle runs only "
                                "in processes that load no backend under test)")
        exact = self.oracle(case, check) if out_dtype is None else self.oracle(case, check, out_dtype=out_dtype)
        try:
            self.store(case.id, check, exact, out_dtype)
        except OSError as exc:  # a read-only or full disk costs speed, not the run
            warnings.warn(f"cannot write oracle cache entry {self.path(case.id, check, out_dtype)} ({exc})",
                          CacheWarning, stacklevel=2)
        return exact

    def read_only(self) -> OracleCache:
        """A view of the same entries that never computes (``OracleMissing`` instead): for code
        that runs where a backend under test has been loaded."""
        return OracleCache(self.root, oracle=self.oracle, exact_type=self._exact_type, computes=False)
