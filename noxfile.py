"""nox sessions: each installs what it needs itself, with the exact pins of constraints.txt (the
package declares ranges, so it installs next to a user's own torch; the pins are for CI and here)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

OUT = Path("reports/out")
CONSTRAINTS = "constraints.txt"
PACKAGES = ("reference", "cases", "harness", "reports")


CHROMIUM = Path("/usr/bin/chromium")
BROWSER_PACKAGES = ("chromium", "chromium-driver")  # Debian's: /usr/bin/chromium, /usr/bin/chromedriver


def install_browser(session: nox.Session) -> bool:
    """Under CI (env CI set), as root with apt-get and without /usr/bin/chromium, install Debian's
    chromium and chromium-driver so that tests/test_report_browser.py runs. A failed install is a
    warning, not a failed session: that test then skips and says why. Returns whether it installed."""
    if not os.environ.get("CI") or CHROMIUM.exists():
        return False
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        session.log("CI without root or apt-get: not installing chromium; the browser test will skip")
        return False
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        session.run_install("apt-get", "update", env=env, external=True)
        session.run_install("apt-get", "install", "-y", "--no-install-recommends", *BROWSER_PACKAGES,
                            env=env, external=True)
    except CommandFailed as exc:
        session.warn(f"could not install {' and '.join(BROWSER_PACKAGES)} ({exc.reason or 'apt-get failed'}); "
                     "tests/test_report_browser.py will skip")
        return False
    return True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (what .ci/run runs); under CI it first installs Chromium for the browser test.
    The mlx and scipy extras are the non-torch library backends CI runs end to end (37 and 35 MB,
    seconds to install); the keras / tensorflow / tinygrad / paddle tests skip, saying so, without
    theirs.  The dask extra is installed so that tests/test_sweep.py runs its sweeps on a LocalCluster too."""
    install_browser(session)
    session.install("-c", CONSTRAINTS, "-e", ".[test,fast,mlx,scipy,dask]")
    session.run("pytest", "-n", "2", "-q", *session.posargs)


@nox.session
def gate(session: nox.Session) -> None:
    """The main job: gate torch and numpy on the gate suite, report under reports/out/ (exit 1 = fail)."""
    session.install("-c", CONSTRAINTS, "-e", ".[fast]")
    OUT.mkdir(parents=True, exist_ok=True)
    session.run("losscheck", "gate", "--backend", "torch", "--backend", "numpy",
                "--results", str(OUT / "results.jsonl"), "--overwrite", "--report", str(OUT),
                *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Render a results file: `nox -s report -- RESULTS [--out DIR]` (default: the gate's results)."""
    session.install("-c", CONSTRAINTS, "-e", ".[fast]")
    args = list(session.posargs) or [str(OUT / "results.jsonl")]
    if "--out" not in args:
        args += ["--out", str(OUT)]
    session.run("losscheck", "report", *args)


@nox.session
def regression(session: nox.Session) -> None:
    """Precision regression: `nox -s regression -- BASE NEW [--factor F]`, exit 1 on a regression.

    Without arguments: run the gate suite for torch twice (the second run reads the warm oracle
    cache) and compare the two result sets — a self-check that must pass.
    """
    session.install("-c", CONSTRAINTS, "-e", ".[fast]")
    out = OUT / "compare"
    if session.posargs:
        session.run("losscheck", "compare", *session.posargs, "--gate", "--out", str(out))
        return
    runs = OUT / "regression"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    for name in ("base", "new"):
        session.run("losscheck", "run", "--backend", "torch", "--results", str(runs / f"{name}.jsonl"),
                    "--overwrite")
    session.run("losscheck", "compare", str(runs / "base.jsonl"), str(runs / "new.jsonl"),
                "--gate", "--out", str(out))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (not tests): the oracle's throughput, the gate's wall time and the exact matrix
    product of linear_cross_entropy at an LLM shape."""
    session.install("-c", CONSTRAINTS, "-e", ".[fast]")
    for script in ("benchmarks/bench_oracle.py", "benchmarks/bench_gate.py", "benchmarks/bench_linear_ce.py"):
        if Path(script).is_file():
            session.run("python", script, *session.posargs)
        else:
            session.log(f"skipping {script}: not present")


@nox.session
def audit(session: nox.Session) -> None:
    """The oracle against each loss's brute force on the gate suite (exit 1 on a disagreement):
    `nox -s audit -- [--jobs N] [--loss L] [--json OUT] ...` (posargs go to benchmarks/audit.py)."""
    session.install("-c", CONSTRAINTS, "-e", ".[fast]")
    session.run("python", "benchmarks/audit.py", "--suite", "gate", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the four packages, the tests and this file."""
    session.install("ruff")
    session.run("ruff", "check", *PACKAGES, "tests", "noxfile.py", *session.posargs)
