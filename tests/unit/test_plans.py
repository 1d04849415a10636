"""The plans of setup, sync, up and down, and destroy, run against the in-memory engine.

What each task makes, in which order, and that running it again makes nothing. The end-to-end
tests prove the same tasks on a real Docker engine; these prove the plans without one.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest

from classhub import acme, commands, names
from classhub.console import Output
from classhub.errors import UserError
from classhub.paths import Paths
from classhub.runtime import NodeInfo
from classhub.runtime.fake import FakeEngine
from tests.conftest import PROJECT, clean_environ, make_checkout, plan_rows
from tests.unit import test_acme

HUB = "math"
# What the images are built from, besides the checkout's files an administrator edits.
BUILD_FOLDERS = ("hub", "singleuser", "db", "acme")


@pytest.fixture
def clone(tmp_path: Path) -> Paths:
    paths = make_checkout(tmp_path / "clone")
    for folder in BUILD_FOLDERS:
        shutil.copytree(PROJECT / folder, paths.root / folder)
    (paths.root / "userlist").write_text("ann\nbob physics\n")
    return paths


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine(HUB)
    monkeypatch.setattr(commands, "runtime", lambda environ, settings: fake)
    return fake


def env(**extra: str) -> dict[str, str]:
    return clean_environ(HUB_NAME=HUB, BUILD_CA_BUNDLE="none", **extra)


def run(task, paths: Paths, environ: dict[str, str], **kwargs) -> str:
    printed = io.StringIO()
    task(paths, environ, Output(printed, io.StringIO()), **kwargs)
    return printed.getvalue()


def made(engine: FakeEngine, since: int = 0) -> list[str]:
    return engine.events[since:]


def test_setup_makes_images_networks_volumes_then_the_hub_in_order_and_again_nothing(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    events = made(engine)
    order = [
        f"build image {names.hub_image(HUB)}",
        f"build image classhub-notebook:{HUB}",
        f"create network {names.network(HUB)}",
        f"create network {names.socket_network(HUB)}",
        f"create volume {names.hub_data_volume(HUB)}",
        f"create volume {names.user_volume(HUB, 'ann')}",
        f"create volume {names.group_volume(HUB, 'physics')}",
        f"create container {names.firewall_container(HUB)}",
        f"create container {names.socket_proxy_container(HUB)}",
        f"create container {names.hub_container(HUB)}",
    ]
    assert [e for e in events if e in order] == order
    assert events[-3:] == [
        "hub: add users hub-admin, ann, bob",
        "hub: add group physics",
        "hub: post members of physics: bob",
    ]
    assert engine.users == {"ann", "bob", "hub-admin"}
    assert engine.groups == {"physics": {"bob"}}
    assert not any(e.startswith("create container") and "db" in e for e in events)

    before = len(engine.events)
    text = run(commands.setup, clone, env())
    assert made(engine, before) == [], "a second setup changed something"
    assert "Nothing to change: everything is already set up." in text


def test_postgres_and_the_bundled_nginx_come_in_their_places_around_the_hub(
    clone: Paths, engine: FakeEngine
):
    shutil.copytree(PROJECT / "nginx", clone.root / "nginx", dirs_exist_ok=True)
    run(commands.setup, clone, env(HUB_DB="postgres", PROXY="nginx",
                                   PUBLIC_URL="https://hub.example.edu/math/"))  # fmt: skip
    containers = [e.split()[-1] for e in engine.events if e.startswith("create container")]
    assert containers == [
        names.firewall_container(HUB),
        names.socket_proxy_container(HUB),
        names.db_container(HUB),
        names.hub_container(HUB),
        names.nginx_container(HUB),
    ]
    assert f"create network {names.db_network(HUB)}" in engine.events
    assert names.db_volume(HUB) in engine.volumes
    assert f"build image {names.db_image(HUB)}" in engine.events
    assert f"build image {names.nginx_image(HUB)}" in engine.events
    assert (clone.secrets_dir / "postgres_password").exists()


def test_the_bundled_nginx_goes_when_proxy_no_longer_asks_for_it(clone: Paths, engine: FakeEngine):
    """It would keep HTTPS_PORT and HTTP_PORT from the site's own nginx; the hub's port is
    published again in its place (the hub replaced)."""
    shutil.copytree(PROJECT / "nginx", clone.root / "nginx", dirs_exist_ok=True)
    run(commands.setup, clone, env(PROXY="nginx", PUBLIC_URL="https://hub.example.edu/math/"))
    assert names.nginx_container(HUB) in engine.containers
    before = len(engine.events)
    printed = run(commands.setup, clone, env(PROXY="none"))
    row = f"front door {names.nginx_container(HUB)} (nginx)"
    assert plan_rows(printed)[row] == ("running", "remove (PROXY=none)")
    assert f"remove container {names.nginx_container(HUB)}" in made(engine, before)
    assert names.nginx_container(HUB) not in engine.containers
    again = run(commands.setup, clone, env(PROXY="none"))
    assert row not in again  # gone: nothing to do


def test_sync_after_a_roster_edit_makes_only_the_new_volumes_and_hub_users(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    # A pending image change must not be built by sync (nor by add-user, which runs it).
    with (clone.root / "singleuser" / "requirements.txt").open("a") as f:
        f.write("\n# a change waiting for invoke build\n")
    (clone.root / "userlist").write_text("ann\nbob physics\ncarl chemistry\n")
    before = len(engine.events)
    run(commands.sync, clone, env())
    assert made(engine, before) == [
        f"create volume {names.user_volume(HUB, 'carl')}",
        f"create volume {names.group_volume(HUB, 'chemistry')}",
        "hub: add users carl",
        "hub: add group chemistry",
        "hub: post members of chemistry: carl",
    ]
    before = len(engine.events)
    run(commands.sync, clone, env())
    assert made(engine, before) == []


def test_a_user_taken_off_the_roster_leaves_the_hub_and_keeps_the_home(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    (clone.root / "userlist").write_text("ann\n")
    before = len(engine.events)
    text = run(commands.sync, clone, env())
    assert "hub: remove user bob" in made(engine, before)
    assert "hub: remove group physics" in made(engine, before)
    assert not [e for e in made(engine, before) if e.startswith("remove volume")]
    assert names.user_volume(HUB, "bob") in engine.volumes
    assert names.user_volume(HUB, "bob") in text  # said to be detached, kept


def test_down_stops_and_up_starts_the_same_containers_without_making_any(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    before = len(engine.events)
    run(commands.down, clone, env())
    assert made(engine, before) == [
        f"stop container {names.hub_container(HUB)}",
        f"stop container {names.socket_proxy_container(HUB)}",
        f"stop container {names.firewall_container(HUB)}",
    ]
    before = len(engine.events)
    run(commands.up, clone, env())
    assert made(engine, before) == [
        f"start container {names.firewall_container(HUB)}",
        f"start container {names.socket_proxy_container(HUB)}",
        f"start container {names.hub_container(HUB)}",
    ]
    before = len(engine.events)
    assert "Already up" in run(commands.up, clone, env())
    assert made(engine, before) == []


def test_down_stops_every_component_of_a_full_hub_in_the_reverse_of_their_start(
    clone: Paths, engine: FakeEngine
):
    full = env(HUB_DB="postgres", PROXY="nginx")
    run(commands.setup, clone, full)
    before = len(engine.events)
    run(commands.down, clone, full)
    order = [names.nginx_container(HUB), names.hub_container(HUB), names.db_container(HUB),
             names.socket_proxy_container(HUB), names.firewall_container(HUB)]  # fmt: skip
    assert made(engine, before) == [f"stop container {name}" for name in order]
    before = len(engine.events)
    run(commands.up, clone, full)
    assert made(engine, before) == [f"start container {name}" for name in reversed(order)]


def test_a_changed_hub_setting_replaces_the_hub_container_only(clone: Paths, engine: FakeEngine):
    run(commands.setup, clone, env())
    before = len(engine.events)
    run(commands.setup, clone, env(CULL_IDLE_TIMEOUT="7200"))
    assert made(engine, before) == [
        f"remove container {names.hub_container(HUB)}",
        f"create container {names.hub_container(HUB)}",
    ]


def test_up_before_setup_says_to_run_setup_and_makes_nothing(clone: Paths, engine: FakeEngine):
    with pytest.raises(Exception, match="not set up yet"):
        run(commands.up, clone, env())
    assert engine.events == []


def test_destroy_removes_every_object_of_the_hub_after_confirmation(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    text = run(commands.destroy, clone, env(), yes=True)
    assert engine.inventory() == {"containers": [], "networks": [], "volumes": []}
    assert "4 user, group and shared volume(s) hold your users' files" in text
    before = len(engine.events)
    assert "nothing to remove" in run(commands.destroy, clone, env(), yes=True)
    assert made(engine, before) == []


def test_a_backup_destroy_and_restore_bring_back_the_homes_and_the_hubs_users(
    clone: Paths, engine: FakeEngine, tmp_path: Path
):
    run(commands.setup, clone, env())
    home = names.user_volume(HUB, "ann")
    engine.volumes[home].files["notes.ipynb"] = b'{"cells": []}'
    folder = tmp_path / "backup"
    run(commands.backup, clone, env(), folder=str(folder))
    run(commands.destroy, clone, env(), yes=True)
    assert engine.inventory() == {"containers": [], "networks": [], "volumes": []}

    before = len(engine.events)
    text = run(commands.restore, clone, env(), folder=str(folder), dry_run=True)
    assert "Dry run" in text and made(engine, before) == []

    run(commands.restore, clone, env(), folder=str(folder))
    events = made(engine, before)
    assert events.index(f"restore volume {home}") < events.index("restore the hub database")
    assert events.index("restore the hub database") < events.index(
        f"create container {names.hub_container(HUB)}"
    )
    assert engine.volumes[home].files == {"notes.ipynb": b'{"cells": []}'}
    assert engine.users == {"ann", "bob", "hub-admin"}
    assert engine.groups == {"physics": {"bob"}}
    assert not [e for e in events if e.startswith("hub: ")], "the users came from the backup"

    before = len(engine.events)
    with pytest.raises(Exception, match="already exist"):
        run(commands.restore, clone, env(), folder=str(folder))
    assert made(engine, before) == []


def test_archive_backs_up_then_removes_the_containers_and_keeps_every_volume(
    clone: Paths, engine: FakeEngine, tmp_path: Path
):
    run(commands.setup, clone, env(BACKUP_DIR=str(tmp_path / "backups")))
    volumes = set(engine.volumes)
    target = commands.archive(clone, env(BACKUP_DIR=str(tmp_path / "backups")),
                              Output(io.StringIO(), io.StringIO()))  # fmt: skip
    assert (target / "manifest.json").is_file()
    assert engine.inventory()["containers"] == []
    assert set(engine.volumes) == volumes
    before = len(engine.events)
    run(commands.up, clone, env())
    assert [e for e in made(engine, before) if e.startswith("create container")] == [
        f"create container {names.firewall_container(HUB)}",
        f"create container {names.socket_proxy_container(HUB)}",
        f"create container {names.hub_container(HUB)}",
    ]
    assert engine.users == {"ann", "bob", "hub-admin"}


@pytest.mark.parametrize("hub_db", ["sqlite", "postgres"])
def test_a_restore_cut_short_is_finished_by_the_next_and_nothing_else_runs_meanwhile(
    clone: Paths, engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_db: str
):
    settings = env(HUB_DB=hub_db)
    run(commands.setup, clone, settings)
    home = names.user_volume(HUB, "bob")
    engine.volumes[home].files["notes.ipynb"] = b'{"cells": []}'
    folder = tmp_path / "backup"
    run(commands.backup, clone, settings, folder=str(folder))
    run(commands.destroy, clone, settings, yes=True)
    # Cut short while filling bob's home (the last volume but one), as SIGKILL would.
    fill = engine.restore_volume

    def cut(name, *args, **kwargs):
        fill(name, *args, **kwargs)
        if name == home:
            engine.volumes[name].files.popitem()  # half written
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "restore_volume", cut)
    with pytest.raises(KeyboardInterrupt):
        run(commands.restore, clone, settings, folder=str(folder))
    monkeypatch.setattr(engine, "restore_volume", fill)
    with pytest.raises(UserError, match=r"did not finish: run invoke restore .* again"):
        run(commands.setup, clone, settings)
    status = io.StringIO()
    commands.status(clone, settings, Output(status, io.StringIO()))
    assert f"The restore of {folder} did not finish" in status.getvalue()
    printed = run(commands.restore, clone, settings, folder=str(folder))
    assert "Finishing the restore of this backup that was interrupted" in printed
    assert engine.volumes[home].files == {"notes.ipynb": b'{"cells": []}'}
    assert engine.users == {"ann", "bob", "hub-admin"}
    assert not (clone.state_dir / "restoring.json").exists()
    assert "Nothing to change" in run(commands.setup, clone, settings)
    with pytest.raises(UserError, match="already exist and restore never writes over one"):
        run(commands.restore, clone, settings, folder=str(folder))  # finished: never again


def test_postgres_backup_and_restore_load_the_dump_into_a_new_database(
    clone: Paths, engine: FakeEngine, tmp_path: Path
):
    postgres = env(HUB_DB="postgres")
    run(commands.setup, clone, postgres)
    folder = tmp_path / "backup"
    run(commands.backup, clone, postgres, folder=str(folder))
    run(commands.destroy, clone, postgres, yes=True)
    run(commands.restore, clone, postgres, folder=str(folder))
    assert engine.users == {"ann", "bob", "hub-admin"}
    assert names.db_volume(HUB) in engine.volumes
    assert not engine.volumes[names.hub_data_volume(HUB)].files, "the hub ran on PostgreSQL"


def test_moving_a_sqlite_hub_to_postgres_copies_its_users_before_the_hub_restarts(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    before = len(engine.events)
    run(commands.setup, clone, env(HUB_DB="postgres"))
    events = made(engine, before)
    assert events.index("move the hub database to PostgreSQL") < events.index(
        f"create container {names.hub_container(HUB)}"
    )
    assert engine.users == {"ann", "bob", "hub-admin"}
    assert not [e for e in events if e.startswith("hub: ")]


def test_a_copy_into_postgres_that_did_not_finish_is_made_again_and_sqlite_stays_possible(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    # A setup with HUB_DB=postgres killed during the copy: PostgreSQL's volume is there, and the
    # sqlite file, still not renamed, is still the hub's database.
    engine.ensure_volume(names.db_volume(HUB), "db")
    run(commands.setup, clone, env())  # going back to sqlite is not refused: the data is there
    before = len(engine.events)
    printed = run(commands.setup, clone, env(HUB_DB="postgres"))
    state, _ = plan_rows(printed)["hub database"]
    assert state.endswith("(a copy into PostgreSQL was begun and did not finish)"), state
    assert "move the hub database to PostgreSQL" in made(engine, before)
    assert not engine.has_sqlite()


def test_setup_finishes_the_volumes_a_killed_run_made_without_their_owner(
    clone: Paths, engine: FakeEngine
):
    run(commands.setup, clone, env())
    home = names.user_volume(HUB, "ann")
    # As a setup killed between making it and giving it its owner leaves it:
    engine.volumes[home].owned = False
    status = io.StringIO()
    commands.status(clone, env(), Output(status, io.StringIO()))
    state, _ = plan_rows(status.getvalue())["user volumes (homes)"]
    assert state == "2 of 3 present; 1 made by an interrupted run, without their owner yet"
    since = len(engine.events)
    printed = run(commands.setup, clone, env())
    assert plan_rows(printed)["user volumes (homes)"][1] == "give 1 their owner (owner 1000:100)"
    assert made(engine, since) == [f"give volume {home} its owner"]
    assert engine.unfinished_volumes() == {}
    assert "Nothing to change" in run(commands.setup, clone, env())


def test_setup_on_a_swarm_warns_while_no_worker_takes_students_servers(
    clone: Paths, engine: FakeEngine, tmp_path: Path
):
    swarm = env(ENGINE="swarm", SWARM_STORAGE=str(tmp_path))
    engine.swarm_nodes = [NodeInfo("lab1", "manager", "ready", "active", "", "20.10.24", 0)]
    warned = io.StringIO()
    commands.setup(clone, swarm, Output(io.StringIO(), warned))
    assert "no node of the swarm takes students' servers yet" in warned.getvalue()
    assert "invoke add-node HOST" in warned.getvalue()
    engine.swarm_nodes.append(NodeInfo("lab2", "worker", "drain", "drain", "root@10.0.0.6",
                                       "20.10.24", 0))  # fmt: skip
    engine.node_holds = {"lab2": set()}
    warned = io.StringIO()
    commands.setup(clone, swarm, Output(io.StringIO(), warned))
    assert "takes students' servers" in warned.getvalue()  # drained: takes none
    engine.swarm_nodes[1] = NodeInfo("lab2", "worker", "ready", "active", "root@10.0.0.6",
                                     "20.10.24", 0)  # fmt: skip
    warned = io.StringIO()
    commands.setup(clone, swarm, Output(io.StringIO(), warned))
    assert "takes students' servers" not in warned.getvalue()
    warned = io.StringIO()
    commands.setup(clone, env(), Output(io.StringIO(), warned))  # one server: nothing to say
    assert "takes students' servers" not in warned.getvalue()


def test_on_a_swarm_setup_and_build_give_each_node_the_builds_and_status_shows_drift(
    clone: Paths, engine: FakeEngine
):
    engine.swarm_nodes = [
        NodeInfo("lab1", "manager", "ready", "active", "", "20.10.24", 0),
        NodeInfo("lab2", "worker", "ready", "active", "root@10.0.0.6", "20.10.24", 0),
    ]
    engine.node_holds = {"lab2": set()}
    run(commands.setup, clone, env())
    loads = [e for e in made(engine) if e.startswith("load ")]
    assert loads == [f"load classhub-notebook:{HUB} into node lab2",
                     f"load {names.hub_image(HUB)} into node lab2"]  # fmt: skip
    assert made(engine).index(loads[0]) > made(engine).index(f"build image classhub-notebook:{HUB}")
    status = run(commands.status, clone, env())
    assert plan_rows(status)["images on node lab2"][0] == "up to date"
    # A node that lost a build (or a new one built here) is shown, and build loads it again.
    engine.node_holds["lab2"].clear()
    rows = plan_rows(run(commands.status, clone, env()))
    assert rows["images on node lab2"] == (
        f"lacks {names.hub_image(HUB)}, classhub-notebook:{HUB}", "load the images")  # fmt: skip
    before = len(engine.events)
    run(commands.build, clone, env())
    assert [e for e in made(engine, before) if e.startswith("load ")] == loads
    assert "images on node lab1" not in rows  # this server builds them
    # The class's image changed: every node is to get the new build once it is built.
    (clone.root / "singleuser" / "requirements.txt").write_text("tabulate==0.9.0\n")
    rows = plan_rows(run(commands.status, clone, env()))
    assert rows["images on node lab2"] == ("to be built anew here", "load the images")
    before = len(engine.events)
    run(commands.build, clone, env())
    assert made(engine, before)[-1] == f"load classhub-notebook:{HUB} into node lab2"


# --- ACME=true: the certificate renewer (tests/unit/test_acme.py has the rest) ---


ACME_HOST = test_acme.HOST


def acme_env(**extra: str) -> dict[str, str]:
    return env(PROXY="nginx", PUBLIC_URL=test_acme.URL, **extra)


def test_setup_runs_the_renewer_after_nginx_seeds_the_served_pair_and_says_the_cas_answer(
    clone: Paths, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(engine, "restart_container", lambda name: None)
    monkeypatch.setattr(acme, "ANSWER_WAIT", 3)
    printed = run(commands.setup, clone, acme_env(ACME="true"))
    assert f"build image {names.acme_image(HUB)}" in engine.events
    made = [e.split()[-1] for e in engine.events if e.startswith("create container")]
    assert made[-2:] == [names.nginx_container(HUB), names.acme_container(HUB)]
    cert, key = acme.served_pair(clone)
    assert cert.read_bytes() == (clone.secrets_dir / "tls" / "selfsigned.crt").read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    assert acme.webroot(clone).stat().st_mode & 0o777 == 0o755
    assert "the CA has not answered yet" in printed  # the fake engine runs no renewer

    # The renewer's answers, as setup reads them after asking it again.
    monkeypatch.setattr(engine, "restart_container", lambda name: test_acme.answer(
        clone, "failed", {"type": "dns", "detail": "NXDOMAIN"}))  # fmt: skip
    printed = run(commands.setup, clone, acme_env(ACME="true"))
    assert "NO CERTIFICATE" in printed and f"{ACME_HOST} does not resolve" in printed
    assert "nginx keeps serving the self-signed certificate" in printed
    got = {"directory": test_acme.settings_of(test_acme.ACME_ENV).acme_directory, "names": [ACME_HOST],
           "issuer": "CN=R11,O=Let's Encrypt,C=US", "not_after": time.time() + 90 * 86400,
           "renew_from": "2027-01-30T00:00:00+00:00"}  # fmt: skip
    monkeypatch.setattr(
        engine, "restart_container", lambda name: test_acme.answer(clone, "ok", None, got)
    )
    printed = run(commands.setup, clone, acme_env(ACME="true"))
    assert "got a certificate from R11" in printed and "renews by itself from 2027-01-30" in printed
    assert "certificate from https://acme-v02.api.letsencrypt.org/directory" in printed
    again = run(commands.setup, clone, acme_env(ACME="true"))
    assert "asking" not in again  # the certificate holds: nothing to ask
    status = io.StringIO()
    commands.status(clone, acme_env(ACME="true"), Output(status, io.StringIO()))
    rows = plan_rows(status.getvalue())
    state, action = rows[f"certificate for {ACME_HOST}"]
    assert state.startswith("from R11, valid until") and action == "none"


def test_the_renewer_goes_when_acme_is_turned_off_and_certbots_state_stays(
    clone: Paths, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(engine, "restart_container", lambda name: None)
    monkeypatch.setattr(acme, "ANSWER_WAIT", 0)
    run(commands.setup, clone, acme_env(ACME="true"))
    printed = run(commands.setup, clone, acme_env(ACME="false"))
    row = f"certificate renewer {names.acme_container(HUB)}"
    assert plan_rows(printed)[row] == ("running", "remove (ACME=false)")
    assert names.acme_container(HUB) not in engine.containers
    assert acme.served_pair(clone)[0].exists()  # nothing of secrets/acme/ is deleted


def test_dns_01_without_its_key_stops_setup_before_anything_is_made(
    clone: Paths, engine: FakeEngine
):
    with pytest.raises(UserError, match=r"secrets/acme-rfc2136\.ini"):
        run(
            commands.setup,
            clone,
            acme_env(ACME="true", ACME_CHALLENGE="dns-01", USER_SUBDOMAINS="true"),
        )
    assert engine.events == []
