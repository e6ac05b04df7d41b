"""Every family yields cases the oracle accepts (value and every declared gradient)."""
import numpy as np
import pytest

import cases
import reference
from cases.families import FAMILIES

MAX_ELEMENTS = 5000


def _evaluate(c):
    args, kwargs = c.call()
    exact = reference.evaluate(c.loss, *args, **kwargs)
    assert exact.rounded.shape == cases.output_shape(c.loss, args, kwargs), c
    assert exact.dtype == c.dtype and not np.any(exact.undetermined), c
    d = reference.registry.get(c.loss)
    for arg in (d.differentiable_for(args, kwargs) if c.grad else ()):
        g = reference.evaluate_grad(c.loss, *args, grad_output=c.grad_output, wrt=arg, **kwargs)
        assert g.rounded.shape == d.arg_shape(arg, args, kwargs), (c, arg)


def test_oracle_accepts_smoke():
    for c in cases.build_suite("smoke"):
        _evaluate(c)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_oracle_accepts_gate_family(family):
    sample = [c for c in cases.build_suite("gate") if c.family == family and c.args[0].size <= MAX_ELEMENTS]
    assert sample, family
    errors = []
    for c in sample:
        try:
            _evaluate(c)
        except Exception as e:  # noqa: BLE001  collect all, so one run names every failing case
            errors.append(f"{c} {c.meta.get('note', '')}: {type(e).__name__}: {e}")
    assert not errors, "\n".join(errors)
