"""Argument checking and the row form every kernel works on.

A call is checked once, against torch's documented rules, and then brought into *row form*: for
the class-dim losses a (M, C) matrix (class dim last; spatial positions and the batch flattened
into M rows), for the elementwise losses a (M, 1) column with weights broadcast.  Kernels only ever
see row form; :class:`Problem` knows how to put results back into torch's output shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import registry
from .formats import FORMATS, dtype_name


@dataclass
class Problem:
    loss: str
    dtype: str  # the input's format (and by default the output's)
    reduction: str  # 'none' | 'sum' | 'mean' | 'elementwise' (softmax family)
    rows: dict[str, Any]  # float64 arrays (exact copies of the inputs) and int arrays, row form
    nclass: int  # C (1 for elementwise losses)
    unreduced_shape: tuple[int, ...]  # torch's output shape for reduction='none'
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    _to_input: Any = None  # (M, K) -> input shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return () if self.reduction in ("sum", "mean") else self.unreduced_shape

    @property
    def m(self) -> int:
        return int(next(iter(self.rows.values())).shape[0]) if self.rows else 0

    def rows_to_output(self, a: np.ndarray) -> np.ndarray:
        """(M,) or (M, C) per-row results -> torch's unreduced output shape."""
        if self.reduction == "elementwise":
            return self._to_input(a)
        return np.asarray(a).reshape(self.unreduced_shape)

    def rows_to_input(self, a: np.ndarray) -> np.ndarray:
        return self._to_input(a)


def _fail(arg: str, msg: str):
    raise ValueError(f"{arg}: {msg}")


def _float_array(name: str, a, dtype: str | None = None) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        if np.isscalar(a) and not isinstance(a, (bool, str)):
            a = np.asarray(a)
        else:
            _fail(name, f"expected a NumPy array, got {type(a).__name__}")
    try:
        got = dtype_name(a)
    except ValueError:
        _fail(name, f"unsupported dtype {a.dtype.name!r}; supported: {', '.join(FORMATS)}")
    if dtype is not None and got != dtype:
        _fail(name, f"dtype {got} does not match the input's dtype {dtype}")
    return a


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float64)  # exact for every supported format


def _reduction(kwargs) -> str:
    r = kwargs.get("reduction", "mean")
    if r not in registry.REDUCTIONS:
        _fail("reduction", f"unknown reduction {r!r}; expected one of {', '.join(registry.REDUCTIONS)}")
    return r


def _check_kwargs(loss: str, kwargs: dict) -> None:
    spec = registry.get(loss)
    unknown = set(kwargs) - set(spec.option_names)
    if unknown:
        _fail(min(unknown), f"unexpected keyword argument for {loss}")
    for a in spec.options:
        if a.required and kwargs.get(a.name) is None:
            _fail(a.name, f"{loss} requires {a.name}")


def prepare(loss: str, args: tuple, kwargs: dict) -> Problem:
    spec = registry.get(loss)
    if len(args) != len(spec.positional):
        _fail(loss, f"expected {len(spec.positional)} positional array(s) "
                    f"({', '.join(a.name for a in spec.positional)}), got {len(args)}")
    _check_kwargs(loss, kwargs)
    x = _float_array("input", args[0])
    dtype = dtype_name(x)
    if loss in ("cross_entropy", "nll_loss"):
        return _prepare_class(loss, x, args[1], kwargs, dtype)
    if loss in ("softmax", "log_softmax"):
        return _prepare_softmax(loss, x, kwargs, dtype)
    return _prepare_elementwise(loss, x, args[1], kwargs, dtype)


def _prepare_class(loss, x, target, kwargs, dtype) -> Problem:
    reduction = _reduction(kwargs)
    if x.ndim == 0:
        _fail("input", "expected shape (C,), (N, C) or (N, C, d1, ..., dk), got a 0-d array")
    unbatched = x.ndim == 1
    c = x.shape[0] if unbatched else x.shape[1]
    if c < 1:
        _fail("input", "the class dimension is empty (C = 0)")
    xr = x.reshape(1, c) if unbatched else np.moveaxis(x, 1, -1).reshape(-1, c)
    target = np.asarray(target)
    eps = float(kwargs.get("label_smoothing", 0.0) or 0.0)
    if loss == "cross_entropy" and not (0.0 <= eps <= 1.0):
        _fail("label_smoothing", f"must be in [0, 1], got {eps}")
    weight = kwargs.get("weight")
    rows: dict[str, Any] = {"x": _f64(xr)}
    if weight is not None:
        weight = _float_array("weight", weight, dtype)
        if weight.shape != (c,):
            _fail("weight", f"expected shape ({c},) (one weight per class), got {weight.shape}")
        rows_w = _f64(weight)
    else:
        rows_w = None
    prob = target.dtype.kind == "f" or target.dtype.name == "bfloat16"
    if prob:
        if loss == "nll_loss":
            _fail("target", "nll_loss takes class indices (int64), not probabilities")
        _float_array("target", target, dtype)
        if target.shape != x.shape:
            _fail("target", f"probability targets must have the input's shape {x.shape}, got {target.shape}")
        rows["p"] = _f64(target.reshape(1, c) if unbatched else np.moveaxis(target, 1, -1).reshape(-1, c))
        unreduced = () if unbatched else (x.shape[0],) + x.shape[2:]
        options = {"label_smoothing": eps, "weight": rows_w, "prob": True}
    else:
        if target.dtype.kind not in "iu":
            _fail("target", f"expected int64 class indices or float probabilities, got dtype {target.dtype.name}")
        expect = () if unbatched else (x.shape[0],) + x.shape[2:]
        if target.shape != expect:
            _fail("target", f"expected shape {expect} for input of shape {x.shape}, got {target.shape}")
        ii = kwargs.get("ignore_index", -100)
        if ii is None or isinstance(ii, bool) or int(ii) != ii:
            _fail("ignore_index", f"must be an integer, got {ii!r}")
        ii = int(ii)
        t = target.astype(np.int64).reshape(-1)
        bad = (t != ii) & ((t < 0) | (t >= c))
        if bad.any():
            _fail("target", f"class index {int(t[bad][0])} is out of range [0, {c}) and is not "
                            f"ignore_index ({ii})")
        rows["t"] = t
        unreduced = expect
        options = {"label_smoothing": eps, "weight": rows_w, "prob": False, "ignore_index": ii}
    if loss == "nll_loss":
        options["label_smoothing"] = 0.0

    def to_input(g):
        g = np.asarray(g)
        if unbatched:
            return g.reshape(c)
        return np.moveaxis(g.reshape((x.shape[0],) + x.shape[2:] + (c,)), -1, 1)

    return Problem(loss=loss, dtype=dtype, reduction=reduction, rows=rows, nclass=c,
                   unreduced_shape=unreduced, input_shape=x.shape, options=options, _to_input=to_input)


def _prepare_softmax(loss, x, kwargs, dtype) -> Problem:
    dim = kwargs.get("dim")
    if dim is None or isinstance(dim, bool) or int(dim) != dim:
        _fail("dim", f"{loss} requires an integer dim, got {dim!r}")
    nd = max(x.ndim, 1)
    dim = int(dim)
    if not -nd <= dim < nd:
        _fail("dim", f"dimension {dim} out of range for a {x.ndim}-d input")
    xx = x.reshape(1) if x.ndim == 0 else x
    d = dim % nd
    moved = np.moveaxis(xx, d, -1)
    c = moved.shape[-1]
    rows = {"x": _f64(moved.reshape(-1, c))}

    def to_input(g):
        g = np.asarray(g).reshape(moved.shape)
        return np.moveaxis(g, -1, d).reshape(x.shape)

    return Problem(loss=loss, dtype=dtype, reduction="elementwise", rows=rows, nclass=c,
                   unreduced_shape=x.shape, input_shape=x.shape, options={"dim": dim}, _to_input=to_input)


def _prepare_elementwise(loss, x, target, kwargs, dtype) -> Problem:
    reduction = _reduction(kwargs)
    y = _float_array("target", target, dtype)
    if y.shape != x.shape:
        _fail("target", f"shape {y.shape} does not match the input's shape {x.shape}")
    xf, yf = _f64(x), _f64(y)
    if loss == "binary_cross_entropy":
        for name, a in (("input", xf), ("target", yf)):
            bad = ~((a >= 0) & (a <= 1))
            if bad.any():
                _fail(name, f"binary_cross_entropy needs values in [0, 1], got {float(a[bad].reshape(-1)[0])!r}")
    rows = {"x": xf.reshape(-1, 1), "y": yf.reshape(-1, 1)}
    for name in registry.get(loss).array_options:
        w = kwargs.get(name)
        if w is None:
            continue
        w = _float_array(name, w, dtype)
        try:
            wb = np.broadcast_to(_f64(w), x.shape)
        except ValueError:
            _fail(name, f"shape {w.shape} does not broadcast to the target's shape {x.shape}")
        rows[name] = wb.reshape(-1, 1)

    def to_input(g):
        return np.asarray(g).reshape(x.shape)

    return Problem(loss=loss, dtype=dtype, reduction=reduction, rows=rows, nclass=1,
                   unreduced_shape=x.shape, input_shape=x.shape, options={}, _to_input=to_input)
