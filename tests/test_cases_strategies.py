import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cases
from cases import strategies
from reference import registry

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _to_torch(a):
    if str(a.dtype) == "bfloat16":
        return torch.from_numpy(np.array(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(a))


def _torch_accepts(case):
    args, kwargs = case.call()
    if not hasattr(F, case.loss):  # a loss of another library (torchvision's focal): its one validator
        registry.get(case.loss).validate(args, kwargs)  # is the check; its test file compares it with
        return  # a transcription of that library
    fn = getattr(F, case.loss)
    params = inspect.signature(fn).parameters
    kwargs = registry.get(case.loss).torch_kwargs(kwargs, params.__contains__)
    out = fn(*map(_to_torch, args), **{k: (_to_torch(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()})
    assert tuple(out.shape) == cases.output_shape(case.loss, args, kwargs)


@pytest.mark.parametrize("loss", registry.LOSSES)
def test_strategy_yields_valid_cases(loss):
    @SETTINGS
    @given(strategies.cases_for(loss, dtype=("float16", "bfloat16", "float32", "float64")))
    def check(case):
        assert isinstance(case, cases.Case) and case.loss == loss
        assert case.family == f"strategy.{loss}" and len(case.id) == 16
        _torch_accepts(case)
    check()


@SETTINGS
@given(strategies.cross_entropy_cases(dtype="bfloat16", max_classes=4, reductions=("none",),
                                      probability_targets=False, weights=False, ignore_index=False,
                                      label_smoothing=(0.0,)))
def test_cross_entropy_strategy_respects_arguments(case):
    x, t = case.args
    assert case.dtype == "bfloat16" and 1 <= x.shape[1] <= 4 and t.dtype == np.int64
    assert case.kwargs["reduction"] == "none" and "weight" not in case.kwargs
    assert case.options == "plain"


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_strategies_reach_option_families(data):
    case = data.draw(strategies.cross_entropy_cases(dtype="float32"))
    assert case.options.split("+")[0] in ("plain", "weight", "ignore_index", "label_smoothing",
                                          "probability_target")


def test_unknown_arguments_fail_clearly():
    with pytest.raises(ValueError, match="unknown dtype"):
        strategies.cross_entropy_cases(dtype="float8")
    with pytest.raises(ValueError, match="unknown loss"):
        strategies.cases_for("hinge")
