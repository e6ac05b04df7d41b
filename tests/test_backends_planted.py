"""Each planted module in tests/planted really has its defect (so meta-tests cannot pass vacuously)."""
from __future__ import annotations

import importlib
import math

import ml_dtypes
import numpy as np
import pytest
import test_backends_support  # noqa: F401  (puts the repo root on sys.path)
import torch.nn.functional as F
from test_backends_support import case, np_of, same_bits, torch_of

from harness.backends import Unsupported, load

SEVEN = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
         "softmax", "log_softmax", "mse_loss")
PLANTED = importlib.import_module("tests.planted")


@pytest.mark.parametrize("name", PLANTED.DEFECTS + PLANTED.MISBEHAVING + PLANTED.POLICY)
def test_every_planted_module_is_a_full_dropin(name):
    b = load(f"tests.planted.{name}")
    assert b.name == f"tests.planted.{name}"
    assert all(b.supports(loss) for loss in SEVEN)


def _both(name, loss, args, kwargs=None, **kw):
    """(planted observation, torch observation) for one case."""
    c = case(loss, args, kwargs, **kw)
    return load(f"tests.planted.{name}").evaluate(c), load("torch").evaluate(c)


def test_log_of_softmax_underflows_to_inf_on_a_confident_row():
    x = np.array([[0.0, -200.0, 0.0]], np.float32)  # e^-200 underflows float32
    bad, good = _both("log_of_softmax", "cross_entropy", [x, np.array([1])])
    assert good.value == pytest.approx(200 + math.log(2), rel=1e-6) and bad.value == np.inf
    bad, good = _both("log_of_softmax", "log_softmax", [x], {"dim": 1})
    assert bad.value[0, 1] == -np.inf and np.isfinite(good.value).all()
    ok, ref = _both("log_of_softmax", "cross_entropy", [np.array([[1.0, 2.0, 0.5]]), np.array([2])])
    assert ok.value == pytest.approx(float(ref.value), rel=1e-12)  # benign rows are still right


def test_mean_over_n_differs_only_with_weights():
    x = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    t = np.array([0, 2])
    w = np.array([1.0, 2.0, 3.0])
    bad, good = _both("mean_over_n", "cross_entropy", [x, t], {"weight": w})
    # torch divides the weighted sum by w[0] + w[2] = 4, the defect by N = 2
    assert float(bad.value) == pytest.approx(2 * float(good.value), rel=1e-12)
    bad, good = _both("mean_over_n", "nll_loss", [x, t], {"weight": w})
    assert float(bad.value) == pytest.approx(2 * float(good.value), rel=1e-12)
    bad, good = _both("mean_over_n", "cross_entropy", [x, t])
    assert same_bits(bad.value, good.value)


def test_bce_no_clamp_returns_inf_and_nan_where_torch_clamps():
    x = np.array([0.0, 0.0, 0.25], np.float32)
    y = np.array([1.0, 0.0, 1.0], np.float32)
    bad, good = _both("bce_no_clamp", "binary_cross_entropy", [x, y], {"reduction": "none"})
    assert good.value.tolist() == [100.0, 0.0, pytest.approx(math.log(4), rel=1e-6)]
    assert bad.value[0] == np.inf and np.isnan(bad.value[1]) and bad.value[2] == good.value[2]


def test_bcewl_via_sigmoid_saturates():
    x = np.array([30.0, 0.5], np.float32)
    y = np.array([0.0, 1.0], np.float32)
    for kwargs in ({"reduction": "none"}, {"reduction": "none", "pos_weight": np.array([2.0], np.float32)}):
        bad, good = _both("bcewl_via_sigmoid", "binary_cross_entropy_with_logits", [x, y], kwargs)
        assert good.value[0] == np.float32(30.0) and bad.value[0] == np.float32(100.0)  # log(1-1) clamped
        assert bad.value[1] == pytest.approx(float(good.value[1]), rel=1e-6)


def test_backward_ignores_grad_output():
    x = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    t = np.array([0, 2])
    go = np.array([2.0, -0.5])
    bad, good = _both("backward_ignores_grad_output", "cross_entropy", [x, t], {"reduction": "none"},
                      grad=True, grad_output=go)
    assert same_bits(bad.value, good.value)
    np.testing.assert_allclose(bad.grad * go[:, None], good.grad, rtol=1e-15)
    assert not np.allclose(bad.grad, good.grad)
    ones, ref = _both("backward_ignores_grad_output", "cross_entropy", [x, t], grad=True,
                      grad_output=np.array(1.0))
    assert same_bits(ones.grad, ref.grad)  # with grad_output 1 the defect is invisible


def test_lse_rounded_is_the_design_bfloat16_example():
    x = np.array([[-60000.0, -60000.0, -60000.0]]).astype(ml_dtypes.bfloat16)
    bad, good = _both("lse_rounded", "cross_entropy", [x, np.array([0])])
    assert float(good.value) == 1.1015625 and float(bad.value) == 0.0
    z = np.array([[1.0, 2.0, 0.5]], np.float32)
    ok, ref = _both("lse_rounded", "cross_entropy", [z, np.array([1])])
    assert float(ok.value) == pytest.approx(float(ref.value), rel=1e-6)


def test_crash_exits_the_interpreter(monkeypatch):
    crash = importlib.import_module("tests.planted.crash")

    class Exited(BaseException):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(crash.os, "_exit", fake_exit)
    with pytest.raises(Exited) as err:
        load("tests.planted.crash").evaluate(case("cross_entropy", [np.zeros((1, 2)), np.array([0])]))
    assert err.value.args == (3,)


def test_hang_never_returns(monkeypatch):
    hang = importlib.import_module("tests.planted.hang")
    naps = []

    class Woken(BaseException):
        pass

    def fake_sleep(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            raise Woken

    monkeypatch.setattr(hang.time, "sleep", fake_sleep)
    with pytest.raises(Woken):
        load("tests.planted.hang").evaluate(case("cross_entropy", [np.zeros((1, 2)), np.array([0])]))
    assert naps == [3600, 3600, 3600]  # it keeps sleeping: only a timeout ends it


def test_raises_is_an_error_not_unsupported():
    with pytest.raises(RuntimeError, match="^boom$"):
        load("tests.planted.raises").evaluate(case("cross_entropy", [np.zeros((1, 2)), np.array([0])]))


def test_wrong_shape():
    x = np.array([[1.0, 2.0], [0.0, 3.0]], np.float32)
    for red, good_shape, bad_shape in (("mean", (), (1,)), ("none", (2,), (2, 1))):
        bad, good = _both("wrong_shape", "cross_entropy", [x, np.array([0, 1])], {"reduction": red}, grad=True,
                          grad_output=np.ones(good_shape, np.float32))
        assert bad.value.shape == bad_shape and good.value.shape == good_shape
        assert bad.grad is None and good.grad is not None


def test_not_implemented_is_unsupported_for_bfloat16_only():
    b = load("tests.planted.not_implemented")
    x = np.array([[1.0, 2.0]], np.float32)
    for loss, args, kw in (("cross_entropy", [x, np.array([1])], {}), ("softmax", [x], {"dim": 1})):
        with pytest.raises(Unsupported, match="no bfloat16 kernel"):
            b.evaluate(case(loss, [args[0].astype(ml_dtypes.bfloat16), *args[1:]], kw))
        assert same_bits(b.evaluate(case(loss, args, kw)).value,
                         np_of(getattr(F, loss)(*(torch_of(a) for a in args), **kw)))


def test_lse_minus_dot_is_right_only_for_rows_of_unit_mass():
    x = np.array([[1.0, 2.0, 0.5], [0.0, 1.0, 3.0]])
    unit = np.array([[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]])
    for kwargs in ({"reduction": "none"}, {"reduction": "none", "label_smoothing": 0.2}):
        bad, good = _both("lse_minus_dot", "cross_entropy", [x, unit], kwargs)
        np.testing.assert_allclose(bad.value, good.value, rtol=1e-14)
    lse = np.log(np.exp(x).sum(axis=1))
    bad, good = _both("lse_minus_dot", "cross_entropy", [x, 2 * unit], {"reduction": "none"})
    np.testing.assert_allclose(bad.value, good.value - lse, rtol=1e-14)  # off by (s - 1) lse, s = 2
    bad, good = _both("lse_minus_dot", "cross_entropy", [x, 2 * unit], {"reduction": "sum"}, grad=True,
                      grad_output=np.float64(1.5))
    np.testing.assert_allclose(bad.grads["target"], good.grads["target"], rtol=1e-14)  # torch's target gradient
    assert not np.allclose(bad.grads["input"], good.grads["input"])
