"""The loss definitions: one LossDef per loss drives everything, and generic code never names a loss.

Adding a loss must be one module under reference/losses/ plus its name in registry.MODULES; these
tests hold the rest of the code to that (data-apis style: tests of the harness itself).
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

import cases
from reference import registry
from reference.lossdef import LossDef

ROOT = Path(__file__).resolve().parents[1]
GENERIC = [p for d in ("harness", "cases", "reports") for p in (ROOT / d).rglob("*.py")]
GENERIC += [p for p in (ROOT / "reference").glob("*.py")]  # not reference/losses/: the loss modules
# backends that adapt one foreign library keep a table of which torch functions it provides: that
# table is the backend itself (like a drop-in module's function names), not generic dispatch
ADAPTERS = {ROOT / "harness" / "backends" / name for name in ("jax_backend.py", "liger_backend.py", "mlx_backend.py",
                                                             "tinygrad_backend.py", "tensorflow_backend.py", "keras_backend.py",
                                                             "paddle_backend.py", "scipy_backend.py")}
NAMES = set(registry.LOSSES)
PREFIXES = {f.split(".")[0] + "." for d in registry.REGISTRY.values() for f in d.families}


def _strings(tree: ast.AST):
    """String constants that are not docstrings (nor the registry's list of loss modules)."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "MODULES" for t in targets):
                docs.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


@pytest.mark.parametrize("path", [p for p in GENERIC if p not in ADAPTERS],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_generic_code_never_names_a_loss(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [(n.lineno, n.value) for n in _strings(tree)
           if n.value in NAMES or any(n.value.startswith(p) for p in PREFIXES)]
    assert not bad, f"{path.relative_to(ROOT)} names losses or their families: {bad}"


def test_the_scan_would_catch_a_branch(tmp_path):
    src = 'def f(case):\n    """cross_entropy in a docstring is fine."""\n    return case.loss == "nll_loss"\n'
    assert [n.value for n in _strings(ast.parse(src))] == ["nll_loss"]


@pytest.mark.parametrize("name", registry.LOSSES)
def test_every_loss_is_a_complete_definition(name):
    d = registry.get(name)
    assert isinstance(d, LossDef) and d.name == name
    assert d.summary and d.notes.strip(), "semantic notes are rendered into docs/losses.md"
    assert d.positional and d.positional[0].name == "input"
    assert d.families, "a loss without case families is never checked"
    for method in ("prepare", "kernel", "numpy_value", "numpy_grads", "strategy", "brute"):
        assert getattr(type(d), method) is not getattr(LossDef, method), f"{name} lacks {method}"
    assert d.checks[0] == "value" and all(c.startswith("grad:") for c in d.checks[1:])


@pytest.mark.parametrize("name", registry.LOSSES)
def test_gate_covers_every_option_family_in_every_dtype(name):
    d = registry.get(name)
    seen = {(c.options, c.dtype) for c in cases.build_suite("gate") if c.loss == name}
    missing = [(f, dt) for f in d.option_families for dt in d.dtypes if (f, dt) not in seen]
    assert not missing
    assert {c.reduction for c in cases.build_suite("gate") if c.loss == name} >= (
        set(d.reductions) if d.has_reduction else {"none"})


@pytest.mark.parametrize("name", registry.LOSSES)
def test_declared_gradients_are_the_ones_torch_computes(name):
    """Each differentiable argument gets a gradient from torch's autograd; no other tensor does."""
    d = registry.get(name)
    if not hasattr(torch.nn.functional, name):  # torchvision's: tests/test_focal_loss.py transcribes it
        pytest.skip(f"torch.nn.functional has no {name}; its own test file checks its gradients")
    accepted = set(inspect.signature(getattr(torch.nn.functional, name)).parameters)
    firsts = {}
    wide = "float64" if "float64" in d.dtypes else "float32"  # the widest format the loss checks
    for c in cases.build_suite("gate"):
        # options torch's function lacks (cross_entropy's softcap / z_loss, Liger-Kernel's): torch
        # reports those cases unsupported, and tests/test_cross_entropy_llm.py checks their gradients
        if set(d.torch_kwargs(c.kwargs, accepted.__contains__)) - accepted:
            continue
        if c.loss == name and c.grad and c.dtype == wide and c.args[0].size < 5000:
            firsts.setdefault(c.options, c)
    assert firsts
    for case in firsts.values():
        _torch_differentiates_what_is_declared(d, case)


def _torch_differentiates_what_is_declared(d, case):
    name = d.name
    tensors = {a.name: torch.from_numpy(np.array(x)) for a, x in zip(d.positional, case.args)}
    kw = {k: (torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v) for k, v in case.kwargs.items()}
    # floating positional tensors, and tensor options declared differentiable (linear_cross_entropy's
    # bias; class weights are constants here even where torch would differentiate them)
    opts = {a.name for a in d.options if a.differentiable}
    floating = {k: t for k, t in {**tensors, **{k: v for k, v in kw.items() if k in opts}}.items()
                if isinstance(t, torch.Tensor) and t.is_floating_point()}
    for t in floating.values():
        t.requires_grad_(True)
    pos = [tensors[a.name] for a in d.positional]
    fn = getattr(torch.nn.functional, name)
    kw = d.torch_kwargs(kw, inspect.signature(fn).parameters.__contains__)
    fn(*pos, **kw).backward(torch.from_numpy(np.array(case.grad_output)))
    got = {k for k, t in floating.items() if t.grad is not None}
    declared = set(d.differentiable_for(case.args, case.kwargs))
    assert declared == got, f"torch differentiates {got}, the definition declares {declared}"


def test_docs_losses_page_is_rendered_from_the_definitions():
    from reference.doc import render

    page = (ROOT / "docs" / "losses.md").read_text(encoding="utf-8")
    assert page == render(), "docs/losses.md is stale: python -m reference.doc > docs/losses.md"
