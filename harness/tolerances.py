"""Per-dtype tolerances of the verdict ladder: the ONE place they live.

Why one place: the gate's meaning is these numbers.  Config files and flags may override them
(``Tolerances.with_overrides``), but nothing else in the code base hard-codes a tolerance.  The
defaults are calibrated against torch.nn.functional on the gate suite and against the planted
defects in tests/planted/; the evidence for each number is in docs/calibration.md.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace

from reference.registry import DTYPES

__all__ = ["ACCUMULATION", "DEFAULTS", "SUMMATIONS", "TOLERANCE_KEYS", "DtypeTolerance", "Tolerances"]

#: the summation orders a run may declare (``--summation``, ``[tool.losscheck] summation``):
#: ``pairwise`` (default) judges sums by the pairwise bound, ``recursive`` by the one-after-another
#: bound (docs/verdicts.md, "stable" and "recursive")
SUMMATIONS = ("pairwise", "recursive")

#: the format a backend is expected to accumulate in, per output format: the magnitude rung's unit
#: roundoff is this format's.  Half-precision results are accumulated in float32 by every mainstream
#: kernel (torch, cuDNN, XLA's reductions); a library that accumulates in the storage format (the
#: issue-11 MLX softmax, optax's log 3 -> 0 in bfloat16) is not "magnitude-dependent", it is wrong.
ACCUMULATION = {"float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float64"}


@dataclass(frozen=True)
class DtypeTolerance:
    """Thresholds of the ladder for one output dtype (docs/design.md, "the verdict ladder").

    ``ulp``: accurate when the ulp error is at most this.
    ``c0``, ``c1``: stable when ``|err| <= (c0 + c1*log2(max(nterms, 1))) * u * cond``.
    ``c_abs``: absolute-only (warn) when ``|err| <= c_abs * u * scale``.
    ``c_mag``: magnitude-dependent (warn) when ``|err| <= c_mag * u_acc * scale * (1 + max|x|)``
    (u_acc: the unit roundoff of :data:`ACCUMULATION`'s format; max|x| the largest input magnitude
    the element depends on, for losses that declare one).
    ``summation``: not a number but the run's declared summation order (:data:`SUMMATIONS`); it is
    the same in every dtype, set through :meth:`Tolerances.with_summation`.
    """

    ulp: float
    c0: float
    c1: float
    c_abs: float
    c_mag: float = 8.0
    summation: str = "pairwise"

    def __post_init__(self) -> None:
        if self.summation not in SUMMATIONS:
            raise ValueError(f"summation must be one of {', '.join(SUMMATIONS)}, got {self.summation!r}")
        for f in fields(self):
            if f.name == "summation":
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"tolerance {f.name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, f.name, float(v))


TOLERANCE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(DtypeTolerance) if f.name != "summation")


class Tolerances(Mapping[str, DtypeTolerance]):
    """Immutable mapping dtype name -> DtypeTolerance, covering every dtype of the registry."""

    def __init__(self, table: Mapping[str, DtypeTolerance]):
        missing = [d for d in DTYPES if d not in table]
        unknown = [d for d in table if d not in DTYPES]
        if missing or unknown:
            raise ValueError(f"tolerances must cover exactly {', '.join(DTYPES)}; "
                             f"missing {missing}, unknown {unknown}")
        self._table = {d: table[d] for d in DTYPES}

    def __getitem__(self, dtype: str) -> DtypeTolerance:
        return self._table[dtype]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tolerances) and self._table == other._table

    def __hash__(self) -> int:
        return hash(tuple(self._table.items()))

    def __repr__(self) -> str:
        return f"Tolerances({self._table!r})"

    def for_dtype(self, dtype: str) -> DtypeTolerance:
        try:
            return self._table[str(dtype)]
        except KeyError:
            raise ValueError(f"no tolerance for dtype {dtype!r}; known: {', '.join(DTYPES)}") from None

    def with_overrides(self, overrides: Mapping[str, float]) -> Tolerances:
        """A copy with ``{"<dtype>.<key>": value}`` entries replaced (flags and config use this)."""
        table = dict(self._table)
        for name, value in overrides.items():
            dtype, _, key = str(name).partition(".")
            if dtype not in table or key not in TOLERANCE_KEYS:
                raise ValueError(f"unknown tolerance {name!r}; expected <dtype>.<key> with dtype in "
                                 f"{', '.join(DTYPES)} and key in {', '.join(TOLERANCE_KEYS)}")
            try:
                table[dtype] = replace(table[dtype], **{key: value})
            except ValueError as exc:
                raise ValueError(f"tolerance {name}: {exc}") from None
        return Tolerances(table)

    @property
    def summation(self) -> str:
        """The run's declared summation order (the same in every dtype)."""
        return next(iter(self._table.values())).summation

    def with_summation(self, summation: str) -> Tolerances:
        """A copy judging sums by ``summation``'s bound (:data:`SUMMATIONS`)."""
        if summation not in SUMMATIONS:
            raise ValueError(f"unknown summation {summation!r}; expected one of {', '.join(SUMMATIONS)}")
        return Tolerances({d: replace(t, summation=summation) for d, t in self._table.items()})

    def to_dict(self) -> dict[str, dict[str, float | str]]:
        """JSON-able form (written into the results' run header); ``summation`` is written into
        each dtype's table only when it is not the default, so pairwise headers read as before."""
        out: dict[str, dict[str, float | str]] = {}
        for d, t in self._table.items():
            row = asdict(t)
            if row["summation"] == "pairwise":
                del row["summation"]
            out[d] = row
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, float]]) -> Tolerances:
        """Inverse of to_dict; a header written before ``c_mag`` existed reads with its default."""
        return cls({k: DtypeTolerance(**v) for k, v in d.items()})


# Calibrated on the gate suite; see docs/calibration.md for torch's worst figures behind each value.
DEFAULTS = Tolerances({
    "float16": DtypeTolerance(ulp=1.0, c0=2.0, c1=1.0, c_abs=8.0, c_mag=8.0),
    "bfloat16": DtypeTolerance(ulp=1.0, c0=2.0, c1=1.0, c_abs=8.0, c_mag=8.0),
    "float32": DtypeTolerance(ulp=2.0, c0=2.0, c1=1.0, c_abs=8.0, c_mag=8.0),
    "float64": DtypeTolerance(ulp=2.0, c0=2.0, c1=1.0, c_abs=16.0, c_mag=8.0),
})
