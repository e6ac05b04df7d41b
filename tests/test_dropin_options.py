"""A keyword option a drop-in's function does not take (issue 13 §4): the case is *unsupported*
for that backend -- "backend 'x': cross_entropy has no option 'label_smoothing'" -- rather than a
TypeError recorded as an error; an option at its default asks for nothing and is left out of the
call; where no signature can be read the call is made as user code would make it."""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cases.model import make_case
from harness.backends import Unsupported, from_object
from harness.cache import OracleCache
from harness.task import evaluate_task
from harness.tolerances import DEFAULTS


def _old_cross_entropy(input, target, weight=None, reduction="mean"):
    """torch's cross_entropy before ignore_index and label_smoothing (a fake drop-in's)."""
    return F.cross_entropy(input, target, weight=weight, reduction=reduction)


def _open_cross_entropy(input, target, **kwargs):
    SEEN.append(sorted(kwargs))
    return F.cross_entropy(input, target, **kwargs)


class _NoSignature:
    """A callable whose signature cannot be read (like some C builtins)."""

    __signature__ = "not a signature"  # inspect.signature raises TypeError on it

    def __call__(self, input, target, weight=None, reduction="mean"):
        return F.cross_entropy(input, target, weight=weight, reduction=reduction)


SEEN: list = []
OLD = SimpleNamespace(cross_entropy=_old_cross_entropy)
OPEN = SimpleNamespace(cross_entropy=_open_cross_entropy)
OPAQUE = SimpleNamespace(cross_entropy=_NoSignature())

X = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, -3.0]], np.float32)
T = np.array([2, 0])


def _case(**kwargs):
    return make_case("cross_entropy", (X, T), kwargs, family="test.hand", grad=False)


def test_an_option_the_function_lacks_is_unsupported():
    backend = from_object("fake", OLD)
    with pytest.raises(Unsupported) as err:
        backend.evaluate(_case(label_smoothing=0.1))
    assert str(err.value) == "backend 'fake': cross_entropy has no option 'label_smoothing'"
    with pytest.raises(Unsupported, match="has no option 'ignore_index'"):
        backend.evaluate(_case(ignore_index=1))


def test_an_option_at_its_default_is_left_out_of_the_call():
    backend = from_object("fake", OLD)
    obs = backend.evaluate(_case(ignore_index=-100, label_smoothing=0.0, reduction="sum"))
    want = F.cross_entropy(torch.from_numpy(X.copy()), torch.from_numpy(T.copy()), reduction="sum")
    assert float(obs.value) == float(want)


def test_kwargs_functions_get_every_option():
    SEEN.clear()
    from_object("open", OPEN).evaluate(_case(label_smoothing=0.1, ignore_index=-100))
    assert SEEN == [["ignore_index", "label_smoothing"]]


def test_without_a_signature_the_call_is_made_as_today():
    backend = from_object("opaque", OPAQUE)
    assert float(backend.evaluate(_case(reduction="sum")).value) > 0
    with pytest.raises(TypeError, match="label_smoothing"):  # the function's own error: an error record
        backend.evaluate(_case(label_smoothing=0.1))


def test_the_record_is_unsupported_not_an_error(tmp_path):
    cache = OracleCache(tmp_path)
    case = _case(label_smoothing=0.1)
    cache.get(case, "value")
    recs, _ = evaluate_task(from_object("fake", OLD), "fake", case, ["value"], cache.read_only(), DEFAULTS)
    assert recs[0]["status"] == "unsupported" and recs[0]["verdict"] == "unsupported"
    assert recs[0]["message"] == "Unsupported: backend 'fake': cross_entropy has no option 'label_smoothing'"
    assert "provided" not in recs[0]  # the loss is provided; this case's option is not


def test_torch_is_called_with_every_option_it_takes():
    """torch.nn.functional's own functions get each option of the smoke suite's cases that their
    signatures declare, unchanged (losscheck-only options, which torch lacks, are another matter)."""
    import cases
    from harness.backends import load

    torch_backend = load("torch")
    checked = 0
    for case in cases.build_suite("smoke"):
        fn = getattr(F, case.loss, None)
        if fn is not None and set(case.kwargs) <= set(inspect.signature(fn).parameters):
            assert torch_backend._options(fn, case.loss, dict(case.kwargs)) == {k: (k, v) for k, v in case.kwargs.items()}
            checked += bool(case.kwargs)
    assert checked > 20


def test_an_option_torch_names_differently_goes_by_torch_s_name():
    """linear_cross_entropy's bias is F.linear_cross_entropy's linear_bias (torch >= 2.13): passed
    under that name, and its gradient still reported as grad:bias."""
    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("this torch has no F.linear_cross_entropy")
    import cases
    from harness.backends import load

    case = next(c for c in cases.build_suite("gate")
                if c.loss == "linear_cross_entropy" and "bias" in c.kwargs and c.dtype == "float32")
    obs = load("torch").evaluate(case)
    assert obs.value.ndim in (0, 1)
    assert set(obs.grads) == {"input", "weight", "bias"}
