"""Servers for a real Docker swarm on one machine, for the tests: nested engines in containers.

Each node is a container of `tests/e2e/node/` (Debian's docker.io and an SSH server) on a bridge
network of its own, with what shared/SWARM-NOTES.md found a nested engine needs here: every
capability but SYS_RESOURCE, no seccomp or AppArmor profile, the kernel's paths unmasked, and its
/var/lib/docker on a volume (overlay2 works nested only there). The tests reach each node's
engine directly (`Node.engine`, TCP on the test's own network) to look at it; classhub reaches
them as it would real servers: the "manager" through DOCKER_HOST, the others over SSH with the
key given to `nested_nodes`.

This kernel has no NFS: the shared storage is a folder of this machine mounted into every node at
the same path, which is what an NFS mount at the same path gives real servers. A node made with
`NodeSpec(storage=None)` lacks it; one given another folder sees other files at that path.

Every object carries the label `classhub.hub=<name>`, and is removed afterwards. The host's own
engine is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from classhub import images, names
from classhub.paths import Paths
from classhub.runtime.single_host import builder
from classhub.runtime.swarm import images as node_images
from tests.conftest import invoke

from .conftest import engine_environ, free_port, new_checkout, set_env

NODE_IMAGE = "classhub-node:test"
NODE_FOLDER = Path(__file__).parent / "node"
NESTED = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],  # root here lacks it: --privileged fails for that reason
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
}
# The CLI's --security-opt systempaths=unconfined, in the API's terms: the kernel's paths unmasked.
UNMASKED = {"MaskedPaths": [], "ReadonlyPaths": []}
SAME = object()  # NodeSpec.storage: the shared folder itself


@dataclass(frozen=True)
class NodeSpec:
    # The daemon's settings. A site's registry on this machine (test_swarm's) speaks plain HTTP:
    # trusted on Docker's private ranges, where the nodes reach this machine.
    dockerd: tuple[str, ...] = ("--no-new-privileges", "--insecure-registry=172.16.0.0/12",
                                "--insecure-registry=192.168.0.0/16")  # fmt: skip
    storage: object = SAME  # SAME, None (no folder there) or another host folder at that path
    ssh: bool = True  # an SSH server that takes the test's key
    # Folders of this machine it sees at the same path: the manager, the checkout classhub runs
    # from (on a real manager, where it is), for the files its containers bind from there.
    also: tuple[Path, ...] = ()
    shared_mounts: bool = True  # as systemd makes them (start-node); False: a slave root alone


@dataclass
class Node:
    name: str  # its hostname
    container: object
    engine: docker.DockerClient  # its API, as the tests look at it
    address: str  # on the nodes' network
    gateway: str = ""  # this machine's address there


def node_image(client: docker.DockerClient) -> str:
    """The node image, built from the base the hub's images are built from."""
    base, _ = images.resolve_base(lambda ref: builder.find(client, ref), "debian:bookworm-slim")
    assert base is not None, "no base image: the shared hub's setup builds one first"
    client.images.build(path=str(NODE_FOLDER), tag=NODE_IMAGE, buildargs={"BASE_IMAGE": base},
                        rm=True, forcerm=True, labels={names.LABEL_HUB: "test-nodes"})  # fmt: skip
    return NODE_IMAGE


def _engine(container, address: str) -> docker.DockerClient:
    deadline = time.monotonic() + 60
    while True:
        try:
            engine = docker.DockerClient(base_url=f"tcp://{address}:2375", timeout=600)
            engine.ping()
            return engine
        except (docker.errors.DockerException, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the nested engine in {container.name} did not answer:\n"
                    + container.logs(tail=30).decode(errors="replace")
                ) from None
            time.sleep(0.5)


@contextlib.contextmanager
def nested_nodes(
    client: docker.DockerClient,
    name: str,
    specs: Mapping[str, NodeSpec],
    storage: Path,
    public_key: Path,
) -> Iterator[dict[str, Node]]:
    """A node for each of `specs` (hostname -> spec), none in a swarm; removed afterwards."""
    labels = {names.LABEL_HUB: name, names.LABEL_KIND: "test-node"}
    image = node_image(client)
    network = client.networks.create(f"{name}-nodes", labels=labels)
    try:
        made = {}
        for host, spec in specs.items():
            client.volumes.create(f"{name}-{host}-lib", labels=labels)
            binds = {f"{name}-{host}-lib": {"bind": "/var/lib/docker", "mode": "rw"}}
            if spec.storage is SAME:
                binds[str(storage)] = {"bind": str(storage), "mode": "rw"}
            elif spec.storage is not None:
                binds[str(spec.storage)] = {"bind": str(storage), "mode": "rw"}
            for folder in spec.also:
                binds[str(folder)] = {"bind": str(folder), "mode": "rw"}
            if spec.ssh:
                binds[str(public_key)] = {"bind": "/root/.ssh/authorized_keys", "mode": "ro"}
            host_config = client.api.create_host_config(
                binds=binds, network_mode=network.name, **NESTED
            )
            host_config.update(UNMASKED)
            created = client.api.create_container(
                image, list(spec.dockerd), name=f"{name}-{host}", hostname=host, labels=labels,
                host_config=host_config,
                environment={"SHARED_MOUNTS": "yes" if spec.shared_mounts else "no"},
            )  # fmt: skip
            container = client.containers.get(created["Id"])
            container.start()
            container.reload()
            attached = container.attrs["NetworkSettings"]["Networks"][network.name]
            address = attached["IPAddress"]
            made[host] = Node(host, container, _engine(container, address), address,
                              attached["Gateway"])  # fmt: skip
        yield made
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"{names.LABEL_HUB}={name}"}
        ):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": f"{names.LABEL_HUB}={name}"}):
            volume.remove(force=True)
        network.remove()


@dataclass
class Swarm:
    """A checkout of classhub whose engine is a swarm of nested nodes (`class_swarm`)."""

    hub: str
    nodes: dict[str, Node]
    paths: Paths
    env: dict[str, str]
    storage: Path
    key: Path
    port: int  # the hub's, published on the manager's address
    added: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)

    def invoke(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return invoke(self.paths, *args, env=self.env, timeout=timeout)

    @property
    def manager(self) -> docker.DockerClient:
        return self.nodes["manager"].engine

    @property
    def members(self) -> dict[str, docker.DockerClient]:
        """The engines of the swarm's nodes, by hostname."""
        hostnames = {n.attrs["Description"]["Hostname"] for n in self.manager.nodes.list()}
        return {host: node.engine for host, node in self.nodes.items() if host in hostnames}

    def ssh_name(self, host: str) -> str:
        return f"root@{self.nodes[host].address}"


@contextlib.contextmanager
def class_swarm(
    client: docker.DockerClient, built_by: str, root: Path, specs: Mapping[str, NodeSpec],
    workers: tuple[str, ...],
) -> Iterator[Swarm]:  # fmt: skip
    """A new checkout under `root` whose engine is a swarm of `specs`' nested nodes ("manager"
    among them; a spec's storage "elsewhere" is another folder at SWARM_STORAGE's path), with
    `workers` joined by `invoke add-node` over SSH. The manager holds what setup leaves, the
    builds of hub `built_by` of the same files (so setup finds them up to date): the base, the
    hub's image and the class's; add-node gives each node it joins the last two. The manager sees
    the checkout at its own path, as a real manager does where classhub runs."""
    storage, elsewhere = root / "shared", root / "elsewhere"
    storage.mkdir()
    elsewhere.mkdir()
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name, port = f"{built_by}sw", free_port()
    paths = new_checkout(root / "clone", name, port)
    made = {
        host: dataclasses.replace(
            spec, storage=elsewhere if spec.storage == "elsewhere" else spec.storage,
            also=(paths.root,) if host == "manager" else ())
        for host, spec in specs.items()
    }  # fmt: skip
    with nested_nodes(client, name, made, storage, key.with_suffix(".pub")) as nodes:
        manager = nodes["manager"]
        set_env(paths, {"SWARM_STORAGE": str(storage), "SWARM_ADDRESS": manager.address,
                        "NODE_SSH_KEY": str(key)})  # fmt: skip
        env = engine_environ()
        env["DOCKER_HOST"] = f"tcp://{manager.address}:2375"
        base, _ = images.resolve_base(lambda ref: builder.find(client, ref),
                                      "debian:bookworm-slim")  # fmt: skip
        built = {base: client.images.get(base).id,
                 names.hub_image(name): client.images.get(names.hub_image(built_by)).id,
                 names.notebook_image(name): client.images.get(names.notebook_image(built_by)).id}  # fmt: skip
        for ref, image_id in built.items():
            node_images.spread(client, {"manager": manager.engine}, image_id, lambda line: None)
            manager.engine.images.get(image_id).tag(ref)
        formed = Swarm(name, nodes, paths, env, storage, key, port)
        for host in workers:
            formed.added[host] = formed.invoke("add-node", formed.ssh_name(host))
        yield formed
