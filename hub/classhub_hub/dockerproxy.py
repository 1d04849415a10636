"""The Docker socket proxy: the only way the hub reaches Docker, and what it lets through.

The hub never holds the Docker socket. It talks HTTP to this proxy (`DOCKER_HOST`), which runs in
its own container with the socket, on a network that only the hub joins (no user container can
reach it). A request passes only when `Policy.refusal` finds nothing wrong with it:

- the calls DockerSpawner makes and nothing else: version and ping, inspecting the notebook
  image(s), creating, inspecting, starting, stopping and removing containers; and creating the
  home volume of a person not on the roster (OPEN_TO_ALL): named as this hub's user volumes, with
  this hub's user labels, Docker's local driver and no driver options (which could bind a host
  folder);
- a container may be acted on only when it is one of this hub's user containers (its labels say
  so); one that does not exist gets Docker's own 404, so DockerSpawner sees a missing server;
- a container is created only as a hardened user container of this hub: its name and labels, an
  allowed image, on the hub's network, every capability dropped, `no-new-privileges`, a pids and
  a memory limit, no privileged mode, no host namespaces, devices, published ports or host paths,
  and only this hub's user and group volumes (and the shared data named with --shared).

So even a hub taken over by a student cannot start a privileged container, mount the host or touch
another hub's containers. A refusal is a 403 whose message starts with `classhub docker proxy:`;
it is logged (method, path and reason; never a body, which may carry tokens).

Standard library only (and classhub.names, which is): it runs with the hub image's Python, as
`python3 -m classhub_hub.dockerproxy`.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import re
import socket
import sys
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from classhub import names

DOCKER_SOCKET = "/var/run/docker.sock"
_VERSION = re.compile(r"^/v\d+(?:\.\d+)?(?=/)")
_ID = r"(?P<id>[A-Za-z0-9][A-Za-z0-9_.-]*)"
# (method, path): what DockerSpawner calls. Paths are matched without the /vX.Y prefix.
ROUTES: tuple[tuple[str, re.Pattern], ...] = tuple(
    (method, re.compile(pattern))
    for method, pattern in (
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
)
_NAMESPACE_MODES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")


@dataclass(frozen=True)
class Policy:
    hub: str
    network: str
    images: frozenset[str]
    shared: frozenset[str] = field(default_factory=frozenset)  # SHARED_DATA: folder or volume

    def refusal(self, method: str, target: str, body: bytes, labels_of) -> str | None:
        """Why this request may not pass, or None. `labels_of(id)`: a container's labels, or
        None when no such container exists."""
        parts = urlsplit(target)
        path = _VERSION.sub("", unquote(parts.path), count=1)
        for allowed_method, pattern in ROUTES:
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
        if path == "/containers/create":
            name = parse_qs(parts.query).get("name", [""])[0]
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                return "the container's definition is not JSON"
            return self.create_refusal(name, spec)
        if path == "/volumes/create":
            try:
                spec = json.loads(body or b"{}")
            except ValueError:
                return "the volume's definition is not JSON"
            return self.volume_refusal(spec)
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
        return labels.get("classhub.hub") == self.hub and labels.get("classhub.kind") == "user"

    def create_refusal(self, name: str, spec: dict) -> str | None:
        """Why a container may not be created like this, or None."""
        prefix = f"{self.hub}-user-"
        if not name.startswith(prefix) or len(name) == len(prefix):
            return f"a container's name must start with {prefix!r} (got {name!r})"
        if spec.get("Image") not in self.images:
            return f"image {spec.get('Image')!r} is not an image of this hub"
        if not self._ours(spec.get("Labels") or {}):
            return "a container must carry this hub's user labels"
        if spec.get("User") not in (None, "", "1000", "1000:100", "jovyan"):
            return f"a user container runs as jovyan, not {spec.get('User')!r}"
        host = spec.get("HostConfig") or {}
        if host.get("Privileged"):
            return "privileged containers are not allowed"
        if host.get("CapAdd"):
            return f"added capabilities are not allowed ({host['CapAdd']})"
        if "ALL" not in (host.get("CapDrop") or []):
            return "a user container must drop all capabilities (CapDrop: ALL)"
        options = host.get("SecurityOpt") or []
        if not any(o.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true")
                   for o in options):  # fmt: skip
            return "a user container must run with no-new-privileges"
        if any(not o.startswith("no-new-privileges") for o in options):
            return f"security options other than no-new-privileges are not allowed ({options})"
        if not (host.get("PidsLimit") or 0) > 0:
            return "a user container must have a pids limit"
        if not (host.get("Memory") or 0) > 0:
            return "a user container must have a memory limit"
        if host.get("NetworkMode") != self.network:
            return f"a user container joins {self.network}, not {host.get('NetworkMode')!r}"
        for key in _NAMESPACE_MODES:
            if host.get(key):
                return f"{key}={host[key]!r} is not allowed"
        for key in ("Devices", "DeviceRequests", "DeviceCgroupRules", "PortBindings",
                    "VolumesFrom", "Links", "Sysctls", "ExtraHosts", "Runtime"):  # fmt: skip
            if host.get(key):
                return f"{key} is not allowed"
        for bind in host.get("Binds") or []:
            source = bind.split(":", 1)[0]
            if not self._mountable(source):
                return f"mounting {source!r} is not allowed"
        for mount in host.get("Mounts") or []:
            if mount.get("Type") not in ("volume", "bind") or not self._mountable(
                mount.get("Source", "")
            ):
                return f"mounting {mount.get('Source')!r} is not allowed"
        return None

    def _mountable(self, source: str) -> bool:
        if source in self.shared:
            return True
        return not source.startswith("/") and source.startswith(
            (f"{self.hub}-user-", f"{self.hub}-group-")
        )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


def make_handler(policy: Policy, socket_path: str, timeout: float = 120.0):
    def docker(method: str, target: str, body: bytes | None, headers: dict):
        conn = _UnixConnection(socket_path, timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def labels_of(container: str) -> dict | None:
        status, _, data = docker("GET", f"/containers/{container}/json", None, {})
        if status == 404:
            return None
        if status != 200:
            return {}  # unknown: treated as not ours
        return (json.loads(data).get("Config") or {}).get("Labels") or {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "classhub-docker-proxy"

        def _handle(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self._send(411, b'{"message": "classhub docker proxy: send Content-Length"}', [])
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reason = policy.refusal(self.command, self.path, body, labels_of)
            if reason:
                sys.stderr.write(f"refused {self.command} {self.path}: {reason}\n")
                message = json.dumps({"message": f"classhub docker proxy: {reason}"}).encode()
                self._send(403, message, [("Content-Type", "application/json")])
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
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
    parser.add_argument("--hub", required=True)
    parser.add_argument("--network", required=True)
    parser.add_argument("--image", action="append", required=True)
    parser.add_argument("--shared", action="append", default=[])
    parser.add_argument("--port", type=int, default=2375)
    parser.add_argument("--socket", default=DOCKER_SOCKET)
    args = parser.parse_args(argv)
    policy = Policy(args.hub, args.network, frozenset(args.image), frozenset(args.shared))
    server = http.server.ThreadingHTTPServer(
        ("0.0.0.0", args.port), make_handler(policy, args.socket)
    )
    server.daemon_threads = True
    sys.stderr.write(
        f"classhub docker proxy for hub {args.hub}: listening on :{args.port}, "
        f"images {sorted(policy.images)}\n"
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
