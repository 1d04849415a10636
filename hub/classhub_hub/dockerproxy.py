"""The Docker socket proxy: the only way the hub reaches Docker, and what it lets through.

The hub never holds the Docker socket. It talks HTTP to this proxy (`DOCKER_HOST`), which runs in
its own container with the socket, on a network that only the hub joins (no user container can
reach it). A request passes only when `Policy.refusal` finds nothing wrong with it:

- the calls DockerSpawner makes and nothing else: version and ping, inspecting the notebook
  image(s), creating, inspecting, starting, stopping and removing containers; and creating the
  home volume of a person not on the roster (OPEN_TO_ALL): named as this hub's user volumes, with
  this hub's user labels, Docker's local driver and no driver options (which could bind a host
  folder); with DISK_STORE the proxy itself makes the home's folder in the store, DISK_LIMIT in
  size (classhub_hub.diskstore), and adds the options that bind it;
- a container may be acted on only when it is one of this hub's user containers (its labels say
  so); one that does not exist gets Docker's own 404, so DockerSpawner sees a missing server;
- a container is created only as a hardened user container of this hub, named as the hub file
  names that user's container and running the image the hub file gives them, and its definition is
  read as an allowlist: it may hold only the keys DockerSpawner sends (`CONFIG_KEYS`,
  `HOST_KEYS`, `MOUNT_KEYS`), each with what a user container of this hub holds: its name and
  labels, an allowed image, the hub's network, every capability dropped, `no-new-privileges` and
  no other security option, a read-only root filesystem with only classhub's tmpfs at /tmp, pids,
  memory and CPU limits, no swap, and as mounts only this hub's
  user and group volumes (and SHARED_DATA), plainly, in the home. Any
  other key is refused, one that Docker knows (privileged mode, namespaces, devices, ports, a
  mount's driver or bind options, unmasked paths, a cgroup parent) or one it adds later.

It also tells the firewall which server is whose: this hub's running user containers and their
addresses on the hub's network (`Addresses`, in `hubfile.ADDRESSES_FILE`, on a volume it shares
with the firewall), listed every second and again as soon as a server starts, before the hub
hears that it did. And it starts no server until the firewall has said, in the same volume, that
its rules are loaded in the running kernel (`hubfile.FIREWALL_FILE`): after a reboot they are gone
until the firewall is back. On a swarm (--swarm-storage) the same list, of its students' services'
tasks by their addresses on the overlay, goes to the guards' words folder on the shared storage,
beside copies of the hub file and the exams (`Copies`): every node's guard reads them there
(`hubfile.guard_inputs`); and it starts no server until every node's guards have said lately that
their tables are loaded (`guards_loaded`).

What it allows comes from the hub file (`hub_name`, `network`, `shared_data` and `socket_proxy`:
the images, DISK_STORE and DISK_LIMIT), mounted read-only and re-read whenever setup replaces it,
so a group's new image passes without the proxy being replaced.

So even a hub taken over by a student cannot start a privileged container, mount the host or touch
another hub's containers. A refusal is a 403 whose message starts with `classhub docker proxy:`;
it is logged (method, path and reason; never a body, which may carry tokens).

Standard library only (and classhub.names and classhub.hubfile, which are): it runs with the hub
image's Python, as `python3 -m classhub_hub.dockerproxy`.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from classhub import hubfile, names

from . import diskstore, services
from .roster import LiveRoster
from .services import _in_home, _positive, _unknown

DOCKER_SOCKET = "/var/run/docker.sock"
_VERSION = re.compile(r"^/v\d+(?:\.\d+)?(?=/)")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_ID = rf"(?P<id>{_NAME})"


def _routes(*allowed: tuple[str, str]) -> tuple[tuple[str, re.Pattern], ...]:
    return tuple((method, re.compile(pattern)) for method, pattern in allowed)


# (method, path): what DockerSpawner calls. Paths are matched without the /vX.Y prefix.
ROUTES = _routes(
    ("GET", r"/_ping"),
    ("HEAD", r"/_ping"),
    ("GET", r"/version"),
    ("GET", r"/images/(?P<image>.+)/json"),
    ("POST", r"/containers/create"),
    ("GET", rf"/containers/{_ID}/json"),
    ("POST", rf"/containers/{_ID}/(?:start|stop)"),
    ("DELETE", rf"/containers/{_ID}"),
    ("POST", r"/volumes/create"),
)
# On a swarm (the proxy given --swarm-storage), what the hub's SwarmSpawner calls besides:
# creating, inspecting and removing this hub's students' services, and their tasks.
SWARM_ROUTES = _routes(
    ("POST", r"/services/create"),
    ("GET", rf"/services/(?P<service>{_NAME})"),
    ("DELETE", rf"/services/(?P<service>{_NAME})"),
    ("GET", r"/tasks"),
)


@dataclass(frozen=True)
class Policy:
    hub: str
    network: str
    images: frozenset[str]
    shared: frozenset[str] = field(default_factory=frozenset)  # SHARED_DATA: folder or volume
    disk_store: str = ""  # DISK_STORE: a newcomer's home is made there, with disk_limit bytes
    disk_limit: int = 0
    # On a swarm: the shared storage's folder, where students' services bind their folders from
    # (services.folder); "" on one host, where no service may be made.
    swarm_storage: str = ""
    # The hub file itself: a container's name must be a user's own container, its image theirs.
    users: hubfile.HubFile | None = field(default=None, compare=False)

    @classmethod
    def of(cls, hub: hubfile.HubFile, swarm_storage: str = "") -> Policy:
        """What the hub file (re-read when it changes) allows now."""
        shared = hub.get("shared_data")
        return cls(
            swarm_storage=swarm_storage,
            hub=hub.get("hub_name"),
            network=hub.get("network"),
            images=frozenset(hub.get("socket_proxy.images")),
            shared=frozenset([shared] if shared else []),
            disk_store=hub.get("socket_proxy.disk_store"),
            disk_limit=hub.get("socket_proxy.disk_limit"),
            users=hub,
        )

    def prepared(self, target: str, body: bytes) -> bytes:
        """The body to send Docker for an allowed request: a newcomer's home, with DISK_STORE,
        becomes a size-limited folder in the store that its volume binds."""
        path = _VERSION.sub("", unquote(urlsplit(target).path), count=1)
        if path != "/volumes/create" or not self.disk_store:
            return body
        spec = json.loads(body)
        diskstore.make(self.disk_store, spec["Name"], self.disk_limit, "user")
        options = hubfile.store_volume_options(self.disk_store, spec["Name"])
        return json.dumps({**spec, "Driver": "local", "DriverOpts": options}).encode()

    def refusal(
        self, method: str, target: str, body: bytes, labels_of,
        service_labels_of=lambda service: {}, image_id_of=lambda ref: None,
    ) -> str | None:  # fmt: skip
        """Why this request may not pass, or None. `labels_of(id)`: a container's labels, or
        None when no such container exists; on a swarm `service_labels_of(id)` a service's, and
        `image_id_of(ref)` the ID of the image Docker has under that reference (or None)."""
        parts = urlsplit(target)
        path = _VERSION.sub("", unquote(parts.path), count=1)
        routes = ROUTES + (SWARM_ROUTES if self.swarm_storage else ())
        for allowed_method, pattern in routes:
            match = pattern.fullmatch(path)
            if match and method == allowed_method:
                break
        else:
            return f"{method} {path} is not a call the hub needs"
        found = match.groupdict()
        if "image" in found and found["image"] not in self.images:
            return f"image {found['image']!r} is not an image of this hub"
        if found.get("id"):
            labels = labels_of(found["id"])
            if labels is not None and not self._ours(labels):
                return f"container {found['id']!r} is not a user container of hub {self.hub}"
        if found.get("service"):
            labels = service_labels_of(found["service"])
            if labels is not None and not self._ours(labels):
                return f"service {found['service']!r} is not a student's server of hub {self.hub}"
        if path == "/tasks":
            return self.tasks_refusal(parse_qs(parts.query).get("filters", [""])[0])
        if path == "/services/create":
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                return "the service's definition is not JSON"
            if self.users is None:
                return "no hub file to check a service against"
            return services.service_refusal(self.users, self.swarm_storage, spec, image_id_of)
        if path == "/containers/create":
            name = parse_qs(parts.query).get("name", [""])[0]
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                return "the container's definition is not JSON"
            if not isinstance(spec, dict):
                return "the container's definition is not a JSON object"
            return self.create_refusal(name, spec)
        if path == "/volumes/create":
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                return "the volume's definition is not JSON"
            if not isinstance(spec, dict):
                return "the volume's definition is not a JSON object"
            return self.volume_refusal(spec)
        return None

    def tasks_refusal(self, filters: str) -> str | None:
        """Tasks are listed only of one of this hub's students' services, by its name."""
        try:
            found = json.loads(filters or "{}")
        except ValueError:
            return "the tasks' filters are not JSON"
        prefix = names.user_container(self.hub, "")
        named = found.get("service") if isinstance(found, dict) else None
        if (
            not isinstance(named, list) or len(named) != 1 or not isinstance(named[0], str)
            or not named[0].startswith(prefix) or set(found) - {"service", "desired-state"}
        ):  # fmt: skip
            return (
                f"tasks are listed only of one service named {prefix}<user> (filters {filters!r})"
            )
        return None

    def volume_refusal(self, spec: dict) -> str | None:
        """Why a volume may not be created like this, or None: only a user's home."""
        name = spec.get("Name") or ""
        prefix = names.user_volume(self.hub, "")
        if not name.startswith(prefix) or names.name_problem(name[len(prefix) :]):
            return f"a volume's name must be {prefix!r} and a user's name (got {name!r})"
        if (spec.get("Labels") or {}) != names.labels(self.hub, "user"):
            return "a volume must carry exactly this hub's user labels"
        if spec.get("Driver") not in (None, "", "local"):
            return f"volume driver {spec.get('Driver')!r} is not allowed"
        if spec.get("DriverOpts"):
            return "volume driver options are not allowed"
        return None

    def _ours(self, labels: dict) -> bool:
        return names.is_user_container(self.hub, labels)

    def create_refusal(self, name: str, spec: dict) -> str | None:
        """Why a container may not be created like this, or None. Every key of the definition
        must be one DockerSpawner sends (`CONFIG_KEYS`, `HOST_KEYS`, `MOUNT_KEYS`) and hold what
        a user container of this hub holds: anything else is refused, known to Docker or not."""
        prefix = names.user_container(self.hub, "")
        if not name.startswith(prefix) or len(name) == len(prefix):
            return f"a container's name must start with {prefix!r} (got {name!r})"
        if self.users is not None:
            user = name[len(prefix) :]
            entry = hubfile.user_entry(self.users, user)
            if entry is None or entry["container"] != name:
                return f"{user!r} is not a user of hub {self.hub}"
            if spec.get("Image") != entry["image"]:
                return f"{user}'s server runs {entry['image']}, not {spec.get('Image')!r}"
        unknown = _unknown(spec, CONFIG_KEYS, "")
        if unknown:
            return unknown
        for key in _NULL_CONFIG:
            if spec.get(key) not in (None, "", {}, []):
                return f"{key} is not allowed"
        if spec.get("Image") not in self.images:
            return f"image {spec.get('Image')!r} is not an image of this hub"
        if not self._ours(spec.get("Labels") or {}):
            return "a container must carry this hub's user labels"
        if spec.get("User") not in (None, "", "1000", "1000:100", "jovyan"):
            return f"a user container runs as jovyan, not {spec.get('User')!r}"
        for inside in spec.get("Volumes") or {}:
            if not _in_home(inside):
                return f"a volume at {inside!r} is not allowed (only in {hubfile.HOME})"
        host = spec.get("HostConfig")
        if not isinstance(host, dict):
            return "a user container needs its HostConfig"
        unknown = _unknown(host, HOST_KEYS, "HostConfig.")
        if unknown:
            return unknown
        if host.get("Links"):
            return "HostConfig.Links is not allowed"
        if "ALL" not in (host.get("CapDrop") or []):
            return "a user container must drop all capabilities (CapDrop: ALL)"
        options = host.get("SecurityOpt") or []
        if not options or any(o.replace("=", ":") not in _NO_NEW_PRIVILEGES for o in options):
            return f"a user container runs with no-new-privileges and nothing else ({options})"
        for key in ("PidsLimit", "Memory", "CpuQuota"):
            if not _positive(host.get(key)):
                return f"a user container must have a limit {key} above 0"
        if host.get("ReadonlyRootfs") is not True:
            return "a user container's root filesystem is read-only (ReadonlyRootfs: true)"
        if (host.get("Tmpfs") or {}) != hubfile.USER_TMPFS:
            return f"a user container has exactly this tmpfs: {hubfile.USER_TMPFS}"
        if host.get("MemorySwap") != host["Memory"]:
            return "a user container has no swap: MemorySwap must equal Memory"
        if host.get("CpuPeriod") is not None and not _positive(host["CpuPeriod"]):
            return "CpuPeriod must be above 0"
        if host.get("NetworkMode") != self.network:
            return f"a user container joins {self.network}, not {host.get('NetworkMode')!r}"
        for bind in host.get("Binds") or []:
            source, _, rest = str(bind).partition(":")
            inside, _, mode = rest.partition(":")
            if not self._mountable(source) or not _in_home(inside) or mode not in ("", "rw", "ro"):
                return f"the mount {bind!r} is not allowed"
        for mount in host.get("Mounts") or []:
            if not isinstance(mount, dict):
                return "a mount must be an object"
            unknown = _unknown(mount, MOUNT_KEYS, "a mount's ")
            if unknown:
                return unknown
            if mount.get("Type") not in ("volume", "bind") or not self._mountable(
                mount.get("Source", "")
            ):
                return f"mounting {mount.get('Source')!r} is not allowed"
            if not _in_home(mount.get("Target", "")):
                return f"a mount at {mount.get('Target')!r} is not allowed"
        return None

    def _mountable(self, source: str) -> bool:
        if source in self.shared:
            return True
        return not source.startswith("/") and source.startswith(
            (names.user_volume(self.hub, ""), names.group_volume(self.hub, ""))
        )


# What a user container's definition may contain: the keys docker-py sends for DockerSpawner.
# A key outside these is refused whatever its value, since an empty one can matter too
# (`MaskedPaths: []` unmasks /proc), and so is one a newer Docker adds.
CONFIG_KEYS = frozenset({
    "Hostname", "Domainname", "User", "Tty", "OpenStdin", "StdinOnce", "AttachStdin",
    "AttachStdout", "AttachStderr", "Env", "Cmd", "Image", "Volumes", "NetworkDisabled",
    "ExposedPorts", "Labels", "HostConfig", "Entrypoint", "WorkingDir", "NetworkingConfig",
    "MacAddress", "StopSignal", "StopTimeout", "Healthcheck", "Runtime",
})  # fmt: skip
# Of those, the ones DockerSpawner leaves empty, and which must stay so: another runtime, more
# networks, a MAC address of another container's. (In HostConfig: Links, always [].)
_NULL_CONFIG = ("Hostname", "Domainname", "Entrypoint", "WorkingDir", "NetworkingConfig",
                "MacAddress", "StopSignal", "StopTimeout", "Healthcheck", "Runtime")  # fmt: skip
HOST_KEYS = frozenset({
    "AutoRemove", "Binds", "Mounts", "Links", "Memory", "MemorySwap", "CpuPeriod", "CpuQuota",
    "PidsLimit", "CapDrop", "SecurityOpt", "NetworkMode", "ReadonlyRootfs", "Tmpfs",
})  # fmt: skip
# A mount is its type, source, target and read-only flag: no VolumeOptions (a driver's options
# can bind any host folder), BindOptions or TmpfsOptions.
MOUNT_KEYS = frozenset({"Type", "Source", "Target", "ReadOnly"})
_NO_NEW_PRIVILEGES = ("no-new-privileges", "no-new-privileges:true")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
_START = re.compile(rf"/containers/{_ID}/start")


def _starts(method: str, target: str) -> bool:
    """Whether the request starts a container (or, on a swarm, a student's service), its path
    read as `Policy.refusal` reads it."""
    path = _VERSION.sub("", unquote(urlsplit(target).path), count=1)
    return method == "POST" and (_START.fullmatch(path) is not None or path == "/services/create")


def docker_caller(socket_path: str, timeout: float = 120.0):
    """`docker(method, target, body, headers)` -> (status, headers, body), on the socket."""

    def docker(method: str, target: str, body: bytes | None, headers: dict):
        conn = _UnixConnection(socket_path, timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    return docker


class Addresses:
    """This hub's running user containers and their addresses on its network, written to
    `folder`/ADDRESSES_FILE for the firewall whenever they change. On a swarm (`swarm`): its
    students' services' running tasks, on any node, by their addresses on the overlay."""

    def __init__(self, docker, policy_now: Callable[[], Policy], folder: str, swarm: bool = False):
        self._docker = docker
        self._policy_now = policy_now
        self._path = Path(folder) / hubfile.ADDRESSES_FILE
        self._swarm = swarm
        self._lock = threading.Lock()
        self._written: dict[str, str] | None = None
        self._failed = ""

    def listed(self) -> dict[str, str] | None:
        """{address: user} now, or None when Docker does not answer."""
        policy = self._policy_now()
        if self._swarm:
            return self._tasks(policy)
        mine = {"label": [f"{names.LABEL_HUB}={policy.hub}", f"{names.LABEL_KIND}=user"]}
        status, _, data = self._docker(
            "GET", "/containers/json?filters=" + quote(json.dumps(mine)), None, {}
        )
        if status != 200:
            return None
        found = {}
        for container in json.loads(data):
            networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
            address = (networks.get(policy.network) or {}).get("IPAddress")
            user = (container.get("Labels") or {}).get(names.LABEL_USER)
            if address and user:
                found[address] = user
        return found

    def _tasks(self, policy: Policy) -> dict[str, str] | None:
        running = {"desired-state": ["running"]}
        status, _, data = self._docker(
            "GET", "/tasks?filters=" + quote(json.dumps(running)), None, {}
        )
        if status != 200:
            return None
        found: dict[str, str] = {}
        for task in json.loads(data):
            labels = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
            user = labels.get(names.LABEL_USER)
            if not user or not names.is_user_container(policy.hub, labels):
                continue
            for attached in task.get("NetworksAttachments") or []:
                if ((attached.get("Network") or {}).get("Spec") or {}).get(
                    "Name"
                ) == policy.network:
                    found.update((a.split("/")[0], user) for a in attached.get("Addresses") or [])
        return found

    def refresh(self) -> None:
        """List the servers again and write the file if that changed anything."""
        with self._lock:
            try:
                found = self.listed()
            except (OSError, ValueError) as exc:
                sys.stderr.write(f"listing this hub's servers for the firewall failed: {exc}\n")
                return
            if found is None or found == self._written:
                return
            text = json.dumps({"format": 1, "servers": found}, sort_keys=True)
            try:
                hubfile.replace_whole(self._path, text)
            except OSError as exc:  # said once; written when it can be
                if self._failed != str(exc):
                    sys.stderr.write(f"writing {self._path} for the firewall failed: {exc}\n")
                self._failed = str(exc)
                return
            self._written, self._failed = found, ""


class Copies:
    """On a swarm: the hub file and the exams (`sources`, in this server's state folder) copied
    into the guards' words folder, on the shared storage, whenever they change, for every node's
    guard (hubfile.guard_inputs); a copy whose source is gone goes too (no exams: none)."""

    def __init__(self, sources: dict[Path, Path]):
        self._sources = sources  # source: copy
        self._seen: dict[Path, tuple[int, int] | None] = {}
        self._failed: dict[Path, str] = {}

    def refresh(self) -> None:
        for source, copy in self._sources.items():
            try:
                stat = source.stat()
                stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                stamp = None
            if source in self._seen and self._seen[source] == stamp:
                continue
            try:
                if stamp is None:
                    copy.unlink(missing_ok=True)
                else:
                    hubfile.replace_whole(copy, source.read_bytes(), mode=0o600)
                self._seen[source] = stamp
            except OSError as exc:  # said once; tried again next time
                if self._failed.get(source) != str(exc):
                    sys.stderr.write(f"copying {source} to {copy} for the firewall failed: {exc}\n")
                self._failed[source] = str(exc)


def keep(refreshers: list[Callable[[], None]], every: float = 1.0) -> None:
    """Call each of `refreshers` every `every` seconds, for ever (a thread's)."""
    while True:
        for refresh in refreshers:
            refresh()
        threading.Event().wait(every)


def firewall_loaded(folder: str) -> Callable[[], str | None]:
    """Why no server may start now (the firewall's table is not in this kernel yet), or None."""
    path = Path(folder) / hubfile.FIREWALL_FILE

    def problem() -> str | None:
        try:
            said = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            said = {}
        if isinstance(said, dict) and said.get("boot_id") == hubfile.boot_id():
            return None
        return ("the hub's firewall has not loaded its rules since this server started, so a "
                "new server would reach the others; try again in a moment")  # fmt: skip

    return problem


def guards_loaded(folder: str, docker, fresh: float) -> Callable[[], str | None]:
    """On a swarm: why no server may start now, or None. Every node that takes servers (ready,
    active) must have said within `fresh` seconds that its firewall's table is loaded
    (swarmguard.py writes `<folder>/<hostname>.json`): a server lands on any of them."""

    def problem() -> str | None:
        status, _, data = docker("GET", "/nodes", None, {})
        if status != 200:
            return "the swarm's nodes could not be listed; try again in a moment"
        waiting = []
        for node in json.loads(data):
            state = (node.get("Status") or {}).get("State")
            if state != "ready" or (node.get("Spec") or {}).get("Availability") != "active":
                continue
            host = (node.get("Description") or {}).get("Hostname", "")
            if time.time() - hubfile.guard_said(folder, host) > fresh:
                waiting.append(host)
        if waiting:
            return (f"the hub's firewall has not said lately that its rules are loaded on "
                    f"{', '.join(sorted(waiting))}, so a new server there would reach the others; "
                    "try again in a moment")  # fmt: skip
        return None

    return problem


def make_handler(
    policy_now: Callable[[], Policy],
    socket_path: str,
    timeout: float = 120.0,
    started: Callable[[], None] = lambda: None,
    firewall_problem: Callable[[], str | None] = lambda: None,
):
    """The proxy's request handler; `policy_now()` gives the policy for each request,
    `firewall_problem()` why no server may start now (or None), and `started()` is called once
    a container has started, before the hub hears it did."""
    docker = docker_caller(socket_path, timeout)

    def labels_of(container: str) -> dict | None:
        status, _, data = docker("GET", f"/containers/{container}/json", None, {})
        if status == 404:
            return None
        if status != 200:
            return {}  # unknown: treated as not ours
        return (json.loads(data).get("Config") or {}).get("Labels") or {}

    def service_labels_of(service: str) -> dict | None:
        status, _, data = docker("GET", f"/services/{service}", None, {})
        if status == 404:
            return None
        if status != 200:
            return {}
        return (json.loads(data).get("Spec") or {}).get("Labels") or {}

    def image_id_of(ref: str) -> str | None:
        status, _, data = docker("GET", f"/images/{quote(ref, safe='')}/json", None, {})
        return json.loads(data).get("Id") if status == 200 else None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "classhub-docker-proxy"

        def _handle(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self._send(411, b'{"message": "classhub docker proxy: send Content-Length"}', [])
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            policy = policy_now()
            reason = policy.refusal(self.command, self.path, body, labels_of,
                                    service_labels_of, image_id_of)  # fmt: skip
            if not reason and _starts(self.command, self.path):
                waiting = firewall_problem()
                if waiting:
                    sys.stderr.write(f"refused {self.command} {self.path}: {waiting}\n")
                    said = json.dumps({"message": f"classhub docker proxy: {waiting}"})
                    self._send(503, said.encode(), [("Content-Type", "application/json")])
                    return
            if reason:
                sys.stderr.write(f"refused {self.command} {self.path}: {reason}\n")
                message = json.dumps({"message": f"classhub docker proxy: {reason}"}).encode()
                self._send(403, message, [("Content-Type", "application/json")])
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                body = policy.prepared(self.path, body)
            except (diskstore.StoreError, OSError) as exc:
                sys.stderr.write(f"{self.command} {self.path}: DISK_STORE: {exc}\n")
                failed = json.dumps({"message": f"classhub docker proxy: DISK_STORE: {exc}"})
                self._send(500, failed.encode(), [("Content-Type", "application/json")])
                return
            if length:
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                headers["Content-Length"] = str(len(body))
            try:
                status, out_headers, data = docker(
                    self.command, self.path, body if length else None, headers
                )
            except OSError as exc:
                message = json.dumps({"message": f"classhub docker proxy: {exc}"}).encode()
                self._send(502, message, [("Content-Type", "application/json")])
                return
            kept = [(k, v) for k, v in out_headers
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"]  # fmt: skip
            if status < 300 and _starts(self.command, self.path):
                started()  # the firewall knows the server before the hub does
            self._send(status, data, kept)

        def _send(self, status: int, data: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _handle

        def log_message(self, format: str, *args) -> None:
            pass  # refusals are logged in _handle; allowed calls are DockerSpawner's own

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hub-file", default=hubfile.HUB_FILE_IN_HUB)
    parser.add_argument("--port", type=int, default=hubfile.SOCKET_PROXY_PORT)
    parser.add_argument("--socket", default=DOCKER_SOCKET)
    parser.add_argument("--addresses-folder", default=hubfile.ADDRESSES_IN_HUB)
    parser.add_argument("--swarm-storage", default="",
                        help="on a swarm: the shared storage's folder (allows students' services)")  # fmt: skip
    args = parser.parse_args(argv)
    live = LiveRoster(args.hub_file)

    def policy_now() -> Policy:
        return Policy.of(live.hub(), args.swarm_storage)

    policy = policy_now()  # a hub file that cannot be read stops the proxy here
    refreshers: list[Callable[[], None]] = []
    if args.swarm_storage:  # the firewall of every node (swarmguard.py) reads and says there
        words = f"{hubfile.swarm_folders(args.swarm_storage, policy.hub)}/{hubfile.GUARD_WORDS}"
        hub_copy, exams_copy, _ = hubfile.guard_inputs(words)
        state = Path(args.hub_file).parent
        refreshers.append(Copies({Path(args.hub_file): hub_copy,
                                  state / hubfile.EXAMS_FILE: exams_copy}).refresh)  # fmt: skip
        addresses = Addresses(docker_caller(args.socket), policy_now, words, swarm=True)
        loaded = guards_loaded(words, docker_caller(args.socket), hubfile.GUARD_WORD_FRESH)
    else:
        addresses = Addresses(docker_caller(args.socket), policy_now, args.addresses_folder)
        loaded = firewall_loaded(args.addresses_folder)
    refreshers.append(addresses.refresh)
    threading.Thread(target=keep, args=(refreshers,), daemon=True).start()
    handler = make_handler(
        policy_now, args.socket, started=addresses.refresh, firewall_problem=loaded
    )
    server = http.server.ThreadingHTTPServer(("0.0.0.0", args.port), handler)
    server.daemon_threads = True
    sys.stderr.write(
        f"classhub docker proxy for hub {policy.hub}: listening on :{args.port}, allowing what "
        f"{args.hub_file} says (images now: {sorted(policy.images)})\n"
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
