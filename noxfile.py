"""Test sessions. `nox` runs the default ones; `nox -s NAME` one of them; extra arguments go to pytest.

Every session installs the pinned versions (requirements-dev.txt) and classhub itself.
"""

import nox

nox.options.sessions = ["lint", "unit", "e2e"]
nox.options.error_on_missing_interpreters = True

PINS = "requirements-dev.txt"


def _pytest(session: nox.Session, *default_paths: str) -> None:
    """Install classhub with pinned dependencies and run pytest on the given paths."""
    session.install("-r", PINS)
    session.install("--no-deps", "-e", ".")
    session.run("pytest", *(session.posargs or default_paths))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and formatting), then mypy on classhub/ and hub/classhub_hub/ (pyproject.toml)."""
    session.install("-r", PINS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def unit(session: nox.Session) -> None:
    """Unit tests: settings, roster, secrets, credentials, rendering, plans and the tasks themselves."""
    _pytest(session, "tests/unit")


@nox.session
def e2e(session: nox.Session) -> None:
    """End to end on the real Docker engine: setup, logins, spawns, kernels, volumes, groups.

    Needs a running engine (invoke engine). Builds the images on first use (a few minutes)."""
    _pytest(session, "tests/e2e")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """The trust boundaries' property tests with 10,000 generated cases each (CI runs 100): the
    socket proxy's request filter (containers, and services on a swarm) and the hub file's
    reader. About ten minutes."""
    session.env["HYPOTHESIS_PROFILE"] = "fuzz"
    _pytest(session, "tests/unit/test_dockerproxy.py", "tests/unit/test_services.py",
            "tests/unit/test_hubfile_fuzz.py")  # fmt: skip


@nox.session(default=False)
def audit(session: nox.Session) -> None:
    """pip-audit: both images' pinned dependencies against OSV's advisories; fails on any.

    Needs api.osv.dev, or an OSV mirror named by CLASSHUB_OSV_URL."""
    session.install("-c", PINS, "pip-audit")
    session.install("--no-deps", "-e", ".")
    session.run("python", "-m", "classhub.audit")


@nox.session(name="lock", default=False)
def lock(session: nox.Session) -> None:
    """Re-pin requirements.txt and requirements-dev.txt from pyproject.toml, and the images'."""
    session.install("-c", PINS, "pip-tools", "uv")
    common = ["--quiet", "--strip-extras", "--no-emit-index-url", "--no-emit-find-links",
              "--allow-unsafe", *session.posargs]  # fmt: skip
    session.run("pip-compile", *common, "-o", "requirements.txt", "pyproject.toml")
    session.run("pip-compile", *common, "--extra", "dev", "-o", PINS, "pyproject.toml")
    # The images run Debian bookworm's Python 3.11.2, not the host's: uv resolves for that one.
    # The notebook image leaves out what only slows every server's start (base-requirements.in).
    left_out = {"singleuser/base-requirements": ["rfc3987-syntax", "lark"]}
    for pins in ("hub/requirements", "singleuser/base-requirements"):
        skip = [arg for package in left_out.get(pins, []) for arg in ("--no-emit-package", package)]
        session.run("uv", "pip", "compile", "--quiet", "--generate-hashes",
                    "--python-version", "3.11.2", "--python-platform", "x86_64-manylinux_2_36",
                    *skip, "-o", f"{pins}.txt", f"{pins}.in")  # fmt: skip
