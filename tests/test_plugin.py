"""The pytest plugin as a user meets it: a test module using the ``losscheck`` fixture, run by
pytester in a subprocess (an in-process run re-imports numpy and torch, which they do not survive).
A torch slice passes; a planted defect fails with the worst-elements table and a repro snippet."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LOSSCHECK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "plugin-oracle-cache"))


def test_a_passing_backend_passes(pytester):
    pytester.makepyfile(test_mine="""
        def test_softmax(losscheck):
            result = losscheck.check("torch", suite="smoke", losses=["softmax"], jobs=1)
            # torch's float32 absorption rows (a documented known failure) warn as recursive
            # summation when the smoke rotation gives softmax.absorption float32: a pass with warnings
            assert {r["verdict"] for r in result.records} <= {"pass", "warn"}
            assert all(r["verdict"] == "pass" or r["family"] == "softmax.absorption" for r in result.records)
            assert len(result.records) > 4
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_planted_defect_fails_with_table_and_repro(pytester):
    pytester.makepyfile(test_mine=f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import tests.planted.lse_rounded as mine

        def test_cross_entropy(losscheck):
            losscheck.check(mine, suite="gate", losses=["cross_entropy"], dtypes=["bfloat16"],
                            families=["ce.extreme"])
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*losscheck: * of * checks fail for backend 'tests.planted.lse_rounded' on suite 'gate'*",
        "*worst elements:*",
        "*loss*family*dtype*check*case*index*exact*observed*ulp*",
        "*cross_entropy*ce.extreme*bfloat16*",
        "*repro of the worst case*",
        "*tests.planted.lse_rounded*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_an_unknown_backend_spec_fails_the_test_in_one_line(pytester):
    pytester.makepyfile(test_mine="""
        def test_nothing(losscheck):
            losscheck.check("no.such.module", suite="smoke")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*losscheck: backend 'no.such.module'*"])


def test_a_backend_that_evaluates_nothing_fails_unless_allowed(pytester):
    pytester.makepyfile(test_mine=f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import tests.planted.supports_nothing as mine

        def test_strict(losscheck):
            losscheck.check(mine, suite="smoke", losses=["cross_entropy"], jobs=1)

        def test_allowed(losscheck):
            result = losscheck.check(mine, suite="smoke", losses=["cross_entropy"], jobs=1,
                                     allow_unsupported=True)
            assert {{r["verdict"] for r in result.records}} == {{"unsupported"}}
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*evaluated nothing of a loss it was asked to check (cross_entropy: none of*"])


def test_an_in_process_object_that_hangs_is_killed_at_the_timeout(pytester):
    """issue 10: an object (not a spec) runs in forked workers: its timeout works."""
    pytester.makepyfile(test_mine="""
        import time
        import torch.nn.functional as F

        class Slow:
            def softmax(self, input, dim):
                time.sleep(120)
                return F.softmax(input, dim=dim)

        def test_slow(losscheck):
            losscheck.check(Slow(), suite="smoke", losses=["softmax"], jobs=1, timeout=2)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no result within 2 s*"])


def test_an_in_process_object_that_exits_is_a_crash_not_the_end_of_pytest(pytester):
    pytester.makepyfile(test_mine="""
        import os

        class Exits:
            def softmax(self, input, dim):
                os._exit(3)

        def test_exits(losscheck):
            losscheck.check(Exits(), suite="smoke", losses=["softmax"], jobs=1)

        def test_after():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*worker exited with code 3*"])


def test_the_plugin_applies_torchs_known_failures_as_the_cli_does(pytester):
    """issue 10 §6: torch's absorption failures are known (shipped with the package): the plugin's
    verdicts are the CLI's, xfail with their reason (under --strict: by default they are
    recursive-summation warnings, docs/verdicts.md)."""
    pytester.makepyfile(test_mine="""
        def test_torch(losscheck):
            result = losscheck.check("torch", suite="gate", losses=["softmax"], strict=True,
                                     families=["softmax.absorption"], dtypes=["float32"], jobs=1)
            verdicts = {r["verdict"] for r in result.records}
            assert "xfail" in verdicts and "fail" not in verdicts, verdicts
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)


def test_cli_and_plugin_give_the_same_verdicts_on_the_same_inputs(pytester):
    """issue 10 §6: one configuration path: a pyproject with a tolerance override and a known-failures
    file; the CLI's records and the plugin's agree verdict for verdict."""
    pytester.makefile(".toml", pyproject="""
        [tool.losscheck]
        known_failures = "mine.toml"
        [tool.losscheck.tolerances.float32]
        ulp = 0.75
    """)
    pytester.makefile(".toml", mine="""
        [[known_failures]]
        match = "torch:softmax:softmax.dims:*:*"
        reason = "a planted entry: proves the file is read"
    """)
    pytester.makepyfile(test_mine="""
        import json
        from harness.cli import main

        def test_same(losscheck, tmp_path):
            argv = ["run", "--loss", "softmax", "--dtype", "float32", "--suite", "smoke", "--jobs", "1",
                    "--results", str(tmp_path / "cli.jsonl")]
            assert main(argv) == 0
            cli = {(r["case_id"], r["check"]): r["verdict"]
                   for r in map(json.loads, (tmp_path / "cli.jsonl").read_text().splitlines()[1:])}
            plugin = losscheck.check("torch", suite="smoke", losses=["softmax"], dtypes=["float32"], jobs=1)
            mine = {(r["case_id"], r["check"]): r["verdict"] for r in plugin.records}
            assert cli == mine and cli
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)
