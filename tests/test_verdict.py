"""Error figures and the verdict ladder on hand-built Exact objects with known answers."""
from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest

from harness.metrics import figures
from harness.tolerances import DtypeTolerance
from harness.verdict import classify, record_verdict
from reference import formats
from reference.exact import Exact

BF16 = ml_dtypes.bfloat16
NP = {"float16": np.float16, "bfloat16": BF16, "float32": np.float32, "float64": np.float64}


def make_exact(values, dtype, *, cond=1.0, scale=1.0, nterms=1, undetermined=None) -> Exact:
    """An Exact of 1-d shape from exact values given as mpf-able strings/numbers."""
    v = np.empty(len(values), dtype=object)
    v[:] = [x if isinstance(x, mpmath.mpf) else mpmath.mpf(x) for x in values]  # keep extra bits
    n = len(values)
    und = np.zeros(n, bool) if undetermined is None else np.asarray(undetermined, bool)
    rounded = formats.to_dtype(v, dtype)
    rounded[und] = np.nan
    return Exact(values=v, rounded=rounded, undetermined=und,
                 cond=np.broadcast_to(np.asarray(cond, np.float64), (n,)).copy(),
                 scale=np.broadcast_to(np.asarray(scale, np.float64), (n,)).copy(),
                 nterms=np.broadcast_to(np.asarray(nterms, np.int64), (n,)).copy(), dtype=dtype)


def obs(values, dtype) -> np.ndarray:
    return np.array([float(mpmath.mpf(x)) if isinstance(x, str) else x for x in values],
                    np.float64).astype(NP[dtype])


# ------------------------------------------------------------------------------------ figures

def test_float32_one_vs_next_is_one_ulp():
    e = make_exact([1], "float32")
    o = np.array([np.nextafter(np.float32(1), np.float32(2))], np.float32)
    f = figures(e, o)
    assert f["ulp"][0] == 1.0
    assert f["bits"][0] == 1.0  # log2(1 + 1 step)
    assert f["rel_u"][0] == 2.0  # 2^-23 / 1 / 2^-24
    assert f["abs_err"][0] == 2.0 ** -23


def test_float32_subnormal_ulp_is_constant():
    tiny = mpmath.ldexp(1, -149)  # smallest float32 subnormal = the subnormal ulp
    e = make_exact([3 * tiny, mpmath.mpf(5) / 2 * tiny], "float32")
    o = np.array([4 * 2.0 ** -149, 2 * 2.0 ** -149], np.float64).astype(np.float32)
    f = figures(e, o)
    assert f["ulp"].tolist() == [1.0, 0.5]
    assert e.rounded[1] == np.float32(2 * 2.0 ** -149)  # the tie went to even
    assert f["bits"].tolist() == [1.0, 0.0]


def test_float16_quarter_ulp_and_bits():
    e = make_exact([1 + mpmath.ldexp(1, -12)] * 2, "float16")  # ulp(1) in float16 = 2^-10
    o = np.array([1.0, 1.0 + 2.0 ** -10], np.float16)
    f = figures(e, o)
    assert f["ulp"].tolist() == [0.25, 0.75]
    assert f["bits"].tolist() == [0.0, 1.0]
    assert f["rel_u"][0] == pytest.approx(2.0 ** -12 / (1 + 2.0 ** -12) / 2.0 ** -11, rel=1e-15)


def test_bfloat16_tie_and_ulp():
    e = make_exact([1 + mpmath.ldexp(1, -8)] * 2, "bfloat16")  # half an ulp (2^-7) above 1
    o = np.array([1.0, 1.0 + 2.0 ** -7], np.float64).astype(BF16)
    f = figures(e, o)
    assert f["ulp"].tolist() == [0.5, 0.5]
    assert float(e.rounded[0]) == 1.0  # tie to even
    assert f["bits"].tolist() == [0.0, 1.0]


def test_float64_figures_keep_sub_ulp_exactness():
    with mpmath.workprec(80):
        e = make_exact([1 + mpmath.ldexp(1, -60)], "float64")
    f = figures(e, np.array([1.0]))
    assert f["ulp"][0] == 2.0 ** -8
    assert f["bits"][0] == 0.0


def test_special_figures():
    e = make_exact([1, "nan", "inf", 2, 70000, 70000, 0], "float16",
                   undetermined=[0, 0, 0, 1, 0, 0, 0])
    o = obs([math.inf, math.nan, math.inf, 2, math.inf, 65504, 2.0 ** -24], "float16")
    f = figures(e, o)
    assert f["ulp"][0] == math.inf and f["bits"][0] == math.inf and f["rel_u"][0] == math.inf
    assert f["ulp"][1] == 0 and f["ulp"][2] == 0  # same special on both sides
    assert all(math.isnan(f[k][3]) for k in f)  # undetermined: no figure
    assert f["ulp"][4] == 0  # exact 70000 overflows float16: +inf is the correct rounding
    assert f["ulp"][5] == (70000 - 65504) / 32  # ulp of the top binade, 2^(15-10)
    assert f["bits"][5] == 1.0  # 65504 is one step below +inf
    assert f["rel_u"][6] == math.inf and f["ulp"][6] == 1.0  # exact 0 vs smallest subnormal


# ------------------------------------------------------------------------------------ ladder

TOL = DtypeTolerance(ulp=1.0, c0=2.0, c1=1.0, c_abs=4.0)
U32 = 2.0 ** -24


def rungs_of(e, o, tol=TOL):
    return classify(e, o, figures(e, o), tol).tolist()


def test_each_rung():
    # exact 1e-8 observed as 0: a 10^7-ulp error judged by cond/nterms/scale only
    e = make_exact(["1e-8"] * 5, "float32",
                   cond=[0.1, 0.05, 0.05, 0.01, 0.01], nterms=[1, 1, 4, 1, 1],
                   scale=[0.0, 0.0, 0.0, 1.0, 0.01])
    o = np.zeros(5, np.float32)
    # stable: 1e-8 <= 2*u*0.1 = 1.19e-8;  not stable with cond 0.05 (5.96e-9) unless
    # log2(nterms)=2 widens it to 4*u*0.05;  absolute: 1e-8 <= 4*u*1;  fail: 4*u*0.01 = 2.4e-9
    assert rungs_of(e, o) == ["stable", "fail", "stable", "absolute", "fail"]


def test_accurate_uses_ulp_tolerance_first():
    e = make_exact([1, 1], "float32", cond=0.0, scale=0.0)
    o = np.array([1 + 2.0 ** -23, 1 + 2 * 2.0 ** -23], np.float32)  # 1 and 2 ulp
    assert rungs_of(e, o) == ["accurate", "fail"]
    loose = DtypeTolerance(ulp=2.0, c0=0.0, c1=0.0, c_abs=0.0)
    assert rungs_of(e, o, loose) == ["accurate", "accurate"]
    # stable precedes absolute: both hold here, stable is reported
    e2 = make_exact([1], "float32", cond=1e9, scale=1e9)
    assert rungs_of(e2, np.array([1.5], np.float32)) == ["stable"]


@pytest.mark.parametrize("exact,observed", [
    (1, math.nan),             # NaN vs number
    ("nan", 1.0),              # number vs exact NaN
    (1, math.inf),             # inf vs finite
    (-5, -math.inf),
    ("inf", 3.0e38),           # finite vs exact inf
    ("inf", -math.inf),        # wrong sign of inf
    ("-inf", math.inf),
])
def test_special_mismatch_fails_whatever_the_scales(exact, observed):
    e = make_exact([exact], "float32", cond=1e30, scale=1e30, nterms=10 ** 6)
    o = np.array([observed], np.float32)
    r = rungs_of(e, o, DtypeTolerance(ulp=1e30, c0=1e30, c1=1e30, c_abs=1e30))
    assert r == ["special"]
    assert record_verdict(np.array(r)) == "fail"


def test_same_special_is_accurate():
    e = make_exact(["nan", "inf", "-inf", 1e6], "float16")  # 1e6 overflows float16 to +inf
    o = np.array([np.nan, np.inf, -np.inf, np.inf], np.float16)
    assert rungs_of(e, o) == ["accurate"] * 4


def test_undetermined_is_never_judged():
    e = make_exact([1, 1, 1], "float32", undetermined=[True, True, False], cond=0.0, scale=0.0)
    o = np.array([np.nan, 1e30, 1.0], np.float32)
    r = rungs_of(e, o)
    assert r == ["undetermined", "undetermined", "accurate"]
    assert record_verdict(np.array(r)) == "pass"
    assert record_verdict(np.array(r[:2])) == "undetermined"


def test_record_verdict_is_the_worst_rung():
    assert record_verdict(np.array(["accurate", "stable"])) == "pass"
    assert record_verdict(np.array(["accurate", "absolute", "stable"])) == "warn"
    assert record_verdict(np.array(["absolute", "fail"])) == "fail"
    assert record_verdict(np.array(["accurate", "special"])) == "fail"


def test_classify_keeps_shape():
    e = make_exact([1, 2, 3, 4], "float64")
    e2 = Exact(values=e.values.reshape(2, 2), rounded=e.rounded.reshape(2, 2),
               undetermined=e.undetermined.reshape(2, 2), cond=e.cond.reshape(2, 2),
               scale=e.scale.reshape(2, 2), nterms=e.nterms.reshape(2, 2), dtype="float64")
    o = np.array([[1.0, 2.0], [3.0, 5.0]])
    r = classify(e2, o, figures(e2, o), TOL)
    assert r.shape == (2, 2)
    assert r.tolist() == [["accurate", "accurate"], ["accurate", "fail"]]


def test_zero_dim_outputs():
    e = make_exact([2], "float32", cond=0.0, scale=0.0)
    e0 = Exact(values=e.values.reshape(()), rounded=e.rounded.reshape(()),
               undetermined=e.undetermined.reshape(()), cond=e.cond.reshape(()),
               scale=e.scale.reshape(()), nterms=e.nterms.reshape(()), dtype="float32")
    o = np.array(2 + 2.0 ** -22, np.float32)
    f = figures(e0, o)
    assert all(a.shape == () for a in f.values())
    assert float(f["ulp"]) == 1.0 and float(f["abs_err"]) == 2.0 ** -22
    assert classify(e0, o, f, TOL).tolist() == "accurate"


def test_underflow_allowance_on_the_stable_rung():
    """A result in the subnormal range may be off by a couple of subnormal quanta (eta) however
    small u*cond is: that is stable, not a warn; three quanta on a 1-term formula are not."""
    tiny = 2.0 ** -24  # float16's smallest subnormal (eta)
    e = make_exact([mpmath.mpf(tiny) * 3.5], "float16", cond=tiny * 3.5, scale=tiny * 3.5)
    tol = DtypeTolerance(ulp=1.0, c0=2.0, c1=1.0, c_abs=8.0)
    assert rungs_of(e, obs([tiny * 5], "float16"), tol) == ["stable"]  # 1.5 eta off
    assert rungs_of(e, obs([tiny * 7], "float16"), tol) == ["fail"]  # 3.5 eta off
