"""harness.backends: load()/available(), the torch backend's exactness, the Unsupported guard."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_backends_support import DTYPES, NUMPY, TORCH, case, np_of, same_bits, torch_of

from harness import backends
from harness.backends import Backend, BackendLoadError, Observation, Unsupported, load
from harness.backends.convert import to_numpy, to_torch

# ---- load() and available() ---------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("no.such.module", "backend 'no.such.module': cannot import module 'no.such.module'"),
    ("nosuchbackend", "backend 'nosuchbackend': unknown backend"),
    ("torch.nn.functional:nope", ("backend 'torch.nn.functional:nope': module 'torch.nn.functional' "
                                  "has no attribute 'nope'")),
    ("json", "backend 'json': provides none of cross_entropy"),
    ("not a name!", "backend 'not a name!': unknown backend"),
    ("", "empty backend name"),
])
def test_load_errors_are_one_line(spec, message):
    with pytest.raises(BackendLoadError) as err:
        load(spec)
    assert str(err.value).startswith(message) if spec else message in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_load_error_of_a_module_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "broken_backend_mod.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BackendLoadError, match=r"^backend 'broken_backend_mod': cannot import module "
                                               r"'broken_backend_mod': ModuleNotFoundError: .*no_such_dependency_xyz"):
        load("broken_backend_mod")


def test_builtin_names_and_available():
    avail = backends.available()
    assert list(avail)[:4] == ["torch", "numpy", "numpy-naive", "jax"]
    assert torch.__version__.split("+")[0] in avail["torch"]
    jax_present = importlib.util.find_spec("jax") is not None and importlib.util.find_spec("optax") is not None
    assert avail["jax"].startswith("unavailable") != jax_present
    assert load("torch").name == "torch" and load("numpy").name == "numpy"
    assert load("numpy-naive").name == "numpy-naive"


def test_module_spec_is_a_dropin_named_by_its_spec():
    b = load("torch.nn:functional")
    assert b.name == "torch.nn:functional"
    assert all(b.supports(loss) for loss in ("cross_entropy", "mse_loss", "softmax"))
    assert not b.supports("not_a_loss")


def test_dropin_lacking_a_function_is_unsupported_not_failed():
    b = load("test_backends_support:PARTIAL")
    assert b.supports("softmax") and not b.supports("cross_entropy")
    x = np.array([[1.0, 2.0]], np.float32)
    with pytest.raises(Unsupported, match="does not provide cross_entropy"):
        b.evaluate(case("cross_entropy", [x, np.array([0])]))
    assert same_bits(b.evaluate(case("softmax", [x], {"dim": 1})).value, np_of(F.softmax(torch_of(x), 1)))


class _FakeEntryPoint:
    def __init__(self, obj, value="plugin.mod:thing"):
        self._obj, self.value = obj, value

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_points(monkeypatch):
    class Plugin:  # a ready-made backend object (not our subclass)
        name = "plugin-backend"

        def supports(self, loss):
            return loss == "mse_loss"

        def evaluate(self, c):
            raise NotImplementedError("no float16 here")

    eps = {"dropin": _FakeEntryPoint(SimpleNamespace(mse_loss=F.mse_loss)),
           "ready": _FakeEntryPoint(Plugin()),
           "broken": _FakeEntryPoint(ImportError("plugin needs libfoo\nsecond line"))}
    monkeypatch.setattr(backends.loading, "entry_points", lambda: eps)
    x = np.array([1.0, 2.0]), np.array([0.5, 0.25])
    dropin = load("dropin")
    assert dropin.name == "dropin" and not dropin.supports("cross_entropy")
    assert same_bits(dropin.evaluate(case("mse_loss", x)).value, np.array(F.mse_loss(*map(torch_of, x)).item()))
    ready = load("ready")
    assert ready.name == "plugin-backend" and ready.supports("mse_loss") and not ready.supports("softmax")
    with pytest.raises(Unsupported, match="no float16 here"):
        ready.evaluate(case("mse_loss", x))
    with pytest.raises(BackendLoadError, match=r"^backend 'broken': entry point 'plugin.mod:thing' failed "
                                               r"to load: ImportError: plugin needs libfoo$"):
        load("broken")
    assert backends.available()["ready"] == "entry point plugin.mod:thing"


# ---- exact conversion -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_conversion_round_trips_bits(dtype):
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -2.5, 3e-45, 1e-8, 6e4])
    with np.errstate(all="ignore"):
        a = specials.astype(NUMPY[dtype])
    t = to_torch(a)
    assert t.dtype == TORCH[dtype]
    back = to_numpy(t)
    assert back.dtype == a.dtype
    width = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}[dtype]
    assert np.array_equal(back.view(width), a.view(width))  # -0.0 and NaN payloads included
    zero_d = to_torch(a[5].reshape(()))
    assert zero_d.shape == () and to_numpy(zero_d).shape == ()
    assert to_torch(np.array([3, -100])).dtype == torch.int64


# ---- torch backend: bit-for-bit torch.nn.functional -----------------------------------------------

def _torch_cases(dtype):
    """(loss, torch args, kwargs, reduction-none?) on small random data in ``dtype``."""
    g = torch.Generator().manual_seed(7)
    dt = TORCH[dtype]
    x = (torch.randn(4, 5, generator=g) * 3).to(dt)
    t = torch.tensor([0, 4, 2, -100])
    w = torch.rand(5, generator=g).to(dt) + 0.5
    p = torch.rand(4, 5, generator=g).to(dt)
    probs = torch.softmax(torch.randn(4, 5, generator=g), 1).to(dt)
    return [
        ("cross_entropy", (x, t), {}),
        ("cross_entropy", (x, t), {"weight": w, "label_smoothing": 0.1, "reduction": "none"}),
        ("cross_entropy", (x, probs), {"reduction": "sum"}),
        ("cross_entropy", (x.reshape(2, 5, 2).contiguous(), torch.tensor([[1, 3], [0, 4]])), {"reduction": "none"}),
        ("cross_entropy", (x[0], torch.tensor(3)), {}),
        ("nll_loss", (x, t), {"weight": w}),
        ("binary_cross_entropy", (p, (p > 0.5).to(dt)), {"reduction": "none"}),
        ("binary_cross_entropy_with_logits", (x, p), {"pos_weight": w, "weight": w}),
        ("softmax", (x,), {"dim": 0}),
        ("log_softmax", (x,), {"dim": 1}),
        ("mse_loss", (x, p), {"reduction": "sum"}),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_backend_is_torch_bit_for_bit(dtype):
    backend = load("torch")
    g = torch.Generator().manual_seed(1)
    for loss, targs, kwargs in _torch_cases(dtype):
        fn = getattr(F, loss)
        xg = targs[0].clone().requires_grad_(True)
        want = fn(xg, *targs[1:], **kwargs)
        go = (torch.rand(want.shape, generator=g) + 0.5).to(want.dtype)  # non-uniform grad_output
        want.backward(go)
        c = case(loss, [np_of(a) for a in targs],
                 {k: np_of(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()},
                 grad=True, grad_output=np_of(go), dtype=dtype)
        obs = backend.evaluate(c)
        assert isinstance(obs, Observation)
        assert obs.value.dtype == NUMPY[dtype], loss
        assert same_bits(obs.value, np_of(want)), (loss, kwargs)
        assert same_bits(obs.grad, np_of(xg.grad)), (loss, kwargs)
    # without grad: same value, no gradient, and the case's arrays are left untouched
    loss, targs, kwargs = _torch_cases(dtype)[0]
    c = case(loss, [np_of(a) for a in targs], kwargs, dtype=dtype)
    before = [a.copy() for a in c.args]
    obs = backend.evaluate(c)
    assert obs.grad is None and same_bits(obs.value, np_of(F.cross_entropy(*targs)))
    assert all(same_bits(a, b) for a, b in zip(c.args, before))


def test_torch_backend_grad_none_when_output_is_not_differentiable():
    detached = SimpleNamespace(mse_loss=lambda x, y, **kw: F.mse_loss(x, y, **kw).detach())
    b = backends.from_object("detached", detached)
    x = np.array([1.0, 3.0], np.float32)
    obs = b.evaluate(case("mse_loss", [x, np.zeros(2, np.float32)], grad=True, grad_output=np.array(1, np.float32)))
    assert obs.value == np.float32(5.0) and obs.grad is None


def test_torch_backend_rejects_non_tensor_results():
    b = backends.from_object("lists", SimpleNamespace(softmax=lambda x, dim: [1.0]))
    with pytest.raises(TypeError, match="softmax returned list, not a torch.Tensor"):
        b.evaluate(case("softmax", [np.ones(2)], {"dim": 0}))


# ---- the Unsupported guard ------------------------------------------------------------------------

def test_not_implemented_errors_become_unsupported_other_errors_propagate():
    def missing_kernel(x, dim):
        raise RuntimeError('"softmax_lastdim_kernel_impl" not implemented for \'BFloat16\'')

    def boom(x, dim):
        raise RuntimeError("boom")

    def nie(x, dim):
        raise NotImplementedError

    c = case("softmax", [np.ones(3, ml_dtypes.bfloat16)], {"dim": 0})
    for fn in (missing_kernel, nie):
        with pytest.raises(Unsupported, match=r"softmax bfloat16"):
            backends.from_object("b", SimpleNamespace(softmax=fn)).evaluate(c)
    with pytest.raises(RuntimeError, match="^boom$"):
        backends.from_object("b", SimpleNamespace(softmax=boom)).evaluate(c)


def test_backend_subclasses_are_used_as_is():
    class Mine(Backend):
        name = "mine"

        def supports(self, loss):
            return True

        def _evaluate(self, c):
            raise NotImplementedError("later")

    assert backends.from_object("x", Mine).name == "mine"
    with pytest.raises(Unsupported, match="later"):
        backends.from_object("x", Mine()).evaluate(case("softmax", [np.ones(2)], {"dim": 0}))


def test_jax_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "optax", None)  # import optax -> ImportError
    # jax itself may be absent too (CI installs no extras): then it is named first
    with pytest.raises(BackendLoadError, match=r"^backend 'jax': cannot import (jax|optax); pip install "
                                               r"'losscheck\[jax\]'"):
        load("jax")
