"""What a failure looks like, in words: the symptom of the worst element, and numbers printed with
just enough digits to tell the exact value and the observed one apart.

Why: "exact 0.62, got 0.62" and "max ulp inf" make a user read the source to see what went wrong;
"got nan where the exact value is finite" or "off by a factor 2" names the bug class at once, and
grouping failures by symptom turns fifty rows into three findings.
"""
from __future__ import annotations

import math

import mpmath

#: symptom names, most telling first (the summary groups failures under these)
SYMPTOMS = ("nan where finite", "inf where finite", "finite where infinite", "nan expected",
            "wrong sign", "semantic difference", "convention", "flushed subnormal", "flushed to zero",
            "nonzero where exact is 0", "off by a simple factor", "magnitude-dependent", "recursive summation",
            "absolute-only cliff", "inaccurate")

_FACTORS = ((2.0, "2"), (0.5, "1/2"), (4.0, "4"), (0.25, "1/4"), (3.0, "3"), (1 / 3, "1/3"))


def _mpf(text: str):
    try:
        return mpmath.mpf(text)
    except (ValueError, TypeError):
        return None


def symptom(worst: dict | None, rung: str | None = None, sizes: tuple[int, ...] = ()) -> str | None:
    """The symptom of a failing check's worst element (``worst`` as check.py records it: exact,
    observed, rounded as text, rung); ``sizes`` are the case's dimensions, so that an error by a
    factor of N or C (a mean over the wrong count) is recognised.  None when nothing failed."""
    if not worst or worst.get("exact") in (None, "undetermined"):
        return None
    e, o = _mpf(str(worst["exact"])), _mpf(str(worst.get("observed")))
    if e is None or o is None:
        return None
    rung = rung or worst.get("rung")
    if rung == "convention":  # a warn: the other answer at a special point (the limit, 0/0 := 0)
        return "convention"
    if rung == "semantic":  # a fail: another library's formula (a clip, a cap), matched exactly
        return "semantic difference"
    if mpmath.isnan(o):
        return "nan expected" if mpmath.isnan(e) else "nan where finite"
    if mpmath.isnan(e):
        return "nan expected"
    if mpmath.isinf(o) and mpmath.isfinite(e):
        return "inf where finite"
    if mpmath.isinf(e) and mpmath.isfinite(o):
        return "finite where infinite"
    if mpmath.isinf(e):
        return "wrong sign" if (e > 0) != (o > 0) else "inaccurate"
    # a warn rung names the diagnosis, even where a tiny value came back with the other sign
    if rung == "magnitude":  # within a few u * max|x| (no max subtracted first)
        return "magnitude-dependent"
    if rung == "recursive":  # within the one-after-another summation bound
        return "recursive summation"
    if e != 0 and o != 0 and (e > 0) != (o > 0):
        return "wrong sign"
    if rung == "absolute":  # a warn: within the loss's natural unit, however it lost the digits
        return "absolute-only cliff"
    if rung == "flushed":  # a warn: a subnormal result returned as 0 (flush-to-zero)
        return "flushed subnormal"
    if o == 0 and e != 0:
        return "flushed to zero"
    if e == 0 and o != 0:
        return "nonzero where exact is 0"
    ratio = float(o / e) if e != 0 else math.nan
    factors = list(_FACTORS) + [(float(n), str(n)) for n in sizes if n > 1] + \
        [(1 / n, f"1/{n}") for n in sizes if n > 1]
    for f, _ in factors:
        if math.isfinite(ratio) and abs(ratio - f) <= 1e-3 * f:
            return "off by a simple factor"
    return "inaccurate"


def factor_text(worst: dict, sizes: tuple[int, ...] = ()) -> str | None:
    """"×2", "×1/8"...: the simple factor between observed and exact, when there is one."""
    e, o = _mpf(str(worst.get("exact"))), _mpf(str(worst.get("observed")))
    if e is None or o is None or e == 0 or not (mpmath.isfinite(e) and mpmath.isfinite(o)):
        return None
    ratio = float(o / e)
    for f, name in list(_FACTORS) + [(float(n), str(n)) for n in sizes if n > 1] + \
            [(1 / n, f"1/{n}") for n in sizes if n > 1]:
        if abs(ratio - f) <= 1e-3 * f:
            return f"×{name}"
    return None


def _digits(x, k: int) -> str:
    """x (mpf) in at most k significant digits: "0.621", "1.59e-13", "9.0072e15", "0.5"."""
    if not mpmath.isfinite(x):
        return "nan" if mpmath.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    text = mpmath.nstr(x, k)
    mant, sep, exp = text.partition("e")
    mant = mant.removesuffix(".0")
    return mant + (f"e{int(exp)}" if sep else "")


def apart(exact: str, observed: str, limit: int = 20) -> tuple[str, str, int]:
    """(exact, observed, k): the fewest significant digits k (at least 3) that tell them apart; the
    same text twice only when they are equal to ``limit`` digits."""
    e, o = _mpf(exact), _mpf(observed)
    if e is None or o is None:
        return exact, observed, 0
    for k in range(3, limit + 1):
        a, b = _digits(e, k), _digits(o, k)
        if a != b:
            return a, b, k
    return _digits(e, limit), _digits(o, limit), limit


def describe_pair(worst: dict, dtype: str) -> str:
    """"exact 2.12e-1823 → 0 in float16, got nan": the exact value with enough digits to tell it
    from the observed one, its correct rounding in the output format when that reads differently
    at those digits (underflow, overflow, a tie), and the observed value."""
    exact, observed = str(worst.get("exact")), str(worst.get("observed"))
    if exact == "undetermined":
        return f"exact undetermined, got {observed}"
    a, b, k = apart(exact, observed)
    out = f"exact {a}"
    r = _mpf(str(worst.get("rounded")))
    if r is not None and k and _digits(r, k) != a:
        out += f" → {_digits(r, max(k, 3))} in {dtype}"
    return f"{out}, got {b}"
