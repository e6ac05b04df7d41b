"""Golden numbers from the seed tutorials (../shared/seeds/): the oracle must reproduce them.

Printed figures are 4-5 significant digits (torch's print) or full float64 reprs; each assert uses
the precision the source printed, nothing looser.
"""
import numpy as np
import pytest

import reference as R

F32 = np.float32


def f64(v):
    return R.to_dtype(v, "float64").astype(float)


def near(got, want, digits):
    np.testing.assert_allclose(f64(got), np.asarray(want, float), rtol=0, atol=0.5 * 10.0 ** -digits)


X3 = np.array([[1, 2], [1, 3], [1, 3]], F32)
T3 = np.array([0, 1, 1])


def test_ce_three_reductions():  # seed 001
    near(R.cross_entropy(X3, T3, reduction="none"), [1.3133, 0.1269, 0.1269], 4)
    near(R.cross_entropy(X3, T3, reduction="sum"), 1.5671, 4)
    near(R.cross_entropy(X3, T3, reduction="mean"), 0.5224, 4)
    # the "done when" figure, exactly: log(1+e) + 2 log(1+e^-2) rounded to float32
    assert R.to_dtype(R.cross_entropy(X3, T3, reduction="sum"), np.float32) == np.float32(1.5671177)


def test_ce_class_weights():  # seed 001: weights [1, 2]
    w = np.array([1, 2], F32)
    near(R.cross_entropy(X3, T3, weight=w, reduction="none"), [1.3133, 0.2539, 0.2539], 4)
    near(R.cross_entropy(X3, T3, weight=w, reduction="sum"), 1.8210, 4)
    near(R.cross_entropy(X3, T3, weight=w, reduction="mean"), 0.3642, 4)


def test_nll_on_raw_inputs():  # seed 001: NLL takes the input as given
    w = np.array([1, 1], F32)
    near(R.nll_loss(X3, T3, weight=w, reduction="none"), [-1, -3, -3], 6)
    near(R.nll_loss(X3, T3, weight=w, reduction="sum"), -7, 6)
    near(R.nll_loss(X3, T3, weight=w, reduction="mean"), -2.3333, 4)


def test_nll_of_log_probabilities():  # seed 002: two models, NLLLoss(log p)
    y = np.array([2, 1, 0])
    one = np.log(np.array([[0.3, 0.3, 0.4], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7]], F32))
    two = np.log(np.array([[0.1, 0.2, 0.7], [0.1, 0.7, 0.2], [0.4, 0.3, 0.3]], F32))
    near(R.nll_loss(one, y), 1.3784, 4)
    near(R.nll_loss(two, y), 0.5432, 4)


X5 = np.array([[5, 4, 2], [4, 2, 8], [4, 4, 1]], F32)
Y5 = np.array([0, 2, 1])


def test_ce_sum_and_its_gradient_table():  # seed 002
    # torch's float32 printed 1.0873291492462158; the exact value is 1.08732927438..., so torch was
    # 1.05 float32 ulps off there (a real, small error): assert the exact value and that distance.
    exact = R.cross_entropy(X5, Y5, reduction="sum")
    assert abs(f64(exact) - 1.0873292743822183) < 1e-15
    ulps = R.formats.ulp_error(exact, np.float32(1.0873291492462158), "float32")
    assert 1.0 < float(ulps) < 1.1
    near(R.softmax(X5, dim=1), [[0.7054, 0.2595, 0.0351], [0.0179, 0.0024, 0.9796], [0.4879, 0.4879, 0.0243]], 4)
    near(-R.log_softmax(X5, dim=1).astype(object),
         [[0.3490, 1.3490, 3.3490], [4.0206, 6.0206, 0.0206], [0.7177, 0.7177, 3.7177]], 4)
    near(R.grad("cross_entropy", X5, Y5, reduction="sum"),
         [[-0.2946, 0.2595, 0.0351], [0.0179, 0.0024, -0.0204], [0.4879, -0.5121, 0.0243]], 4)


def test_softmax_worked_example():  # seed 002
    near(R.softmax(np.array([2, 1, 0.1], F32), dim=0), [0.6590, 0.2424, 0.0986], 4)
    # and the rows of seed 000
    s = R.softmax(np.array([[13., 3., 2., 5., 1.], [1., 8., 20., 2., 3.], [1., 14., 3., 5., 3.]], F32), dim=1)
    np.testing.assert_allclose(f64(s), [[9.9960e-01, 4.5382e-05, 1.6695e-05, 3.3533e-04, 6.1417e-06],
                                        [5.6028e-09, 6.1442e-06, 9.9999e-01, 1.5230e-08, 4.1399e-08],
                                        [2.2600e-06, 9.9984e-01, 1.6699e-05, 1.2339e-04, 1.6699e-05]], rtol=1e-4)


BCE_X = np.array([[1, 2], [2, 2], [3, 4], [4, 5]], F32)
BCE_Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], F32)
BCE_NONE = [[0.3133, 2.1269], [0.1269, 2.1269], [3.0486, 0.0181], [4.0181, 0.0067]]


def test_bce_table():  # seed 001: BCELoss on sigmoid(inputs)
    p = (1 / (1 + np.exp(-BCE_X.astype(np.float64)))).astype(F32)
    w = np.array([1, 1], F32)
    near(R.binary_cross_entropy(p, BCE_Y, weight=w, reduction="none"), BCE_NONE, 4)
    near(R.binary_cross_entropy(p, BCE_Y, weight=w, reduction="sum"), 11.7856, 4)
    near(R.binary_cross_entropy(p, BCE_Y, weight=w, reduction="mean"), 1.4732, 4)


def test_bce_with_logits_tables_and_pos_weight():  # seed 001
    w = np.array([1, 1], F32)
    near(R.binary_cross_entropy_with_logits(BCE_X, BCE_Y, weight=w, reduction="none"), BCE_NONE, 4)
    near(R.binary_cross_entropy_with_logits(BCE_X, BCE_Y, weight=w, reduction="sum"), 11.7856, 4)
    pw = np.array([3], F32)
    w1 = np.array([1], F32)
    near(R.binary_cross_entropy_with_logits(BCE_X, BCE_Y, weight=w1, pos_weight=pw, reduction="none"),
         [[0.9398, 2.1269], [0.3808, 2.1269], [3.0486, 0.0544], [4.0181, 0.0201]], 4)
    near(R.binary_cross_entropy_with_logits(BCE_X, BCE_Y, weight=w1, pos_weight=pw, reduction="sum"), 12.7158, 4)
    near(R.binary_cross_entropy_with_logits(BCE_X, BCE_Y, weight=w1, pos_weight=pw, reduction="mean"), 1.5895, 4)


@pytest.mark.parametrize("pred,want", [
    ([1e-5, 0.99999, 1e-5], 3.0000150000863473e-05),
    ([0.1, 0.8, 0.1], 0.43386458262986227),
    ([0.2, 0.6, 0.2], 0.9571127263944101),
    ([0.3, 0.4, 0.3], 1.62964061975162),
])
def test_bce_sum_float64_seed003(pred, want):
    """Seed 003 prints full float64 values of a NumPy BCE sum.

    Its NumPy code evaluates log(1 - p) as log of the rounded 1 - p; for p = 1e-5 that alone costs
    ~1e-16 / 1e-5 = 1e-11 relative, so the printed figures are good to about 1e-11 and no better.
    """
    got = f64(R.binary_cross_entropy(np.array(pred), np.array([0., 1., 0.]), reduction="sum"))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_probability_target_entropy_seed000():
    """H(P1, Q1) = -log 0.4: CE with a one-hot probability target on logits log Q."""
    q = np.log(np.array([[0.4, 0.3, 0.05, 0.05, 0.2]]))
    p = np.array([[1., 0, 0, 0, 0]])
    np.testing.assert_allclose(f64(R.cross_entropy(q, p, reduction="sum")), -np.log(0.4), rtol=1e-15)
    q2 = np.log(np.array([[0.98, 0.01, 1e-300, 1e-300, 0.01]]))
    near(R.cross_entropy(q2, p, reduction="sum"), 0.0202, 4)
