"""Families for binary_cross_entropy and binary_cross_entropy_with_logits."""
from __future__ import annotations

import numpy as np

from ..model import make_case
from ..sampling import cast, finfo, normal, ordinal_uniform
from . import family
from ._util import reduction

BCE, BCEL = "binary_cross_entropy", "binary_cross_entropy_with_logits"


def _targets(rng, shape, dtype, kind: str) -> np.ndarray:
    if kind == "binary":
        return cast(rng.integers(0, 2, size=shape), dtype)
    return cast(rng.uniform(0, 1, size=shape), dtype)


def _broadcast_weights(rng, shape, dtype):
    """(per-class (C,), per-row (N, 1), full shape, full with zeros)."""
    N, C = shape
    zero = rng.uniform(0.25, 3.0, size=shape)
    zero[rng.random(shape) < 0.4] = 0.0
    return [("per-class weight (C,)", cast(rng.uniform(0.25, 3.0, C), dtype)),
            ("per-row weight (N, 1)", cast(rng.uniform(0.25, 3.0, (N, 1)), dtype)),
            ("full-shape weight", cast(rng.uniform(0.25, 3.0, shape), dtype)),
            ("weights with zeros", cast(zero, dtype))]


# ---------------------------------------------------------------- binary_cross_entropy

@family("bce.random", BCE)
def bce_random(rng, dtype, size):
    """Probabilities uniform and ordinal-uniform in (0, 1); binary and fractional targets."""
    out, i = [], 0
    shape = (size.batch, 5)
    for style in ("uniform", "ordinal"):
        for kind in ("binary", "fractional"):
            for _ in range(size.repeats):
                if style == "uniform":
                    x = cast(rng.uniform(0.001, 0.999, size=shape), dtype)
                else:
                    # every binade of [2^-14, 1 - 2^-14]: realistic extremes; the region where
                    # x(1-x) is tiny (where torch's backward clamps) is bce.edges' job
                    x = ordinal_uniform(rng, 2.0 ** -14, 1.0 - 2.0 ** -14, shape, dtype)
                out.append(make_case(BCE, (x, _targets(rng, shape, dtype, kind)), {"reduction": reduction(i)},
                                     family="bce.random", meta={"note": f"{style} inputs, {kind} targets"}))
                i += 1
    return out


@family("bce.edges", BCE)
def bce_edges(rng, dtype, size):
    """Inputs exactly 0 and 1 (log clamped at -100), subnormal, tiny (1e-30, 1e-300), 1 - ulp."""
    fi = finfo(dtype)
    tiny = [float(fi.smallest_subnormal), float(fi.smallest_normal), float(fi.eps)]
    tiny += [v for v in (1e-30, 1e-300) if float(cast(v, dtype)) > 0]
    one_minus = float(1.0 - fi.epsneg)
    xs = cast(tiny + [one_minus, 0.5], dtype)
    ys = cast([0.0, 1.0, 0.25], dtype)
    x = np.repeat(xs, len(ys)).astype(xs.dtype)
    y = np.tile(ys, len(xs)).astype(ys.dtype)
    out = []
    for r in range(3):
        out.append(make_case(BCE, (x, y), {"reduction": reduction(r)}, family="bce.edges",
                             meta={"note": "subnormal, tiny, 1 - ulp inputs x targets {0, 1, 0.25}"}))
    ends = cast([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype)
    yend = cast([0.0, 1.0, 0.5, 0.0, 1.0, 0.5], dtype)
    for r in range(3):
        # grad off: at exactly 0 and 1 the clamped log has no defined derivative (torch clamps its
        # denominator at 1e-12), so there is nothing exact to compare a gradient against.
        out.append(make_case(BCE, (ends, yend), {"reduction": reduction(r)}, family="bce.edges", grad=False,
                             meta={"note": "inputs exactly 0 and 1 (log clamped at -100); gradient not checked"}))
    return out


@family("bce.weight", BCE)
def bce_weight(rng, dtype, size):
    """Element weights broadcast per class, per row, full shape, and with zeros."""
    out = []
    shape = (size.batch, 4)
    for i, (note, w) in enumerate(_broadcast_weights(rng, shape, dtype)):
        x = cast(rng.uniform(0.01, 0.99, size=shape), dtype)
        out.append(make_case(BCE, (x, _targets(rng, shape, dtype, "fractional")),
                             {"weight": w, "reduction": reduction(i)}, family="bce.weight", meta={"note": note}))
    return out


# ---------------------------------------------------------------- binary_cross_entropy_with_logits

@family("bcel.random", BCEL)
def bcel_random(rng, dtype, size):
    """Logits N(0, sigma^2), sigma in {1, 4, 16}; binary and fractional targets."""
    out, i = [], 0
    shape = (size.batch, 5)
    for sigma in (1.0, 4.0, 16.0):
        for kind in ("binary", "fractional"):
            out.append(make_case(BCEL, (normal(rng, sigma, shape, dtype), _targets(rng, shape, dtype, kind)),
                                 {"reduction": reduction(i)}, family="bcel.random",
                                 meta={"note": f"N(0, {sigma:g}^2) logits, {kind} targets"}))
            i += 1
    return out


@family("bcel.edges", BCEL)
def bcel_edges(rng, dtype, size):
    """One logit value x at +-{10, 17, 50, 88, 100, 1e4} against targets {0, 0.25, 0.5, 1}."""
    out, i = [], 0
    y = cast([0.0, 0.25, 0.5, 1.0], dtype)
    for mag in (10.0, 17.0, 50.0, 88.0, 100.0, 1e4):
        for sign in (1.0, -1.0):
            x = cast(np.full(4, sign * mag), dtype)
            v = float(x[0])
            out.append(make_case(BCEL, (x, y), {"reduction": reduction(i)}, family="bcel.edges",
                                 meta={"note": f"x = {v:g}",
                                       **({"drive": {"name": "x", "value": v}} if np.isfinite(v) else {})}))
            i += 1
    return out


@family("bcel.infinite", BCEL)
def bcel_infinite(rng, dtype, size):
    """x = +-inf against targets {0, 0.25, 0.5, 1}, reduction='none' so each element is judged.

    The documented formula gives inf where one term is infinite and NaN where an exactly-zero
    coefficient meets an infinite log (0 * inf)."""
    y = cast([0.0, 0.25, 0.5, 1.0], dtype)
    return [make_case(BCEL, (cast(np.full(4, v), dtype), y), {"reduction": "none"}, family="bcel.infinite",
                      meta={"note": f"x = {v:g}"}) for v in (np.inf, -np.inf)]


def _pos_weights(rng, C, dtype):
    return [("per-class pos_weight (C,)", cast(rng.uniform(0.25, 4.0, C), dtype)),
            ("broadcast pos_weight (1,)", cast([rng.uniform(0.25, 4.0)], dtype)),
            ("zero pos_weight", cast(np.zeros(C), dtype))]


@family("bcel.pos_weight", BCEL)
def bcel_pos_weight(rng, dtype, size):
    """pos_weight per class, broadcast (1,) and zero, on moderate and large logits."""
    out, i = [], 0
    shape = (size.batch, 4)
    for note, pw in _pos_weights(rng, shape[1], dtype):
        for sigma in (2.0, 30.0):
            x = normal(rng, sigma, shape, dtype)
            out.append(make_case(BCEL, (x, _targets(rng, shape, dtype, "fractional")),
                                 {"pos_weight": pw, "reduction": reduction(i)}, family="bcel.pos_weight",
                                 meta={"note": f"{note}, sigma {sigma:g}"}))
            i += 1
    return out


@family("bcel.weight", BCEL)
def bcel_weight(rng, dtype, size):
    """Element weights broadcast per class, per row, full shape, and with zeros."""
    out = []
    shape = (size.batch, 4)
    for i, (note, w) in enumerate(_broadcast_weights(rng, shape, dtype)):
        out.append(make_case(BCEL, (normal(rng, 4.0, shape, dtype), _targets(rng, shape, dtype, "binary")),
                             {"weight": w, "reduction": reduction(i)}, family="bcel.weight", meta={"note": note}))
    return out


@family("bcel.pos_weight_weight", BCEL)
def bcel_both(rng, dtype, size):
    """pos_weight together with weight."""
    out = []
    shape = (size.batch, 4)
    for i, ((pn, pw), (wn, w)) in enumerate(zip(_pos_weights(rng, shape[1], dtype),
                                                _broadcast_weights(rng, shape, dtype))):
        out.append(make_case(BCEL, (normal(rng, 4.0, shape, dtype), _targets(rng, shape, dtype, "fractional")),
                             {"weight": w, "pos_weight": pw, "reduction": reduction(i)},
                             family="bcel.pos_weight_weight", meta={"note": f"{pn} + {wn}"}))
    return out
