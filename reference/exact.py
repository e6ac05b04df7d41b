"""The oracle's answer for one call: settled values plus what the verdict ladder needs.

Serialises to JSON exactly (mpf as sign/mantissa/exponent) so the harness can cache it on disk
without pickle.
"""
from __future__ import annotations

import mpmath
import numpy as np
from mpmath import libmp

from .formats import get_format, round_mpf, to_dtype

_SPECIAL = {libmp.fnan: "nan", libmp.finf: "inf", libmp.fninf: "-inf", libmp.fzero: "0", libmp.fnzero: "-0"}
_FROM_SPECIAL = {v: k for k, v in _SPECIAL.items()}


def mpf_to_str(x) -> str:
    """Exact text form of an mpf: 'nan', 'inf', '-0', or '[-]<hex mantissa>p<exponent>'."""
    m = x._mpf_ if isinstance(x, mpmath.mpf) else mpmath.mpf(x)._mpf_  # never re-round an mpf
    if m in _SPECIAL:
        return _SPECIAL[m]
    sign, man, exp, _ = m
    return f"{'-' if sign else ''}{int(man):x}p{int(exp)}"


def pair_to_mpf(hi: float, lo: float) -> mpmath.mpf:
    """hi + lo exactly (two float64s; a zero keeps hi's sign), whatever the caller's precision."""
    v = mpmath.mpf.__new__(mpmath.mpf)
    v._mpf_ = libmp.from_float(hi) if lo == 0 else libmp.mpf_add(libmp.from_float(hi), libmp.from_float(lo), 0)
    return v


def mpf_from_str(s: str) -> mpmath.mpf:
    """Inverse of mpf_to_str, exact whatever the current mpmath precision."""
    if s in _FROM_SPECIAL:
        return mpmath.mpf(_FROM_SPECIAL[s])
    neg = s.startswith("-")
    man_s, exp_s = s.lstrip("-").split("p")
    man, exp = int(man_s, 16), int(exp_s)
    v = mpmath.mpf(0)
    v._mpf_ = libmp.from_man_exp(-man if neg else man, exp)  # exact: no rounding to mp.prec
    return v


def _full(a, dtype, shape) -> np.ndarray:
    """``a`` as a writable array of ``shape``: as given when it already is one (settle's fresh
    arrays: copying a million-element result three times cost a tenth of a float32 call, most
    of it page faults), else broadcast and copied."""
    a = np.asarray(a)
    if a.dtype == dtype and a.shape == shape and a.flags.writeable:
        return a
    return np.broadcast_to(a.astype(dtype, copy=False), shape).copy()


class Exact:
    """Exact values of one output (or gradient), all arrays of the output's shape.

    values        object array of mpf, precise enough to settle ``dtype`` (NaN where undetermined)
    rounded       the correctly rounded value in ``dtype`` (NaN where undetermined)
    undetermined  bool: the precision cap was reached before the value settled; never judged
    cond          float64 condition scale: a backward-stable algorithm errs by at most about
                  (c0 + c1*log2(nterms)) * u * cond (absolute)
    scale         float64 natural absolute unit of the loss (the absolute-only rung)
    nterms        int64 number of terms the exact formula sums for the element
    dtype         output format name

    Elements the vectorised stages settled are held as float64 pairs hi + lo (``hi``/``lo``,
    None in ``values``); ``values`` makes their mpfs only when first asked for, since building a
    Python object per element costs more than settling it.
    """

    def __init__(self, values, rounded, undetermined, cond, scale, nterms, dtype, hi=None, lo=None):
        self._obj = np.asarray(values, dtype=object)
        self.rounded = rounded
        self.undetermined = undetermined
        self.cond, self.scale, self.nterms, self.dtype = cond, scale, nterms, dtype
        self._pair = None if hi is None else (np.asarray(hi, np.float64).reshape(self._obj.shape),
                                               np.asarray(lo, np.float64).reshape(self._obj.shape))
        self._values = None if self._pair is not None else self._obj
        self._hilo = None

    def __repr__(self) -> str:
        return f"Exact(dtype={self.dtype!r}, shape={self.shape}, undetermined={int(np.sum(self.undetermined))})"

    @property
    def values(self) -> np.ndarray:
        if self._values is None:
            v = self._obj.copy()
            hi, lo = self._pair
            flat, fh, fl = v.reshape(-1), hi.reshape(-1), lo.reshape(-1)
            for i in np.flatnonzero(np.equal(flat, None)):
                flat[i] = pair_to_mpf(float(fh[i]), float(fl[i]))
            self._values = v
        return self._values

    def values_at(self, idx) -> list:
        """The exact values of flat indices ``idx`` as mpf, without materialising the others
        (a figure needs a few of them; a sweep chunk holds hundreds of thousands)."""
        if self._values is not None:
            flat = self._values.reshape(-1)
            return [flat[i] for i in idx]
        flat = self._obj.reshape(-1)
        hi, lo = (a.reshape(-1) for a in self._pair)
        return [flat[i] if flat[i] is not None else pair_to_mpf(float(hi[i]), float(lo[i])) for i in idx]

    @classmethod
    def from_values(cls, values, undetermined, cond, scale, nterms, dtype, rounded=None,
                    hi=None, lo=None) -> Exact:
        """Build from settled values; ``rounded`` (float64, NaN where unknown) saves re-rounding;
        ``hi``/``lo`` hold the elements whose ``values`` entry is None (see the class)."""
        values = np.asarray(values, dtype=object)
        und = np.asarray(undetermined, dtype=bool).reshape(values.shape)
        if rounded is None:
            rounded = to_dtype(values if hi is None else cls(values, None, und, 0, 0, 0, dtype, hi, lo).values, dtype)
        else:
            rounded = np.asarray(rounded, np.float64).reshape(values.shape).astype(get_format(dtype).np_dtype)
        if und.any():
            rounded = np.where(und, np.nan, rounded.astype(np.float64)).astype(get_format(dtype).np_dtype)
        shape = values.shape
        return cls(values=values, rounded=rounded, undetermined=und, cond=_full(cond, np.float64, shape),
                   scale=_full(scale, np.float64, shape), nterms=_full(nterms, np.int64, shape), dtype=dtype,
                   hi=hi, lo=lo)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._obj.shape

    def hilo(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact values as float64 pairs hi + lo (|lo| <= ulp(hi)/2), computed once.

        Accurate to about 2**-106 relative: enough for every error figure, and vectorisable.
        """
        if self._hilo is None:
            n = self._obj.size
            if self._pair is not None:
                hi, lo = (a.reshape(-1).copy() for a in self._pair)
                todo = np.flatnonzero(~np.equal(self._obj.reshape(-1), None))
            else:
                hi, lo, todo = np.empty(n), np.empty(n), range(n)
            flat = self._obj.reshape(-1)
            with mpmath.workprec(200):
                for i in todo:
                    v = flat[i]
                    h = round_mpf(v, "float64")
                    hi[i] = h
                    lo[i] = float(v - h) if (mpmath.isfinite(v) and np.isfinite(h)) else 0.0
            self._hilo = (hi.reshape(self.shape), lo.reshape(self.shape))
        return self._hilo

    def to_dict(self) -> dict:
        def floats(a):
            return [x if np.isfinite(x) else str(x) for x in np.asarray(a, np.float64).reshape(-1).tolist()]

        return {
            "schema": "losscheck.exact/1",
            "dtype": self.dtype,
            "shape": list(self.shape),
            "values": [mpf_to_str(v) for v in self.values.reshape(-1)],
            "undetermined": [bool(b) for b in self.undetermined.reshape(-1)],
            "cond": floats(self.cond),
            "scale": floats(self.scale),
            "nterms": [int(n) for n in self.nterms.reshape(-1)],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Exact:
        """Inverse of to_dict; raises ValueError on anything malformed (a cache must not lie)."""
        try:
            if d.get("schema") != "losscheck.exact/1":
                raise ValueError(f"unknown schema {d.get('schema')!r}")
            shape = tuple(int(s) for s in d["shape"])
            n = int(np.prod(shape)) if shape else 1
            vals = np.empty(n, dtype=object)
            for i, s in enumerate(d["values"]):
                vals[i] = mpf_from_str(s)
            lists = [d["values"], d["undetermined"], d["cond"], d["scale"], d["nterms"]]
            if any(len(x) != n for x in lists):
                raise ValueError("array lengths do not match the shape")

            def arr(xs, dt):
                return np.array([float(x) if isinstance(x, str) else x for x in xs], dtype=dt).reshape(shape)

            return cls.from_values(vals.reshape(shape), arr(d["undetermined"], bool), arr(d["cond"], np.float64),
                                   arr(d["scale"], np.float64), arr(d["nterms"], np.int64), str(d["dtype"]))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed exact record: {e}") from None
