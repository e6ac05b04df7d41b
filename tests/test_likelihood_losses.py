"""poisson_nll_loss and gaussian_nll_loss: semantics against torch in float64 (values and every
gradient, all reductions and options, edges, refusals), the oracle against the modules' brute forces
at high precision on every case family, the careful NumPy implementation, the strategies."""
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

PO = get("poisson_nll_loss")
GA = get("gaussian_nll_loss")
SIZE = types.SimpleNamespace(name="test", batch=2, repeats=1)
REDUCTIONS = ("none", "sum", "mean")
U = 2.0 ** -53


def same(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _torch(loss, args, kw, go):
    ts = [torch.from_numpy(np.array(a)).requires_grad_() for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(F, loss)(*ts, **kw)
    out.backward(torch.from_numpy(np.array(go)))
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def _check_vs_torch(loss, args, kw, rng, ulps=None):
    d = get(loss)
    go = rng.uniform(0.25, 2.0, d.output_shape(args, kw))
    tv, tgrads = _torch(loss, args, kw, go)
    ex = R.evaluate(loss, *args, **kw)
    assert ex.rounded.shape == np.shape(tv)
    with np.errstate(invalid="ignore"):
        err = np.abs(ex.rounded.astype(float) - tv)
    ok = same(ex.rounded, tv) | (err <= 64 * U * ex.cond + 1e-300)
    assert ok.all(), (loss, kw, ex.rounded, tv, ex.cond)
    names = d.differentiable_for(args, kw)
    assert names == tuple(a.name for a in d.positional)
    for wrt, tg in zip(names, tgrads):
        g = R.evaluate_grad(loss, *args, grad_output=go, wrt=wrt, **kw)
        assert g.rounded.shape == tg.shape, (wrt, g.rounded.shape, tg.shape)
        with np.errstate(invalid="ignore"):
            err = np.abs(g.rounded.astype(float) - tg)
        ok = same(g.rounded, tg) | (err <= 64 * U * g.cond + 1e-300)
        assert ok.all(), (loss, kw, wrt, g.rounded, tg, g.cond)


# ------------------------------------------------------------------------------ registration

def test_registered():
    assert {"poisson_nll_loss", "gaussian_nll_loss"} <= set(R.LOSSES)
    assert PO.checks == ("value", "grad:input", "grad:target")
    assert GA.checks == ("value", "grad:input", "grad:target", "grad:var")
    assert set(PO.families) >= {"poisson.random", "poisson.magnitudes", "poisson.stirling",
                                "poisson.zero_counts", "poisson.eps"}
    assert set(GA.families) >= {"gaussian.random", "gaussian.var_eps", "gaussian.magnitudes"}
    x = np.zeros(2)
    assert PO.option_family((x, x), {}) == "plain"
    assert PO.option_family((x, x), {"full": True}) == "full"
    assert PO.option_family((x, x), {"log_input": False}) == "rate"
    assert PO.option_family((x, x), {"log_input": False, "full": True}) == "rate+full"
    assert GA.option_family((x, x, x), {"full": True}) == "full"


# ------------------------------------------------------------------------------ vs torch, float64

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_against_torch(reduction, log_input, full):
    rng = np.random.default_rng(hash((reduction, log_input, full)) % 2**32)
    for shape in [(3, 4), (2, 3, 2), (5,), ()]:
        z = rng.normal(0, 1.5, shape)
        x = z if log_input else np.exp(z)
        y = np.asarray(rng.poisson(np.exp(z)) + (1.0 if full else 0.0), np.float64)
        if shape:
            y.reshape(-1)[0] = 1.0  # the Stirling edge: masked
        kw = {"reduction": reduction, "log_input": log_input, "full": full}
        _check_vs_torch("poisson_nll_loss", (x, y), kw, rng)
        _check_vs_torch("poisson_nll_loss", (x, y), {**kw, "eps": 0.25}, rng)


def test_poisson_stirling_edges_against_torch():
    rng = np.random.default_rng(5)
    y = np.array([1.0, np.nextafter(1.0, 2.0), 0.5, 2.0, 3.0, 1e6])
    for li in (True, False):
        x = rng.normal(0, 1, y.shape)
        x = x if li else np.exp(x)
        for red in REDUCTIONS:
            _check_vs_torch("poisson_nll_loss", (x, y), {"reduction": red, "log_input": li, "full": True}, rng)


def test_poisson_eps_edges_against_torch():
    rng = np.random.default_rng(6)
    x = np.array([0.0, 5e-324, 1e-300, 1e-9, 0.25, 3.0])
    y = np.array([2.0, 1.0, 3.0, 1.0, 1.0, 4.0])
    for eps in (1e-8, 1e-3, 0.0):
        for red in REDUCTIONS:
            _check_vs_torch("poisson_nll_loss", (x, y), {"reduction": red, "log_input": False, "eps": eps}, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_against_torch(reduction, full):
    rng = np.random.default_rng(hash((reduction, full, "g")) % 2**32)
    for shape, vshape in [((3, 4), (3, 4)), ((3, 4), (3,)), ((3, 4), (3, 1)), ((2, 3, 2), (2, 1, 2)),
                          ((2, 3, 2), (2, 3)), ((5,), ()), ((5,), (1,)), ((), ())]:
        x, y = rng.normal(0, 2, shape), rng.normal(0, 2, shape)
        v = np.exp(rng.uniform(-3, 3, vshape))
        kw = {"reduction": reduction, "full": full}
        _check_vs_torch("gaussian_nll_loss", (x, y, v), kw, rng)


def test_gaussian_var_below_at_above_eps_against_torch():
    """The clamp under no_grad: v = max(var, eps), and grad:var at the clamped v (not 0)."""
    rng = np.random.default_rng(8)
    for eps in (1e-6, 1e-3, 0.25):
        v = np.array([0.0, 5e-324, eps / 4, eps, np.nextafter(eps, 1.0), np.nextafter(eps, 0.0), 1.0, 4.0])
        x, y = rng.normal(0, 1, v.shape), rng.normal(0, 1, v.shape)
        for red in REDUCTIONS:
            _check_vs_torch("gaussian_nll_loss", (x, y, v), {"reduction": red, "eps": eps}, rng)
    x, y, v = np.array([1.0]), np.array([0.0]), np.array([1e-7])
    gv = R.evaluate_grad("gaussian_nll_loss", x, y, v, wrt="var", reduction="sum").rounded
    assert gv[0] == pytest.approx(0.5 * (1 / 1e-6 - 1 / 1e-6**2), rel=1e-15)  # not 0: at the clamped v


def test_gaussian_eps_is_clamped_in_var_dtype():
    """float16: clamp_(min=1e-6) clamps at float16(1e-6) = 1.013e-6."""
    x = np.array([1.0], np.float16)
    y = np.array([0.0], np.float16)
    v = np.array([0.0], np.float16)
    e = float(np.float16(1e-6))
    want = 0.5 * (math.log(e) + 1 / e)
    got = float(R.gaussian_nll_loss(x, y, v, reduction="sum", out_dtype="float64")[()])
    assert got == pytest.approx(want, rel=1e-15)
    v32 = np.array([0.0, 1e-6], np.float32)
    t = F.gaussian_nll_loss(torch.tensor([1.0, 1.0]), torch.zeros(2), torch.from_numpy(v32), reduction="none")
    ex = R.evaluate("gaussian_nll_loss", np.ones(2, np.float32), np.zeros(2, np.float32), v32, reduction="none")
    assert np.all(ex.rounded == t.numpy())


# ------------------------------------------------------------------------------ semantics the oracle fixes

def test_poisson_masked_stirling_gradient_is_zero_where_torch_gives_nan():
    x, y = np.array([0.5, 0.5, 0.5, 0.5]), np.array([0.0, -1.0, 0.5, 1.0])
    g = R.evaluate_grad("poisson_nll_loss", x, y, wrt="target", reduction="none", full=True).rounded
    assert np.all(g == -0.5)
    _, (_, tg) = _torch("poisson_nll_loss", (x, y), {"reduction": "none", "full": True}, np.ones(4))
    assert np.isnan(tg[:2]).all() and np.all(tg[2:] == -0.5)  # the documented torch deviation
    v = R.evaluate("poisson_nll_loss", x, y, reduction="none", full=True).rounded
    assert np.all(v == np.exp(0.5) - 0.5 * y)


def test_poisson_ieee_specials_as_torch():
    kw = {"reduction": "none"}
    x = np.array([np.inf, np.inf, -np.inf, np.nan, 0.0])
    y = np.array([0.0, 2.0, 1.0, 1.0, np.inf])
    tv, (tx, ty) = _torch("poisson_nll_loss", (x, y), kw, np.ones(5))
    ex = R.evaluate("poisson_nll_loss", x, y, **kw)
    assert same(ex.rounded, tv).all(), (ex.rounded, tv)
    for wrt, tg in (("input", tx), ("target", ty)):
        assert same(R.evaluate_grad("poisson_nll_loss", x, y, wrt=wrt, **kw).rounded, tg).all()
    # x + eps = 0 without log_input
    x, y = np.array([-1e-8, -1e-8]), np.array([0.0, 2.0])
    kw = {"reduction": "none", "log_input": False}
    tv, (tx, ty) = _torch("poisson_nll_loss", (x, y), kw, np.ones(2))
    assert same(R.evaluate("poisson_nll_loss", x, y, **kw).rounded, tv).all()
    assert same(R.evaluate_grad("poisson_nll_loss", x, y, wrt="input", **kw).rounded, tx).all()


def test_exact_midpoint_gradients():
    """Dyadic gradients on float32 rounding midpoints are decided by the exact path."""
    x = np.array([1 + 2.0**-23], np.float32)
    go = np.array([1.5], np.float32)  # -x g = -(1.5 + 1.5 * 2^-23): a float32 midpoint
    g = R.evaluate_grad("poisson_nll_loss", x, np.array([1.0], np.float32), grad_output=go, wrt="target",
                        reduction="none")
    assert not g.undetermined.any()
    assert g.rounded[0] == np.float32(-(1.5 + 2.0**-22))  # half-even
    v = np.array([1.0], np.float32)
    g = R.evaluate_grad("gaussian_nll_loss", x, np.zeros(1, np.float32), v, grad_output=go, wrt="input",
                        reduction="none")
    assert not g.undetermined.any() and g.rounded[0] == np.float32(1.5 + 2.0**-22)


# ------------------------------------------------------------------------------ refusals

def _both_refuse(loss, args, kw, match):
    with pytest.raises(ValueError, match=match):
        get(loss).validate(args, kw)
    with pytest.raises((ValueError, RuntimeError)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(F, loss)(*[torch.from_numpy(np.array(a)) for a in args], **kw)


def test_refusals_match_torch():
    x = np.zeros((2, 3))
    _both_refuse("gaussian_nll_loss", (x, x, -np.ones((2, 3))), {}, r"^var: var has negative")
    for vshape in [(3,), (), (2, 3, 1), (1, 1), (2, 2), (0, 1)]:
        _both_refuse("gaussian_nll_loss", (x, x, np.ones(vshape)), {}, r"^var: ")
    _both_refuse("gaussian_nll_loss", (x, x, np.ones((2, 3))), {"reduction": "median"}, r"^reduction: ")
    _both_refuse("gaussian_nll_loss", (x, np.zeros((3, 2)), np.ones((2, 3))), {}, r"^target: ")
    _both_refuse("poisson_nll_loss", (x, np.zeros((3, 2))), {}, r"^target: ")
    _both_refuse("poisson_nll_loss", (x, x), {"reduction": "median"}, r"^reduction: ")
    for vshape in [(2, 3), (2,), (2, 1), (1, 3)]:
        GA.validate((x, x, np.ones(vshape)), {})
        F.gaussian_nll_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(vshape))


def test_invalid_options():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^log_input: "):
        R.poisson_nll_loss(x, x, log_input="yes")
    with pytest.raises(ValueError, match=r"^full: "):
        R.poisson_nll_loss(x, x, full=1)
    with pytest.raises(ValueError, match=r"^eps: "):
        R.poisson_nll_loss(x, x, eps="small")
    with pytest.raises(ValueError, match=r"^eps: "):
        R.gaussian_nll_loss(x, x, x, eps=float("nan"))
    with pytest.raises(ValueError, match=r"^var: "):
        R.gaussian_nll_loss(x, x, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"^target: "):
        R.poisson_nll_loss(x, np.zeros((2, 3), np.float32))


# ------------------------------------------------------------------------------ brute force

def _span(*arrays) -> int:
    """Bits between the largest and the smallest nonzero finite magnitude (1 included)."""
    exps = [0]
    for a in arrays:
        for v in np.asarray(a, np.float64).reshape(-1).tolist():
            if v != 0 and math.isfinite(v):
                exps.append(math.frexp(v)[1])
    return max(exps) - min(exps)


def _brute_rounded(d, call, wrt, go, dtype):
    """The brute force at two precisions beyond twice the inputs' exponent span (x + eps and the
    products exact), which must round alike."""
    span = _span(*call.args, call.kwargs.get("eps", 1.0), 1.0 if go is None else go)
    outs = []
    for prec in (1000, 2000):
        with mpmath.workprec(prec + 4 * span):
            b = d.brute(call.args, call.kwargs, grad_output=go, wrt=wrt)
        outs.append(np.array([round_mpf(v, dtype) for v in b.reshape(-1)]).reshape(b.shape))
    assert same(*outs).all(), "brute force did not settle"
    return outs[1]


def _family_calls():
    out = []
    for d in (PO, GA):
        for fam in sorted(d.families):
            for dt in R.DTYPES:
                calls = d.families[fam].fn(np.random.default_rng(12345), dt, SIZE)
                assert calls, (fam, dt)
                out.append((d.name, fam, dt, calls))
    return out


FAMILY_CALLS = _family_calls()


@pytest.mark.parametrize("loss,fam,dtype,calls", FAMILY_CALLS, ids=[f"{f}-{d}" for _, f, d, _ in FAMILY_CALLS])
def test_families_match_brute_force(loss, fam, dtype, calls):
    d = get(loss)
    rng = np.random.default_rng(7)
    for k, call in enumerate(calls):
        assert all(a.dtype == R.FORMATS[dtype].np_dtype for a in call.args)
        d.validate(call.args, call.kwargs)
        ex = R.evaluate(loss, *call.args, **call.kwargs)
        assert not ex.undetermined.any(), (fam, dtype, k)
        assert ex.rounded.shape == d.output_shape(call.args, call.kwargs)
        want = _brute_rounded(d, call, None, None, dtype)
        assert same(ex.rounded, want).all(), (fam, dtype, k, "value", ex.rounded, want)
        go = draw_grad_output(rng, d.output_shape(call.args, call.kwargs), dtype).astype(np.float64)
        for wrt in d.differentiable_for(call.args, call.kwargs):
            g = R.evaluate_grad(loss, *call.args, grad_output=go, wrt=wrt, **call.kwargs)
            assert not g.undetermined.any(), (fam, dtype, k, wrt)
            assert g.rounded.shape == d.arg_shape(wrt, call.args, call.kwargs)
            want = _brute_rounded(d, call, wrt, go, dtype)
            assert same(g.rounded, want).all(), (fam, dtype, k, wrt, g.rounded, want)


# ------------------------------------------------------------------------------ NumPy implementation

def _careful():
    try:
        from harness.backends.numpy_numerics import CAREFUL
        return CAREFUL
    except Exception:  # noqa: BLE001 - load the file on its own when the harness cannot import
        path = Path(__file__).resolve().parents[1] / "harness" / "backends" / "numpy_numerics.py"
        src = path.read_text().replace("from .dtypes import BFLOAT16, NUMPY_DTYPES",
                                       "BFLOAT16 = NUMPY_DTYPES = None")
        mod = types.ModuleType("_lik_numpy_numerics")
        exec(compile(src, str(path), "exec"), mod.__dict__)  # noqa: S102
        return mod.Careful()


def _ulps(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        return np.where(same(a, b), 0.0, np.abs(a - b) / np.spacing(np.maximum(np.abs(a), np.abs(b))))


@pytest.mark.parametrize("d", [PO, GA], ids=lambda d: d.name)
def test_numpy_careful_matches_oracle_float64(d):
    nx = _careful()
    rng = np.random.default_rng(3)
    for fam in d.families:
        for call in d.families[fam].fn(rng, "float64", SIZE):
            ex = R.evaluate(d.name, *call.args, **call.kwargs)
            got = np.asarray(d.numpy_value(nx, *call.args, **call.kwargs), np.float64)
            want = ex.rounded.astype(np.float64)
            assert got.shape == want.shape
            with np.errstate(invalid="ignore"):
                ok = (_ulps(got, want) <= 4) | (np.abs(got - want) <= 8 * U * ex.cond)
            assert ok.all(), (fam, call.kwargs, got, want)
            go = draw_grad_output(rng, d.output_shape(call.args, call.kwargs), "float64")
            grads = d.numpy_grads(nx, *call.args, grad_output=go, **call.kwargs)
            assert set(grads) == set(d.differentiable)
            for wrt in d.differentiable:
                w = R.evaluate_grad(d.name, *call.args, grad_output=go, wrt=wrt, **call.kwargs)
                assert grads[wrt].shape == w.rounded.shape
                with np.errstate(invalid="ignore"):
                    ok = (_ulps(grads[wrt], w.rounded) <= 4) | (np.abs(grads[wrt] - w.rounded) <= 16 * U * w.cond)
                assert ok.all(), (fam, call.kwargs, wrt, grads[wrt], w.rounded)


# ------------------------------------------------------------------------------ strategies

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PO.strategy(dtype="float32"))
def test_poisson_strategy_matches_brute_force(call):
    PO.validate(call.args, call.kwargs)
    assert PO.option_family(call.args, call.kwargs) in PO.option_families
    ex = R.evaluate("poisson_nll_loss", *call.args, **call.kwargs)
    assert not ex.undetermined.any()
    assert same(ex.rounded, _brute_rounded(PO, call, None, None, "float32")).all()
    go = np.full(PO.output_shape(call.args, call.kwargs), 1.5)
    for wrt in ("input", "target"):
        g = R.evaluate_grad("poisson_nll_loss", *call.args, grad_output=go, wrt=wrt, **call.kwargs)
        assert same(g.rounded, _brute_rounded(PO, call, wrt, go, "float32")).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(GA.strategy(dtype="float32"))
def test_gaussian_strategy_matches_brute_force(call):
    GA.validate(call.args, call.kwargs)
    ex = R.evaluate("gaussian_nll_loss", *call.args, **call.kwargs)
    assert not ex.undetermined.any()
    assert same(ex.rounded, _brute_rounded(GA, call, None, None, "float32")).all()
    go = np.full(GA.output_shape(call.args, call.kwargs), 1.5)
    for wrt in ("input", "target", "var"):
        g = R.evaluate_grad("gaussian_nll_loss", *call.args, grad_output=go, wrt=wrt, **call.kwargs)
        assert same(g.rounded, _brute_rounded(GA, call, wrt, go, "float32")).all()


def test_strategies_refuse_unknown_options():
    for d in (PO, GA):
        with pytest.raises(ValueError, match="dtype"):
            d.strategy(dtype="int8")
        with pytest.raises(ValueError, match="reduction"):
            d.strategy(reductions=("median",))
