"""The CLI's usability (issue: show follows the failing backend, next steps, families, dtype aliases,
function specs, --version, help defaults, progress without a terminal, default outputs under
.losscheck/, no oracle RuntimeWarnings on the terminal).

CLI runs use small slices of the smoke suite and share one oracle cache per module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import shlex
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import cases
from harness import cli as cli_mod
from harness.cli import main
from harness.runner import _Progress

REPO = Path(__file__).resolve().parents[1]
PLANTED = "tests.planted.lse_rounded"


def a_function(*args, **kwargs):
    """A plain function: `--backend tests.test_cli_usability:a_function` is not a backend."""


def cross_entropy(*args, **kwargs):
    """A function named like a loss (the usual mistake: --backend mypkg.losses:cross_entropy)."""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("oracle-cache")


@pytest.fixture(autouse=True)
def _env(cache_dir, monkeypatch):
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(cache_dir))
    monkeypatch.chdir(REPO)  # tests.planted.* importable


def run_cli(*argv: str) -> tuple[int, str, str]:
    """main(argv) with stdout and stderr captured (usable in module-scoped fixtures too)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def read_records(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in lines if r.get("type") == "result"]


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("losscheck: error: "), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def planted(tmp_path_factory, cache_dir):
    """A gate run of a planted defect next to numpy on the smoke suite's seed 1 (cross_entropy,
    bfloat16 given by its alias), whose results file the show tests read."""
    path = tmp_path_factory.mktemp("planted") / "r.jsonl"
    old_cwd, old_env = os.getcwd(), os.environ.get("LOSSCHECK_CACHE_DIR")
    os.chdir(REPO)
    os.environ["LOSSCHECK_CACHE_DIR"] = str(cache_dir)
    try:
        code, out, err = run_cli("gate", "--suite", "smoke", "--seed", "1", "--backend", PLANTED,
                                 "--backend", "numpy", "--loss", "cross_entropy", "--dtype", "BF16",
                                 "--jobs", "2", "--results", str(path))
    finally:
        os.chdir(old_cwd)
        if old_env is None:
            os.environ.pop("LOSSCHECK_CACHE_DIR", None)
        else:
            os.environ["LOSSCHECK_CACHE_DIR"] = old_env
    return SimpleNamespace(code=code, out=out, err=err, path=path, records=read_records(path))


def worst_failing(records: list[dict], backend: str) -> dict:
    order = {"fail": 0, "error": 1}
    bad = [r for r in records if r["backend"] == backend and r["verdict"] in order]
    return min(bad, key=lambda r: (order[r["verdict"]], -float(r.get("max_ulp") or -1)))


# --- 1. show follows the failing backend; ids abbreviate; next steps -----------------------------


def test_dtype_alias_selects_the_dtype(planted):
    assert planted.records and {r["dtype"] for r in planted.records} == {"bfloat16"}


def test_gate_ends_with_a_ready_to_paste_show_command_for_the_worst_failure(planted):
    assert planted.code == 1, planted.out
    block = planted.out[planted.out.index("next steps:"):]
    worst = worst_failing(planted.records, PLANTED)
    assert f"losscheck show {worst['case_id']} --backend {PLANTED} --suite smoke --seed 1" in block
    assert "--backend numpy" not in block  # numpy passes: nothing to show for it
    assert f"worst failing check of {PLANTED} (fail" in block


def test_the_pasted_show_command_shows_the_failing_backend(planted, capsys):
    block = planted.out[planted.out.index("next steps:"):]
    command = next(line.strip() for line in block.splitlines() if line.strip().startswith("losscheck show"))
    code, out, err = run_cli(*shlex.split(command)[1:])
    assert code == 0, err
    worst = worst_failing(planted.records, PLANTED)
    assert f"case {worst['case_id']}: cross_entropy" in out
    assert f"### backend {PLANTED}" in out
    assert re.search(rf"^== {re.escape(worst['check'])}: fail \[ok\]", out, re.MULTILINE), out


def test_show_with_results_takes_backend_suite_and_seed_from_the_file(planted):
    worst = worst_failing(planted.records, PLANTED)
    assert cases.find(worst["case_id"], seed=0) is None  # only seed 1 (the file's) holds it
    code, out, err = run_cli("show", worst["case_id"][:8], "--results", str(planted.path))
    assert code == 0, err
    assert f"case {worst['case_id']}" in out
    assert f"(suite smoke, seed 1): numpy (pass), {PLANTED} (fail)" in out
    assert f"### backend {PLANTED} (from {planted.path})" in out
    assert "### backend numpy" not in out and "### backend torch" not in out  # only the failing one
    assert "   recorded: fail max_ulp=" in out


def test_show_with_results_and_backend_picks_that_backend(planted):
    worst = worst_failing(planted.records, PLANTED)
    code, out, err = run_cli("show", worst["case_id"], "--results", str(planted.path), "--backend", "numpy",
                             "--no-grad")
    assert code == 0, err
    assert "### backend numpy" in out and f"### backend {PLANTED}" not in out
    assert "== value: pass" in out and "   recorded: pass" in out


def test_show_with_results_refuses_an_id_it_has_no_record_of(planted):
    code, _, err = run_cli("show", "zzzz", "--results", str(planted.path))
    assert_one_line_error(code, err)
    assert "no record of a case whose id starts with 'zzzz'" in err


def test_an_ambiguous_prefix_in_a_results_file_lists_the_candidates(planted):
    ids = sorted({r["case_id"] for r in planted.records})
    prefix = next(p for p in "0123456789abcdef" if sum(i.startswith(p) for i in ids) >= 2)
    matching = [i for i in ids if i.startswith(prefix)]
    code, _, err = run_cli("show", prefix, "--results", str(planted.path))
    assert_one_line_error(code, err)
    assert f"case id '{prefix}' is ambiguous: {len(matching)} cases start with it" in err
    assert all(i in err for i in matching[:10])


def test_an_ambiguous_prefix_in_the_suites_is_exit_2_listing_candidates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .losscheck/results.jsonl here
    ids = [c.id for c in cases.build_suite("smoke")]
    prefix = next(p for p in "0123456789abcdef" if sum(i.startswith(p) for i in ids) >= 2)
    code, _, err = run_cli("show", prefix, "--suite", "smoke")
    assert_one_line_error(code, err)
    assert "is ambiguous" in err and "give more of the id" in err
    assert sum(i in err for i in ids if i.startswith(prefix)) >= 2


def test_a_unique_prefix_names_the_case(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    smoke = cases.build_suite("smoke")
    case = next(c for c in smoke if c.loss == "mse_loss")
    prefix = next(case.id[:n] for n in range(1, 17) if sum(c.id.startswith(case.id[:n]) for c in smoke) == 1)
    code, out, err = run_cli("show", prefix, "--suite", "smoke", "--backend", "numpy", "--no-grad")
    assert code == 0, err
    assert f"case {case.id}: mse_loss" in out and "### backend numpy" in out


def test_find_prefix_finds_a_case_across_seeds():
    seed1 = next(c for c in cases.build_suite("smoke", seed=1) if c.loss == "mse_loss")
    assert cases.find_unique(seed1.id[:12], ("smoke",), seeds=(0,)) is None
    case, seed = cases.find_unique(seed1.id[:12], ("smoke",), seeds=(0, 1, 2))
    assert case.id == seed1.id and seed == 1
    with pytest.raises(cases.AmbiguousId) as info:
        cases.find_unique("", ("smoke",))
    assert info.value.count == len(cases.build_suite("smoke")) and len(info.value.candidates) == 10


def _rec(backend, verdict, max_ulp, case_id, check="value", **extra):
    return {"type": "result", "backend": backend, "case_id": case_id, "check": check, "verdict": verdict,
            "max_ulp": max_ulp, "status": "ok", "loss": "cross_entropy", "family": "ce.random",
            "dtype": "float32", **extra}


def test_next_steps_choose_the_worst_by_verdict_then_max_ulp():
    records = [
        _rec("a", "fail", 3.0, "a-fail-3"),
        _rec("a", "fail", "inf", "a-fail-inf"),  # results files write inf as a string
        _rec("a", "error", None, "a-error", status="crash"),
        _rec("b", "error", None, "b-error", status="error"),
        _rec("b", "warn", 900.0, "b-warn"),
        _rec("c", "pass", 0.5, "c-pass"),
        _rec("d", "xfail", 1e6, "d-xfail"),
    ]
    lines = cli_mod.next_steps(records)
    text = "\n".join(lines)
    assert lines[0] == "next steps:"
    assert "losscheck show a-fail-inf --backend a" in text and "a-fail-3" not in text
    assert "losscheck show b-error --backend b" in text and "b-warn" not in text
    assert "--backend c" not in text and "--backend d" not in text
    assert "--suite" not in text and "--seed" not in text  # the defaults are left out
    strict = "\n".join(cli_mod.next_steps(records, strict=True, suite="full", seed=3, report="out/index.html"))
    assert "open the report: out/index.html" in strict
    assert "losscheck show b-error --backend b --suite full --seed 3" in strict  # error beats warn
    assert cli_mod.next_steps([_rec("c", "pass", 0.5, "c")]) == []


def test_show_command_quotes_what_the_shell_would_split():
    cmd = cli_mod.show_command("abc", "my pkg:attr", "smoke", 0)
    assert shlex.split(cmd) == ["losscheck", "show", "abc", "--backend", "my pkg:attr", "--suite", "smoke"]


# --- 2. families, --family suggestions, dtype aliases, function specs, --version, help -----------


def test_families_lists_every_family_with_loss_counts_and_description():
    from cases.families import FAMILIES

    code, out, _ = run_cli("families")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["family", "loss", "gate", "full", "description"]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert list(rows) == list(FAMILIES)
    gate = [c for c in cases.build_suite("gate") if c.family == "ce.weight"]
    assert rows["ce.weight"].split()[1:3] == ["cross_entropy", str(len(gate))]
    # the docstring's first sentence, whole even where it wraps onto a second source line
    assert rows["mse.overflow"].endswith("can still be finite (an accumulation test of its own).")
    assert FAMILIES["ce.weight"].doc in rows["ce.weight"]


def test_families_of_one_loss_and_an_unknown_loss():
    code, out, _ = run_cli("families", "kl_div")
    assert code == 0
    assert {ln.split()[1] for ln in out.splitlines()[1:]} == {"kl_div"}
    code, _, err = run_cli("families", "crossentropy")
    assert_one_line_error(code, err)
    assert "did you mean cross_entropy" in err


def test_an_unknown_family_glob_suggests_close_names():
    code, _, err = run_cli("gate", "--family", "ce.wieght")
    assert_one_line_error(code, err)
    assert "--family 'ce.wieght' matches no family" in err and "did you mean ce.weight" in err
    code, _, err = run_cli("gate", "--family", "pos_weight")  # a bare word: the families holding it
    assert_one_line_error(code, err)
    assert "bcel.pos_weight" in err


@pytest.mark.parametrize("alias, dtype", [("fp16", "float16"), ("half", "float16"), ("bf16", "bfloat16"),
                                          ("f32", "float32"), ("float", "float32"), ("fp32", "float32"),
                                          ("fp64", "float64"), ("double", "float64"), ("f64", "float64"),
                                          ("Float64", "float64")])
def test_dtype_aliases(alias, dtype):
    assert cli_mod.build_parser().parse_args(["gate", "--dtype", alias]).dtype == [dtype]


def test_an_unknown_dtype_still_says_what_is_known():
    code, _, err = run_cli("gate", "--dtype", "float8")
    assert_one_line_error(code, err)
    assert "unknown dtype 'float8'" in err and "bf16" in err


@pytest.mark.parametrize("spec, parent", [("tests.test_cli_usability:a_function", "tests.test_cli_usability"),
                                          ("tests.test_cli_usability.a_function", "tests.test_cli_usability")])
def test_a_function_as_backend_says_to_pass_the_module(spec, parent):
    code, _, err = run_cli("gate", "--backend", spec, "--suite", "smoke")
    assert_one_line_error(code, err)
    assert f"backend '{spec}' names a function, not a backend" in err
    assert f"--backend {parent}" in err


def test_a_loss_named_function_as_backend_suggests_module_and_loss():
    message = cli_mod._function_spec_error("tests.test_cli_usability:cross_entropy")
    assert "--backend tests.test_cli_usability --loss cross_entropy" in message
    assert cli_mod._function_spec_error("numpy") is None  # a module is not a function


def test_version_prints_the_package_version():
    code, out, _ = run_cli("--version")
    assert code == 0
    assert out.strip() == f"losscheck {metadata.version('losscheck')}"


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_has_help_that_states_its_default():
    parser = cli_mod.build_parser()
    commands = dict(_subparsers(parser))
    assert {"gate", "run", "suites", "families", "show", "report", "compare", "sweep"} <= set(commands)
    for name, sub in commands.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            if action.option_strings and not action.required:
                text = formatter._expand_help(action)
                assert "default" in text, (name, action.option_strings, text)
    assert "(default: gate)" in commands["gate"].format_help()
    assert "(default: off)" in commands["gate"].format_help()


# --- 3. progress ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_without_a_terminal_prints_a_line_every_ten_percent():
    stream, clock = io.StringIO(), Clock()
    bar = _Progress(7576, True, stream=stream, tty=False, clock=clock, every_s=1e9)
    try:
        for _ in range(7576):
            clock.t += 0.01
            bar.advance({"verdict": "pass"})
    finally:
        bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10, lines
    assert lines[0] == "losscheck: 758/7,576 checks (10 %), 8 s elapsed, ETA 1 min 08 s"
    assert lines[-1] == "losscheck: 7,576/7,576 checks (100 %), 1 min 16 s elapsed"


def test_progress_prints_every_30_s_when_ten_percent_takes_longer():
    stream, clock = io.StringIO(), Clock()
    bar = _Progress(1000, True, stream=stream, tty=False, clock=clock)
    try:
        bar.oracle_start(4)
        for _ in range(4):
            bar.oracle_advance()
        for i in range(50):  # 10 s per check: 10 % takes 1000 s
            clock.t += 10
            bar.advance({"verdict": "fail" if i == 0 else "pass"})
    finally:
        bar.close()
    lines = stream.getvalue().splitlines()
    assert not any("oracle" in ln for ln in lines)  # it finished within the quiet first 2 s
    assert len(lines) == 50 // 3  # at 30, 60, ..., 480 s
    assert lines[0] == "losscheck: 3/1,000 checks (0 %), 30 s elapsed, ETA 2 h 46 min, 1 failing"
    assert lines[-1].startswith("losscheck: 48/1,000 checks (4 %), 8 min 00 s elapsed, ETA ")


def test_progress_heartbeat_while_nothing_finishes():
    stream = io.StringIO()
    bar = _Progress(10, True, stream=stream, tty=False, every_s=0.05, quiet_s=0.0)
    try:
        bar.oracle_start(3)
        time.sleep(0.5)  # a slow oracle call: no record arrives
    finally:
        bar.close()
    assert "losscheck: oracle 0/3 cases (0 %)" in stream.getvalue()
    assert not bar._thread.is_alive()


def test_progress_is_quiet_for_a_quick_run_and_when_disabled():
    stream, clock = io.StringIO(), Clock()
    bar = _Progress(100, True, stream=stream, tty=False, clock=clock)
    for _ in range(100):
        bar.advance({"verdict": "pass"})
    bar.close()
    off = _Progress(100, False, stream=stream, tty=False, clock=clock)
    off.advance({"verdict": "pass"})
    off.close()
    assert stream.getvalue() == "" and off._thread is None


def test_progress_on_a_terminal_is_a_bar_with_unit_and_eta():
    from rich.progress import TimeRemainingColumn

    bar = _Progress(10, True, stream=io.StringIO(), tty=True)
    try:
        bar.oracle_start(2)
        bar.oracle_advance()
        bar.advance({"verdict": "fail"})
        assert any(isinstance(c, TimeRemainingColumn) for c in bar.bar.columns)
        tasks = {t.description: t for t in bar.bar.tasks}
        assert tasks["oracle"].fields["unit"] == "cases" and tasks["oracle"].completed == 1
        assert tasks["checks"].fields["unit"] == "checks" and tasks["checks"].completed == 1
        assert tasks["checks"].fields["note"] == "1 failing"
    finally:
        bar.close()


def test_the_cli_prints_progress_lines_to_a_stderr_that_is_no_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(_Progress, "quiet_s", 0.0)
    code, _, err = run_cli("run", "--suite", "smoke", "--backend", "numpy", "--family", "mse.random",
                           "--jobs", "1", "--results", str(tmp_path / "r.jsonl"))
    assert code == 0
    assert re.search(r"^losscheck: oracle \d+/\d+ cases \(100 %\)", err, re.MULTILINE), err
    assert re.search(r"^losscheck: (\d+)/\1 checks \(100 %\), \d+ s elapsed$", err, re.MULTILINE), err


# --- 4. default outputs under .losscheck/ ------------------------------------------------------------

SLICE = ("--suite", "smoke", "--backend", "numpy", "--family", "mse.random", "--jobs", "1")


def test_default_results_live_in_dot_losscheck_and_the_previous_run_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("gate", *SLICE)
    assert code == 0, err
    results, previous = tmp_path / ".losscheck" / "results.jsonl", tmp_path / ".losscheck" / "results.previous.jsonl"
    assert "results: .losscheck/results.jsonl" in out and results.is_file()
    assert not (tmp_path / "losscheck-results.jsonl").exists()
    assert (tmp_path / ".losscheck" / ".gitignore").read_text().splitlines()[-1] == "*"
    first = json.loads(results.read_text().splitlines()[0])["run_id"]

    code, out, err = run_cli("gate", *SLICE)  # a plain second gate replaces it, keeping the first
    assert code == 0, err
    assert "(the run before: .losscheck/results.previous.jsonl)" in out
    assert json.loads(previous.read_text().splitlines()[0])["run_id"] == first
    second = json.loads(results.read_text().splitlines()[0])["run_id"]
    assert second != first and read_records(results)

    code, out, err = run_cli("gate", *SLICE, "--resume")  # --resume continues the default file
    assert code == 0, err
    assert "0 records new" in out and json.loads(results.read_text().splitlines()[0])["run_id"] == second


def test_a_named_results_file_is_still_refused_without_resume_or_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    named = tmp_path / "mine.jsonl"
    named.write_text('{"type":"run"}\n')
    code, _, err = run_cli("gate", *SLICE, "--results", str(named))
    assert_one_line_error(code, err)
    assert "--resume" in err and "--overwrite" in err
    assert named.read_text() == '{"type":"run"}\n' and not (tmp_path / ".losscheck").exists()


def test_the_repository_ignores_dot_losscheck():
    assert ".losscheck/" in (REPO / ".gitignore").read_text().splitlines()


def test_show_reads_the_default_results_file_when_it_holds_the_case(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("run", *SLICE, "--no-grad")[0] == 0
    rec = read_records(tmp_path / ".losscheck" / "results.jsonl")[0]
    code, out, err = run_cli("show", rec["case_id"][:10], "--no-grad")
    assert code == 0, err
    assert "recorded in .losscheck/results.jsonl (suite smoke, seed 0): numpy (pass)" in out
    assert "### backend numpy (from .losscheck/results.jsonl)" in out


# --- 5. the oracle's NumPy RuntimeWarnings never reach the terminal -----------------------------


def _overflowing_oracle(real):
    def compute(case, check):
        with np.errstate(all="warn"):
            np.array([1e300]).astype(np.float32)  # RuntimeWarning: overflow encountered in cast
        warnings.warn("a warning that is not NumPy's floating-point noise", UserWarning, stacklevel=1)
        return real(case, check)
    return compute


def test_oracle_quietly_silences_numpy_floating_point_warnings_only(monkeypatch):
    from harness import cache

    monkeypatch.setattr(cache, "compute", _overflowing_oracle(lambda case, check: ("exact", case, check)))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cache.compute("c", "value")  # the control: unwrapped, the overflow warning is there
    assert any("overflow encountered in cast" in str(w.message) for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cli_mod.oracle_quietly("c", "value") == ("exact", "c", "value")
    assert [str(w.message) for w in seen] == ["a warning that is not NumPy's floating-point noise"]
    assert pickle.loads(pickle.dumps(cli_mod.oracle_quietly)) is cli_mod.oracle_quietly  # workers get it


def test_runs_hand_the_quiet_oracle_to_their_workers(tmp_path, monkeypatch):
    from harness import runner

    seen = []
    original = runner.Runner.__post_init__

    def spy(self):
        seen.append(self.oracle)
        original(self)

    monkeypatch.setattr(runner.Runner, "__post_init__", spy)
    code, _, _ = run_cli("run", *SLICE, "--no-grad", "--results", str(tmp_path / "r.jsonl"))
    assert code == 0 and seen == [cli_mod.oracle_quietly]


def test_show_prints_no_oracle_warning(tmp_path, monkeypatch, capsys):
    from harness import cache

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path / "cold"))  # the oracle computes here
    monkeypatch.setattr(cache, "compute", _overflowing_oracle(cache.compute))
    case = next(c for c in cases.build_suite("smoke") if c.loss == "mse_loss")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code = main(["show", case.id, "--suite", "smoke", "--backend", "numpy", "--no-grad"])
    out, err = capsys.readouterr()
    assert code == 0 and f"case {case.id}" in out
    shown = [str(w.message) for w in seen]
    assert not any("encountered" in m for m in shown) and "RuntimeWarning" not in err
    assert "a warning that is not NumPy's floating-point noise" in shown  # other warnings still show


def test_main_filters_numpy_warnings_attributed_to_the_oracle_only(monkeypatch):
    def noisy(args):
        for module in ("reference.settle", "mypkg.losses"):
            warnings.warn_explicit("overflow encountered in cast", RuntimeWarning, f"{module}.py", 1,
                                   module=module)
        return 0

    monkeypatch.setitem(cli_mod.COMMANDS, "suites", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["suites"]) == 0
        assert [w.filename for w in seen] == ["mypkg.losses.py"]  # the oracle's is filtered
        noisy(None)  # and the filter does not outlive main()
    assert [w.filename for w in seen] == ["mypkg.losses.py", "reference.settle.py", "mypkg.losses.py"]


def test_a_cold_cli_run_on_overflowing_cases_prints_no_runtime_warning(tmp_path):
    """The whole path (console script, forkserver workers, the oracle computing squares that
    overflow): stderr holds progress lines and nothing from NumPy."""
    env = {**os.environ, "LOSSCHECK_CACHE_DIR": str(tmp_path / "cold"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--backend", "numpy", "--loss", "mse_loss", "--family",
         "mse.overflow", "--dtype", "fp16", "--jobs", "2", "--results", str(tmp_path / "r.jsonl")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr and "encountered in" not in proc.stderr, proc.stderr
    assert read_records(tmp_path / "r.jsonl")
