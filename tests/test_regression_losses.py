"""l1_loss, smooth_l1_loss, huber_loss: the oracle against torch (float64: values and both
gradients, every reduction, the kinks, the threshold's edge values, torch's refusals), against the
independent brute force at high precision on every case family, and the NumPy implementation."""
import math
import types
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

import reference as R
from reference.formats import round_mpf
from reference.registry import get
from reference.sampling import grad_output as draw_grad_output

NAMES = ("l1_loss", "smooth_l1_loss", "huber_loss")
THRESHOLD = {"l1_loss": None, "smooth_l1_loss": "beta", "huber_loss": "delta"}
REDUCTIONS = ("none", "sum", "mean")
SIZE = types.SimpleNamespace(name="test", batch=2, repeats=1)
INF, NAN = math.inf, math.nan


def same(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _torch(name, x, y, kw, go):
    xt = torch.from_numpy(np.array(x, np.float64)).requires_grad_()
    yt = torch.from_numpy(np.array(y, np.float64)).requires_grad_()
    out = getattr(F, name)(xt, yt, **kw)
    out.backward(torch.from_numpy(np.array(go, np.float64)))
    return out.detach().numpy(), xt.grad.numpy(), yt.grad.numpy()


def _oracle(name, x, y, kw, go):
    v = R.evaluate(name, x, y, **kw).rounded.astype(np.float64)
    gi = R.evaluate_grad(name, x, y, grad_output=go, wrt="input", **kw).rounded.astype(np.float64)
    gt = R.evaluate_grad(name, x, y, grad_output=go, wrt="target", **kw).rounded.astype(np.float64)
    return v, gi, gt


def _thresholds(name):
    return {"l1_loss": [{}], "smooth_l1_loss": [{}, {"beta": 0.25}, {"beta": 1.5}, {"beta": 0.0},
                                                {"beta": 2}, {"beta": True}, {"beta": INF}],
            "huber_loss": [{}, {"delta": 0.5}, {"delta": 1.5}, {"delta": 3}, {"delta": INF}]}[name]


def _kink_inputs(b):
    """d = 0, +-b exactly, +-b one ulp either side, plus random values, y = 0 so d is exact."""
    u = 2.0 ** -52
    d = [0.0, -0.0, 1e-300, -5e-324]
    if 0 < b < INF:
        d += [b, -b, b * (1 + u), -b * (1 + u), b * (1 - u / 2), -b * (1 - u / 2), b - 2 ** -40, -b - 2 ** -40]
    return np.array(d)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_against_torch_float64(name, reduction):
    rng = np.random.default_rng(abs(hash((name, reduction))) % 2**32)
    for opts in _thresholds(name):
        kw = {"reduction": reduction, **opts}
        b = float(opts.get(THRESHOLD[name] or "", 1.0 if THRESHOLD[name] else 0.0))
        cases = [(rng.normal(0, 2, (3, 4)), rng.normal(0, 2, (3, 4))),
                 (rng.normal(0, 2, (5,)), rng.normal(0, 2, (5,))),
                 (np.asarray(rng.normal()), np.asarray(rng.normal())),
                 (_kink_inputs(b), np.zeros_like(_kink_inputs(b)))]
        # |d| = b with a nonzero target: x = y + b exactly
        y = np.array([3.0, -1.25, 0.5])
        if 0 < b < INF:
            cases.append((y + b, y))
            cases.append((y - b, y))
        for x, t in cases:
            go = rng.uniform(0.25, 2.0, get(name).output_shape((x, t), kw))
            tv, tgi, tgt = _torch(name, x, t, kw, go)
            ov, ogi, ogt = _oracle(name, x, t, kw, go)
            assert ov.shape == tv.shape and ogi.shape == tgi.shape == ogt.shape == tgt.shape
            u = 2.0 ** -53
            # values: torch subtracts and sums in float64 (a few ulps); gradients at most 3 roundings,
            # each of which may land on the subnormal grid (x * g before / beta: 4 subnormal units)
            sub = 4 * 5e-324
            assert np.allclose(ov, tv, rtol=16 * u * max(x.size, 1), atol=sub, equal_nan=True), (kw, ov, tv)
            assert np.all((np.abs(ogi - tgi) <= 4 * u * np.abs(tgi) + sub) | same(ogi, tgi)), (kw, x, ogi, tgi)
            assert np.all((np.abs(ogt - tgt) <= 4 * u * np.abs(tgt) + sub) | same(ogt, tgt)), (kw, x, ogt, tgt)


@pytest.mark.parametrize("name", NAMES)
def test_kinks_exactly(name):
    """The piece chosen at |d| = b and at d = 0, and the gradient torch returns there."""
    none = {"reduction": "none"}
    x = np.array([0.0, 1.0, -1.0, 1 + 2**-52, 1 - 2**-53, 0.5])
    y = np.zeros(6)
    v, gi, gt = _oracle(name, x, y, none, np.ones(6))
    tv, tgi, tgt = _torch(name, x, y, none, np.ones(6))
    assert same(v, tv).all() and same(gi, tgi).all() and same(gt, tgt).all()
    assert gi[0] == 0 and gt[0] == 0  # sign(0) = 0 for l1, d / b = 0 inside
    if name == "l1_loss":
        assert list(gi) == [0, 1, -1, 1, 1, 1]
    else:
        assert list(v[:3]) == [0, 0.5, 0.5] and gi[4] == 1 - 2**-53 and gi[3] == 1.0
    # |d| = b exactly from a difference that is exact but of two nonzero values
    kw = {"reduction": "none", **({THRESHOLD[name]: 0.75} if THRESHOLD[name] else {})}
    x, y = np.array([1.75, 0.25, 1.75 + 2**-52]), np.array([1.0, 1.0, 1.0])
    assert same(_oracle(name, x, y, kw, np.ones(3))[1], _torch(name, x, y, kw, np.ones(3))[1]).all()


def test_beta_zero_is_l1_and_delta_one_is_smooth_l1():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 2, (4, 3)), rng.normal(0, 2, (4, 3))
    x[0, 0] = y[0, 0]
    for red in REDUCTIONS:
        go = np.ones(get("l1_loss").output_shape((x, y), {"reduction": red}))
        a = _oracle("smooth_l1_loss", x, y, {"reduction": red, "beta": 0.0}, go)
        b = _oracle("l1_loss", x, y, {"reduction": red}, go)
        c = _oracle("huber_loss", x, y, {"reduction": red, "delta": 1.0}, go)
        d = _oracle("smooth_l1_loss", x, y, {"reduction": red}, go)
        for p, q in zip(a, b):
            assert same(p, q).all()
        for p, q in zip(c, d):
            assert same(p, q).all()


def test_special_values():
    none = {"reduction": "none"}
    x = np.array([INF, -INF, INF, NAN, 1.0])
    y = np.array([1.0, 1.0, INF, 1.0, NAN])
    for name in NAMES:
        v, gi, gt = _oracle(name, x, y, none, np.ones(5))
        tv, tgi, _ = _torch(name, x, y, none, np.ones(5))
        assert same(v, tv).all(), name
        assert gi[0] == tgi[0] == 1.0 and gi[1] == tgi[1] == -1.0
        assert np.isnan(gi[2:]).all() and np.isnan(gt[2:]).all()
        if name == "l1_loss":  # torch's sgn(NaN) = 0: a documented deviation (no gate family holds NaN)
            assert (tgi[2:] == 0).all()
        else:
            assert np.isnan(tgi[2:]).all()
    # an infinite threshold: the quadratic piece for every finite difference
    x, y = np.array([1e300, -3.0, 0.0]), np.array([-1e300, 1.0, 0.0])
    v = _oracle("smooth_l1_loss", x, y, {"reduction": "none", "beta": INF}, np.ones(3))
    assert list(v[0]) == [0, 0, 0] and list(v[1]) == [0, 0, 0]
    v = _oracle("huber_loss", x, y, {"reduction": "none", "delta": INF}, np.ones(3))
    assert list(v[0]) == [INF, 8.0, 0.0] and list(v[1]) == [2e300, -4.0, 0.0]


def test_empty_mean_is_nan():
    for name in NAMES:
        e = np.zeros(0)
        assert math.isnan(float(R.evaluate(name, e, e).rounded))
        assert math.isnan(float(getattr(F, name)(torch.zeros(0), torch.zeros(0))))


@pytest.mark.parametrize("name,kw,torch_error", [
    ("smooth_l1_loss", {"beta": -1.0}, "negative values for beta"),
    ("smooth_l1_loss", {"beta": -1e-300}, "negative values for beta"),
    ("smooth_l1_loss", {"beta": NAN}, "negative values for beta"),
    ("huber_loss", {"delta": 0.0}, "non-positive values for delta"),
    ("huber_loss", {"delta": -2.0}, "non-positive values for delta"),
    ("huber_loss", {"delta": NAN}, "non-positive values for delta"),
    ("smooth_l1_loss", {"beta": "1"}, "must be float"),
    ("huber_loss", {"delta": None}, "must be float"),
    ("l1_loss", {"reduction": "median"}, "not a valid value"),
    ("huber_loss", {"reduction": "batchmean"}, ""),
])
def test_refusals_match_torch(name, kw, torch_error):
    x = np.zeros((2, 3))
    with pytest.raises((RuntimeError, TypeError, ValueError), match=torch_error):
        getattr(F, name)(torch.from_numpy(x), torch.from_numpy(x), **kw)
    arg = next(iter(kw))
    with pytest.raises(ValueError, match=rf"^{arg}: "):
        getattr(R, name)(x, x, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name):
    x = np.zeros((2, 3))
    with pytest.raises(RuntimeError):  # not broadcastable: both refuse
        getattr(F, name)(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"^target: shape"):
        getattr(R, name)(x, np.zeros((3, 2)))
    with warnings.catch_warnings():  # broadcastable: torch warns, the oracle refuses (as mse_loss)
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            getattr(F, name)(torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"^target: shape"):
        getattr(R, name)(x, np.zeros(3))
    with pytest.raises(ValueError, match=r"^target: "):
        getattr(R, name)(x, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"^input: "):
        getattr(R, name)(np.zeros((2, 3), np.int32), x)
    with pytest.raises(ValueError, match=r"^wrt: "):
        R.evaluate_grad(name, x, x, wrt="weight")
    assert get(name).checks == ("value", "grad:input", "grad:target")


# ------------------------------------------------------------------------------ brute force

def _span(*arrays) -> int:
    exps = [0]
    for a in arrays:
        for v in np.asarray(a, np.float64).reshape(-1).tolist():
            if v != 0 and math.isfinite(v):
                exps.append(math.frexp(v)[1])
    return max(exps) - min(exps)


def brute_rounded(name, call, check, go, dtype):
    d = get(name)
    wrt = None if check == "value" else check.split(":")[1]
    outs = []
    for prec in (320, 640):
        with mpmath.workprec(prec + 2 * _span(*call.args, 0.0 if go is None else go) + 128):
            v = d.brute(call.args, call.kwargs, grad_output=None if wrt is None else go, wrt=wrt)
        outs.append(np.array([round_mpf(e, dtype) for e in v.reshape(-1)]).reshape(v.shape))
    assert same(outs[0], outs[1]).all(), "brute force did not settle"
    return outs[1]


def _family_calls():
    out = []
    for name in NAMES:
        d = get(name)
        for fam in sorted(d.families):
            for dt in R.DTYPES:
                calls = d.families[fam].fn(np.random.default_rng(12345), dt, SIZE)
                assert calls, (fam, dt)
                out.append((name, fam, dt, calls))
    return out


FAMILY_CALLS = _family_calls()


@pytest.mark.parametrize("name,fam,dtype,calls", FAMILY_CALLS, ids=[f"{f}-{d}" for _, f, d, _ in FAMILY_CALLS])
def test_families_match_brute_force(name, fam, dtype, calls):
    d = get(name)
    rng = np.random.default_rng(7)
    for k, call in enumerate(calls):
        assert R.FORMATS[dtype].np_dtype == call.args[0].dtype == call.args[1].dtype
        d.validate(call.args, call.kwargs)
        ex = R.evaluate(name, *call.args, **call.kwargs)
        assert not ex.undetermined.any()
        got = ex.rounded.astype(np.float64)
        assert same(got, brute_rounded(name, call, "value", None, dtype)).all(), (fam, dtype, k)
        go = draw_grad_output(rng, d.output_shape(call.args, call.kwargs), dtype).astype(np.float64)
        for wrt in ("input", "target"):
            g = R.evaluate_grad(name, *call.args, grad_output=go, wrt=wrt, **call.kwargs)
            assert not g.undetermined.any()
            want = brute_rounded(name, call, f"grad:{wrt}", go, dtype)
            assert same(g.rounded.astype(np.float64), want).all(), (fam, dtype, k, wrt)


# ------------------------------------------------------------------------------ NumPy implementation

def _careful():
    try:
        from harness.backends.numpy_numerics import CAREFUL
        return CAREFUL
    except Exception:  # noqa: BLE001 - load the file on its own, as tests/test_kl_div.py
        path = Path(__file__).resolve().parents[1] / "harness" / "backends" / "numpy_numerics.py"
        src = path.read_text().replace("from .dtypes import BFLOAT16, NUMPY_DTYPES",
                                       "BFLOAT16 = NUMPY_DTYPES = None")
        mod = types.ModuleType("_reg_numpy_numerics")
        exec(compile(src, str(path), "exec"), mod.__dict__)  # noqa: S102
        return mod.Careful()


def _ulps(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        return np.where(same(a, b), 0.0, np.abs(a - b) / np.spacing(np.maximum(np.abs(a), np.abs(b))))


@pytest.mark.parametrize("name", NAMES)
def test_numpy_careful_matches_oracle_float64(name):
    nx = _careful()
    d = get(name)
    rng = np.random.default_rng(3)
    calls = [c for fam in sorted(d.families) for c in d.families[fam].fn(rng, "float64", SIZE)]
    for call in calls:
        want = R.evaluate(name, *call.args, **call.kwargs).rounded.astype(np.float64)
        got = np.asarray(d.numpy_value(nx, *call.args, **call.kwargs), np.float64)
        assert got.shape == want.shape
        assert (_ulps(got, want) <= 2).all(), (call.kwargs, call.meta, got, want)
        go = draw_grad_output(rng, d.output_shape(call.args, call.kwargs), "float64")
        grads = d.numpy_grads(nx, *call.args, grad_output=go, **call.kwargs)
        assert set(grads) == {"input", "target"}
        for wrt in ("input", "target"):
            w = R.evaluate_grad(name, *call.args, grad_output=go, wrt=wrt, **call.kwargs).rounded.astype(np.float64)
            assert (_ulps(grads[wrt], w) <= 2).all(), (call.kwargs, call.meta, wrt)


# ------------------------------------------------------------------------------ strategy

@pytest.mark.parametrize("name", NAMES)
def test_strategy_calls_match_brute_force(name):
    d = get(name)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(d.strategy(dtype="float32"))
    def run(call):
        d.validate(call.args, call.kwargs)
        ex = R.evaluate(name, *call.args, **call.kwargs)
        assert not ex.undetermined.any()
        assert same(ex.rounded.astype(np.float64), brute_rounded(name, call, "value", None, "float32")).all()
        go = np.ones(d.output_shape(call.args, call.kwargs)) * 1.5
        for wrt in ("input", "target"):
            g = R.evaluate_grad(name, *call.args, grad_output=go, wrt=wrt, **call.kwargs)
            assert same(g.rounded.astype(np.float64), brute_rounded(name, call, f"grad:{wrt}", go, "float32")).all()
    run()
