"""``losscheck``: the command line (gate, run, suites, show, report, compare).

Exit codes: 0 passed (or ``run`` finished), 1 a check failed (``gate``), 2 bad usage (one line on
stderr, no traceback), 130 interrupted (what was written is kept).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from harness.config import DEFAULT_TIMEOUT

PROG = "losscheck"
DEFAULT_RESULTS = "losscheck-results.jsonl"


class UsageError(Exception):
    """Bad usage: reported as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", action="append", default=[], metavar="SPEC",
                   help="torch, numpy, numpy-naive, jax, an entry point or pkg.mod[:attr] "
                        "(repeatable; default torch)")
    p.add_argument("--suite", default="gate", help="case suite (default gate; see `losscheck suites`)")
    p.add_argument("--seed", type=int, default=0, help="suite seed (default 0)")
    p.add_argument("--loss", action="append", default=[], metavar="NAME", help="only this loss (repeatable)")
    p.add_argument("--dtype", action="append", default=[], metavar="D", help="only this dtype (repeatable)")
    p.add_argument("--family", action="append", default=[], metavar="GLOB",
                   help="only families matching this glob (repeatable)")
    p.add_argument("--results", default=DEFAULT_RESULTS, metavar="PATH",
                   help=f"JSONL results file (default {DEFAULT_RESULTS})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --results, skipping finished checks (the run's settings must match)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --results file (without it, or --resume, an existing one is refused)")
    p.add_argument("--report", metavar="DIR", help="render the HTML/Markdown/JUnit report here after the run")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--allow-unsupported", action="store_true",
                   help="pass a backend that evaluated none of a loss's checks (all unsupported or erroring)")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help=f"per-case seconds (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--known-failures", metavar="PATH", help="known-failures file (TOML or JSON)")
    p.add_argument("--tol", action="append", default=[], metavar="DTYPE.KEY=V",
                   help="tolerance override, e.g. float16.ulp=2 (repeatable)")
    p.add_argument("--no-grad", action="store_true", help="check values only, not input gradients")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG,
                     description="Numerical verification of loss functions against an exact oracle.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    gate = sub.add_parser("gate", help="run a suite; exit 1 if any check fails")
    _add_run_options(gate)
    run = sub.add_parser("run", help="run a suite and write results; exit 0 whatever the verdicts")
    _add_run_options(run)
    sub.add_parser("suites", help="list the case suites and their sizes")
    show = sub.add_parser("show", help="one case: exact vs observed values and a repro snippet")
    show.add_argument("case_id")
    show.add_argument("--backend", default="torch", metavar="SPEC")
    show.add_argument("--no-grad", action="store_true")
    show.add_argument("--seed", type=int, default=0, help="the seed the case's suite was built with")
    show.add_argument("--cases", metavar="FILE", help="look the id up in a saved case file instead")
    report = sub.add_parser("report", help="render a results file as HTML/Markdown/JSON/JUnit")
    report.add_argument("results")
    report.add_argument("--out", required=True, metavar="DIR")
    compare = sub.add_parser("compare", help="precision-regression diff of two results files")
    compare.add_argument("base")
    compare.add_argument("new")
    compare.add_argument("--gate", action="store_true", help="exit 1 on a regression")
    compare.add_argument("--factor", type=float, default=2.0, help="error growth that counts as a regression")
    compare.add_argument("--out", metavar="DIR")
    compare.add_argument("--allow-missing", action="store_true",
                         help="checks of BASE missing from NEW are not a regression")
    return parser


# ---------------------------------------------------------------------------------------------------

def _config(args: argparse.Namespace) -> Any:
    from harness.config import ConfigError, load_config, parse_tolerance_flag

    try:
        flags = dict(parse_tolerance_flag(t) for t in args.tol)
        return load_config().with_flags(tolerances=flags, known_failures=args.known_failures,
                                        jobs=args.jobs, timeout=args.timeout)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _known_failures(config: Any) -> Any:
    from harness.config import ConfigError

    try:
        return config.known_failure_set()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _load_backends(specs: Sequence[str], timeout: float = 120.0) -> None:
    """Try every backend up front, so an unknown one is bad usage rather than a run of errors; in
    worker processes, so that what a backend does on import (patching torch, FPU flags) never
    reaches this process."""
    from harness.pool import check_loadable

    errors = check_loadable(list(specs), timeout=max(timeout, 60.0))
    if errors:
        raise UsageError(next(iter(errors.values())))


def _suite(name: str, seed: int) -> list:
    import cases

    if name not in cases.SUITES:
        raise UsageError(f"unknown suite {name!r}; known: {', '.join(cases.SUITES)}")
    return cases.build_suite(name, seed)


def _validate_filters(args: argparse.Namespace) -> None:
    from reference.registry import DTYPES, LOSSES

    for loss in args.loss:
        if loss not in LOSSES:
            raise UsageError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    for dtype in args.dtype:
        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")


def cmd_run(args: argparse.Namespace, gate: bool) -> int:
    from harness.runner import RunError, Runner, select
    from harness.summary import gate_fails, print_summary

    specs = list(dict.fromkeys(args.backend or ["torch"]))
    config = _config(args)
    known = _known_failures(config)
    _validate_filters(args)
    suite = _suite(args.suite, args.seed)
    _load_backends(specs)
    selected = select(suite, args.loss, args.dtype, args.family)
    if not selected:
        raise UsageError(f"no case of suite {args.suite!r} matches the --loss/--dtype/--family filters")
    runner = Runner(jobs=config.run_jobs(), timeout=config.run_timeout(),
                    tolerances=config.tolerances, known_failures=known, strict=args.strict,
                    grad=not args.no_grad, progress=sys.stderr.isatty())
    try:
        result = runner.run(selected, specs, args.results, suite=args.suite, seed=args.seed,
                            resume=args.resume, overwrite=args.overwrite)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    print_summary(result.records, strict=args.strict, stats=result.stats,
                  allow_unsupported=args.allow_unsupported)
    if known is not None:
        for entry in known.unmatched():
            print(f"{PROG}: warning: known failure {entry.match!r} matched no failing check", file=sys.stderr)
    print(f"results: {args.results}")
    if args.report:
        _render(args.results, args.report)
    if gate and gate_fails(result.records, args.strict, args.allow_unsupported):
        return 1
    return 0


def _render(results: str, out: str) -> None:
    import reports

    try:
        written = reports.render(results, out)
    except (ValueError, OSError) as exc:  # ResultsError is a ValueError
        raise UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    for kind, path in (written or {}).items():
        print(f"report {kind}: {path}")


def cmd_suites(args: argparse.Namespace) -> int:
    import cases

    for name, description in cases.SUITES.items():
        print(f"{name:6} {len(cases.build_suite(name, 0)):6d} cases  {description}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import cases
    from harness.backends import load
    from harness.cache import OracleCache
    from harness.config import ConfigError, load_config
    from harness.task import checks_for, evaluate_task

    try:
        tolerances = load_config().tolerances
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    _load_backends([args.backend])
    try:
        if args.cases:
            case = next((c for c in cases.load(args.cases) if c.id == args.case_id), None)
        else:
            case = cases.find(args.case_id, seed=args.seed)
    except (LookupError, ValueError, OSError) as exc:
        raise UsageError(str(exc).strip("'\"").splitlines()[0]) from None
    if case is None:
        where = args.cases or f"the known suites (seed {args.seed})"
        raise UsageError(f"no case with id {args.case_id!r} in {where}")
    print(describe_case(case))
    cache = OracleCache()
    checks = checks_for(case, not args.no_grad)
    exacts = {}
    for check in checks:  # the oracle first: nothing the backend does on import can reach it
        try:
            exacts[check] = cache.get(case, check)
        except Exception:  # noqa: BLE001, S112 - evaluate_task records the oracle's error below
            continue
    backend = load(args.backend)
    records, _ = evaluate_task(backend, args.backend, case, checks, cache, tolerances)
    try:
        observation = backend.evaluate(case)
    except Exception:  # noqa: BLE001 - already recorded in the records above
        observation = None
    for rec in records:
        check = rec["check"]
        print(f"\n== {check}: {rec.get('verdict')} [{rec.get('status')}] {rec.get('message', '')}")
        observed = None
        if observation is not None:
            observed = observation.observed(check)
        if rec.get("status") == "ok" and observed is not None:
            print(worst_elements(exacts.get(check) or cache.get(case, check), observed))
        from harness.repro import snippet

        print(f"-- repro ({args.backend}, {check}):")
        print(rec.get("repro") or snippet(case, args.backend, check))
    return 0


def describe_case(case: Any) -> str:
    """The case in a few lines: loss, family, arrays (in full when small), options, meta."""
    import numpy as np

    from reference.registry import get

    names = [a.name for a in get(case.loss).positional]
    lines = [f"case {case.id}: {case.loss} family={case.family} options={case.options} dtype={case.dtype}"]
    arrays = list(zip(names, case.args, strict=True))
    arrays += [(k, v) for k, v in sorted(case.kwargs.items()) if isinstance(v, np.ndarray)]
    if case.grad_output is not None:
        arrays.append(("grad_output", case.grad_output))
    with np.printoptions(threshold=64, precision=9, linewidth=100):
        for name, a in arrays:
            lines.append(f"  {name}: {a.dtype}{list(a.shape)} = {a}")
    scalars = {k: v for k, v in case.kwargs.items() if not isinstance(v, np.ndarray)}
    if scalars:
        lines.append(f"  options: {scalars}")
    if case.meta:
        lines.append(f"  meta: {case.meta}")
    return "\n".join(lines)


def worst_elements(exact: Any, observed: Any, k: int = 8) -> str:
    """The k elements with the largest ulp error: index, exact, correctly rounded, observed, ulp."""
    import mpmath
    import numpy as np

    from harness.metrics import figures

    ulp = figures(exact, observed)["ulp"].reshape(-1)
    order = np.argsort(-np.nan_to_num(ulp, nan=-1.0), kind="stable")[:k]
    values = np.asarray(exact.values, dtype=object).reshape(-1)
    rounded = np.asarray(exact.rounded).reshape(-1)
    obs = np.asarray(observed).reshape(-1)
    shape = np.shape(exact.rounded)
    rows = [f"  {'index':<14} {'exact':>26} {'rounded':>24} {'observed':>24} {'ulp':>9}"]
    for flat in order:
        idx = list(np.unravel_index(int(flat), shape)) if shape else []
        rows.append(f"  {[int(i) for i in idx]!s:<14} {mpmath.nstr(values[flat], 17):>26} "
                    f"{float(rounded[flat])!r:>24} {float(obs[flat])!r:>24} {float(ulp[flat]):>9.3g}")
    return "\n".join(rows)


def cmd_report(args: argparse.Namespace) -> int:
    _render(args.results, args.out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import reports

    try:
        outcome = reports.compare(args.base, args.new, out_dir=args.out, factor=args.factor, gate=args.gate,
                                  allow_missing=args.allow_missing)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    print(outcome.markdown)
    return int(outcome.exit_code)


COMMANDS = {"gate": lambda a: cmd_run(a, gate=True), "run": lambda a: cmd_run(a, gate=False),
            "suites": cmd_suites, "show": cmd_show, "report": cmd_report, "compare": cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``losscheck`` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        warnings.formatwarning = _one_line_warning
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; results written so far are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def _one_line_warning(message: Any, category: type, filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"{PROG}: warning: {message}\n"


if __name__ == "__main__":
    sys.exit(main())
