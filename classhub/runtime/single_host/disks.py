"""DISK_STORE on the Docker engine: each home's and group folder's btrfs subvolume with its size
limit, made, sized, measured and deleted by hub/classhub_hub/diskstore.py in a throwaway
container of the hub image with only the store mounted, and the Docker volume that binds it.

Rules that hold here:
- A volume's store is read from the volume itself (its `device` option), so a volume made with
  an earlier DISK_STORE is still found, measured and deleted in the right place.
- A folder already in the store (from a volume removed by hand) is bound with its files, never
  emptied or written over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import docker
import docker.errors

from ... import hubfile, names
from ...errors import UserError
from . import engine

# What a container that makes folders in the store needs (the helper here, and the socket proxy
# for a newcomer's home): the btrfs size limits, and the owner of a new folder.
STORE_CAPS = ["SYS_ADMIN", "CHOWN"]
# Deleting a plain folder (a swarm's, diskstore.py) reaches into what students made, as root
# without CAP_DAC_OVERRIDE may not.
REMOVE_CAPS = [*STORE_CAPS, "DAC_OVERRIDE"]


def store_of(volume) -> str | None:
    """The store a Docker volume's folder is in, or None (a volume in Docker's own storage)."""
    return hubfile.volume_store(volume.name, volume.attrs.get("Options"))


def helper(
    client: docker.DockerClient, hub: str, store: str, *args: str, caps: list[str] = STORE_CAPS
):
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
            cap_add=caps,
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
            helper(client, hub, store, "remove", *new_folders, caps=REMOVE_CAPS)
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
        helper(client, hub, store, "remove", volume.name, caps=REMOVE_CAPS)
