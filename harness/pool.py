"""Worker processes for the runner: untrusted backends run isolated, with per-task timeouts.

forkserver (or spawn) workers, never a fork of a process that has run torch; a hang is killed at
its deadline, a dead interpreter (os._exit, segfault) is recorded and replaced, and the pool goes on.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from harness.cache import OracleCache

#: the oracle is trusted but may be slow; its phase gets this many per-case timeouts
ORACLE_TIMEOUT_FACTOR = 5


from harness.backends.base import one_line
from harness.task import RunStats, _no_timing, evaluate_task, status_record

# ---------------------------------------------------------------------------------------------------
# worker processes

def load_backend(spec: str, device: str = "cpu") -> Any:
    """The default backend loader: ``harness.backends.load``."""
    from harness.backends import load

    return load(spec, device)


def _load(loader: Any, spec: str, device: str) -> Any:
    """``loader(spec)`` on the CPU, ``loader(spec, device=device)`` elsewhere: a loader that knows
    no devices (a test's) still serves every CPU run."""
    loader = loader or load_backend
    return loader(spec) if device == "cpu" else loader(spec, device=device)


#: backend objects that cannot be named by a spec (the pytest plugin's modules and objects), by
#: label: set before a "fork" pool starts, so that its workers inherit them (see in_process_loader)
IN_PROCESS: dict[str, Any] = {}


def in_process_loader(spec: str, device: str = "cpu") -> Any:
    """The loader of a forked pool: the object the parent registered under ``spec`` (a drop-in
    module becomes a backend on ``device``; a backend object was built with its device)."""
    from harness.backends import from_object

    obj = IN_PROCESS[spec]
    return obj if hasattr(obj, "evaluate") and hasattr(obj, "supports") else from_object(spec, obj, device)


def can_fork() -> bool:
    """Whether objects can be handed to isolated workers by fork (Linux: fork is safe enough there
    with torch, which resets its thread pools in the child; macOS forks are not)."""
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


#: the pseudo-spec of an oracle-pass task: the worker fills the oracle cache and loads no backend
ORACLE_PASS = "<oracle>"


def _oracle_only(cache: OracleCache, case: Any, checks: list[str],
                 out_dtype: str | None = None) -> tuple[list[dict], dict]:
    """Compute (or find) the oracle's answers for ``checks`` of ``case`` (settled in ``out_dtype``
    when given); records only for failures."""
    t0 = time.perf_counter()
    hits, misses = cache.hits, cache.misses
    records = []
    for check in checks:
        try:
            cache.get(case, check, out_dtype=out_dtype)
        except Exception as exc:  # noqa: BLE001 - an oracle error is the case's, not the run's
            records.append(status_record(ORACLE_PASS, case, check, "error", f"oracle: {one_line(exc)}"))
    timing = {**_no_timing(), "oracle": time.perf_counter() - t0, "hits": cache.hits - hits,
              "misses": cache.misses - misses}
    return records, timing


def _oracle_progress_to_stderr() -> None:
    """The oracle says how a big call (>= 10^6 elements) settles on logger "losscheck.oracle":
    a worker shows it on stderr, so a long oracle pass is never silent."""
    import logging

    log = logging.getLogger("losscheck.oracle")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"losscheck: oracle [pid {os.getpid()}]: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _worker_main(conn: Any, cache_root: str, oracle: Any, exact_type: Any, tolerances: Any,
                 checker: Any, loader: Any, device: str = "cpu", strict_dtype: bool = False) -> None:
    """Worker loop: receive (task_id, spec, case, checks, out_dtype), send ("oracle", id) then
    ("result", ...).

    A worker that receives an :data:`ORACLE_PASS` task only fills the oracle cache (settled in
    ``out_dtype`` when it is not None): the runner's oracle passes run in workers of their own, so
    no backend under test is ever imported where the oracle computes.  Backends are loaded on
    ``device``; ``strict_dtype`` makes an output in another format than the input's bad output."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and ends its workers
    _oracle_progress_to_stderr()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # one thread per worker: the workers already fill the cores
    cache = OracleCache(cache_root, oracle=oracle, exact_type=exact_type)
    # once a backend is loaded, answers only come from the cache the oracle pass filled
    read_only = OracleCache(cache_root, oracle=oracle, exact_type=exact_type, computes=False)
    loaded: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, spec, case, checks, out_dtype = msg
        if spec == ORACLE_PASS:
            if loaded:  # the pool never sends one here (affinity); refuse rather than compute
                conn.send(("oracle", task_id))
                conn.send(("result", task_id, [status_record(ORACLE_PASS, case, c, "error",
                                                             "oracle: asked of a backend's worker")
                                               for c in checks], _no_timing()))
                continue
            records, timing = _oracle_only(cache, case, checks, out_dtype)
            conn.send(("oracle", task_id))
            conn.send(("result", task_id, records, timing))
            continue
        try:
            if spec not in loaded:
                loaded[spec] = _load(loader, spec, device)
                if "torch" in sys.modules:  # only backends that use torch pay for importing it
                    sys.modules["torch"].set_num_threads(1)
            backend = loaded[spec]
        except Exception as exc:  # noqa: BLE001 - a backend failing to load is its error
            records = [status_record(spec, case, c, "error", f"loading backend: {one_line(exc)}")
                       for c in checks]
            conn.send(("result", task_id, records, _no_timing()))
            continue
        records, timing = evaluate_task(backend, spec, case, checks, read_only, tolerances, checker,
                                        oracle_done=lambda tid=task_id: conn.send(("oracle", tid)),
                                        strict_dtype=strict_dtype)
        conn.send(("result", task_id, records, timing))


def _probe_main(conn: Any, spec: str, loader: Any, device: str = "cpu") -> None:
    """Load one backend on ``device`` and report ("ok", note | None) or ("error", line): the CLI's
    up-front check, in a process of its own so that a backend's import-time side effects never
    reach the CLI's process.  The note says when the backend does not run on ``device``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        backend = _load(loader, spec, device)
        where = getattr(backend, "device", "cpu")
        note = None if where == device else (
            f"backend {spec!r} does not run on torch devices: --device {device} does not apply to it "
            f"(it runs on {where})")
        conn.send(("ok", note))
    except BaseException as exc:  # noqa: BLE001 - any failure to load is the answer
        from harness.backends import BackendLoadError

        conn.send(("error", str(exc) if isinstance(exc, BackendLoadError)
                   else f"cannot load backend {spec!r}: {one_line(exc)}"))


def check_loadable(specs: list[str], timeout: float, loader: Any = None,
                   start_method: str = "forkserver", device: str = "cpu",
                   notes: dict[str, str] | None = None) -> dict[str, str]:
    """{spec: error line} for the backends that cannot be loaded on ``device``, each tried in a
    fresh worker process (a crash or a hang on import is an error too).  ``notes`` (when given)
    receives {spec: line} for the backends that load but do not run on ``device``."""
    ctx = _context(start_method)
    errors: dict[str, str] = {}
    for spec in specs:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_probe_main, args=(child, spec, loader, device), daemon=True)
        proc.start()
        child.close()
        try:
            if parent.poll(timeout):
                kind, text = parent.recv()
                if kind == "error":
                    errors[spec] = text
                elif text and notes is not None:
                    notes[spec] = text
            else:
                errors[spec] = f"cannot load backend {spec!r}: no answer within {timeout:g} s"
        except (EOFError, OSError):
            proc.join(timeout=5)
            errors[spec] = f"cannot load backend {spec!r}: {_describe_death(proc.exitcode)} while importing it"
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join()
            parent.close()
    return errors


@dataclass
class _Task:
    task_id: int
    spec: str
    case: Any
    checks: list[str]
    out_dtype: str | None = None  # an oracle-pass task: settle in this format (None: the loss's own)


class _Worker:
    def __init__(self, ctx: Any, args: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()
        self.task: _Task | None = None
        self.spec: str | None = None  # the one backend (or the oracle pass) this worker serves
        self.deadline = math.inf
        self.started = 0.0
        self.phase = "oracle"

    def assign(self, task: _Task, deadline: float) -> None:
        self.task, self.deadline, self.started, self.phase = task, deadline, time.monotonic(), "oracle"
        self.conn.send((task.task_id, task.spec, task.case, task.checks, task.out_dtype))

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
    if start_method == "fork":
        return mp.get_context("fork")
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

    def next_task(spec: str | None) -> _Task | None:
        for i, task in enumerate(pending):
            if task.case.id not in computing and spec in (None, task.spec):
                del pending[i]
                return task
        return None

    def dispatch(i: int) -> None:
        # a worker serves one backend for life: another backend's monkeypatching, FPU flags or
        # np.seterr cannot reach it; when its backend has no work left a fresh worker replaces it
        task = next_task(workers[i].spec)
        if task is None and workers[i].spec is not None and any(t.spec != workers[i].spec for t in pending):
            workers[i].stop()
            workers[i] = _Worker(ctx, worker_args)
            task = next_task(None)
        if task is None:
            return
        workers[i].spec = task.spec
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


