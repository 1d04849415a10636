"""The seam between classhub's plans and a container engine: what a plan asks of an engine.

The plans (`deploy`, and the tasks in `commands`) decide what a hub needs and in which order;
a `Runtime` looks at and changes one hub's objects on one engine. Three implementations:

- `single_host.SingleHost`: one Docker engine, through docker-py;
- `swarm.runtime.Swarm` (ENGINE=swarm): the hub on a swarm's manager, its students' servers as
  services on the nodes; the one-server runtime where the two are alike;
- `fake.FakeEngine`: an in-memory engine whose hub answers its API, for unit tests of the plans
  (what is made, in which order, and that a second run makes nothing).

What the protocol speaks: names from `names` and `components`, `ImageSpec`s, `Service` recipes (an
engine's own recipe for a component) and the small records below, never an engine's objects.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ..components import Component, Part
from ..console import Echo

if TYPE_CHECKING:
    from ..hubapi import HubAPI
    from ..images import ImageSpec
    from ..inputs.roster import Roster
    from ..inputs.settings import Settings
    from ..paths import Paths


@dataclass(frozen=True)
class ImageInfo:
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeInfo:
    """One server of the engine's swarm, as status lists it."""

    hostname: str
    role: str  # manager, worker
    state: str  # ready, down, ...
    availability: str  # active, drain, pause
    address: str  # how classhub reaches it over SSH ('' for this server)
    engine: str
    servers: int  # this hub's students' servers running there


@dataclass(frozen=True)
class NodeAccess:
    """How classhub reaches the swarm's nodes: over SSH, with these known hosts and key; and
    how the builds reach them: loaded over SSH, or through a site's registry (SWARM_REGISTRY)."""

    known_hosts: Path
    key: Path | None = None
    registry: str = ""


class Folder(enum.Enum):
    """What a path in a volume is, as `Runtime.read_folder` finds it."""

    MISSING = "missing"
    FOLDER = "folder"
    OTHER = "other"  # a file, a link, ...: not a folder


@dataclass(frozen=True)
class SandboxLimits:
    """What a grading sandbox may use (`Runtime.run_sandbox`)."""

    memory: int  # bytes, swap included
    cpus: float
    pids: int  # processes and threads
    seconds: float  # then it is killed
    tmp: int  # bytes of its memory-backed /tmp


@dataclass(frozen=True)
class SandboxRun:
    """How a sandbox ended: on its own or killed at its time limit, whether the kernel's
    out-of-memory killer stopped something in it, and what it left in its out/ folder (a tar)."""

    timed_out: bool
    exit_code: int | None
    out_of_memory: bool
    out: bytes
    log: str


@dataclass(frozen=True)
class Service:
    """One of the hub's components as an engine makes it: `kwargs` is that engine's recipe (on
    Docker, `containers.create`'s keyword arguments), its spec hash what the made object is
    labelled with, so a changed recipe is seen and the object replaced."""

    component: Component
    kwargs: dict[str, Any]
    join: tuple[str, ...] = ()  # networks joined after create, before start
    addresses: tuple[tuple[str, str], ...] = ()  # (network, fixed address) of those joined
    inputs: str = ""  # what else it is made from, for its spec hash
    files: tuple[tuple[Path, str], ...] = ()  # host files it mounts, written when it is made

    @property
    def name(self) -> str:
        return self.component.container

    @property
    def what(self) -> str:
        return self.component.what


def spec_hash(service: Service) -> str:
    """The hash of everything a component is made from (its recipe, networks, inputs)."""
    digest = hashlib.sha256(json.dumps(service.kwargs, sort_keys=True, default=str).encode())
    digest.update(f"\0{service.join}\0{service.inputs}".encode())
    if service.addresses:  # (so that the hashes of services without any stay as they were)
        digest.update(f"\0{service.addresses}".encode())
    return digest.hexdigest()[:32]


class Runtime(Protocol):
    """One hub's objects on one engine. Every method looks at or changes this hub only, except
    `conflicts`, which looks at the others on the same engine."""

    hub: str

    def version(self) -> str:
        """The engine and where it answers, for the plan's heading."""

    def conflicts(self, settings: Settings, root: Path) -> list[str]:
        """What another hub on this engine holds that these settings want (names, ports)."""

    # --- images ---
    def image(self, ref: str) -> ImageInfo | None:
        """The image of that reference, or None when the engine does not have it."""

    def ensure_base(self, base: str, state_dir: Path, echo: Echo) -> str:
        """The base to build from: present, pulled, or built from the host's packages."""

    def build(self, spec: ImageSpec, ca: bytes, base: str, log_dir: Path, echo: Echo) -> None:
        """Build `spec` FROM `base` unless an image of the same inputs is there (or not ours)."""

    # --- networks ---
    def network_state(self) -> str:
        """The hub's network: 'missing', 'present' or 'without a fixed hub address'."""

    def ensure_network(self, echo: Echo, owner: dict[str, str]) -> None:
        """Make (or remake, stopping what runs) the hub's network with its fixed hub address."""

    def hub_address(self) -> str | None:
        """The hub container's fixed address on its network (None while there is none)."""

    def network_exists(self, name: str) -> bool: ...

    def ensure_internal_network(self, name: str, kind: str) -> None:
        """Make a network with no way out (a component's), unless it exists."""

    # --- volumes ---
    def volume_names(self) -> set[str]:
        """Every volume on the engine (names are checked against other hubs' too)."""

    def ensure_volume(self, name: str, kind: str) -> None:
        """Make one of the hub's own data volumes, empty, unless it exists."""

    def create_volumes(
        self,
        volumes: dict[str, str],
        image: str,
        echo: Echo,
        store: str = "",
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        """Make homes and group folders (name -> kind), owned by jovyan with their kind's mode;
        nothing half made when it fails. First finishes those `unfinished_volumes` names."""

    def unfinished_volumes(self) -> dict[str, str]:
        """The hub's volumes (name -> kind) that a run killed while making them left without
        their owner and mode: the next create_volumes finishes them."""

    def disk_usage(self, volumes: set[str]) -> dict[str, dict[str, int] | None]:
        """Of these volumes of the hub: each one's bytes used and size limit in DISK_STORE
        ({'used', 'limit'}), None for one in the engine's own storage (no limit)."""

    def set_disk_limits(self, sizes: Mapping[str, tuple[str, int]]) -> None:
        """Set the size limits (volume -> (kind, bytes)) of those in DISK_STORE, in place."""

    def remove_volume(self, name: str) -> None:
        """Delete one of the hub's volumes and its files (the caller has confirmed)."""

    def has_sqlite(self) -> bool:
        """Whether the hub's data volume holds its sqlite database (not moved to PostgreSQL)."""

    def has_postgres(self) -> bool:
        """Whether the hub has a PostgreSQL data volume."""

    # --- the hub's own services (its components) ---
    def services(self, paths: Paths, settings: Settings) -> list[Service]:
        """The engine's recipe for each component, in start order (needs the hub's network)."""

    def service_state(self, service: Service) -> tuple[str, str]:
        """(state, action) of one component; action '' when nothing is to be done."""

    def ensure_service(self, service: Service, echo: Echo) -> bool:
        """Start, make or replace the component as its state now asks; whether it did."""

    def exams_applied(self, since: float) -> list[str | None]:
        """What the hub's firewall last said it enforces (`hubfile.EXAMS_APPLIED`'s words), in
        each place it runs (one server; each node of a swarm that takes servers); None where
        it said nothing since `since` (epoch seconds)."""

    def wait_ready(self, part: Part, since: int) -> None:
        """Return once the component (started at `since`) is ready; the hub itself answers
        its API (`hub_api`)."""

    def container_status(self, name: str) -> str | None:
        """'running', 'exited', ... of one of the hub's containers; None when there is none."""

    def stop_container(self, name: str) -> None: ...

    def restart_container(self, name: str) -> None:
        """Stop and start one of the hub's containers again (the renewer: asks the CA at once)."""

    def remove_container(self, name: str) -> None:
        """Stop and remove one of the hub's containers (none: nothing to do)."""

    def hub_api(self, paths: Paths, settings: Settings) -> HubAPI:
        """The hub's REST API as this host reaches it on this engine."""

    def logs(self, name: str, tail: int = 60) -> str:
        """A container's last lines; a line saying so when there is no such container."""

    def follow_logs(self, name: str, tail: int) -> Iterator[bytes]:
        """A container's last lines, then what it writes, until it stops."""

    # --- the hub's database (its schema, its move to PostgreSQL) ---
    def schema(self, paths: Paths, settings: Settings) -> tuple[str, str]:
        """(the database's revision or 'none', the revision the hub image's JupyterHub needs)."""

    def upgrade_schema(self, paths: Paths, settings: Settings) -> str: ...

    def move_to_postgres(self, paths: Paths) -> str: ...

    def save_database(self, settings: Settings, folder: Path) -> Path:
        """A consistent copy of the hub's database in `folder` (the hub keeps running)."""

    def restore_database(self, settings: Settings, copy: Path, again: bool = False) -> None:
        """Load a copy into the hub's new database: sqlite into a new data volume, a dump into
        PostgreSQL (running, empty, before the hub first starts). `again`: after a restore that
        was interrupted, over whatever it had loaded."""

    # --- students' files ---
    def save_volume(self, name: str, target: Path) -> int:
        """The volume as a gzip'd tar (owners, modes, times kept) at `target`; bytes read."""

    def restore_volume(
        self, name: str, kind: str, archive: Path, store: str = "", size: int = 0,
        again: bool = False,
    ) -> None:  # fmt: skip
        """Make the volume (in DISK_STORE `store` with the size limit `size`, when given) and
        fill it from `archive`; removed again when that fails. Never writes over a folder,
        except with `again`: a volume this same restore made before it was interrupted is
        filled again (the archive's files over the part it had written)."""

    def read_folder(
        self, volume: str, folder: str
    ) -> AbstractContextManager[tuple[Folder, BinaryIO | None]]:
        """`folder` of the volume, read-only: (FOLDER, a tar stream whose entries start with
        `folder/`), (MISSING, None), or (OTHER, None) when it is a file or a link there."""

    def write_files(self, volume: str, tar: bytes) -> None:
        """Unpack `tar` at the volume's root, with the owners, modes and times it gives, while
        its student's server may be running."""

    def run_sandbox(self, image: str, files: bytes, limits: SandboxLimits) -> SandboxRun:
        """Run `image` once as the students' user with `files` (a tar) in /grading: no network,
        no other volume, read-only but for /grading and /tmp, within `limits`; then remove it
        and everything it was given."""

    def sweep_sandboxes(self) -> int:
        """Remove the sandboxes (containers and volumes) an autograde that was killed left
        behind; how many objects it removed."""

    # --- user servers ---
    def missing_group_images(self, roster: Roster) -> list[str]:
        """`userlist:LINE: ...` for each group image the engine does not have."""

    def stale_servers(self, hub_file: Any) -> dict[str, str]:
        """Running servers that differ from what the hub file now gives their user."""

    def detached_volumes(self, roster: Roster) -> list[str]:
        """This hub's homes and group folders no roster user or group uses any more (kept)."""

    def sweep_users(self, prefix: str) -> int:
        """Remove the containers, then the homes, of the users whose names start with `prefix`
        (a rehearsal's temporary students); how many objects it removed."""

    def stop_all(self, echo: Echo) -> int:
        """Stop the hub, every user server (removed: data lives in volumes) and the other
        components; how many were stopped."""

    # --- the swarm's nodes ---
    def nodes(self) -> list[NodeInfo]:
        """The servers of the swarm this engine manages, with this hub's servers on each; []
        when it manages none."""

    def node_images(
        self, refs: tuple[str, ...], access: NodeAccess
    ) -> dict[str, tuple[str, ...] | str]:
        """Each node of the swarm (not this server) and which images of `refs` it lacks, as this
        server's engine has them now; or, for a node that could not be looked at, why."""

    def load_node_images(
        self, hostname: str, refs: tuple[str, ...], access: NodeAccess, echo: Echo
    ) -> None:
        """Load into that node the builds of `refs` it lacks."""

    # --- inventory and destroy ---
    def inventory(self) -> dict[str, list[tuple[str, str]]]:
        """Every object of this hub by what it is (containers, networks, volumes), each as
        (name, its classhub.kind)."""

    def remove_containers(self, echo: Echo) -> int:
        """Stop and remove every container of this hub (networks and volumes stay)."""

    def destroy(self, echo: Echo) -> int:
        """Remove every object of this hub, volumes included (the caller has confirmed)."""
