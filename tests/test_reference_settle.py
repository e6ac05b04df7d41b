"""The settling machinery against brute force: every settled value of the smoke suite and of a
sample of every gate family rounds like the same formula evaluated at 400 bits (and 800 bits
agreeing).  This is what catches a stage-0 bound that is not a bound."""
import warnings

import mpmath
import numpy as np
import pytest

import cases
import reference as R
from reference import registry
from reference.lossdef import LossDef
from reference.numerics import MP
from reference.settle import Evaluation


def brute(case, wrt):
    args, kwargs = case.call()
    d = registry.get(case.loss)
    if type(d).exact is not LossDef.exact:  # no row kernel (a matrix product first): its brute force
        outs = []
        for prec in (400, 800):
            with mpmath.workprec(prec):
                outs.append(np.asarray(d.brute(args, kwargs, wrt=wrt, grad_output=None if wrt is None
                                               else case.grad_output), dtype=object))
        return outs
    problem = d.prepare(args, kwargs)
    kernel = d.kernel(problem)
    go = None
    if wrt is not None:
        go = np.asarray(case.grad_output, np.float64)
    ev = Evaluation(problem, kernel, grad_output=go, wrt=wrt)
    outs = []
    for prec in (400, 800):
        with mpmath.workprec(prec):
            outs.append(ev.to_output(ev.compute(MP)[0]))
    return outs


def sample():
    picked = list(cases.build_suite("smoke"))
    seen = {}
    for c in cases.build_suite("gate"):
        if c.args[0].size <= 600 and seen.get((c.family, c.dtype), 0) < 2:
            seen[(c.family, c.dtype)] = seen.get((c.family, c.dtype), 0) + 1
            picked.append(c)
    return picked


CASES = sample()


def _clear_of_boundaries(v, dtype) -> bool:
    """Whether the 800-bit value certifies its own rounding.  A zero does not: it may be a total
    cancellation at both precisions (e^x - 1 for x = -1.2e-246 needs some 820 bits; poisson_nll_loss
    gate case bece3f62d33102a5, exact -9.84e-248), which benchmarks/audit.py's escalating brute
    force decides instead."""
    if not mpmath.isfinite(v):
        return True
    if v == 0:
        return False
    with mpmath.workprec(2000):
        d = abs(v) * mpmath.ldexp(1, -700)
        return R.formats.round_mpf(v - d, dtype) == R.formats.round_mpf(v + d, dtype)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}-{c.dtype}-{c.id}" for c in CASES])
def test_settled_values_match_brute_force(case):
    warnings.simplefilter("ignore", RuntimeWarning)
    args, kwargs = case.call()
    checks = [(None, R.evaluate(case.loss, *args, **kwargs))]
    if case.grad:  # every differentiable argument: grad:input, grad:target, ...
        checks += [(arg, R.evaluate_grad(case.loss, *args, grad_output=case.grad_output, wrt=arg, **kwargs))
                   for arg in registry.get(case.loss).differentiable_for(args, kwargs)]
    for wrt, ex in checks:
        lo, hi = brute(case, wrt)
        r_lo = R.to_dtype(lo, case.dtype).astype(np.float64)
        r_hi = R.to_dtype(hi, case.dtype).astype(np.float64)
        # the brute force itself settled: both precisions agree AND the 800-bit value is not within
        # 2^-700 of a rounding boundary (a tiny term below both precisions would put both exactly on
        # a midpoint, where ties-to-even agrees with itself and proves nothing)
        sure = (r_lo == r_hi) | (np.isnan(r_lo) & np.isnan(r_hi))
        sure &= np.array([_clear_of_boundaries(v, case.dtype) for v in np.asarray(hi).reshape(-1)],
                         dtype=bool).reshape(sure.shape)
        got = ex.rounded.astype(np.float64)
        same = (got == r_hi) | (np.isnan(got) & np.isnan(r_hi))
        bad = sure & ~same & ~ex.undetermined
        assert not bad.any(), (wrt, np.argwhere(bad)[:5].tolist(), got[bad][:5], r_hi[bad][:5])


@pytest.mark.parametrize("fmt_name", ["bfloat16", "float16", "float32"])
def test_a_tail_below_the_grid_rounds_as_the_exact_sum_does(fmt_name):
    """settle._below_grid decides exact + tail from exponents when the tail lies below the grid of
    the exact part and of every rounding boundary: checked against the exact sum formed by mpmath
    (tails down to 2^-3000, where the sum still fits) on midpoints, representable values, the
    overflow threshold and subnormals, with tails of both signs."""
    from mpmath import libmp

    from reference.formats import get_format, round_mpf
    from reference.settle import _below_grid

    fmt = get_format(fmt_name)
    q = fmt.qmin
    top = fmt.max_finite
    exacts = [mpmath.mpf(1.5) * mpmath.ldexp(1, q), mpmath.ldexp(3, q - 1), mpmath.mpf(1) + mpmath.ldexp(1, -fmt.p),
              mpmath.mpf(top) + mpmath.ldexp(1, int(mpmath.floor(mpmath.log(top, 2))) - fmt.p),  # the threshold
              mpmath.mpf(top), -mpmath.mpf(4098), mpmath.mpf(0.75) * mpmath.ldexp(1, q), mpmath.mpf(12345.5)]
    decided = 0
    for e in exacts:
        for sign in (1, -1):
            for k in (20, 200, 3000):
                t = sign * mpmath.ldexp(1, q - k)
                got = _below_grid(e._mpf_, t._mpf_, fmt)
                with mpmath.workprec(4000):
                    want = round_mpf(e + t, fmt)
                if got is None:
                    assert k == 20 or e == 0, (e, k)  # only a tail close to the grid is refused
                    continue
                decided += 1
                stored, r = got
                assert r == want or (r == 0 and want == 0), (fmt_name, e, sign, k, r, want)
                with mpmath.workprec(4000):  # the stored value is within 2^-11 ulp of the value
                    assert abs(mpmath.mpf(stored) - (e + t)) <= mpmath.ldexp(1, q - 11)
    assert decided >= 2 * 2 * len(exacts)
    # a tail on the grid's scale is left to the exact sum
    one = mpmath.mpf(1)._mpf_
    assert _below_grid(one, mpmath.ldexp(1, q - 5)._mpf_, fmt) is None
    assert _below_grid(libmp.fzero, mpmath.ldexp(1, -5000)._mpf_, fmt) is None
