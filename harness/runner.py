"""The runner: every (backend, case, check) of a suite, evaluated in worker processes, checked against
the cached oracle, streamed to a JSONL results file as each finishes.

Backends are untrusted code: each runs in a worker process (forkserver or spawn, never a fork of a
process that has run torch: torch and fork do not mix), so a
hang (per-case timeout), a dead interpreter (os._exit, segfault), an exception or a malformed output
is recorded for that case and the run goes on with a fresh worker. The oracle runs inside the same
workers, so it uses every core too; the parent only dispatches, post-processes and writes.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import numpy as np

from harness.cache import OracleCache

SCHEMA = "losscheck.results/1"
#: statuses that are not "ok" and carry no figures
FAILED_STATUSES = ("error", "timeout", "crash")
#: the oracle is trusted but may be slow; its phase gets this many per-case timeouts
ORACLE_TIMEOUT_FACTOR = 5


class RunError(Exception):
    """Bad usage detected by the runner (e.g. an unusable results file); one-line message."""


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


@dataclass
class RunResult:
    header: dict
    records: list[dict]
    stats: RunStats = field(default_factory=RunStats)


# ---------------------------------------------------------------------------------------------------
# records

def checks_for(case: Any, grad: bool = True) -> list[str]:
    """The checks a case asks for: its value always, its input gradient when the case and run want it."""
    return ["value", "grad"] if grad and getattr(case, "grad", False) else ["value"]


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


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` — what an exception record says."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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


def evaluate_task(backend: Any, label: str, case: Any, checks: Sequence[str], cache: OracleCache,
                  tolerances: Any, checker: Callable[..., dict] | None = None,
                  oracle_done: Callable[[], None] | None = None) -> tuple[list[dict], dict]:
    """Evaluate one backend on one case for the given checks; never raises for backend trouble.

    Returns the records (not yet known-failure-adjusted) and timings
    ``{"oracle": s, "backend": s, "check": s, "hits": n, "misses": n}`` (worker CPU-seconds).
    """
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
        return [status_record(label, case, c, "unsupported", why) for c in checks], timing
    exacts: dict[str, Any] = {}
    records: dict[str, dict] = {}
    for check in checks:
        t0 = time.perf_counter()
        hits, misses = cache.hits, cache.misses
        try:
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
        observed = observation.value if check == "value" else getattr(observation, "grad", None)
        if observed is None:
            records[check] = status_record(label, case, check, "unsupported",
                                           f"backend returned no {check}", elapsed=elapsed)
            continue
        t1 = time.perf_counter()
        try:
            tol = tolerances.for_dtype(exact.dtype) if hasattr(tolerances, "for_dtype") else tolerances
            checked = checker(case, check, exact, observed, tol, backend=label)
        except Exception as exc:  # noqa: BLE001 - one bad check must not end the run
            records[check] = status_record(label, case, check, "error", f"check: {one_line(exc)}",
                                           elapsed=elapsed)
            continue
        rec = base_record(label, case, check)
        rec.update(checked)
        rec.update(type="result", backend=label, case_id=case.id, check=check)
        rec.setdefault("status", "ok")
        rec.setdefault("elapsed", elapsed)
        timing["check"] += time.perf_counter() - t1
        records[check] = rec
    return [records[c] for c in checks], timing


# ---------------------------------------------------------------------------------------------------
# worker processes

def load_backend(spec: str) -> Any:
    """The default backend loader: ``harness.backends.load``."""
    from harness.backends import load

    return load(spec)


def _worker_main(conn: Any, cache_root: str, oracle: Any, exact_type: Any, tolerances: Any,
                 checker: Any, loader: Any) -> None:
    """Worker loop: receive (task_id, spec, case, checks), send ("oracle", id) then ("result", ...)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and ends its workers
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # one thread per worker: the workers already fill the cores
    loader = loader or load_backend
    cache = OracleCache(cache_root, oracle=oracle, exact_type=exact_type)
    loaded: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, spec, case, checks = msg
        try:
            if spec not in loaded:
                loaded[spec] = loader(spec)
                if "torch" in sys.modules:  # only backends that use torch pay for importing it
                    sys.modules["torch"].set_num_threads(1)
            backend = loaded[spec]
        except Exception as exc:  # noqa: BLE001 - a backend failing to load is its error
            records = [status_record(spec, case, c, "error", f"loading backend: {one_line(exc)}")
                       for c in checks]
            conn.send(("result", task_id, records, _no_timing()))
            continue
        records, timing = evaluate_task(backend, spec, case, checks, cache, tolerances, checker,
                                        oracle_done=lambda tid=task_id: conn.send(("oracle", tid)))
        conn.send(("result", task_id, records, timing))


@dataclass
class _Task:
    task_id: int
    spec: str
    case: Any
    checks: list[str]


class _Worker:
    def __init__(self, ctx: Any, args: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.task: _Task | None = None
        self.deadline = math.inf
        self.started = 0.0
        self.phase = "oracle"

    def assign(self, task: _Task, deadline: float) -> None:
        self.task, self.deadline, self.started, self.phase = task, deadline, time.monotonic(), "oracle"
        self.conn.send((task.task_id, task.spec, task.case, task.checks))

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except OSError:
                kill = True
        if kill and self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=None if kill else 5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _describe_death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"worker killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with code {code}"


def _context(start_method: str) -> Any:
    """A multiprocessing context that never forks a process that has run torch.

    "forkserver" forks workers from a clean server process that has only *imported* the harness
    and torch (no threads started), so a replacement worker after a crash or timeout costs
    milliseconds instead of a fresh interpreter importing torch; "spawn" is the portable fallback.
    """
    if start_method == "forkserver" and "forkserver" in mp.get_all_start_methods():
        import importlib.util

        ctx = mp.get_context("forkserver")
        preload = ["harness.runner", "harness.check", "harness.backends"]
        if importlib.util.find_spec("torch") is not None:
            preload.append("torch")
        ctx.set_forkserver_preload(preload)
        return ctx
    return mp.get_context("spawn")


def _run_pool(tasks: list[_Task], jobs: int, timeout: float, worker_args: tuple,
              ready: Callable[[_Task], bool], on_records: Callable[[_Task, list[dict], dict], None],
              stats: RunStats, start_method: str = "spawn") -> None:
    """Dispatch tasks over ``jobs`` worker processes; replace workers that hang or die.

    Tasks of a case whose oracle another worker is computing wait, so an oracle value is computed
    once even when several backends need it at the same moment.
    """
    ctx = _context(start_method)
    pending = deque(tasks)
    computing: set[str] = set()  # case ids whose oracle a worker is computing now
    workers = [_Worker(ctx, worker_args) for _ in range(max(1, min(jobs, len(tasks))))]

    def next_task() -> _Task | None:
        for i, task in enumerate(pending):
            if task.case.id not in computing:
                del pending[i]
                return task
        return None

    def dispatch(i: int) -> None:
        task = next_task()
        if task is None:
            return
        if not ready(task):
            computing.add(task.case.id)
        try:
            workers[i].assign(task, time.monotonic() + timeout * ORACLE_TIMEOUT_FACTOR)
        except OSError:  # the idle worker died (killed from outside): replace it, retry the task later
            computing.discard(task.case.id)
            pending.appendleft(task)
            workers[i].task = None
            workers[i].stop(kill=True)
            workers[i] = _Worker(ctx, worker_args)

    def finish(worker: _Worker, records: list[dict], timing: dict) -> None:
        task = worker.task
        worker.task, worker.deadline = None, math.inf
        computing.discard(task.case.id)
        on_records(task, records, timing)

    def fail(worker: _Worker, status: str, message: str) -> _Worker:
        task = worker.task
        elapsed = time.monotonic() - worker.started
        worker.stop(kill=True)
        records = [status_record(task.spec, task.case, c, status, message, elapsed=elapsed)
                   for c in task.checks]
        if status == "crash":
            stats.crashes += 1
        else:
            stats.timeouts += 1
        worker.task = task
        finish(worker, records, {**_no_timing(), "backend": elapsed})
        return _Worker(ctx, worker_args)

    try:
        while True:
            for i, w in enumerate(workers):
                if w.task is None:
                    dispatch(i)
            busy = [w for w in workers if w.task is not None]
            if not busy:
                if pending:  # only tasks waiting on an oracle nobody computes: cannot happen, but be safe
                    computing.clear()
                    continue
                break
            now = time.monotonic()
            wait_for = max(0.0, min(w.deadline for w in busy) - now)
            handles = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
            wait(handles, timeout=min(wait_for, 1.0))
            for i, w in enumerate(workers):
                if w.task is None:
                    continue
                died = False
                while w.task is not None and w.conn.poll():
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        died = True
                        break
                    if msg[0] == "oracle":
                        computing.discard(w.task.case.id)
                        w.deadline, w.phase = time.monotonic() + timeout, "backend"
                    elif msg[0] == "result":
                        finish(w, msg[2], msg[3])
                if w.task is None:
                    continue
                if died or not w.proc.is_alive():
                    w.proc.join(timeout=1)
                    workers[i] = fail(w, "crash", _describe_death(w.proc.exitcode))
                elif time.monotonic() > w.deadline:
                    limit = timeout * (ORACLE_TIMEOUT_FACTOR if w.phase == "oracle" else 1)
                    workers[i] = fail(w, "timeout",
                                      f"no result within {limit:g} s ({w.phase}); worker killed")
    finally:
        for w in workers:
            w.stop(kill=w.task is not None)


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


class ResultsWriter:
    """Appends one JSON line per record, flushed at once, so a killed run loses nothing written."""

    def __init__(self, path: Path, header: dict, append: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 - lives for the run
        self.write(header)

    def write(self, obj: dict) -> None:
        self.fh.write(json.dumps(jsonable(obj), separators=(",", ":"), allow_nan=False) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


# ---------------------------------------------------------------------------------------------------
# the run

def _default_repro(case: Any, spec: str, check: str) -> str:
    from harness.repro import snippet

    return snippet(case, spec, check)


@dataclass
class Runner:
    """One run's settings. ``oracle``/``exact_type``/``checker``/``loader``/``repro`` are injectable
    for tests; they must be top-level callables (workers receive them by reference)."""

    cache_dir: str | Path | None = None
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout: float = 60.0
    tolerances: Any = None
    known_failures: Any = None
    grad: bool = True
    progress: bool = False
    oracle: Callable[[Any, str], Any] | None = None
    exact_type: Callable[[], Any] | None = None
    checker: Callable[..., dict] | None = None
    repro: Callable[[Any, str, str], str] | None = _default_repro
    loader: Callable[[str], Any] | None = None
    strict: bool = False
    start_method: str = "forkserver"

    def __post_init__(self) -> None:
        self.cache = OracleCache(self.cache_dir, oracle=self.oracle, exact_type=self.exact_type)
        if self.tolerances is None:
            from harness.tolerances import DEFAULTS

            self.tolerances = DEFAULTS

    # -- post-processing in the parent ------------------------------------------------------------
    def finish_record(self, rec: dict, case: Any) -> dict:
        """Apply known failures and attach the repro snippet where a human will want it."""
        if self.known_failures is not None:
            rec = self.known_failures.apply(rec, self.strict) or rec
        if rec.get("verdict") in ("fail", "warn", "xfail") and not rec.get("repro") and self.repro:
            try:
                rec["repro"] = self.repro(case, rec["backend"], rec["check"])
            except Exception as exc:  # noqa: BLE001 - a repro snippet is a courtesy
                rec["repro"] = f"# no repro snippet: {one_line(exc)}"
        return rec

    def header(self, suite: str, seed: int, specs: Sequence[str]) -> dict:
        return {"type": "run", "schema": SCHEMA, "run_id": uuid.uuid4().hex,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "suite": suite, "seed": seed, "backends": list(specs), "versions": versions(),
                "tolerances": tolerances_dict(self.tolerances), "grad": self.grad}

    def run(self, cases: Sequence[Any], specs: Sequence[str], results: str | Path, suite: str = "",
            seed: int = 0, resume: bool = False, in_process: dict[str, Any] | None = None) -> RunResult:
        """Evaluate every (spec, case, check); return header, all records (resumed ones included), stats.

        ``in_process`` maps labels to backend objects evaluated in this process, sequentially and
        without isolation (the pytest plugin's mode for objects that cannot be named by a spec).
        """
        t_start = time.perf_counter()
        results = Path(results)
        stats = RunStats()
        previous: list[dict] = []
        header = self.header(suite, seed, specs)
        if resume:
            old_header, previous = read_finished(results)
            if old_header is not None:
                if (old_header.get("suite"), old_header.get("seed")) != (suite, seed):
                    raise RunError(f"{results}: holds suite {old_header.get('suite')!r} seed "
                                   f"{old_header.get('seed')!r}, not {suite!r} seed {seed!r}; cannot resume")
                header["run_id"] = old_header.get("run_id", header["run_id"])
                header["resumed"] = True
            else:
                resume = False
        by_id = {c.id: c for c in cases}
        wanted = {(s, c.id, k) for s in specs for c in cases for k in checks_for(c, self.grad)}
        kept = [r for r in previous if (r.get("backend"), r.get("case_id"), r.get("check")) in wanted]
        done = {(r["backend"], r["case_id"], r["check"]) for r in kept}
        stats.skipped = len(done)

        tasks: list[_Task] = []
        for case in cases:  # case-major: backends of one case share its oracle value
            for spec in specs:
                checks = [k for k in checks_for(case, self.grad) if (spec, case.id, k) not in done]
                if checks:
                    tasks.append(_Task(len(tasks), spec, case, checks))
        total = sum(len(t.checks) for t in tasks)

        records = list(kept)
        writer = ResultsWriter(results, header, append=resume)
        bar = _Progress(total, self.progress)

        def on_records(task: _Task, recs: list[dict], timing: dict) -> None:
            stats.oracle += timing.get("oracle", 0.0)
            stats.backend += timing.get("backend", 0.0)
            stats.check += timing.get("check", 0.0)
            stats.cache_hits += timing.get("hits", 0)
            stats.cache_misses += timing.get("misses", 0)
            for rec in recs:
                rec = jsonable(self.finish_record(rec, by_id[rec["case_id"]]))
                writer.write(rec)
                records.append(rec)
                stats.evaluated += 1
                bar.advance(rec)

        try:
            if in_process is not None:
                for task in tasks:
                    recs, timing = evaluate_task(in_process[task.spec], task.spec, task.case, task.checks,
                                                 self.cache, self.tolerances, self.checker)
                    on_records(task, recs, timing)
            elif tasks:
                args = (str(self.cache.root), self.oracle, self.exact_type, self.tolerances, self.checker,
                        self.loader)
                _run_pool(tasks, self.jobs, self.timeout, args,
                          ready=lambda t: all(self.cache.has(t.case.id, k) for k in t.checks),
                          on_records=on_records, stats=stats, start_method=self.start_method)
        finally:
            bar.close()
            writer.close()
            stats.wall = time.perf_counter() - t_start
        return RunResult(header=header, records=records, stats=stats)


class _Progress:
    """A rich progress bar on a terminal's stderr; nothing otherwise (CI logs stay readable)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]losscheck"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[fails]} failing"), TimeElapsedColumn(),
                                console=Console(file=sys.stderr), transient=True)
            self.bar.start()
            self.fails = 0
            self.task = self.bar.add_task("run", total=total, fails=0)

    def advance(self, rec: dict) -> None:
        if self.bar is not None:
            self.fails += rec.get("verdict") in ("fail", "error")
            self.bar.update(self.task, advance=1, fails=self.fails)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def select(cases: Iterable[Any], losses: Sequence[str] = (), dtypes: Sequence[str] = (),
           families: Sequence[str] = ()) -> list[Any]:
    """The cases matching every given filter (loss names, dtype names, family globs)."""
    from fnmatch import fnmatchcase

    out = []
    for case in cases:
        if losses and case.loss not in losses:
            continue
        if dtypes and case.dtype not in dtypes:
            continue
        if families and not any(fnmatchcase(case.family, g) for g in families):
            continue
        out.append(case)
    return out
