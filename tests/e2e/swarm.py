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
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from classhub import images, names
from classhub.runtime.single_host import builder

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
    dockerd: tuple[str, ...] = ("--no-new-privileges",)  # the daemon's settings
    storage: object = SAME  # SAME, None (no folder there) or another host folder at that path
    ssh: bool = True  # an SSH server that takes the test's key
    # Folders of this machine it sees at the same path: the manager, the checkout classhub runs
    # from (on a real manager, where it is), for the files its containers bind from there.
    also: tuple[Path, ...] = ()


@dataclass
class Node:
    name: str  # its hostname
    container: object
    engine: docker.DockerClient  # its API, as the tests look at it
    address: str  # on the nodes' network


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
            )  # fmt: skip
            container = client.containers.get(created["Id"])
            container.start()
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
            made[host] = Node(host, container, _engine(container, address), address)
        yield made
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"{names.LABEL_HUB}={name}"}
        ):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": f"{names.LABEL_HUB}={name}"}):
            volume.remove(force=True)
        network.remove()
