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


def _bits(code: str) -> bytes:
    """Run a snippet with one more line: the observed array's float64 bytes, in hex."""
    out = run(code + 'print("HEX:", np.asarray(observed, np.float64).tobytes().hex())\n')
    return bytes.fromhex(out["HEX"])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_a_large_case_from_another_seed_is_embedded_and_reruns_as_pasted(dtype):
    """issue 12: no cases.find (which searched seed 0 only): the case's exact bytes travel in the
    snippet, so a case from seed 3 reproduces the backend's bits (value and gradient)."""
    import cases

    case = next(c for c in cases.build_suite("gate", 3) if c.loss == "log_softmax" and 64 < c.args[0].size < 2000
                and c.dtype == dtype and c.grad)
    obs = load("torch").evaluate(case)
    for check in ("value", "grad:input"):
        code = snippet(case, "torch.nn:functional", check)
        assert "cases.find" not in code and "= packed(" in code
        want = np.asarray(obs.observed(check)).astype(np.float64)
        assert _bits(code) == want.tobytes()
    with pytest.raises(ValueError, match="check must be"):
        snippet(case, "torch", "hessian")


def test_a_hypothesis_case_reruns_as_pasted():
    """A case drawn from a strategy is in no suite: the snippet rebuilds it from its own bytes."""
    from hypothesis import HealthCheck, given, settings

    from cases.strategies import cases_for

    seen = []

    @settings(max_examples=3, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cases_for("softmax"))
    def draw(case):
        seen.append(case)

    draw()
    case = max(seen, key=lambda c: c.args[0].size)
    code = snippet(case, "torch", "value")
    assert _bits(code) == np.asarray(load("torch").evaluate(case).value).astype(np.float64).tobytes()


def test_a_case_too_large_to_embed_is_fetched_from_its_suite_and_seed(monkeypatch):
    import cases
    from harness import repro

    monkeypatch.setattr(repro, "MAX_EMBED", 16)
    case = next(c for c in cases.build_suite("gate") if c.loss == "log_softmax" and 64 < c.args[0].size < 2000)
    code = snippet(case, "torch", "value")
    assert f"cases.find({case.id!r}" in code and "= packed(" not in code
    assert _bits(code) == np.asarray(load("torch").evaluate(case).value).astype(np.float64).tobytes()
