"""Deterministic generators and the three sampling styles every case family may use.

Values are drawn in float64 and rounded once (round-half-even) into the case dtype, except
ordinal-uniform sampling, which draws bit patterns of the case dtype directly.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import ml_dtypes
import numpy as np

from .formats import FORMATS, from_ordinal, np_dtype, ordinal

DTYPES: dict[str, np.dtype] = {name: f.np_dtype for name, f in FORMATS.items()}
STYLES = ("ordinal", "log", "normal")


def finfo(name: str) -> ml_dtypes.finfo:
    return ml_dtypes.finfo(np_dtype(name))


def precision(name: str) -> int:
    """Significand bits including the hidden bit (u = 2**-precision)."""
    return int(finfo(name).nmant) + 1


def exp_edge(name: str) -> float:
    """ln(max finite): exp() of anything larger overflows in this dtype."""
    return float(np.log(float(finfo(name).max)))


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A Generator seeded from seed and a stable hash of parts (never Python's salted hash())."""
    digest = hashlib.sha256("/".join([str(seed), *map(str, parts)]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def cast(values, dtype: str) -> np.ndarray:
    """One round-half-even rounding from float64 into dtype."""
    return np.asarray(values, dtype=np.float64).astype(np_dtype(dtype))



def ordinal_uniform(rng: np.random.Generator, lo: float, hi: float, size, dtype: str) -> np.ndarray:
    """Uniform over the representable values of dtype in [lo, hi] (Herbie style): every binade
    gets as many samples as it has floats, so tiny and huge magnitudes are both exercised."""
    a, b = ordinal(cast([lo, hi], dtype), dtype)
    return from_ordinal(rng.integers(a, b, size=size, endpoint=True), dtype)


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size, dtype: str,
                signed: bool = False) -> np.ndarray:
    """Magnitudes log-uniform in [lo, hi] (0 < lo <= hi), optionally with random signs."""
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), size=size))
    if signed:
        mag = mag * rng.choice([-1.0, 1.0], size=size)
    return cast(mag, dtype)


def normal(rng: np.random.Generator, sigma: float, size, dtype: str, mean: float = 0.0) -> np.ndarray:
    """Realistic logits: N(mean, sigma^2)."""
    return cast(rng.normal(mean, sigma, size=size), dtype)


def sample(style: str, rng: np.random.Generator, size, dtype: str, **params) -> np.ndarray:
    """Dispatch by style name, so any family can be run with any style."""
    if style == "ordinal":
        return ordinal_uniform(rng, params.get("lo", -1.0), params.get("hi", 1.0), size, dtype)
    if style == "log":
        return log_uniform(rng, params.get("lo", 1e-3), params.get("hi", 1e3), size, dtype,
                           params.get("signed", True))
    if style == "normal":
        return normal(rng, params.get("sigma", 1.0), size, dtype, params.get("mean", 0.0))
    raise ValueError(f"unknown sampling style {style!r}; known: {', '.join(STYLES)}")


def class_targets(rng: np.random.Generator, shape: Sequence[int], classes: int) -> np.ndarray:
    return rng.integers(0, classes, size=tuple(shape)).astype(np.int64)


def probabilities(rng: np.random.Generator, shape: Sequence[int], dtype: str, axis: int = -1) -> np.ndarray:
    """Soft targets: Dirichlet(1) rows along axis, rounded into dtype (sums then only ~1)."""
    g = rng.gamma(1.0, size=tuple(shape))
    return cast(g / g.sum(axis=axis, keepdims=True), dtype)


def grad_output(rng: np.random.Generator, shape: Sequence[int], dtype: str) -> np.ndarray:
    """Random upstream gradient in [0.25, 2]; never all equal when it has several elements,
    so a backend that ignores grad_output's per-element values is caught."""
    g = cast(rng.uniform(0.25, 2.0, size=tuple(shape)), dtype)
    if g.size > 1 and np.all(g == g.flat[0]):
        flat = g.reshape(-1).copy()
        flat[0] = cast(0.5 if float(flat[0]) != 0.5 else 1.5, dtype)
        g = flat.reshape(g.shape)
    return g
