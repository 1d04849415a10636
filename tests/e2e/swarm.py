"""A real Docker swarm on one machine, for the tests: nested engines in containers as its nodes.

Each node is a container of `tests/e2e/node/` (Debian's docker.io) on a bridge network of its
own, with what shared/SWARM-NOTES.md found a nested engine needs here: every capability but
SYS_RESOURCE, no seccomp or AppArmor profile, the kernel's paths unmasked, and its
/var/lib/docker on a volume (overlay2 works nested only there). The first node inits the swarm,
the others join it as workers. Every object carries the label `classhub.hub=<name>`, so that
`sweep` finds it, and is removed afterwards. The host's own engine is left as it was.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
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


@dataclass
class Swarm:
    manager: docker.DockerClient  # the swarm's API, as classhub would reach it
    nodes: dict[str, docker.DockerClient]  # hostname -> its engine


def node_image(client: docker.DockerClient) -> str:
    """The node image, built from the base the hub's images are built from."""
    base, _ = images.resolve_base(lambda ref: builder.find(client, ref), "debian:bookworm-slim")
    assert base is not None, "no base image: the shared hub's setup builds one first"
    client.images.build(path=str(NODE_FOLDER), tag=NODE_IMAGE, buildargs={"BASE_IMAGE": base},
                        rm=True, forcerm=True, labels={names.LABEL_HUB: "test-nodes"})  # fmt: skip
    return NODE_IMAGE


def _engine(client: docker.DockerClient, container) -> docker.DockerClient:
    container.reload()
    address = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
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
def nested_swarm(client: docker.DockerClient, name: str, workers: int = 2) -> Iterator[Swarm]:
    """A manager and `workers` workers, formed into a swarm; everything removed afterwards."""
    labels = {names.LABEL_HUB: name, names.LABEL_KIND: "test-node"}
    image = node_image(client)
    network = client.networks.create(f"{name}-nodes", labels=labels)
    try:
        engines = {}
        for host in ["manager"] + [f"worker{index}" for index in range(1, workers + 1)]:
            client.volumes.create(f"{name}-{host}-lib", labels=labels)
            host_config = client.api.create_host_config(
                binds={f"{name}-{host}-lib": {"bind": "/var/lib/docker", "mode": "rw"}},
                network_mode=network.name, **NESTED,
            )  # fmt: skip
            host_config.update(UNMASKED)
            created = client.api.create_container(
                image, name=f"{name}-{host}", hostname=host, labels=labels, host_config=host_config
            )
            container = client.containers.get(created["Id"])
            container.start()
            engines[host] = (container, _engine(client, container))
        manager_container, manager = engines["manager"]
        address = manager_container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        manager.swarm.init(advertise_addr=address)
        token = manager.swarm.attrs["JoinTokens"]["Worker"]
        for host, (_, engine) in engines.items():
            if host != "manager":
                engine.swarm.join([f"{address}:2377"], token, advertise_addr=None)
        swarm = Swarm(manager, {h: e for h, (_, e) in engines.items()})
        deadline = time.monotonic() + 60
        while sum(n.attrs["Status"]["State"] == "ready" for n in manager.nodes.list()) < len(
            engines
        ):
            assert time.monotonic() < deadline, "the workers did not become ready"
            time.sleep(0.5)
        yield swarm
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"{names.LABEL_HUB}={name}"}
        ):
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": f"{names.LABEL_HUB}={name}"}):
            volume.remove(force=True)
        network.remove()
