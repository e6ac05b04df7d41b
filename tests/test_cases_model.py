import numpy as np
import pytest

import cases
from cases.model import make_case, output_shape
from reference.formats import from_ordinal
from reference.formats import ordinal as _ordinal
from reference.sampling import cast, ordinal_uniform, rng_for


def _ce(x=None, t=None, **kw):
    x = cast([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], "float32") if x is None else x
    t = np.array([2, 0], np.int64) if t is None else t
    return make_case("cross_entropy", (x, t), kw, family="test.ce")


def test_case_fields_options_and_readonly():
    c = _ce(reduction="none", weight=cast([1, 2, 3], "float32"))
    assert c.dtype == "float32" and c.loss == "cross_entropy"
    assert c.options == "weight"
    assert len(c.id) == 16 and int(c.id, 16) >= 0
    assert c.grad and c.grad_output.shape == (2,) and str(c.grad_output.dtype) == "float32"
    for a in (*c.args, c.kwargs["weight"], c.grad_output):
        assert not a.flags.writeable
    with pytest.raises(ValueError):
        c.args[0][0, 0] = 5.0
    args, kwargs = c.call()
    assert args[0] is c.args[0] and kwargs == c.kwargs and kwargs is not c.kwargs


def test_grad_output_is_0d_for_reductions_and_nonuniform_for_none():
    assert _ce(reduction="mean").grad_output.shape == ()
    x = cast(np.zeros((6, 4)), "bfloat16")
    c = make_case("cross_entropy", (x, np.zeros(6, np.int64)), {"reduction": "none"}, family="t")
    g = c.grad_output.astype(np.float64)
    assert g.shape == (6,) and len(set(g.tolist())) > 1 and g.min() >= 0.25 and g.max() <= 2.0


def test_id_depends_on_bits_family_and_kwargs_not_on_meta():
    base = _ce()
    x = np.array(base.args[0])
    x.view(np.uint32)[0, 0] ^= 1            # one ulp
    assert _ce(x=x).id != base.id
    assert _ce(reduction="sum").id != base.id
    assert _ce(label_smoothing=0.1).id != base.id
    other = make_case("cross_entropy", base.args, {}, family="other.family")
    assert other.id != base.id
    same = make_case("cross_entropy", base.args, {}, family="test.ce", meta={"note": "x"})
    assert same.id == base.id and same == base and hash(same) == hash(base)


def test_output_shapes():
    x = cast(np.zeros((2, 3, 4)), "float32")
    assert output_shape("cross_entropy", (x, np.zeros((2, 4), np.int64)), {"reduction": "none"}) == (2, 4)
    assert output_shape("cross_entropy", (x, x), {"reduction": "none"}) == (2, 4)
    assert output_shape("cross_entropy", (x[0, :, 0], np.asarray(1)), {"reduction": "none"}) == ()
    assert output_shape("softmax", (x,), {"dim": 1}) == (2, 3, 4)
    assert output_shape("mse_loss", (x, x), {}) == ()


@pytest.mark.parametrize("loss, args, kwargs, msg", [
    ("cross_entropy", (cast([[0.0, 1.0]], "float32"), np.array([2])), {}, "out of range"),
    ("cross_entropy", (cast([[0.0, 1.0]], "float32"), np.array([0], np.int32)), {}, "int64"),
    ("cross_entropy", (cast([[0.0, 1.0]], "float32"), np.array([0])), {"weight": cast([1, 1], "float64")}, "dtype"),
    ("cross_entropy", (cast([[0.0, 1.0]], "float32"), np.array([0])), {"label_smoothing": 1.5}, "label_smoothing"),
    ("binary_cross_entropy", (cast([1.5], "float32"), cast([1.0], "float32")), {}, "[0, 1]"),
    ("softmax", (cast([1.0], "float16"),), {"dim": 1}, "dim"),
    ("mse_loss", (cast([1.0], "float16"), cast([1.0], "float16")), {"bogus": 1}, "unexpected keyword"),
    ("cross_entropy", (np.zeros((1, 2), np.int32), np.array([0])), {}, "dtype"),
])
def test_invalid_cases_are_refused(loss, args, kwargs, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        make_case(loss, args, kwargs, family="t")


def test_ignore_index_target_is_valid_and_tagged():
    c = _ce(t=np.array([-100, 1], np.int64))
    assert c.options == "ignore_index"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_ordinal_sampling_stays_in_range_and_spans_binades(dtype):
    rng = rng_for(0, "test", dtype)
    x = ordinal_uniform(rng, 1e-3, 1e3, 2000, dtype).astype(np.float64)
    assert x.min() >= float(cast(1e-3, dtype)) and x.max() <= float(cast(1e3, dtype))
    # ordinal-uniform: about as many samples below 1 as above (a plain uniform would put ~0.1% there)
    assert 0.35 < np.mean(x < 1.0) < 0.65
    y = cast([-np.inf, -2.5, -0.0, 0.0, 1e-3, 3.0, np.inf], dtype)
    o = _ordinal(y, dtype)
    assert np.all(np.diff(o) >= 0) and o[2] == o[3] == 0
    back = from_ordinal(o, dtype)
    assert np.array_equal(back.astype(np.float64)[[0, 1, 4, 5, 6]], y.astype(np.float64)[[0, 1, 4, 5, 6]])


def test_rng_for_is_deterministic_and_separates_parts():
    a = rng_for(0, "ce.random", "float32").integers(0, 2**62, 4)
    b = rng_for(0, "ce.random", "float32").integers(0, 2**62, 4)
    c = rng_for(0, "ce.random", "float16").integers(0, 2**62, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_public_api():
    for name in ("Case", "CaseFileError", "SUITES", "build_suite", "find", "load", "save"):
        assert hasattr(cases, name)
    assert issubclass(cases.CaseFileError, ValueError)
