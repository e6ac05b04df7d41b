"""Outputs returned in another floating format than the input's (issue 13 §4): a fused kernel's
float32 for float16 input is judged against the oracle settled in float32 -- computed by the oracle
workers in a second pass, never where the backend runs -- and noted (``out_dtype``); under
``--strict-dtype`` it is bad output; anything else (an integer dtype, a wrong shape) stays bad output.

The drop-ins below are backends (``tests.test_out_dtype:UPCAST`` ...): they compute softmax in
float64 and return it in float32, either correctly rounded (UPCAST) or through float16 (ROUNDED_TWICE,
wrong by many float32 ulps).
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cases
from cases.model import make_case
from harness.cache import OracleCache
from harness.check import check_observation, note_returned_dtype, returned_format
from harness.cli import main
from harness.runner import Runner
from harness.task import NEEDS_ORACLE, evaluate_task
from harness.tolerances import DEFAULTS

REPO = Path(__file__).resolve().parents[1]


def _upcast_softmax(input, dim=None, **kwargs):
    """softmax in float64, returned correctly rounded in float32 (what a fused kernel might return)."""
    return F.softmax(input.double(), dim=dim).float()


def _rounded_twice_softmax(input, dim=None, **kwargs):
    """softmax rounded to the input's float16, then returned as float32: far from float32's answer."""
    return F.softmax(input.double(), dim=dim).to(input.dtype).float()


def _int_softmax(input, dim=None, **kwargs):
    return (F.softmax(input.double(), dim=dim) * 1000).to(torch.int32)


UPCAST = SimpleNamespace(softmax=_upcast_softmax)
ROUNDED_TWICE = SimpleNamespace(softmax=_rounded_twice_softmax)
INTEGER = SimpleNamespace(softmax=_int_softmax)

#: two float16 softmax cases (long rows) of the smoke suite
SLICE = ["--suite", "smoke", "--loss", "softmax", "--dtype", "float16", "--no-grad", "--jobs", "2"]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own: the float32 answers must be computed by the run itself."""
    d = tmp_path / "cache"
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(d))
    monkeypatch.chdir(REPO)
    return d


def _records(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == "result"]


def _softmax_case() -> object:
    x = np.array([[0.0, -3.0, 1.5], [2.0, 2.0, -7.0]], np.float16)
    return make_case("softmax", (x,), {"dim": 1}, family="test.hand", grad=False)


# ---- the check itself ---------------------------------------------------------------------------

def test_returned_format_names_only_another_supported_float_format_of_the_right_shape():
    import reference

    c = _softmax_case()
    exact = reference.evaluate("softmax", *c.args, **c.kwargs)
    assert returned_format(np.zeros((2, 3), np.float32), exact) == "float32"
    assert returned_format(np.zeros((2, 3), np.float64), exact) == "float64"
    assert returned_format(np.zeros((2, 3), np.float16), exact) is None       # its own format
    assert returned_format(np.zeros((3, 2), np.float32), exact) is None       # wrong shape
    assert returned_format(np.zeros((2, 3), np.int32), exact) is None         # not a float format
    assert returned_format(np.zeros((2, 3), np.complex64), exact) is None     # not a supported one
    assert returned_format([[0.0] * 3] * 2, exact) is None                    # not an array


def test_the_oracle_settled_in_the_returned_format_judges_it():
    import reference

    c = _softmax_case()
    exact32 = reference.evaluate("softmax", *c.args, out_dtype="float32", **c.kwargs)
    assert exact32.dtype == "float32"
    good = np.asarray(F.softmax(torch.from_numpy(c.args[0].copy()).double(), dim=1).float())
    rec = check_observation(c, "value", exact32, good, DEFAULTS.for_dtype("float32"), backend="b")
    assert rec["verdict"] == "pass"
    note_returned_dtype(rec, "float32", "float16", strict=False)
    assert rec["out_dtype"] == "float32"
    assert rec["message"].endswith("; returned float32 for float16 input (judged in float32)")
    # the same values judged against the float16 answer would be bad output: the dtype differs
    exact16 = reference.evaluate("softmax", *c.args, **c.kwargs)
    bad = check_observation(c, "value", exact16, good, DEFAULTS.for_dtype("float16"))
    assert bad["status"] == "bad_output" and bad["verdict"] == "fail"


def test_a_read_only_cache_reports_the_need_and_never_computes(tmp_path):
    calls = []

    def oracle(case, check, out_dtype=None):
        calls.append(out_dtype)
        from harness.cache import compute

        return compute(case, check, out_dtype)

    cache = OracleCache(tmp_path, oracle=oracle)
    c = _softmax_case()
    cache.get(c, "value")  # the oracle pass: the input's format only
    backend = __import__("harness.backends", fromlist=["from_object"]).from_object("upcast", UPCAST)
    recs, _ = evaluate_task(backend, "upcast", c, ["value"], cache.read_only(), DEFAULTS)
    assert recs[0]["status"] == NEEDS_ORACLE and recs[0]["needs_oracle"] == "float32"
    assert calls == [None]  # nothing computed where the backend ran
    assert not cache.has(c.id, "value", "float32") and cache.has(c.id, "value")
    cache.get(c, "value", out_dtype="float32")  # what the runner's oracle workers do
    assert calls == [None, "float32"]
    assert cache.path(c.id, "value", "float32").name == f"{c.id}.value.as-float32.json"
    assert cache.path(c.id, "value").name == f"{c.id}.value.json"  # the old key is unchanged
    recs, _ = evaluate_task(backend, "upcast", c, ["value"], cache.read_only(), DEFAULTS)
    assert recs[0]["status"] == "ok" and recs[0]["verdict"] == "pass" and recs[0]["out_dtype"] == "float32"
    recs, _ = evaluate_task(backend, "upcast", c, ["value"], cache.read_only(), DEFAULTS, strict_dtype=True)
    assert recs[0]["status"] == "bad_output" and recs[0]["out_dtype"] == "float32"
    assert "a failure under --strict-dtype" in recs[0]["message"]


def test_a_cache_entry_of_one_format_never_answers_another(tmp_path):
    cache = OracleCache(tmp_path)
    c = _softmax_case()
    e32 = cache.get(c, "value", out_dtype="float32")
    e16 = cache.get(c, "value")
    assert (e32.dtype, e16.dtype) == ("float32", "float16")
    # an entry copied to the other format's place is refused (misplaced), with a warning
    cache.path(c.id, "value", "float64").write_text(cache.path(c.id, "value", "float32").read_text())
    with pytest.warns(UserWarning, match="misplaced"):
        assert cache.load(c.id, "value", "float64") is None


# ---- end to end: second oracle pass, strict, resume, in-process ---------------------------------

def test_upcast_outputs_pass_against_the_float32_oracle_with_a_note(capsys, tmp_path, cache_dir):
    path = tmp_path / "r.jsonl"
    code = main(["gate", "--backend", "tests.test_out_dtype:UPCAST", *SLICE, "--results", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    recs = _records(path)
    assert recs and all(r["status"] == "ok" and r["verdict"] == "pass" for r in recs)
    assert {r["out_dtype"] for r in recs} == {"float32"} and {r["dtype"] for r in recs} == {"float16"}
    assert all("returned float32 for float16 input" in r["message"] for r in recs)
    assert "NOTE tests.test_out_dtype:UPCAST returned float32 for float16 input in" in out
    # the answers settled in float32 were computed by the run (its oracle workers) and cached
    assert all(OracleCache(cache_dir).has(r["case_id"], "value", "float32") for r in recs)


def test_a_float32_output_rounded_through_float16_fails(capsys, tmp_path, cache_dir):
    path = tmp_path / "r.jsonl"
    code = main(["gate", "--backend", "tests.test_out_dtype:ROUNDED_TWICE", *SLICE, "--results", str(path)])
    assert code == 1
    recs = _records(path)
    assert {r["out_dtype"] for r in recs} == {"float32"}
    failing = [r for r in recs if r["verdict"] == "fail"]
    assert failing and all(r["status"] == "ok" for r in failing)
    assert all(r["max_ulp"] == "inf" or r["max_ulp"] > 2 for r in failing)
    assert all("out_dtype='float32'" in r["repro"] for r in failing)  # the repro settles in float32 too


def test_strict_dtype_makes_it_bad_output(capsys, tmp_path, cache_dir):
    path = tmp_path / "r.jsonl"
    code = main(["gate", "--backend", "tests.test_out_dtype:UPCAST", *SLICE, "--strict-dtype",
                 "--results", str(path)])
    assert code == 1
    recs = _records(path)
    assert recs and all(r["status"] == "bad_output" and r["verdict"] == "fail" for r in recs)
    assert all(r["out_dtype"] == "float32" and "--strict-dtype" in r["message"] for r in recs)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["strict_dtype"] is True
    # no float32 answer was needed, so none was computed
    assert not any(OracleCache(cache_dir).has(r["case_id"], "value", "float32") for r in recs)


def test_an_integer_output_stays_bad_output(capsys, tmp_path, cache_dir):
    path = tmp_path / "r.jsonl"
    assert main(["gate", "--backend", "tests.test_out_dtype:INTEGER", *SLICE, "--results", str(path)]) == 1
    recs = _records(path)
    assert recs and all(r["status"] == "bad_output" and "out_dtype" not in r for r in recs)


def test_resume_completes_with_the_second_pass(capsys, tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "r.jsonl"
    argv = ["run", "--backend", "tests.test_out_dtype:UPCAST", *SLICE, "--results", str(path)]
    assert main(argv) == 0
    full = path.read_text().splitlines()
    path.write_text("\n".join(full[:2]) + "\n")  # the header and one record: a killed run
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path / "fresh-cache"))  # no float32 answer yet
    assert main([*argv, "--resume"]) == 0
    recs = _records(path)
    assert len(recs) == len(full) - 1
    assert len({(r["case_id"], r["check"]) for r in recs}) == len(recs)
    assert all(r["verdict"] == "pass" and r["out_dtype"] == "float32" for r in recs)
    assert OracleCache(tmp_path / "fresh-cache").has(recs[-1]["case_id"], "value", "float32")


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "in-process"])
def test_backend_objects_get_the_second_pass_too(tmp_path, monkeypatch, fork):
    from harness import runner as runner_mod
    from harness.backends import from_object

    monkeypatch.setattr(runner_mod, "can_fork", lambda: fork)
    selected = [c for c in cases.build_suite("gate") if c.family == "softmax.dims" and c.dtype == "float16"][:3]
    run = Runner(cache_dir=tmp_path / "cache", jobs=1, grad=False)
    result = run.run(selected, ["upcast"], tmp_path / "r.jsonl", in_process={"upcast": from_object("upcast", UPCAST)})
    recs = result.records
    assert len(recs) == 3 and all(r["verdict"] == "pass" and r["out_dtype"] == "float32" for r in recs)
    assert all(r["status"] != NEEDS_ORACLE for r in _records(tmp_path / "r.jsonl"))


def test_schema_knows_out_dtype_and_flushed():
    schema = json.loads((REPO / "reports/schema/results-2.schema.json").read_text())
    result = schema["$defs"]["result"]["properties"]
    assert set(result["out_dtype"]["enum"]) == {"float16", "bfloat16", "float32", "float64"}
    assert "flushed" in result["counts"]["properties"]
    run = schema["$defs"]["run"]["properties"]
    assert run["device"]["type"] == "string" and run["strict_dtype"]["type"] == "boolean"
