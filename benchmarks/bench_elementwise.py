"""The fast certified elementwise path (issue 14 §2): points settled per second, and the
exhaustive float16 sweep of binary_cross_entropy_with_logits, against the previous path (the same
code with the float64 stage, the row blocks and the split stage switched off) in the same run.

Not a test: prints figures (single process, so "per core").  Usage:
  python benchmarks/bench_elementwise.py [--n 2000000] [--base-n 200000] [--repeat 2] [--no-previous-sweep]
                                   [--others] [--verify] [--float32]
--float32 prints only the float32 BCE-with-logits lines; every line gives the oracle's points/s next
to plain np.logaddexp(0, x) on the same array, timed interleaved (the cost of one softplus; a
ratio, since absolute rates follow the machine's load), and the previous path unless --base-n 0.
--others adds the other elementwise losses (float32 values and gradients); --verify checks every
element the previous path left undetermined against an independent exact formulation (Fraction:
the dyadic part's rounding on the tail's side) and a sample against the audit's brute force.
"""
from __future__ import annotations

import argparse
import time
from fractions import Fraction

import mpmath
import numpy as np

import reference
from reference import settle
from reference.formats import round_mpf

BCEL = "binary_cross_entropy_with_logits"
TARGETS16 = np.array([0, 1, 0.5, 0.25, 2 ** -24, 1 - 2 ** -11, 0.75, 0.125], np.float16)


previous_path = settle.previous_path


def timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def call(loss, x, t, grad, **kw):
    if grad:
        return reference.evaluate_grad(loss, x, t, grad_output=np.ones(x.shape, x.dtype), reduction="none", **kw)
    return reference.evaluate(loss, x, t, reduction="none", **kw)


def rate_line(label, loss, x, t, grad, base_n, repeat, **kw):
    """Points/s of the oracle, next to plain np.logaddexp(0, x) on the same float64 array (the
    cost of one softplus, timed interleaved with the oracle, best of ``repeat``: the machine's
    load moves both alike) and, unless base_n is 0, the previous path on base_n points."""
    xd = x.astype(np.float64)
    s_new, s_lae, e = float("inf"), float("inf"), None
    for _ in range(repeat):
        s, e = timed(lambda: call(loss, x, t, grad, **kw))
        s_new = min(s_new, s)
        s_lae = min(s_lae, timed(lambda: np.logaddexp(0.0, xd))[0])
    r_new = x.size / s_new
    line = (f"{label:<44} {r_new / 1e6:7.2f} M points/s ({x.size:,} in {s_new:.3f} s, "
            f"{int(e.undetermined.sum())} undetermined)   logaddexp {x.size / s_lae / 1e6:6.1f} M/s, "
            f"oracle/logaddexp {s_new / s_lae:5.2f}x")
    if base_n:
        with previous_path():
            s_old, _ = timed(lambda: call(loss, x[:base_n], t[:base_n], grad, **kw), 1)
        r_old = base_n / s_old
        line += f"   previous {r_old / 1e6:6.3f} M/s ({base_n:,}), ratio {r_new / r_old:6.1f}x"
    print(line)


def exhaustive16():
    x = np.arange(65536, dtype=np.uint16).view(np.float16)
    x = x[~np.isnan(x)]
    return np.repeat(x, len(TARGETS16)), np.tile(TARGETS16, len(x))


def tail_check(x, t, rounded, grad) -> int:
    """Disagreements with the independent formulation of a midpoint next to a tiny tail: the value
    is (1-y) x or -y x plus a positive tail, the gradient (1-y) or -y minus sign(x) times one."""
    bad = 0
    with mpmath.workprec(400):
        for xi, ti, r in zip(x.tolist(), t.tolist(), rounded.tolist()):
            X, Y = Fraction(xi), Fraction(ti)
            if grad:
                d, sign = ((1 - Y), -1) if X > 0 else (-Y, 1)
            else:
                d, sign = ((1 - Y) * X if X > 0 else -Y * X), 1
            e = mpmath.mpf(d.numerator) / d.denominator
            want = round_mpf(e + sign * abs(e) * mpmath.ldexp(1, -200) if e else mpmath.ldexp(sign, -2000),
                             "float16")
            bad += want != r
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="float32 points per timed call")
    ap.add_argument("--base-n", type=int, default=200_000, help="points of the previous path's call")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-previous-sweep", action="store_true", help="skip the previous path's float16 sweep")
    ap.add_argument("--others", action="store_true", help="the other elementwise losses too")
    ap.add_argument("--verify", action="store_true", help="check the elements only the new path settles")
    ap.add_argument("--float32", action="store_true",
                    help="only the float32 BCE-with-logits lines (issue 14 §2's 10 M points/s per core)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x32 = (rng.standard_normal(a.n) * 10).astype(np.float32)
    z32 = np.zeros_like(x32)
    print("float32 BCE-with-logits, x ~ N(0, 10^2), target 0, reduction='none' (one process)")
    rate_line("value", BCEL, x32, z32, False, a.base_n, a.repeat)
    rate_line("grad:input", BCEL, x32, z32, True, a.base_n, a.repeat)
    t32 = rng.uniform(0, 1, a.n).astype(np.float32)
    rate_line("value, targets U(0, 1)", BCEL, x32, t32, False, a.base_n, a.repeat)
    rate_line("grad:input, targets U(0, 1)", BCEL, x32, t32, True, a.base_n, a.repeat)
    if a.float32:
        return

    X, T = exhaustive16()
    print(f"\nexhaustive float16 BCE-with-logits, {len(TARGETS16)} targets ({X.size:,} points)")
    sv, ev = timed(lambda: call(BCEL, X, T, False))
    sg, eg = timed(lambda: call(BCEL, X, T, True))
    print(f"  new:      values {sv:6.2f} s ({int(ev.undetermined.sum())} undetermined), gradients {sg:6.2f} s "
          f"({int(eg.undetermined.sum())} undetermined), total {sv + sg:6.2f} s")
    if not a.no_previous_sweep:
        with previous_path():
            ov, pv = timed(lambda: call(BCEL, X, T, False))
            og, pg = timed(lambda: call(BCEL, X, T, True))
        print(f"  previous: values {ov:6.2f} s ({int(pv.undetermined.sum())} undetermined), gradients {og:6.2f} s "
              f"({int(pg.undetermined.sum())} undetermined), total {ov + og:6.2f} s   ratio {(ov + og) / (sv + sg):.1f}x")
        for name, new, old, grad in (("values", ev, pv, False), ("gradients", eg, pg, True)):
            both = ~new.undetermined & ~old.undetermined
            diff = int(np.sum(new.rounded.view(np.uint16)[both] != old.rounded.view(np.uint16)[both]))
            gained = np.flatnonzero(old.undetermined & ~new.undetermined)
            lost = int(np.sum(new.undetermined & ~old.undetermined))
            line = (f"  {name}: {diff} roundings differ from the previous path, {lost} newly undetermined, "
                    f"{gained.size} newly settled")
            if a.verify and gained.size:
                bad = tail_check(X[gained], T[gained], new.rounded[gained].astype(np.float64), grad)
                line += f" ({bad} disagree with the exact dyadic part + tail formulation)"
            print(line)

    if a.others:
        n = min(a.n, 1_000_000)
        u = rng.uniform(0, 1, n).astype(np.float32)
        x = x32[:n]
        print(f"\nother elementwise losses, float32, {n:,} points (previous path on {a.base_n:,})")
        for loss, args, kw in (("binary_cross_entropy", (u, u[::-1].copy()), {}),
                               ("mse_loss", (x, x[::-1].copy()), {}), ("l1_loss", (x, x[::-1].copy()), {}),
                               ("huber_loss", (x, x[::-1].copy()), {}), ("smooth_l1_loss", (x, x[::-1].copy()), {}),
                               ("poisson_nll_loss", (x / 10, np.abs(x)), {}),
                               ("sigmoid_focal_loss", (x, u), {})):
            for grad in (False, True):
                rate_line(f"{loss} {'grad:input' if grad else 'value'}", loss, *args, grad, a.base_n, 1, **kw)


if __name__ == "__main__":
    main()
