"""Backups that restore (issue: several hubs, PostgreSQL, backups): a backup taken while the hub
runs, the hub destroyed, and the backup restored into a fresh clone; every user logs in with the
old password and finds their files and group files. A damaged backup is refused."""

from __future__ import annotations

import json
import shutil
import stat

import pytest
import requests

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, sweep

ROSTER = "hub-admin admin\nann team-a\nbob team-a\ncat\n"


@pytest.fixture(scope="module")
def small(hub: Hub, tmp_path_factory):
    """A hub of its own (destroy and restore would disturb the shared one); images are shared."""
    name = f"{hub.name}b"
    port = free_port()
    paths = new_checkout(tmp_path_factory.mktemp("backup") / "clone", name, port, ROSTER)
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield name, port, paths
    finally:
        sweep(hub.client, name)


def volumes(hub: Hub, name: str) -> set[str]:
    return {v.name for v in hub.client.volumes.list(filters={"label": f"{names.LABEL_HUB}={name}"})}


def test_one_users_home_comes_back_after_a_purge(hub: Hub, small, tmp_path):
    name, port, paths = small
    url = f"http://127.0.0.1:{port}/{name}/"
    bob = Browser(url, "bob")
    assert bob.login(read_passwords(paths)["bob"]).status_code == 302
    bob.start()
    bob.open_lab()
    bob.run("open('essay.txt', 'w').write('bob wrote this')")
    bob.stop()
    tmp_path.chmod(0o755)  # an existing folder like /srv: backup must leave its mode alone
    result = invoke(paths, "backup", "--users", "bob", "--to", str(tmp_path / "bob"),
                    env=engine_environ(), timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755, "backup changed the folder it writes in"
    manifest = json.loads((tmp_path / "bob" / "manifest.json").read_text())
    assert not manifest["complete"] and manifest["users"] == ["bob"]
    assert [f for f in manifest["files"] if f.startswith(("volumes/", "database/"))] == [
        f"volumes/{names.user_volume(name, 'bob')}.tar.gz"
    ]
    unknown = invoke(paths, "backup", "--users", "nobody", env=engine_environ(), timeout=300)
    assert unknown.returncode == 1 and "no home volume for nobody" in unknown.stderr

    # Taken off the roster with his home deleted by mistake, then brought back.
    over = invoke(paths, "restore", str(tmp_path / "bob"), env=engine_environ(), timeout=300)
    assert over.returncode == 1 and names.user_volume(name, "bob") in over.stderr, over.stderr
    purged = invoke(paths, "remove-user", "bob", "--purge", "--yes", env=engine_environ())
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert names.user_volume(name, "bob") not in volumes(hub, name)
    back = invoke(paths, "restore", str(tmp_path / "bob"), env=engine_environ(), timeout=300)
    assert back.returncode == 0, back.stdout + back.stderr
    added = invoke(paths, "add-user", "bob", "--group", "team-a", env=engine_environ())
    assert added.returncode == 0, added.stdout + added.stderr
    bob = Browser(url, "bob")
    assert bob.login(read_passwords(paths)["bob"]).status_code == 302
    bob.start()
    bob.open_lab()
    assert bob.run("print(open('essay.txt').read())") == "bob wrote this\n"
    bob.stop()


def test_backup_destroy_restore_brings_back_every_login_and_file(hub: Hub, small, tmp_path):
    name, port, paths = small
    url = f"http://127.0.0.1:{port}/{name}/"
    passwords = read_passwords(paths)
    ann = Browser(url, "ann")
    assert ann.login(passwords["ann"]).status_code == 302
    ann.start()
    ann.open_lab()
    ann.run("open('mine.txt', 'w').write('ann 1'); open('team-a/ours.txt', 'w').write('team 1')")
    cat = Browser(url, "cat")
    assert cat.login(passwords["cat"]).status_code == 302
    cat.start()
    cat.open_lab()
    cat.run("import os; os.mkdir('work'); open('work/cat.txt', 'w').write('cat 1')")
    cat.stop()
    admin = Browser(url, "hub-admin")
    assert admin.login(passwords["hub-admin"]).status_code == 302
    admin.start()
    admin.open_lab()
    admin.run("open('shared/notes.txt', 'w').write('course notes')")
    admin.stop()
    # A token lives only in the hub's database: it works after the restore only if that came back.
    made_token = ann.hub_api("POST", "/users/ann/tokens", json={"note": "before the backup"})
    assert made_token.status_code == 201, made_token.text
    token = made_token.json()["token"]

    # While ann's server runs and the hub writes its database.
    made = invoke(paths, "backup", "--to", str(tmp_path / "bk"), env=engine_environ(), timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    folder = tmp_path / "bk"
    # Four homes, the group folder and the shared data volume.
    assert "volume 6/6" in made.stdout, made.stdout
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["hub"] == name
    assert manifest["files"]["checkout/secrets/credentials.json"]["mode"] == "0600"
    assert f"volumes/{names.user_volume(name, 'ann')}.tar.gz" in manifest["files"]
    assert f"volumes/{names.group_volume(name, 'team-a')}.tar.gz" in manifest["files"]
    assert "database/jupyterhub.sqlite" in manifest["files"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.rglob("*") if p.is_file())
    ann.run("open('mine.txt', 'w').write('ann 2, after the backup')")
    ann.stop()

    # Restore never writes over a hub that is there.
    over = invoke(paths, "restore", str(folder), env=engine_environ(), timeout=300)
    assert over.returncode == 1 and "already exist" in over.stderr, over.stdout + over.stderr

    # One flipped byte in a student's home: refused, naming the file, before anything is made.
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    tarball = damaged / "volumes" / f"{names.user_volume(name, 'cat')}.tar.gz"
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0x01
    tarball.write_bytes(bytes(data))

    done = invoke(paths, "destroy", "--yes", env=engine_environ(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert volumes(hub, name) == set()

    # A fresh clone on this (now empty) engine: no .env, no secrets, the example userlist.
    clone = new_checkout(tmp_path / "fresh", "unused", free_port(), "hub-admin admin\n")
    (clone.root / ".env").unlink()
    refused = invoke(clone, "restore", str(damaged), env=engine_environ(), timeout=300)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert str(tarball) in refused.stderr and "damaged" in refused.stderr, refused.stderr
    assert volumes(hub, name) == set() and not (clone.root / ".env").exists()

    # A dry run checks the backup and shows the plan; it makes nothing.
    dry = invoke(clone, "restore", str(folder), "--dry-run", env=engine_environ(), timeout=300)
    assert dry.returncode == 0 and "Dry run: nothing was changed" in dry.stdout, dry.stdout
    assert "hub database (sqlite)" in dry.stdout and "the rest of setup" in dry.stdout
    assert volumes(hub, name) == set() and not (clone.root / ".env").exists()

    restored = invoke(clone, "restore", str(folder), env=engine_environ(), timeout=900)
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    assert (clone.root / "userlist.before-restore").read_text() == "hub-admin admin\n"
    assert stat.S_IMODE((clone.secrets_dir / "cookie_secret").stat().st_mode) == 0o600
    assert read_passwords(clone) == passwords

    by_token = requests.get(url + "hub/api/user", headers={"Authorization": f"token {token}"})
    assert by_token.status_code == 200 and by_token.json()["name"] == "ann", by_token.text
    ann = Browser(url, "ann")
    assert ann.login(passwords["ann"]).status_code == 302
    ann.start()
    ann.open_lab()
    assert ann.run("print(open('mine.txt').read(), open('team-a/ours.txt').read())") == (
        "ann 1 team 1\n"
    )
    ann.stop()
    bob = Browser(url, "bob")
    assert bob.login(passwords["bob"]).status_code == 302
    bob.start()
    bob.open_lab()
    # Group files keep their owner and the group's shared mode: bob can still edit ann's file.
    assert bob.run(
        "open('team-a/ours.txt', 'a').write(' bob'); print(open('team-a/ours.txt').read())"
    ) == ("team 1 bob\n")
    bob.stop()
    cat = Browser(url, "cat")
    assert cat.login(passwords["cat"]).status_code == 302
    cat.start()
    cat.open_lab()
    assert cat.run("print(open('work/cat.txt').read(), open('shared/notes.txt').read())") == (
        "cat 1 course notes\n"
    )
    cat.stop()
    wrong = Browser(url, "cat")
    assert wrong.login(passwords["ann"]).status_code != 302

    # Semester end: a backup in BACKUP_DIR, then no container of the hub is left; files stay.
    kept = volumes(hub, name)
    archived = invoke(clone, "archive", env=engine_environ(), timeout=600)
    assert archived.returncode == 0, archived.stdout + archived.stderr
    (written,) = (clone.root / "backups").iterdir()
    assert written.name.startswith(f"{name}-") and (written / "manifest.sha256").is_file()
    flt = {"label": f"{names.LABEL_HUB}={name}"}
    assert hub.client.containers.list(all=True, filters=flt) == []
    assert volumes(hub, name) == kept
    again = invoke(clone, "up", env=engine_environ(), timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert Browser(url, "cat").login(passwords["cat"]).status_code == 302


def test_a_backup_that_fills_its_disk_says_so_removes_what_it_wrote_and_the_hub_keeps_serving(
    hub: Hub, small, tmp_path
):
    """Issue "Faults" 5: BACKUP_DIR on a small filesystem (a 256 KiB tmpfs) that fills while
    the hub database is copied into it."""
    import subprocess

    name, port, paths = small
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        (disk / "other.bin").write_bytes(b"x" * 200 * 1024)  # someone else's files fill it up
        result = invoke(paths, "backup", "--to", str(disk / "term-end"),
                        env=engine_environ(), timeout=300)  # fmt: skip
        assert result.returncode == 1, result.stdout[-2000:]
        assert f"{disk} is full" in result.stderr, result.stderr
        assert "what it wrote is removed" in result.stderr and "BACKUP_DIR" in result.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["other.bin"]  # no backup, no .partial
        # The hub kept serving.
        assert requests.get(f"http://127.0.0.1:{port}/{name}/hub/api/", timeout=10).ok
    finally:
        subprocess.run(["umount", str(disk)], check=True)
