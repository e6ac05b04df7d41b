"""nox sessions: each installs what it needs itself (torch pinned in pyproject.toml)."""
from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (what .ci/run runs)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", "-q", *session.posargs)
