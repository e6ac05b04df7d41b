"""Benchmark (not a test): wall time of ``losscheck gate`` with a cold and a warm oracle cache.

Runs the real command line twice in a subprocess against a fresh temporary ``LOSSCHECK_CACHE_DIR``:
first cold (every oracle value computed), then warm (every one read back). The oracle's share comes
from the runner's own accounting (the summary's ``time:`` line: worker CPU-seconds spent in the
oracle, in backends and in checks). Budgets (docs/design.md): <= 120 s cold, <= 15 s warm, on 2 cores.

    python benchmarks/bench_gate.py [--suite gate] [--backend torch] [--jobs N]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGETS = {"cold": 120.0, "warm": 15.0}
TIME_LINE = re.compile(r"^time: wall (?P<run_wall>[\d.]+) s; oracle (?P<oracle>[\d.]+) s cpu "
                       r"\((?P<share>\d+)% of worker time\), backends (?P<backend>[\d.]+) s, "
                       r"checks (?P<check>[\d.]+) s; oracle cache "
                       r"(?P<hits>\d+) hits, (?P<computed>\d+) computed; (?P<records>\d+) records new")


def run_gate(args: argparse.Namespace, cache: Path, results: Path) -> dict:
    cmd = [sys.executable, "-m", "harness", "gate", "--suite", args.suite, "--backend", args.backend,
           "--results", str(results)]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    env = {**os.environ, "LOSSCHECK_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"bench_gate: losscheck exited {proc.returncode}: {proc.stderr.strip()}")
    match = next((m for m in map(TIME_LINE.match, proc.stdout.splitlines()) if m), None)
    if match is None:
        sys.exit("bench_gate: no 'time:' line in the summary")
    figures = {k: float(v) for k, v in match.groupdict().items()}
    return {"wall": wall, "exit": proc.returncode, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="gate")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--jobs", type=int)
    args = parser.parse_args()
    print(f"losscheck gate --suite {args.suite} --backend {args.backend} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="losscheck-bench-") as tmp:
        cache = Path(tmp) / "cache"
        for phase in ("cold", "warm"):
            r = run_gate(args, cache, Path(tmp) / f"{phase}.jsonl")
            verdict = "within" if r["wall"] <= BUDGETS[phase] else "OVER"
            print(f"{phase}: {r['wall']:6.1f} s wall, {verdict} the {BUDGETS[phase]:g} s budget "
                  f"(the run itself {r['run_wall']:.1f} s, the rest is interpreter and suite start-up)")
            print(f"      oracle {r['oracle']:.1f} s cpu = {r['share']:.0f}% of worker time "
                  f"(backends {r['backend']:.1f} s, checks {r['check']:.1f} s); oracle cache "
                  f"{r['hits']:.0f} hits, {r['computed']:.0f} computed; {r['records']:.0f} records; "
                  f"gate exit {r['exit']}")


if __name__ == "__main__":
    main()
