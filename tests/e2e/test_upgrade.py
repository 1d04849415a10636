"""Upgrades (issue: several hubs, PostgreSQL, backups): a hub database at an older JupyterHub's
schema revision is upgraded by invoke setup, after a full backup, and every user's data stays.

The older database is made with JupyterHub's own migrations (alembic downgrade by one revision),
which is what a database left by the previous JupyterHub release looks like to this one;
building a second hub image with an older JupyterHub would double the test's build time."""

from __future__ import annotations

import json

import requests

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke, plan_rows

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, sweep

DOWNGRADE = """
from subprocess import check_call
from jupyterhub.dbutil import _temp_alembic_ini
with _temp_alembic_ini("sqlite:////data/jupyterhub.sqlite") as ini:
    check_call(["alembic", "-c", ini, "downgrade", "-1"])
    check_call(["alembic", "-c", ini, "current"])
"""


def test_setup_upgrades_an_older_database_after_a_backup(hub: Hub, tmp_path):
    name, port = f"{hub.name}u", free_port()
    paths = new_checkout(tmp_path / "clone", name, port, "hub-admin admin\nann\n")
    url = f"http://127.0.0.1:{port}/{name}/"
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        password = read_passwords(paths)["ann"]
        ann = Browser(url, "ann")
        assert ann.login(password).status_code == 302
        token = ann.hub_api("POST", "/users/ann/tokens", json={"note": "kept"}).json()["token"]
        ann.start()
        ann.open_lab()
        ann.run("open('work.txt', 'w').write('before the upgrade')")
        ann.stop()
        assert invoke(paths, "down", env=engine_environ(), timeout=300).returncode == 0

        older = hub.client.containers.run(
            names.hub_image(name), ["python3", "-c", DOWNGRADE], entrypoint=[], remove=True,
            network_disabled=True,
            volumes={names.hub_data_volume(name): {"bind": "/data", "mode": "rw"}},
        ).decode().split()[-1]  # fmt: skip

        planned = invoke(paths, "setup", "--dry-run", env=engine_environ(), timeout=300)
        rows = plan_rows(planned.stdout)
        (schema,) = [state for component, (state, _) in rows.items() if "schema" in component]
        assert f"revision {older}; this JupyterHub needs" in schema, planned.stdout
        upgraded = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert upgraded.returncode == 0, upgraded.stdout[-3000:] + upgraded.stderr[-3000:]
        assert (
            "a full backup first" in upgraded.stdout and "dbschema: upgraded to" in upgraded.stdout
        )
        (taken,) = (paths.root / "backups").iterdir()
        assert taken.name.endswith("-before-upgrade")
        manifest = json.loads((taken / "manifest.json").read_text())
        assert manifest["complete"] and "database/jupyterhub.sqlite" in manifest["files"]

        # The hub runs on the upgraded database (it refuses an old one), with everything kept.
        by_token = requests.get(url + "hub/api/user", headers={"Authorization": f"token {token}"})
        assert by_token.status_code == 200 and by_token.json()["name"] == "ann", by_token.text
        ann = Browser(url, "ann")
        assert ann.login(password).status_code == 302
        ann.start()
        ann.open_lab()
        assert ann.run("print(open('work.txt').read())") == "before the upgrade\n"
        ann.stop()
        again = invoke(paths, "setup", env=engine_environ(), timeout=300)
        assert "Nothing to change" in again.stdout, again.stdout
    finally:
        sweep(hub.client, name)
