"""Families for softmax and log_softmax (registered once per function)."""
from __future__ import annotations

import numpy as np

from ..model import make_case
from ..sampling import cast, exp_edge, finfo, normal
from . import family
from ._util import absorption_rows, fits


def _dims(loss, fam):
    def gen(rng, dtype, size):
        """Each dim of 1-D to 4-D inputs (and negative dims), N(0, 4^2)."""
        out = []
        for shape in ((7,), (3, 5), (2, 3, 4), (2, 3, 2, 3)):
            for dim in range(len(shape)):
                out.append(make_case(loss, (normal(rng, 4.0, shape, dtype),), {"dim": dim}, family=fam,
                                     meta={"note": f"shape {shape}, dim {dim}"}))
            out.append(make_case(loss, (normal(rng, 4.0, shape, dtype),), {"dim": -1}, family=fam,
                                 meta={"note": f"shape {shape}, dim -1"}))
        return out
    return gen


def _extreme(loss, fam):
    def gen(rng, dtype, size):
        """Large shifts, exp-overflow edges, +-1e4, near-max values, ties, -inf masks, NaN and +inf."""
        out = []
        edge, big = exp_edge(dtype), float(finfo(dtype).max) / 2
        rows = [("exp-overflow edge +", edge + rng.normal(0, 1, 6)), ("exp-overflow edge -", -edge + rng.normal(0, 1, 6)),
                ("+-1e4", 1e4 * rng.choice([-1.0, 1.0], 6) + rng.normal(0, 1, 6)),
                ("half max", np.array([big, -big, big / 4, 0.0, -big / 4, big])),
                ("ties", np.full(6, float(rng.normal(0, 8)))),
                ("-inf masked entries", np.where(np.arange(6) % 3 == 0, -np.inf, rng.normal(0, 3, 6))),
                ("row of -inf", np.full(6, -np.inf)),
                ("single -inf", np.array([-np.inf, 0.0, 1.0, 2.0, 3.0, 4.0])),
                ("NaN entry (row is NaN)", np.array([0.0, np.nan, 1.0, 2.0, 3.0, 4.0])),
                ("+inf entry", np.array([np.inf, 0.0, 1.0, 2.0, 3.0, 4.0]))]
        for s in (1e4, 1e6, 1e8):
            if fits(s, dtype):
                rows.append((f"common shift +{s:g}", s + rng.normal(0, 2, 6)))
        if not fits(1e6, dtype):
            rows.append(("common shift -3e4", -3e4 + rng.normal(0, 30, 6)))
        for i, (note, row) in enumerate(rows):
            x = cast(np.stack([row, np.roll(row, 2), rng.normal(0, 2, 6)]), dtype)
            dim = 1 if i % 3 else -1
            out.append(make_case(loss, (x,), {"dim": dim}, family=fam, meta={"note": note}))
            if i % 2 == 0:
                out.append(make_case(loss, (np.ascontiguousarray(x.T),), {"dim": 0}, family=fam,
                                     meta={"note": note + " (inner dim)"}))
        return out
    return gen


def _large(loss, fam):
    def gen(rng, dtype, size):
        """Long reduction dims: size.sweep and the large counts (1-2 rows each)."""
        out = []
        for i, n in enumerate(tuple(c for c in size.sweep if c >= 2) + size.large):
            rows = 2 if n <= 4096 else 1
            x = normal(rng, 4.0, (rows, n), dtype)
            if i % 2 and n <= 4096:
                out.append(make_case(loss, (np.ascontiguousarray(x.T),), {"dim": 0}, family=fam,
                                     meta={"note": f"length {n} along dim 0",
                                           "drive": {"name": "classes", "value": float(n)}}))
            else:
                out.append(make_case(loss, (x,), {"dim": 1}, family=fam,
                                     meta={"note": f"length {n}", "drive": {"name": "classes", "value": float(n)}}))
        return out
    return gen


def _absorption(loss, fam):
    def gen(rng, dtype, size):
        """Long rows with one dominant entry and n-1 terms just below half an ulp of 1."""
        n = size.large[0] // 4 if size.large else 512  # 2048 in gate: long enough to absorb hundreds of terms
        return [make_case(loss, (absorption_rows(rng, dtype, n),), {"dim": 1}, family=fam,
                          meta={"note": f"length {n}, one 0, the rest at e^-d ~ 0.7u",
                                "drive": {"name": "classes", "value": float(n)}})]
    return gen


for _loss, _prefix in (("softmax", "softmax"), ("log_softmax", "log_softmax")):
    for _suffix, _make in (("dims", _dims), ("extreme", _extreme), ("large", _large),
                           ("absorption", _absorption)):
        _fn = _make(_loss, f"{_prefix}.{_suffix}")
        family(f"{_prefix}.{_suffix}", _loss)(_fn)
