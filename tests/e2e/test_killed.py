"""Tasks killed with SIGKILL at their riskiest moments (issue "faults and load", item 2).

One hub of its own, set up from a new checkout and killed in turn: while it makes the students'
volumes, while it rebuilds the class's image, while the hub starts, while the hub's database is
copied into PostgreSQL, and during a backup. Each kill comes the moment the engine reports the
step under way (Docker's event stream), to the task's whole process group, as an administrator's
lost SSH session or the OOM killer would. After each: `status` tells the truth, the next run
completes, a run after that changes nothing, every object the engine made carries the hub's
labels (so destroy finds it), and no file is lost. The tests run in this file's order, each on
the hub the one before left.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests

from classhub import hubfile, names
from tests.conftest import invoke, plan_rows

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, set_env, sweep

ROSTER = "hub-admin admin\nann team\nbob team\ncarl\n"


@dataclass
class Killed:
    output: str  # what the task printed before it was killed
    event: dict  # the engine's event that set the kill off


def kill_when(hub: Hub, args: list[str], when: Callable[[dict], bool], timeout: float = 900):
    """Run `invoke ARGS` in the hub's checkout and SIGKILL its process group the moment the engine
    reports an event `when` accepts. Fails if the task ends before such an event."""
    events = hub.client.events(decode=True, since=int(time.time()) - 1)
    seen: list[dict] = []
    matched = threading.Event()

    def watch() -> None:
        try:
            for event in events:
                if when(event):
                    seen.append(event)
                    matched.set()
                    return
        except Exception:  # the stream closed below
            return

    threading.Thread(target=watch, daemon=True).start()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", *args], cwd=hub.paths.root, env=engine_environ(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not matched.wait(0.01):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.communicate()[0] if process.poll() is not None else ""
                pytest.fail(f"invoke {' '.join(args)} ended before the kill point:\n{output[-3000:]}")
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
    finally:
        events.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    return Killed(output, seen[0])


def is_(kind: str, action: str, actor: str = "", **attributes: str) -> Callable[[dict], bool]:
    """An event of that type and action, of that actor (a volume's name) or one whose attributes
    include those given (a container's name, its labels)."""

    def check(event: dict) -> bool:
        found = event.get("Actor", {})
        return (
            event.get("Type") == kind
            and event.get("Action") == action
            and (not actor or found.get("ID") == actor)
            and all(found.get("Attributes", {}).get(k) == v for k, v in attributes.items())
        )

    return check


def completes(hub: Hub, *args: str) -> str:
    result = hub.invoke(*args, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    return result.stdout


def settled(hub: Hub) -> None:
    """The run after the one that completed changes nothing, and every object of the engine is
    either another hub's or labelled as this hub's."""
    assert "Nothing to change" in completes(hub, "setup")
    assert unlabelled(hub.client) == []


def unlabelled(client: docker.DockerClient) -> list[str]:
    """Containers and volumes that carry no hub's label (all of classhub's do; so do the shared
    test hub's; a killed build's leftovers would not)."""
    found = [f"container {c.name} ({c.status})" for c in client.containers.list(all=True)
             if names.LABEL_HUB not in c.labels]  # fmt: skip
    found += [f"volume {v.name}" for v in client.volumes.list()
              if names.LABEL_HUB not in (v.attrs.get("Labels") or {})]  # fmt: skip
    return found


def status_rows(hub: Hub) -> dict[str, tuple[str, str]]:
    result = hub.invoke("status")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return plan_rows(result.stdout)


def owner_and_mode(hub: Hub, volume: str) -> str:
    output = hub.client.containers.run(
        hub.image, ["stat", "-c", "%u:%g %a", "/v"], entrypoint=[], remove=True,
        volumes={volume: {"bind": "/v", "mode": "ro"}}, network_disabled=True,
    )  # fmt: skip
    return output.decode().strip()


@pytest.fixture(scope="module")
def victim(hub: Hub, tmp_path_factory) -> Hub:
    """A new checkout of a hub of its own, not yet set up (the shared hub's images are built)."""
    name = f"kill{secrets.token_hex(3)}"
    port = free_port()
    paths = new_checkout(tmp_path_factory.mktemp("killed") / "clone", name, port, ROSTER)
    try:
        yield Hub(name, paths, port, {}, hub.client)
    finally:
        sweep(hub.client, name)


def test_setup_killed_while_making_the_volumes_finishes_them_the_next_time(victim: Hub):
    assert unlabelled(victim.client) == []  # nothing is left by the tests before
    home = names.user_volume(victim.name, "ann")
    killed = kill_when(victim, ["setup"], is_("volume", "create", home))
    assert "-> user volumes (homes): create" in killed.output
    # The volumes exist, labelled, but their owner is still root: status says so.
    state, action = status_rows(victim)["user volumes (homes)"]
    assert "made by an interrupted run, without their owner yet" in state, state
    assert owner_and_mode(victim, home).startswith("0:0 ")
    assert unlabelled(victim.client) == []
    completes(victim, "setup")
    for user in ("hub-admin", "ann", "bob", "carl"):
        assert owner_and_mode(victim, names.user_volume(victim.name, user)) == "1000:100 755"
    assert owner_and_mode(victim, names.group_volume(victim.name, "team")) == "1000:100 2775"
    settled(victim)
    victim.passwords.update(read_passwords(victim.paths))
