"""Fixtures shared by every test: a throwaway checkout of classhub and a clean environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from classhub.inputs.settings import KEYS
from classhub.paths import Paths

PROJECT = Path(__file__).resolve().parents[1]

# Property tests run a hundred cases each in CI; `nox -s fuzz` runs the trust boundaries' with
# ten thousand (HYPOTHESIS_PROFILE=fuzz).
settings.register_profile("fuzz", max_examples=10_000, deadline=None)
settings.register_profile("ci", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# What an administrator's clone holds that the tasks read (the package comes from the install).
CHECKOUT_FILES = (".env.example", "userlist", "tasks.py", "nginx", "secrets/README.md")


def make_checkout(dest: Path) -> Paths:
    for name in CHECKOUT_FILES:
        src, dst = PROJECT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    (dest / "secrets").chmod(0o755)  # as git leaves it in a fresh clone
    return Paths.at(dest)


@pytest.fixture
def checkout(tmp_path: Path) -> Paths:
    """A fresh clone's files in a temporary folder: no .env, no secrets yet."""
    return make_checkout(tmp_path / "clone")


# Unit tests never reach the Docker engine CI runs for the end-to-end tests.
NO_ENGINE = "unix:///nonexistent/docker.sock"


def clean_environ(**extra: str) -> dict[str, str]:
    """The process environment without any classhub setting in it, plus `extra`.

    DOCKER_HOST points nowhere unless `extra` says otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env["DOCKER_HOST"] = NO_ENGINE
    env.update(extra)
    return env


def invoke(paths: Paths, *args: str, env: dict[str, str] | None = None, timeout: int = 120):
    """Run `invoke ARGS` in the checkout as an administrator would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=paths.root,
        env=env if env is not None else clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int, int]]:
    """Every file and folder below root: content, mode, inode and mtime, to prove nothing changed.

    Inode and mtime catch a rewrite with the same content (an atomic write makes a new inode).
    """
    result = {}
    for path in sorted(root.rglob("*")):
        st = path.stat()
        content = path.read_bytes() if path.is_file() else b"<dir>"
        result[str(path.relative_to(root))] = (
            content,
            st.st_mode & 0o7777,
            st.st_ino,
            st.st_mtime_ns,
        )
    return result


def plan_rows(text: str) -> dict[str, tuple[str, str]]:
    """The rows of the plan table in a task's output, by component: (state, action), each with
    its wrapped lines joined again (classhub.plan.table wraps to 100 columns)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("COMPONENT "))
    header = lines[start]
    state_at, action_at = header.index("STATE"), header.index("ACTION")
    rows: dict[str, list[list[str]]] = {}
    current = None
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        parts = [
            line[:state_at].strip(),
            line[state_at:action_at].strip(),
            line[action_at:].strip(),
        ]
        if parts[0]:
            current = rows.setdefault(parts[0], [[], []])
        for column, part in zip(current, parts[1:], strict=True):
            if part:
                column.append(part)
    return {name: (" ".join(state), " ".join(action)) for name, (state, action) in rows.items()}
