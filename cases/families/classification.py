"""Families for cross_entropy and nll_loss (class dim 1, or 0 for unbatched (C,) inputs)."""
from __future__ import annotations

import math

import numpy as np

from ..model import make_case
from ..sampling import (
    cast,
    class_targets,
    exp_edge,
    finfo,
    log_uniform,
    normal,
    ordinal_uniform,
    precision,
    probabilities,
    sample,
)
from . import family
from ._util import absorption_rows, fits, lead, reduction

CE, NLL = "cross_entropy", "nll_loss"


def _weights(rng, C: int, dtype: str, kind: str, targets=None) -> np.ndarray:
    w = rng.uniform(0.25, 4.0, size=C)
    if kind == "zero":
        w[rng.permutation(C)[: max(1, C // 3)]] = 0.0
    elif kind == "present_zero":      # every class that occurs as a target has weight 0
        w[np.unique(targets[targets >= 0])] = 0.0
    elif kind == "mixed_sign":
        w *= rng.choice([-1.0, 1.0], size=C)
        w[0] = -abs(w[0])
    return cast(w, dtype)


def _confident_rows(rng, dtype: str, B: int, C: int, offset: float, spread: float, delta: float):
    """B rows sharing one set of logit values (rolled, so the target moves) whose target logit
    leads the runner-up by ~delta.  Returns (x, t, actual lead from the stored bits)."""
    others = cast(offset + spread * rng.standard_normal(C - 1), dtype)
    top = cast(float(others.astype(np.float64).max()) + delta, dtype)
    row = np.concatenate([top.reshape(1), others])
    shifts = rng.permutation(C)[:B] if B <= C else rng.integers(0, C, size=B)
    x = np.stack([np.roll(row, s) for s in shifts])
    t = np.asarray(shifts % C, dtype=np.int64)
    return x, t, lead(row, 0)


# ---------------------------------------------------------------- shared by CE and nll_loss

def _ignore_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    B, C = max(size.batch, 4), 5
    t = class_targets(rng, (B,), C)
    variants = [
        ("default -100, some ignored", -100, np.where(np.arange(B) % 3 == 0, -100, t)),
        ("custom in-range ignore_index", 1, np.where(np.arange(B) % 2 == 0, 1, t)),
        ("ignore_index >= C", C + 2, np.where(np.arange(B) % 3 == 1, C + 2, t)),
        ("all targets ignored", -100, np.full(B, -100)),
        ("custom ignore_index not present", 3, np.where(t == 3, 0, t)),
    ]
    i = 0
    for note, ii, tt in variants:
        for with_weight in (False, True):
            kw = {"ignore_index": ii, "reduction": reduction(i)}
            if with_weight:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(make_case(loss, (x_of(rng, (B, C)), tt.astype(np.int64)), kw, family=fam,
                                 meta={"note": note + (" + weight" if with_weight else "")}))
            i += 1
    return out


def _weight_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    B, C = max(size.batch, 4), 6
    for i, kind in enumerate(("positive", "zero", "present_zero", "mixed_sign")):
        for r in range(3):
            t = class_targets(rng, (B,), C)
            kw = {"weight": _weights(rng, C, dtype, kind, t), "reduction": reduction(i + r)}
            out.append(make_case(loss, (x_of(rng, (B, C)), t), kw, family=fam, meta={"note": f"{kind} weights"}))
    return out


def _spatial_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    C = 4
    for k, shape in enumerate([(2, C, 5), (2, C, 3, 2), (1, C, 2, 2, 2)]):
        for r in range(3):
            t = class_targets(rng, shape[:1] + shape[2:], C)
            kw = {"reduction": reduction(k + r)}
            if r == 1:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            if r == 2:
                t.reshape(-1)[0] = -100
            if loss == CE and r == 2:
                kw["label_smoothing"] = 0.1
            out.append(make_case(loss, (x_of(rng, shape), t), kw, family=fam,
                                 meta={"note": f"{len(shape) - 2} spatial dim(s)"}))
    return out


def _unbatched_cases(loss, fam, rng, dtype, size, x_of):
    out = []
    for i, C in enumerate((1, 5, 40)):
        for r in range(3):
            t = np.asarray(rng.integers(0, C), dtype=np.int64)
            kw = {"reduction": reduction(i + r)}
            note = "plain"
            if r == 1:
                kw["weight"], note = _weights(rng, C, dtype, "positive"), "weight"
                if loss == CE:
                    kw["label_smoothing"], note = 0.2, "weight + label_smoothing"
            if r == 2 and C > 1:
                t, note = np.asarray(-100, dtype=np.int64), "target ignored"
            out.append(make_case(loss, (x_of(rng, (C,)), t), kw, family=fam,
                                 meta={"note": f"unbatched (C,)={C}: {note}"}))
    return out


def _logits(sigma=4.0):
    return lambda rng, shape, dtype: normal(rng, sigma, shape, dtype)


def _bind(dtype, gen):
    return lambda rng, shape: gen(rng, shape, dtype)


# ---------------------------------------------------------------- cross_entropy

@family("ce.random", CE)
def ce_random(rng, dtype, size):
    """Moderate N(0, sigma^2) logits, sigma in {1, 4, 16}, plus ordinal and log-uniform styles."""
    out, i = [], 0
    for sigma in (1.0, 4.0, 16.0):
        for C in size.classes:
            for _ in range(size.repeats):
                x = normal(rng, sigma, (size.batch, C), dtype)
                out.append(make_case(CE, (x, class_targets(rng, (size.batch,), C)), {"reduction": reduction(i)},
                                     family="ce.random", meta={"note": f"N(0, {sigma:g}^2) logits, C={C}"}))
                i += 1
    for style, params in (("ordinal", {"lo": -30.0, "hi": 30.0}), ("log", {"lo": 1e-3, "hi": 50.0})):
        C = size.classes[-1]
        x = sample(style, rng, (size.batch, C), dtype, **params)
        out.append(make_case(CE, (x, class_targets(rng, (size.batch,), C)), {"reduction": reduction(i)},
                             family="ce.random", meta={"note": f"{style}-sampled logits {params}"}))
        i += 1
    return out


@family("ce.ties", CE)
def ce_ties(rng, dtype, size):
    """Tied logits: whole rows equal (incl. [-60000]*3), target tied with the max, tied runners-up."""
    out = []
    for i, C in enumerate((2, 3, 7)):
        v = float(rng.normal(0, 8))
        equal = np.full((size.batch, C), v)
        tied_max = normal(rng, 2.0, (size.batch, C), dtype).astype(np.float64)
        t = class_targets(rng, (size.batch,), C)
        for n in range(size.batch):
            tied_max[n, t[n]] = tied_max[n].max()
            tied_max[n, (t[n] + 1) % C] = tied_max[n].max()
        for j, (x, note) in enumerate(((equal, f"all logits equal {v:.3g}"), (tied_max, "target tied with max"))):
            out.append(make_case(CE, (cast(x, dtype), t), {"reduction": reduction(i + j)}, family="ce.ties",
                                 meta={"note": note}))
    big = cast(np.full((1, 3), -60000.0), dtype)
    for r in range(3):
        out.append(make_case(CE, (big, np.zeros(1, np.int64)), {"reduction": reduction(r)}, family="ce.ties",
                             meta={"note": "equal large logits [-60000]*3: exact loss is log 3"}))
    return out


@family("ce.tiny_classes", CE)
def ce_tiny(rng, dtype, size):
    """C = 1 (loss identically 0) and C = 2."""
    out = []
    for C in (1, 2):
        for r in range(3):
            x = normal(rng, 4.0, (size.batch, C), dtype)
            kw = {"reduction": reduction(r)}
            if r == 1:
                kw["label_smoothing"] = 0.1
            out.append(make_case(CE, (x, class_targets(rng, (size.batch,), C)), kw, family="ce.tiny_classes",
                                 meta={"note": f"C={C}", "drive": {"name": "classes", "value": float(C)}}))
    return out


@family("ce.class_sweep", CE)
def ce_class_sweep(rng, dtype, size):
    """Class-count sweep C in size.sweep (2 rows) and large C (>= 8192, 1-2 rows)."""
    out = []
    for i, C in enumerate(size.sweep + size.large):
        rows = 2 if C <= 4096 else 1 + (i % 2 if size.name == "full" else 0)
        x = normal(rng, 4.0, (rows, C), dtype)
        out.append(make_case(CE, (x, class_targets(rng, (rows,), C)), {"reduction": reduction(i)},
                             family="ce.class_sweep",
                             meta={"note": f"C={C}", "drive": {"name": "classes", "value": float(C)}}))
    return out


@family("ce.absorption", CE)
def ce_absorption(rng, dtype, size):
    """Long rows with one dominant logit and n-1 terms just below half an ulp of 1 (absorption)."""
    n = size.large[0] // 4 if size.large else 512  # 2048 in gate: long enough to absorb hundreds of terms
    x = absorption_rows(rng, dtype, n)
    dom = int(np.argmax(x[1].astype(np.float64)))
    t = np.array([0, (dom + 1) % n])  # the dominant class, and a small one
    return [make_case(CE, (x, t), {"reduction": "none"}, family="ce.absorption",
                      meta={"note": f"C={n}, one logit 0, the rest at e^-d ~ 0.7u",
                            "drive": {"name": "classes", "value": float(n)}})]


def _offsets(dtype):
    edge = exp_edge(dtype)
    offs = [("exp-overflow edge +", edge, 1.0), ("exp-overflow edge -", -edge, 1.0),
            ("+-1e4 logits", 0.0, 1e4)]
    for s in (1e4, 1e6, 1e8):
        if fits(s, dtype):
            offs.append((f"common shift +{s:g}", s, 1.0))
    if fits(1e6, dtype):
        offs.append(("common shift -1e6", -1e6, 1.0))
    else:
        offs.append(("common shift -3e4", -3e4, 1.0))
        offs.append(("common shift +3e4", 3e4, 1.0))
    return offs


@family("ce.extreme", CE)
def ce_extreme(rng, dtype, size):
    """Extreme logits: +-1e4, each dtype's exp-overflow edge, large common shifts, near-max values."""
    out, i = [], 0
    leads = (-20.0, 0.0, 2.0, 30.0)[: max(2, min(4, size.points))]
    for note, off, spread in _offsets(dtype):
        for d in leads:
            x, t, actual = _confident_rows(rng, dtype, min(size.batch, 3), 8, off, spread, d)
            out.append(make_case(CE, (x, t), {"reduction": reduction(i)}, family="ce.extreme",
                                 meta={"note": f"{note}, lead ~{d:g}", "drive": {"name": "lead", "value": actual}}))
            i += 1
    h = float(finfo(dtype).max) / 2
    row = cast([h, -h, h / 4, -h / 4, 0.0, h], dtype)
    for r, tgt in enumerate((0, 1, 4)):
        x = np.stack([row, np.roll(row, 1)])
        t = np.array([tgt, (tgt + 1) % 6], np.int64)
        out.append(make_case(CE, (x, t), {"reduction": reduction(r)}, family="ce.extreme",
                             meta={"note": "logits at half the dtype's max (x - max overflows naively)",
                                   "drive": {"name": "lead", "value": lead(row, tgt)}}))
    return out


@family("ce.confident_cliff", CE)
def ce_cliff(rng, dtype, size):
    """Target ahead by lead near ln(1/u) + ln(C-1) and past it, where the true loss is tiny but > 0."""
    out, i = [], 0
    p = precision(dtype)
    under = -math.log(float(finfo(dtype).smallest_subnormal))
    for C in size.cliff_classes:
        star = p * math.log(2) + math.log(C - 1)
        dense = np.linspace(star - 4, star + 4, max(3, size.points - 3))
        past = np.linspace(star + 6, under + math.log(C - 1) + 4, 3)
        for d in np.concatenate([dense, past]):
            x, t, actual = _confident_rows(rng, dtype, 2, C, 0.0, 1.0, float(d))
            out.append(make_case(CE, (x, t), {"reduction": reduction(i)}, family="ce.confident_cliff",
                                 meta={"note": f"C={C}, cliff at lead {star:.2f}",
                                       "drive": {"name": "lead", "value": actual}}))
            i += 1
    return out


@family("ce.masked", CE)
def ce_masked(rng, dtype, size):
    """-inf logits: in non-target classes, in the target class, and a whole row of -inf."""
    out, i = [], 0
    B, C = 3, 5
    for kind in ("non-target", "target", "row"):
        for extra in ({}, {"label_smoothing": 0.1}, {"weight": True}):
            x = normal(rng, 3.0, (B, C), dtype)
            t = class_targets(rng, (B,), C)
            if kind == "non-target":
                for n in range(B):
                    x[n, [(t[n] + 1) % C, (t[n] + 3) % C]] = -np.inf
            elif kind == "target":
                x[1, t[1]] = -np.inf
            else:
                x[2, :] = -np.inf
            kw = {"reduction": reduction(i), **extra}
            if "weight" in kw:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(make_case(CE, (x, t), kw, family="ce.masked",
                                 meta={"note": f"-inf in {kind}" + (f" with {min(extra)}" if extra else "")}))
            i += 1
    return out


@family("ce.ignore_index", CE)
def ce_ignore(rng, dtype, size):
    """ignore_index: default -100, custom in-range, >= C, some and all targets ignored (+ weight)."""
    return _ignore_cases(CE, "ce.ignore_index", rng, dtype, size, _bind(dtype, _logits()))


@family("ce.weight", CE)
def ce_weight(rng, dtype, size):
    """Class weights: random positive, some zero, all present targets zero (mean = 0/0), mixed sign."""
    return _weight_cases(CE, "ce.weight", rng, dtype, size, _bind(dtype, _logits()))


@family("ce.label_smoothing", CE)
def ce_smoothing(rng, dtype, size):
    """label_smoothing in {0, 0.1, 0.2, 1.0}: alone, with weight, with ignored targets, with both."""
    out, i = [], 0
    B, C = max(size.batch, 4), 6
    for eps in (0.0, 0.1, 0.2, 1.0):
        for w, ign in ((False, False), (True, False), (False, True), (True, True)):
            t = class_targets(rng, (B,), C)
            if ign:
                t[::2] = -100
            kw = {"label_smoothing": eps, "reduction": reduction(i)}
            if w:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(make_case(CE, (normal(rng, 4.0, (B, C), dtype), t), kw, family="ce.label_smoothing",
                                 meta={"note": f"eps={eps}" + (" + weight" if w else "") + (" + ignored" if ign else "")}))
            i += 1
    return out


@family("ce.probability_target", CE)
def ce_prob(rng, dtype, size):
    """Probability targets: soft, one-hot, with smoothing, with weight; also spatial and unbatched."""
    out, i = [], 0
    B, C = max(size.batch, 3), 5
    for kind in ("soft", "one_hot"):
        for eps, w in ((0.0, False), (0.1, False), (0.0, True), (0.2, True)):
            if kind == "soft":
                y = probabilities(rng, (B, C), dtype)
            else:
                y = cast(np.eye(C)[class_targets(rng, (B,), C)], dtype)
            kw = {"reduction": reduction(i)}
            if eps:
                kw["label_smoothing"] = eps
            if w:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(make_case(CE, (normal(rng, 4.0, (B, C), dtype), y), kw, family="ce.probability_target",
                                 meta={"note": f"{kind} targets, eps={eps}" + (" + weight" if w else "")}))
            i += 1
    for shape, axis in (((2, C, 3), 1), ((C,), 0)):
        for r in range(3):
            kw = {"reduction": reduction(r)}
            if r == 1:
                kw["label_smoothing"] = 0.1
            if r == 2:
                kw["weight"] = _weights(rng, C, dtype, "positive")
            out.append(make_case(CE, (normal(rng, 4.0, shape, dtype), probabilities(rng, shape, dtype, axis)), kw,
                                 family="ce.probability_target", meta={"note": f"soft targets, shape {shape}"}))
    return out


@family("ce.spatial", CE)
def ce_spatial(rng, dtype, size):
    """Spatial inputs (N, C, d1..dk), k = 1..3, plain, weighted and with ignored targets."""
    return _spatial_cases(CE, "ce.spatial", rng, dtype, size, _bind(dtype, _logits()))


@family("ce.unbatched", CE)
def ce_unbatched(rng, dtype, size):
    """Unbatched (C,) input with a 0-d int64 target."""
    return _unbatched_cases(CE, "ce.unbatched", rng, dtype, size, _bind(dtype, _logits()))


# ---------------------------------------------------------------- nll_loss

def _reals(rng, shape, dtype):
    """Arbitrary real inputs: signed log-uniform magnitudes, not only log-probabilities."""
    top = min(1e4, float(finfo(dtype).max) / 8)
    return log_uniform(rng, 1e-3, top, shape, dtype, signed=True)


@family("nll.random", NLL)
def nll_random(rng, dtype, size):
    """Arbitrary real inputs: N(0, 16), signed log-uniform, ordinal-uniform, log-probability-like <= 0."""
    out, i = [], 0
    gens = [("N(0, 4^2)", lambda s: normal(rng, 4.0, s, dtype)),
            ("signed log-uniform", lambda s: _reals(rng, s, dtype)),
            ("ordinal-uniform in [-1e3, 1e3]", lambda s: ordinal_uniform(rng, -1e3, 1e3, s, dtype)),
            ("log-probability-like (<= 0)", lambda s: -log_uniform(rng, 1e-4, 30.0, s, dtype))]
    for note, g in gens:
        for C in size.classes:
            out.append(make_case(NLL, (g((size.batch, C)), class_targets(rng, (size.batch,), C)),
                                 {"reduction": reduction(i)}, family="nll.random", meta={"note": f"{note}, C={C}"}))
            i += 1
    for j, C in enumerate(size.large if size.name == "full" else ()):
        out.append(make_case(NLL, (normal(rng, 4.0, (1, C), dtype), class_targets(rng, (1,), C)),
                             {"reduction": reduction(j)}, family="nll.random",
                             meta={"note": f"C={C}", "drive": {"name": "classes", "value": float(C)}}))
    return out


@family("nll.extreme", NLL)
def nll_extreme(rng, dtype, size):
    """Inputs at +-inf and subnormal (sums that overflow are nll.sum_overflow)."""
    return _nll_specials(rng, dtype, "nll.extreme", [
        ("inf at target and non-target", np.inf), ("-inf at target", -np.inf),
        ("subnormal", float(finfo(dtype).smallest_subnormal) * 3)])


@family("nll.sum_overflow", NLL)
def nll_sum_overflow(rng, dtype, size):
    """Target inputs at 0.75 * max: each term is finite, the sum overflows, the mean need not.

    Its own family because it tells implementations apart by how they accumulate (a running sum in
    the storage format overflows where the exact mean is finite)."""
    return _nll_specials(rng, dtype, "nll.sum_overflow", [("near max: sum overflows", float(finfo(dtype).max) * 0.75)])


def _nll_specials(rng, dtype, fam, specials):
    out = []
    B, C = 4, 3
    for i, (note, v) in enumerate(specials):
        for r in range(3):
            x = normal(rng, 2.0, (B, C), dtype).astype(np.float64)
            t = class_targets(rng, (B,), C)
            if "non-target" in note:
                x[0, (t[0] + 1) % C] = v
                x[1, t[1]] = v
            elif "-inf" in note:
                x[1, t[1]] = v
            else:
                x[np.arange(B), t] = v * rng.choice([1.0, -1.0], size=B) if "subnormal" in note else v
            out.append(make_case(NLL, (cast(x, dtype), t), {"reduction": reduction(i + r)}, family=fam,
                                 meta={"note": note}))
    return out


@family("nll.ignore_index", NLL)
def nll_ignore(rng, dtype, size):
    """ignore_index: default -100, custom in-range, >= C, some and all targets ignored (+ weight)."""
    return _ignore_cases(NLL, "nll.ignore_index", rng, dtype, size, lambda r, s: _reals(r, s, dtype))


@family("nll.weight", NLL)
def nll_weight(rng, dtype, size):
    """Class weights: random positive, some zero, all present targets zero (mean = 0/0), mixed sign."""
    return _weight_cases(NLL, "nll.weight", rng, dtype, size, lambda r, s: _reals(r, s, dtype))


@family("nll.spatial", NLL)
def nll_spatial(rng, dtype, size):
    """Spatial inputs (N, C, d1..dk), k = 1..3."""
    return _spatial_cases(NLL, "nll.spatial", rng, dtype, size, lambda r, s: _reals(r, s, dtype))


@family("nll.unbatched", NLL)
def nll_unbatched(rng, dtype, size):
    """Unbatched (C,) input with a 0-d int64 target."""
    return _unbatched_cases(NLL, "nll.unbatched", rng, dtype, size, lambda r, s: _reals(r, s, dtype))
