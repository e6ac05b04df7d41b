"""The non-torch library backends (mlx, keras, tensorflow, tinygrad, paddle, scipy) and the Backend-class route.

CI installs mlx (the tests extra of `nox -s tests`), so mlx runs end to end there; the others run
where their library is installed and otherwise check the one-line "unavailable" error instead.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import cases
from cases import make_case
from harness.backends import BackendLoadError, Unsupported, available, framework, load
from harness.backends.loading import FRAMEWORKS
from harness.cli import main
from harness.repro import snippet

REPO = Path(__file__).resolve().parents[1]
SCALAR = "tests.examples.numpy_scalar_backend:NumpyScalarBackend"


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "oracle-cache"))
    monkeypatch.chdir(REPO)


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def needs(name):
    why = framework.unavailable(name)
    if why is None and name == "tinygrad":
        try:
            load("tinygrad")
        except BackendLoadError as exc:
            why = str(exc)
    return pytest.mark.skipif(why is not None, reason=f"{name}: {why}")


# --- every library backend: loads where installed, one "unavailable" line where not ----------------

@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_library_backend_loads_or_says_why_not_in_one_line(name):
    line = available()[name]
    try:
        backend = load(name)
    except BackendLoadError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(f"backend {name!r}: unavailable: "), msg
        if framework.unavailable(name):
            assert line.startswith("unavailable: ") and f"losscheck[{name}]" in line
        return
    assert not line.startswith("unavailable"), line
    assert backend.name == name and all(backend.supports(loss) for loss in backend.LOSSES)
    assert not backend.supports("linear_cross_entropy")


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_a_missing_library_names_its_extra(name, monkeypatch):
    """As on a machine without the package: no distribution, no importable module."""
    module = framework.LIBRARIES[name].module
    monkeypatch.setattr(framework, "package_version", lambda dist: None)
    monkeypatch.setattr("harness.backends.kernel_libraries.package_version", lambda dist: None)
    monkeypatch.setattr("importlib.util.find_spec", lambda mod, *a: None)
    for mod in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    assert framework.unavailable(name) == f"{framework.LIBRARIES[name].dist} is not installed " \
                                          f"(pip install 'losscheck[{name}]')"
    assert available()[name] == f"unavailable: {framework.unavailable(name)}"
    monkeypatch.setitem(sys.modules, module, None)  # import fails as it would
    with pytest.raises(BackendLoadError, match=re.escape(f"backend {name!r}: unavailable: ")):
        load(name)


# --- mlx (CI) -------------------------------------------------------------------------------------

@needs("mlx")
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float32, np.float64])
def test_mlx_keeps_dtypes_and_bits_both_ways(dtype):
    b = load("mlx")
    x = np.array([[1.0, 2.5, -3.0], [0.0, 1e-3, 7.0]]).astype(dtype)
    assert b._to_numpy(b._to_lib(x)).dtype == x.dtype
    assert b._to_numpy(b._to_lib(x)).tobytes() == x.tobytes()
    obs = b.evaluate(make_case("softmax", (x,), {"dim": 1}, family="t"))
    assert obs.value.dtype == x.dtype and obs.grads["input"].dtype == x.dtype


@needs("mlx")
def test_mlx_reports_what_it_lacks_as_unsupported():
    b = load("mlx")
    x = np.zeros((2, 3), np.float32)
    for kwargs in ({"weight": np.ones(3, np.float32)}, {"label_smoothing": 1.0}):
        with pytest.raises(Unsupported):
            b.evaluate(make_case("cross_entropy", (x, np.array([0, 1])), kwargs, family="t"))
    with pytest.raises(Unsupported):
        b.evaluate(make_case("cross_entropy", (x, np.array([0, -100])), {}, family="t"))
    with pytest.raises(Unsupported, match="does not provide"):
        b.evaluate(make_case("poisson_nll_loss", (x, x), {}, family="t"))


@needs("mlx")
def test_mlx_gate_end_to_end_fails_probability_targets_of_other_mass(capsys, tmp_path):
    """MLX computes logsumexp - sum y x (mlx.nn.losses.cross_entropy): right for rows of unit mass,
    wrong for the rows ce.probability_mass draws; its float32 softmax passes the gate's softmax.dims."""
    code, out, _ = cli(capsys, "gate", "--backend", "mlx", "--loss", "softmax", "--family", "softmax.dims",
                       "--dtype", "float32", "--results", str(tmp_path / "ok.jsonl"))
    assert code == 0 and "PASSED" in out, out
    code, out, _ = cli(capsys, "gate", "--backend", "mlx", "--loss", "cross_entropy", "--family",
                       "ce.probability_mass", "--dtype", "float32", "--results", str(tmp_path / "bad.jsonl"))
    assert code == 1, out
    assert re.search(r"^FAIL mlx cross_entropy family=ce\.probability_mass .* (value|grad:input) ", out, re.MULTILINE), out


DOC_BLOCK = re.compile(r"```python\n(# mlx_losses\.py.*?)```", re.DOTALL)


@needs("mlx")
def test_the_documented_backend_class_runs(tmp_path, monkeypatch):
    """docs/backends.md's complete Backend subclass, as written, agrees with the built-in mlx backend."""
    code = DOC_BLOCK.search((REPO / "docs" / "backends.md").read_text(encoding="utf-8")).group(1)
    (tmp_path / "mlx_losses.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    mine, ref = load("mlx_losses:MlxLosses"), load("mlx")
    suite = [c for c in cases.build_suite("smoke") if c.loss in ("softmax", "cross_entropy")]
    compared = 0
    for case in suite:
        try:
            got = mine.evaluate(case)
        except Unsupported:
            continue
        want = ref.evaluate(case)
        assert got.value.tobytes() == want.value.tobytes(), case.id
        if case.grad:
            assert got.grads["input"].tobytes() == want.grads["input"].tobytes(), case.id
        compared += 1
    assert compared >= 4


# --- the Backend-class route: pkg.mod:Class, NumPy scalars, repro snippets -------------------------

def test_a_backend_class_on_the_command_line_with_numpy_scalar_outputs(capsys, tmp_path):
    """``pkg.mod:Class`` is instantiated; its np.float32 results of sum/mean are judged as 0-d outputs."""
    res = tmp_path / "r.jsonl"
    code, out, _ = cli(capsys, "gate", "--backend", SCALAR, "--loss", "cross_entropy", "--family", "ce.random",
                       "--dtype", "float32", "--results", str(res))
    assert code == 0 and "PASSED" in out, out
    import json
    recs = [json.loads(ln) for ln in res.read_text().splitlines() if '"result"' in ln]
    scalars = [r for r in recs if r["check"] == "value" and r["reduction"] != "none"]
    assert scalars and all(r["verdict"] == "pass" and r["status"] == "ok" for r in scalars)


def test_numpy_scalars_are_0d_outputs_and_python_floats_are_not():
    from harness.backends import Observation
    obs = Observation(np.float32(1.5), grads={"input": np.float64(2.0)})
    assert isinstance(obs.value, np.ndarray) and obs.value.shape == () and obs.value.dtype == np.float32
    assert isinstance(obs.grads["input"], np.ndarray) and obs.grad.dtype == np.float64
    assert not isinstance(Observation(1.5).value, np.ndarray)


def test_repro_snippet_of_a_backend_class_rebuilds_it():
    """``show`` used to emit ``getattr(module, 'Class').cross_entropy(...)`` for a Backend class."""
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -2.0]], np.float32)
    case = make_case("cross_entropy", (x, np.array([2, 0])), {"reduction": "sum"}, family="test.repro")
    code = snippet(case, SCALAR, "value")
    assert f"load({SCALAR!r}).evaluate(case)" in code and ".cross_entropy(" not in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    observed = next(ln for ln in proc.stdout.splitlines() if ln.startswith("observed:"))
    want = load(SCALAR).evaluate(case).value
    assert ast.literal_eval(observed.partition(":")[2].strip()) == [float(want)]
    assert "F.cross_entropy(" in snippet(case, "tests.planted.lse_rounded", "value")  # drop-ins unchanged
