"""Audit the oracle: every settled element of a suite against each loss's brute-force formulation.

Not a test (tests/test_audit.py runs the smoke suite): prints totals and every disagreement with a
reproducer line, and exits 1 when there is any (or when a check could not be audited).  See reference/audit.py for the decision rule.
Usage: python benchmarks/audit.py [--suite gate] [--loss L] [--family F] [--dtype D] [--check C]
                                  [--jobs N] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import cases
from reference.audit import audit_suite, reproducer, totals


def select(suite: str, loss=None, family=None, dtype=None, check=None) -> list:
    out = []
    for c in cases.build_suite(suite):
        if (loss and c.loss not in loss) or (family and c.family not in family) or (dtype and c.dtype not in dtype):
            continue
        if check and not set(check) & set(c.checks):
            continue
        out.append(c)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="gate", choices=sorted(cases.SUITES))
    ap.add_argument("--loss", action="append", help="only this loss (repeatable)")
    ap.add_argument("--family", action="append", help="only this case family (repeatable)")
    ap.add_argument("--dtype", action="append", help="only this dtype (repeatable)")
    ap.add_argument("--check", action="append", help="only this check, e.g. value or grad:input (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--json", metavar="OUT", help="write every record and the totals as JSON")
    ap.add_argument("--all-ambiguous", action="store_true",
                    help="also list the ambiguous elements that are exact midpoints the oracle rounds half-even")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    args = ap.parse_args(argv)

    picked = select(args.suite, args.loss, args.family, args.dtype, args.check)
    if not picked:
        print("no case matches the filters", file=sys.stderr)
        return 2
    done = [0]
    n_tasks = sum(1 for c in picked for ch in c.checks if not args.check or ch in args.check)

    def progress(rec):
        done[0] += 1
        if not args.quiet and sys.stderr.isatty():
            print(f"\r{done[0]}/{n_tasks} checks", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    records = audit_suite(picked, jobs=args.jobs, progress=progress, checks=args.check)
    wall = time.perf_counter() - t0
    if not args.quiet and sys.stderr.isatty():
        print(file=sys.stderr)
    tot = totals(records)
    tot["wall_s"] = round(wall, 2)
    tot["jobs"] = args.jobs
    tot["suite"] = args.suite
    print(f"audit of suite {args.suite!r}: {tot['cases']} cases, {tot['checks']} checks, "
          f"{tot['elements']} elements in {wall:.1f} s wall ({args.jobs} job(s); oracle {tot['oracle_s']:.1f} s, "
          f"brute force {tot['brute_s']:.1f} s CPU)")
    print(f"  disagreements {tot['disagreements']}, ambiguous {tot['ambiguous']}, "
          f"oracle-undetermined {tot['undetermined']}, errors {tot['errors']}")
    for r in records:
        if r.error:
            print(f"ERROR {r.case_id} {r.loss} {r.family} {r.dtype} {r.check}: {r.error}")
    for r in records:
        for d in r.disagreements:
            print(f"DISAGREE {r.case_id} {r.loss} {r.family} {r.dtype} {r.check} index {d['index']}: "
                  f"oracle {d['oracle']!r} brute {d['brute']!r} (exact ~ {d['value']}, {d['from_boundary']} from the "
                  f"nearest midpoint; decided at {d['prec']} bits)")
            print(f"  {reproducer(r, d['index'])}")
        if r.n_disagreements > len(r.disagreements):
            print(f"  ... and {r.n_disagreements - len(r.disagreements)} more in this check")
    listed = [(r, a) for r in records for a in r.ambiguous]
    tame = {id(a) for _, a in listed if a["on_boundary"] and a["oracle"] == a["brute"]}
    print(f"  ambiguous: {tot['ambiguous']} ({len(listed)} listed; {len(tame)} exactly on a midpoint with the "
          f"oracle at its half-even rounding{', shown with --all-ambiguous' if tame and not args.all_ambiguous else ''})")
    for r, a in listed:
        if id(a) in tame and not args.all_ambiguous:
            continue
        kind = "exactly on a midpoint" if a["on_boundary"] else f"{a['from_boundary']} from a midpoint"
        print(f"ambiguous {r.case_id} {r.loss} {r.family} {r.dtype} {r.check} index {a['index']}: {kind} "
              f"at {r.max_prec} bits (~ {a['value']}); oracle {a['oracle']!r}, half-even {a['brute']!r}")
    if args.json:
        Path(args.json).write_text(json.dumps({"totals": tot, "records": [r.to_dict() for r in records]}, indent=1))
    return 1 if tot["disagreements"] or tot["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
