"""The second runtime: an engine held in memory, for unit tests of the plans.

`FakeEngine` keeps images, networks, volumes and containers as plain records and writes down
every change it makes in `events` ("create volume math-user-ann", ...), so a test reads what a
plan made, in which order, and that a second run made nothing. Its hub answers a small REST API
(`FakeHubAPI`: users, groups, their members) once the hub container runs, so the hub's users
and groups are brought in line by the same `hubapi` code as on a real hub. The hub keeps them
in its database file, in its data volume (or PostgreSQL's, with HUB_DB=postgres), and volumes
hold files: a backup, destroy and restore bring them back as on a real engine.

What it does not model: other hubs on the same engine (no conflicts), logs (empty), user
servers (this hub never spawns one), schema upgrades (its JupyterHub's revision never changes)
and DISK_STORE's folders beyond their size limits. End-to-end tests on a real engine stay the
proof that a hub works; this proves the plans' order and idempotence.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .. import backup, components, hubapi, hubfile, names, render
from ..components import Part
from ..console import Echo
from ..errors import UserError
from ..images import ImageSpec, inputs_hash, local_base_tag, state_of
from ..inputs.roster import Roster
from ..inputs.settings import Settings
from ..paths import Paths
from . import (
    Folder,
    ImageInfo,
    NodeAccess,
    NodeInfo,
    SandboxLimits,
    SandboxRun,
    Service,
    spec_hash,
)

HEAD = "fake-head"  # the schema revision of the fake hub image's JupyterHub
PG_DATA = "pgdata"  # the fake PostgreSQL's one file in its volume


@dataclass
class Container:
    name: str
    kind: str
    spec: str
    status: str = "running"


@dataclass
class Volume:
    name: str
    kind: str
    hub: str
    files: dict[str, bytes] = field(default_factory=dict)
    limit: int | None = None  # bytes, in DISK_STORE; None: the engine's own storage
    owned: bool = True  # False: made by a run killed before it gave the volume its owner
    times: dict[str, float] = field(default_factory=dict)  # a file's last change (0 unless set)


class FakeEngine:
    """One hub's view of an in-memory engine. `images` are there from the start (a base)."""

    def __init__(self, hub: str, images: tuple[str, ...] = ("debian:bookworm-slim",)):
        self.hub = hub
        self.images: dict[str, ImageInfo] = {ref: ImageInfo(_id(ref)) for ref in images}
        self.networks: dict[str, str] = {}  # name -> kind
        self.volumes: dict[str, Volume] = {}
        self.containers: dict[str, Container] = {}
        self.events: list[str] = []
        self.swarm_nodes: list[NodeInfo] = []  # the swarm it manages; none unless a test adds
        self.node_holds: dict[str, set[str]] = {}  # a node's hostname -> the image IDs it holds
        # How a grading sandbox ends, from what it was given: a test's stand-in for the grader.
        self.sandbox_result: Callable[[bytes], SandboxRun] = lambda files: SandboxRun(
            False, 0, False, b"", ""
        )

    # --- the hub's own users and groups, in its database file ---
    def _db_file(self) -> tuple[Volume, str] | None:
        """Where the hub's database is: PostgreSQL's volume when it has one, else its data
        volume's sqlite file (None before the hub first started)."""
        postgres = self.volumes.get(names.db_volume(self.hub))
        if postgres is not None:
            return postgres, PG_DATA
        data = self.volumes.get(names.hub_data_volume(self.hub))
        return (data, hubfile.SQLITE_FILE) if data is not None else None

    def _db(self) -> dict:
        found = self._db_file()
        if found is None or found[1] not in found[0].files:
            return {"users": [], "groups": {}}
        return json.loads(found[0].files[found[1]])

    def _write_db(self, db: dict) -> None:
        found = self._db_file()
        assert found is not None, "the hub runs on its data volume"
        found[0].files[found[1]] = json.dumps(db, sort_keys=True).encode()

    @property
    def users(self) -> set[str]:
        return set(self._db()["users"])

    @property
    def groups(self) -> dict[str, set[str]]:
        return {g: set(m) for g, m in self._db()["groups"].items()}

    def change_hub(self, users: set[str], groups: dict[str, set[str]], event: str) -> None:
        self._write_db(
            {"users": sorted(users), "groups": {g: sorted(m) for g, m in groups.items()}}
        )
        self._did(event)

    def _did(self, event: str) -> None:
        self.events.append(event)

    def version(self) -> str:
        return "fake engine (in memory)"

    def conflicts(self, settings: Settings, root: Path) -> list[str]:
        return []  # one hub per fake engine

    # --- images ---
    def image(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    def ensure_base(self, base: str, state_dir: Path, echo: Echo) -> str:
        if base in self.images:
            return base
        local = local_base_tag()
        if local not in self.images:
            self.images[local] = ImageInfo(_id(local))
            self._did(f"build base {local}")
        return local

    def build(self, spec: ImageSpec, ca: bytes, base: str, log_dir: Path, echo: Echo) -> None:
        wanted = inputs_hash(spec, ca, self.images[base].id)
        found = self.images.get(spec.tag)
        if state_of(None if found is None else found.labels, wanted) in ("missing", "out of date"):
            self.images[spec.tag] = ImageInfo(_id(spec.tag + wanted), {names.LABEL_INPUTS: wanted})
            self._did(f"build image {spec.tag}")

    # --- networks ---
    def network_state(self) -> str:
        return "present" if names.network(self.hub) in self.networks else "missing"

    def ensure_network(self, echo: Echo, owner: dict[str, str]) -> None:
        if self.network_state() != "present":
            self.networks[names.network(self.hub)] = "net"
            self._did(f"create network {names.network(self.hub)}")

    def hub_address(self) -> str | None:
        return "10.99.0.254" if self.network_state() == "present" else None

    def network_exists(self, name: str) -> bool:
        return name in self.networks

    def ensure_internal_network(self, name: str, kind: str) -> None:
        if name not in self.networks:
            self.networks[name] = kind
            self._did(f"create network {name}")

    # --- volumes ---
    def volume_names(self) -> set[str]:
        return set(self.volumes)

    def ensure_volume(self, name: str, kind: str) -> None:
        if name not in self.volumes:
            self.volumes[name] = Volume(name, kind, self.hub)
            self._did(f"create volume {name}")

    def create_volumes(
        self,
        volumes: dict[str, str],
        image: str,
        echo: Echo,
        store: str = "",
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        if image not in self.images:  # the real engine prepares them in a container of it
            raise UserError(f"preparing {len(volumes)} new volume(s) failed: no image {image}")
        for name in sorted(self.unfinished_volumes()):
            self.volumes[name].owned = True
            self._did(f"give volume {name} its owner")
        for name, kind in volumes.items():
            if name not in self.volumes:
                limit = (sizes or {}).get(name) if store else None
                self.volumes[name] = Volume(name, kind, self.hub, limit=limit)
                self._did(f"create volume {name}" + (f" limited to {limit}" if limit else ""))

    def unfinished_volumes(self) -> dict[str, str]:
        return {v.name: v.kind for v in self.volumes.values() if not v.owned}

    def remove_volume(self, name: str) -> None:
        del self.volumes[name]
        self._did(f"remove volume {name}")

    def disk_usage(self, volumes: set[str]) -> dict[str, dict[str, int] | None]:
        found: dict[str, dict[str, int] | None] = {}
        for name in sorted(volumes & set(self.volumes)):
            limit = self.volumes[name].limit
            found[name] = None if limit is None else {"used": 0, "limit": limit}
        return found

    def set_disk_limits(self, sizes: Mapping[str, tuple[str, int]]) -> None:
        for name, (_, size) in sizes.items():
            if self.volumes[name].limit is not None:
                self.volumes[name].limit = size
                self._did(f"limit volume {name} to {size}")

    def has_sqlite(self) -> bool:
        data = self.volumes.get(names.hub_data_volume(self.hub))
        return data is not None and hubfile.SQLITE_FILE in data.files

    def has_postgres(self) -> bool:
        return names.db_volume(self.hub) in self.volumes

    # --- the hub's own services ---
    def services(self, paths: Paths, settings: Settings) -> list[Service]:
        if self.network_state() != "present":
            raise UserError(f"the network {names.network(self.hub)} is missing; run invoke setup")
        made = []
        for component in components.of(settings):
            image = self.images.get(component.image.tag)
            inputs = [image.id if image else "missing"]
            if component.part is Part.HUB:  # what the hub reads only when it starts
                inputs.append(json.dumps(render.hub_settings(settings), sort_keys=True))
            kwargs = {"image": component.image.tag, "name": component.container}
            made.append(Service(component, kwargs, inputs="\0".join(inputs)))
        return made

    def service_state(self, service: Service) -> tuple[str, str]:
        found = self.containers.get(service.name)
        if found is None:
            return "missing", "create and start"
        if found.spec != spec_hash(service):
            return f"{found.status}, made from other settings or image", "replace"
        if found.status != "running":
            return found.status, "start"
        return "running", ""

    def ensure_service(self, service: Service, echo: Echo) -> bool:
        _, action = self.service_state(service)
        if not action:
            return False
        if action == "start":
            self.containers[service.name].status = "running"
            self._did(f"start container {service.name}")
        else:
            if action == "replace":
                self._did(f"remove container {service.name}")
            kind = service.component.part.value
            self.containers[service.name] = Container(service.name, kind, spec_hash(service))
            self._did(f"create container {service.name}")
        found = self._db_file()
        if service.component.part is Part.HUB and found and found[1] not in found[0].files:
            self._write_db(self._db())  # JupyterHub makes its (empty) database when it first starts
        return True

    def _of(self, part: Part) -> list[Container]:
        return [c for c in self.containers.values() if c.kind == part.value]

    def wait_ready(self, part: Part, since: int) -> None:
        for container in self._of(part):
            if container.status != "running":
                raise UserError(f"{container.name} stopped")

    def exams_applied(self, since: float) -> list[str | None]:
        return [None]  # the fake has no firewall process: it enforces nothing

    def container_status(self, name: str) -> str | None:
        found = self.containers.get(name)
        return None if found is None else found.status

    def stop_container(self, name: str) -> None:
        if self.containers[name].status == "running":
            self.containers[name].status = "exited"
            self._did(f"stop container {name}")

    def restart_container(self, name: str) -> None:
        self.containers[name].status = "running"
        self._did(f"restart container {name}")

    def remove_container(self, name: str) -> None:
        if self.containers.pop(name, None) is not None:
            self._did(f"remove container {name}")

    def hub_api(self, paths: Paths, settings: Settings) -> hubapi.HubAPI:
        return FakeHubAPI(settings, self)

    def logs(self, name: str, tail: int = 60) -> str:
        return "" if name in self.containers else f"(no container named {name})"

    def follow_logs(self, name: str, tail: int) -> Iterator[bytes]:
        return iter(())

    # --- the hub's database ---
    def schema(self, paths: Paths, settings: Settings) -> tuple[str, str]:
        return HEAD, HEAD

    def upgrade_schema(self, paths: Paths, settings: Settings) -> str:
        return f"at JupyterHub's revision {HEAD}"

    def move_to_postgres(self, paths: Paths) -> str:
        data = self.volumes[names.hub_data_volume(self.hub)].files
        self.volumes[names.db_volume(self.hub)].files[PG_DATA] = data[hubfile.SQLITE_FILE]
        data[hubfile.SQLITE_MOVED] = data.pop(hubfile.SQLITE_FILE)
        self._did("move the hub database to PostgreSQL")
        return "moved every row"

    def save_database(self, settings: Settings, folder: Path) -> Path:
        postgres = components.has(settings, Part.DATABASE)
        volume = names.db_volume(self.hub) if postgres else names.hub_data_volume(self.hub)
        source = PG_DATA if postgres else hubfile.SQLITE_FILE
        target = folder / (backup.DUMP_FILE if postgres else hubfile.SQLITE_FILE)
        target.write_bytes(self.volumes[volume].files[source])
        return target

    def restore_database(self, settings: Settings, copy: Path, again: bool = False) -> None:
        if components.has(settings, Part.DATABASE):
            postgres = self.volumes[names.db_volume(self.hub)]
            if postgres.files and not again:
                raise UserError("pg_restore failed: the database is not empty")
            postgres.files[PG_DATA] = copy.read_bytes()
        else:
            self.ensure_volume(names.hub_data_volume(self.hub), "data")
            self.volumes[names.hub_data_volume(self.hub)].files[hubfile.SQLITE_FILE] = (
                copy.read_bytes()
            )
        self._did("restore the hub database")

    # --- students' files ---
    def save_volume(self, name: str, target: Path) -> int:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, data in sorted(self.volumes[name].files.items()):
                info = tarfile.TarInfo(f"v/{path}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        with gzip.open(target, "wb") as packed:
            packed.write(buffer.getvalue())
        return len(buffer.getvalue())

    def restore_volume(
        self, name: str, kind: str, archive: Path, store: str = "", size: int = 0,
        again: bool = False,
    ) -> None:  # fmt: skip
        if name in self.volumes and not again:
            raise UserError(f"volume {name} exists; restore never writes over one")
        with tarfile.open(archive, mode="r:gz") as tar:
            files = {
                m.name.removeprefix("v/"): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile()
            }
        self.volumes[name] = Volume(name, kind, self.hub, files, size if store else None)
        self._did(f"restore volume {name}")

    @contextlib.contextmanager
    def read_folder(self, volume: str, folder: str) -> Iterator[tuple[Folder, BinaryIO | None]]:
        files = self.volumes[volume].files
        if folder in files:
            yield Folder.OTHER, None
            return
        below = {p: d for p, d in files.items() if p.startswith(f"{folder}/")}
        if not below:
            yield Folder.MISSING, None
            return
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.addfile(_folder_info(folder))
            made: set[str] = set()
            for path, data in sorted(below.items()):
                parts = path.split("/")[:-1]
                for end in range(2, len(parts) + 1):
                    above = "/".join(parts[:end])
                    if above not in made:
                        made.add(above)
                        tar.addfile(_folder_info(above))
                info = tarfile.TarInfo(path)
                info.size, info.mtime = len(data), self.volumes[volume].times.get(path, 0)
                tar.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        yield Folder.FOLDER, buffer

    def write_files(self, volume: str, tar: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None
                    self.volumes[volume].files[member.name] = handle.read()
                    self.volumes[volume].times[member.name] = member.mtime
        self._did(f"write files into {volume}")

    def run_sandbox(self, image: str, files: bytes, limits: SandboxLimits) -> SandboxRun:
        """Runs nothing: `sandbox_result(files)` (a test sets it) says how it ended."""
        self._did(f"grade in a sandbox of {image}")
        return self.sandbox_result(files)

    def sweep_sandboxes(self) -> int:
        return 0  # its sandboxes leave nothing behind: they run nothing

    # --- user servers ---
    def missing_group_images(self, roster: Roster) -> list[str]:
        return [
            f"userlist:{line}: group {group}'s image {image} is not on this Docker engine"
            for group, image, line in roster.group_images
            if image not in self.images
        ]

    def stale_servers(self, hub_file: Any) -> dict[str, str]:
        return {}  # the fake hub spawns no servers

    def detached_volumes(self, roster: Roster) -> list[str]:
        wanted = roster.volumes(self.hub)
        return sorted(
            v.name
            for v in self.volumes.values()
            if v.kind in ("user", "group") and v.name not in wanted
        )

    def sweep_users(self, prefix: str) -> int:
        removed = 0
        for name in list(self.volumes):
            if name.startswith(names.user_volume(self.hub, prefix)):
                self.remove_volume(name)
                removed += 1
        return removed

    def stop_all(self, echo: Echo) -> int:
        count = 0
        for part in reversed(Part):  # as stack's: the reverse of the start order
            for container in self._of(part):
                if container.status == "running":
                    self.stop_container(container.name)
                    count += 1
        return count

    # --- the swarm's nodes ---
    def nodes(self) -> list[NodeInfo]:
        return list(self.swarm_nodes)

    def node_images(
        self, refs: tuple[str, ...], access: NodeAccess
    ) -> dict[str, tuple[str, ...] | str]:
        builds = {ref: self.images[ref].id for ref in refs if ref in self.images}
        return {
            node.hostname: tuple(
                r for r, i in builds.items() if i not in self.node_holds[node.hostname]
            )
            for node in self.swarm_nodes
            if node.role == "worker"
        }

    def load_node_images(
        self, hostname: str, refs: tuple[str, ...], access: NodeAccess, echo: Echo
    ) -> None:
        for ref in refs:
            if ref in self.images and self.images[ref].id not in self.node_holds[hostname]:
                self.node_holds[hostname].add(self.images[ref].id)
                self.events.append(f"load {ref} into node {hostname}")

    # --- inventory and destroy ---
    def inventory(self) -> dict[str, list[tuple[str, str]]]:
        return {
            "containers": [(c.name, c.kind) for c in self.containers.values()],
            "networks": list(self.networks.items()),
            "volumes": [(v.name, v.kind) for v in self.volumes.values()],
        }

    def remove_containers(self, echo: Echo) -> int:
        self.stop_all(echo)
        removed = len(self.containers)
        for name in list(self.containers):
            del self.containers[name]
            self._did(f"remove container {name}")
        return removed

    def destroy(self, echo: Echo) -> int:
        count = sum(len(objects) for objects in self.inventory().values())
        self.remove_containers(echo)
        for name in list(self.networks):
            del self.networks[name]
            self._did(f"remove network {name}")
        for name in list(self.volumes):
            self.remove_volume(name)
        echo(f"Removed {count} Docker object(s) of hub {self.hub}.")
        return count


def _folder_info(path: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    return info


def _id(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


class FakeHubAPI(hubapi.HubAPI):
    """The fake hub's REST API: its users and groups, answered while its container runs."""

    def __init__(self, settings: Settings, engine: FakeEngine):
        super().__init__(settings, lambda: "fake-token")
        self.engine = engine
        self._container = names.hub_container(engine.hub)

    def answers(self) -> bool:
        return self.engine.container_status(self._container) == "running"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.answers():
            raise UserError(f"the hub's API at {self.root} does not answer")
        engine, body = self.engine, kwargs.get("json") or {}
        users, groups = engine.users, engine.groups
        parts = path.strip("/").split("/")
        if (method, parts) == ("GET", ["users"]):
            items = [{"name": u, "servers": {}} for u in sorted(users)]
            return {"items": items, "_pagination": {}}
        if (method, parts) == ("GET", ["groups"]):
            items = [{"name": g, "users": sorted(m)} for g, m in sorted(groups.items())]
            return {"items": items, "_pagination": {}}
        if (method, parts) == ("POST", ["users"]):
            users.update(body["usernames"])
            event = f"hub: add users {', '.join(body['usernames'])}"
        elif method == "DELETE" and parts[0] == "users" and len(parts) == 2:
            users.discard(parts[1])
            for members in groups.values():
                members.discard(parts[1])
            event = f"hub: remove user {parts[1]}"
        elif parts[0] == "groups" and len(parts) == 2:
            if method == "POST":
                groups.setdefault(parts[1], set())
            else:
                groups.pop(parts[1], None)
            event = f"hub: {'add' if method == 'POST' else 'remove'} group {parts[1]}"
        elif parts[0] == "groups" and parts[2:] == ["users"]:
            if method == "POST":
                groups[parts[1]].update(body["users"])
            else:
                groups[parts[1]].difference_update(body["users"])
            event = f"hub: {method.lower()} members of {parts[1]}: {', '.join(body['users'])}"
        else:
            raise UserError(f"the fake hub's API has no {method} {path}")
        engine.change_hub(users, groups, event)
        return None
