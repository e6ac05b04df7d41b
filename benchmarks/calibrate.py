"""Calibration of the default tolerances (issue 4 §3): not a test, a measurement.

Evaluates the oracle and the given backends on a suite in-process on one core (no runner) and
prints, per backend x loss x family x dtype x check, the figures the tolerances are chosen from:

  max_ulp       worst ulp error over determined elements
  need_stable   worst |err| / ((c0 + c1*log2 n)*(u*cond + eta)) over elements beyond the ulp
                tolerance (eta: the format's smallest subnormal, as in harness/verdict.py), i.e. the
                factor by which (c0, c1) would have to grow to call them stable
  need_abs      worst |err| / (u*scale) over elements neither accurate nor stable, i.e. the c_abs
                that would call them absolute-only
  need_mag      worst |err| / (u_acc*scale*(1 + max|x|)) over the elements on the magnitude or fail
                rung, for losses that declare max|x| (the c_mag that would call them
                magnitude-dependent; u_acc: float32's u for half formats)
  used_stable   worst |err| / ((c0 + c1*log2 n)*(u*cond + eta)) over the elements judged stable (<= 1):
                how much of the stable rung's allowance they use (JSON and --markdown)
  used_ulp      worst ulp error over the elements judged accurate (<= ulp)
  headroom      per backend and dtype, over the checks that are not xfail: used_ulp / ulp,
                used_stable and need_abs / c_abs, each with the case it comes from
  counts        elements per rung under the tolerances in force (flushed: subnormal results
                returned as 0, a warn); eta_only (printed "eta"): the stable
                elements that only the underflow allowance eta makes stable
  escape        for a failing check: the factor k by which ALL five tolerances (ulp, c0, c1, c_abs,
                c_mag) would have to grow before no element fails -- lands on a pass or warn rung,
                the recursive-summation one included (inf for special mismatches, bad output or an
                exception); c_abs alone would have to grow by need_abs / c_abs

Failing checks matched by the configured known-failures file (``[tool.losscheck]``, as the gate
uses it; ``--known-failures PATH`` or ``--no-known-failures``) count as xfail.  When the baseline
backend (``--baseline``, default torch) is among the backends, every other backend gets a
"caught" summary: its failing checks whose (case, check) the baseline does not fail, per dtype,
how many of them are special (escape inf), and the tightest, loosest and loosest finite escape
factor among them (the planted defects delegate to torch, so these are exactly the checks that
catch the defect).

Oracle values go through the runner's on-disk cache (``LOSSCHECK_CACHE_DIR``), so a second
calibration run measures only the backends.

    python benchmarks/calibrate.py                       # torch and numpy on the gate suite
    python benchmarks/calibrate.py --backend tests/planted/log_of_softmax.py --tol float32.ulp=4
    python benchmarks/calibrate.py --json /tmp/cal.json  # also dump every row
    python benchmarks/calibrate.py --backend torch --backend tests.planted.lse_rounded --quiet
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cases import build_suite
from harness.backends import Unsupported, load
from harness.cache import OracleCache
from harness.check import COUNT_KEYS, check_observation, magnitude_of, policy_labels
from harness.config import load_config, parse_tolerance_flag
from harness.knownfail import KnownFailures
from harness.metrics import figures
from harness.tolerances import DEFAULTS
from harness.verdict import bounds, classify


def backend_for(spec: str):
    """A built-in name, ``pkg.mod[:attr]``, or a path to a .py drop-in (the planted defects)."""
    p = Path(spec)
    if p.suffix == ".py" and p.is_file() and not p.is_absolute():
        return load(".".join(p.with_suffix("").parts))  # tests/planted/x.py -> tests.planted.x
    if p.suffix == ".py" and p.is_file():
        import importlib.util

        from harness.backends import from_object

        mod_spec = importlib.util.spec_from_file_location(f"_calibrate_{p.stem}", p)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        return from_object(p.stem, mod)
    return load(spec)


def row_figures(exact, observed, tol, case=None, check="value") -> dict:
    """The calibration figures of one check (see the module docstring)."""
    figs = figures(exact, observed)
    mag = magnitude_of(case, check, np.shape(exact.rounded)) if case is not None else None
    rungs = classify(exact, observed, figs, tol, mag)
    if case is not None:
        rungs, _ = policy_labels(case, check, exact, observed, tol, rungs)
    b = bounds(exact, tol, mag)  # the ladder's own allowances (harness/verdict.py)
    det = ~np.asarray(exact.undetermined, bool)
    ulp = figs["ulp"]
    err = figs["abs_err"]
    with np.errstate(divide="ignore", invalid="ignore"):
        stable_ratio = err / b["stable"]
        rec_ratio = err / b["recursive"]
        abs_ratio = err / (b["absolute"] / tol.c_abs)
        mag_ratio = err / (b["magnitude"] / tol.c_mag) if tol.c_mag else np.full_like(err, np.nan)
    beyond_ulp = det & (ulp > tol.ulp)
    beyond_stable = beyond_ulp & (rungs != "stable")

    def worst(a, mask):
        a = np.where(np.isnan(a), np.inf, a)  # 0/0 only where err == 0, and those are accurate
        return float(np.max(a[mask])) if mask.any() else 0.0

    failing = np.isin(rungs, ("fail", "semantic"))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_elem = np.fmin(np.fmin(np.fmin(ulp / tol.ulp, stable_ratio), np.fmin(rec_ratio, abs_ratio / tol.c_abs)),
                           mag_ratio / tol.c_mag if tol.c_mag else np.inf)
    escape = math.inf if np.any(rungs == "special") else worst(per_elem, failing)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        eta_only = (rungs == "stable") & ~(err <= b["stable_no_eta"])
    acc = (rungs == "accurate") & np.isfinite(ulp)
    return {"max_ulp": float(np.max(ulp[det])) if det.any() else 0.0,
            "used_ulp": float(np.max(ulp[acc])) if acc.any() else 0.0,
            "need_stable": worst(stable_ratio, beyond_ulp),
            "need_abs": worst(abs_ratio, beyond_stable),
            "need_mag": worst(np.where(np.isnan(mag_ratio), 0.0, mag_ratio), np.isin(rungs, ("magnitude", "fail"))),
            "used_stable": worst(stable_ratio, rungs == "stable"),
            "escape": escape,
            "counts": {k: int(np.count_nonzero(rungs == k)) for k in COUNT_KEYS}
                      | {"eta_only": int(np.count_nonzero(eta_only))}}


def print_caught(rows: list[dict], baseline: str) -> None:
    """Per backend and dtype: the checks it fails that the baseline does not fail (same case and
    check), their families, and the tightest / loosest escape factor among them."""
    base_fail = {(r["case_id"], r["check"]) for r in rows
                 if r["backend"] == baseline and r["verdict"] in ("fail", "error", "xfail")}
    caught: dict[tuple, list] = defaultdict(list)
    for r in rows:
        if r["backend"] != baseline and r["verdict"] in ("fail", "error", "xfail") \
                and (r["case_id"], r["check"]) not in base_fail:
            caught[(r["backend"], r["dtype"])].append(r)
    print()
    for (spec, dtype), rs in sorted(caught.items()):
        fams = sorted({f"{r['family']}:{r['check']}" for r in rs})
        tight = min(rs, key=lambda r: r["escape"])
        finite = [r["escape"] for r in rs if math.isfinite(r["escape"])]
        print(f"caught {spec} {dtype}: {len(rs)} checks ({len(rs) - len(finite)} special), escape tightest "
              f"{tight['escape']:.3g} ({tight['family']} {tight['check']} {tight['case_id']}), loosest "
              f"{max(r['escape'] for r in rs):.3g}, loosest non-special "
              f"{max(finite, default=math.nan):.3g}; {' '.join(fams)}")


def print_headroom(rows: list[dict], tols) -> None:
    """Per backend and dtype: how much of each rung its worst element uses (xfail checks left out)."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        if "counts" in r and r["verdict"] != "xfail":
            groups[(r["backend"], r["dtype"])].append(r)
    print()
    for (spec, dtype), rs in sorted(groups.items()):
        tol = tols.for_dtype(dtype)
        parts = []
        for name, key, div in (("accurate", "used_ulp", tol.ulp), ("stable", "used_stable", 1.0),
                               ("absolute", "need_abs", tol.c_abs), ("magnitude", "need_mag", tol.c_mag or 1.0)):
            r = max(rs, key=lambda r, key=key: r.get(key, 0.0))
            parts.append(f"{name} {r.get(key, 0.0) / div:.3g} ({r['family']} {r['check']} {r['case_id']})")
        print(f"headroom {spec} {dtype}: " + ", ".join(parts))


def print_markdown(rows: list[dict]) -> None:
    """Per backend x loss x dtype x check: verdicts, worst ulp and need_abs (xfail checks left out),
    stable/absolute element counts, and the largest share of the stable allowance used."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        if "counts" in r:
            groups[(r["backend"], r["loss"], r["dtype"], r["check"])].append(r)
    print()
    print("| backend | loss | dtype | check | checks | pass/warn/xfail/fail | worst ulp | stable / absolute "
          "elements | stable rung used | worst need_abs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (spec, loss, dtype, check), rs in sorted(groups.items()):
        v = defaultdict(int)
        c = defaultdict(int)
        for r in rs:
            v[r["verdict"]] += 1
            for k, n in r["counts"].items():
                c[k] += n
        judged = [r for r in rs if r["verdict"] != "xfail"]

        def top(key, judged=judged):
            return max((r.get(key, 0.0) for r in judged), default=0.0)

        print(f"| {spec} | {loss} | {dtype} | {check} | {len(rs)} | {v['pass']}/{v['warn']}/{v['xfail']}/"
              f"{v['fail']} | {top('max_ulp'):.3g} | {c['stable']} / {c['absolute']} | "
              f"{top('used_stable'):.3g} | {top('need_abs'):.3g} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", action="append", help="backend spec or drop-in .py (repeatable)")
    ap.add_argument("--suite", default="gate")
    ap.add_argument("--seed", type=int, default=0, help="suite seed (the gate uses 0)")
    ap.add_argument("--loss", action="append")
    ap.add_argument("--dtype", action="append")
    ap.add_argument("--tol", action="append", default=[], help="<dtype>.<key>=<value> override")
    ap.add_argument("--json", help="write every row here")
    ap.add_argument("--cache-dir", help="oracle cache (default: the runner's)")
    ap.add_argument("--quiet", action="store_true", help="only rows that are not clean passes")
    ap.add_argument("--known-failures", help="known-failures file (default: [tool.losscheck]'s)")
    ap.add_argument("--no-known-failures", action="store_true", help="judge without known failures")
    ap.add_argument("--baseline", default="torch", help="backend the others are compared against")
    ap.add_argument("--markdown", action="store_true",
                    help="also print a markdown table per backend x loss x dtype x check (docs/calibration.md)")
    args = ap.parse_args(argv)
    kf_path = None if args.no_known_failures else (args.known_failures or load_config().known_failures)
    known = KnownFailures.load(kf_path) if kf_path else KnownFailures()
    tols = DEFAULTS.with_overrides(dict(parse_tolerance_flag(t) for t in args.tol))
    specs = args.backend or ["torch", "numpy"]
    backends = [(s, backend_for(s)) for s in specs]
    cases = [c for c in build_suite(args.suite, args.seed)
             if (not args.loss or c.loss in args.loss) and (not args.dtype or c.dtype in args.dtype)]
    cache = OracleCache(args.cache_dir)

    t0 = time.perf_counter()
    oracle_s = 0.0
    agg: dict[tuple, dict] = {}
    verdicts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    worst_cases: dict[tuple, tuple] = {}
    rows = []
    for case in cases:
        checks = list(case.checks)
        t1 = time.perf_counter()
        exacts = {ch: cache.get(case, ch) for ch in checks}
        oracle_s += time.perf_counter() - t1
        for spec, be in backends:
            try:
                obs = be.evaluate(case)
            except Unsupported:
                continue
            except Exception as exc:  # noqa: BLE001 -- a defect may raise: that is a result, not a crash here
                verdicts[spec]["error"] += 1
                rows.append({"backend": spec, "case_id": case.id, "loss": case.loss, "family": case.family,
                             "dtype": case.dtype, "check": "value", "verdict": "error", "escape": math.inf,
                             "error": f"{type(exc).__name__}: {exc}"})
                continue
            for ch in checks:
                observed = obs.observed(ch)
                if observed is None:
                    continue
                exact = exacts[ch]
                tol = tols.for_dtype(exact.dtype)
                rec = known.apply({"backend": spec, **check_observation(case, ch, exact, observed, tol)})
                verdicts[spec][rec["verdict"]] += 1
                key = (spec, case.loss, case.family, case.dtype, ch)
                if rec["status"] != "ok":
                    f = {"max_ulp": math.inf, "need_stable": math.inf, "need_abs": math.inf,
                         "escape": math.inf, "counts": {"fail": rec["n"]}}
                else:
                    f = row_figures(exact, observed, tol, case, ch)
                a = agg.setdefault(key, {"max_ulp": 0.0, "need_stable": 0.0, "need_abs": 0.0,
                                         "counts": defaultdict(int), "cases": 0, "failing": 0})
                a["failing"] += rec["verdict"] in ("fail", "error")
                a["cases"] += 1
                for k in ("max_ulp", "need_stable", "need_abs"):
                    a[k] = max(a[k], f[k])
                for k, v in f["counts"].items():
                    a["counts"][k] += v
                if rec["verdict"] in ("fail", "warn", "xfail"):
                    prev = worst_cases.get(key)
                    if prev is None or f["max_ulp"] > prev[0]:
                        worst_cases[key] = (f["max_ulp"], case.id, rec["message"])
                rows.append({"backend": spec, "case_id": case.id, "loss": case.loss, "family": case.family,
                             "dtype": case.dtype, "check": ch, "verdict": rec["verdict"], **f})
    elapsed = time.perf_counter() - t0

    print(f"{'backend':<22} {'loss':<33} {'family':<30} {'dtype':<8} {'check':<5} {'n':>4} "
          f"{'max_ulp':>9} {'need_stb':>9} {'need_abs':>9}  counts")
    for key in sorted(agg):
        a = agg[key]
        c = a["counts"]
        bad = c.get("fail", 0) + c.get("special", 0) + c.get("semantic", 0)
        warns = sum(c.get(k, 0) for k in ("absolute", "flushed", "recursive", "magnitude", "convention"))
        if args.quiet and not bad and not warns:
            continue
        counts = " ".join(f"{k[:3]}={v}" for k, v in sorted(c.items()) if v)
        flag = ("  FAIL" if a["failing"] else "  xfail") if bad else ("  warn" if warns else "")
        print(f"{key[0]:<22} {key[1]:<33} {key[2]:<30} {key[3]:<8} {key[4]:<5} {a['cases']:>4} "
              f"{a['max_ulp']:>9.3g} {a['need_stable']:>9.3g} {a['need_abs']:>9.3g}  {counts}{flag}")
    print()
    for key, (ulp, cid, msg) in sorted(worst_cases.items()):
        print(f"worst {'/'.join(key)}: {cid} {msg}")
    print()
    for spec, vs in verdicts.items():
        print(f"{spec}: " + ", ".join(f"{k}={v}" for k, v in sorted(vs.items())))
    print_headroom(rows, tols)
    if args.baseline in specs:
        print_caught(rows, args.baseline)
    if args.markdown:
        print_markdown(rows)
    for entry in known.unmatched():
        print(f"known failure {entry.match!r} matched no failing check")
    print(f"{len(cases)} cases, {elapsed:.1f} s total, oracle (incl. cache reads) {oracle_s:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"tolerances": tols.to_dict(), "rows": rows},
                                              default=str, indent=None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
