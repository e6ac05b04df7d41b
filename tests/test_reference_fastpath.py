"""The fast certified elementwise path (issue 14 §2; docs/oracle.md, "Settling"): the float64
stage for formats of at most 24 bits, unreduced calls settled in row blocks, and the split stage
(an exact dyadic part plus a tail of known sign).  Each gives the answers of the previous path
(the same code with the three switched off) or settles strictly more, every newly settled element
checked against an independent formulation; the float64 functions it relies on are measured
against mpmath here, on this machine."""
from __future__ import annotations

import ctypes
import ctypes.util
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import reference as R
from reference import settle
from reference.audit import settle_brute
from reference.formats import get_format, round_mpf, ulp_of_value

BCEL = "binary_cross_entropy_with_logits"
TARGETS16 = np.array([0, 1, 0.5, 0.25, 2 ** -24, 1 - 2 ** -11, 0.75, 0.125], np.float16)


previous_path = settle.previous_path


def _grid(xs, ts):
    return np.repeat(xs, len(ts)), np.tile(ts, len(xs)).astype(xs.dtype)


def _float16_values(step=1, lim=None):
    x = np.arange(65536, dtype=np.uint16).view(np.float16)[::step]
    x = x[~np.isnan(x)]
    return x if lim is None else x[np.abs(x.astype(np.float64)) <= lim]


def _calls(loss, x, t, check, **kw):
    if check == "value":
        return R.evaluate(loss, x, t, reduction="none", **kw)
    return R.evaluate_grad(loss, x, t, grad_output=np.ones(x.shape, x.dtype), wrt=check, reduction="none", **kw)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def _compare(loss, args, check, **kw):
    """Fast vs previous path: the same rounding where both settle, no element undetermined that
    was settled before, and each newly settled one as the brute force decides it."""
    new = _calls(loss, *args, check, **kw)
    with previous_path():
        old = _calls(loss, *args, check, **kw)
    both = ~new.undetermined & ~old.undetermined
    a, b = (_bits(e.rounded)[both] for e in (new, old))  # bit patterns: the sign of a zero counts
    assert np.array_equal(a, b), (loss, check, np.flatnonzero(a != b)[:5])
    assert not np.any(new.undetermined & ~old.undetermined)
    gained = np.flatnonzero(old.undetermined & ~new.undetermined)
    if gained.size:
        sub = [np.asarray(a).reshape(-1)[gained[:8]] for a in args]
        wrt = None if check == "value" else check
        go = None if wrt is None else np.ones(len(sub[0]))
        brute = settle_brute(loss, sub, dict(kw, reduction="none"), args[0].dtype, grad_output=go, wrt=wrt)
        ok = brute.decided
        got = new.rounded.reshape(-1)[gained[:8]].astype(np.float64)[ok]
        assert np.array_equal(np.signbit(brute.rounded[ok]), np.signbit(got))
        assert np.array_equal(brute.rounded[ok], got)
    return new, old


# ------------------------------------------------------------------------ the float64 functions

def _ulps(got, want):
    """|got - want| in ulps of float64 at want (want an mpf)."""
    w = float(want)
    if w == 0 or not np.isfinite(w):
        return 0.0 if got == w else np.inf
    return float(abs(mpmath.mpf(got) - want) / mpmath.ldexp(1, int(np.frexp(abs(w))[1]) - 53))


def _samples(rng):
    f16 = _float16_values(step=23).astype(np.float64)
    f32 = rng.standard_normal(800).astype(np.float32).astype(np.float64) * 30
    f64 = np.concatenate([rng.uniform(-745, 709, 800), rng.standard_normal(800) * 2,
                          np.exp(rng.uniform(-40, 5, 400))])
    return np.concatenate([f16, f32, f64])


@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "tanh"])
def test_numpy_float64_functions_stay_within_the_float64_stages_ulps(name):
    """The float64 stage's U64 counts 4 ulp per function (NumPy's own SIMD/SVML code where it
    dispatches there; glibc's otherwise): measure the functions the kernels call on float16,
    float32-derived and random float64 arguments against mpmath at 120 bits."""
    x = _samples(np.random.default_rng(14))
    if name in ("log",):
        x = np.abs(x[x != 0])
    if name == "log1p":
        x = np.where(x > -1, x, np.abs(x))
    if name in ("exp", "expm1"):
        x = x[(x > -745) & (x < 709)]
    got = getattr(np, name)(x)
    f = getattr(mpmath, name)
    worst = 0.0
    with mpmath.workprec(120):
        for g, v in zip(got.tolist(), x.tolist()):
            want = f(mpmath.mpf(v))
            if abs(want) < mpmath.ldexp(1, -1022):  # subnormal results: absolute error, ABS64's job
                continue
            worst = max(worst, _ulps(g, want))
    assert worst <= settle.U64 / 2.0 ** -53, (name, worst)


# ------------------------------------------------------------------------- BCE with logits

@pytest.mark.parametrize("check", ["value", "input"])
def test_bcel_float16_sample_matches_the_previous_path(check):
    x, t = _grid(_float16_values(step=29, lim=60), TARGETS16)
    new, _ = _compare(BCEL, (x, t), check)
    assert not new.undetermined.any()
    # where every term underflows float64 (-e^-745.5 next to cond 0): the sign of a zero
    x, t = _grid(np.array([700, 745.5, 800, 3000, -745.5, -3000], np.float16), TARGETS16)
    new, _ = _compare(BCEL, (x, t), check)
    assert not new.undetermined.any()


@pytest.mark.parametrize("check", ["value", "input"])
def test_bcel_random_float32_matches_the_previous_path(check):
    rng = np.random.default_rng(3)
    n = 6000
    x = (rng.standard_normal(n) * np.exp(rng.uniform(-5, 5, n))).astype(np.float32)
    t = rng.choice(np.array([0, 1, 0.5, 0.25, 0.1, 2 ** -30], np.float32), n)
    w = rng.uniform(0.1, 3, n).astype(np.float32)
    _compare(BCEL, (x, t), check)
    _compare(BCEL, (x, t), check, weight=w, pos_weight=w[::-1].copy())


def _expected_with_tail(exact: Fraction, tail_sign: int, fmt):
    """The rounding of exact + tail for a tail of that sign far below 2^-200 |exact|: the side of
    a midpoint is the tail's (an independent formulation of what the split stage decides)."""
    e = mpmath.mpf(exact.numerator) / exact.denominator if exact else mpmath.mpf(0)
    with mpmath.workprec(400):
        e = mpmath.mpf(exact.numerator) / exact.denominator
        return round_mpf(e + tail_sign * abs(e) * mpmath.ldexp(1, -200) if e else e, fmt)


def test_split_settles_midpoints_next_to_tails_no_precision_sees():
    """l = (1 - y) x + log1p(e^-x) for x > 0: (1 - y) x is often a float16 midpoint and e^-x lies
    below 2^-16000 relative (beyond what the mpmath stage may afford; 2055 such elements of the
    exhaustive float16 sweep were undetermined): decided by the tail's sign."""
    xs = np.array([11376, 20000, 65504, -11376, -40000, -65472, 8000, 300], np.float16)
    x, t = _grid(xs, np.array([0.25, 0.75, 0.125, 1 - 2 ** -11], np.float16))
    fmt = get_format("float16")
    v = R.evaluate(BCEL, x, t, reduction="none")
    g = R.evaluate_grad(BCEL, x, t, grad_output=np.ones(x.shape, np.float16), reduction="none")
    assert not v.undetermined.any() and not g.undetermined.any()
    for xi, ti, rv, rg in zip(x.tolist(), t.tolist(), v.rounded.tolist(), g.rounded.tolist()):
        X, Y = Fraction(xi), Fraction(ti)
        dyadic = (1 - Y) * X if X > 0 else -Y * X  # value: the dyadic part; the tail is > 0
        assert rv == _expected_with_tail(dyadic, +1, fmt), (xi, ti)
        g_exact = (1 - Y) if X > 0 else -Y  # gradient: minus sign(x) times a positive tail
        assert rg == _expected_with_tail(g_exact, -1 if X > 0 else +1, fmt), (xi, ti)


def test_split_agrees_with_the_brute_force_where_it_can_decide():
    """Midpoints whose tail the brute force still sees (e^-x down to 2^-40000 relative)."""
    x, t = _grid(np.array([70, 200, 1500, -900], np.float16), np.array([0.25, 0.75], np.float16))
    for check in ("value", "input"):
        new = _calls(BCEL, x, t, check)
        wrt = None if check == "value" else "input"
        brute = settle_brute(BCEL, (x, t), {"reduction": "none"}, "float16",
                             grad_output=None if wrt is None else np.ones(x.shape), wrt=wrt)
        assert brute.decided.all() and not new.undetermined.any()
        got = new.rounded.astype(np.float64).reshape(-1)
        assert np.array_equal(brute.rounded, got) and np.array_equal(np.signbit(brute.rounded), np.signbit(got))


def test_split_decides_the_target_gradient_with_pos_weight():
    """d l / d y with pos_weight p is p max(-x, 0) - max(x, 0) + (p - 1) log1p(e^-|x|): at
    x = -1366, p = 3 the dyadic part 4098 is a float16 midpoint (4096 | 4100) next to a positive
    tail e^-1366, so the answer is 4100 (ties-to-even would say 4096); the exhaustive float16 sweep
    spent 16 s a grid point escalating such elements in mpmath before the split covered them."""
    xs = np.array([-1366, 1366, 11376, -20000, 65504, -65504, 300, -70], np.float16)
    x, t = _grid(xs, np.array([0.5, 0.25], np.float16))
    pw = np.full(x.shape, 3, np.float16)
    fmt = get_format("float16")
    g = R.evaluate_grad(BCEL, x, t, pos_weight=pw, grad_output=np.ones(x.shape, np.float16), wrt="target",
                        reduction="none")
    assert not g.undetermined.any()
    assert float(g.rounded[0]) == 4100.0
    for xi, rg in zip(x.tolist(), g.rounded.tolist()):
        X = Fraction(xi)
        dyadic = 3 * max(-X, 0) - max(X, 0)
        assert rg == _expected_with_tail(dyadic, +1, fmt), xi
    # where the brute force still sees the tail, it agrees (x = 300, -70)
    near = np.abs(x.astype(np.float64)) <= 300
    brute = settle_brute(BCEL, (x[near], t[near]), {"reduction": "none", "pos_weight": pw[near]}, "float16",
                         grad_output=np.ones(int(near.sum())), wrt="target")
    assert brute.decided.all()
    assert np.array_equal(brute.rounded, g.rounded[near].astype(np.float64))


def test_row_blocks_give_the_answers_of_one_block():
    x, t = _grid(_float16_values(step=3, lim=100), TARGETS16)
    assert x.size > 2 * settle.CHUNK_ROWS
    calls, inner = [], settle._settle

    def spy(ev, fmt, f64_only=False):
        calls.append((ev.p.m, f64_only))
        return inner(ev, fmt, f64_only)

    settle._settle = spy
    try:
        got = [R.evaluate(BCEL, x, t, reduction="none"),
               R.evaluate_grad(BCEL, x, t, grad_output=np.ones(x.shape, np.float16), reduction="none")]
    finally:
        settle._settle = inner
    # blocks take the float64 stage only; the rows they left (split midpoints, tiny values) are
    # settled together in one later call per evaluation
    assert [f for _, f in calls].count(False) == 2 and all(f for m, f in calls if m == settle.CHUNK_ROWS)
    saved = settle.CHUNK_ROWS
    settle.CHUNK_ROWS = 1 << 60
    try:
        want = [R.evaluate(BCEL, x, t, reduction="none"),
                R.evaluate_grad(BCEL, x, t, grad_output=np.ones(x.shape, np.float16), reduction="none")]
    finally:
        settle.CHUNK_ROWS = saved
    for a, b in zip(got, want):
        assert np.array_equal(a.rounded.view(np.uint16), b.rounded.view(np.uint16))
        assert np.array_equal(a.undetermined, b.undetermined)
        assert np.array_equal(a.cond, b.cond) and np.array_equal(a.scale, b.scale)
        assert np.array_equal(*(np.asarray(e.hilo()[0]) for e in (a, b)), equal_nan=True)


def test_float64_stage_values_are_right_to_a_thousandth_of_an_ulp():
    """Stored values of the float64 stage (the pair (v, 0)) are within FIGURE_ULP of an ulp of the
    exact value, against the brute force at 300 bits."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(400) * 8).astype(np.float32)
    t = rng.uniform(0, 1, 400).astype(np.float32)
    for wrt in (None, "input"):
        ex = (R.evaluate(BCEL, x, t, reduction="none") if wrt is None else
              R.evaluate_grad(BCEL, x, t, grad_output=np.ones(400, np.float32), reduction="none"))
        with mpmath.workprec(300):
            brute = R.registry.get(BCEL).brute((x, t), {"reduction": "none"},
                                               grad_output=None if wrt is None else np.ones(400), wrt=wrt)
            hi, lo = ex.hilo()
            ulp = ulp_of_value(ex.rounded.astype(np.float64), "float32")
            err = [float(abs(mpmath.mpf(h) + mpmath.mpf(l_) - b)) for h, l_, b in zip(hi, lo, brute)]
        assert np.all(np.asarray(err) <= settle.FIGURE_ULP * ulp)


# ------------------------------------------------------------------------- the other elementwise losses

def _other_calls():
    rng = np.random.default_rng(11)
    h = _float16_values(step=53, lim=200)
    p16 = _float16_values(step=7)
    p16 = p16[(p16 >= 0) & (p16 <= 1)]
    f32 = (rng.standard_normal(3000) * np.exp(rng.uniform(-4, 4, 3000))).astype(np.float32)
    u32 = rng.uniform(0, 1, 3000).astype(np.float32)
    t16 = np.array([0, 1, 0.5, 0.25, 3, -2], np.float16)
    out = []
    for loss, kw in (("l1_loss", {}), ("mse_loss", {}), ("huber_loss", {"delta": 0.5}),
                     ("smooth_l1_loss", {"beta": 2.0}), ("sigmoid_focal_loss", {}),
                     ("sigmoid_focal_loss", {"alpha": -1.0, "gamma": 0.5})):
        tt = TARGETS16 if loss == "sigmoid_focal_loss" else t16
        out.append((loss, _grid(h, tt), kw))
        out.append((loss, (f32, u32 if loss == "sigmoid_focal_loss" else f32[::-1].copy()), kw))
    out.append(("binary_cross_entropy", _grid(p16, TARGETS16), {}))
    out.append(("binary_cross_entropy", (u32, rng.uniform(0, 1, 3000).astype(np.float32)), {}))
    pos = _float16_values(step=41, lim=100)
    out.append(("poisson_nll_loss", _grid(pos, np.array([0, 1, 2.5, 7], np.float16)), {}))
    out.append(("poisson_nll_loss", _grid(np.abs(pos), np.array([0, 1, 2.5, 7], np.float16)),
                {"log_input": False, "full": True}))
    return out


@pytest.mark.parametrize("loss,args,kw", _other_calls(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_other_elementwise_losses_match_the_previous_path(loss, args, kw):
    for check in ("value", "input"):
        _compare(loss, args, check, **kw)


# ------------------------------------------------------------------------- immunity

def test_the_fast_path_is_immune_to_the_callers_floating_point_state():
    """FTZ, rounding upward and mpmath.mp.prec = 8 in the caller change no answer of the float64,
    block and split stages (fpu.oracle_state covers them: they run inside evaluate)."""
    import torch

    x, t = _grid(np.concatenate([_float16_values(step=13, lim=30),
                                 np.array([11376, -11376, 2e-7, -65504], np.float16)]), TARGETS16)

    def answers():
        out = [R.evaluate(BCEL, x, t, reduction="none"),
               R.evaluate_grad(BCEL, x, t, grad_output=np.ones(x.shape, np.float16), reduction="none")]
        return [(e.rounded.view(np.uint16).tolist(), e.undetermined.tolist()) for e in out]

    clean = answers()
    old = mpmath.mp.prec
    try:
        mpmath.mp.prec = 8
        assert answers() == clean
    finally:
        mpmath.mp.prec = old
    if torch.set_flush_denormal(True):
        try:
            assert answers() == clean
        finally:
            torch.set_flush_denormal(False)
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    before = libm.fegetround()
    if libm.fesetround(0x800) == 0:  # x86 FE_UPWARD
        try:
            got = answers()
        finally:
            libm.fesetround(before)
        assert got == clean


@pytest.mark.parametrize("loss", [BCEL, "mse_loss", "smooth_l1_loss", "sigmoid_focal_loss"])
def test_bfloat16_sample_matches_the_previous_path(loss):
    """bfloat16 (8 bits, rounded by float32-to-odd in the float64 stage) on every 37th value."""
    import ml_dtypes

    x = np.arange(65536, dtype=np.uint16).view(ml_dtypes.bfloat16)[::37]
    with np.errstate(invalid="ignore"):  # NaN patterns
        x = x[np.abs(x.astype(np.float32)) <= 300]
    t = np.array([0, 1, 0.25, 0.75], ml_dtypes.bfloat16)
    for check in ("value", "input"):
        _compare(loss, _grid(x, t), check)


# ------------------------------------------------------------------ bfloat16's extreme logits

def _bf16(values):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    return np.array(values, ml_dtypes.bfloat16)


def test_split_decides_huge_bfloat16_logits_from_exponents():
    """bfloat16 reaches 3.4e38: the value p y max(-x, 0) + (1 - y) max(x, 0) + (p y + 1 - y)
    log1p(e^-|x|) at x = -3e38 has a tail e^-3e38, whose exact sum with the dyadic part would be an
    integer of 4e38 bits (OverflowError; at x = -1e10 a 1.4e10-bit integer).  The tail lies below
    the grid of the dyadic part and of every rounding boundary, so the tail's sign decides: the
    answers must be those of the independent formulation (dyadic part + a tail of that sign),
    +inf where the dyadic part already rounds past the overflow threshold."""
    xs = _bf16([-3e38, 3e38, -1e10, 1e10, -1e20, 1e20, -2.5e38, -1.7e38, -65536, 1e6])
    x, t = _grid(xs, _bf16([0.5, 0.25, 0.75]))
    pw = np.full(x.shape, 3, x.dtype)
    fmt = get_format("bfloat16")
    v = R.evaluate(BCEL, x, t, pos_weight=pw, reduction="none")
    g = R.evaluate_grad(BCEL, x, t, pos_weight=pw, grad_output=np.ones(x.shape, x.dtype), wrt="target",
                        reduction="none")
    assert not v.undetermined.any() and not g.undetermined.any()
    for xi, ti, rv, rg in zip(x.astype(np.float64).tolist(), t.astype(np.float64).tolist(),
                              v.rounded.tolist(), g.rounded.tolist()):
        X, Y = Fraction(xi), Fraction(ti)
        assert rv == _expected_with_tail(3 * Y * max(-X, 0) + (1 - Y) * max(X, 0), +1, fmt), (xi, ti)
        assert rg == _expected_with_tail(3 * max(-X, 0) - max(X, 0), +1, fmt), (xi, ti)
    assert np.isinf(v.rounded[0]) and v.rounded[0] > 0  # 1.5 * 3e38 rounds past bfloat16's max


def test_split_decides_tiny_bfloat16_logits_without_mpmath_escalation():
    """d l / d x = g [(1 - y) sigmoid(x) - p y sigmoid(-x)] ~ x/4 at tiny x where p y = 1 - y
    (target 1/2; target 1/4 with pos_weight 3): the split writes it as a dyadic (1 - y) x / 2 minus
    a tail (1 - y)(x/2 - tanh(x/2)) > 0 (|x| < 1).  At x = 6 * 2^-133 the dyadic part 1.5 * 2^-133
    is a bfloat16 midpoint (the answer is 2^-133, ties-to-even would say 2^-132).  Checked against
    mpmath at 2000 bits on the sigmoid formula (an independent formulation), and with no element
    left to the mpmath stage."""
    sub = 2.0 ** -133
    xs = _bf16([6 * sub, -6 * sub, sub, 2 * sub, 4 * sub, 1e-39, 3e-30, -7e-20, 1e-5, -0.3, 0.99, -0.999, 0.0])
    fmt = get_format("bfloat16")
    for y0, pw in ((0.5, None), (0.25, 3.0), (0.75, None), (0.25, None)):
        t = np.full(xs.shape, y0, xs.dtype)
        kw = {} if pw is None else {"pos_weight": np.full(xs.shape, pw, xs.dtype)}
        left = []
        saved = settle._split_stage

        def split_then_count(ev, f, todo, values, rounded, done, saved=saved, left=left):
            saved(ev, f, todo, values, rounded, done)
            left.append(int((~done).sum()))

        settle._split_stage = split_then_count
        try:
            g = R.evaluate_grad(BCEL, xs, t, grad_output=np.ones(xs.shape, xs.dtype), wrt="input",
                                reduction="none", **kw)
        finally:
            settle._split_stage = saved
        assert not g.undetermined.any() and sum(left) == 0, (y0, pw, left)
        with mpmath.workprec(2000):
            Y, P = mpmath.mpf(y0), mpmath.mpf(1 if pw is None else pw)
            for xi, r in zip(xs.astype(np.float64).tolist(), g.rounded.tolist()):
                X = mpmath.mpf(xi)
                want = round_mpf((1 - Y) / (1 + mpmath.exp(-X)) - P * Y / (1 + mpmath.exp(X)), fmt)
                assert r == want or (r == 0 and want == 0), (y0, pw, xi, r, want)
    t = np.full(xs.shape, 0.5, xs.dtype)
    g = R.evaluate_grad(BCEL, xs, t, grad_output=np.ones(xs.shape, xs.dtype), wrt="input", reduction="none")
    assert float(g.rounded[0]) == sub and float(g.rounded[1]) == -sub
