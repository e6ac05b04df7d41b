"""Stored exact values are precise enough that error figures are right to 1e-3 ulp (issue 9): the
ulp error of torch's answers, figured against the oracle's Exact, equals the one figured against
an independent brute force at 1000 bits, to 1e-3 ulp, in every dtype (float64 included)."""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

import cases
import reference as R
from harness.backends import load
from reference.formats import ulp_error

ROOT_CASE = "391f8c733ad63f1b"  # torch's worst element is really 2.146 ulp; once reported as 2.0


def _sample():
    gate = cases.build_suite("gate")
    picked = [c for c in gate if c.id == ROOT_CASE]
    seen = set()
    for c in gate:
        key = (c.loss, c.dtype)
        if key not in seen and c.args[0].size <= 64 and c.grad:
            seen.add(key)
            picked.append(c)
    return picked


@pytest.mark.parametrize("case", _sample(), ids=lambda c: f"{c.loss}-{c.dtype}-{c.id}")
def test_error_figures_are_right_to_a_thousandth_of_an_ulp(case):
    import torch.nn.functional as F

    # torch's answers where it has the loss; the numpy backend's for another library's (focal)
    obs = load("torch" if hasattr(F, case.loss) else "numpy").evaluate(case)
    args, kwargs = case.call()
    d = R.registry.get(case.loss)
    for check in case.checks:
        observed = obs.observed(check)
        if observed is None:
            continue
        ex = R.evaluate_check(case.loss, check, *args, grad_output=case.grad_output, **kwargs)
        wrt = None if check == "value" else check.partition(":")[2]
        with mpmath.workprec(1000):
            brute = d.brute(args, kwargs, grad_output=case.grad_output, wrt=wrt)
        ours = ulp_error(ex, observed, case.dtype)
        truth = ulp_error(np.asarray(brute, dtype=object), observed, case.dtype)
        det = ~ex.undetermined & np.isfinite(ours) & np.isfinite(truth)
        assert np.all(np.abs(ours[det] - truth[det]) <= 1e-3), (check, np.max(np.abs(ours[det] - truth[det])))
