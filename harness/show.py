"""``losscheck show``: from a case id (or a prefix of one) to what the backend did, beside the
exact answer: the case's inputs, every check's verdict, the worst elements and a repro snippet.

Its own module so that the command line (harness/cli.py) stays the parser, the run and the exit
codes; the backend is loaded only after the oracle has answered (nothing it does can reach those
answers), and ``--results`` takes the backend, suite and seed from a run.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli import DEFAULT_RESULTS, UsageError, _load_backends, _suggest, oracle_quietly


def read_results(path: str | Path) -> tuple[dict, list[dict]]:
    """(first run header, result records) of a results file, through the one reader
    (reports.load_results: a torn last line skipped, anything else unreadable one line)."""
    from harness.backends.base import printable
    from reports import ResultsError, load_results

    try:
        res = load_results(path)
    except ResultsError as exc:
        raise UsageError(printable(str(exc).splitlines()[0] if str(exc) else "unreadable results file")) from None
    return res.runs[0], list(res.records.values())


def _ambiguous(prefix: str, candidates: Sequence[tuple[str, str]], count: int) -> str:
    """One line: the prefix, how many ids it matches, the first candidates with what they are."""
    from harness.backends.base import printable

    listed = "; ".join(f"{cid} {what}" for cid, what in candidates)
    more = f"; and {count - len(candidates)} more" if count > len(candidates) else ""
    return printable(f"case id {prefix!r} is ambiguous: {count} cases start with it ({listed}{more}); "
                     "give more of the id")


def _case_label(case: Any) -> str:
    return f"{case.loss} {case.family} {case.dtype}"


def _show_source(args: argparse.Namespace) -> dict:
    """Which case, backends, seed, suite and recorded verdicts ``show`` works with."""
    import cases
    from harness.backends.base import printable

    src: dict = {"path": None, "header": {}, "records": {}, "case_id": args.case_id}
    path, explicit = args.results, args.results is not None
    if path is None and Path(DEFAULT_RESULTS).is_file():
        path = DEFAULT_RESULTS
    if path is not None:
        try:
            header, records = read_results(path)
        except UsageError:
            if explicit:
                raise
            header, records = {}, []  # an unreadable default file is not what was asked about
        ids = cases.by_prefix(args.case_id, [r["case_id"] for r in records], key=lambda x: x)
        if len(ids) > 1:
            first = {}
            for r in records:
                first.setdefault(r["case_id"], f"{r.get('loss')} {r.get('family')} {r.get('dtype')}")
            raise UsageError(_ambiguous(args.case_id, [(i, first[i]) for i in ids[:10]], len(ids)))
        if ids:
            src.update(path=path, header=header, case_id=ids[0])
            for r in records:
                if r["case_id"] == ids[0]:
                    src["records"].setdefault(r["backend"], []).append(r)
        elif explicit:
            raise UsageError(printable(f"{path}: no record of a case whose id starts with {args.case_id!r}"))
    header = src["header"]
    seed = args.seed if args.seed is not None else header.get("seed", 0)
    src["seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    suite = args.suite or header.get("suite")
    if args.suite is not None and args.suite not in cases.SUITES:
        raise UsageError(f"unknown suite {args.suite!r}{_suggest(args.suite, cases.SUITES)}; known: "
                         f"{', '.join(cases.SUITES)}")
    src["suite"] = suite if suite in cases.SUITES else None
    return src


def _show_case(args: argparse.Namespace, src: dict) -> Any:
    """The case ``src['case_id']`` names (an id or a unique prefix): from --cases, else the suites."""
    import cases
    from harness.backends.base import printable

    wanted, seed = src["case_id"], src["seed"]
    try:
        if args.cases:
            found = cases.by_prefix(wanted, cases.load(args.cases))
            if len(found) > 1:
                raise UsageError(_ambiguous(wanted, [(c.id, _case_label(c)) for c in found[:10]], len(found)))
            if not found:
                raise UsageError(printable(f"no case with id {args.case_id!r} in {args.cases}"))
            return found[0]
        everywhere = tuple(cases.SUITES)
        suites = (src["suite"],) if src["suite"] else everywhere
        hit = cases.find_unique(wanted, suites, (seed,))
        if hit is None and args.suite is None and suites != everywhere:
            hit = cases.find_unique(wanted, everywhere, (seed,))
    except cases.AmbiguousId as exc:
        raise UsageError(_ambiguous(exc.prefix, [(c.id, _case_label(c)) for c in exc.candidates],
                                    exc.count)) from None
    except (LookupError, ValueError, OSError) as exc:
        raise UsageError(printable(str(exc).strip("'\"").splitlines()[0])) from None
    if hit is None:
        where = ", ".join(suites if args.suite else everywhere)
        raise UsageError(printable(f"no case with id {args.case_id!r} in the suites {where} (seed {seed}); "
                                   "a case of another seed needs --seed N, or --results FILE of its run"))
    return hit[0]


def _show_backends(args: argparse.Namespace, src: dict) -> list[str]:
    """--backend; else the recorded backends of the case that fail the gate (all recorded ones
    when none fails); else torch."""
    from harness.check import gate_failed

    if args.backend:
        return [args.backend]
    recorded = src["records"]
    if not recorded:
        return ["torch"]
    strict = bool(src["header"].get("strict"))
    failing = [b for b, recs in recorded.items() if any(gate_failed(r, strict) for r in recs)]
    return failing or list(recorded)


def _show_tolerances(src: dict) -> Any:
    """The tolerances the recorded run judged with (so verdicts agree with it), else the config's."""
    from harness.config import ConfigError, load_config
    from harness.tolerances import Tolerances

    recorded = src["header"].get("tolerances")
    if recorded:
        try:
            return Tolerances.from_dict(recorded)
        except Exception:  # noqa: BLE001, S110 - a header we cannot read: the configuration's
            pass
    try:
        return load_config().tolerances
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _show_device(args: argparse.Namespace, src: dict) -> tuple[str, bool]:
    """(device, strict_dtype): --device, else the recorded run's, else the configuration's; the
    recorded run's strict_dtype, else the configuration's, so that verdicts agree with the run."""
    from harness.backends.device import DeviceError, device_name
    from harness.config import ConfigError, load_config

    try:
        config = load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    header = src["header"]
    device = args.device
    if device is None and isinstance(header.get("device"), str):
        try:
            device = device_name(header["device"])
        except DeviceError:
            device = None
    strict_dtype = header.get("strict_dtype")
    if not isinstance(strict_dtype, bool):
        strict_dtype = config.strict_dtype
    return config.run_device(device), strict_dtype


def _evaluate(backend: Any, spec: str, case: Any, checks: list[str], cache: Any, tolerances: Any,
              strict_dtype: bool, oracle_errors: dict[str, str]) -> list[dict]:
    """The records of ``backend`` on ``case``, as a run makes them: ``cache`` is read-only (the
    backend is loaded here), so an answer settled in a format the backend returned instead of the
    input's is computed by an oracle worker process and the check evaluated again."""
    from harness.runner import Runner
    from harness.task import NEEDS_ORACLE, evaluate_task, status_record

    records, _ = evaluate_task(backend, spec, case, checks, cache, tolerances, strict_dtype=strict_dtype)
    needs = {r["check"]: r["needs_oracle"] for r in records if r.get("status") == NEEDS_ORACLE}
    if needs:
        failed = Runner(jobs=1, oracle=oracle_quietly).compute_oracle(
            [(case, check, fmt) for check, fmt in needs.items()])
        again, _ = evaluate_task(backend, spec, case, [c for c in needs if (case.id, c, needs[c]) not in failed],
                                 cache, tolerances, strict_dtype=strict_dtype)
        redone = {r["check"]: r for r in again}
        for check, fmt in needs.items():
            if (case.id, check, fmt) in failed:
                redone[check] = status_record(spec, case, check, *failed[(case.id, check, fmt)])
            elif redone[check].get("status") == NEEDS_ORACLE:
                redone[check] = status_record(spec, case, check, "error",
                                              f"returned {redone[check]['needs_oracle']} on a second evaluation, "
                                              f"{fmt} on the first: an output dtype that changes between calls")
        records = [redone.get(r["check"], r) for r in records]
    for rec in records:  # the oracle's own error, not the read-only cache's "missing"
        if rec.get("status") == "error" and rec["check"] in oracle_errors \
                and str(rec.get("message", "")).startswith("oracle:"):
            rec["message"] = f"oracle: {oracle_errors[rec['check']]}"
    return records


def cmd_show(args: argparse.Namespace) -> int:
    from harness.backends import load
    from harness.backends.base import one_line, printable
    from harness.cache import OracleCache
    from harness.repro import snippet
    from harness.summary import fmt, number
    from harness.task import checks_for
    from reference.fpu import oracle_state

    src = _show_source(args)
    tolerances = _show_tolerances(src)
    case = _show_case(args, src)
    backends = _show_backends(args, src)
    device, strict_dtype = _show_device(args, src)
    _load_backends(backends, device=device)
    print(describe_case(case))
    if src["path"] is not None:
        recorded = ", ".join(f"{b} ({'/'.join(sorted({str(r.get('verdict')) for r in recs}))})"
                             for b, recs in src["records"].items())
        print(printable(f"recorded in {src['path']} (suite {src['header'].get('suite')}, seed {src['seed']}): "
                        f"{recorded}"))
    cache = OracleCache(oracle=oracle_quietly)
    grad = not args.no_grad and src["header"].get("grad", True) is not False
    checks = checks_for(case, grad)
    exacts, oracle_errors = {}, {}
    for check in checks:  # the oracle first: nothing the backend does on import can reach it
        try:
            with oracle_state():
                exacts[check] = cache.get(case, check)
        except Exception as exc:  # noqa: BLE001 - recorded with the check below
            oracle_errors[check] = one_line(exc)
    read_only = cache.read_only()
    for spec in backends:
        recorded = {r.get("check"): r for r in src["records"].get(spec, [])}
        origin = f" (from {src['path']})" if spec in src["records"] and not args.backend else ""
        print()
        backend = load(spec, device)
        where = f" on {backend.device}" if getattr(backend, "device", "cpu") != "cpu" else ""
        print(printable(f"### backend {spec}{where}{origin}"))
        records = _evaluate(backend, spec, case, checks, read_only, tolerances, strict_dtype, oracle_errors)
        try:
            observation = backend.evaluate(case)
        except Exception:  # noqa: BLE001 - already recorded in the records above
            observation = None
        for rec in records:
            check = rec["check"]
            print()
            print(printable(f"== {check}: {rec.get('verdict')} [{rec.get('status')}] {rec.get('message', '')}"))
            if check in recorded:
                old = recorded[check]
                why = f": {old.get('xfail_reason')}" if old.get("xfail_reason") else ""
                print(printable(f"   recorded: {old.get('verdict')} max_ulp={fmt(number(old.get('max_ulp')))}{why}"))
            observed = observation.observed(check) if observation is not None else None
            exact = exacts.get(check)
            if rec.get("out_dtype") and rec.get("status") == "ok":  # judged in the dtype returned
                exact = read_only.load(case.id, check, rec["out_dtype"])
            if rec.get("status") == "ok" and observed is not None and exact is not None:
                with oracle_state():
                    print(worst_elements(exact, observed))
            print(f"-- repro ({spec}, {check}):")
            print(rec.get("repro") or snippet(case, spec, check))
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
