"""Test sessions. `nox` runs the default ones; `nox -s NAME` one of them; extra arguments go to pytest.

Every session installs the pinned versions (requirements-dev.txt) and classhub itself.
"""

import nox

nox.options.sessions = ["lint", "unit"]
nox.options.error_on_missing_interpreters = True

PINS = "requirements-dev.txt"


def _pytest(session: nox.Session, *default_paths: str) -> None:
    """Install classhub with pinned dependencies and run pytest on the given paths."""
    session.install("-r", PINS)
    session.install("--no-deps", "-e", ".")
    session.run("pytest", *(session.posargs or default_paths))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("-c", PINS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests: settings, roster, secrets, credentials, rendering, plans and the tasks themselves."""
    _pytest(session, "tests/unit")


@nox.session(name="lock", default=False)
def lock(session: nox.Session) -> None:
    """Re-pin requirements.txt and requirements-dev.txt from pyproject.toml."""
    session.install("-c", PINS, "pip-tools")
    common = ["--quiet", "--strip-extras", "--no-emit-index-url", "--no-emit-find-links",
              "--allow-unsafe", *session.posargs]  # fmt: skip
    session.run("pip-compile", *common, "-o", "requirements.txt", "pyproject.toml")
    session.run("pip-compile", *common, "--extra", "dev", "-o", PINS, "pyproject.toml")
