"""cross_entropy's LLM-training extensions, Liger-Kernel's semantics: soft-capping and z-loss.

- ``softcap=c``: the logits enter the softmax as z = c tanh(x / c) (Gemma-2's final-logit
  soft-capping); d z / d x = 1 - tanh^2(x / c) = sech^2(x / c).
- ``z_loss=s``: every kept (non-ignored) position adds s lse^2, lse the log-sum-exp of its (capped)
  logits (Liger-Kernel's ``lse_square_scale``, PaLM's z-loss), unweighted; ``mean`` divides it by
  the number of kept positions N, while the cross-entropy part keeps torch's D = sum of w[t].

Here: the options' validators, the pieces the kernel (reference/losses/cross_entropy.py,
``LlmClassKernel``) writes against a numeric namespace ``ns`` (reference/numerics.py), their
float64/input-dtype twins for the NumPy backend, and the extensions' case families.  sech^2 is
formed as 4 e / (1 + e)^2 with e = exp(-2|x/c|), never as 1 - tanh^2: the latter cancels where
tanh rounds to +-1 (|x| >~ 19 c in float64), the former keeps full relative precision there.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from ..lossdef import Call, fail
from ..sampling import cast, class_targets, finfo
from ._families import reduction

OPTIONS = ("softcap", "z_loss")


def softcap_option(v) -> float | None:
    """None, or the cap as a positive finite float (the error names the argument)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)) or float(v) <= 0:
        fail("softcap", f"must be None or a positive finite number, got {v!r}")
    return float(v)


def z_loss_option(v) -> float:
    """The z-loss scale as a finite float >= 0 (the error names the argument)."""
    if v is None or isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)) or float(v) < 0:
        fail("z_loss", f"must be a finite number >= 0, got {v!r}")
    return float(v)


def llm_options(kwargs, prob: bool) -> dict:
    """The validated extension options of a cross_entropy call ({} when both are at their defaults:
    such a call is exactly torch's).  Liger-Kernel's cross-entropy takes class indices only, so
    neither option combines with probability targets."""
    cap = softcap_option(kwargs.get("softcap"))
    zl = z_loss_option(kwargs.get("z_loss", 0.0))
    out = {}
    if cap is not None:
        out["softcap"] = cap
    if zl != 0:
        out["z_loss"] = zl
    if prob and out:
        name = min(out)
        fail(name, "is not supported with probability targets (Liger-Kernel's soft-capped / z-loss "
                   "cross-entropy takes class indices only)")
    return out


def capped(ns, x, c: float):
    """z = c tanh(x / c): three roundings of relative size (the division, tanh, the product), so z
    errs by a few units of u relative to |z| <= c; +-inf caps to +-c, NaN stays NaN."""
    cc = ns.const(c)
    return cc * ns.tanh(x / cc)


def sech2(ns, x, c: float):
    """d z / d x = sech^2(x / c) = 4 e / (1 + e)^2, e = exp(-2 |x / c|): relative error a few u
    plus 2 |x / c| u from rounding x / c (which is that function's own conditioning); 0 at +-inf."""
    cc = ns.const(c)
    e = ns.exp(ns.const(-2) * np.abs(x / cc))
    one = ns.const(1)
    return ns.const(4) * e / ((one + e) * (one + e))


# ------------------------------------------------------------------------------ NumPy twins

def np_capped(x: np.ndarray, c: float) -> np.ndarray:
    """c tanh(x / c) in x's own dtype (a Python float scalar does not promote it)."""
    return np.tanh(x / c) * c


def np_sech2(x: np.ndarray, c: float) -> np.ndarray:
    """sech^2(x / c) in x's dtype, without 1 - tanh^2's cancellation."""
    e = np.exp(-2 * np.abs(x / c))
    return 4 * e / ((1 + e) * (1 + e))


# ------------------------------------------------------------------------------ case families
# registered on cross_entropy by reference/losses/cross_entropy.py (after its own families)

#: dyadic z-loss scales (2^-13 ~ PaLM's 1e-4): every format holds them exactly, so a backend that
#: converts the option to its compute dtype commits no representation error
Z_LOSSES = (2.0 ** -13, 2.0 ** -7, 1.0)


def _cap_values(size) -> tuple[float, ...]:
    """Gemma-2's final-logit cap 30 and a tight 1 (gate); also 5 and attention's 50 (full)."""
    return (1.0, 5.0, 30.0, 50.0) if size.name == "full" else (1.0, 30.0)


def _limit(dtype: str) -> float:
    """The largest logit magnitude drawn: 1e4, or an eighth of the dtype's max."""
    return min(1e4, float(finfo(dtype).max) / 8)


def _pos_weights(rng, C: int, dtype: str) -> np.ndarray:
    return cast(rng.uniform(0.25, 4.0, size=C), dtype)


def _call(x, t, kw, note: str, **meta) -> Call:
    return Call((x, t), kw, meta={"note": note, **meta})


def softcap_saturation(rng, dtype, size):
    """softcap: logits far beyond the cap (tanh saturated), near it (|x|/c in 1..12), capped values that tie, +-inf logits."""
    out, i = [], 0
    B, C = size.batch, 8
    lim = _limit(dtype)
    for c in _cap_values(size):
        # far beyond: half the row moderate, half at |x| / c in [2, 1e3] (capped to ~ +-c)
        x = rng.normal(0, c / 2, (B, C))
        far = rng.random((B, C)) < 0.5
        mag = c * np.exp(rng.uniform(np.log(2.0), np.log(max(2.0, min(1e3, lim / c))), (B, C)))
        x = np.where(far, mag * rng.choice([-1.0, 1.0], (B, C)), x)
        out.append(_call(cast(x, dtype), class_targets(rng, (B,), C), {"softcap": c, "reduction": reduction(i)},
                         f"cap {c:g}: half the logits at |x| in [2c, 1e3c]"))
        i += 1
        # near the cap: tanh in [0.76, 1 - 8e-11], with label smoothing (every class present);
        # the largest cap only, but in full
        if size.name == "full" or c == _cap_values(size)[-1]:
            x = c * rng.uniform(1.0, 12.0, (B, C)) * rng.choice([-1.0, 1.0], (B, C))
            out.append(_call(cast(x, dtype), class_targets(rng, (B,), C),
                             {"softcap": c, "label_smoothing": 0.1, "reduction": reduction(i)},
                             f"cap {c:g}: |x|/c in [1, 12] + label_smoothing"))
            i += 1
        # capped ties: several logits whose capped values agree to ~e^-16 .. e^-160 (equal in
        # float32 once tanh rounds to 1), the target among them on even rows, below them on odd
        base = c * np.array([8.0, 9.0, 10.0, 12.0, 20.0, 80.0, -3.0, 0.5])
        x = np.stack([rng.permutation(base) for _ in range(B)])
        x = np.minimum(x, lim)
        t = np.array([int(np.argmax(r)) if n % 2 == 0 else int(np.argmin(r)) for n, r in enumerate(x)], np.int64)
        out.append(_call(cast(x, dtype), t, {"softcap": c, "reduction": reduction(i)},
                         f"cap {c:g}: logits at 8c..80c tie once capped"))
        i += 1
    # +-inf logits cap to +-c (finite, no longer masked; gradient 0), with ignore_index padding
    c = _cap_values(size)[-1]
    x = rng.normal(0, 8, (max(B, 3), C))
    x[0, :2] = [np.inf, -np.inf]
    x[1, 3] = -np.inf
    x[2, :] = np.inf
    t = class_targets(rng, (x.shape[0],), C)
    t[0], t[-1] = 1, -100
    out.append(_call(cast(x, dtype), t, {"softcap": c, "reduction": reduction(i)},
                     f"cap {c:g}: +-inf logits and an all-+inf row, last row ignored"))
    return out


def z_loss_large_lse(rng, dtype, size):
    """z_loss with large lse: logits shifted by up to 1e4 (s lse^2 overflows float16 at s = 1), confident rows, lse < 0 where 1 + 2 s lse ~ 0, big vocabularies."""
    out, i = [], 0
    B, C = size.batch, 16
    lim = _limit(dtype)
    shifts = {"smoke": [30.0, 1e4], "gate": [30.0, -1e3, 1e4]}.get(size.name, [0.0, 30.0, -1e3, 1e4, -3e4])
    for off in shifts:
        off = float(np.clip(off, -lim, lim))
        s = Z_LOSSES[i % len(Z_LOSSES)]
        x = cast(off + rng.normal(0, 4, (B, C)), dtype)
        out.append(_call(x, class_targets(rng, (B,), C), {"z_loss": s, "reduction": reduction(i)},
                         f"logits ~ {off:g} + N(0, 16), s = {s:g}"))
        i += 1
    # confident rows: the target leads by 30 (the CE part ~ e^-30, s lse^2 dominates)
    x = rng.normal(0, 1, (B, C))
    t = class_targets(rng, (B,), C)
    x[np.arange(B), t] = x.max(axis=1) + 30
    out.append(_call(cast(x, dtype), t, {"z_loss": Z_LOSSES[0], "reduction": reduction(i)},
                     "confident rows (lead 30)"))
    i += 1
    # lse ~ -1 / (2 s) = -64: the z-loss gradient 2 s lse p_j cancels the CE part's A p_j
    s = 2.0 ** -7
    x = cast(-64.0 - np.log(C) + rng.normal(0, 0.5, (B, C)), dtype)
    out.append(_call(x, class_targets(rng, (B,), C), {"z_loss": s, "reduction": reduction(i)},
                     "lse ~ -64 with s = 2^-7: 1 + 2 s lse ~ 0 (gradient cancellation)"))
    i += 1
    # big vocabularies: one 4096-class row in gate (its element budget), and in full rows of 8192
    # to 65536 classes next to a padding row
    vocab = [(C, 2) for C in size.large[:3]] if size.name == "full" else ([(4096, 1)] if size.large else [])
    for C, rows in vocab:
        x = cast(20.0 + rng.normal(0, 4, (rows, C)), dtype)
        t = np.array([int(rng.integers(0, C)), -100][:rows], np.int64)
        out.append(_call(x, t, {"z_loss": Z_LOSSES[0], "softcap": 30.0, "reduction": reduction(i)},
                         f"C={C}: logits ~ 20 + N(0, 16), cap 30" + (", one padding row" if rows > 1 else ""),
                         drive={"name": "classes", "value": float(C)}))
        i += 1
    return out


def llm_padding(rng, dtype, size):
    """softcap and z_loss together with ignore_index padding (-100 and custom), class weights, label smoothing, spatial and unbatched inputs."""
    out, i = [], 0
    B, C = (4 if size.name == "smoke" else max(size.batch, 6)), 12
    c, s = 30.0, Z_LOSSES[0]
    variants = [("pad -100 + weight + label_smoothing", -100, True, 0.1),
                ("no padding", -100, False, 0.0),
                ("custom ignore_index 3 + label_smoothing", 3, False, 0.2),
                ("pad -100 + weight", -100, True, 0.0)]
    for note, ii, w, eps in variants[: 2 if size.name == "smoke" else None]:
        x = cast(rng.normal(0, 12, (B, C)), dtype)
        t = class_targets(rng, (B,), C)
        if note != "no padding":
            t[B // 2:] = ii  # right padding, as a packed LLM batch has
        kw = {"softcap": c, "z_loss": s, "ignore_index": ii, "reduction": reduction(i)}
        if w:
            kw["weight"] = _pos_weights(rng, C, dtype)
        if eps:
            kw["label_smoothing"] = eps
        out.append(_call(x, t, kw, f"cap {c:g}, s = 2^-13: {note}"))
        i += 1
    if size.name != "smoke":
        x = cast(rng.normal(0, 12, (2, C, 3)), dtype)
        t = class_targets(rng, (2, 3), C)
        t[1, 2] = -100
        out.append(_call(x, t, {"softcap": c, "z_loss": s, "label_smoothing": 0.1, "reduction": reduction(i)},
                         "spatial (2, C, 3), one position ignored"))
        i += 1
        x = cast(rng.normal(0, 12, (C,)), dtype)
        out.append(_call(x, np.asarray(int(rng.integers(0, C)), np.int64),
                         {"softcap": c, "z_loss": s, "weight": _pos_weights(rng, C, dtype), "reduction": reduction(i)},
                         "unbatched (C,) + weight"))
    return out


def llm_edges(rng, dtype, size):
    """Edges: every position ignored (mean 0/0), present targets of weight 0 (CE over D = 0, z-loss over N), C = 1, -inf masked logits with z_loss, a NaN row ignored, tiny and huge caps."""
    out = []
    B, C = max(size.batch, 3), 6
    s = Z_LOSSES[1]
    both = {"softcap": 5.0, "z_loss": s}
    x = cast(rng.normal(0, 4, (B, C)), dtype)
    out.append(_call(x, np.full(B, -100, np.int64), {**both, "reduction": "mean"},
                     "every position ignored: mean is NaN, gradient 0"))
    t = class_targets(rng, (B,), C)
    w = _pos_weights(rng, C, dtype).astype(np.float64)
    w[np.unique(t)] = 0.0
    for r in ("mean", "sum"):
        out.append(_call(cast(rng.normal(0, 4, (B, C)), dtype), t,
                         {**both, "weight": cast(w, dtype), "reduction": r},
                         "every present target has weight 0: D = 0 while N > 0"))
    for r in ("none", "mean"):
        out.append(_call(cast(rng.normal(0, 8, (B, 1)), dtype), np.zeros(B, np.int64), {**both, "reduction": r},
                         "C = 1: the CE part is 0, s lse^2 = s z^2"))
    x = rng.normal(0, 4, (B, C))
    t = class_targets(rng, (B,), C)
    for n in range(B):
        x[n, (t[n] + 1) % C] = -np.inf
    out.append(_call(cast(x, dtype), t, {"z_loss": s, "reduction": "sum"}, "-inf non-target logits, no cap"))
    if size.name != "smoke":
        x = rng.normal(0, 4, (B, C))
        x[1] = np.nan
        t = class_targets(rng, (B,), C)
        t[1] = -100
        out.append(_call(cast(x, dtype), t, {**both, "reduction": "none"}, "a NaN row, ignored: 0 and gradient 0"))
        for c, sigma in ((0.0625, 1.0), (1e4, 4.0)):
            out.append(_call(cast(rng.normal(0, sigma, (B, C)), dtype), class_targets(rng, (B,), C),
                             {"softcap": c, "z_loss": s, "reduction": "sum"},
                             f"cap {c:g} on N(0, {sigma:g}^2) logits"))
    return out


FAMILIES = (("ce.softcap_saturation", softcap_saturation), ("ce.z_loss_large_lse", z_loss_large_lse),
            ("ce.llm_padding", llm_padding), ("ce.llm_edges", llm_edges))
