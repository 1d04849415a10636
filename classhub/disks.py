"""Disk limits, the host's side: which volumes live in DISK_STORE with which size, and the helper
container that makes, sizes, measures and deletes their folders there.

With DISK_STORE set, each home and group folder is a btrfs subvolume in the store with a size
limit (hub/classhub_hub/diskstore.py does the btrfs part, in a throwaway container of the hub image
with only the store mounted), and its Docker volume binds that folder. Without it, homes live in
Docker's own storage and nothing limits them; setup and status say so.

Rules that hold here:
- A volume's store is read from the volume itself (its `device` option), so a volume made with
  an earlier DISK_STORE is still found, measured and deleted in the right place.
- A home made before DISK_STORE was set stays where it is, unlimited, until moved
  (docs/disk-limits.md); the plan names it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import docker
import docker.errors

from . import engine, hubfile, names
from .console import human_size
from .errors import UserError
from .roster import Roster
from .settings import Settings

NOT_ENFORCED = (
    "Homes have no size limit: DISK_STORE is not set, so one student can fill the disk the hub's "
    "database is on (docs/disk-limits.md)."
)
NEAR_FULL = 0.9  # a home at this share of its limit is named in the plan
# What a container that makes folders in the store needs (the helper here, and the socket proxy
# for a newcomer's home): the btrfs size limits, and the owner of a new folder.
STORE_CAPS = ["SYS_ADMIN", "CHOWN"]


def summary(settings: Settings) -> str:
    """One line on the homes' size limits, or plainly that there are none."""
    if not settings.disk_store:
        return NOT_ENFORCED
    return (
        f"Homes hold at most {human_size(settings.disk_limit)} each, group folders "
        f"{human_size(settings.group_disk_limit)} (userlist's disk= aside), in {settings.disk_store}."
    )


def wanted(settings: Settings, roster: Roster) -> dict[str, tuple[str, int]]:
    """Every home and group folder the roster needs: volume -> (kind, size limit in bytes)."""
    hub = settings.hub_name
    found = {
        names.user_volume(hub, u.name): ("user", roster.home_size(u, settings.disk_limit))
        for u in roster.users
    }
    for group in roster.groups():
        size = roster.group_size(group, settings.group_disk_limit)
        found[names.group_volume(hub, group)] = ("group", size)
    return found


def store_of(volume) -> str | None:
    """The store a Docker volume's folder is in, or None (a volume in Docker's own storage)."""
    return hubfile.volume_store(volume.name, volume.attrs.get("Options"))


def helper(client: docker.DockerClient, hub: str, store: str, *args: str):
    """Run `python3 -m classhub_hub.diskstore STORE ARGS...` in a throwaway hub-image container
    with the store mounted at its own path; its JSON answer."""
    try:
        out = client.containers.run(
            names.hub_image(hub),
            ["python3", "-m", "classhub_hub.diskstore", store, *args],
            entrypoint=[],
            volumes={store: {"bind": store, "mode": "rw"}},
            network_disabled=True,
            read_only=True,
            **hubfile.HARDENING,
            cap_add=STORE_CAPS,
            labels=names.labels(hub, "disk-store"),
            remove=True,
        )
    except docker.errors.ImageNotFound:
        raise UserError(
            f"the hub image {names.hub_image(hub)} is missing; run invoke setup"
        ) from None
    except docker.errors.ContainerError as exc:
        raise UserError(f"DISK_STORE {store}: {engine.container_said(exc) or exc}") from None
    return json.loads(out)


def prepare(
    client: docker.DockerClient, hub: str, store: str, volumes: Mapping[str, tuple[str, int]]
) -> list[str]:
    """Each volume's folder in the store with its size (volume -> (kind, size)): made when
    missing, its limit set when there (files kept). Returns the volumes whose folder it made."""
    specs = (f"{n}={size}:{kind}" for n, (kind, size) in volumes.items())
    return [name for name, made in helper(client, hub, store, "make", *specs).items() if made]


def make(
    client: docker.DockerClient, hub: str, store: str, volumes: Mapping[str, tuple[str, int]]
) -> tuple[list, list[str]]:
    """Each volume's folder in the store (volume -> (kind, size)), then the Docker volume that
    binds it. Returns the Docker volumes made, and the volumes whose folder was new (a folder
    already in the store, from a volume removed by hand, is bound with its files)."""
    new_folders = prepare(client, hub, store, volumes)
    made = []
    try:
        for name, (kind, _) in volumes.items():
            made.append(client.volumes.create(
                name, driver="local", driver_opts=hubfile.store_volume_options(store, name),
                labels=names.labels(hub, kind),
            ))  # fmt: skip
    except docker.errors.DockerException:
        for volume in made:
            volume.remove(force=True)
        if new_folders:  # made just now, so empty: nothing is lost (a folder already there stays)
            helper(client, hub, store, "remove", *new_folders)
        raise
    return made, new_folders


def by_store(volumes: list) -> dict[str | None, list[str]]:
    """The Docker volumes' names by the store their folder is in (None: Docker's own storage)."""
    found: dict[str | None, list[str]] = {}
    for volume in volumes:
        found.setdefault(store_of(volume), []).append(volume.name)
    return found


def usage(client: docker.DockerClient, hub: str, volumes: list) -> dict[str, dict | None]:
    """Used bytes and limit of each Docker volume's folder: None for one not in a store."""
    found: dict[str, dict | None] = {}
    for store, inside in by_store(volumes).items():
        if store is None:
            found.update(dict.fromkeys(inside))
        else:
            found.update(helper(client, hub, store, "show", *inside))
    return found


def remove(client: docker.DockerClient, volume) -> None:
    """Remove a Docker volume and, when it binds a folder in a store, that folder and its files
    (the caller has the user's say-so)."""
    store = store_of(volume)
    volume.remove(force=True)
    if store is not None:
        hub = (volume.attrs.get("Labels") or {}).get(names.LABEL_HUB, "")
        helper(client, hub, store, "remove", volume.name)
