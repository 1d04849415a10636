"""Disk limits (issue "Security", item 5): with DISK_STORE every home and group folder is a btrfs
subvolume with a size limit, so a student who writes without end gets "Disk quota exceeded" in her
own home, and the hub, her teammates and the other students keep their space and keep working.

The store is a real btrfs filesystem in a loop image file (what docs/disk-limits.md has an
administrator make), on this machine's real kernel and Docker engine. The hub is a hub of its own
with AUTHENTICATOR=native and OPEN_TO_ALL, so that a newcomer's home, which the hub makes through
the Docker socket proxy, is tested too.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest
import requests

from classhub import disks, names
from classhub.errors import UserError
from classhub.runtime.single_host import SingleHost
from classhub.runtime.single_host import disks as store_disks
from classhub.student import Browser
from tests.conftest import invoke, plan_rows

from .conftest import Hub, engine_environ, free_port, hub_beside, new_checkout, set_env
from .test_auth import GOOD

MiB = 1024**2
ROSTER = """\
hub-admin admin
ann team-1
bob team-1 disk=200M
group: team-1 disk=80M
group: guests
"""
SETTINGS = {
    "AUTHENTICATOR": "native",
    "OPEN_TO_ALL": "true",
    "DEFAULT_GROUPS": "guests",
    "DISK_LIMIT": "100M",
}
# Writes `MB` MiB to PATH, one MiB at a time, flushed; prints how much went in and the errno that
# stopped it (0: none).
WRITE = """
import os
done, error = 0, 0
try:
    with open({path!r}, "wb") as out:
        for _ in range({mb}):
            out.write(b"x" * 2**20)
            out.flush()
            os.fsync(out.fileno())
            done += 1
except OSError as exc:
    error = exc.errno
print(done, error)
"""


def write(browser: Browser, path: str, mb: int) -> tuple[int, int]:
    """(MiB written, errno that stopped it) when the student writes `mb` MiB to `path`."""
    done, error = browser.run(WRITE.format(path=path, mb=mb), timeout=120).split()
    return int(done), int(error)


def btrfs_image(folder: Path, name: str, size: str, quotas: bool) -> Path:
    """A btrfs filesystem in a loop image, mounted at folder/name (quotas on when `quotas`)."""
    image, mount = folder / f"{name}.img", folder / name
    mount.mkdir()
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    if quotas:
        subprocess.run(["btrfs", "quota", "enable", str(mount)], check=True)
    return mount


def unmount(mount: Path) -> None:
    subprocess.run(["umount", "--lazy", str(mount)], check=False)
    (mount.parent / f"{mount.name}.img").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("disks")
    mount = btrfs_image(folder, "store", "2G", quotas=True)
    yield mount
    unmount(mount)


@pytest.fixture(scope="module")
def limited(hub: Hub, store: Path, tmp_path_factory):
    root = tmp_path_factory.mktemp("limited") / "clone"
    with hub_beside(hub, root, f"{hub.name}q", ROSTER, {**SETTINGS, "DISK_STORE": str(store)}) as q:
        yield q


def student(hub: Hub, name: str) -> Browser:
    browser = Browser(hub.url, name)
    assert browser.login(hub.passwords[name]).status_code == 302
    browser.start()
    browser.open_lab()
    return browser


def test_every_home_and_group_folder_is_in_the_store_with_its_size(limited: Hub, store: Path):
    volumes = {v.name: v for v in limited.client.volumes.list(
        filters={"label": f"{names.LABEL_HUB}={limited.name}"})}  # fmt: skip
    usage = store_disks.usage(limited.client, limited.name, list(volumes.values()))
    limit = {name: found["limit"] for name, found in usage.items() if found}
    home, group = names.user_volume, names.group_volume
    assert limit == {
        home(limited.name, "hub-admin"): 100 * MiB,
        home(limited.name, "ann"): 100 * MiB,
        home(limited.name, "bob"): 200 * MiB,  # his own disk=
        group(limited.name, "team-1"): 80 * MiB,  # its group: line's
        group(limited.name, "guests"): 10 * 1024 * MiB,  # GROUP_DISK_LIMIT's default
    }, usage
    for name in limit:
        assert (store / name).is_dir() and (store / name).stat().st_uid == 1000
    # The hub's own database stays in Docker's storage, out of every student's reach.
    assert usage[names.hub_data_volume(limited.name)] is None


def test_a_student_past_her_limit_gets_no_space_and_everyone_else_keeps_working(limited: Hub):
    ann, bob = student(limited, "ann"), student(limited, "bob")
    done, error = write(ann, "fill", 300)
    assert error == errno.EDQUOT and 90 <= done < 100, (done, error)
    # Her server, the hub and her teammate go on: bob writes more than her whole limit.
    assert requests.get(limited.url + "hub/api/", timeout=10).status_code == 200
    assert write(bob, "data", 150) == (150, 0)
    assert ann.run("print(6 * 7)") == "42\n"
    # The group folder has a limit of its own (80M), whoever writes.
    done, error = write(bob, "team-1/big", 200)
    assert error == errno.EDQUOT and 70 <= done < 80, (done, error)
    # Deleting a file gives the space back.
    ann.run("import os; os.remove('fill')")
    assert write(ann, "again", 50) == (50, 0)
    bob.run("import os; os.remove('data'); os.remove('team-1/big')")


def test_a_newcomers_home_made_through_the_socket_proxy_is_limited_too(limited: Hub, store: Path):
    jane = Browser(limited.url, "jane")
    assert "sent to the admin" in jane.signup(GOOD).text
    admin = Browser(limited.url, "hub-admin")
    assert admin.login(limited.passwords["hub-admin"]).status_code == 302
    assert (
        admin.session.get(limited.url + "hub/authorize/jane", allow_redirects=False).status_code
        == 302
    )
    assert jane.login(GOOD).status_code == 302
    jane.start()
    jane.open_lab()
    home = limited.client.volumes.get(names.user_volume(limited.name, "jane"))
    assert store_disks.store_of(home) == str(store)
    done, error = write(jane, "fill", 300)
    assert error == errno.EDQUOT and 90 <= done < 100, (done, error)
    assert jane.run("import os; print(sorted(os.listdir('.')))").count("guests") == 1
    jane.stop()


def test_a_new_size_in_the_userlist_applies_without_a_restart(limited: Hub):
    ann = student(limited, "ann")
    container = limited.client.containers.get(names.user_container(limited.name, "ann"))
    started = container.attrs["State"]["StartedAt"]
    userlist = limited.paths.userlist
    userlist.write_text(userlist.read_text().replace("ann team-1", "ann team-1 disk=300M"))
    plan = limited.invoke("sync", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan_rows(plan.stdout)["disk limits"][1] == "set 1 size limit(s) from the roster"
    done = limited.invoke("sync")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert write(ann, "bigger", 200) == (200, 0)
    container.reload()
    assert container.attrs["State"]["StartedAt"] == started
    ann.run("import os; os.remove('bigger')")
    status = limited.invoke("status")
    assert "enforced in" in plan_rows(status.stdout)["disk limits"][0], status.stdout


def test_purging_a_user_deletes_their_folder_in_the_store(limited: Hub, store: Path):
    volume = names.user_volume(limited.name, "jane")
    assert (store / volume).is_dir()
    gone = limited.invoke("remove-user", "jane", "--purge", "--yes")
    assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
    assert not (store / volume).exists()
    assert volume not in {v.name for v in limited.client.volumes.list()}


def test_setup_refuses_a_store_that_cannot_limit_and_says_why(hub: Hub, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nostore")
    no_quotas = btrfs_image(folder, "plain", "300M", quotas=False)
    try:
        paths = new_checkout(folder / "clone", f"{hub.name}x", free_port(), ROSTER)
        for store, said in (
            (folder, "which cannot limit a folder's size (btrfs can)"),
            (no_quotas, f"turn them on: btrfs quota enable {no_quotas}"),
        ):
            set_env(paths, {"DISK_STORE": str(store)})
            result = invoke(paths, "setup", env=engine_environ(), timeout=300)
            assert (
                result.returncode != 0 and "DISK_STORE" in result.stderr and said in result.stderr
            ), result.stderr
            assert not hub.client.volumes.list(filters={"label": f"{names.LABEL_HUB}={hub.name}x"})
    finally:
        unmount(no_quotas)


def test_without_a_store_setup_says_plainly_that_nothing_limits_homes(hub: Hub):
    assert disks.NOT_ENFORCED in " ".join(hub.setup_output.split())


def test_restore_never_writes_over_nor_deletes_a_folder_already_in_the_store(
    limited: Hub, store: Path, tmp_path
):
    """A folder left in the store (its Docker volume removed by hand) keeps its files: restore
    refuses to fill it, and does not delete it when it gives up."""
    volume = names.user_volume(limited.name, "ghost")
    store_disks.prepare(limited.client, limited.name, str(store), {volume: ("user", 100 * MiB)})
    (store / volume / "kept.txt").write_text("an earlier home's file")
    with pytest.raises(UserError, match="restore never writes over"):
        SingleHost(limited.client, limited.name).restore_volume(
            volume, "user", tmp_path / "unused.tar.gz", str(store), 100 * MiB
        )
    assert (store / volume / "kept.txt").read_text() == "an earlier home's file"
    assert volume not in {v.name for v in limited.client.volumes.list()}
