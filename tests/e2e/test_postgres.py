"""HUB_DB=postgres (issue: several hubs, PostgreSQL, backups): a sqlite hub switched to
PostgreSQL keeps its data, the main flow runs on PostgreSQL with the hub's tables in it, the
database sits on a network only the hub joins, and a PostgreSQL hub's backup restores."""

from __future__ import annotations

import json

import pytest
import requests

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, sweep

ROSTER = "hub-admin admin\nann team-a\nbob team-a\n"


@pytest.fixture(scope="module")
def moved(hub: Hub, tmp_path_factory):
    """A sqlite hub with a token and a file, then switched to HUB_DB=postgres by invoke setup."""
    name = f"{hub.name}p"
    port = free_port()
    paths = new_checkout(tmp_path_factory.mktemp("pg") / "clone", name, port, ROSTER)
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        url = f"http://127.0.0.1:{port}/{name}/"
        ann = Browser(url, "ann")
        assert ann.login(read_passwords(paths)["ann"]).status_code == 302
        made = ann.hub_api("POST", "/users/ann/tokens", json={"note": "made on sqlite"})
        assert made.status_code == 201, made.text
        env = paths.root / ".env"
        env.write_text(env.read_text() + "HUB_DB=postgres\n")
        switched = invoke(paths, "setup", env=engine_environ(), timeout=900)
        yield name, url, paths, made.json()["token"], switched
    finally:
        sweep(hub.client, name)


def psql(hub: Hub, name: str, query: str) -> str:
    db = hub.client.containers.get(names.db_container(name))
    result = db.exec_run(["psql", "-U", "jupyterhub", "-d", "jupyterhub", "-Atc", query],
                         user="postgres")  # fmt: skip
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode()


def data_volume_files(hub: Hub, name: str) -> list[str]:
    out = hub.client.containers.run(
        names.hub_image(name), ["ls", "/data"], entrypoint=[], remove=True, network_disabled=True,
        volumes={names.hub_data_volume(name): {"bind": "/data", "mode": "ro"}},
    )  # fmt: skip
    return out.decode().split()


def test_switching_to_postgres_copies_the_sqlite_database(hub: Hub, moved):
    name, url, _, token, switched = moved
    assert switched.returncode == 0, switched.stdout[-3000:] + switched.stderr[-3000:]
    assert "hub database: copy every row into PostgreSQL" in switched.stdout
    assert psql(hub, name, "SELECT name FROM users ORDER BY name").split() == [
        "ann", "bob", "hub-admin"
    ]  # fmt: skip
    files = data_volume_files(hub, name)
    assert "jupyterhub.sqlite" not in files and "jupyterhub.sqlite.moved-to-postgres" in files
    # The token exists only in the copied rows.
    by_token = requests.get(url + "hub/api/user", headers={"Authorization": f"token {token}"})
    assert by_token.status_code == 200 and by_token.json()["name"] == "ann", by_token.text


def test_the_main_flow_runs_on_postgres_whose_network_only_the_hub_joins(hub: Hub, moved):
    name, url, paths, _, _ = moved
    bob = Browser(url, "bob")
    assert bob.login(read_passwords(paths)["bob"]).status_code == 302
    bob.start()
    bob.open_lab()
    assert bob.run("print(6 * 7)") == "42\n"
    # The hub keeps its servers in PostgreSQL: bob's is there while it runs.
    assert "bob" in psql(hub, name, "SELECT u.name FROM spawners s JOIN users u ON "
                                    "s.user_id = u.id WHERE s.server_id IS NOT NULL")  # fmt: skip
    network = hub.client.networks.get(names.db_network(name))
    assert network.attrs["Internal"] is True
    assert {c.name for c in network.containers} == {name, names.db_container(name)}
    assert not set(hub.client.containers.get(names.db_container(name)).attrs["NetworkSettings"][
        "Networks"]) - {names.db_network(name)}  # fmt: skip
    # From a student's server the database's name does not even resolve.
    probe = bob.run(
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('{names.db_container(name)}', 5432), timeout=5)\n"
        "    print('reached')\n"
        "except OSError as exc:\n"
        "    print('refused', type(exc).__name__)\n"
    )
    assert probe.startswith("refused"), probe
    bob.stop()


def test_sqlite_again_is_refused_before_anything_changes(hub: Hub, moved):
    name, _, paths, _, _ = moved
    env = paths.root / ".env"
    before = env.read_text()
    env.write_text(before.replace("HUB_DB=postgres", "HUB_DB=sqlite"))
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=300)
    finally:
        env.write_text(before)
    assert result.returncode == 1 and "not back" in result.stderr, result.stdout + result.stderr
    assert hub.client.containers.get(name).status == "running"


def test_a_postgres_backup_restores_after_destroy(hub: Hub, moved, tmp_path):
    name, url, paths, token, _ = moved
    made = invoke(paths, "backup", "--to", str(tmp_path / "bk"), env=engine_environ(), timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert manifest["database"] == "postgres" and "database/jupyterhub.dump" in manifest["files"]
    done = invoke(paths, "destroy", "--yes", env=engine_environ(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    restored = invoke(paths, "restore", str(tmp_path / "bk"), env=engine_environ(), timeout=900)
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    # Every volume of the hub is labelled as its own (so destroy finds it): none made by Docker
    # on the fly for a check that mounted it too early.
    named = {v.name for v in hub.client.volumes.list() if v.name.startswith(name + "-")}
    flt = {"label": f"{names.LABEL_HUB}={name}"}
    assert named == {v.name for v in hub.client.volumes.list(filters=flt)}
    by_token = requests.get(url + "hub/api/user", headers={"Authorization": f"token {token}"})
    assert by_token.status_code == 200 and by_token.json()["name"] == "ann", by_token.text
    ann = Browser(url, "ann")
    assert ann.login(read_passwords(paths)["ann"]).status_code == 302
