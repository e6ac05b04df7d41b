"""The oracle's public entry points, shaped like torch.nn.functional.

``evaluate`` / ``evaluate_grad`` return an :class:`~reference.exact.Exact` (values plus the scales
the verdict ladder needs); :func:`function` makes the torch-shaped ``reference.<loss>`` functions
that return just the exact values.  Nothing here knows a loss: the registry's LossDef does.
"""
from __future__ import annotations

import numpy as np

from . import registry
from .budget import check_elements
from .exact import Exact
from .formats import FORMATS, get_format
from .fpu import oracle_state
from .settle import Evaluation, settle


def _out_format(problem, out_dtype):
    if out_dtype is None:
        return get_format(problem.dtype)
    name = out_dtype if isinstance(out_dtype, str) else np.dtype(out_dtype).name
    if name not in FORMATS:
        raise ValueError(f"out_dtype: unsupported dtype {name!r}; supported: {', '.join(FORMATS)}")
    return FORMATS[name]


def _run(ev: Evaluation, fmt) -> Exact:
    st = settle(ev, fmt)
    out = ev.to_output
    return Exact.from_values(out(st.values), out(st.undetermined), out(st.cond), out(st.scale), out(st.nterms),
                             fmt.name, rounded=out(st.rounded), hi=out(st.hi), lo=out(st.lo))


def evaluate(name: str, *args, out_dtype=None, **kwargs) -> Exact:
    """Exact value of loss ``name`` on the given arrays, settled for the output format."""
    with oracle_state():
        return _evaluate(name, args, kwargs, out_dtype)


def _check_budget(name: str, args, kwargs, grad_output=None) -> None:
    arrays = [a for a in (*args, *kwargs.values(), grad_output) if isinstance(a, np.ndarray)]
    check_elements(sum(int(a.size) for a in arrays), f"{name}: the call's arrays")


def _evaluate(name, args, kwargs, out_dtype) -> Exact:
    d = registry.get(name)
    _check_budget(name, args, kwargs)
    problem = d.prepare(args, kwargs)
    fmt = _out_format(problem, out_dtype)
    own = d.exact(problem, fmt)
    return own if own is not None else _run(Evaluation(problem, d.kernel(problem)), fmt)


def _grad_output(problem, grad_output) -> np.ndarray:
    shape = problem.out_shape
    if grad_output is None:
        return np.ones(shape, np.float64)
    go = np.asarray(grad_output)
    if go.dtype.kind not in "fiu" and go.dtype.name != "bfloat16":
        raise ValueError(f"grad_output: expected a floating array, got dtype {go.dtype.name}")
    go = go.astype(np.float64)
    if go.shape != shape:
        raise ValueError(f"grad_output: expected shape {shape} (the output's), got {go.shape}")
    if not np.all(np.isfinite(go)):
        raise ValueError("grad_output: must be finite")
    return go


def evaluate_grad(name: str, *args, grad_output=None, wrt: str = "input", out_dtype=None, **kwargs) -> Exact:
    """Exact gradient of loss ``name`` w.r.t. its argument ``wrt`` (the VJP with grad_output)."""
    with oracle_state():
        return _evaluate_grad(name, args, kwargs, grad_output, wrt, out_dtype)


def _evaluate_grad(name, args, kwargs, grad_output, wrt, out_dtype) -> Exact:
    d = registry.get(name)
    _check_budget(name, args, kwargs, grad_output)
    problem = d.prepare(args, kwargs)
    if wrt not in d.differentiable_for(args, kwargs):
        raise ValueError(f"wrt: this {name} call is not differentiable w.r.t. {wrt!r}; differentiable: "
                         f"{', '.join(d.differentiable_for(args, kwargs)) or 'none'}")
    go = _grad_output(problem, grad_output)
    fmt = _out_format(problem, out_dtype)
    own = d.exact(problem, fmt, go, wrt)
    return own if own is not None else _run(Evaluation(problem, d.kernel(problem), grad_output=go, wrt=wrt), fmt)


def evaluate_check(name: str, check: str, *args, grad_output=None, out_dtype=None, **kwargs) -> Exact:
    """The Exact for one check: ``"value"`` or ``"grad:<arg>"``."""
    if check == "value":
        return evaluate(name, *args, out_dtype=out_dtype, **kwargs)
    kind, _, arg = check.partition(":")
    if kind != "grad" or not arg:
        raise ValueError(f"check: expected 'value' or 'grad:<arg>', got {check!r}")
    return evaluate_grad(name, *args, grad_output=grad_output, wrt=arg, out_dtype=out_dtype, **kwargs)


def grad(name: str, *args, grad_output=None, wrt: str = "input", **kwargs) -> np.ndarray:
    """Exact gradient values (object array of mpf) of ``name`` w.r.t. ``wrt``."""
    return evaluate_grad(name, *args, grad_output=grad_output, wrt=wrt, **kwargs).values


def function(name: str):
    """``reference.<name>``: the loss with torch's signature, returning exact values (mpf)."""
    d = registry.get(name)
    sig = d.signature()
    positional = [a.name for a in d.positional]

    def fn(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        out_dtype = values.pop("out_dtype")
        pos = [values.pop(n) for n in positional]
        return evaluate(name, *pos, out_dtype=out_dtype, **values).values

    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = sig
    fn.__doc__ = f"Exact {name}: {d.summary}\n\nSee reference.registry.get({name!r}).notes for the semantics."
    return fn
