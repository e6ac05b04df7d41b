"""The runner: every (backend, case, check) of a suite, evaluated in worker processes, checked against
the cached oracle, streamed to a JSONL results file as each finishes.

Backends are untrusted code: each runs in a worker process (forkserver or spawn, never a fork of a
process that has run torch: torch and fork do not mix), so a
hang (per-case timeout), a dead interpreter (os._exit, segfault), an exception or a malformed output
is recorded for that case and the run goes on with a fresh worker. The oracle runs inside the same
workers, so it uses every core too; the parent only dispatches, post-processes and writes.
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.backends.base import one_line
from harness.cache import OracleCache
from harness.config import DEFAULT_TIMEOUT, default_jobs
from harness.pool import IN_PROCESS, ORACLE_PASS, _run_pool, _Task, can_fork, in_process_loader
from harness.results_file import (
    SCHEMA,
    ResultsLock,
    ResultsWriter,
    RunError,
    header_differences,
    holds_results,
    known_failures_digest,
    read_finished,
    tolerances_dict,
    versions,
)
from harness.task import NEEDS_ORACLE, RunStats, checks_for, evaluate_task, jsonable, status_record

#: statuses that are not "ok" and carry no figures
FAILED_STATUSES = ("error", "timeout", "crash")


@dataclass
class RunResult:
    header: dict
    records: list[dict]
    stats: RunStats = field(default_factory=RunStats)


# ---------------------------------------------------------------------------------------------------
# the run

def _default_repro(case: Any, spec: str, check: str) -> str:
    from harness.repro import snippet

    return snippet(case, spec, check)


@dataclass
class Runner:
    """One run's settings. ``oracle``/``exact_type``/``checker``/``loader``/``repro`` are injectable
    for tests; they must be top-level callables (workers receive them by reference).  ``loader``
    is called as ``loader(spec)`` for the CPU and ``loader(spec, device=D)`` for another device.

    ``device`` is the torch device the torch-tensor backends place their tensors on;
    ``strict_dtype`` makes an output returned in another floating format than the input's bad
    output instead of a check judged in that format.
    """

    cache_dir: str | Path | None = None
    jobs: int = field(default_factory=default_jobs)
    timeout: float = DEFAULT_TIMEOUT
    tolerances: Any = None
    known_failures: Any = None
    grad: bool = True
    progress: bool = False
    oracle: Callable[[Any, str], Any] | None = None
    exact_type: Callable[[], Any] | None = None
    checker: Callable[..., dict] | None = None
    repro: Callable[[Any, str, str], str] | None = _default_repro
    loader: Callable[..., Any] | None = None
    strict: bool = False
    start_method: str = "forkserver"
    device: str = "cpu"
    strict_dtype: bool = False

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
        from reference import ORACLE_VERSION

        return {"type": "run", "schema": SCHEMA, "run_id": uuid.uuid4().hex,
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "suite": suite, "seed": seed, "backends": list(specs), "versions": versions(),
                "tolerances": tolerances_dict(self.tolerances), "grad": self.grad, "strict": self.strict,
                "oracle_version": ORACLE_VERSION, "known_failures": known_failures_digest(self.known_failures),
                "device": self.device, "strict_dtype": self.strict_dtype}

    def run(self, cases: Sequence[Any], specs: Sequence[str], results: str | Path, suite: str = "",
            seed: int = 0, resume: bool = False, in_process: dict[str, Any] | None = None,
            overwrite: bool = False, keep_previous: str | Path | None = None) -> RunResult:
        """Evaluate every (spec, case, check); return header, all records (resumed ones included), stats.

        ``in_process`` maps labels to backend objects that cannot be named by a spec (the pytest
        plugin's modules and objects): on Linux forked workers inherit them (isolated, with the
        timeout); elsewhere they run in this process, sequentially, without a timeout.

        An existing ``results`` file is refused unless ``resume`` or ``overwrite``; with
        ``keep_previous`` (the CLI's default results path) it is moved there instead, replacing
        what was there, and the run writes a new one.  The move happens under the results lock.
        """
        t_start = time.perf_counter()
        results = Path(results)
        with ResultsLock(results):
            return self._run(cases, specs, results, suite, seed, resume, overwrite, in_process, t_start,
                             keep_previous)

    def _run(self, cases, specs, results: Path, suite, seed, resume, overwrite, in_process, t_start,
             keep_previous=None) -> RunResult:
        stats = RunStats()
        previous: list[dict] = []
        header = self.header(suite, seed, specs)
        if not resume and not overwrite and holds_results(results):
            if keep_previous is None:
                raise RunError(f"{results}: holds the results of an earlier run; pass --resume to continue "
                               "it or --overwrite to replace it")
            try:
                os.replace(results, keep_previous)
            except OSError as exc:
                raise RunError(f"{results}: cannot move the earlier run's results to {keep_previous} "
                               f"({exc.strerror or exc}); pass --overwrite to replace them") from None
        if resume:
            old_header, previous = read_finished(results)
            if old_header is not None:
                differs = header_differences(old_header, header)
                if differs:
                    raise RunError(f"cannot resume {results}: it was run with other {'; '.join(differs)} "
                                   "(--overwrite starts over)")
                header["run_id"] = old_header.get("run_id", header["run_id"])
                header["resumed"] = True
            else:
                resume = False
        by_id = {c.id: c for c in cases}
        wanted = {(s, c.id, k) for s in specs for c in cases for k in checks_for(c, self.grad)}
        latest: dict[tuple, dict] = {}
        for r in previous:  # a later record of a check supersedes an earlier one (a retry)
            key = (r.get("backend"), r.get("case_id"), r.get("check"))
            if key in wanted:
                latest[key] = r
        # a check whose worker crashed or timed out is tried once more on resume
        retry = {k for k, r in latest.items() if r.get("status") in ("crash", "timeout") and not r.get("retried")}
        kept = [r for k, r in latest.items() if k not in retry]
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
                if (rec.get("backend"), rec.get("case_id"), rec.get("check")) in retry:
                    rec["retried"] = True
                rec = jsonable(self.finish_record(rec, by_id[rec["case_id"]]))
                writer.write(rec)
                records.append(rec)
                stats.evaluated += 1
                bar.advance(rec)

        try:
            args = self._worker_args()
            failed = self._oracle_pass(tasks, args, stats, bar) if tasks else {}
            stats_from_pass = bool(tasks)
            runnable = []
            for task in tasks:  # a check whose oracle failed is recorded as such, its backend not run
                dead = [k for k in task.checks if (task.case.id, k, None) in failed]
                if dead:
                    on_records(task, [status_record(task.spec, task.case, k, *failed[(task.case.id, k, None)])
                                      for k in dead], {})
                live = [k for k in task.checks if (task.case.id, k, None) not in failed]
                if live:
                    runnable.append(_Task(task.task_id, task.spec, task.case, live))

            needs: list[tuple[_Task, dict]] = []

            def on_backend(task: _Task, recs: list[dict], timing: dict) -> None:
                if stats_from_pass:  # the oracle pass counted every (case, check) once already
                    timing = {**timing, "hits": 0, "misses": 0}
                needs.extend((task, r) for r in recs if r.get("status") == NEEDS_ORACLE)
                on_records(task, [r for r in recs if r.get("status") != NEEDS_ORACLE], timing)

            self._run_backends(runnable, args, in_process, on_backend, stats)
            if needs:
                self._second_pass(needs, args, in_process, on_records, stats)
        finally:
            bar.close()
            writer.close()
            stats.wall = time.perf_counter() - t_start
        return RunResult(header=header, records=records, stats=stats)

    def _worker_args(self) -> tuple:
        """What every worker process is started with (harness.pool._worker_main's arguments)."""
        return (str(self.cache.root), self.oracle, self.exact_type, self.tolerances, self.checker,
                self.loader, self.device, self.strict_dtype)

    def _run_backends(self, runnable: list[_Task], args: tuple, in_process: dict[str, Any] | None,
                      on_backend: Callable[[_Task, list[dict], dict], None], stats: RunStats) -> None:
        """Evaluate the backend tasks: spec-named backends in worker processes of their own;
        objects (``in_process``) in forked workers on Linux, else in this process."""
        if in_process is not None and runnable and can_fork():
            # objects cannot be named in a fresh process: forked workers inherit them, so a
            # hang is killed at the timeout and an os._exit is a crash record, as for specs
            IN_PROCESS.clear()
            IN_PROCESS.update(in_process)
            fork_args = (*args[:5], in_process_loader, *args[6:])
            try:
                _run_pool(runnable, self.jobs, self.timeout, fork_args, ready=lambda t: True,
                          on_records=on_backend, stats=stats, start_method="fork")
            finally:
                IN_PROCESS.clear()
        elif in_process is not None:
            # no fork (macOS, Windows): in this process, no timeout; the oracle stays out of it
            # (a read-only view of the cache: a missing answer goes to the oracle workers)
            read_only = self.cache.read_only()
            for task in runnable:
                recs, timing = evaluate_task(in_process[task.spec], task.spec, task.case, task.checks,
                                             read_only, self.tolerances, self.checker,
                                             strict_dtype=self.strict_dtype)
                on_backend(task, recs, timing)
        elif runnable:
            _run_pool(runnable, self.jobs, self.timeout, args,
                      ready=lambda t: all(self.cache.has(t.case.id, k) for k in t.checks),
                      on_records=on_backend, stats=stats, start_method=self.start_method)

    def _second_pass(self, needs: list[tuple[_Task, dict]], args: tuple, in_process: dict[str, Any] | None,
                     on_records: Callable[[_Task, list[dict], dict], None], stats: RunStats) -> None:
        """The checks whose backend returned another floating format than the input's, with no
        oracle answer settled in it yet: the oracle workers compute those answers (never a
        backend's worker), then the backend evaluates just those checks again and they are judged
        in the format it returned.  A check that needs yet another format the second time (an
        output dtype that changes between calls) is an error."""
        failed = self.compute_oracle([(task.case, rec["check"], rec["needs_oracle"]) for task, rec in needs],
                                     args, stats)
        again: dict[tuple[str, str], _Task] = {}
        for task, rec in needs:
            check, fmt = rec["check"], rec["needs_oracle"]
            if (task.case.id, check, fmt) in failed:
                status, message = failed[(task.case.id, check, fmt)]
                on_records(task, [status_record(task.spec, task.case, check, status,
                                                f"{message} (settled in {fmt}, the format the backend returned)")],
                           {})
                continue
            key = (task.spec, task.case.id)
            if key not in again:
                again[key] = _Task(len(again), task.spec, task.case, [])
            again[key].checks.append(check)
        first = {(task.spec, task.case.id, rec["check"]): rec["needs_oracle"] for task, rec in needs}

        def on_again(task: _Task, recs: list[dict], timing: dict) -> None:
            out = []
            for rec in recs:
                if rec.get("status") == NEEDS_ORACLE:
                    before = first.get((task.spec, task.case.id, rec["check"]))
                    rec = status_record(task.spec, task.case, rec["check"], "error",
                                        f"returned {rec['needs_oracle']} for {task.case.dtype} input on a second "
                                        f"evaluation, {before} on the first: an output dtype that changes "
                                        "between calls cannot be judged")
                out.append(rec)
            on_records(task, out, {**timing, "hits": 0, "misses": 0})

        self._run_backends(list(again.values()), args, in_process, on_again, stats)

    def compute_oracle(self, needs: Iterable[tuple[Any, str, str | None]], args: tuple | None = None,
                       stats: RunStats | None = None) -> dict[tuple[str, str, str | None], tuple[str, str]]:
        """Fill the oracle cache with the answers ``needs`` names -- (case, check, out_dtype), the
        format to settle in or None for the loss's own -- in worker processes that load no backend.
        Returns {(case id, check, out_dtype): (status, message)} for the ones that failed."""
        grouped: dict[tuple[str, str | None], tuple[Any, list[str]]] = {}
        for case, check, fmt in needs:
            _, checks = grouped.setdefault((case.id, fmt), (case, []))
            if check not in checks:
                checks.append(check)
        tasks = [_Task(i, ORACLE_PASS, case, checks, out_dtype=fmt)
                 for i, ((_, fmt), (case, checks)) in enumerate(grouped.items())]
        return self._fill_oracle(tasks, args or self._worker_args(), stats or RunStats())

    def _oracle_pass(self, tasks: list[_Task], args: tuple, stats: RunStats, progress: Any = None) -> dict:
        """Fill the oracle cache for every (case, check) the tasks need, in worker processes that
        load no backend (a backend's process state can reach no oracle answer), before any backend
        runs.  Returns {(case id, check, None): (status, message)} for the ones that failed (error,
        crash, or longer than the oracle's time limit)."""
        need: dict[str, tuple[Any, list[str]]] = {}
        for task in tasks:
            _, checks = need.setdefault(task.case.id, (task.case, []))
            checks += [k for k in task.checks if k not in checks]
        oracle_tasks = [_Task(i, ORACLE_PASS, case, checks) for i, (case, checks) in enumerate(need.values())]
        return self._fill_oracle(oracle_tasks, args, stats, progress)

    def _fill_oracle(self, oracle_tasks: list[_Task], args: tuple, stats: RunStats, progress: Any = None) -> dict:
        failed: dict[tuple[str, str, str | None], tuple[str, str]] = {}

        def on_oracle(task: _Task, recs: list[dict], timing: dict) -> None:
            stats.oracle += timing.get("oracle", 0.0)
            stats.cache_hits += timing.get("hits", 0)
            stats.cache_misses += timing.get("misses", 0)
            for rec in recs:
                failed[(rec["case_id"], rec["check"], task.out_dtype)] = (rec["status"], rec["message"])
            if progress is not None:
                progress.oracle_advance()

        if progress is not None:
            progress.oracle_start(len(oracle_tasks))
        if oracle_tasks:
            _run_pool(oracle_tasks, self.jobs, self.timeout, args, ready=lambda t: True, on_records=on_oracle,
                      stats=stats, start_method=self.start_method)
        return failed


def _duration(seconds: float) -> str:
    """``12 s``, ``4 min 05 s``, ``1 h 02 min``: a human's duration, never negative."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class _Progress:
    """How far a run is, on stderr, in two phases: the oracle pass (``cases`` whose exact values
    are computed or read from the cache) and the checks (``checks`` evaluated and judged).

    On a terminal, a rich bar per phase with its unit, the failing count and an ETA (transient: the
    summary replaces it).  Without one (CI, nox, a pipe) plain lines such as::

        losscheck: 1,234/7,576 checks (16 %), 12 s elapsed, ETA 50 s

    at every 10 % of a phase and at least every :attr:`every_s` seconds (a thread keeps a slow case
    from looking like a hang), none during the first :attr:`quiet_s` seconds (a quick run stays
    quiet) except a phase's last line once anything was printed.  ``stream``, ``tty`` and ``clock``
    are injectable for tests.
    """

    every_s = 30.0
    quiet_s = 2.0

    def __init__(self, total: int, enabled: bool, stream: Any = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, every_s: float | None = None,
                 quiet_s: float | None = None) -> None:
        import threading

        self.enabled = bool(enabled and total)
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = tty
        self.clock = clock
        self.every_s = self.every_s if every_s is None else every_s
        self.quiet_s = self.quiet_s if quiet_s is None else quiet_s
        self.t0 = self.last_line = clock()
        self.total = total
        self.fails = 0
        self.printed = False
        self._phase: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.bar = None
        self.tasks: dict[str, Any] = {}
        if not self.enabled:
            return
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("[bold]losscheck[/] {task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                                TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(),
                                console=Console(file=self.stream), transient=True)
            self.bar.start()
        else:
            self._thread = threading.Thread(target=self._heartbeat, name="losscheck-progress", daemon=True)
            self._thread.start()

    # -- phases ----------------------------------------------------------------------------------
    def _start(self, name: str, unit: str, total: int) -> None:
        self._phase = {"name": name, "unit": unit, "total": total, "done": 0, "t0": self.clock(), "decile": 0}
        if self.bar is not None:
            for task in self.tasks.values():  # the finished phase's bar makes room for the next
                self.bar.update(task, visible=False)
            self.tasks[name] = self.bar.add_task(name, total=total, unit=unit,
                                                 note="0 failing" if name == "checks" else "")

    def oracle_start(self, cases: int) -> None:
        """The oracle pass begins: ``cases`` cases to compute (or find in the cache)."""
        if self.enabled and cases:
            with self._lock:
                self._start("oracle", "cases", cases)

    def oracle_advance(self, n: int = 1) -> None:
        if self.enabled and self._phase.get("name") == "oracle":
            self._step(n)

    def advance(self, rec: dict) -> None:
        """One check's record is in."""
        if not self.enabled:
            return
        if self._phase.get("name") != "checks":  # no oracle phase (or it was cut short)
            with self._lock:
                self._start("checks", "checks", self.total)
        self.fails += rec.get("verdict") in ("fail", "error")
        self._step(1)

    def _step(self, n: int) -> None:
        with self._lock:
            ph = self._phase
            ph["done"] = min(ph["total"], ph["done"] + n)
            if self.bar is not None:
                note = f"{self.fails} failing" if ph["name"] == "checks" else ""
                self.bar.update(self.tasks[ph["name"]], completed=ph["done"], note=note)
                return
            decile = 10 * ph["done"] // ph["total"]
            now = self.clock()
            finished = ph["done"] == ph["total"]
            due = decile > ph["decile"] or now - self.last_line >= self.every_s
            ph["decile"] = max(ph["decile"], decile)
            if due and (now - self.t0 >= self.quiet_s or (finished and self.printed)):
                self._line(now)
            if finished and ph["name"] == "oracle":  # the checks' clock starts when the oracle's stops
                self._start("checks", "checks", self.total)

    def _line(self, now: float) -> None:
        ph = self._phase
        done, total = ph["done"], ph["total"]
        what = "oracle " if ph["name"] == "oracle" else ""
        text = (f"losscheck: {what}{done:,}/{total:,} {ph['unit']} ({100 * done // total} %), "
                f"{_duration(now - self.t0)} elapsed")
        spent = now - ph["t0"]
        if 0 < done < total and spent > 0:
            text += f", ETA {_duration((total - done) * spent / done)}"
        if ph["name"] == "checks" and self.fails:
            text += f", {self.fails:,} failing"
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed or broken stderr must not end the run
            self.enabled = False
        self.last_line, self.printed = now, True

    def _heartbeat(self) -> None:
        """Every :attr:`every_s` seconds without a line (a slow case, a long oracle call): one."""
        while not self._stop.wait(min(1.0, max(self.every_s / 4, 0.01))):
            with self._lock:
                now = self.clock()
                if (self._phase and self.enabled and now - self.last_line >= self.every_s
                        and now - self.t0 >= self.quiet_s):
                    self._line(now)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
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
