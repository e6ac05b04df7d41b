"""check_observation records, tolerances, [tool.losscheck] config and known failures."""
from __future__ import annotations

import json

import mpmath
import numpy as np
import pytest

from cases.model import make_case
from harness.check import check_observation, final_verdict, gate_failed
from harness.config import Config, ConfigError, load_config, parse_tolerance_flag
from harness.knownfail import KnownFailures
from harness.tolerances import DEFAULTS, DtypeTolerance, Tolerances
from reference import formats
from reference.exact import Exact

TOL = DtypeTolerance(ulp=1.0, c0=2.0, c1=1.0, c_abs=4.0)


def mse_case():
    x = np.array([[0.5, 1.0], [2.0, -3.0]], np.float32)
    y = np.zeros((2, 2), np.float32)
    return make_case("mse_loss", (x, y), {"reduction": "none"}, family="test.hand", grad=False)


def hand_exact(values, *, scale=1.0, cond=1.0, undetermined=None):
    """A (2, 2) float32 Exact with these exact values (the record logic does not re-derive them)."""
    v = np.empty(4, dtype=object)
    v[:] = [mpmath.mpf(x) for x in values]
    v = v.reshape(2, 2)
    und = np.zeros((2, 2), bool) if undetermined is None else np.asarray(undetermined, bool)
    rounded = formats.to_dtype(v, "float32")
    rounded[und] = np.nan
    full = lambda a: np.full((2, 2), a, np.float64)
    return Exact(values=v, rounded=rounded, undetermined=und, cond=full(cond), scale=full(scale),
                 nterms=np.ones((2, 2), np.int64), dtype="float32")


# ------------------------------------------------------------------------------ check_observation

def test_wrong_shape_is_bad_output():
    case, e = mse_case(), hand_exact([1, 2, 3, 4])
    rec = check_observation(case, "value", e, np.zeros((4,), np.float32), TOL)
    assert rec["status"] == "bad_output" and rec["verdict"] == "fail"
    assert rec["message"] == "bad output: expected float32 array of shape [2, 2], got float32 array of shape [4]"
    json.dumps(rec, allow_nan=False)


def test_wrong_dtype_and_type_are_bad_output():
    case, e = mse_case(), hand_exact([1, 2, 3, 4])
    rec = check_observation(case, "value", e, np.zeros((2, 2), np.float64), TOL)
    assert rec["status"] == "bad_output"
    assert "got float64 array of shape [2, 2]" in rec["message"]
    rec = check_observation(case, "value", e, [[1.0, 2.0], [3.0, 4.0]], TOL)
    assert rec["status"] == "bad_output" and rec["message"].endswith("got list")


def test_record_fields_for_a_failing_check():
    case = mse_case()
    e = hand_exact([1, 2, "2.06e-9", 4], scale=1e-3, cond=1e-3)
    o = np.array([[1.0, 2.0 + 2.0 ** -22], [0.0, np.nan]], np.float32)
    rec = check_observation(case, "value", e, o, TOL)
    assert rec["status"] == "ok" and rec["verdict"] == "fail"
    assert (rec["loss"], rec["family"], rec["options"], rec["dtype"], rec["check"],
            rec["reduction"], rec["shape"]) == ("mse_loss", "test.hand", "plain", "float32", "value",
                                                 "none", [2, 2])
    assert rec["case_id"] == case.id and rec["n"] == 4
    assert rec["counts"] == {"accurate": 2, "stable": 0, "absolute": 0, "flushed": 0, "recursive": 0,
                             "magnitude": 0, "convention": 0, "semantic": 0, "fail": 1, "special": 1,
                             "undetermined": 0}
    assert rec["ulp_hist"] == [1, 1, 0, 0, 2]  # 0 ulp, 1 ulp (2^-22 at 2 is 1 ulp), >3, inf
    assert rec["max_ulp"] == "inf" and rec["max_bits"] == "inf"
    assert rec["frac_correctly_rounded"] == 0.25 and rec["frac_le_1ulp"] == 0.5
    w = rec["worst"]  # the special mismatch outranks the larger-ulp plain failure
    assert w["index"] == [1, 1] and w["rung"] == "special" and w["observed"] == "nan"
    assert w["exact"] == "4.0" and w["rounded"] == "4.0" and w["ulp"] == "inf"
    assert w["input"] == "input -3, target 0"
    assert rec["message"] == ("nan where finite: 2/4 elements fail (1 special mismatch); worst inf ulp at [1, 1]: "
                              "exact 4, got nan")
    assert rec["symptom"] == "nan where finite"
    json.dumps(rec, allow_nan=False)


def test_worst_prefers_rung_then_ulp_and_message_of_a_warn():
    case = mse_case()
    e = hand_exact(["2.06e-9", "1e-9", 3, 4], scale=1.0, cond=0.0)
    o = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    rec = check_observation(case, "value", e, o, TOL)
    assert rec["verdict"] == "warn" and rec["counts"]["absolute"] == 2
    assert rec["worst"]["index"] == [0, 0] and rec["worst"]["rung"] == "absolute"
    assert rec["worst"]["exact"] == mpmath.nstr(mpmath.mpf("2.06e-9"), 17)
    assert rec["message"].startswith("absolute-only cliff: 2/4 elements only absolutely accurate (warn); worst ")
    assert rec["symptom"] == "absolute-only cliff"
    assert rec["message"].endswith("ulp at [0, 0]: exact 2.06e-9, got 0")
    assert rec["median_ulp"] == pytest.approx(float(np.median(
        [0, 0, float(mpmath.mpf("2.06e-9") / mpmath.ldexp(1, -52)),
         float(mpmath.mpf("1e-9") / mpmath.ldexp(1, -53))])), rel=1e-12)


def test_pass_with_undetermined_elements():
    case = mse_case()
    e = hand_exact([1, 2, 3, 4], undetermined=[[False, True], [False, False]])
    o = np.array([[1.0, 7.0], [3.0, 4.0]], np.float32)
    rec = check_observation(case, "value", e, o, TOL)
    assert rec["verdict"] == "pass" and rec["counts"]["undetermined"] == 1
    assert rec["ulp_hist"] == [3, 0, 0, 0, 0] and rec["max_ulp"] == 0.0
    assert rec["message"] == "3/4 elements pass (3 accurate, 0 stable); max 0 ulp; 1 undetermined"


def test_final_verdict_strict():
    assert final_verdict({"verdict": "warn"}) == "warn"
    assert final_verdict({"verdict": "warn"}, strict=True) == "fail"
    assert final_verdict({"verdict": "pass"}, strict=True) == "pass"
    assert gate_failed({"verdict": "error"}) and not gate_failed({"verdict": "xfail"}, strict=True)
    assert gate_failed({"verdict": "warn"}, strict=True) and not gate_failed({"verdict": "warn"})


# ------------------------------------------------------------------------------------ tolerances

def test_tolerances_overrides_and_dict():
    t = DEFAULTS.with_overrides({"float16.ulp": 2.5, "float64.c_abs": 0})
    assert t.for_dtype("float16").ulp == 2.5 and t["float64"].c_abs == 0.0
    assert t["float32"] == DEFAULTS["float32"] and t["float64"].ulp == DEFAULTS["float64"].ulp
    assert Tolerances.from_dict(t.to_dict()) == t
    assert set(t.to_dict()) == {"float16", "bfloat16", "float32", "float64"}
    with pytest.raises(ValueError, match="unknown tolerance 'float16.bogus'"):
        DEFAULTS.with_overrides({"float16.bogus": 1})
    with pytest.raises(ValueError, match="float32.ulp"):
        DEFAULTS.with_overrides({"float32.ulp": -1})
    with pytest.raises(ValueError, match="no tolerance for dtype 'int8'"):
        DEFAULTS.for_dtype("int8")


# ------------------------------------------------------------------------------------ config

def write(path, text):
    path.write_text(text)
    return path


def test_load_config_nearest_pyproject(tmp_path):
    write(tmp_path / "pyproject.toml", """
[tool.losscheck]
known_failures = "known.toml"
jobs = 3
timeout = 12.5
[tool.losscheck.tolerances.float16]
ulp = 2.0
c_abs = 8
""")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    cfg = load_config(sub)
    assert cfg.path == tmp_path / "pyproject.toml"
    assert cfg.jobs == 3 and cfg.timeout == 12.5 and cfg.known_failures == tmp_path / "known.toml"
    assert cfg.tolerances["float16"] == DtypeTolerance(2.0, DEFAULTS["float16"].c0,
                                                       DEFAULTS["float16"].c1, 8.0)
    assert cfg.tolerances["float32"] == DEFAULTS["float32"]
    # flags override config
    cfg2 = cfg.with_flags(tolerances=dict([parse_tolerance_flag("float16.ulp=4")]), jobs=1)
    assert cfg2.tolerances["float16"].ulp == 4.0 and cfg2.tolerances["float16"].c_abs == 8.0
    assert cfg2.jobs == 1 and cfg2.timeout == 12.5


def test_load_config_without_section_gives_defaults(tmp_path):
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    cfg = load_config(tmp_path)
    assert cfg.tolerances == DEFAULTS and cfg.jobs is None and cfg.known_failures is None
    assert cfg == Config()


@pytest.mark.parametrize("body,needle", [
    ("[tool.losscheck]\nfoo = 1\n", "unknown key tool.losscheck.foo"),
    ("[tool.losscheck]\njobs = 0\n", "tool.losscheck.jobs must be an integer >= 1"),
    ("[tool.losscheck]\ntimeout = 'soon'\n", "tool.losscheck.timeout must be"),
    ("[tool.losscheck.tolerances.float16]\nulps = 2\n", "unknown key tool.losscheck.tolerances.float16.ulps"),
    ("[tool.losscheck.tolerances.float16]\nulp = -2\n", "tool.losscheck.tolerances.float16.ulp must be"),
    ("[tool.losscheck.tolerances.int8]\nulp = 2\n", "unknown dtype in tool.losscheck.tolerances.int8"),
    ("[tool.losscheck\n", "cannot read TOML"),
])
def test_config_errors_name_key_and_file(tmp_path, body, needle):
    p = write(tmp_path / "pyproject.toml", body)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    msg = str(exc.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_bad_flags():
    with pytest.raises(ConfigError, match="--tol expects"):
        parse_tolerance_flag("float16.ulp")
    with pytest.raises(ConfigError, match="command line: unknown tolerance 'x.ulp'"):
        Config().with_flags(tolerances={"x.ulp": 1.0})


# ------------------------------------------------------------------------------ known failures

def rec(verdict, **kw):
    base = {"backend": "numpy-naive", "case_id": "0123456789abcdef", "loss": "cross_entropy",
            "family": "ce.extreme", "dtype": "float32", "check": "value", "verdict": verdict,
            "message": "1/4 elements fail"}
    return {**base, **kw}


def test_known_failures_toml_apply_and_unmatched(tmp_path):
    p = write(tmp_path / "known.toml", """
[[known_failures]]
match = "numpy-naive:cross_entropy:ce.*:*:value"
reason = "textbook softmax overflows"
[[known_failures]]
match = "fedcba9876543210"
reason = "stale"
""")
    kf = KnownFailures.load(p)
    out = kf.apply(rec("fail"))
    assert out["verdict"] == "xfail" and out["xfail_reason"] == "textbook softmax overflows"
    assert out["message"].startswith("known failure (textbook softmax overflows): 1/4")
    assert kf.apply(rec("pass")) == rec("pass")
    assert kf.apply(rec("fail", check="grad"))["verdict"] == "fail"
    assert kf.apply(rec("warn"))["verdict"] == "warn"
    assert kf.apply(rec("warn"), strict=True)["verdict"] == "xfail"
    assert [e.match for e in kf.unmatched()] == ["fedcba9876543210"]


def test_known_failures_json_by_case_id(tmp_path):
    p = write(tmp_path / "known.json", json.dumps(
        [{"match": "0123456789abcdef", "reason": "issue 12"}]))
    kf = KnownFailures.load(p)
    assert [e.match for e in kf.unmatched()] == ["0123456789abcdef"]
    assert kf.apply(rec("fail", backend="torch"))["verdict"] == "xfail"
    assert kf.unmatched() == []


@pytest.mark.parametrize("name,body,needle", [
    ("k.toml", "[[known_failures]]\nreason = 'x'\n", "entry 0 needs a non-empty string 'match'"),
    ("k.toml", "[[known_failures]]\nmatch = 'x'\n", "entry 0 ('x') needs a non-empty string 'reason'"),
    ("k.toml", "[[known_failures]]\nmatch = 'x'\nreason = 'y'\nwhy = 1\n", "unknown key(s) why"),
    ("k.toml", "known_failures = 3\n", "must be a list"),
    ("k.json", "{not json", "not valid JSON"),
    ("k.toml", "[[x", "not valid TOML"),
    ("missing.toml", None, "cannot read"),
])
def test_known_failures_bad_file(tmp_path, name, body, needle):
    p = tmp_path / name
    if body is not None:
        p.write_text(body)
    with pytest.raises(ValueError) as exc:
        KnownFailures.load(p)
    assert needle in str(exc.value) and str(p) in str(exc.value)
