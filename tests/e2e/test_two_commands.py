"""Two commands (issue: two commands on a fresh server): README.md's Quick start, read from the
README itself, run on a fresh clone of this checkout with only a unique HUB_NAME and PORT given
through the environment; then a student signs in through the form and runs code. The second
command, the tests, is what CI runs (.ci/run), which this suite is part of.

The clone's notebook image is its own (NOTEBOOK_IMAGE's default, classhub-notebook:HUB_NAME), so
its pristine class environment does not replace the test hub's; every layer but the class's own
is taken from Docker's cache.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import secrets
import shutil
import subprocess
import time

import docker.errors

from classhub import names
from classhub.student import Browser
from tests.conftest import PROJECT

from .conftest import Hub, engine_environ, free_port, sweep


def quick_start() -> list[list[str]]:
    """The command blocks of README.md's Quick start, as lines."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip().splitlines() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_ci_runs_the_readmes_test_command():
    bring_up, test = quick_start()
    assert len(bring_up) == 2 and bring_up[0].startswith("git clone "), bring_up
    run = (PROJECT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    skipped = ("#", "set ", "cd ", "mkdir ", "trap ", "started=", "printf ")
    assert [line for line in run if line and not line.startswith(skipped)] == test


def fresh_clone(dest) -> None:
    """What a clone of this checkout holds: its tracked files (and new ones not ignored), as they
    are now, with their modes; nothing else (no .venv, no .env, no secrets)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = PROJECT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def test_the_first_command_brings_up_a_hub_a_student_uses(hub: Hub, tmp_path):
    (clone, bring_up), _ = quick_start()
    folder = clone.rsplit("cd ", 1)[1].strip()
    root = tmp_path / folder
    fresh_clone(root)
    assert not (root / ".venv").exists() and not (root / ".env").exists()
    name, port = f"e2e{secrets.token_hex(3)}", free_port()
    env = engine_environ(HUB_NAME=name, PORT=str(port))  # its image: classhub-notebook:NAME
    try:
        started = time.monotonic()
        first = subprocess.run(
            ["bash", "-c", bring_up],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        cold = time.monotonic() - started
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert (root / ".venv" / "bin" / "invoke").exists()
        url = f"http://127.0.0.1:{port}/{name}/"
        assert f"URL:      {url}" in first.stdout and "Students reach the hub" in first.stdout

        # The same entry runs every task afterwards.
        listed = subprocess.run(["bash", "-c", f"{bring_up} login --csv"], cwd=root, env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        passwords = {row["username"]: row["password"]
                     for row in csv.DictReader(io.StringIO(listed.stdout))}  # fmt: skip
        student = Browser(url, "student1")
        assert student.login(passwords["student1"]).status_code == 302  # the login form
        student.start()
        assert student.open_lab().status_code == 200
        assert student.run("print(sum(range(10)))").strip() == "45"

        again = subprocess.run(["bash", "-c", bring_up], cwd=root, env=env, capture_output=True,
                               text=True, timeout=600)  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        warm = again.stdout.splitlines()
        assert "Nothing to change: everything is already set up." in warm, again.stdout
        # What was checked (and the homes' limits), the login, the way in.
        assert len(warm) <= 16, again.stdout
        assert f"  URL:      {url}" in warm and "  Username: hub-admin" in warm, again.stdout
        hub.figures["two commands: first, fresh clone (s)"] = cold
        hub.figures["two commands: again, lines printed"] = len(again.stdout.splitlines())
    finally:
        sweep(hub.client, name)
        with contextlib.suppress(docker.errors.ImageNotFound):  # the fresh hub's own tag
            hub.client.images.remove(names.notebook_image(name), noprune=True)
