"""Disk limits: every home and group folder a btrfs subvolume with a size limit (DISK_STORE).

A store is a folder on a btrfs filesystem with quotas enabled (`btrfs quota enable`). A volume
with a size limit lives in it as a subvolume named as its Docker volume, with a limit on what the
subvolume refers to (a qgroup limit); the Docker volume binds that folder (the local driver with
`type=none, o=bind`). A write past the limit fails with EDQUOT, "Disk quota exceeded", in that
folder alone: the student sees an ordinary error, the hub and everyone else keep their space.

A limit of 0 asks for a plain folder instead, with no limit and on any filesystem: on a swarm
every home and group folder is one, in the shared storage (`<SWARM_STORAGE>/<HUB_NAME>`, which
every node mounts at the same path), bound on the manager by a Docker volume all the same, so
that backups, status and destroy find it as on one host.

It runs as `python3 -m classhub_hub.diskstore STORE ACTION ...` in a throwaway container that the
host starts from the hub image (the store mounted at its own path, with CAP_SYS_ADMIN for the
limits and CAP_CHOWN for the owner), and inside the Docker socket proxy, which makes a newcomer's
home. It prints JSON. Standard library and btrfs-progs only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from classhub import hubfile

_SUBVOLUME_INODE = 256  # the root folder of a btrfs subvolume always has this inode number


class StoreError(Exception):
    pass


def path(store: str, volume: str) -> str:
    """The volume's folder: where its Docker volume binds (hubfile.store_volume_options)."""
    return hubfile.store_volume_options(store, volume)["device"]


def _btrfs(*args: str) -> str:
    try:
        done = subprocess.run(["btrfs", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise StoreError("btrfs-progs is not installed in this image") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise StoreError(message[-1] if message else f"btrfs {args[0]} failed")
    return done.stdout


def is_subvolume(folder: str) -> bool:
    try:
        return os.stat(folder).st_ino == _SUBVOLUME_INODE
    except FileNotFoundError:
        return False


def make(store: str, volume: str, limit: int, kind: str) -> bool:
    """The volume's folder, a subvolume owned by jovyan with the kind's mode and the limit `limit`
    (bytes), or with limit 0 a plain folder; one already there keeps its files (and gets the
    limit). True when it was made."""
    folder = path(store, volume)
    made = not os.path.lexists(folder)
    if limit == 0:
        if made:
            os.makedirs(store, exist_ok=True)
            os.mkdir(folder, 0o700)
            os.chmod(folder, hubfile.FOLDER_MODES[kind])  # while root owns it (as above)
            os.chown(folder, *hubfile.FOLDER_OWNER)
        elif not os.path.isdir(folder) or os.path.islink(folder):
            raise StoreError(f"{folder} exists and is not a folder")
        return made
    if made:
        _btrfs("subvolume", "create", folder)
        os.chmod(folder, hubfile.FOLDER_MODES[kind])  # while root owns it (no CAP_FOWNER here)
        os.chown(folder, *hubfile.FOLDER_OWNER)
    elif not is_subvolume(folder):
        raise StoreError(f"{folder} exists and is not a btrfs subvolume")
    set_limit(store, volume, limit)
    return made


def set_limit(store: str, volume: str, limit: int) -> None:
    _btrfs("qgroup", "limit", str(limit), path(store, volume))


def usage(store: str, volume: str) -> dict[str, int | None]:
    """{"used": bytes the folder refers to, "limit": its limit in bytes or None}."""
    out = _btrfs("qgroup", "show", "--raw", "-re", "-f", path(store, volume))
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("0/"):
            limit = fields[3]
            return {"used": int(fields[1]), "limit": None if limit == "none" else int(limit)}
    raise StoreError(f"btrfs has no quota group for {path(store, volume)}")


def remove(store: str, volume: str) -> bool:
    """Delete the volume's folder (a subvolume, or a plain folder) and every file in it. True
    when there was one."""
    folder = path(store, volume)
    if is_subvolume(folder):
        _btrfs("subvolume", "delete", folder)
        return True
    if os.path.isdir(folder) and not os.path.islink(folder):
        shutil.rmtree(folder)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """STORE show VOLUME... | make VOLUME=LIMIT:KIND... | remove VOLUME..."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        sys.stderr.write(f"usage: python3 -m classhub_hub.diskstore {main.__doc__}\n")
        return 2
    store, action, rest = args[0], args[1], args[2:]
    try:
        result: dict
        if action == "show":
            result = {v: usage(store, v) if is_subvolume(path(store, v)) else None for v in rest}
        elif action == "make":
            result = {}
            for item in rest:
                volume, _, spec = item.partition("=")
                limit, _, kind = spec.partition(":")
                result[volume] = make(store, volume, int(limit), kind)
        elif action == "remove":
            result = {v: remove(store, v) for v in rest}
        else:
            sys.stderr.write(f"unknown action {action!r}\n")
            return 2
    except (StoreError, OSError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
