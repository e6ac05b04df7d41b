"""The optional jax backend (skipped when jax/optax are not installed)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch.nn.functional as F
from test_backends_support import case, torch_of

from harness.backends import Unsupported, load

pytest.importorskip("jax")
pytest.importorskip("optax")

RNG = np.random.default_rng(5)
X = RNG.normal(size=(4, 5)) * 3
T = np.array([0, 4, 2, 1])
P = RNG.dirichlet(np.ones(5), size=4)
Y = RNG.uniform(size=(4, 5))
XS = RNG.normal(size=(2, 3, 4))


@pytest.mark.parametrize("loss, args, kwargs", [
    ("cross_entropy", (X, T), {}),
    ("cross_entropy", (X, T), {"reduction": "none", "label_smoothing": 0.1}),
    ("cross_entropy", (X, P), {"reduction": "sum", "label_smoothing": 0.2}),
    ("cross_entropy", (XS, np.array([[0, 2, 1, 0], [1, 1, 2, 0]])), {"reduction": "none"}),
    ("cross_entropy", (X[0], np.array(3)), {}),
    ("softmax", (XS,), {"dim": 1}),
    ("log_softmax", (XS,), {"dim": -1}),
    ("binary_cross_entropy_with_logits", (X, Y), {}),
    ("mse_loss", (X, Y), {"reduction": "none"}),
])
def test_jax_matches_torch_in_float64(loss, args, kwargs):
    targs = [torch_of(a) for a in args]
    targs[0].requires_grad_(True)
    want = getattr(F, loss)(*targs, **kwargs)
    go = RNG.uniform(0.5, 2, size=tuple(want.shape))
    want.backward(torch_of(np.asarray(go)))
    obs = load("jax").evaluate(case(loss, args, kwargs, grad=True, grad_output=np.asarray(go)))
    assert obs.value.dtype == np.float64 and obs.grad.dtype == np.float64
    np.testing.assert_allclose(obs.value, want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(obs.grad, targs[0].grad.numpy(), rtol=1e-10, atol=1e-14)


def test_jax_keeps_the_case_dtype():
    x = X.astype(ml_dtypes.bfloat16)
    obs = load("jax").evaluate(case("log_softmax", [x], {"dim": 1}))
    assert obs.value.dtype == np.dtype(ml_dtypes.bfloat16) and obs.value.shape == (4, 5)
    assert load("jax").evaluate(case("mse_loss", [X.astype(np.float16), Y.astype(np.float16)])).value.dtype == np.float16


def test_jax_unsupported_options_are_not_reimplemented():
    b = load("jax")
    assert not b.supports("nll_loss") and not b.supports("binary_cross_entropy")
    for kwargs, what in (({"weight": np.ones(5)}, "class weights"), ({"ignore_index": 2}, "ignore_index")):
        with pytest.raises(Unsupported, match=what):
            b.evaluate(case("cross_entropy", [X, T], kwargs))
    with pytest.raises(Unsupported, match="pos_weight"):
        b.evaluate(case("binary_cross_entropy_with_logits", [X, Y], {"pos_weight": np.ones(5)}))
    # an ignore_index no target uses changes nothing: plain
    assert np.isfinite(b.evaluate(case("cross_entropy", [X, T], {"ignore_index": 7})).value)
