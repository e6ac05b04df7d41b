"""Benchmark: the oracle's linear_cross_entropy at an LLM shape (issue 13, section 2).

N tokens x D hidden x V vocabulary in bfloat16: the value and every gradient (hidden, weight,
bias) settled, timed, with the share of undetermined elements.  Prints figures; asserts nothing.

    python benchmarks/bench_linear_ce.py [--n 256 --d 1024 --v 32768 --dtype bfloat16]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("LOSSCHECK_MAX_ELEMENTS", str(10 ** 9))  # an LLM shape is the point here


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--v", type=int, default=32768)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--reduction", default="mean")
    a, _ = ap.parse_known_args()  # nox -s bench passes every script the same arguments

    from reference import api
    from reference.formats import np_dtype
    from reference.matmul import exact_matmul_t

    rng = np.random.default_rng(0)
    dt = np_dtype(a.dtype)
    h = rng.normal(0, 1, (a.n, a.d)).astype(dt)
    w = rng.normal(0, a.d ** -0.5, (a.v, a.d)).astype(dt)
    b = rng.normal(0, 0.1, (a.v,)).astype(dt)
    t = rng.integers(0, a.v, a.n).astype(np.int64)
    t[-a.n // 8:] = -100  # padding
    print(f"linear_cross_entropy N={a.n} D={a.d} V={a.v} {a.dtype} reduction={a.reduction}")
    t0 = time.perf_counter()
    plain = h.astype(np.float64) @ w.astype(np.float64).T
    t_blas = time.perf_counter() - t0
    t0 = time.perf_counter()
    hi, lo, ok = exact_matmul_t(h.astype(np.float64), w.astype(np.float64), b.astype(np.float64), bits=8)
    t_exact = time.perf_counter() - t0
    print(f"  baseline: one float64 BLAS product {t_blas:.2f} s; the exact product {t_exact:.2f} s "
          f"({t_exact / t_blas:.1f}x); exact pairs {ok.mean():.4%}, float64-exact {np.mean(ok & (lo == 0)):.4%}")
    del plain, hi, lo, ok
    total = 0.0
    go = np.asarray(0.75, dt) if a.reduction != "none" else rng.normal(size=a.n).astype(dt)
    for check in ("value", "grad:input", "grad:weight", "grad:bias"):
        t0 = time.perf_counter()
        e = api.evaluate_check("linear_cross_entropy", check, h, w, t, bias=b, reduction=a.reduction,
                               grad_output=None if check == "value" else go)
        dt_s = time.perf_counter() - t0
        total += dt_s
        und = int(np.sum(e.undetermined))
        print(f"  {check:12s} {dt_s:7.2f} s  {np.size(e.undetermined):>10,} elements, {und:,} undetermined")
    print(f"  total {total:.2f} s (budget: 60 s on 2 cores)")


if __name__ == "__main__":
    main()
