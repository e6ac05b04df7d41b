"""Oracle throughput: CE logits settled per second vs a naive per-element mpmath loop (same run).

Not a test: prints figures.  The baseline is the loop docs/design.md describes (prec 113: max, fsum of
exp, log), measured here on the same machine in the same process, so the ratio is what matters.
Gradients are given against that value loop and against its gradient counterpart (softmax - onehot
per element at 113 bits: one more exp per element), both measured in the same run.
Every oracle call is timed cold (reference.numerics.forget() first), except the line "after evaluate":
a gradient asked right after the value of the same case, as the harness does, which reuses the
value's exponentials.  Run it from the repository root with that root on PYTHONPATH (or installed
from it): a script's own directory, not the working directory, starts sys.path.
Usage: python benchmarks/bench_oracle.py [--rows 32] [--classes 1000] [--dtype float32 --dtype float64]
[--large 131072] [--cancel 16384]  (the large line: one float64 row of that many classes, value and
gradient, in s; the cancel line: a reduced value whose exact sum is 0, which settles only in mpmath)
"""
from __future__ import annotations

import argparse
import time

import mpmath
import numpy as np

import reference
from reference.numerics import forget


def naive_loop(x: np.ndarray, t: np.ndarray) -> list:
    out = []
    with mpmath.workprec(113):
        for row, tt in zip(x.astype(np.float64), t):
            r = [mpmath.mpf(float(v)) for v in row]
            m = max(r)
            s = mpmath.fsum(mpmath.exp(v - m) for v in r)
            out.append(mpmath.log(s) + m - r[int(tt)])
    return out


def naive_grad_loop(x: np.ndarray, t: np.ndarray) -> list:
    """The gradient's counterpart of :func:`naive_loop`: softmax(x) - onehot(t) per element at 113
    bits, each p_j = exp(x_j - lse) (one more exponential per element than the value loop)."""
    out = []
    with mpmath.workprec(113):
        for row, tt in zip(x.astype(np.float64), t):
            r = [mpmath.mpf(float(v)) for v in row]
            m = max(r)
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in r)) + m
            g = [mpmath.exp(v - lse) for v in r]
            g[int(tt)] -= 1
            out.append(g)
    return out


CLOCK = time.perf_counter  # --cpu: time.process_time (this process's CPU time: on a shared machine
# other processes' load stretches wall time, not CPU time)


def best_of(fn, repeat: int, before=None) -> float:
    """Best wall time of ``fn`` over ``repeat`` runs, each started cold: without the log-sum-exp
    pieces an earlier call left in reference.numerics (then ``before``, untimed, when given)."""
    best = float("inf")
    for _ in range(repeat):
        forget()
        if before is not None:
            before()
        t0 = CLOCK()
        fn()
        best = min(best, CLOCK() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--dtype", action="append", choices=list(reference.FORMATS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--large", type=int, default=131072, help="classes of the large float64 row (0: skip)")
    ap.add_argument("--cancel", type=int, default=16384, help="rows of the exactly cancelling sum (0: skip)")
    ap.add_argument("--cpu", action="store_true", help="time CPU seconds of this process, not wall seconds")
    a = ap.parse_args()
    if a.cpu:
        global CLOCK
        CLOCK = time.process_time
    for dtype in a.dtype or ["float32", "float64"]:
        one_dtype(a, dtype)
    if a.large:
        rng = np.random.default_rng(0)
        x, t = rng.standard_normal((1, a.large)) * 4, np.array([5])
        t_naive = best_of(lambda: naive_loop(x, t), 1)
        t_value = best_of(lambda: reference.evaluate("cross_entropy", x, t), 1)
        t_grad = best_of(lambda: reference.evaluate_grad("cross_entropy", x, t), 1)
        t_after = best_of(lambda: reference.evaluate_grad("cross_entropy", x, t), 1,
                          before=lambda: reference.evaluate("cross_entropy", x, t))
        print(f"CE mean on (1, {a.large}) float64: naive value loop {t_naive:.2f} s; oracle value "
              f"{t_value:.2f} s ({t_naive / t_value:.1f}x), gradient {t_grad:.2f} s ({t_naive / t_grad:.1f}x), "
              f"after the value {t_after:.2f} s; value + gradient {t_value + t_after:.2f} s")
    if a.cancel:
        # a reduced value that cancels exactly: probability targets p and -p on repeated rows
        rng = np.random.default_rng(0)
        half = a.cancel // 2
        x = np.concatenate([rng.standard_normal((half, 4))] * 2)
        p = rng.dirichlet(np.ones(4), half)
        p = np.concatenate([p, -p])
        t_naive = best_of(lambda: naive_loop(x, np.zeros(len(x), np.int64)), 1)
        t0 = CLOCK()
        ex = reference.evaluate("cross_entropy", x, p, reduction="sum")
        t_c = CLOCK() - t0
        print(f"CE sum on ({len(x)}, 4) float64 that cancels exactly (exact 0, settled {ex.rounded!r}): "
              f"{t_c:.2f} s; the naive value loop over it {t_naive:.2f} s ({t_naive / t_c:.2f}x)")


def one_dtype(a, dtype: str) -> None:
    a.dtype = dtype
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.rows, a.classes)).astype(reference.FORMATS[a.dtype].np_dtype)
    t = rng.integers(0, a.classes, a.rows)
    n = x.size
    t_naive = best_of(lambda: naive_loop(x, t), a.repeat)  # best of as many as the oracle gets
    t_oracle = best_of(lambda: reference.evaluate("cross_entropy", x, t, reduction="none"), a.repeat)
    def value():
        return reference.evaluate("cross_entropy", x, t, reduction="none")

    def grad():
        return reference.evaluate_grad("cross_entropy", x, t, reduction="none", grad_output=np.ones(a.rows))

    t_naive_grad = best_of(lambda: naive_grad_loop(x, t), a.repeat)
    t_grad = best_of(grad, a.repeat)
    t_after = best_of(grad, a.repeat, before=value)  # the harness asks for the value first
    ex = reference.evaluate("cross_entropy", x, t, reduction="none")
    naive = reference.to_dtype(np.array(naive_loop(x, t), dtype=object), a.dtype)
    agree = np.array_equal(naive.view(np.uint8), ex.rounded.view(np.uint8))
    print(f"CE reduction='none' on ({a.rows}, {a.classes}) {a.dtype}: {n} logits")
    print(f"  naive mpmath loop (prec 113, unsettled): {n / t_naive:12,.0f} logits/s  (baseline 1.00x)")
    print(f"  oracle evaluate (settled):               {n / t_oracle:12,.0f} logits/s  ({t_naive / t_oracle:.1f}x)")
    print(f"  naive mpmath gradient loop (prec 113):   {n / t_naive_grad:12,.0f} logits/s  "
          f"({t_naive / t_naive_grad:.2f}x the value loop)")
    print(f"  oracle evaluate_grad (settled, {n} el.): {n / t_grad:12,.0f} logits/s  ({t_naive / t_grad:.1f}x "
          f"the value loop, {t_naive_grad / t_grad:.1f}x the gradient loop)")
    print(f"  the same after evaluate (shared exps):  {n / t_after:12,.0f} logits/s  ({t_naive / t_after:.1f}x "
          f"the value loop, {t_naive_grad / t_after:.1f}x the gradient loop)")
    print(f"  undetermined: {int(ex.undetermined.sum())};  same rounded values as the naive loop: {agree}")


if __name__ == "__main__":
    main()
