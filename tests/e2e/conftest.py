"""End-to-end fixtures: one real hub on the real Docker engine, shared by the tests that use it.

The hub is set up once per run from a fresh checkout with `invoke setup`, exactly as an
administrator does, under its own HUB_NAME; every container, network and volume carrying that name
is removed afterwards. When a test fails, the hub's log and every user container's log are added
to its report. Images are kept: building them is the slow part, and they carry no hub's data.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

from classhub import names
from classhub.paths import Paths
from classhub.runtime.single_host import stack
from tests.conftest import PROJECT, clean_environ, invoke, make_checkout

from .outside import Outside, stand_ins

ROSTER = """\
hub-admin admin
student1 team-1
student2 team-1
student3 team-2
student4 team-2
"""
LAB_OVERRIDES = {
    "@jupyterlab/notebook-extension:tracker": {"codeCellConfig": {"lineNumbers": True}}
}
ARTIFACTS = PROJECT / "test-artifacts"
IN_IMAGE = Path(__file__).parent / "in_image"  # scripts run inside the notebook image


def engine_environ(**extra: str) -> dict[str, str]:
    """The environment for tasks that talk to this machine's Docker engine."""
    env = clean_environ(**extra)
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    else:
        env.pop("DOCKER_HOST")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Hub:
    name: str
    paths: Paths
    port: int
    passwords: dict[str, str]
    client: docker.DockerClient
    figures: dict[str, float] = field(default_factory=dict)
    setup_output: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.name}/"

    @property
    def image(self) -> str:
        """The class's image this hub built (NOTEBOOK_IMAGE's default: its own)."""
        return names.notebook_image(self.name)

    def invoke(self, *args: str, timeout: int = 300):
        return invoke(self.paths, *args, env=engine_environ(), timeout=timeout)

    def logs(self) -> str:
        parts = []
        flt = {"label": f"{names.LABEL_HUB}={self.name}"}
        for container in self.client.containers.list(all=True, filters=flt):
            text = container.logs(tail=80).decode("utf-8", "replace")
            parts.append(f"----- {container.name} ({container.status}) -----\n{text}")
        return "\n".join(parts) or "(no containers)"

    def in_image(self, script: str, *args: str, user: str = "1000:100", mounts=()) -> dict:
        """Run tests/e2e/in_image/SCRIPT with the built notebook image's Python, as `user`, with
        (host path, container path) `mounts` read-only; its last line of output, read as JSON."""
        volumes = {str(IN_IMAGE): {"bind": "/check", "mode": "ro"}}
        volumes.update({str(host): {"bind": inside, "mode": "ro"} for host, inside in mounts})
        output = self.client.containers.run(
            self.image,
            ["/opt/notebook/bin/python", f"/check/{script}", *args],
            entrypoint=[],
            user=user,
            volumes=volumes,
            environment={"HOME": "/tmp", "JUPYTER_RUNTIME_DIR": "/tmp/runtime"},
            remove=True,
            stderr=False,
        )
        return json.loads(output.decode().strip().splitlines()[-1])


def gateway(client: docker.DockerClient, network: str) -> str:
    """The host's address on a Docker network (its bridge's). The engine's IPAM entry may have no
    `Gateway` (seen after an engine restart with the bridge already up): then the bridge's own."""
    found = client.networks.get(network).attrs
    config = (found.get("IPAM") or {}).get("Config") or [{}]
    if config[0].get("Gateway"):
        return config[0]["Gateway"].split("/")[0]
    options = found.get("Options") or {}
    bridge = options.get("com.docker.network.bridge.name") or f"br-{found['Id'][:12]}"
    listed = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", bridge],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    return listed.split(" inet ", 1)[1].split("/", 1)[0]


def sweep(client: docker.DockerClient, hub: str) -> None:
    """Remove every Docker object of test hub `hub`: containers, then the network and volumes."""
    flt = {"label": f"{names.LABEL_HUB}={hub}"}
    for container in client.containers.list(all=True, filters=flt):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # a server Docker removed itself meanwhile (remove=True, just stopped)
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise
            wait_gone(client, container.id)
    for network in client.networks.list(filters=flt):
        network.remove()
    for volume in client.volumes.list(filters=flt):
        volume.remove(force=True)
    stack.remove_firewall_rules(client, hub)
    for image in (names.hub_image, names.notebook_image, names.db_image, names.nginx_image):
        # Its own tags; the layers stay cached. When this tag is the image's last and another
        # hub's container still uses that image (made under that hub's tag before a rebuild
        # moved it), Docker refuses, and the tag stays: a name, harmless.
        try:
            client.images.remove(image(hub), noprune=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            print(f"sweep {hub}: {image(hub)} stays tagged: {exc.explanation}")


def wait_gone(client: docker.DockerClient, container_id: str, timeout: float = 60) -> None:
    """Until Docker has finished removing a container it was already removing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.containers.get(container_id)
        except docker.errors.NotFound:
            return
        time.sleep(0.2)
    raise AssertionError(f"container {container_id[:12]} was still being removed after {timeout}s")


def new_checkout(root: Path, hub: str, port: int, roster: str = ROSTER) -> Paths:
    paths = make_checkout(root)
    for folder in ("hub", "singleuser", "db", "grading", "acme"):
        shutil.copytree(
            PROJECT / folder,
            root / folder,
            ignore=shutil.ignore_patterns("*.py[co]", "__pycache__"),
        )
    for extra in (root / "hub" / "jupyterhub_config.d").glob("*.py"):
        extra.unlink()  # a developer's own extras are not part of a clean clone
    # The class's environment, as an instructor writes it: one extra package, one Lab setting.
    (root / "singleuser" / "requirements.txt").write_text("tabulate==0.9.0\n")
    (root / "singleuser" / "overrides.json").write_text(json.dumps(LAB_OVERRIDES) + "\n")
    env = [
        f"HUB_NAME={hub}",
        f"PORT={port}",
        "CULL_IDLE_TIMEOUT=1h",
        "MEM_LIMIT=1G",
        "PIDS_LIMIT=256",
        f"SHARED_DATA={hub}-shared",
        "ADMIN_SEES_USERS=true",
    ]
    (root / ".env").write_text("\n".join(env) + "\n")
    (root / "userlist").write_text(roster)
    return paths


def set_env(paths: Paths, values: dict[str, str]) -> None:
    """Write `values` into the checkout's .env, in place of any line setting the same keys."""
    env = paths.root / ".env"
    lines = [line for line in env.read_text().splitlines()
             if line.split("=", 1)[0] not in values]  # fmt: skip
    env.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")


@contextlib.contextmanager
def hub_beside(hub: Hub, root: Path, name: str, roster: str, settings: dict[str, str]):
    """A hub of its own beside the shared one (the images are the shared ones), set up from a new
    checkout whose .env also says `settings`; every object of it is swept afterwards."""
    port = free_port()
    paths = new_checkout(root, name, port, roster)
    set_env(paths, settings)
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield Hub(name, paths, port, read_passwords(paths), hub.client)
    finally:
        sweep(hub.client, name)


def read_passwords(hub_paths: Paths) -> dict[str, str]:
    result = invoke(hub_paths, "login", "--csv", env=engine_environ())
    assert result.returncode == 0, result.stderr
    return {row["username"]: row["password"] for row in csv.DictReader(io.StringIO(result.stdout))}


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = docker.from_env(environment=engine_environ(), timeout=600)
    client.ping()  # no engine: every end-to-end test errors, none is skipped
    return client


@pytest.fixture(scope="session")
def hub(tmp_path_factory, docker_client) -> Hub:
    name = f"e2e{secrets.token_hex(3)}"
    port = free_port()
    paths = new_checkout(tmp_path_factory.mktemp("hub") / "clone", name, port)
    try:
        started = time.monotonic()
        result = invoke(paths, "setup", env=engine_environ(), timeout=1800)
        cold = time.monotonic() - started
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        hub = Hub(name, paths, port, read_passwords(paths), docker_client)
        hub.figures["setup, cold (s)"] = cold
        for line in result.stdout.splitlines():  # "   hub image: built classhub-hub:NAME in 71s"
            if ": built " in line:
                hub.figures[line.split(":")[0].strip() + " build (s)"] = float(
                    line.rsplit(" in ", 1)[1].rstrip("s")
                )
        hub.setup_output = result.stdout
        yield hub
        ARTIFACTS.mkdir(exist_ok=True)
        with (ARTIFACTS / "e2e-figures.txt").open("a") as out:
            for key, value in hub.figures.items():
                out.write(f"{name}: {key}: {value:.2f}\n")
    finally:
        sweep(docker_client, name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        hub = value if isinstance(value, Hub) else getattr(value, "hub", None)
        if isinstance(hub, Hub):  # the shared hub, a hub of a test's own, or one a fixture holds
            report.sections.append((f"{name}: hub and user container logs", hub.logs()))


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    """Stand-ins for the internet, a private network, the metadata endpoint and two exceptions,
    on this machine (outside.py)."""
    with stand_ins() as made:
        yield made
