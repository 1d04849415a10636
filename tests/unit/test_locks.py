"""One task that changes a hub at a time (issue "Faults" 1): real processes, real flock.

A holder is a separate process that takes the locks as a task does and sleeps; the tasks run as an
administrator runs them (`invoke ... --files-only`, no engine needed).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classhub import locks
from classhub.paths import Paths
from tests.conftest import clean_environ, invoke, make_checkout, snapshot

HOLDER = """
import sys, time
from classhub import locks
from classhub.paths import Paths
with locks.held(Paths.at(sys.argv[1]), sys.argv[2], "invoke setup"):
    print("held", flush=True)
    time.sleep(120)
"""


def hold(paths: Paths, hub: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(paths.root), hub],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def hub() -> str:
    return f"lock{secrets.token_hex(3)}"  # a HUB_NAME no other test or run holds


def env(hub: str) -> dict[str, str]:
    return clean_environ(HUB_NAME=hub)


def test_a_task_that_finds_the_hub_busy_names_the_holder_and_changes_nothing(
    checkout: Paths, hub: str
):
    holder = hold(checkout, hub)
    try:
        before = snapshot(checkout.root)
        began = time.monotonic()
        result = invoke(checkout, "setup", "--files-only", env=env(hub))
        waited = time.monotonic() - began
        assert result.returncode == 1, result.stdout
        assert f"invoke setup (process {holder.pid}, since " in result.stderr, result.stderr
        assert "is changing this hub; wait for it to finish" in result.stderr
        assert "Nothing was changed" in result.stderr
        assert waited >= locks.WAIT  # it waited a little first
        assert snapshot(checkout.root) == before  # the locks are not in the checkout
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over(checkout: Paths, hub: str):
    holder = hold(checkout, hub)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    result = invoke(checkout, "setup", "--files-only", env=env(hub))
    assert result.returncode == 0, result.stderr
    assert (checkout.secrets_dir / "cookie_secret").exists()


def test_a_task_waits_for_one_that_ends_within_the_wait(checkout: Paths, hub: str):
    holder = hold(checkout, hub)
    later = subprocess.Popen(
        [sys.executable, "-m", "invoke", "setup", "--files-only"], cwd=checkout.root,
        env=env(hub), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1)
    holder.kill()  # the first task ends while the second waits
    holder.wait()
    _, err = later.communicate(timeout=120)
    assert later.returncode == 0, err
    assert (checkout.secrets_dir / "cookie_secret").exists()


def test_read_only_tasks_never_wait(checkout: Paths, hub: str):
    assert invoke(checkout, "setup", "--files-only", env=env(hub)).returncode == 0
    holder = hold(checkout, hub)
    try:
        for task in (["status"], ["login"], ["setup", "--dry-run"], ["sync", "--dry-run"]):
            began = time.monotonic()
            result = invoke(checkout, *task, env=env(hub))
            assert time.monotonic() - began < locks.WAIT, task
            assert "is changing this hub" not in result.stderr, (task, result.stderr)
    finally:
        holder.kill()
        holder.wait()


def test_another_checkout_of_the_same_hub_name_waits_for_this_one(tmp_path: Path, hub: str):
    first, second = make_checkout(tmp_path / "a"), make_checkout(tmp_path / "b")
    holder = hold(first, hub)
    try:
        result = invoke(second, "setup", "--files-only", env=env(hub))
        assert result.returncode == 1
        assert f"in the checkout {first.root.resolve()}" in result.stderr, result.stderr
        other = invoke(second, "setup", "--files-only", env=env(hub + "x"))  # another hub: free
        assert other.returncode == 0, other.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_task_that_runs_another_holds_its_locks_once(checkout: Paths, hub: str):
    with locks.held(checkout, hub, "invoke restore"):
        with locks.held(checkout, hub, "invoke setup"):  # restore's own setup: no wait
            pass
        assert locks.checkout_lock(checkout).read_text()  # still held, still saying by whom
    assert locks.checkout_lock(checkout).read_text() == ""
