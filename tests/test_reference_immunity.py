"""The oracle is immune to its caller: global mpmath precision, flush-to-zero / denormals-are-zero
and the FPU rounding mode change none of its answers (issue 9; a backend under test may set any
of them in the process the oracle runs in)."""
from __future__ import annotations

import ctypes
import ctypes.util

import mpmath
import numpy as np
import pytest
import torch

import cases
import reference as R

CASE_IDS = ["cfa66a99b231a534",  # gate case whose answer FTZ used to change (92.19 -> 100)
            # reduced values settled by the row-wise stage (reference/settle.py), which needs a
            # clean FPU for its float64 second opinion and must leave them to mpmath otherwise
            "1eca71665a3ae09d", "72b40e036e23a76b", "e48fb36709894e8f", "7cec27a76d8f6084",
            "6664462a589d97b5", "724c0a253662ac28"]


def _answers(case):
    args, kwargs = case.call()
    out = [R.evaluate(case.loss, *args, **kwargs)]
    out += [R.evaluate_grad(case.loss, *args, grad_output=case.grad_output, wrt=a, **kwargs)
            for a in R.registry.get(case.loss).differentiable_for(args, kwargs)] if case.grad else []
    # the answers: the correctly rounded values and which are undetermined (the stored mpf may come
    # from another stage, with more digits, when the float stages are unusable)
    # bit patterns in the answer's own format: under DAZ even a cast or float.hex() outside the
    # oracle reads a subnormal as zero; NaN == NaN this way
    def bits(a):
        a = np.ascontiguousarray(a)
        return a.view(np.dtype(f"u{a.dtype.itemsize}")).tolist()
    return [(bits(e.rounded), e.undetermined.tolist()) for e in out]


def _sample():
    smoke = cases.build_suite("smoke")
    picked = [c for c in smoke if c.args[0].size <= 64][::4]
    gate = {c.id: c for c in cases.build_suite("gate") if c.id in CASE_IDS}
    return picked + [gate[i] for i in CASE_IDS if i in gate]


SAMPLE = _sample()


@pytest.fixture(scope="module")
def clean():
    return [_answers(c) for c in SAMPLE]


def test_global_mpmath_precision_changes_nothing(clean):
    old = mpmath.mp.prec
    x = np.array([[1, 2], [1, 3], [1, 3]], np.float32)
    want = R.cross_entropy(x, np.array([0, 1, 1]))[()]
    try:
        mpmath.mp.prec = 8
        assert [_answers(c) for c in SAMPLE] == clean
        got = R.cross_entropy(x, np.array([0, 1, 1]))[()]
    finally:
        mpmath.mp.prec = old
    assert got == want and mpmath.nstr(got, 17) == "0.52237256986805594"  # not rounded to 8 bits


def test_flush_to_zero_changes_nothing(clean):
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-to-zero mode")
    try:
        assert (np.array([2.0 ** -1022]) * 0.5)[0] == 0  # FTZ is really on
        assert [_answers(c) for c in SAMPLE] == clean
    finally:
        torch.set_flush_denormal(False)


def test_rounding_mode_changes_nothing(clean):
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    fe_upward = 0x800  # x86: FE_UPWARD
    old = libm.fegetround()
    if libm.fesetround(fe_upward) != 0:
        pytest.skip("fesetround is not available")
    try:
        assert (np.array([1.0]) + 2.0 ** -60)[0] > 1.0  # rounding upward is really on
        got = [_answers(c) for c in SAMPLE]
    finally:
        libm.fesetround(old)
    assert got == clean


def test_heap_top_pad_changes_nothing():
    """fpu.py asks glibc to keep 32 MiB at the top of the heap (fewer page faults); the same call
    in a process that leaves malloc alone (LOSSCHECK_TOP_PAD=0) gives the same bits."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np, reference as R\n"
            "x = np.random.default_rng(1).standard_normal((8, 300)); t = np.arange(8) * 7\n"
            "e = R.evaluate_grad('cross_entropy', x, t, reduction='none', grad_output=np.ones(8))\n"
            "v = R.evaluate('cross_entropy', x.astype(np.float32), t)\n"
            "h, lo = e.hilo()\n"
            "print(h.tobytes().hex()[:4000], lo.tobytes().hex()[:4000], e.rounded.tobytes().hex(), v.rounded.tobytes().hex())\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outs = []
    for pad in ("0", ""):
        env = {**os.environ, "LOSSCHECK_TOP_PAD": pad, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        outs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 100
