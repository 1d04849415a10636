"""Tasks killed with SIGKILL at their riskiest moments (issue "faults and load", item 2).

One hub of its own, set up from a new checkout and killed in turn: while it makes the students'
volumes, while it rebuilds the class's image, while the hub starts, while the hub's database is
copied into PostgreSQL, during a backup, and twice during a restore. Each kill comes the moment the engine reports the
step under way (Docker's event stream), to the task's whole process group, as an administrator's
lost SSH session or the OOM killer would. After each: `status` tells the truth, the next run
completes, a run after that changes nothing, every object the engine made carries the hub's
labels (so destroy finds it), and no file is lost. The tests run in this file's order, each on
the hub the one before left.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
import requests

from classhub import hubfile, names
from classhub.student import Browser
from tests.conftest import plan_rows

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, set_env, sweep

ROSTER = "hub-admin admin\nann team\nbob team\ncarl\n"
KEPT: dict[str, str] = {}  # what a test made for a later one to find


def kill_when(hub: Hub, args: list[str], when: Callable[[dict], bool], timeout: float = 900) -> str:
    """Run `invoke ARGS` in the hub's checkout and SIGKILL its process group the moment the engine
    reports an event `when` accepts; what it printed until then. Fails if the task ends before
    such an event."""
    # Only what happens once the task has begun: the stream starts a second early (its `since`
    # is whole seconds), and the step just before (a backup's helpers, say) must not count.
    begun = time.time_ns()
    events = hub.client.events(decode=True, since=int(time.time()) - 1)
    matched = threading.Event()

    def watch() -> None:
        try:
            for event in events:
                if event.get("timeNano", 0) >= begun and when(event):
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
                pytest.fail(
                    f"invoke {' '.join(args)} ended before the kill point:\n{output[-3000:]}"
                )
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
    finally:
        events.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    return output


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
    """The run after the one that completed changes nothing, and every object the engine made
    since these tests began is labelled as a hub's."""
    assert "Nothing to change" in completes(hub, "setup")
    assert unlabelled(hub) == []


def unlabelled(hub: Hub) -> list[str]:
    """Containers and volumes made since the victim's tests began that carry no hub's label (all
    of classhub's do; a killed build's leftovers, say, would not)."""
    began = dt.datetime.fromtimestamp(hub.figures["began"], dt.timezone.utc)

    def new(created: str) -> bool:
        return dt.datetime.fromisoformat(created) >= began

    found = [f"container {c.name} ({c.status})" for c in hub.client.containers.list(all=True)
             if new(c.attrs["Created"]) and names.LABEL_HUB not in c.labels]  # fmt: skip
    found += [f"volume {v.name}" for v in hub.client.volumes.list()
              if new(v.attrs["CreatedAt"]) and names.LABEL_HUB not in (v.attrs.get("Labels") or {})]  # fmt: skip
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
        yield Hub(name, paths, port, {}, hub.client, figures={"began": time.time() - 1})
    finally:
        sweep(hub.client, name)


def test_setup_killed_while_making_the_volumes_finishes_them_the_next_time(victim: Hub):
    home = names.user_volume(victim.name, "ann")
    killed = kill_when(victim, ["setup"], is_("volume", "create", home))
    assert "-> user volumes (homes): create" in killed
    # The volumes exist, labelled, but their owner is still root: status says so.
    state, _ = status_rows(victim)["user volumes (homes)"]
    assert "made by an interrupted run, without their owner yet" in state, state
    assert owner_and_mode(victim, home).startswith("0:0 ")
    assert unlabelled(victim) == []
    completes(victim, "setup")
    for user in ("hub-admin", "ann", "bob", "carl"):
        assert owner_and_mode(victim, names.user_volume(victim.name, user)) == "1000:100 755"
    assert owner_and_mode(victim, names.group_volume(victim.name, "team")) == "1000:100 2775"
    settled(victim)
    victim.passwords.update(read_passwords(victim.paths))


def a_build_step(event: dict) -> bool:
    """The classic builder's container for a RUN step: made from a layer, by its image ID."""
    image = event.get("Actor", {}).get("Attributes", {}).get("image", "")
    return (
        event.get("Type") == "container"
        and event.get("Action") == "create"
        and image.startswith("sha256:")
    )


def test_setup_killed_while_rebuilding_the_image_keeps_the_old_one_and_rebuilds(victim: Hub):
    before = victim.client.images.get(victim.image).id
    # The instructor edits the class's packages: from that layer on, the image is built again.
    requirements = victim.paths.root / "singleuser" / "requirements.txt"
    requirements.write_text(requirements.read_text() + f"# edited {secrets.token_hex(4)}\n")
    killed = kill_when(victim, ["setup"], a_build_step)
    assert f"-> notebook image {victim.image}: rebuild" in killed
    assert victim.client.images.get(victim.image).id == before  # the old one still serves
    state, action = status_rows(victim)[f"notebook image {victim.image}"]
    assert action == "rebuild", (state, action)
    completes(victim, "setup")
    assert victim.client.images.get(victim.image).id != before
    settled(victim)


def test_setup_killed_while_the_hub_restarts_brings_the_roster_in_the_next_time(victim: Hub):
    # A new student and a new idle timeout: the hub is replaced, then told about dora.
    (victim.paths.root / "userlist").write_text(ROSTER + "dora team\n")
    set_env(victim.paths, {"CULL_IDLE_TIMEOUT": "2h"})
    killed = kill_when(victim, ["setup"], is_("container", "start", name=victim.name))
    assert f"-> hub container {victim.name}: replace" in killed
    # Status says the hub is starting while it is, then that dora is not in it yet.
    deadline = time.monotonic() + 120
    while (row := status_rows(victim)["hub users and groups"])[0] == "hub not answering yet":
        assert time.monotonic() < deadline, "the hub never answered"
        time.sleep(1)
    assert row[0] == "differ from the roster" and "dora" in row[1], row
    completes(victim, "setup")
    settled(victim)
    hub_users = victim_api(victim, "GET", "/users").json()
    assert {user["name"] for user in hub_users} == {"hub-admin", "ann", "bob", "carl", "dora"}
    team = victim_api(victim, "GET", "/groups/team").json()
    assert sorted(team["users"]) == ["ann", "bob", "dora"]


def test_setup_killed_while_copying_the_database_into_postgresql_copies_it_again(victim: Hub):
    # Something only the hub's database holds: a token ann made (sync makes users, not tokens).
    ann = Browser(victim.url, "ann")
    assert ann.login(victim.passwords["ann"]).status_code == 302
    made = ann.hub_api("POST", "/users/ann/tokens", json={"note": "kept"})
    assert made.status_code == 201, made.text
    token = KEPT["ann token"] = made.json()["token"]
    set_env(victim.paths, {"HUB_DB": "postgres"})
    kind = {names.LABEL_HUB: victim.name, names.LABEL_KIND: "db-move"}
    killed = kill_when(victim, ["setup"], is_("container", "start", **kind))
    assert "-> hub database: copy every row into PostgreSQL" in killed
    state, _ = status_rows(victim)["hub database"]
    assert "a copy into PostgreSQL was begun and did not finish" in state, state
    # The hub, started by hand meanwhile, refuses PostgreSQL while the sqlite file is the data.
    hub_container = victim.client.containers.get(names.hub_container(victim.name))
    hub_container.start()
    deadline = time.monotonic() + 60
    refusal = "its copy into PostgreSQL did not finish"
    while refusal not in hub_container.logs(tail=20).decode():
        assert time.monotonic() < deadline, hub_container.logs(tail=20).decode()
        time.sleep(0.5)
    output = completes(victim, "setup")
    assert "dbcopy: copied" in output
    settled(victim)
    me = requests.get(f"{victim.url}hub/api/user", headers={"Authorization": f"token {token}"})
    assert me.status_code == 200 and me.json()["name"] == "ann", me.text
    listing = victim.client.containers.run(
        victim.image, ["ls", "/d"], entrypoint=[], remove=True, network_disabled=True,
        volumes={names.hub_data_volume(victim.name): {"bind": "/d", "mode": "ro"}},
    ).decode().split()  # fmt: skip
    assert hubfile.SQLITE_MOVED in listing and hubfile.SQLITE_FILE not in listing


def test_a_killed_backup_is_never_taken_for_one_and_the_next_completes(victim: Hub, tmp_path):
    folder = tmp_path / "nightly"
    helpers = []  # Docker's archive API reads each volume through a helper container

    def third_volume(event: dict) -> bool:
        if is_("container", "create", **{names.LABEL_HUB: victim.name,
                                         names.LABEL_KIND: "helper"})(event):  # fmt: skip
            helpers.append(event)
        return len(helpers) == 3

    killed = kill_when(victim, ["backup", "--to", str(folder)], third_volume)
    assert f"Backing up the whole hub ({victim.name}) to {folder}" in killed
    partial = folder.with_name(folder.name + ".partial")
    assert not folder.exists() and partial.is_dir()
    refused = victim.invoke("restore", "--dry-run", str(partial))
    assert refused.returncode == 1, refused.stdout
    assert "a backup that did not finish (it was interrupted" in refused.stderr, refused.stderr
    missing = victim.invoke("restore", "--dry-run", str(folder))
    assert missing.returncode == 1 and "no such backup folder" in missing.stderr
    output = completes(victim, "backup", "--to", str(folder))
    assert "Backup complete" in output and not partial.exists()
    checked = victim.invoke("restore", "--dry-run", str(folder))
    assert "every file matches its checksum" in checked.stdout, checked.stdout + checked.stderr
    settled(victim)


def test_a_restore_killed_twice_is_finished_by_the_third(victim: Hub, tmp_path):
    home = names.user_volume(victim.name, "bob")
    victim.client.containers.run(
        victim.image, ["sh", "-c", "echo 'a term of work' > /v/notes.txt"], entrypoint=[],
        user="1000:100", volumes={home: {"bind": "/v", "mode": "rw"}}, remove=True,
    )  # fmt: skip
    folder = tmp_path / "term"
    completes(victim, "backup", "--to", str(folder))
    completes(victim, "destroy", "--yes")
    ours = {names.LABEL_HUB: victim.name}
    helpers = []

    def third_volume(event: dict) -> bool:
        if is_("container", "create", **ours, **{names.LABEL_KIND: "helper"})(event):
            helpers.append(event)
        return len(helpers) == 3

    killed = kill_when(victim, ["restore", str(folder)], third_volume)
    assert "-> 7 volume(s): create and fill" in killed, killed[-2000:]
    refused = victim.invoke("setup")
    assert refused.returncode == 1 and "did not finish: run invoke restore" in refused.stderr
    assert f"The restore of {folder} did not finish" in victim.invoke("status").stdout

    # Killed again, while PostgreSQL loads the database: loaded again over what it had.
    def loading(event: dict) -> bool:
        return (
            event.get("Type") == "container"
            and event.get("Action", "").startswith("exec_start: pg_restore")
            and event["Actor"]["Attributes"].get(names.LABEL_HUB) == victim.name
        )

    killed = kill_when(victim, ["restore", str(folder)], loading)
    assert "Finishing the restore of this backup that was interrupted" in killed
    output = completes(victim, "restore", str(folder))
    assert "Finishing the restore" in output
    settled(victim)
    assert "restore" not in victim.invoke("status").stdout.lower()
    said = victim.client.containers.run(victim.image, ["cat", "/v/notes.txt"], entrypoint=[],
                                        volumes={home: {"bind": "/v", "mode": "ro"}}, remove=True)  # fmt: skip
    assert said.decode() == "a term of work\n"
    # ann's token, in the database only, works again: the dump was loaded whole.
    me = requests.get(f"{victim.url}hub/api/user", timeout=30,
                      headers={"Authorization": f"token {KEPT['ann token']}"})  # fmt: skip
    assert me.status_code == 200 and me.json()["name"] == "ann", me.text


def victim_api(hub: Hub, method: str, path: str, **kwargs) -> requests.Response:
    token = (hub.paths.secrets_dir / "classhub_api_token").read_text().strip()
    response = requests.request(method, f"{hub.url}hub/api{path}", timeout=30,
                                headers={"Authorization": f"token {token}"}, **kwargs)  # fmt: skip
    assert response.ok, (response.status_code, response.text)
    return response
