"""The first runtime: one hub on one Docker engine, through docker-py.

The modules beside this one do its work, and they alone in classhub import docker-py: `stack`
(networks, volumes, the components' containers and the users'), `builder` (images and the base),
`database` (the hub's database in one-off containers), `disks` (DISK_STORE's folders and their
size limits), `neighbours` (the other hubs on the engine) and `engine` (reaching dockerd, and
installing it). `SingleHost` is the one face they show the plans; a second engine is a second
package beside this one, not an `if` in them.
"""

from __future__ import annotations

import contextlib
import gzip
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import docker

from ... import (
    components,
    hubapi,
    hubfile,
    names,
    secrets,
)
from ...components import Part
from ...console import Echo
from ...errors import UserError
from ...hubapi import HubAPI
from ...images import ImageSpec
from ...inputs.roster import Roster
from ...inputs.settings import Settings
from ...neighbours import HubInfo, conflicts
from ...paths import Paths
from .. import Folder, ImageInfo, NodeAccess, NodeInfo, SandboxLimits, SandboxRun, Service
from ..swarm import nodes as swarm_nodes
from . import builder, database, disks, engine, neighbours, sandbox, stack

CHUNK = 1024 * 1024  # what the engine sends of a volume's archive at a time


class SingleHost:
    def __init__(self, client: docker.DockerClient, hub: str, where: str = ""):
        self.client = client
        self.hub = hub
        self.where = where

    def version(self) -> str:
        return f"Docker engine {engine.version(self.client)} at {self.where}"

    def conflicts(self, settings: Settings, root: Path) -> list[str]:
        return conflicts(neighbours.around(self.client), settings, root)

    # --- images ---
    def image(self, ref: str) -> ImageInfo | None:
        found = builder.find(self.client, ref)
        return None if found is None else ImageInfo(str(found.id), found.labels or {})

    def ensure_base(self, base: str, state_dir: Path, echo: Echo) -> str:
        return builder.ensure_base(self.client, base, state_dir, echo)

    def build(self, spec: ImageSpec, ca: bytes, base: str, log_dir: Path, echo: Echo) -> None:
        builder.ensure(self.client, spec, ca, base, log_dir, echo)

    # --- networks ---
    def network_state(self) -> str:
        return stack.network_state(self.client, self.hub)

    def ensure_network(self, echo: Echo, owner: dict[str, str]) -> None:
        stack.ensure_network(self.client, self.hub, echo, owner)

    def hub_address(self) -> str | None:
        return stack.hub_address(self.client, self.hub)

    def network_exists(self, name: str) -> bool:
        return stack.network_exists(self.client, name)

    def ensure_internal_network(self, name: str, kind: str) -> None:
        stack.ensure_internal_network(self.client, self.hub, name, kind)

    # --- volumes ---
    def volume_names(self) -> set[str]:
        return stack.volume_names(self.client)

    def ensure_volume(self, name: str, kind: str) -> None:
        stack.ensure_volume(self.client, self.hub, name, kind)

    def create_volumes(
        self,
        volumes: dict[str, str],
        image: str,
        echo: Echo,
        store: str = "",
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        stack.create_volumes(self.client, self.hub, volumes, image, echo, store, sizes)

    def unfinished_volumes(self) -> dict[str, str]:
        return stack.unfinished_volumes(self.client, self.hub)

    def _volumes(self, wanted) -> list:
        flt = {"label": f"{names.LABEL_HUB}={self.hub}"}
        return [v for v in self.client.volumes.list(filters=flt) if v.name in wanted]

    def disk_usage(self, volumes: set[str]) -> dict[str, dict[str, int] | None]:
        return disks.usage(self.client, self.hub, self._volumes(volumes))

    def set_disk_limits(self, sizes: Mapping[str, tuple[str, int]]) -> None:
        for where, inside in disks.by_store(self._volumes(sizes)).items():
            if where is not None:
                disks.prepare(self.client, self.hub, where, {n: sizes[n] for n in inside})

    def remove_volume(self, name: str) -> None:
        disks.remove(self.client, self.client.volumes.get(name))

    def has_sqlite(self) -> bool:
        return database.has_sqlite(self.client, self.hub)

    def has_postgres(self) -> bool:
        return database.has_postgres(self.client, self.hub)

    # --- the hub's own services ---
    def services(self, paths: Paths, settings: Settings) -> list[Service]:
        return stack.services(self.client, paths, settings)

    def service_state(self, service: Service) -> tuple[str, str]:
        return stack.service_state(self.client, self.hub, service)

    def ensure_service(self, service: Service, echo: Echo) -> bool:
        return stack.ensure_service(self.client, self.hub, service, echo)

    def wait_ready(self, part: Part, since: int) -> None:
        if part is Part.FIREWALL:
            stack.wait_for_firewall(self.client, self.hub, since=since)
        elif part is Part.DATABASE:
            stack.wait_for_db(self.client, self.hub)
        elif part is Part.FRONT_DOOR:
            stack.wait_for_nginx(self.client, self.hub)

    def exams_applied(self, since: float) -> list[str | None]:
        found = stack.find_container(self.client, names.firewall_container(self.hub))
        said = found.logs(since=int(since)).decode("utf-8", "replace") if found else ""
        lines = [line.removeprefix(hubfile.EXAMS_APPLIED).strip() for line in said.splitlines()
                 if line.startswith(hubfile.EXAMS_APPLIED)]  # fmt: skip
        return [lines[-1] if lines else None]

    def container_status(self, name: str) -> str | None:
        found = stack.find_container(self.client, name)
        return None if found is None else str(found.status)

    def stop_container(self, name: str) -> None:
        found = stack.find_container(self.client, name)
        if found is not None:
            found.stop(timeout=20)

    def restart_container(self, name: str) -> None:
        found = stack.find_container(self.client, name)
        if found is not None:
            found.restart(timeout=20)

    def remove_container(self, name: str) -> None:
        found = stack.find_container(self.client, name)
        if found is not None:
            found.remove(force=True)

    def hub_api(self, paths: Paths, settings: Settings) -> HubAPI:
        """On the published port, or (behind the bundled nginx, where nothing is published) at
        the hub's own address on its network."""

        def host() -> str | None:
            if not components.has(settings, Part.FRONT_DOOR):
                return None
            address = self.hub_address()
            return f"{address}:{hubfile.PROXY_PORT}" if address else None

        return hubapi.HubAPI(settings, lambda: secrets.api_token(paths), host=host)

    def logs(self, name: str, tail: int = 60) -> str:
        found = stack.find_container(self.client, name)
        if found is None:
            return f"(no container named {name})"
        return found.logs(tail=tail).decode("utf-8", "replace")

    def follow_logs(self, name: str, tail: int) -> Iterator[bytes]:
        found = stack.find_container(self.client, name)
        if found is not None:
            yield from found.logs(tail=tail, stream=True, follow=True)

    # --- the hub's database ---
    def schema(self, paths: Paths, settings: Settings) -> tuple[str, str]:
        return database.schema(self.client, paths, settings)

    def upgrade_schema(self, paths: Paths, settings: Settings) -> str:
        return database.upgrade_schema(self.client, paths, settings)

    def move_to_postgres(self, paths: Paths) -> str:
        return database.move_to_postgres(self.client, paths, self.hub)

    def save_database(self, settings: Settings, folder: Path) -> Path:
        if components.has(settings, Part.DATABASE):
            return database.save_postgres(self.client, self.hub, folder)
        return database.save_sqlite(self.client, self.hub, folder)

    def restore_database(self, settings: Settings, copy: Path, again: bool = False) -> None:
        if components.has(settings, Part.DATABASE):
            database.restore_postgres(self.client, self.hub, copy, again)
        else:
            database.restore_sqlite(self.client, self.hub, copy, again)

    # --- students' files ---
    def save_volume(self, name: str, target: Path) -> int:
        read = 0
        with database.volume_helper(self.client, self.hub, name, "ro") as container:
            stream, _ = container.get_archive("/v", chunk_size=CHUNK)
            with (
                target.open("wb") as raw,
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as z,
            ):
                for chunk in stream:
                    z.write(chunk)
                    read += len(chunk)
        return read

    def restore_volume(
        self, name: str, kind: str, archive: Path, store: str = "", size: int = 0,
        again: bool = False,
    ) -> None:  # fmt: skip
        client, hub = self.client, self.hub
        if again and name in stack.volume_names(client):
            with (
                database.volume_helper(client, hub, name, "rw") as container,
                archive.open("rb") as data,
            ):
                if not container.put_archive("/", data):
                    raise UserError(f"{archive}: Docker did not accept it")
            return
        if store:
            (made,), new_folders = disks.make(client, hub, store, {name: (kind, size)})
            if not new_folders:
                made.remove(force=True)  # the Docker volume only: the folder and its files stay
                raise UserError(
                    f"{store}/{name} is already in DISK_STORE, with the files of an earlier "
                    "volume of that name; restore never writes over them. Move the folder away "
                    "(or delete it), then run restore again"
                )
        else:
            made = client.volumes.create(name, labels=names.labels(hub, kind))
        try:
            with (
                database.volume_helper(client, hub, name, "rw") as container,
                archive.open("rb") as data,
            ):
                # Docker unpacks the gzip'd tar itself; its top folder "v" is the volume's root.
                if not container.put_archive("/", data):
                    raise UserError(f"{archive}: Docker did not accept it")
        except BaseException:
            disks.remove(client, made)
            raise

    @contextlib.contextmanager
    def read_folder(self, volume: str, folder: str) -> Iterator[tuple[Folder, BinaryIO | None]]:
        with database.volume_helper(self.client, self.hub, volume, "ro") as container:
            try:
                stream, stat = container.get_archive(f"/v/{folder}", chunk_size=CHUNK)
            except docker.errors.NotFound:
                yield Folder.MISSING, None
                return
            chunks = iter(stream)
            try:
                if int(stat.get("mode", 0)) & _GO_DIR and not stat.get("linkTarget"):
                    yield Folder.FOLDER, io.BufferedReader(_Chunks(chunks), CHUNK)
                else:
                    yield Folder.OTHER, None
            finally:
                for _ in chunks:  # read to the end so the connection is released
                    pass

    def write_files(self, volume: str, tar: bytes) -> None:
        with database.volume_helper(self.client, self.hub, volume, "rw") as container:
            if not container.put_archive("/v", tar):
                raise UserError(f"volume {volume}: Docker did not accept the files")

    def run_sandbox(self, image: str, files: bytes, limits: SandboxLimits) -> SandboxRun:
        return sandbox.run(self.client, self.hub, image, files, limits)

    def sweep_sandboxes(self) -> int:
        return sandbox.sweep(self.client, self.hub)

    # --- user servers ---
    def missing_group_images(self, roster: Roster) -> list[str]:
        return stack.missing_group_images(self.client, roster)

    def stale_servers(self, hub_file: Any) -> dict[str, str]:
        return stack.stale_servers(self.client, self.hub, hub_file)

    def detached_volumes(self, roster: Roster) -> list[str]:
        return stack.detached_volumes(self.client, self.hub, roster)

    def sweep_users(self, prefix: str) -> int:
        return stack.sweep_users(self.client, self.hub, prefix)

    def stop_all(self, echo: Echo) -> int:
        return stack.stop_all(self.client, self.hub, echo)

    # --- the swarm's nodes (this engine may manage a swarm: docs/swarm.md) ---
    def nodes(self) -> list[NodeInfo]:
        return swarm_nodes.table(self.client, self.hub)

    def node_images(
        self, refs: tuple[str, ...], access: NodeAccess
    ) -> dict[str, tuple[str, ...] | str]:
        return swarm_nodes.image_state(self.client, refs, access.known_hosts, access.key)

    def load_node_images(
        self, hostname: str, refs: tuple[str, ...], access: NodeAccess, echo: Echo
    ) -> None:
        swarm_nodes.load_images(self.client, hostname, refs, access, echo)

    # --- inventory and destroy ---
    def inventory(self) -> dict[str, list[tuple[str, str]]]:
        found = stack.hub_inventory(self.client, self.hub)
        return {
            what: [(str(o.name), _labels(o).get(names.LABEL_KIND, "")) for o in objects]
            for what, objects in found.items()
        }

    def remove_containers(self, echo: Echo) -> int:
        return stack.remove_containers(self.client, self.hub, echo)

    def destroy(self, echo: Echo) -> int:
        return stack.destroy(self.client, self.hub, echo)


_GO_DIR = 1 << 31  # a folder, in the mode Docker's archive API gives (Go's os.FileMode)


class _Chunks(io.RawIOBase):
    """The chunks of a Docker archive as a file, for `tarfile`'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks, self._left = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        count = min(len(buffer), len(self._left))
        buffer[:count], self._left = self._left[:count], self._left[count:]
        return count


def _labels(thing) -> dict[str, str]:
    """A container's, network's or volume's labels (volumes keep theirs in attrs only)."""
    return dict(thing.attrs.get("Labels") or thing.attrs.get("Config", {}).get("Labels") or {})


def connect(environ: Mapping[str, str], hub: str) -> SingleHost:
    """This hub on the Docker engine DOCKER_HOST names (else the local socket); an error saying
    how to start one when none answers."""
    return SingleHost(engine.connect(environ), hub, engine.where(environ))


def where(environ: Mapping[str, str]) -> str:
    """Where the engine is looked for: DOCKER_HOST, else the local socket."""
    return engine.where(environ)


def install(environ: Mapping[str, str], echo: Echo) -> str:
    """`invoke engine`: install Debian's docker.io when missing, start dockerd, say what it did."""
    return engine.install_and_start(environ, echo)


def hubs(environ: Mapping[str, str]) -> list[HubInfo]:
    """Every hub on the engine (`invoke hubs`)."""
    return neighbours.hubs(engine.connect(environ))
