"""The kernel backends (issue 13 §4): inductor end to end on CPU; liger, cce and cce-compile through
fake libraries; the jax backend's newer optax losses (skipped without jax).

Liger-Kernel and cut-cross-entropy need Triton and a GPU, so their adapters are tested here against
FAKE modules put into sys.modules: functions that compute in float64 with torch and record the
arguments they were called with.  What is checked is the adapter: each losscheck argument reaches
the library under the library's name, what the library lacks is Unsupported, gradients of every
differentiable argument come back, tensors are on the backend's device, and the backends refuse
to load with one line where the package or a GPU is missing.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_backends_support import case

import cases
from harness.backends import (
    BackendLoadError,
    Unsupported,
    available,
    cce_backend,
    inductor_backend,
    kernel_libraries,
    liger_backend,
    load,
)
from reference.registry import LOSSES

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(13)
X = RNG.normal(size=(5, 7)) * 3
T = np.array([0, 6, 2, -100, 3])
H = RNG.normal(size=(5, 4))
W = RNG.normal(size=(7, 4))
B = RNG.normal(size=(7,))

needs_lce = pytest.mark.skipif("linear_cross_entropy" not in LOSSES, reason="linear_cross_entropy not registered")
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None,
                               reason="jax/optax not installed")


# --- fake libraries --------------------------------------------------------------------------------

def _ce64(logits, target, weight, ignore_index, reduction, label_smoothing, softcap, z):
    """Liger's cross-entropy in float64: softcap, then CE, plus z * lse^2 per kept position
    (unweighted; the mean divides it by the count of kept positions)."""
    z64 = logits.double()
    if softcap is not None:
        z64 = softcap * torch.tanh(z64 / softcap)
    w = None if weight is None else weight.double()
    loss = F.cross_entropy(z64, target, weight=w, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)
    if z:
        kept = (target != ignore_index).double()
        zl = z * torch.logsumexp(z64, dim=-1) ** 2 * kept
        loss = loss + {"none": zl, "sum": zl.sum(), "mean": zl.sum() / kept.sum()}[reduction]
    return loss.to(logits.dtype)


class Recorder:
    """Functions that record each call: name, keyword arguments, devices of every tensor."""

    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []

    def record(self, name, args, kwargs):
        self.calls.append((name, args, kwargs))

    def devices(self) -> set[str]:
        _, args, kwargs = self.calls[-1]
        return {str(v.device) for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)}


def fake_liger(rec: Recorder) -> types.ModuleType:
    f = types.ModuleType("liger_kernel.transformers.functional")

    def liger_cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                            reduction="mean", label_smoothing=0.0, lse_square_scale=0.0, softcap=None,
                            return_z_loss=False, return_token_accuracy=False, return_predicted_tokens=False):
        rec.record("liger_cross_entropy", (input, target), {"weight": weight, "ignore_index": ignore_index,
                   "reduction": reduction, "label_smoothing": label_smoothing, "lse_square_scale": lse_square_scale,
                   "softcap": softcap})
        return _ce64(input, target, weight, ignore_index, reduction, label_smoothing, softcap, lse_square_scale)

    def liger_fused_linear_cross_entropy(input, weight, target, bias=None, ce_weight=None, ignore_index=-100,
                                         lse_square_scale=0.0, label_smoothing=0.0, reduction="mean",
                                         softcap=None, return_z_loss=False, accum_dtype=None,
                                         use_token_scaling=False, return_token_accuracy=False,
                                         return_predicted_tokens=False, chunk_mem_const=1):
        rec.record("liger_fused_linear_cross_entropy", (input, weight, target),
                   {"bias": bias, "ce_weight": ce_weight, "ignore_index": ignore_index,
                        "lse_square_scale": lse_square_scale, "label_smoothing": label_smoothing,
                        "reduction": reduction, "softcap": softcap})
        logits = input.double() @ weight.double().T + (0 if bias is None else bias.double())
        # Liger's fused loss is float32 whatever the input (loss_1d is allocated in float32)
        return _ce64(logits, target, ce_weight, ignore_index, reduction, label_smoothing, softcap,
                     lse_square_scale).float()

    def liger_kl_div(input, target, size_average=True, reduce=True, reduction="mean", log_target=False,
                     eps=1e-10):
        rec.record("liger_kl_div", (input, target), {"reduction": reduction, "log_target": log_target})
        # Liger's backward returns None for the target: a constant, as here
        out = F.kl_div(input.double(), target.detach().double(), reduction=reduction, log_target=log_target)
        return out.float()  # Liger's kl_div output is float32

    def liger_softmax(x):
        rec.record("liger_softmax", (x,), {})
        return torch.softmax(x.double(), dim=-1).to(x.dtype)

    for fn in (liger_cross_entropy, liger_fused_linear_cross_entropy, liger_kl_div, liger_softmax):
        setattr(f, fn.__name__, fn)
    return f


def fake_cce(rec: Recorder, with_bias: bool = True) -> types.ModuleType:
    m = types.ModuleType("cut_cross_entropy")

    def lce(e, c, targets, bias=None, ignore_index=-100, softcap=None, reduction="mean", shift=0,
            filter_eps="auto", impl="cce"):
        rec.record("linear_cross_entropy", (e, c, targets), {"bias": bias, "ignore_index": ignore_index,
                   "softcap": softcap, "reduction": reduction, "shift": shift, "filter_eps": filter_eps, "impl": impl})
        logits = e.double() @ c.double().T + (0 if bias is None else bias.double())
        return _ce64(logits, targets, None, ignore_index, reduction, 0.0, softcap, 0.0).float()

    if with_bias:
        m.linear_cross_entropy = lce
    else:  # PyPI's 25.1.1: no bias parameter
        def linear_cross_entropy(e, c, targets, ignore_index=-100, softcap=None, reduction="mean", shift=False,
                                 filter_eps="high", impl="cce"):
            return lce(e, c, targets, None, ignore_index, softcap, reduction, shift, filter_eps, impl)
        m.linear_cross_entropy = linear_cross_entropy
    return m


@pytest.fixture
def rec():
    return Recorder()


def _allow_cpu(monkeypatch, name):
    lib = kernel_libraries.LIBRARIES[name]
    monkeypatch.setitem(kernel_libraries.LIBRARIES, name, dataclasses.replace(lib, devices=("cuda", "cpu")))


@pytest.fixture
def liger(rec, monkeypatch):
    """The liger backend over the fake library, allowed on CPU (the device check is what the
    unavailable tests look at)."""
    functional = fake_liger(rec)
    for name in ("liger_kernel", "liger_kernel.transformers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", functional)
    _allow_cpu(monkeypatch, "liger")
    return liger_backend.LigerBackend(device="cpu")


def _cce(rec, monkeypatch, name="cce", with_bias=True):
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", fake_cce(rec, with_bias))
    _allow_cpu(monkeypatch, name)
    return cce_backend.CCEBackend(name, device="cpu")


def _t(a):
    return torch.from_numpy(np.array(a))


# --- liger -----------------------------------------------------------------------------------------

def test_liger_cross_entropy_maps_every_option(liger, rec):
    w = RNG.uniform(0.5, 2, size=7)
    kwargs = {"weight": w, "ignore_index": -100, "reduction": "sum", "label_smoothing": 0.1}
    go = np.asarray(1.5)
    obs = liger.evaluate(case("cross_entropy", [X, T], kwargs, grad=True, grad_output=go))
    name, (x, t), got = rec.calls[-1]
    assert name == "liger_cross_entropy" and x.dtype == torch.float64 and t.dtype == torch.int64
    assert got["reduction"] == "sum" and got["label_smoothing"] == 0.1 and got["ignore_index"] == -100
    assert torch.equal(got["weight"], _t(w)) and got["lse_square_scale"] == 0.0 and got["softcap"] is None
    xt = _t(X).requires_grad_(True)
    want = F.cross_entropy(xt, _t(T), weight=_t(w), reduction="sum", label_smoothing=0.1)
    want.backward(_t(go))
    np.testing.assert_allclose(obs.value, want.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(obs.grads["input"], xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert rec.devices() == {liger.device}


def test_liger_softcap_and_z_loss_reach_lse_square_scale(liger, rec):
    # the losscheck options arrive through the adapter's own signature (cases carry them once
    # cross_entropy declares them; the fake computes Liger's formula)
    fn = liger.functions.cross_entropy
    out = fn(_t(X), _t(T), reduction="mean", softcap=5.0, z_loss=1e-3)
    got = rec.calls[-1][2]
    assert got["softcap"] == 5.0 and got["lse_square_scale"] == 1e-3 and got["reduction"] == "mean"
    z = 5.0 * torch.tanh(_t(X) / 5.0)
    kept = _t(T) != -100
    want = F.cross_entropy(z, _t(T)) + 1e-3 * (torch.logsumexp(z, -1)[kept] ** 2).mean()
    torch.testing.assert_close(out, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("args, kwargs, why", [
    ((X, RNG.dirichlet(np.ones(7), size=5)), {}, "class-index targets only"),
    ((X[0], np.array(2)), {}, "2-d"),
    ((RNG.normal(size=(2, 7, 3)), np.zeros((2, 3), np.int64)), {}, "2-d"),
])
def test_liger_cross_entropy_unsupported(liger, args, kwargs, why):
    with pytest.raises(Unsupported, match=why):
        liger.evaluate(case("cross_entropy", args, kwargs))


def test_liger_kl_div_keeps_torch_reduction_and_offers_no_target_gradient(liger, rec):
    x = np.log(RNG.dirichlet(np.ones(6), size=3))
    t = RNG.dirichlet(np.ones(6), size=3)
    obs = liger.evaluate(case("kl_div", [x, t], {"reduction": "mean"}, grad=True, grad_output=np.asarray(2.0)))
    assert rec.calls[-1][2] == {"reduction": "mean", "log_target": False}  # never Liger's batchmean default
    assert obs.value.dtype == np.float32  # what Liger returns; judging it is the runner's
    xt = _t(x).requires_grad_(True)
    F.kl_div(xt, _t(t), reduction="mean").backward(_t(np.asarray(2.0)))
    np.testing.assert_allclose(obs.grads["input"], xt.grad.numpy(), rtol=1e-12)
    assert "target" not in obs.grads and "target" not in obs.missing  # not offered: unsupported
    obs = liger.evaluate(case("kl_div", [x, np.log(t)], {"reduction": "batchmean", "log_target": True}))
    assert rec.calls[-1][2] == {"reduction": "batchmean", "log_target": True}
    with pytest.raises(Unsupported, match="2-d"):
        liger.evaluate(case("kl_div", [x[0], t[0]], {}))


def test_liger_softmax_last_dim_only(liger, rec):
    xs = RNG.normal(size=(2, 3, 4))
    obs = liger.evaluate(case("softmax", [xs], {"dim": 2}, grad=True, grad_output=RNG.normal(size=(2, 3, 4))))
    assert rec.calls[-1][0] == "liger_softmax" and set(obs.grads) == {"input"}
    np.testing.assert_allclose(obs.value, torch.softmax(_t(xs), 2).numpy(), rtol=1e-14)
    with pytest.raises(Unsupported, match="last dim only"):
        liger.evaluate(case("softmax", [xs], {"dim": 1}))


def test_liger_linear_cross_entropy_adapter_maps_arguments(liger, rec):
    out = liger.functions.linear_cross_entropy(_t(H), _t(W), _t(T), bias=_t(B), ignore_index=-100,
                                               reduction="none", label_smoothing=0.2, softcap=3.0, z_loss=1e-4)
    name, (h, w, _), got = rec.calls[-1]
    assert name == "liger_fused_linear_cross_entropy" and h.shape == (5, 4) and w.shape == (7, 4)
    assert torch.equal(got["bias"], _t(B)) and got["ce_weight"] is None
    assert (got["lse_square_scale"], got["label_smoothing"], got["softcap"], got["reduction"]) == (1e-4, 0.2, 3.0, "none")
    assert out.shape == (5,) and out.dtype == torch.float32
    with pytest.raises(Unsupported, match="2-d"):
        liger.functions.linear_cross_entropy(_t(H[0]), _t(W), _t(T[0]))


@needs_lce
def test_liger_linear_cross_entropy_gradients_of_hidden_weight_bias(liger, rec):
    go = RNG.uniform(0.5, 2, size=5)
    obs = liger.evaluate(case("linear_cross_entropy", [H, W, T], {"bias": B, "reduction": "none"},
                              grad=True, grad_output=go))
    h, w, b = (_t(a).requires_grad_(True) for a in (H, W, B))
    F.cross_entropy(h @ w.T + b, _t(T), reduction="none").float().backward(_t(go).float())
    assert set(obs.grads) == {"input", "weight", "bias"} and not obs.missing
    for name, leaf in (("input", h), ("weight", w), ("bias", b)):
        np.testing.assert_allclose(obs.grads[name], leaf.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert rec.devices() == {liger.device}


# --- cce -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, impl", [("cce", "cce"), ("cce-compile", "torch_compile")])
def test_cce_maps_arguments_and_leaves_filter_eps_at_the_default(rec, monkeypatch, name, impl):
    b = _cce(rec, monkeypatch, name)
    assert b.name == name and not b.supports("cross_entropy")
    out = b.functions.linear_cross_entropy(_t(H), _t(W), _t(T), bias=_t(B), reduction="sum", softcap=4.0)
    fn, (e, c, _), got = rec.calls[-1]
    assert (fn, got["impl"], got["reduction"], got["softcap"], got["ignore_index"]) == (
        "linear_cross_entropy", impl, "sum", 4.0, -100)
    assert got["filter_eps"] == "auto" and got["shift"] == 0  # the library's defaults: what users get
    assert torch.equal(got["bias"], _t(B)) and torch.equal(e, _t(H)) and torch.equal(c, _t(W))
    want = F.cross_entropy(4.0 * torch.tanh((_t(H) @ _t(W).T + _t(B)) / 4.0), _t(T), reduction="sum")
    torch.testing.assert_close(out, want.float())
    assert rec.devices() == {b.device}


def test_cce_unsupported_options(rec, monkeypatch):
    fn = _cce(rec, monkeypatch).functions.linear_cross_entropy
    for kwargs, what in (({"label_smoothing": 0.1}, "label_smoothing"), ({"z_loss": 1e-4}, "z_loss")):
        with pytest.raises(Unsupported, match=f"cut-cross-entropy has no {what}"):
            fn(_t(H), _t(W), _t(T), **kwargs)
    with pytest.raises(Unsupported, match=r"\(N, D\)"):
        fn(_t(H[None]), _t(W), _t(T[None]))
    assert not rec.calls
    old = _cce(rec, monkeypatch, with_bias=False).functions.linear_cross_entropy
    old(_t(H), _t(W), _t(T))  # no bias asked: the old signature serves
    assert rec.calls[-1][2]["filter_eps"] == "high"
    with pytest.raises(Unsupported, match="has no bias"):
        old(_t(H), _t(W), _t(T), bias=_t(B))


@needs_lce
def test_cce_gradients_of_hidden_weight_bias(rec, monkeypatch):
    b = _cce(rec, monkeypatch)
    obs = b.evaluate(case("linear_cross_entropy", [H, W, T], {"bias": B}, grad=True, grad_output=np.asarray(1.0)))
    assert set(obs.grads) == {"input", "weight", "bias"} and not obs.missing


# --- the real libraries, where installed (not in CI: they pull Triton) -----------------------------

def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@pytest.mark.skipif(not _importable("liger_kernel") or not _importable("triton"), reason="liger-kernel not installed")
def test_real_liger_signatures_take_the_adapters_arguments():
    """Every call the adapters make binds to the installed Liger's signatures (no GPU needed)."""
    import inspect

    import liger_kernel.transformers.functional as lf

    class Binder:
        def __getattr__(self, name):
            sig = inspect.signature(getattr(lf, name))
            return lambda *a, **k: (sig.bind(*a, **k), name)[1]

    a = liger_backend.LigerFunctions(Binder())
    x, t = _t(X), _t(T)
    assert a.cross_entropy(x, t, weight=_t(np.ones(7)), reduction="sum", label_smoothing=0.1, softcap=3.0,
                           z_loss=1e-3) == "liger_cross_entropy"
    assert a.linear_cross_entropy(_t(H), _t(W), t, bias=_t(B), z_loss=1e-4) == "liger_fused_linear_cross_entropy"
    assert a.kl_div(x, x.softmax(-1), reduction="batchmean", log_target=False) == "liger_kl_div"
    assert a.softmax(x, -1) == "liger_softmax"


@pytest.mark.skipif(not _importable("cut_cross_entropy") or not _importable("triton"),
                    reason="cut-cross-entropy not installed")
@pytest.mark.parametrize("reduction, softcap", [("mean", None), ("none", 2.0)])
def test_real_cce_compile_on_cpu_against_float64(reduction, softcap):
    """cce-compile is cut-cross-entropy's torch.compile implementation: it runs here, on the CPU."""
    b = load("cce-compile")
    h, w = _t(H).float().requires_grad_(True), _t(W).float().requires_grad_(True)
    out = b.functions.linear_cross_entropy(h, w, _t(T), reduction=reduction, softcap=softcap)
    go = torch.rand(out.shape) + 0.5
    out.backward(go)
    h64, w64 = _t(H).requires_grad_(True), _t(W).requires_grad_(True)
    z = h64 @ w64.T
    z = z if softcap is None else softcap * torch.tanh(z / softcap)
    F.cross_entropy(z, _t(T), reduction=reduction).backward(go.double())
    # float32 arithmetic against float64: a few float32 ulps of the O(1) values
    for got, want in ((h.grad, h64.grad), (w.grad, w64.grad)):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


# --- unavailable -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, dist, module, extra", [
    ("liger", "liger-kernel", "liger_kernel", "liger"),
    ("cce", "cut-cross-entropy", "cut_cross_entropy", "cce"),
    ("cce-compile", "cut-cross-entropy", "cut_cross_entropy", "cce"),
])
def test_not_installed_is_one_line(spec, dist, module, extra):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{dist} is installed here")
    want = f"backend '{spec}': unavailable: {dist} is not installed (pip install 'losscheck[{extra}]')"
    with pytest.raises(BackendLoadError) as err:
        load(spec)
    assert str(err.value) == want
    assert available()[spec] == want.partition(": ")[2]


def test_liger_and_cce_need_a_cuda_device(rec, monkeypatch):
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "cut_cross_entropy", fake_cce(rec))
    for spec in ("liger", "cce"):
        with pytest.raises(BackendLoadError) as err:
            load(spec)
        assert str(err.value) == f"backend '{spec}': unavailable: needs a CUDA device, run with --device cuda"
    if not torch.cuda.is_available():
        with pytest.raises(BackendLoadError, match=r"^backend 'liger': unavailable: needs a CUDA device, and "
                                                   r"torch .* sees none"):
            liger_backend.LigerBackend(device="cuda")
    assert load("cce-compile").name == "cce-compile"  # torch.compile runs on the CPU


def test_cli_refuses_liger_with_one_line_and_exit_2():
    if importlib.util.find_spec("liger_kernel") is not None:
        pytest.skip("liger-kernel is installed here")
    cmd = [sys.executable, "-m", "harness", "gate", "--backend", "liger", "--suite", "smoke"]
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "backend 'liger': unavailable: liger-kernel is not installed" in lines[0]
    assert "Traceback" not in proc.stderr


# --- inductor --------------------------------------------------------------------------------------

class _Raising:
    def __init__(self, exc):
        self.exc = exc

    def __getattr__(self, name):
        def fn(*args, **kwargs):
            raise self.exc
        return fn


def test_inductor_reports_a_fallback_as_an_error_not_as_unsupported():
    import torch._dynamo.config as dynamo_config
    import torch._dynamo.exc as dynamo_exc

    b = load("inductor")
    assert dynamo_config.fail_on_recompile_limit_hit and dynamo_config.recompile_limit >= 10_000
    assert b.delegates_to("softmax") is None and not b.supports("sigmoid_focal_loss")
    for exc in (dynamo_exc.Unsupported("graph break"), dynamo_exc.FailOnRecompileLimitHit("limit")):
        b.functions = _Raising(exc)
        with pytest.raises(inductor_backend.CompileFallback, match="inductor's code was not run"):
            b.evaluate(case("softmax", [X], {"dim": 1}))
    b.functions = _Raising(RuntimeError("an ordinary error"))
    with pytest.raises(RuntimeError, match="an ordinary error"):
        b.evaluate(case("softmax", [X], {"dim": 1}))


def test_inductor_known_failures_ship_with_the_package():
    from harness.knownfail import BUILTIN_FILES, KnownFailures

    own = KnownFailures.load(BUILTIN_FILES[1])
    assert own.entries and all(e.match.startswith("inductor:") for e in own.entries)
    kf = KnownFailures.builtin()
    rec = {"type": "result", "backend": "inductor", "loss": "cross_entropy", "family": "ce.absorption",
           "dtype": "float32", "check": "value", "case_id": "cc4c3243d1ee2a42", "status": "ok", "verdict": "fail"}
    assert kf.apply(rec)["verdict"] == "xfail" and "8 partial sums" in kf.apply(rec)["xfail_reason"]
    assert kf.apply({**rec, "family": "ce.random"})["verdict"] == "fail"


def test_inductor_end_to_end_through_the_cli(tmp_path):
    """A small slice through `run --backend inductor`: every check evaluated by compiled code
    (a fallback would be an error record), values and gradients (a target's too) judged.  Two
    graphs, cold: 50 s measured on 2 cores under a load average of 7 (the first compile in the
    worker is 27 s of it); the inductor cache is this test's own, so the cost does not depend on
    what ran before."""
    results = tmp_path / "inductor.jsonl"
    env = {**os.environ, "LOSSCHECK_CACHE_DIR": str(tmp_path / "oracle"),
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor-cache")}
    # --timeout: a cold compile is not what is under test.  The smoke suite gives each family one
    # dtype, rotating (ce.confident_cliff float32, mse.random float64 since ce.probability_mass)
    assert {(c.family, c.dtype) for c in cases.build_suite("smoke")
            if c.family in ("ce.confident_cliff", "mse.random")} == {("ce.confident_cliff", "float32"),
                                                                      ("mse.random", "float64")}
    cmd = [sys.executable, "-m", "harness", "run", "--backend", "inductor", "--suite", "smoke",
           "--loss", "cross_entropy", "--loss", "mse_loss", "--family", "ce.confident_cliff",
           "--family", "mse.random", "--dtype", "float32", "--dtype", "float64", "--jobs", "1", "--timeout", "600",
           "--results", str(results)]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    recs = [r for r in recs if r["type"] == "result"]
    assert {r["backend"] for r in recs} == {"inductor"}
    assert {r["loss"] for r in recs} == {"cross_entropy", "mse_loss"}
    assert {r["check"] for r in recs} == {"value", "grad:input", "grad:target"}
    bad = [(r["case_id"], r["check"], r["status"], r.get("message")) for r in recs if r["status"] != "ok"]
    assert not bad
    assert all(r["n"] > 0 and r["verdict"] in ("pass", "warn") for r in recs)


# --- jax: the newer optax losses -------------------------------------------------------------------

XR, YR = RNG.normal(size=(3, 4)) * 2, RNG.normal(size=(3, 4)) * 2
P = RNG.dirichlet(np.ones(4), size=3)


def _torch_focal(x, t, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, written out (torchvision is not a dependency)."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    loss = ce * (1 - (p * t + (1 - p) * (1 - t))) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@needs_jax
@pytest.mark.parametrize("loss, args, kwargs, ref", [
    ("huber_loss", (XR, YR), {"delta": 0.7, "reduction": "none"}, F.huber_loss),
    ("huber_loss", (XR, YR), {"delta": 2.5}, F.huber_loss),
    ("smooth_l1_loss", (XR, YR), {"beta": 1.0, "reduction": "sum"}, F.smooth_l1_loss),
    ("sigmoid_focal_loss", (XR, RNG.uniform(size=(3, 4))), {"alpha": 0.25, "gamma": 2.0}, _torch_focal),
    # soft labels: at hard ones (0/1) optax's log-space (1 - p_t) drops a term of the target
    # gradient (docs/backends.md), which the gate reports; the mapping is what is tested here
    ("sigmoid_focal_loss", (XR, RNG.uniform(0.05, 0.95, size=(3, 4))), {"alpha": -1.0, "gamma": 1.5,
                                                                       "reduction": "mean"}, _torch_focal),
    ("kl_div", (np.log(P), P[::-1].copy()), {"reduction": "none"}, F.kl_div),
    ("kl_div", (np.log(P), P[::-1].copy()), {"reduction": "batchmean"}, F.kl_div),
    ("kl_div", (np.log(P), np.log(P[::-1])), {"reduction": "mean", "log_target": True}, F.kl_div),
    ("kl_div", (np.log(P), P[::-1].copy()), {"reduction": "sum"}, F.kl_div),
    ("cross_entropy", (XR, P), {"label_smoothing": 0.1}, F.cross_entropy),
    ("mse_loss", (XR, YR), {"reduction": "none"}, F.mse_loss),
])
def test_jax_new_losses_match_torch_with_every_gradient(loss, args, kwargs, ref):
    targs = [_t(a).requires_grad_(True) for a in args]
    want = ref(*targs, **kwargs)
    go = RNG.uniform(0.5, 2, size=tuple(want.shape))
    want.backward(_t(np.asarray(go)))
    obs = load("jax").evaluate(case(loss, args, kwargs, grad=True, grad_output=np.asarray(go)))
    np.testing.assert_allclose(obs.value, want.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert set(obs.grads) == {"input", "target"}
    for name, leaf in zip(("input", "target"), targs):
        np.testing.assert_allclose(obs.grads[name], leaf.grad.numpy(), rtol=1e-10, atol=1e-14)


@needs_jax
def test_jax_refuses_what_optax_lacks():
    b = load("jax")
    assert not any(b.supports(x) for x in ("l1_loss", "poisson_nll_loss", "gaussian_nll_loss", "linear_cross_entropy"))
    with pytest.raises(Unsupported, match="beta=0.5"):
        b.evaluate(case("smooth_l1_loss", [XR, YR], {"beta": 0.5}))
    for kwargs, what in (({"softcap": 30.0}, "softcap"), ({"z_loss": 1e-4}, "z_loss")):
        with pytest.raises(Unsupported, match=what):
            b.evaluate(case("cross_entropy", [XR, np.array([0, 3, 1])], kwargs))
    # the defaults ask for nothing: plain cross-entropy
    plain = b.evaluate(case("cross_entropy", [XR, np.array([0, 3, 1])], {"softcap": None, "z_loss": 0.0}))
    np.testing.assert_allclose(plain.value, F.cross_entropy(_t(XR), _t(np.array([0, 3, 1]))).numpy(), rtol=1e-13)
