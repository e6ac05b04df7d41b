"""Repro snippets run on their own and reproduce the backend's exact bits."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from cases import make_case
from harness.backends import load
from harness.repro import snippet

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> dict[str, str]:
    """Execute a snippet in a fresh interpreter; its printed lines keyed by their label."""
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = {}
    for line in proc.stdout.splitlines():
        label, _, rest = line.partition(":")
        out[label.strip()] = rest.strip()
    return out


def small_ce(dtype):
    x = np.array([[-60000.0, -60000.0, -60000.0], [0.25, -1.5, 3.0]], np.float64).astype(dtype)
    w = np.array([1.0, 0.5, 2.0], np.float64).astype(dtype)
    t = np.array([0, 2], np.int64)
    return make_case("cross_entropy", (x, t), {"weight": w, "reduction": "none", "label_smoothing": 0.125},
                     family="test.repro")


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float32])
def test_torch_value_snippet_prints_the_observed_bits(dtype):
    case = small_ce(dtype)
    code = snippet(case, "torch", "value")
    assert "cases.find" not in code and "'0x" in code  # written out literally
    out = run(code)
    expected = load("torch").evaluate(case).value.astype(np.float64)
    assert ast.literal_eval(out["observed"]) == expected.tolist()
    assert len(ast.literal_eval(out["rounded"])) == 2 and len(ast.literal_eval(out["exact"])) == 2


def test_torch_grad_snippet():
    case = small_ce(np.float32)
    out = run(snippet(case, "torch", "grad:input"))
    expected = load("torch").evaluate(case).grad.astype(np.float64)
    assert ast.literal_eval(out["observed"]) == expected.reshape(-1).tolist()
    assert len(ast.literal_eval(out["exact"])) == 6


def test_numpy_backend_snippet_builds_the_case():
    x = np.array([0.0, 1e-30, -2.5, 40.0], np.float16)
    y = np.array([0.0, 1.0, 1.0, 0.5], np.float16)
    case = make_case("binary_cross_entropy_with_logits", (x, y), {"reduction": "sum"}, family="test.repro")
    code = snippet(case, "numpy", "value")
    assert "load('numpy').evaluate(case)" in code
    out = run(code)
    expected = load("numpy").evaluate(case).value.astype(np.float64)
    assert ast.literal_eval(out["observed"]) == [float(expected)]


def test_large_arrays_come_from_the_suite():
    """A case too big to write out is fetched by id from its suite, and the snippet still runs and
    reproduces the backend's bits (here a drop-in module spec and a gradient)."""
    import cases

    case = next(c for c in cases.build_suite("gate") if c.loss == "log_softmax" and 64 < c.args[0].size < 2000
                and c.dtype == "float32")
    code = snippet(case, "torch.nn:functional", "grad:input")
    assert f"cases.find({case.id!r})" in code and "'0x" not in code
    assert "F = getattr(F, 'functional')" in code and "out.backward(t_grad_output)" in code
    assert "t_args[0].requires_grad_(True)" in code and "wrt='input'" in code
    out = run(code)  # ran in a fresh interpreter: the case was found and both sides computed
    import mpmath

    import reference

    exact = reference.evaluate_grad(case.loss, *case.args, grad_output=case.grad_output, **case.kwargs)
    assert ast.literal_eval(out["exact"]) == [mpmath.nstr(v, 17) for v in exact.values.reshape(-1)[:64]]
    assert out["observed"].startswith("[") and "nan" not in out["observed"]
    with pytest.raises(ValueError, match="check must be"):
        snippet(case, "torch", "hessian")
