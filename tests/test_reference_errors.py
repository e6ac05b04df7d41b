"""Invalid arguments raise ValueError naming the argument and the offending value."""
import numpy as np
import pytest

import reference as R

X = np.array([[1, 2, 3], [3, 2, 1]], np.float32)


@pytest.mark.parametrize("call,match", [
    (lambda: R.cross_entropy(X, np.array([0, 3])), r"target: class index 3 is out of range \[0, 3\)"),
    (lambda: R.cross_entropy(X, np.array([0, -1])), r"target: class index -1 is out of range"),
    (lambda: R.cross_entropy(X, np.array([0, 1]), reduction="avg"), r"reduction: unknown reduction 'avg'"),
    (lambda: R.cross_entropy(X, np.array([0, 1, 2])), r"target: expected shape \(2,\)"),
    (lambda: R.cross_entropy(X, np.array([0, 1]), weight=np.ones(2, np.float32)), r"weight: expected shape \(3,\)"),
    (lambda: R.cross_entropy(X, np.array([0, 1]), weight=np.ones(3)), r"weight: dtype float64 does not match"),
    (lambda: R.cross_entropy(X, np.array([0, 1]), label_smoothing=1.5), r"label_smoothing: must be in \[0, 1\]"),
    (lambda: R.cross_entropy(X.astype(np.int32), np.array([0, 1])), r"input: unsupported dtype 'int32'"),
    (lambda: R.cross_entropy(X, np.array([0.0, 1.0], np.float32)), r"target: probability targets must have"),
    (lambda: R.nll_loss(X, np.ones((2, 3), np.float32)), r"target: nll_loss takes class indices"),
    (lambda: R.binary_cross_entropy(np.array([1.5], np.float32), np.array([1.0], np.float32)),
     r"input: binary_cross_entropy needs values in \[0, 1\], got 1.5"),
    (lambda: R.binary_cross_entropy(np.array([0.5], np.float32), np.array([-0.25], np.float32)),
     r"target: binary_cross_entropy needs values in \[0, 1\], got -0.25"),
    (lambda: R.binary_cross_entropy(np.array([np.nan], np.float32), np.array([1.0], np.float32)),
     r"input: binary_cross_entropy needs values in \[0, 1\], got nan"),
    (lambda: R.binary_cross_entropy_with_logits(X, X[:1]), r"target: shape \(1, 3\) does not match"),
    (lambda: R.binary_cross_entropy_with_logits(X, X, pos_weight=np.ones(2, np.float32)),
     r"pos_weight: shape \(2,\) does not broadcast"),
    (lambda: R.mse_loss(X, X[0]), r"target: shape \(3,\) does not match"),
    (lambda: R.softmax(X, dim=2), r"dim: dimension 2 out of range for a 2-d input"),
    (lambda: R.evaluate("softmax", X), r"dim: softmax requires dim"),
    (lambda: R.evaluate("no_such_loss", X), r"unknown loss 'no_such_loss'"),
    (lambda: R.evaluate("cross_entropy", X, np.array([0, 1]), margin=1), r"margin: unexpected keyword"),
    (lambda: R.evaluate("cross_entropy", X, np.array([0, 1]), out_dtype="float8"), r"out_dtype: unsupported"),
    (lambda: R.evaluate_grad("cross_entropy", X, np.array([0, 1]), reduction="none", grad_output=np.ones(3)),
     r"grad_output: expected shape \(2,\)"),
    (lambda: R.cross_entropy([[1.0, 2.0]], np.array([0])), r"input: expected a NumPy array, got list"),
])
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_ignore_index_may_be_any_value():
    assert R.cross_entropy(X, np.array([0, 17]), ignore_index=17, reduction="sum") is not None
    assert R.cross_entropy(X, np.array([-5, 1]), ignore_index=-5, reduction="sum") is not None
