"""``losscheck``: the command line (gate, run, suites, families, show, report, compare, sweep).

Exit codes: 0 passed (or ``run`` finished), 1 a check failed (``gate``), 2 bad usage (one line on
stderr, no traceback), 130 interrupted (what was written is kept).

Default outputs live under ``.losscheck/`` in the working directory (``results.jsonl``; the run
before it is kept as ``results.previous.jsonl``); the directory ignores itself in git.
"""
from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.config import DEFAULT_TIMEOUT

PROG = "losscheck"
STATE_DIR = ".losscheck"
DEFAULT_RESULTS = f"{STATE_DIR}/results.jsonl"
PREVIOUS_RESULTS = f"{STATE_DIR}/results.previous.jsonl"
DEFAULT_SUITE = "gate"

#: what ``--dtype`` also accepts (case-insensitive), and the dtype each names
DTYPE_ALIASES = {"fp16": "float16", "half": "float16", "f16": "float16",
                 "bf16": "bfloat16",
                 "fp32": "float32", "f32": "float32", "float": "float32", "single": "float32",
                 "fp64": "float64", "f64": "float64", "double": "float64"}

#: the text NumPy gives its floating-point RuntimeWarnings ("overflow encountered in cast")
FP_WARNING = r"(overflow|underflow|invalid value|divide by zero) encountered"


class UsageError(Exception):
    """Bad usage: reported as one line, exit 2."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help says its default: ``(default: X)`` appended unless the text already
    states it; flags say ``(default: off)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.nargs == 0:  # store_true and friends
            return f"{text} (default: {'on' if action.default else 'off'})"
        if action.default is None or action.default == []:
            return text  # the help text must say what happens without the option
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def dtype_name(text: str) -> str:
    """``--dtype``'s value: a dtype name or an alias of one (fp16, half, bf16, f32, double, ...)."""
    key = text.strip().lower()
    return DTYPE_ALIASES.get(key, key)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("losscheck")
    except metadata.PackageNotFoundError:
        return "(version unknown: the package is not installed)"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", action="append", default=[], metavar="SPEC",
                   help="torch, numpy, numpy-naive, jax, inductor, liger, cce, cce-compile, mlx, keras, "
                        "tensorflow, tinygrad, paddle, scipy, an entry point, or pkg.mod (a module or object "
                        "whose attributes are the loss functions, like torch.nn.functional) or "
                        "pkg.mod:attr; repeatable (default: torch)")
    p.add_argument("--suite", default=DEFAULT_SUITE, help="case suite (see `losscheck suites`)")
    p.add_argument("--seed", type=int, default=0, help="suite seed")
    p.add_argument("--loss", action="append", default=[], metavar="NAME",
                   help="only this loss; repeatable (default: every loss)")
    p.add_argument("--dtype", action="append", default=[], metavar="D", type=dtype_name,
                   help="only this dtype: float16 (fp16, half), bfloat16 (bf16), float32 (fp32, f32, "
                        "float), float64 (fp64, f64, double); repeatable (default: every dtype)")
    p.add_argument("--family", action="append", default=[], metavar="GLOB",
                   help="only case families matching this glob, e.g. 'ce.*'; repeatable (default: "
                        "every family; `losscheck families` lists them)")
    p.add_argument("--results", metavar="PATH",
                   help=f"JSONL results file (default: {DEFAULT_RESULTS}, whose earlier run is moved to "
                        f"{PREVIOUS_RESULTS}; a PATH you name is never replaced without --resume or "
                        "--overwrite)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --results, skipping finished checks (the run's settings must match)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --results file (without it, or --resume, a named one is refused)")
    p.add_argument("--report", metavar="DIR",
                   help="render the HTML/Markdown/JUnit report here after the run (default: no report)")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument("--allow-unsupported", action="store_true",
                   help="pass a backend that evaluated none of a loss's checks (all unsupported or erroring)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="worker processes (default: [tool.losscheck] jobs, else every core)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help=f"seconds per case (default: [tool.losscheck] timeout, else {DEFAULT_TIMEOUT:g})")
    p.add_argument("--known-failures", metavar="PATH",
                   help="known-failures file (TOML or JSON), added to torch's shipped ones (default: "
                        "[tool.losscheck] known_failures, else none)")
    p.add_argument("--tol", action="append", default=[], metavar="DTYPE.KEY=V",
                   help="tolerance override, e.g. float16.ulp=2; repeatable (default: "
                        "[tool.losscheck.tolerances], else harness/tolerances.py)")
    p.add_argument("--no-grad", action="store_true", help="check values only, not gradients")
    _add_device_option(p)
    p.add_argument("--strict-dtype", action="store_true",
                   help="an output returned in another floating dtype than the input's (float32 for float16) "
                        "fails as bad output, instead of being judged in the dtype returned (default: "
                        "[tool.losscheck] strict_dtype, else off)")
    p.add_argument("--summation", choices=("pairwise", "recursive"),
                   help="the sums' declared order: an error within the one-after-another bound but beyond "
                        "the pairwise one warns (pairwise) or is stable (recursive); docs/verdicts.md "
                        "(default: [tool.losscheck] summation, else pairwise)")


def device_arg(text: str) -> str:
    """``--device``'s value, checked for spelling here (whether torch can use it is checked when
    the backends are tried, before any work)."""
    from harness.backends.device import DeviceError, device_name

    try:
        return device_name(text)
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_device_option(p: argparse.ArgumentParser, default_text: str = "[tool.losscheck] device, else cpu") -> None:
    p.add_argument("--device", type=device_arg, metavar="DEVICE",
                   help="torch device for the torch-tensor backends (torch and drop-ins): cpu, cuda, cuda:N, "
                        f"mps, xpu; numpy, numpy-naive, jax and the other non-torch libraries ignore it "
                        f"(default: {default_text})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG,
                     description="Numerical verification of loss functions against an exact oracle.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    gate = sub.add_parser("gate", help="run a suite; exit 1 if any check fails",
                          description="Run a suite for each backend; exit 0 pass, 1 fail, 2 bad usage.")
    _add_run_options(gate)
    run = sub.add_parser("run", help="run a suite and write results; exit 0 whatever the verdicts",
                         description="Run a suite and write results; exit 0 whatever the verdicts.")
    _add_run_options(run)
    sub.add_parser("suites", help="list the case suites and their sizes",
                   description="List the case suites and their sizes.")
    families = sub.add_parser("families", help="list the case families with one-line descriptions",
                              description="List the case families of the gate and full suites: loss, "
                                          "cases per suite (seed 0), what the family draws.")
    families.add_argument("loss", nargs="?", help="only this loss's families (default: every loss)")
    show = sub.add_parser("show", help="one case: exact vs observed values and a repro snippet",
                          description="One case: its arrays, exact vs observed worst elements per check, "
                                      "and a copy-paste repro snippet.  With --results, the backend, "
                                      "suite and seed come from that run's records of the case.")
    show.add_argument("case_id", metavar="CASE_ID",
                      help="the case's id, or a prefix of it that only one case has")
    show.add_argument("--backend", metavar="SPEC",
                      help="the backend to evaluate (default: the failing backend(s) of the case in "
                           "--results, else torch)")
    show.add_argument("--results", metavar="FILE",
                      help="take backend, suite and seed from this results file's records of the case "
                           f"(default: {DEFAULT_RESULTS} when it holds the case)")
    show.add_argument("--suite", metavar="NAME",
                      help="look the id up in this suite only (default: the suite of --results, "
                           "else smoke, gate and full)")
    show.add_argument("--seed", type=int, metavar="N",
                      help="the seed the case's suite was built with (default: that of --results, else 0)")
    show.add_argument("--no-grad", action="store_true", help="show the value check only, not gradients")
    show.add_argument("--cases", metavar="FILE",
                      help="look the id up in a saved case file instead (default: the suites)")
    _add_device_option(show, "that of --results, else [tool.losscheck] device, else cpu")
    report = sub.add_parser("report", help="render a results file as HTML/Markdown/JSON/JUnit",
                            description="Render a results file as HTML, Markdown, JSON and JUnit.")
    report.add_argument("results", metavar="RESULTS", help="a results file (JSONL) of `losscheck run/gate`")
    report.add_argument("--out", required=True, metavar="DIR", help="output directory (required)")
    compare = sub.add_parser("compare", help="precision-regression diff of two results files",
                             description="Precision-regression diff of two results files of one suite, "
                                         "seed and backend set.")
    compare.add_argument("base", metavar="BASE", help="the results file to compare against")
    compare.add_argument("new", metavar="NEW", help="the results file being judged")
    compare.add_argument("--gate", action="store_true", help="exit 1 on a regression")
    compare.add_argument("--factor", type=float, default=2.0, help="error growth that counts as a regression")
    compare.add_argument("--out", metavar="DIR", help="also write the diff here (default: print it only)")
    compare.add_argument("--allow-missing", action="store_true",
                         help="checks of BASE missing from NEW are not a regression")
    _add_sweep_parser(sub)
    return parser


def _add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser("sweep", help="check every value of a format against the oracle (exhaustive)",
                           description="Check a backend on every value of the input format (NaN payloads "
                                       "collapsed; +-0, subnormals, +-inf included) times the loss's declared "
                                       "grid for its other arguments, values and gradients, in resumable chunks "
                                       "(docs/sweeps.md).")
    sweep.add_argument("loss", metavar="LOSS", help="a loss that declares a sweep (binary_cross_entropy_with_logits, "
                                                    "binary_cross_entropy, l1_loss, mse_loss, ..., cross_entropy: "
                                                    "every pair of two-class logits)")
    sweep.add_argument("--dtype", required=True, type=dtype_name, metavar="D",
                       help="the input format: float16, bfloat16, float32 (required)")
    sweep.add_argument("--exhaustive", action="store_true",
                       help="every value of the format (required: the one kind of sweep there is)")
    sweep.add_argument("--backend", action="append", default=[], metavar="SPEC",
                       help="backend spec as for `losscheck run`; repeatable, one sweep directory each "
                            "(default: torch)")
    sweep.add_argument("--grid", action="append", default=[], metavar="ARG=V,V,...",
                       help="replace a declared grid axis, e.g. target=0,1,min_subnormal,1-ulp (none: not "
                            "passed; names: min_subnormal, min_normal, 1-ulp, 1+ulp, max); repeatable "
                            "(default: the loss's declared grid)")
    sweep.add_argument("--target-grid", metavar="V,V,...", help="the same as --grid target=V,V,... (default: the declared targets)")
    sweep.add_argument("--out", metavar="DIR",
                       help=f"the sweep directory (default: {STATE_DIR}/sweeps/LOSS-DTYPE-BACKEND)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue the sweep in --out, skipping finished chunks (its manifest must match)")
    sweep.add_argument("--overwrite", action="store_true", help="replace an existing sweep in --out (default: refused)")
    sweep.add_argument("--chunks", metavar="A:B",
                       help="only chunks A to B-1 (a slice for one machine of many; default: every chunk)")
    sweep.add_argument("--chunk-size", type=int, default=4096, metavar="N", help="points per chunk")
    sweep.add_argument("--jobs", type=int, metavar="N",
                       help="worker processes, or Dask workers with --scheduler local (default: "
                            "[tool.losscheck] jobs, else every core; at least 2)")
    sweep.add_argument("--scheduler", metavar="ADDR",
                       help="run on Dask distributed: 'local' (a LocalCluster of --jobs worker processes) or "
                            "a scheduler address such as tcp://host:8786 (default: the process pool)")
    sweep.add_argument("--no-grad", action="store_true", help="values only, not gradients")
    sweep.add_argument("--report", metavar="DIR", help="also write the domain report (HTML) here (default: the text summary only)")
    _add_device_option(sweep)


def _grid_args(args: argparse.Namespace) -> dict[str, list]:
    """--grid ARG=V,V and --target-grid V,V -> {axis: [values]} (numbers, None, or point names)."""
    items = list(args.grid) + ([f"target={args.target_grid}"] if args.target_grid else [])
    out: dict[str, list] = {}
    for item in items:
        name, eq, text = item.partition("=")
        if not eq or not name.strip():
            raise UsageError(f"--grid {item!r}: expected ARG=V,V,... (e.g. target=0,1,0.5)")
        values: list = []
        for v in text.split(","):
            v = v.strip()
            if v.lower() == "none":
                values.append(None)
                continue
            try:
                values.append(int(v) if v.lstrip("-").isdigit() else float(v))
            except ValueError:
                values.append(v)  # a named point; the sweep says so if it is unknown
        out[name.strip()] = values
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    import re

    from harness.config import ConfigError, load_config
    from harness.sweep import SweepError, SweepSpec, run_sweep
    from reports.sweep import SweepDataError, render_sweep, text_summary

    if not args.exhaustive:
        raise UsageError("sweep: pass --exhaustive (every value of the format: the one kind of sweep there is)")
    try:
        config = load_config().with_flags(jobs=args.jobs, device=args.device)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    specs = list(dict.fromkeys(args.backend or ["torch"]))
    if args.out and len(specs) > 1:
        raise UsageError("--out names one sweep directory: pass one --backend with it")
    device = config.run_device()
    if args.scheduler is not None and args.scheduler != "local" and not re.fullmatch(r"[a-z]+://\S+", args.scheduler):
        raise UsageError(f"--scheduler {args.scheduler!r}: expected 'local' or a scheduler address such as "
                         "tcp://host:8786")
    grid = _grid_args(args)
    sweeps = []
    try:
        for spec in specs:
            sweeps.append(SweepSpec.declared(args.loss, args.dtype, spec, chunk_size=args.chunk_size, grid=grid,
                                             grad=not args.no_grad, device=device, tolerances=config.tolerances))
    except SweepError as exc:
        raise UsageError(str(exc)) from None
    _load_backends(specs, device=device)
    for sw in sweeps:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", sw.backend)
        root = Path(args.out) if args.out else _state_dir() / "sweeps" / f"{sw.loss}-{sw.dtype}-{safe}"
        try:
            from harness.sweep import parse_chunks

            parse_chunks(args.chunks, sw.nchunks)  # bad usage before any work
            result = run_sweep(sw, root, resume=args.resume, overwrite=args.overwrite,
                               jobs=max(2, config.run_jobs()), scheduler=args.scheduler, chunks=args.chunks,
                               progress=True)
        except SweepError as exc:
            raise UsageError(str(exc)) from None
        print(f"sweep {sw.loss} {sw.dtype} {sw.backend}: {result.done} chunks computed, {result.skipped} "
              f"resumed, {result.wall:.1f} s; {root}")
        try:
            print(text_summary(root))
            if args.report:
                print(f"report: {render_sweep(root, args.report)}")
        except SweepDataError as exc:
            raise UsageError(str(exc)) from None
        if result.complete:
            print(f"summary (results format): {root / 'summary.jsonl'}")
        else:
            print(f"partial sweep: {len(result.wanted)} of {sw.nchunks} chunks asked for; the summary is "
                  "written once every chunk is there")
    return 0


# ---------------------------------------------------------------------------------------------------

def _config(args: argparse.Namespace) -> Any:
    from harness.config import ConfigError, load_config, parse_tolerance_flag

    try:
        flags = dict(parse_tolerance_flag(t) for t in args.tol)
        return load_config().with_flags(tolerances=flags, known_failures=args.known_failures,
                                        jobs=args.jobs, timeout=args.timeout, device=args.device,
                                        strict_dtype=args.strict_dtype,
                                        summation=getattr(args, "summation", None))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _known_failures(config: Any) -> Any:
    from harness.config import ConfigError

    try:
        return config.known_failure_set()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def probe_backend(spec: str, device: str = "cpu") -> Any:
    """``harness.backends.load`` with a clearer answer for a spec naming a plain function
    (``pkg.mod:cross_entropy``, ``pkg.mod.cross_entropy``): the loader wants the module or object
    whose attributes are the loss functions.  Runs in the probe worker (top level: workers import
    it by name), so the user's module is never imported in the CLI's process."""
    from harness.backends import BackendLoadError, load

    try:
        return load(spec, device)
    except BackendLoadError as exc:
        if "provides none of" in str(exc) or "cannot import module" in str(exc):
            better = _function_spec_error(spec)
            if better:
                raise BackendLoadError(better) from None
        raise


def _function_spec_error(spec: str) -> str | None:
    """The error for a spec whose object is a function, or None when it is not one."""
    import functools
    import importlib
    import inspect

    from harness.backends import loading
    from reference.registry import LOSSES

    spec = spec.strip()
    module_name, colon, attr = spec.partition(":")
    try:
        ep = loading.entry_points().get(spec)
        if ep is not None:
            obj = ep.load()
        elif colon:
            obj = loading._import_object(spec)
        else:  # pkg.mod.function: the loader took it all for a module name
            parent, _, last = spec.rpartition(".")
            obj = getattr(importlib.import_module(parent), last) if parent else None
    except Exception:  # noqa: BLE001 - the loader's own error stands
        return None
    if not (inspect.isroutine(obj) or isinstance(obj, functools.partial)):
        return None
    name = getattr(obj, "__name__", "")
    if ep is not None:
        where = f"entry point {spec!r} names a function ({ep.value})"
        fix = "point the entry point at the module or object whose attributes are the loss functions"
    else:
        where = f"{spec!r} names a function, not a backend"
        if colon:
            head, _, _ = attr.rpartition(".")
            parent = f"{module_name}:{head}" if head else module_name
        else:
            parent = spec.rpartition(".")[0]
        fix = f"pass the module (or object) that holds the loss functions: --backend {parent}"
        if name in LOSSES:
            fix += f" --loss {name}"
    return (f"backend {where}; {fix} (losscheck calls the functions named like torch.nn.functional's "
            f"on it: {', '.join(LOSSES[:3])}, ...)")


def _load_backends(specs: Sequence[str], timeout: float = 120.0, device: str = "cpu") -> None:
    """Try every backend up front on ``device``, so an unknown one (or a device torch cannot use
    here) is bad usage rather than a run of errors; in worker processes, so that what a backend
    does on import (patching torch, FPU flags) never reaches this process.  A backend that does not
    run on torch devices is said once on stderr."""
    from harness.pool import check_loadable

    notes: dict[str, str] = {}
    errors = check_loadable(list(specs), timeout=max(timeout, 60.0), loader=probe_backend, device=device,
                            notes=notes)
    if errors:
        raise UsageError(next(iter(errors.values())))
    for note in notes.values():
        print(f"{PROG}: note: {note}", file=sys.stderr)


def oracle_quietly(case: Any, check: str, out_dtype: str | None = None) -> Any:
    """The oracle (``harness.cache.compute``) with NumPy's floating-point RuntimeWarnings silenced:
    the oracle meets overflow, NaN and inf on purpose (extreme cases) and handles them, so "overflow
    encountered in cast" is noise, never news for whoever runs the CLI.  Passed to the Runner, it
    runs in the oracle's worker processes (whose stderr is the terminal's), and in ``show``."""
    import numpy as np

    from harness import cache

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FP_WARNING, category=RuntimeWarning)
        with np.errstate(all="ignore"):
            return cache.compute(case, check) if out_dtype is None else cache.compute(case, check, out_dtype)


def _silence_oracle_warnings() -> None:
    """In this process: the oracle's (reference/*) NumPy floating-point warnings are not shown."""
    warnings.filterwarnings("ignore", message=FP_WARNING, category=RuntimeWarning, module=r"reference(\.|$)")


def _suggest(word: str, names: Iterable[str], n: int = 3) -> str:
    """`` (did you mean a, b?)`` for the names close to ``word`` (difflib, or containing it)."""
    names = list(dict.fromkeys(names))
    core = word.strip("*?[]").lower()
    close = difflib.get_close_matches(word, names, n=n, cutoff=0.6)
    if core:
        close += [x for x in names if core in x.lower() and x not in close]
    close = close[:n]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _suite(name: str, seed: int) -> list:
    import cases

    if name not in cases.SUITES:
        raise UsageError(f"unknown suite {name!r}{_suggest(name, cases.SUITES)}; known: {', '.join(cases.SUITES)}")
    return cases.build_suite(name, seed)


def _validate_filters(args: argparse.Namespace) -> None:
    from reference.registry import DTYPES, LOSSES

    for loss in args.loss:
        if loss not in LOSSES:
            raise UsageError(f"unknown loss {loss!r}{_suggest(loss, LOSSES)}; known: {', '.join(LOSSES)}")
    for dtype in args.dtype:
        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}{_suggest(dtype, DTYPES)}; known: {', '.join(DTYPES)} "
                             "(or fp16, half, bf16, fp32, f32, float, fp64, f64, double)")


def _check_families(globs: Sequence[str], suite: Sequence[Any], suite_name: str) -> None:
    """A --family glob that matches no family of the suite is bad usage, with the close names."""
    from fnmatch import fnmatchcase

    names = list(dict.fromkeys(c.family for c in suite))
    for glob in globs:
        if not any(fnmatchcase(name, glob) for name in names):
            raise UsageError(f"--family {glob!r} matches no family, so no case of suite {suite_name!r} "
                             f"matches the --loss/--dtype/--family filters{_suggest(glob, names)}; "
                             "`losscheck families` lists them")


def _state_dir() -> Path:
    """``.losscheck/`` in the working directory, created with a .gitignore of its own (``*``) so
    that its outputs never end up in the user's commits."""
    path = Path(STATE_DIR)
    try:
        path.mkdir(exist_ok=True)
        ignore = path / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# created by losscheck: its default outputs\n*\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot create the directory for losscheck's outputs "
                         f"({exc.strerror or exc}); pass --results PATH") from None
    return path


def cmd_run(args: argparse.Namespace, gate: bool) -> int:
    from harness.results_file import holds_results
    from harness.runner import RunError, Runner, select
    from harness.summary import gate_fails, print_summary

    specs = list(dict.fromkeys(args.backend or ["torch"]))
    config = _config(args)
    known = _known_failures(config)
    _validate_filters(args)
    suite = _suite(args.suite, args.seed)
    _check_families(args.family, suite, args.suite)
    device = config.run_device()
    _load_backends(specs, device=device)
    selected = select(suite, args.loss, args.dtype, args.family)
    if not selected:
        raise UsageError(f"no case of suite {args.suite!r} matches the --loss/--dtype/--family filters")
    results, keep_previous, moved = args.results, None, False
    if results is None:  # the default path: the run before this one is kept, never refused
        _state_dir()
        results, keep_previous = DEFAULT_RESULTS, PREVIOUS_RESULTS
        moved = not (args.resume or args.overwrite) and holds_results(Path(results))
    runner = Runner(jobs=config.run_jobs(), timeout=config.run_timeout(),
                    tolerances=config.tolerances, known_failures=known, strict=args.strict,
                    grad=not args.no_grad, progress=True, oracle=oracle_quietly, device=device,
                    strict_dtype=config.strict_dtype)
    try:
        result = runner.run(selected, specs, results, suite=args.suite, seed=args.seed,
                            resume=args.resume, overwrite=args.overwrite, keep_previous=keep_previous)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    print_summary(result.records, strict=args.strict, stats=result.stats,
                  allow_unsupported=args.allow_unsupported, asked=args.loss,
                  hint=lambda r: show_command(str(r.get("case_id")), str(r.get("backend")), args.suite, args.seed,
                                              device))
    if known is not None:
        calibrated = args.suite in ("gate", "full") and not (args.loss or args.dtype or args.family)
        for entry in known.unmatched(builtin=calibrated):
            print(f"{PROG}: warning: known failure {entry.match!r} matched no failing check", file=sys.stderr)
    print(f"results: {results}" + (f" (the run before: {PREVIOUS_RESULTS})" if moved else ""))
    report = _render(results, args.report) if args.report else None
    for line in next_steps(result.records, strict=args.strict, suite=args.suite, seed=args.seed, report=report,
                           device=device):
        print(line)
    if gate and gate_fails(result.records, args.strict, args.allow_unsupported, asked=args.loss):
        return 1
    return 0


_VERDICT_ORDER = {"fail": 0, "error": 1, "warn": 2}


def _badness(rec: dict) -> tuple:
    """Sort key, worst first: verdict (fail, error, warn), then the largest max_ulp."""
    import math

    from harness.summary import number

    ulp = number(rec.get("max_ulp"))
    if ulp is None or math.isnan(ulp):
        ulp = -1.0
    return (_VERDICT_ORDER.get(str(rec.get("verdict")), 3), -ulp)


def show_command(case_id: str, backend: str, suite: str | None = DEFAULT_SUITE, seed: int | None = 0,
                 device: str | None = "cpu") -> str:
    """The ``losscheck show`` command line (shell-quoted) that reproduces one record's check."""
    import shlex

    argv = [PROG, "show", case_id, "--backend", backend]
    if suite and suite != DEFAULT_SUITE:
        argv += ["--suite", suite]
    if seed:
        argv += ["--seed", str(seed)]
    if device and device != "cpu":
        argv += ["--device", device]
    return shlex.join(argv)


def next_steps(records: Sequence[dict], *, strict: bool = False, suite: str | None = DEFAULT_SUITE,
               seed: int | None = 0, report: str | Path | None = None, device: str | None = "cpu") -> list[str]:
    """The block printed at the end of a run: the report to open, and for each backend that fails
    the gate, its worst failing check (by verdict, then max_ulp) as a ready-to-paste
    ``losscheck show`` command.  Empty when there is nothing to do."""
    from harness.backends.base import printable
    from harness.check import gate_failed
    from harness.summary import fmt, number

    worst: dict[str, dict] = {}
    for rec in records:
        if not gate_failed(rec, strict):
            continue
        backend = str(rec.get("backend"))
        if backend not in worst or _badness(rec) < _badness(worst[backend]):
            worst[backend] = rec
    lines = []
    if report is not None:
        lines.append(f"  open the report: {report}")
    for backend, rec in worst.items():
        what = (f"{rec.get('verdict')} {rec.get('loss')} {rec.get('family')} {rec.get('dtype')} "
                f"{rec.get('check')}, max_ulp={fmt(number(rec.get('max_ulp')))}")
        lines.append(printable(f"  worst failing check of {backend} ({what}):"))
        lines.append("    " + printable(show_command(str(rec.get("case_id")), backend, suite, seed, device)))
    return ["next steps:", *lines] if lines else []


def _render(results: str, out: str) -> Path:
    """Render the report; print what was written; return the page to open."""
    import reports

    try:
        written = reports.render(results, out)
    except (ValueError, OSError) as exc:  # ResultsError is a ValueError
        raise UsageError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    for kind, path in (written or {}).items():
        print(f"report {kind}: {path}")
    return Path((written or {}).get("index.html") or Path(out) / "index.html")


def cmd_suites(args: argparse.Namespace) -> int:
    import cases

    for name, description in cases.SUITES.items():
        print(f"{name:6} {len(cases.build_suite(name, 0)):6d} cases  {description}")
    return 0


def family_doc(family: Any) -> str:
    """A family's description in one line: its docstring's first paragraph (its first sentence may
    wrap onto a second source line), whitespace collapsed; the registered ``doc`` otherwise."""
    import inspect

    text = inspect.getdoc(getattr(family, "draw", None)) or ""
    paragraph = text.strip().split("\n\n")[0]
    return " ".join(paragraph.split()) or getattr(family, "doc", "") or ""


def cmd_families(args: argparse.Namespace) -> int:
    """The case families (registered by the loss definitions, reference/losses/*.py), with the
    number of cases each has in the gate and full suites (seed 0) and its docstring's first line."""
    from collections import Counter

    import cases
    from cases.families import FAMILIES
    from reference.registry import LOSSES

    if args.loss is not None and args.loss not in LOSSES:
        raise UsageError(f"unknown loss {args.loss!r}{_suggest(args.loss, LOSSES)}; known: {', '.join(LOSSES)}")
    suites = ("gate", "full")
    counts = {name: Counter(c.family for c in cases.build_suite(name, 0)) for name in suites}
    rows = [(f.name, f.loss, *(str(counts[s][f.name]) for s in suites), family_doc(f))
            for f in FAMILIES.values() if args.loss in (None, f.loss)]
    head = ("family", "loss", *suites, "description")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    for row in [head, *rows]:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0


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


def cmd_show(args: argparse.Namespace) -> int:
    from harness.show import cmd_show as show  # its own module (harness/show.py)

    return show(args)


COMMANDS = {"gate": lambda a: cmd_run(a, gate=True), "run": lambda a: cmd_run(a, gate=False),
            "suites": cmd_suites, "families": cmd_families, "show": cmd_show, "report": cmd_report,
            "compare": cmd_compare, "sweep": cmd_sweep}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``losscheck`` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
        warnings.formatwarning = _one_line_warning
        with warnings.catch_warnings():  # scoped: main() called in-process leaves no filter behind
            _silence_oracle_warnings()
            return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
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
