"""to_dtype and the error figures: one correct rounding, ties to even, subnormals, overflow."""
import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as R
from reference.formats import FORMATS, ordinal_distance, round_float, ulp_error

NAMES = ["float16", "bfloat16", "float32", "float64"]


def mp_array(vals):
    return np.array([mpmath.mpf(v) for v in vals], dtype=object)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(bits=st.integers(0, 2**16 - 1))
def test_representable_values_round_to_themselves(name, bits):
    fmt = FORMATS[name]
    if name == "float32":
        bits = bits * 65537
    if name == "float64":
        bits = bits * 0x0001000100010001
    v = np.array([bits], fmt.uint).view(fmt.np_dtype)
    if not np.isfinite(v.astype(np.float64)).all():
        return
    got = R.to_dtype(mp_array([float(v[0])]), name)
    assert got.view(fmt.uint)[0] == v.view(fmt.uint)[0] or (float(v[0]) == 0 and float(got[0]) == 0)


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_agrees_with_numpy_and_ml_dtypes_casts_from_float64(name):
    rng = np.random.default_rng(0)
    v = rng.standard_normal(3000) * np.exp(rng.uniform(-100, 100, 3000))
    ours = R.to_dtype(mp_array(v), name)
    # numpy's float64->float16/32 and ml_dtypes' float64->bfloat16 casts round once, correctly
    theirs = v.astype(FORMATS[name].np_dtype)
    assert np.array_equal(ours.view(FORMATS[name].uint), theirs.view(FORMATS[name].uint))
    assert np.array_equal(round_float(v, name), theirs.astype(np.float64), equal_nan=True)


def test_ties_round_to_even():
    with mpmath.workprec(200):
        one = mpmath.mpf(1)
        # halfway between 1 and 1 + 2^-10 (float16): stays at 1 (even); next tie goes up to even
        assert R.to_dtype(mp_array([one + mpmath.mpf(2) ** -11]), "float16")[0] == np.float16(1)
        up = one + 3 * mpmath.mpf(2) ** -11
        assert R.to_dtype(np.array([up], dtype=object), "float16")[0] == np.float16(1 + 2 * 2 ** -10)
        # one bit past the tie rounds up: a double rounding through float32 could not see it
        just = one + mpmath.mpf(2) ** -11 + mpmath.mpf(2) ** -60
        assert R.to_dtype(np.array([just], dtype=object), "float16")[0] == np.float16(1 + 2 ** -10)
        assert np.float16(np.float32(float(just))) == np.float16(1)  # the double-rounding trap


def test_subnormals_and_underflow():
    tiny16 = 2.0 ** -24  # smallest float16 subnormal
    assert R.to_dtype(mp_array([tiny16 * 0.5]), "float16")[0] == 0  # tie to even (0)
    assert R.to_dtype(mp_array([tiny16 * 0.75]), "float16")[0] == np.float16(tiny16)
    assert R.to_dtype(mp_array([tiny16 * 1.5]), "float16")[0] == np.float16(2 * tiny16)  # tie -> even
    assert R.to_dtype(mp_array([2.0 ** -149]), "float32")[0] == np.float32(2.0 ** -149)
    assert R.to_dtype(mp_array([-(2.0 ** -151)]), "float32")[0] == 0 and np.signbit(
        R.to_dtype(mp_array([-(2.0 ** -151)]), "float32")[0])
    assert float(R.to_dtype(mp_array([2.0 ** -133]), "bfloat16")[0]) == 2.0 ** -133  # bf16 subnormal
    with mpmath.workprec(64):
        huge_neg = mpmath.exp(-mpmath.mpf(10) ** 30)  # far below any subnormal
    assert R.to_dtype(np.array([huge_neg], dtype=object), "float64")[0] == 0


def test_overflow_to_infinity():
    assert R.to_dtype(mp_array([65519.0]), "float16")[0] == np.float16(65504)
    assert np.isinf(R.to_dtype(mp_array([65520.0]), "float16")[0])  # the tie rounds to inf
    assert np.isinf(R.to_dtype(mp_array([-1e39]), "float32")[0]) and R.to_dtype(mp_array([-1e39]), "float32")[0] < 0
    big = float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert float(R.to_dtype(mp_array([big]), "bfloat16")[0]) == big
    assert np.isinf(R.to_dtype(np.array([mpmath.mpf(2) ** 1024], dtype=object), "float64")[0])


def test_specials_survive():
    # (mpmath's zero is unsigned, so an exact zero rounds to +0; a signed zero only arises by rounding)
    got = R.to_dtype(np.array([mpmath.mpf("nan"), mpmath.mpf("inf"), mpmath.mpf("-inf"), mpmath.mpf(0)],
                              dtype=object), "bfloat16").astype(np.float64)
    assert math.isnan(got[0]) and got[1] == np.inf and got[2] == -np.inf and got[3] == 0


def test_ulp_error_and_ordinal_distance():
    one = mp_array([1.0])
    nxt = np.nextafter(np.float32(1), np.float32(2))
    assert ulp_error(one, np.array([nxt]), "float32")[0] == 1.0
    below = np.nextafter(np.float32(1), np.float32(0))
    with mpmath.workprec(100):
        ex = np.array([mpmath.mpf(1) - mpmath.mpf(2) ** -80], dtype=object)
    assert abs(ulp_error(ex, np.array([below]), "float32")[0] - 1.0) < 1e-9  # binade below 1
    assert ulp_error(mp_array([0.0]), np.array([np.float16(2 ** -24)]), "float16")[0] == 1.0
    assert ulp_error(mp_array([1.0]), np.array([np.inf]), "float32")[0] == np.inf
    assert ulp_error(np.array([mpmath.mpf("nan")], dtype=object), np.array([np.nan]), "float32")[0] == 0
    assert ulp_error(np.array([mpmath.mpf("-inf")], dtype=object), np.array([np.inf]), "float32")[0] == np.inf
    assert ordinal_distance(np.float32([1.0, -0.0, 1.0]), np.float32([1.0, 0.0, float(below)]), "float32").tolist() == [0, 0, 1]
    assert ordinal_distance(np.float16([-2 ** -24]), np.float16([2 ** -24]), "float16")[0] == 2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_every_midpoint_rounds_half_even_and_every_nudge_to_its_side(dtype):
    """Exhaustive over the 16-bit formats: for each pair of neighbouring finite values a < b, the
    exact midpoint rounds to the one with an even significand, and the midpoint nudged by 2^-200
    of it rounds to a (down) or b (up); the midpoint above the largest value overflows to inf."""
    import mpmath

    from reference.formats import FORMATS, round_mpf

    fmt = FORMATS[dtype]
    bits = np.arange(0, 0x7C00 if dtype == "float16" else 0x7F80, dtype=np.uint16)  # +0 .. max finite
    vals = bits.view(fmt.np_dtype).astype(np.float64)
    bad = []
    with mpmath.workprec(400):
        for k in range(len(vals) - 1):
            a, b = mpmath.mpf(vals[k]), mpmath.mpf(vals[k + 1])
            mid = (a + b) / 2
            nudge = mpmath.ldexp(mid if mid else b, -200)
            even = vals[k] if bits[k] % 2 == 0 else vals[k + 1]
            for sign in (1, -1):
                got = (round_mpf(sign * mid, fmt), round_mpf(sign * (mid - nudge), fmt),
                       round_mpf(sign * (mid + nudge), fmt))
                want = (sign * even, sign * vals[k], sign * vals[k + 1])
                if got != want:
                    bad.append((sign, vals[k], got, want))
        top = mpmath.mpf(vals[-1])
        ulp = top - mpmath.mpf(vals[-2])
        assert round_mpf(top + ulp / 2, fmt) == np.inf and round_mpf(-(top + ulp / 2), fmt) == -np.inf
        assert round_mpf(top + ulp / 2 - mpmath.ldexp(top, -200), fmt) == vals[-1]
    assert not bad, bad[:5]
    # the vectorised float path agrees on every midpoint (float64 holds them exactly)
    from reference.formats import round_float

    mids = (vals[:-1] + vals[1:]) / 2
    want = np.where(bits[:-1] % 2 == 0, vals[:-1], vals[1:])
    np.testing.assert_array_equal(round_float(mids, dtype), want)
    np.testing.assert_array_equal(round_float(-mids, dtype), -want)
    # and one float64 step either side of each midpoint goes to its side (no double rounding:
    # round_float casts float64 -> float16 directly, see formats._CAST_EXACT)
    np.testing.assert_array_equal(round_float(np.nextafter(mids, 0), dtype), vals[:-1])
    np.testing.assert_array_equal(round_float(np.nextafter(mids, np.inf), dtype), vals[1:])


@pytest.mark.parametrize("work", ["float64", "longdouble", "quad"])
def test_round_float_to_float32_on_midpoints_from_every_working_format(work):
    """float32 midpoints (normal, subnormal, the overflow threshold) and one step of the working
    format either side: round_float agrees with round_mpf from float64, long double and quad."""
    from reference.formats import round_mpf
    from reference.numerics import QUAD

    if work == "quad" and QUAD is None:
        pytest.skip("numpy-quaddtype is not installed (the 'fast' extra)")
    rng = np.random.default_rng(3)
    bits = np.concatenate([rng.integers(0, 0x7F7FFFFF, 4000), np.arange(0, 64), [0x7F7FFFFE]]).astype(np.uint32)
    a = bits.view(np.float32).astype(np.float64)
    b = (bits + 1).view(np.float32).astype(np.float64)
    b[-1] = 2.0 ** 128  # past the largest float32: the overflow threshold is its midpoint
    dt = {"float64": np.dtype(np.float64), "longdouble": np.dtype(np.longdouble)}.get(work) or QUAD.dtype
    mid = (a.astype(dt) + b.astype(dt)) / 2  # exact in each working format
    step = mid * 2.0 ** -60 if work != "float64" else (b - a) * 2.0 ** -30
    for v in (mid, mid - step, mid + step, -mid, -(mid + step)):
        got = round_float(v, "float32")
        with mpmath.workprec(300):
            want = [round_mpf(x, "float32") for x in _to_mpf(v)]
        np.testing.assert_array_equal(got, want)


def _to_mpf(v: np.ndarray) -> list:
    """Exact mpfs of a float64, long double or quad array: three float64 pieces (array arithmetic;
    quad scalars convert through float64)."""
    hi = v.astype(np.float64)
    rest = v - hi.astype(v.dtype)
    mid = rest.astype(np.float64)
    lo = (rest - mid.astype(v.dtype)).astype(np.float64)
    return [mpmath.mpf(float(a)) + mpmath.mpf(float(b)) + mpmath.mpf(float(c)) for a, b, c in zip(hi, mid, lo)]


@pytest.mark.parametrize("name", NAMES)
def test_ulp_of_value_agrees_with_ulp_of_float(name):
    """The settling stage's bit-level ulp equals the general one on representable values: random
    binades, zeros, subnormals, the extremes of every format."""
    from reference.formats import ulp_of_float, ulp_of_value

    rng = np.random.default_rng(4)
    with np.errstate(over="ignore"):
        v = rng.standard_normal(20000) * np.exp(rng.uniform(-800, 800, 20000))
    v = np.concatenate([v, [0.0, -0.0, 5e-324, 2.0 ** -1022, 1.7e308, 2.0 ** -149, 2.0 ** -126, 65504.0,
                            2.0 ** -24, 2.0 ** -14, 2.0 ** -133]])
    r = round_float(v, name)
    r = np.where(np.isfinite(r), r, 0.0)
    np.testing.assert_array_equal(ulp_of_value(r, name), ulp_of_float(r, np.zeros_like(r), name))
