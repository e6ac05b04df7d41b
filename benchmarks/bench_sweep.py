"""The exhaustive sweep's wall time: ``losscheck sweep binary_cross_entropy_with_logits --dtype
float16 --exhaustive --backend torch`` (every float16 value x the declared grid of 8 targets x
pos_weight absent/3, values and gradients), by the process pool and, with ``--scheduler local``,
by Dask; and whether both summaries are identical.

Not a test: prints figures against :data:`BUDGET_S`, the figure the issue's "done when" refers to
(measured on the 2-core development machine, docs/findings.md).  Usage:
python benchmarks/bench_sweep.py [--loss L] [--dtype D] [--jobs N] [--no-dask] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: seconds the float16 BCE-with-logits sweep may take on the 2-core development machine.  The issue
#: asks <= 10 s for the oracle's values and gradients over 8 targets (~524k points); the declared
#: grid has 16 points (pos_weight absent or 3: ~1M points x 3 checks), and the sweep also runs
#: torch and judges every point: 30 s is that 10 s doubled for the grid plus the backend's share.
#: Measured 12.8 s (pool) and 18.8 s (Dask local) on 2026-11-27; it was 2,550 s before the oracle's
#: fast elementwise path and the pair-based figures (docs/findings.md)
BUDGET_S = 30.0


def sweep(args: argparse.Namespace, out: Path, scheduler: str | None) -> float:
    cmd = [sys.executable, "-m", "harness", "sweep", args.loss, "--dtype", args.dtype, "--exhaustive",
           "--backend", "torch", "--out", str(out), "--overwrite", "--jobs", str(args.jobs)]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, env=os.environ)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"sweep failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    first = [ln for ln in proc.stdout.splitlines() if "domain-wide max" in ln]
    print("\n".join(first))
    return wall


def records(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / "summary.jsonl").read_text().splitlines()[1:]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", default="binary_cross_entropy_with_logits")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--no-dask", action="store_true", help="the process pool only")
    p.add_argument("--keep", metavar="DIR", help="keep the sweep directories here (default: a temporary one)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        walls = {"pool": sweep(args, base / "pool", None)}
        if not args.no_dask:
            walls["dask"] = sweep(args, base / "dask", "local")
        for name, wall in walls.items():
            verdict = "within" if wall <= BUDGET_S else "OVER"
            print(f"{name}: {wall:7.1f} s wall ({args.jobs} jobs), {verdict} the {BUDGET_S:g} s budget")
        if "dask" in walls:
            same = records(base / "pool") == records(base / "dask")
            print(f"summaries identical: {same}")


if __name__ == "__main__":
    main()
