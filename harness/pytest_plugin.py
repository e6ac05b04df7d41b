"""pytest plugin (entry point ``pytest11: losscheck``): gate your own loss implementation in your own
test suite::

    def test_my_losses(losscheck):
        losscheck.check(mypkg.losses, suite="gate")

A spec string runs through the runner (worker processes: a crash or hang is recorded, not fatal);
a module or object is a drop-in for torch.nn.functional, evaluated in forked worker processes on
Linux (isolated the same way, with the timeout) and in the test's process elsewhere.  Tolerances,
known failures (torch's built-in ones plus ``[tool.losscheck]``'s file), jobs and timeout come
from the same configuration the CLI reads. A failing check
fails the test with a table of the worst elements and the repro snippet of the worst one.

Imported by every pytest session on the machine, so it imports nothing heavy at module level.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest


class LossCheck:
    """The ``losscheck`` fixture's object; ``check`` runs one backend against a suite."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.last: Any = None  # the last RunResult, for tests that want to look further

    def check(self, backend: Any, suite: str = "gate", losses: Sequence[str] | None = None,
              dtypes: Sequence[str] | None = None, strict: bool = False,
              families: Sequence[str] | None = None,
              seed: int = 0, grad: bool = True, jobs: int | None = None, timeout: float | None = None,
              allow_unsupported: bool = False, device: str | None = None,
              strict_dtype: bool | None = None) -> Any:
        """Run ``backend`` on ``suite`` (filtered); ``pytest.fail`` if any check fails the gate.

        ``device`` (torch's name; default ``[tool.losscheck] device``, else cpu) is where a
        torch-tensor backend's tensors live; ``strict_dtype`` (default the configuration's) fails an
        output returned in another floating dtype than the input's."""
        import cases
        from harness.config import ConfigError, load_config
        from harness.runner import Runner, select
        from harness.summary import failing, unevaluated

        if suite not in cases.SUITES:
            raise ValueError(f"unknown suite {suite!r}; known: {', '.join(cases.SUITES)}")
        selected = select(cases.build_suite(suite, seed), list(losses or ()), list(dtypes or ()),
                          list(families or ()))
        if not selected:
            raise ValueError(f"no case of suite {suite!r} matches losses={losses} dtypes={dtypes} "
                             f"families={families}")
        try:  # the configuration the CLI reads, through the same path (harness.config)
            config = load_config().with_flags(device=device, strict_dtype=strict_dtype)
            known = config.known_failure_set()
        except ConfigError as exc:
            pytest.fail(f"losscheck: {exc}", pytrace=False)
        device = config.run_device()
        label, in_process = _backend(backend, device)
        runner = Runner(jobs=config.run_jobs(jobs), timeout=config.run_timeout(timeout), tolerances=config.tolerances,
                        known_failures=known, strict=strict, grad=grad, device=device,
                        strict_dtype=config.strict_dtype if strict_dtype is None else bool(strict_dtype))
        results = self.workdir / f"losscheck-{_safe(label)}-{suite}.jsonl"
        result = runner.run(selected, [label], results, suite=suite, seed=seed, overwrite=True,
                            in_process={label: in_process} if in_process is not None else None)
        self.last = result
        bad = failing(result.records, strict)
        if bad:
            pytest.fail(failure_text(bad, len(result.records), label, suite), pytrace=False)
        empty = [] if allow_unsupported else unevaluated(result.records, list(losses or ()))
        if empty:
            what = "; ".join(f"{loss}: none of {n} checks" for _, loss, n in empty)
            pytest.fail(f"losscheck: {label} evaluated nothing of a loss it was asked to check ({what}); "
                        "pass allow_unsupported=True to accept that", pytrace=False)
        return result


def _safe(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)[:60]


def _backend(backend: Any, device: str = "cpu") -> tuple[str, Any]:
    """(label, in-process backend or None): spec strings go to worker processes."""
    from harness.backends import BackendLoadError

    if isinstance(backend, str):
        from harness.pool import check_loadable

        # fail here, in the test, with the backend's own message; tried in a worker process, so
        # what the backend does on import never reaches the test session
        errors = check_loadable([backend], timeout=120.0, device=device)
        if errors:
            pytest.fail(f"losscheck: {errors[backend]}", pytrace=False)
        return backend, None
    from harness.backends import from_object

    label = getattr(backend, "__name__", None) or type(backend).__name__
    try:
        return label, from_object(label, backend, device)
    except BackendLoadError as exc:
        pytest.fail(f"losscheck: {exc}", pytrace=False)


def failure_text(bad: list[dict], total: int, label: str, suite: str, rows: int = 12) -> str:
    """The failure message: a table of the worst elements, then the worst case's repro snippet."""
    from harness.summary import _severity, fmt, number

    bad = sorted(bad, key=_severity)
    head = ("loss", "family", "dtype", "check", "case", "index", "exact", "observed", "ulp", "message")
    table = [head]
    for rec in bad[:rows]:
        worst = rec.get("worst") or {}
        table.append((str(rec.get("loss")), str(rec.get("family")), str(rec.get("dtype")),
                      str(rec.get("check")), str(rec.get("case_id")), str(worst.get("index", "-")),
                      str(worst.get("exact", "-"))[:24],
                      str(worst.get("observed", "-"))[:24], fmt(number(worst.get("ulp", rec.get("max_ulp")))),
                      " ".join(str(rec.get("message") or rec.get("status")).split())[:80]))
    widths = [max(len(r[i]) for r in table) for i in range(len(head) - 1)]
    lines = [f"losscheck: {len(bad)} of {total} checks fail for backend {label!r} on suite {suite!r}",
             "worst elements:"]
    for r in table:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if len(bad) > rows:
        lines.append(f"  ... and {len(bad) - rows} more")
    repro = next((r.get("repro") for r in bad if r.get("repro")), None)
    if repro:
        lines += ["", f"repro of the worst case ({bad[0].get('case_id')}):", repro]
    return "\n".join(lines)


@pytest.fixture
def losscheck(tmp_path: Path) -> LossCheck:
    """Check a loss implementation against the exact oracle: ``losscheck.check(backend, suite=...)``."""
    return LossCheck(tmp_path)
