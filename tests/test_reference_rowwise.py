"""The row-wise stage of a reduced value (reference/settle.py, ``_reduced_rows_stage``): a sum or
mean that the vectorised stages leave is settled from its rows, each evaluated once at the
precision its share of the error budget needs, and an escalation re-evaluates only the rows whose
errors are still too large.  Every answer here is also checked against an independent evaluation
at a precision far beyond the one the stage used."""
import mpmath
import numpy as np
import pytest

import reference as R
from reference import settle
from reference.numerics import forget
from reference.settle import Evaluation


@pytest.fixture
def mp_calls(monkeypatch):
    """Every mpmath evaluation of rows the stage makes: (precision, row indices)."""
    calls = []
    orig = Evaluation.row_values

    def spy(self, ns, idx=None):
        if ns is settle.MP:
            calls.append((mpmath.mp.prec, None if idx is None else np.asarray(idx).tolist()))
        return orig(self, ns, idx)

    monkeypatch.setattr(Evaluation, "row_values", spy)
    forget()
    return calls


def cancelling(n_half=32, classes=4, seed=0, scale=None, shuffle=False):
    """Probability-target cross-entropy rows and their negated twins: the sum is exactly 0.
    ``shuffle`` puts the twins in another order, so float sums do not cancel symmetrically."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_half, classes))
    if scale is not None:
        x = x * scale[:, None]
    p = rng.dirichlet(np.ones(classes), n_half)
    perm = rng.permutation(n_half) if shuffle else np.arange(n_half)
    return np.concatenate([x, x[perm]]), np.concatenate([p, -p[perm]])


def brute_sum(x, p, prec=3000):
    """sum_n -sum_c p_nc log_softmax(x_n)_c at ``prec`` bits, independently of the kernels."""
    with mpmath.workprec(prec):
        tot = mpmath.mpf(0)
        for row, q in zip(x.tolist(), p.tolist()):
            r = [mpmath.mpf(v) for v in row]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in r))
            tot += -mpmath.fsum(mpmath.mpf(qc) * (v - lse) for qc, v in zip(q, r))
        return tot


def test_an_exactly_cancelling_sum_evaluates_each_row_once(mp_calls):
    x, p = cancelling()
    ex = R.evaluate("cross_entropy", x, p, reduction="sum")
    assert not ex.undetermined and ex.rounded == 0.0
    assert abs(brute_sum(x, p)) < mpmath.mpf(2) ** -2000  # the exact sum is 0
    rows = [i for _, idx in mp_calls for i in idx]
    assert sorted(rows) == list(range(len(x)))  # every row once, none twice
    # at the precision the cancellation needs: the enclosure fits float64's zero-rounding range
    assert all(1075 < prec < 1300 for prec, _ in mp_calls)


def test_each_row_gets_the_precision_its_share_needs(mp_calls):
    # two twin pairs with logits 2^40 times larger carry conditions 2^40 times larger: only they
    # need the extra bits
    scale = np.ones(32)
    scale[:2] = 2.0 ** 40
    x, p = cancelling(scale=scale)
    ex = R.evaluate("cross_entropy", x, p, reduction="sum")
    assert not ex.undetermined and ex.rounded == 0.0
    prec_of = {i: prec for prec, idx in mp_calls for i in idx}
    assert sorted(prec_of) == list(range(len(x)))
    big = [prec_of[i] for i in (0, 1, 32, 33)]
    small = [prec_of[i] for i in prec_of if i not in (0, 1, 32, 33)]
    assert min(big) >= max(small) + 32


def test_a_mean_below_the_float_stages_reach_settles_to_the_brute_force_value(mp_calls):
    # the twins cancel exactly; one more row's loss is log(1 + e^-700) ~ 1e-304, far below what
    # the float stages resolve next to the twins' terms: the twins need some 1100 bits, the tiny
    # row (its condition as tiny as its value) far fewer, and each is evaluated once
    x, p = cancelling(n_half=8, shuffle=True)
    x = np.concatenate([x, [[0.0, -700.0, -700.0, -700.0]]])
    p = np.concatenate([p, [[1.0, 0.0, 0.0, 0.0]]])
    ex = R.evaluate("cross_entropy", x, p, reduction="mean")
    with mpmath.workprec(3000):
        exact = brute_sum(x, p) / len(x)
    assert 1e-306 < exact < 1e-304
    assert not ex.undetermined
    assert ex.rounded == float(exact)  # float(mpf) rounds to nearest, ties to even
    prec_of = {}
    for prec, idx in mp_calls:
        for i in idx:
            assert i not in prec_of
            prec_of[i] = prec
    assert sorted(prec_of) == list(range(17)) and prec_of[16] < min(prec_of[i] for i in range(16))


def test_escalation_re_evaluates_only_the_rows_above_their_share(monkeypatch, mp_calls):
    # a first target far too coarse (the guard bits made negative) forces an escalation; rows
    # whose targets are all zero have no terms, error 0, and are never evaluated again
    monkeypatch.setattr(settle, "GUARD", -900)
    x, p = cancelling(n_half=16, seed=3, shuffle=True)  # float sums leave a nonzero estimate
    zx = np.random.default_rng(4).standard_normal((4, 4))
    x, p = np.concatenate([zx, x]), np.concatenate([np.zeros((4, 4)), p])  # 4 rows without terms
    ex = R.evaluate("cross_entropy", x, p, reduction="sum")
    assert not ex.undetermined and ex.rounded == 0.0
    passes = {}
    for prec, idx in mp_calls:
        for i in idx:
            passes[i] = passes.get(i, 0) + 1
    assert sorted(passes) == list(range(36))
    assert max(passes.values()) >= 2  # it escalated
    assert all(passes[i] == 1 for i in range(4))  # exactly 0 from the start: never again


def test_needs_more_keeps_rows_whose_errors_fit_the_new_radius():
    from mpmath import libmp
    errs = [libmp.from_man_exp(1, -100)] * 10 + [libmp.from_man_exp(1, -10)]
    tot = libmp.fzero
    for e in errs:
        tot = libmp.mpf_add(tot, e, 64, libmp.round_up)
    more = settle._needs_more(errs, tot)
    assert more.tolist() == [False] * 10 + [True]


def test_the_caller_s_mpmath_precision_does_not_reach_the_row_wise_stage(mp_calls):
    x, p = cancelling(n_half=8)
    p[8:] *= 1 - 2.0 ** -30
    want = R.evaluate("cross_entropy", x, p, reduction="mean")
    forget()
    old = mpmath.mp.prec
    mpmath.mp.prec = 8
    try:
        got = R.evaluate("cross_entropy", x, p, reduction="mean")
    finally:
        mpmath.mp.prec = old
    assert got.rounded == want.rounded and not got.undetermined


def test_a_sum_past_the_overflow_threshold_rounds_to_inf(mp_calls):
    # two losses of 3e38 each: 6e38 is past float32's overflow threshold, an exact inf there
    x = np.array([[0.0, -3e38], [0.0, -3e38]], np.float32)
    p = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    p = np.concatenate([p, [[0.5, 0.5]]]).astype(np.float32)
    x = np.concatenate([x, [[1.0, -1.0]]]).astype(np.float32)
    ex = R.evaluate("cross_entropy", x, p, reduction="sum")
    assert not ex.undetermined and ex.rounded == np.inf
