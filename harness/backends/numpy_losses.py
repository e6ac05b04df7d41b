"""torch.nn.functional's seven functions on NumPy arrays, parameterised by an arithmetic.

This is the NumPy *backend* (an implementation under test, the one place besides reference/
allowed to spell out loss formulas).  The plumbing (class dim, weights, ignore_index, label
smoothing, probability targets, reductions and their denominators) follows torch's documented
behaviour; the arithmetic (``nx``: numpy_numerics.Careful or Naive) decides how stable it is.
Values are returned unrounded in the arithmetic's working dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtypes import BFLOAT16

REDUCTIONS = ("none", "sum", "mean")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: {reduction!r} is not one of {', '.join(REDUCTIONS)}")


def is_probability_target(t: np.ndarray) -> bool:
    t = np.asarray(t)
    return t.dtype == BFLOAT16 or np.issubdtype(t.dtype, np.floating)


@dataclass(frozen=True)
class ClassLayout:
    """Where the classes are: dim 1 of (N, C, d1, ...), dim 0 of an unbatched (C,).

    ``flat`` moves classes last and flattens positions to (P, C); ``unflat`` undoes it.
    """

    shape: tuple[int, ...]

    @property
    def classes(self) -> int:
        return self.shape[0] if len(self.shape) == 1 else self.shape[1]

    @property
    def positions(self) -> tuple[int, ...]:
        return () if len(self.shape) == 1 else (self.shape[0], *self.shape[2:])

    def flat(self, a: np.ndarray) -> np.ndarray:
        if len(self.shape) == 1:
            return a.reshape(1, -1)
        return np.moveaxis(a, 1, -1).reshape(-1, self.classes)

    def unflat(self, a: np.ndarray) -> np.ndarray:
        if len(self.shape) == 1:
            return a.reshape(self.shape)
        return np.moveaxis(a.reshape(*self.positions, self.classes), -1, 1)


@dataclass
class NllParts:
    """Per-position pieces of the (weighted, ignored, smoothed) NLL, shared with the gradients."""

    nll: np.ndarray       # -w[t] logp[t] (0 where ignored), shape (P,)
    smooth: np.ndarray | None  # -sum_c w_c logp[c] (0 where ignored), or None without smoothing
    wt: np.ndarray        # w[t] * valid, shape (P,)
    valid: np.ndarray     # bool (P,)
    safe_t: np.ndarray    # target with ignored positions replaced by 0
    w: np.ndarray         # class weights (C,)


def nll_parts(nx, logp: np.ndarray, t: np.ndarray, weight, ignore_index: int, eps: float) -> NllParts:
    C = logp.shape[-1]
    t = np.asarray(t).astype(np.int64).reshape(-1)
    valid = t != ignore_index
    if np.any(valid & ((t < 0) | (t >= C))):
        raise ValueError(f"target: class index out of range [0, {C}) (ignore_index={ignore_index})")
    safe_t = np.where(valid, t, 0)
    w = nx.work(weight) if weight is not None else np.ones(C, logp.dtype)
    wt = np.where(valid, w[safe_t], 0)
    picked = np.take_along_axis(logp, safe_t[:, None], axis=-1)[:, 0]
    nll = np.where(valid, -wt * picked, 0)
    smooth = np.where(valid, -np.sum(w * logp, axis=-1), 0) if eps > 0 else None
    return NllParts(nll, smooth, wt, valid, safe_t, w)


def _reduce_nll(nx, parts: NllParts, eps: float, C: int, reduction: str, layout: ClassLayout):
    per = parts.nll if parts.smooth is None else (1 - eps) * parts.nll + (eps / C) * parts.smooth
    if reduction == "none":
        return per.reshape(layout.positions)
    k = nx.scale_exponent(parts.nll, parts.smooth)
    if reduction == "sum":
        return nx.unscale(nx.total(per, k), k)
    # mean: divided by the total weight of the non-ignored targets (NaN when that is 0)
    num = nx.total(parts.nll, k)
    if parts.smooth is not None:
        num = (1 - eps) * num + (eps / C) * nx.total(parts.smooth, k)
    return nx.unscale(num / nx.total(parts.wt), k)


def cross_entropy(nx, input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    _check_reduction(reduction)
    layout = ClassLayout(np.shape(input))
    C = layout.classes
    eps = float(label_smoothing)
    logp = nx.log_softmax(nx.work(layout.flat(np.asarray(input))), axis=-1)
    if is_probability_target(target):
        return _reduce_per_position(nx, prob_target_loss(nx, logp, target, weight, eps, layout),
                                    reduction, layout)
    return _reduce_nll(nx, nll_parts(nx, logp, target, weight, ignore_index, eps), eps, C, reduction,
                       layout)


def smoothed_probabilities(nx, target, eps: float, layout: ClassLayout) -> np.ndarray:
    T = nx.work(layout.flat(np.asarray(target)))
    return (1 - eps) * T + eps / layout.classes if eps > 0 else T


def prob_target_loss(nx, logp, target, weight, eps: float, layout: ClassLayout) -> np.ndarray:
    """-sum_c w_c t'_c logp_c per position, t' = (1 - eps) t + eps / C."""
    T = smoothed_probabilities(nx, target, eps, layout)
    wT = T * nx.work(weight) if weight is not None else T
    return -np.sum(wT * logp, axis=-1)


def _reduce_per_position(nx, per, reduction: str, layout: ClassLayout):
    """Probability targets: the mean is over positions, not weight-normalised."""
    if reduction == "none":
        return per.reshape(layout.positions)
    return _reduce_elementwise(nx, per, reduction)


def nll_loss(nx, input, target, weight=None, ignore_index=-100, reduction="mean"):
    _check_reduction(reduction)
    layout = ClassLayout(np.shape(input))
    logp = nx.work(layout.flat(np.asarray(input)))
    return _reduce_nll(nx, nll_parts(nx, logp, target, weight, ignore_index, 0.0), 0.0,
                       layout.classes, reduction, layout)


def _reduce_elementwise(nx, per, reduction: str):
    if reduction == "none":
        return per
    k = nx.scale_exponent(per)
    total = nx.total(per, k)
    return nx.unscale(total / per.size if reduction == "mean" else total, k)


def binary_cross_entropy(nx, input, target, weight=None, reduction="mean"):
    _check_reduction(reduction)
    X, Y = nx.work(input), nx.work(target)
    if not nx.naive and not np.all((X >= 0) & (X <= 1)):
        raise ValueError("input: binary_cross_entropy needs every element in [0, 1]")
    log_x, log_1mx = nx.bce_logs(X)
    per = -(Y * log_x + (1 - Y) * log_1mx)
    if weight is not None:
        per = per * nx.work(weight)
    return _reduce_elementwise(nx, per, reduction)


def binary_cross_entropy_with_logits(nx, input, target, weight=None, reduction="mean", pos_weight=None):
    _check_reduction(reduction)
    X, Y = nx.work(input), nx.work(target)
    neg_log_sig, neg_log_1msig = nx.neg_log_sigmoids(X)
    pos_coef = Y if pos_weight is None else nx.work(pos_weight) * Y  # pos_weight: per class, last dim
    per = nx.times(pos_coef, neg_log_sig) + nx.times(1 - Y, neg_log_1msig)
    if weight is not None:
        per = per * nx.work(weight)
    return _reduce_elementwise(nx, per, reduction)


def softmax(nx, input, dim):
    return nx.softmax(nx.work(input), axis=dim)


def log_softmax(nx, input, dim):
    return nx.log_softmax(nx.work(input), axis=dim)


def mse_loss(nx, input, target, reduction="mean"):
    _check_reduction(reduction)
    X, Y = nx.work(input), nx.work(target)
    big = not nx.naive and reduction != "none" and np.nanmax(np.abs(np.where(np.isinf(X - Y), 0, X - Y)),
                                                             initial=0.0) > 2.0**500
    k = 520 if big else 0
    if k == 0:
        return _reduce_elementwise(nx, nx.squared_difference(X, Y), reduction)
    # squares beyond float64's range can still have a finite mean: square 2^-k-scaled inputs
    per = nx.squared_difference(np.ldexp(X, -k), np.ldexp(Y, -k))
    return nx.unscale(_reduce_elementwise(nx, per, reduction), 2 * k)


FUNCTIONS = {f.__name__: f for f in (cross_entropy, nll_loss, binary_cross_entropy,
                                     binary_cross_entropy_with_logits, softmax, log_softmax, mse_loss)}
