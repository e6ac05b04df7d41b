"""The runner's machinery with injected fakes: worker isolation (crash, hang, raise, wrong shape,
unsupported), streaming and resume, the oracle cache. The fake oracle says "the exact answer is the
input itself" and the fake backends return (or mangle) the input, so no loss semantics are involved.

The fakes are top-level so spawned workers can import them by reference.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from cases.model import make_case
from harness.cache import CacheWarning, OracleCache
from harness.runner import RunError, Runner, read_finished

# --- fakes ------------------------------------------------------------------------------------------

class FakeExact:
    """Exact stand-in: ``rounded`` holds the values; JSON round trip like reference's Exact."""

    def __init__(self, rounded: np.ndarray):
        self.rounded = np.asarray(rounded)
        self.dtype = str(self.rounded.dtype)

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "values": self.rounded.astype(np.float64).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> FakeExact:
        return cls(np.asarray(d["values"], dtype=np.float64).astype(d["dtype"]))


def fake_exact_type() -> type:
    return FakeExact


def fake_oracle(case, check: str) -> FakeExact:
    """Identity 'oracle'; logs each computation to meta["log"] so tests can count them (a file, not an
    environment variable: forkserver workers keep the environment of the server's start)."""
    log = case.meta.get("log")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{case.id} {check}\n")
    if case.meta.get("pid_log"):
        with open(case.meta["pid_log"], "a") as fh:
            fh.write(f"oracle {os.getpid()}\n")
    if case.meta.get("oracle_fails"):
        raise ValueError("oracle refuses this case")
    if case.meta.get("slow_oracle"):
        time.sleep(float(case.meta["slow_oracle"]))
    return FakeExact(np.array(case.args[0], copy=True))


def fake_checker(case, check, exact, observed, tol, backend=None) -> dict:
    if not isinstance(observed, np.ndarray) or observed.shape != exact.rounded.shape:
        return {"status": "bad_output", "verdict": "fail", "n": int(exact.rounded.size),
                "message": "bad output: wrong shape"}
    diff = np.abs(observed.astype(np.float64) - exact.rounded.astype(np.float64))
    bad = int(np.count_nonzero(diff > 0))
    return {"status": "ok", "verdict": "fail" if bad else "pass", "n": int(diff.size),
            "max_ulp": float(diff.max()) if diff.size else 0.0, "message": f"{bad} elements differ"}


def fake_repro(case, backend: str, check: str) -> str:
    return f"# repro {case.id} {backend} {check}"


class Obs:
    def __init__(self, value, grad=None):
        self.value, self.grad = value, grad


class Unsupported(Exception):
    pass


class FakeBackend:
    """Behaviour chosen by name: good, crash, hang, raise, shape, unsupported, flaky (crashes on
    cases whose meta says so)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.name = kind

    def supports(self, loss: str) -> bool:
        return self.kind != "nomse" or loss != "mse_loss"

    def evaluate(self, case) -> Obs:
        x = np.array(case.args[0], copy=True)
        if case.meta.get("pid_log"):
            with open(case.meta["pid_log"], "a") as fh:
                fh.write(f"backend {os.getpid()}\n")
        if self.kind == "crash" or (self.kind == "flaky" and case.meta.get("crash")):
            os._exit(3)
        if case.meta.get("crash_while") and os.path.exists(case.meta["crash_while"]):
            os._exit(3)
        if self.kind == "hang" or (self.kind == "flaky" and case.meta.get("hang")):
            time.sleep(600)
        if self.kind == "raise":
            raise ZeroDivisionError("boom\nsecond line")
        if self.kind == "shape":
            return Obs(x[:1])
        if self.kind == "unsupported":
            raise Unsupported("no float16 kernel")
        if self.kind == "off" and case.meta.get("i", 0) % 2:
            x = x + 1
        return Obs(x, x.copy() if case.grad else None)


def fake_loader(spec: str) -> FakeBackend:
    kind = spec.split(":")[-1]
    if kind == "missing":
        raise ImportError("No module named 'no'")
    return FakeBackend(kind)


def make_cases(n: int, log: Path | None = None, pid_log: str | None = None, **meta_for) -> list:
    """n small mse_loss cases (reduction none), distinct inputs, meta['i'] = index; ``meta_for`` maps
    an index to extra meta (e.g. crash=True); oracle computations are logged to ``log``, and with
    ``pid_log`` the processes the oracle and the backends ran in."""
    out = []
    for i in range(n):
        x = np.arange(4, dtype=np.float32) + i
        meta = {"i": i, **meta_for.get(f"c{i}", {})}
        if log is not None:
            meta["log"] = str(log)
        if pid_log is not None:
            meta["pid_log"] = pid_log
        out.append(make_case("mse_loss", (x, x[::-1].copy()), {"reduction": "none"}, family="fake.family",
                             meta=meta, grad=False))
    return out


def runner(tmp_path: Path, **kw) -> Runner:
    kw.setdefault("jobs", 2)
    kw.setdefault("timeout", 20.0)
    return Runner(cache_dir=tmp_path / "cache", oracle=fake_oracle, exact_type=fake_exact_type,
                  checker=fake_checker, loader=fake_loader, repro=fake_repro, **kw)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- tests ------------------------------------------------------------------------------------------

def test_misbehaving_backends_are_recorded_and_the_run_goes_on(tmp_path):
    cases = make_cases(3, log=tmp_path / "oracle.log", c1={"crash": True}, c2={"hang": True})
    results = tmp_path / "r.jsonl"
    specs = ["fake:good", "fake:flaky", "fake:raise", "fake:shape", "fake:unsupported", "fake:off"]
    out = runner(tmp_path, timeout=3.0).run(cases, specs, results, suite="fake", seed=7)

    by = {(r["backend"], r["meta"]["i"]): r for r in out.records}
    assert len(out.records) == len(specs) * 3
    assert all(by[("fake:good", i)]["verdict"] == "pass" for i in range(3))
    assert by[("fake:flaky", 0)]["verdict"] == "pass"          # the worker before the crash worked
    assert by[("fake:flaky", 1)]["status"] == "crash"
    assert by[("fake:flaky", 1)]["verdict"] == "error"
    assert "exited with code 3" in by[("fake:flaky", 1)]["message"]
    assert by[("fake:flaky", 2)]["status"] == "timeout"
    assert "within 3 s (backend)" in by[("fake:flaky", 2)]["message"]
    assert by[("fake:raise", 0)]["status"] == "error"
    assert by[("fake:raise", 0)]["message"] == "ZeroDivisionError: boom"  # one line
    assert by[("fake:shape", 0)]["status"] == "bad_output"
    assert by[("fake:unsupported", 0)]["verdict"] == "unsupported"
    assert [by[("fake:off", i)]["verdict"] for i in range(3)] == ["pass", "fail", "pass"]
    assert by[("fake:off", 1)]["repro"] == f"# repro {cases[1].id} fake:off value"
    assert out.stats.crashes == 1 and out.stats.timeouts == 1

    written = lines(results)
    assert written[0]["type"] == "run" and written[0]["schema"] == "losscheck.results/2"
    assert written[0]["suite"] == "fake" and written[0]["seed"] == 7 and written[0]["backends"] == specs
    assert sorted((r["backend"], r["case_id"]) for r in written[1:]) == \
        sorted((r["backend"], r["case_id"]) for r in out.records)
    # each case's oracle computed once although six backends needed it at the same time
    log = (tmp_path / "oracle.log").read_text().split("\n")
    assert sorted(filter(None, log)) == sorted(f"{c.id} value" for c in cases)


def test_a_slow_oracle_gets_a_longer_leash_but_not_forever(tmp_path):
    cases = make_cases(2, c0={"slow_oracle": 1.0}, c1={"slow_oracle": 30.0})
    out = runner(tmp_path, jobs=2, timeout=0.4).run(cases, ["fake:good"], tmp_path / "r.jsonl")
    by = {r["meta"]["i"]: r for r in out.records}
    assert by[0]["verdict"] == "pass"  # 1 s of oracle work is within 5 x 0.4 s
    assert by[1]["status"] == "timeout" and "within 2 s (oracle)" in by[1]["message"]


def test_second_run_reads_the_cache_and_never_recomputes(tmp_path):
    log = tmp_path / "oracle.log"
    cases = make_cases(4, log=log)
    first = runner(tmp_path, jobs=1).run(cases, ["fake:good"], tmp_path / "a.jsonl")
    assert len(log.read_text().splitlines()) == 4
    assert first.stats.cache_misses == 4 and first.stats.cache_hits == 0
    second = runner(tmp_path, jobs=1).run(cases, ["fake:good"], tmp_path / "b.jsonl")
    assert len(log.read_text().splitlines()) == 4
    assert second.stats.cache_hits == 4 and second.stats.cache_misses == 0
    assert [r["verdict"] for r in second.records] == ["pass"] * 4
    files = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 4 and not list((tmp_path / "cache").rglob("*.tmp"))
    assert json.loads(files[0].read_text())["exact"]["dtype"] == "float32"  # JSON, readable


def test_corrupt_cache_entry_is_recomputed_with_a_warning(tmp_path):
    log = tmp_path / "oracle.log"
    case = make_cases(1, log=log)[0]
    cache = OracleCache(tmp_path / "cache", oracle=fake_oracle, exact_type=fake_exact_type)
    exact = cache.get(case, "value")
    cache.path(case.id, "value").write_text('{"dtype": "float32", "val')  # torn write
    with pytest.warns(CacheWarning, match="corrupt"):
        again = cache.get(case, "value")
    np.testing.assert_array_equal(again.rounded, exact.rounded)
    assert len(log.read_text().splitlines()) == 2
    assert cache.load(case.id, "value") is not None  # rewritten whole


@pytest.mark.parametrize("edit, why", [
    (lambda e: e["exact"]["values"].__setitem__(0, 1.5), "tampered"),  # one changed value, valid JSON
    (lambda e: e.update(case_id="0" * 16), "misplaced"),
    (lambda e: e.update(check="grad:input"), "misplaced"),
    (lambda e: e.update(oracle_version="0"), "stale"),
    (lambda e: e.update(schema="something/1"), "corrupt"),
])
def test_edited_cache_entry_is_detected_and_recomputed(tmp_path, edit, why):
    log = tmp_path / "oracle.log"
    case = make_cases(1, log=log)[0]
    cache = OracleCache(tmp_path / "cache", oracle=fake_oracle, exact_type=fake_exact_type)
    exact = cache.get(case, "value")
    path = cache.path(case.id, "value")
    entry = json.loads(path.read_text())
    edit(entry)
    path.write_text(json.dumps(entry))
    with pytest.warns(CacheWarning, match=why):
        again = cache.get(case, "value")
    np.testing.assert_array_equal(again.rounded, exact.rounded)
    assert len(log.read_text().splitlines()) == 2  # recomputed, not trusted
    assert cache.load(case.id, "value") is not None  # rewritten whole


def test_oracle_error_is_an_error_record_not_a_crash(tmp_path):
    cases = make_cases(2, c0={"oracle_fails": True})
    out = runner(tmp_path, jobs=1).run(cases, ["fake:good"], tmp_path / "r.jsonl")
    recs = sorted(out.records, key=lambda r: r["meta"]["i"])
    assert recs[0]["status"] == "error"
    assert recs[0]["message"] == "oracle: ValueError: oracle refuses this case"
    assert recs[1]["verdict"] == "pass"


def test_unsupported_loss_is_recorded_unsupported(tmp_path):
    """The oracle pass runs before any backend is asked (in workers that load none), so it also
    computes values a backend then turns out not to support: cached for the next run, and the price
    of never computing an oracle value where a backend under test was imported."""
    log = tmp_path / "oracle.log"
    out = runner(tmp_path, jobs=1).run(make_cases(2, log=log), ["fake:nomse"], tmp_path / "r.jsonl")
    assert [r["verdict"] for r in out.records] == ["unsupported"] * 2
    assert len(log.read_text().splitlines()) == 2


def test_the_oracle_runs_where_no_backend_was_loaded(tmp_path):
    """A backend that poisons its process (here: it records the pid it ran in, and the oracle
    records its own) never shares a process with an oracle computation."""
    log = tmp_path / "oracle.log"
    cases = make_cases(3, log=log, pid_log=str(tmp_path / "pids"))
    runner(tmp_path, jobs=2).run(cases, ["fake:good", "fake:off"], tmp_path / "r.jsonl")
    pids = [line.split() for line in (tmp_path / "pids").read_text().splitlines()]
    oracle_pids = {p for kind, p in pids if kind == "oracle"}
    backend_pids = {p for kind, p in pids if kind == "backend"}
    assert oracle_pids and backend_pids and not oracle_pids & backend_pids


def test_unloadable_backend_in_a_worker_is_an_error_per_case(tmp_path):
    out = runner(tmp_path, jobs=1).run(make_cases(2), ["fake:missing"], tmp_path / "r.jsonl")
    assert [r["status"] for r in out.records] == ["error", "error"]
    assert out.records[0]["message"] == "loading backend: ImportError: No module named 'no'"


def test_in_process_mode_gives_the_same_records(tmp_path):
    cases = make_cases(3)
    out = runner(tmp_path).run(cases, ["x"], tmp_path / "r.jsonl", in_process={"x": FakeBackend("off")})
    verdicts = [r["verdict"] for r in sorted(out.records, key=lambda r: r["meta"]["i"])]
    assert verdicts == ["pass", "fail", "pass"]


def test_resume_skips_finished_checks_and_cuts_a_truncated_line(tmp_path):
    log = tmp_path / "oracle.log"
    cases = make_cases(4, log=log)
    results = tmp_path / "r.jsonl"
    runner(tmp_path, jobs=1).run(cases[:2], ["fake:good"], results, suite="s", seed=0)
    with open(results, "a") as fh:
        fh.write('{"type": "result", "backend": "fake:good", "case_')  # killed mid-line
    computed_before = log.read_text().splitlines()
    with pytest.warns(UserWarning, match="truncated"):
        out = runner(tmp_path, jobs=1).run(cases, ["fake:good"], results, suite="s", seed=0, resume=True)
    assert out.stats.skipped == 2 and out.stats.evaluated == 2
    assert len(out.records) == 4
    new_ids = log.read_text().splitlines()[len(computed_before):]
    assert sorted(x.split()[0] for x in new_ids) == sorted(c.id for c in cases[2:])
    written = lines(results)  # every line parses: the torn line is gone
    assert [w["type"] for w in written].count("run") == 2
    assert sorted(w["case_id"] for w in written if w["type"] == "result") == sorted(c.id for c in cases)
    assert written[0]["run_id"] == written[3]["run_id"]


def test_resume_refuses_a_file_of_another_suite(tmp_path):
    results = tmp_path / "r.jsonl"
    runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=0)
    with pytest.raises(RunError, match=r"it was run with other seed \(0 there, 1 now\)"):
        runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=1, resume=True)


@pytest.mark.parametrize("change, needle", [
    ({"tolerances": "loose"}, "tolerances"),
    ({"known": True}, "known_failures"),
    ({"specs": ["fake:good", "fake:bad"]}, "backends"),
    ({"strict": True}, r"strict \(False there, True now\)"),
])
def test_resume_refuses_a_run_made_under_other_settings(tmp_path, change, needle):
    """issue 10 §3: the whole header must agree, not only suite and seed."""
    from harness.knownfail import KnownFailure, KnownFailures
    from harness.tolerances import DEFAULTS

    results = tmp_path / "r.jsonl"
    runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=0)
    kw = {}
    if change.get("tolerances"):
        kw["tolerances"] = DEFAULTS.with_overrides({"float32.ulp": 9.0})
    if change.get("known"):
        kw["known_failures"] = KnownFailures([KnownFailure("x", "y")])
    if change.get("strict"):
        kw["strict"] = True
    r = runner(tmp_path, jobs=1, **kw)
    with pytest.raises(RunError, match=needle):
        r.run(make_cases(1), change.get("specs", ["fake:good"]), results, suite="s", seed=0, resume=True)


def test_an_existing_results_file_is_never_overwritten_silently(tmp_path):
    results = tmp_path / "r.jsonl"
    runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=0)
    before = results.read_bytes()
    with pytest.raises(RunError, match="pass --resume to continue it or --overwrite"):
        runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=0)
    assert results.read_bytes() == before
    runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=0, overwrite=True)
    assert results.read_bytes() != before


def test_a_second_writer_of_one_results_file_is_refused(tmp_path):
    from harness.results_file import ResultsLock

    results = tmp_path / "r.jsonl"
    with ResultsLock(results), pytest.raises(RunError, match="another losscheck run is writing it"):
        runner(tmp_path, jobs=1).run(make_cases(1), ["fake:good"], results, suite="s", seed=0)
    assert not results.exists()


def test_read_finished_rejects_a_file_that_is_not_results(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"type": "result"}\n')
    with pytest.raises(RunError, match="no run header"):
        read_finished(bad)
    bad.write_text('{"type": "run"}\nnot json\n{"type": "result"}\n')
    with pytest.raises(RunError, match="line 2 is not JSON"):
        read_finished(bad)
    assert read_finished(tmp_path / "absent.jsonl") == (None, [])


def test_resume_retries_a_crashed_check_once(tmp_path):
    """issue 10 §3: a check whose worker crashed is tried again by --resume, once."""
    from reports.results import load_results

    flag = tmp_path / "crash-now"
    flag.write_text("")
    cases = make_cases(2, c1={"crash_while": str(flag)})
    results = tmp_path / "r.jsonl"
    first = runner(tmp_path, jobs=1).run(cases, ["fake:good"], results, suite="s", seed=0)
    assert [r["status"] for r in first.records if r["case_id"] == cases[1].id] == ["crash"]
    again = runner(tmp_path, jobs=1).run(cases, ["fake:good"], results, suite="s", seed=0, resume=True)
    retried = [r for r in again.records if r["case_id"] == cases[1].id]
    assert [(r["status"], r.get("retried")) for r in retried] == [("crash", True)]  # crashed again
    flag.unlink()
    third = runner(tmp_path, jobs=1).run(cases, ["fake:good"], results, suite="s", seed=0, resume=True)
    assert third.stats.skipped == 2  # retried once already: kept, not run a third time
    assert load_results(results).records[("fake:good", cases[1].id, "value")]["status"] == "crash"
    # a fresh file whose crash is then fixed: the retry's pass supersedes the crash everywhere
    other = tmp_path / "o.jsonl"
    flag.write_text("")
    runner(tmp_path, jobs=1).run(cases, ["fake:good"], other, suite="s", seed=0)
    flag.unlink()
    fixed = runner(tmp_path, jobs=1).run(cases, ["fake:good"], other, suite="s", seed=0, resume=True)
    assert [r["verdict"] for r in fixed.records if r["case_id"] == cases[1].id] == ["pass"]
    assert load_results(other).records[("fake:good", cases[1].id, "value")]["verdict"] == "pass"
