"""One task of a run: a backend evaluating one case, its outputs checked against the oracle.

Runs inside a worker process (harness/pool.py) or in-process; returns plain JSON-able records.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.backends.base import one_line
from harness.cache import OracleCache, OracleMissing
from reference.fpu import oracle_state

#: the status of a record that is never written: the backend returned another floating format
#: than the input's and the read-only cache has no oracle answer settled in it.  The runner has
#: the oracle workers compute it (``needs_oracle`` names the format) and evaluates the check again.
NEEDS_ORACLE = "needs_oracle"


@dataclass
class RunStats:
    """What a run cost: wall time, and worker CPU-seconds spent in the oracle and in backends."""

    wall: float = 0.0
    oracle: float = 0.0
    backend: float = 0.0
    check: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    evaluated: int = 0
    skipped: int = 0
    crashes: int = 0
    timeouts: int = 0

    @property
    def oracle_share(self) -> float:
        busy = self.oracle + self.backend + self.check
        return self.oracle / busy if busy > 0 else 0.0

    def line(self) -> str:
        return (f"wall {self.wall:.1f} s; oracle {self.oracle:.1f} s cpu ({100 * self.oracle_share:.0f}% "
                f"of worker time), backends {self.backend:.1f} s, checks {self.check:.1f} s; "
                f"oracle cache {self.cache_hits} hits, "
                f"{self.cache_misses} computed; {self.evaluated} records new, {self.skipped} resumed")



def checks_for(case: Any, grad: bool = True) -> list[str]:
    """The checks a case asks for: its value always, and ``grad:<arg>`` for every argument its loss
    differentiates when the case and the run want gradients."""
    return list(case.checks) if grad else ["value"]


def base_record(backend: str, case: Any, check: str) -> dict:
    """The fields every record carries, whatever happened to the evaluation."""
    from harness.check import case_fields

    rec = case_fields(case, check)
    return {"type": "result", "backend": backend, **{k: v for k, v in rec.items() if k != "type"}}


def status_record(backend: str, case: Any, check: str, status: str, message: str,
                  elapsed: float = 0.0) -> dict:
    """A record without figures: unsupported, error, timeout or crash."""
    rec = base_record(backend, case, check)
    rec.update(status=status, verdict="unsupported" if status == "unsupported" else "error", n=0,
               message=message, elapsed=elapsed)
    return rec


def jsonable(value: Any) -> Any:
    """Strict-JSON form of a record: numpy scalars/arrays to Python, non-finite floats to strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _no_timing() -> dict:
    return {"oracle": 0.0, "backend": 0.0, "check": 0.0, "hits": 0, "misses": 0}


def _default_checker() -> Callable[..., dict]:
    from harness.check import check_observation

    return check_observation


def needs_oracle_record(label: str, case: Any, check: str, out_dtype: str) -> dict:
    """The placeholder record of a check whose output came back in ``out_dtype`` with no oracle
    answer for that format in the cache (status :data:`NEEDS_ORACLE`; never written)."""
    rec = status_record(label, case, check, NEEDS_ORACLE,
                        f"returned {out_dtype} for {case.dtype} input; no oracle answer in {out_dtype} yet")
    rec["needs_oracle"] = out_dtype
    return rec


def evaluate_task(backend: Any, label: str, case: Any, checks: Sequence[str], cache: OracleCache,
                  tolerances: Any, checker: Callable[..., dict] | None = None,
                  oracle_done: Callable[[], None] | None = None,
                  strict_dtype: bool = False) -> tuple[list[dict], dict]:
    """Evaluate one backend on one case for the given checks; never raises for backend trouble.

    An output in another supported floating format than the input's (a fused kernel's float32
    for float16) is judged against the oracle settled in that format, from ``cache``, and noted
    (``out_dtype``); with ``strict_dtype`` it is bad output.  When ``cache`` (read-only where a
    backend is loaded) lacks that answer, the check's record is a :func:`needs_oracle_record`.

    Returns the records (not yet known-failure-adjusted) and timings
    ``{"oracle": s, "backend": s, "check": s, "hits": n, "misses": n}`` (worker CPU-seconds).
    """
    from harness.check import note_returned_dtype, returned_format

    checker = checker or _default_checker()
    timing = _no_timing()
    try:
        supported = backend.supports(case.loss) if hasattr(backend, "supports") else True
    except Exception as exc:  # noqa: BLE001 - backend code is untrusted
        supported, why = False, one_line(exc)
    else:
        why = f"backend {label!r} does not provide {case.loss}"
    if not supported:  # no oracle work for a loss the backend does not have
        if oracle_done is not None:
            oracle_done()
        recs = [status_record(label, case, c, "unsupported", why) for c in checks]
        for rec in recs:  # the backend has no such loss at all (not one that refuses a case)
            rec["provided"] = False
        return recs, timing
    try:  # a drop-in re-exporting torch's own function inherits torch's known failures
        delegates = backend.delegates_to(case.loss) if hasattr(backend, "delegates_to") else None
    except Exception:  # noqa: BLE001 - backend code is untrusted
        delegates = None
    exacts: dict[str, Any] = {}
    records: dict[str, dict] = {}
    for check in checks:
        t0 = time.perf_counter()
        hits, misses = cache.hits, cache.misses
        try:
            with oracle_state():  # reading floats back is rounding-mode sensitive too
                exacts[check] = cache.get(case, check)
        except Exception as exc:  # noqa: BLE001 - an oracle error is the case's, not the run's
            records[check] = status_record(label, case, check, "error", f"oracle: {one_line(exc)}")
        timing["oracle"] += time.perf_counter() - t0
        timing["hits"] += cache.hits - hits
        timing["misses"] += cache.misses - misses
    if oracle_done is not None:
        oracle_done()
    todo = [c for c in checks if c not in records]
    if not todo:
        return [records[c] for c in checks], timing

    t0 = time.perf_counter()
    observation, problem = None, None
    try:
        observation = backend.evaluate(case)
    except Exception as exc:  # noqa: BLE001 - backend code is untrusted
        if type(exc).__name__ == "Unsupported":  # harness.backends turns NotImplementedError into it
            problem = ("unsupported", one_line(exc))
        else:
            problem = ("error", one_line(exc))
    elapsed = time.perf_counter() - t0
    timing["backend"] += elapsed

    for check in todo:
        exact = exacts[check]
        if problem is not None:
            records[check] = status_record(label, case, check, *problem, elapsed=elapsed)
            continue
        observed = observation.observed(check) if hasattr(observation, "observed") else (
            observation.value if check == "value" else None)
        why = getattr(observation, "missing", {}).get(check.partition(":")[2]) if check != "value" else None
        if observed is None and why:  # asked for and cut off: the backend's failure, not a gap
            rec = status_record(label, case, check, "bad_output", f"no gradient: {why}", elapsed=elapsed)
            rec["verdict"] = "fail"
            records[check] = rec
            continue
        if observed is None:
            records[check] = status_record(label, case, check, "unsupported",
                                           f"backend returned no {check}", elapsed=elapsed)
            continue
        returned = returned_format(observed, exact)
        if returned is not None and not strict_dtype:
            t1 = time.perf_counter()
            hits, misses = cache.hits, cache.misses
            try:  # the answer settled in the format the backend returned
                with oracle_state():
                    exact = cache.get(case, check, out_dtype=returned)
            except OracleMissing:
                records[check] = needs_oracle_record(label, case, check, returned)
                continue
            except Exception as exc:  # noqa: BLE001 - an oracle error is the case's, not the run's
                records[check] = status_record(label, case, check, "error",
                                               f"oracle ({returned} output): {one_line(exc)}", elapsed=elapsed)
                continue
            finally:
                timing["oracle"] += time.perf_counter() - t1
                timing["hits"] += cache.hits - hits
                timing["misses"] += cache.misses - misses
        t1 = time.perf_counter()
        try:
            tol = tolerances.for_dtype(exact.dtype) if hasattr(tolerances, "for_dtype") else tolerances
            with oracle_state():  # the comparison in the default FP environment, not the backend's
                checked = checker(case, check, exact, observed, tol, backend=label)
        except Exception as exc:  # noqa: BLE001 - one bad check must not end the run
            records[check] = status_record(label, case, check, "error", f"check: {one_line(exc)}",
                                           elapsed=elapsed)
            continue
        rec = base_record(label, case, check)
        rec.update(checked)
        rec.update(type="result", backend=label, case_id=case.id, check=check)
        if returned is not None:
            note_returned_dtype(rec, returned, exacts[check].dtype, strict_dtype)
        rec.setdefault("status", "ok")
        rec.setdefault("elapsed", elapsed)
        timing["check"] += time.perf_counter() - t1
        records[check] = rec
    out = [records[c] for c in checks]
    if delegates:
        for rec in out:
            rec["delegates"] = delegates
    return out, timing


