"""``--device`` (issue 13 §4): torch-tensor backends place every tensor of a call on the device and
bring values and gradients back bit-exactly; a misspelt device, or one torch cannot use here, is a
one-line error with exit 2 before any work; NumPy/JAX backends ignore it and the CLI says so; the
device is in the results header, so resume and compare refuse a mix.

On a machine without a GPU the placement tests run on the CPU (the same code); where CUDA or MPS is
available they run there too.  ``DeviceEcho`` is a Backend class that takes ``device`` (spec
``tests.test_device:DeviceEcho``): its records say which device its worker process was given.
"""
from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_backends_support import same_bits

from cases.model import make_case
from harness.backends import Backend, BackendLoadError, Unsupported, from_object, load
from harness.backends.convert import to_numpy, to_torch, to_torch_arg
from harness.backends.device import DeviceError, device_name, torch_device
from harness.cli import main
from harness.config import ConfigError, _parse
from harness.results_file import header_differences

REPO = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
#: the devices this machine can run the placement tests on: the CPU always
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available() else [])
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA: the error is for machines without it")


class DeviceEcho(Backend):
    """A backend that takes ``device`` and reports it as unsupported, so records show the device
    its worker loaded it with."""

    name = "device-echo"

    def __init__(self, device: str = "cpu"):
        self.device = device

    def supports(self, loss: str) -> bool:
        return loss == "softmax"

    def _evaluate(self, case):
        raise Unsupported(f"loaded on {self.device}")


class NoDeviceBackend(Backend):
    """A plugin's Backend class written before devices existed: constructed without ``device``."""

    name = "old-plugin"

    def supports(self, loss: str) -> bool:
        return False


# ---- the device name ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, name", [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("mps", "mps"),
                                        ("xpu", "xpu"), (" CUDA:0 ", "cuda:0")])
def test_device_names(text, name):
    assert device_name(text) == name


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda0", "", "tpu", None, 0])
def test_unknown_device_names_are_one_line_errors(text):
    with pytest.raises(DeviceError, match=r"unknown device .*; use one of cpu, cuda, cuda:N, mps, xpu") as err:
        device_name(text)
    assert "\n" not in str(err.value) and isinstance(err.value, BackendLoadError)


@no_cuda
def test_cuda_without_cuda_says_which_device_and_why():
    with pytest.raises(DeviceError) as err:
        torch_device("cuda:0")
    msg = str(err.value)
    assert msg.startswith("device 'cuda:0': torch cannot use it here: no CUDA device (torch ")
    assert "torch.cuda.is_available() is False" in msg and "\n" not in msg
    with pytest.raises(BackendLoadError, match=r"^backend 'torch': device 'cuda': torch cannot use it here"):
        load("torch", "cuda")


def test_load_threads_the_device_and_non_torch_backends_stay_on_the_cpu():
    assert load("torch").device == "cpu" and load("torch", "cpu").device == "cpu"
    assert load("numpy", "mps").device == "cpu" and load("numpy-naive", "cuda:3").device == "cpu"
    with pytest.raises(BackendLoadError, match="unknown device 'gpu'"):
        load("numpy", "gpu")
    assert Backend.device == "cpu"


def test_from_object_gives_backend_classes_the_device_when_they_take_it():
    assert from_object("echo", DeviceEcho, "mps").device == "mps"
    assert from_object("old", NoDeviceBackend, "mps").device == "cpu"  # constructed without it
    assert from_object("dropin", F, "cpu").device == "cpu"


# ---- placement and the exact round trip ---------------------------------------------------------

VALUES = [0.0, -0.0, 1.0, -2.5, 1e-30, 65504.0, np.inf, -np.inf, np.nan, 3.0e38, 1e-45, 2.0**-24]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float16", ml_dtypes.bfloat16, "float32", "float64"], ids=str)
def test_arrays_travel_to_the_device_and_back_bit_exactly(device, dtype):
    with np.errstate(over="ignore"):
        a = np.array(VALUES, np.float64).astype(dtype).reshape(3, 4)
    t = to_torch(a, device)
    assert t.device.type == device and tuple(t.shape) == (3, 4)
    back = to_numpy(t)
    assert back.dtype == a.dtype and np.array_equal(back.view(f"u{a.itemsize}"), a.view(f"u{a.itemsize}"))
    assert to_torch(np.array(3.0, np.float32), device).shape == ()  # 0-d stays 0-d
    assert to_torch_arg(np.arange(3), device).device.type == device
    assert to_torch_arg(np.float32(2.0), device) == 2.0 and to_torch_arg("mean", device) == "mean"


class _Placed:
    """A drop-in whose functions check the device of every tensor they get, and of the gradient
    flowing back into their output (grad_output), and then call torch's function."""

    def __init__(self, expected: str):
        self.expected = expected
        self.seen: list[str] = []

    def _check(self, name, t):
        assert isinstance(t, torch.Tensor) and t.device.type == self.expected, (name, t.device)
        self.seen.append(name)

    def _watch(self, out):
        if out.requires_grad:
            out.register_hook(lambda g: self._check("grad_output", g))
        return out

    def cross_entropy(self, input, target, weight=None, **kwargs):
        self._check("input", input)
        self._check("target", target)
        if weight is not None:
            self._check("weight", weight)
        return self._watch(F.cross_entropy(input, target, weight=weight, **kwargs))

    def binary_cross_entropy_with_logits(self, input, target, weight=None, pos_weight=None, **kwargs):
        for name, t in (("input", input), ("target", target), ("weight", weight), ("pos_weight", pos_weight)):
            if t is not None:
                self._check(name, t)
        return self._watch(F.binary_cross_entropy_with_logits(input, target, weight=weight, pos_weight=pos_weight,
                                                              **kwargs))


@pytest.mark.parametrize("device", DEVICES)
def test_every_tensor_of_a_call_is_on_the_device_and_results_come_back_exactly(device):
    from harness.backends.torch_backend import TorchFunctionalBackend

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    t = np.array([0, 4, 2, 1])
    w = rng.uniform(0.5, 2, size=5).astype(np.float32)
    placed = _Placed(torch.device(device).type)
    backend = TorchFunctionalBackend("placed", placed, device=device)
    assert backend.device == str(torch.device(device))
    case = make_case("cross_entropy", (x, t), {"weight": w, "reduction": "none"}, family="test.hand", grad=True)
    obs = backend.evaluate(case)
    assert set(placed.seen) == {"input", "target", "weight", "grad_output"}
    # the same call on the CPU, by hand: values and gradients bit for bit
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    ref = F.cross_entropy(xt, torch.from_numpy(t), weight=torch.from_numpy(w), reduction="none")
    ref.backward(torch.from_numpy(case.grad_output.copy()))
    if device == "cpu":
        assert same_bits(obs.value, ref.detach().numpy()) and same_bits(obs.grads["input"], xt.grad.numpy())
    assert obs.value.dtype == np.float32 and obs.grads["input"].shape == x.shape

    y = rng.uniform(size=(3, 5)).astype(np.float64)
    z = rng.normal(size=(3, 5)).astype(np.float64)
    case = make_case("binary_cross_entropy_with_logits", (z, y),
                     {"weight": np.full((3, 5), 0.5), "pos_weight": np.full(5, 2.0), "reduction": "sum"},
                     family="test.hand", grad=True)
    placed.seen.clear()
    obs = backend.evaluate(case)
    assert set(placed.seen) == {"input", "target", "weight", "pos_weight", "grad_output"}
    assert {"input", "target"} <= set(obs.grads)


# ---- the command line ---------------------------------------------------------------------------

@pytest.fixture
def cli_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "device-cache"))
    monkeypatch.chdir(REPO)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


SLICE = ["--suite", "smoke", "--loss", "softmax", "--loss", "cross_entropy", "--dtype", "float32", "--jobs", "2"]


def test_device_cpu_end_to_end(capsys, tmp_path, cli_env):
    path = tmp_path / "r.jsonl"
    code = main(["gate", "--backend", "torch", "--backend", "numpy", "--device", "cpu", *SLICE,
                 "--results", str(path), "--report", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, out
    header, *recs = _lines(path)
    assert header["device"] == "cpu" and header["strict_dtype"] is False
    assert recs and {r["backend"] for r in recs} == {"torch", "numpy"}
    assert "does not apply" not in err  # nothing to say on the CPU
    html = (tmp_path / "out" / "index.html").read_text()
    assert "<dt>device</dt><dd>cpu</dd>" in html
    assert "· device cpu ·" in (tmp_path / "out" / "summary.md").read_text()


@no_cuda
def test_device_cuda_without_cuda_exits_2_before_any_work(capsys, tmp_path, cli_env):
    path = tmp_path / "r.jsonl"
    code = main(["gate", "--device", "cuda", *SLICE, "--results", str(path)])
    _, err = capsys.readouterr()
    assert code == 2 and not path.exists()
    assert err.count("\n") == 1 and err.startswith("losscheck: error: backend 'torch': device 'cuda': ")
    assert "no CUDA device" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["gate", "--device", "gpu"], "argument --device: unknown device 'gpu'; use one of cpu, cuda, cuda:N, mps, xpu"),
    (["run", "--device", "cuda:"], "unknown device 'cuda:'"),
    (["show", "0123456789abcdef", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_a_misspelt_device_is_bad_usage(capsys, argv, needle, cli_env):
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and needle in err


def test_non_torch_backends_ignore_the_device_and_say_so_once(capsys, tmp_path, cli_env):
    path = tmp_path / "r.jsonl"
    code = main(["run", "--backend", "numpy", "--device", "mps", *SLICE, "--no-grad", "--results", str(path)])
    _, err = capsys.readouterr()
    assert code == 0
    note = "losscheck: note: backend 'numpy' does not run on torch devices: --device mps does not apply to it"
    assert err.count(note) == 1
    assert _lines(path)[0]["device"] == "mps"
    # the header holds the device: resuming on another one is refused, naming it
    code = main(["run", "--backend", "numpy", "--device", "cpu", *SLICE, "--no-grad", "--results", str(path),
                 "--resume"])
    _, err = capsys.readouterr()
    assert code == 2 and "device ('mps' there, 'cpu' now)" in err


def test_the_device_reaches_the_worker_processes(capsys, tmp_path, cli_env):
    path = tmp_path / "r.jsonl"
    code = main(["run", "--backend", "tests.test_device:DeviceEcho", "--device", "mps", *SLICE, "--results", str(path)])
    _, err = capsys.readouterr()
    assert code == 0 and "does not apply" not in err  # it runs where it was told
    recs = [r for r in _lines(path)[1:] if r["loss"] == "softmax"]
    assert recs and {r["message"] for r in recs} == {"Unsupported: loaded on mps"}


def test_headers_without_a_device_are_cpu_runs():
    old = {"suite": "gate", "seed": 0}
    assert header_differences(old, {**old, "device": "cpu", "strict_dtype": False}) == []
    assert header_differences(old, {**old, "device": "cuda", "strict_dtype": False}) == ["device ('cpu' there, 'cuda' now)"]
    assert header_differences(old, {**old, "device": "cpu", "strict_dtype": True}) == \
        ["strict_dtype (False there, True now)"]


def test_compare_refuses_runs_of_two_devices(tmp_path):
    import reports
    from reports.results import ResultsError
    from tests.results_factory import synthetic_run

    lines = synthetic_run()
    base, new = tmp_path / "base.jsonl", tmp_path / "new.jsonl"
    base.write_text("".join(json.dumps(x) + "\n" for x in lines))  # no device: a CPU run
    lines[0] = {**lines[0], "device": "cuda"}
    new.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(ResultsError, match="BASE ran on device cpu, NEW on cuda"):
        reports.compare(base, new)
    lines[0]["device"] = "cpu"
    new.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert reports.compare(base, new).exit_code == 0


def test_config_device_and_strict_dtype(tmp_path):
    where = tmp_path / "pyproject.toml"
    config = _parse({"device": "cuda:1", "strict_dtype": True}, where)
    assert config.device == "cuda:1" and config.strict_dtype is True
    assert config.run_device() == "cuda:1" and config.run_device("cpu") == "cpu"
    assert _parse({}, where).run_device() == "cpu" and _parse({}, where).strict_dtype is False
    assert _parse({}, where).with_flags(device="mps", strict_dtype=True).device == "mps"
    with pytest.raises(ConfigError, match=r"tool.losscheck.device: unknown device 'gpu'"):
        _parse({"device": "gpu"}, where)
    with pytest.raises(ConfigError, match=r"tool.losscheck.strict_dtype must be true or false"):
        _parse({"strict_dtype": "yes"}, where)
