"""Closed-form input gradients (vector-Jacobian products) for the careful NumPy backend.

Each function returns d(loss)/d(input) contracted with ``grad_output`` (output-shaped for
reduction='none', a scalar otherwise) in float64; the backend rounds once.  The forms keep the
small quantities small: p_t - 1 is expm1(logp_t), sigmoid(-x) is never 1 - sigmoid(x).
"""
from __future__ import annotations

import numpy as np

from .numpy_losses import (
    ClassLayout,
    _check_reduction,
    is_probability_target,
    nll_parts,
    smoothed_probabilities,
)
from .numpy_numerics import CAREFUL as nx


def _upstream(grad_output, reduction: str, count) -> np.ndarray:
    """Per-position factor: grad_output itself ('none'), or the scalar over the mean's denominator."""
    g = nx.work(grad_output)
    if reduction == "none":
        return g.reshape(-1)
    return g.reshape(()) / count if reduction == "mean" else g.reshape(())


def cross_entropy(input, target, grad_output, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    _check_reduction(reduction)
    layout = ClassLayout(np.shape(input))
    C = layout.classes
    eps = float(label_smoothing)
    logp = nx.log_softmax(nx.work(layout.flat(np.asarray(input))), axis=-1)
    p = np.exp(logp)
    if is_probability_target(target):
        T = smoothed_probabilities(nx, target, eps, layout)
        wT = T * nx.work(weight) if weight is not None else T
        g = p * np.sum(wT, axis=-1, keepdims=True) - wT
        up = _upstream(grad_output, reduction, logp.shape[0])
        return layout.unflat(g * up[..., None])
    parts = nll_parts(nx, logp, target, weight, ignore_index, eps)
    rows = np.arange(logp.shape[0])
    g = (1 - eps) * parts.wt[:, None] * p
    g[rows, parts.safe_t] = (1 - eps) * parts.wt * np.expm1(logp[rows, parts.safe_t])
    if eps > 0:
        g = g + (eps / C) * (np.sum(parts.w) * p - parts.w[None, :])
    up = _upstream(grad_output, reduction, nx.total(parts.wt))
    # an ignored position is absent from the loss: exactly 0, even when up is inf (D = 0)
    with np.errstate(invalid="ignore"):
        return layout.unflat(np.where(parts.valid[:, None], g * up[..., None], 0.0))


def nll_loss(input, target, grad_output, weight=None, ignore_index=-100, reduction="mean"):
    _check_reduction(reduction)
    layout = ClassLayout(np.shape(input))
    logp = nx.work(layout.flat(np.asarray(input)))
    parts = nll_parts(nx, logp, target, weight, ignore_index, 0.0)
    up = _upstream(grad_output, reduction, nx.total(parts.wt))
    g = np.zeros_like(logp)
    # only the gathered target of a non-ignored position is in the loss; its -w[t] * up follows
    # IEEE rules (weight 0 over a zero total weight is NaN), every other entry is exactly 0
    with np.errstate(invalid="ignore"):
        tgt = -parts.wt * np.broadcast_to(up, parts.wt.shape)
    g[np.arange(logp.shape[0]), parts.safe_t] = np.where(parts.valid, tgt, 0.0)
    return layout.unflat(g)


def _elementwise_upstream(grad_output, reduction: str, size: int) -> np.ndarray:
    g = nx.work(grad_output)
    return g / size if reduction == "mean" else g


def binary_cross_entropy(input, target, grad_output, weight=None, reduction="mean"):
    """Derivative of the clamped loss: a clamped log (log x < -100) contributes nothing."""
    _check_reduction(reduction)
    X, Y = nx.work(input), nx.work(target)
    live_x = np.log(X) > -100.0
    live_1mx = np.log1p(-X) > -100.0
    both = (X - Y) / (X * (1 - X))  # = (1-y)/(1-x) - y/x without the cancellation
    split = np.where(live_1mx, (1 - Y) / (1 - X), 0.0) - np.where(live_x, Y / X, 0.0)
    g = np.where(live_x & live_1mx, both, split)
    if weight is not None:
        g = g * nx.work(weight)
    return g * _elementwise_upstream(grad_output, reduction, X.size)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below: no exp overflow, full relative precision."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def binary_cross_entropy_with_logits(input, target, grad_output, weight=None, reduction="mean",
                                     pos_weight=None):
    _check_reduction(reduction)
    X, Y = nx.work(input), nx.work(target)
    pos = Y * _sigmoid(-X)
    if pos_weight is not None:
        pos = nx.work(pos_weight) * pos
    g = (1 - Y) * _sigmoid(X) - pos
    if weight is not None:
        g = g * nx.work(weight)
    return g * _elementwise_upstream(grad_output, reduction, X.size)


def softmax(input, grad_output, dim):
    p = nx.softmax(nx.work(input), axis=dim)
    G = nx.work(grad_output)
    return p * (G - np.sum(G * p, axis=dim, keepdims=True))


def log_softmax(input, grad_output, dim):
    p = nx.softmax(nx.work(input), axis=dim)
    G = nx.work(grad_output)
    return G - p * np.sum(G, axis=dim, keepdims=True)


def mse_loss(input, target, grad_output, reduction="mean"):
    _check_reduction(reduction)
    X, Y = nx.work(input), nx.work(target)
    return 2.0 * (X - Y) * _elementwise_upstream(grad_output, reduction, X.size)


GRADIENTS = {f.__name__: f for f in (cross_entropy, nll_loss, binary_cross_entropy,
                                     binary_cross_entropy_with_logits, softmax, log_softmax, mse_loss)}
