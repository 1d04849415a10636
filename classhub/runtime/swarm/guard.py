"""The hub's firewall on a swarm: `hub/classhub_hub/swarmguard.py` as a global service.

One task on every node (this server's too, and each node add-node joins later), attached to the
hub's overlay network so that every node holds the network's namespace, with the firewall's
table loaded, before a student's server lands there. With only NET_ADMIN and SYS_ADMIN (to enter
that namespace), a read-only root, the hub image by its ID (every node has that build), and two
folders bound: Docker's namespaces (`rslave`, so later ones appear) and, in the shared storage,
the folder where each node's task says its table is loaded (`hubfile.GUARD_WORDS`). Setup waits
for every node's word; the socket proxy starts no student's server while one is missing or stale.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import docker
import docker.errors
import docker.types

from ... import hubfile, names
from ...components import Component
from ...console import Echo
from ...errors import UserError
from ...inputs.settings import Settings
from ...paths import Paths
from .. import Service, spec_hash
from ..single_host import stack
from ..single_host.builder import find as find_image

NETNS = "/var/run/docker/netns"
# The guard's caps: nftables in the namespace (NET_ADMIN), and entering it (SYS_ADMIN).
CAPS = ["NET_ADMIN", "SYS_ADMIN"]


def words(settings: Settings) -> str:
    """The folder of the shared storage where each node's guard says its table is loaded."""
    folders = hubfile.swarm_folders(settings.swarm_storage, settings.hub_name)
    return f"{folders}/{hubfile.GUARD_WORDS}"


def service(
    client: docker.DockerClient, paths: Paths, settings: Settings, component: Component,
    where: stack.Where,
) -> Service:  # fmt: skip
    """The guard's service as `services.create` takes it (a Maker for the FIREWALL part)."""
    hub = settings.hub_name
    found = find_image(client, component.image.tag)  # every node has it, by its ID
    image = str(found.id) if found is not None else component.image.tag  # (still to be built)
    command = ["python3", "-m", "classhub_hub.swarmguard", "--table", names.firewall_table(hub),
               "--network-id", where.network_id, "--hub-ip", where.address,
               "--port", str(hubfile.HUB_API_PORT), "--word", words(settings)]  # fmt: skip
    labels = names.labels(hub, component.part.value)
    kwargs = {
        "image": image,
        "command": command,
        "name": component.container,
        "mode": docker.types.ServiceMode("global"),
        "networks": [names.network(hub)],
        "hostname": "{{.Node.Hostname}}",  # its word is named after its node
        "cap_drop": ["ALL"],
        "cap_add": CAPS,
        "read_only": True,
        "mounts": [
            docker.types.Mount(NETNS, NETNS, type="bind", propagation="rslave"),
            docker.types.Mount(words(settings), words(settings), type="bind"),
        ],
        "endpoint_spec": docker.types.EndpointSpec(mode="dnsrr"),
        "restart_policy": docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
        "labels": labels,
        "container_labels": labels,
    }
    return Service(component, kwargs, inputs=image)


def _find(client: docker.DockerClient, name: str):
    found = [s for s in client.services.list(filters={"name": name}) if s.name == name]
    return found[0] if found else None


def status(client: docker.DockerClient, name: str) -> str | None:
    """'running' while the guard's service exists (its tasks run on every node), else None."""
    return None if _find(client, name) is None else "running"


def ready_nodes(client: docker.DockerClient) -> list[str]:
    """The hostnames of the nodes that take servers now (ready, active)."""
    return sorted(
        node.attrs["Description"]["Hostname"]
        for node in client.nodes.list()
        if node.attrs["Status"].get("State") == "ready"
        and node.attrs["Spec"].get("Availability") == "active"
    )


def state(client: docker.DockerClient, hub: str, made: Service) -> tuple[str, str]:
    """(state, action) of the guard's service; action '' when nothing is to be done."""
    found = _find(client, made.name)
    if found is None:
        return "missing", "create"
    if (found.attrs["Spec"].get("Labels") or {}).get(names.LABEL_HUB) != hub:
        raise UserError(
            f"a swarm service named {made.name!r} exists that classhub did not make for this "
            "hub; choose another HUB_NAME in .env, or remove that service yourself"
        )
    if (found.attrs["Spec"].get("Labels") or {}).get(names.LABEL_SPEC) != spec_hash(made):
        return "made from other settings or image", "replace"
    running = {t["NodeID"] for t in found.tasks({"desired-state": "running"})
               if t["Status"]["State"] == "running"}  # fmt: skip
    return f"running on {len(running)} node(s)", ""


def ensure(client: docker.DockerClient, settings: Settings, made: Service, echo: Echo) -> bool:
    """Make (or replace) the guard's service as its state asks; whether it did. The table stays
    loaded in every namespace while an old guard goes and the new one starts."""
    _, action = state(client, settings.hub_name, made)
    if not action:
        return False
    old = _find(client, made.name)
    if old is not None:
        echo(f"   replacing the {made.component.row} on every node")
        old.remove()
    # The shared storage's folder for the words, made here (every node sees it).
    in_storage(client, settings, "mkdir", "-p", words(settings))
    kwargs = dict(made.kwargs)
    kwargs["labels"] = {**kwargs["labels"], names.LABEL_SPEC: spec_hash(made)}
    try:
        client.services.create(**kwargs)
    except docker.errors.APIError as exc:
        raise UserError(f"starting the {made.component.row} failed: "
                        f"{exc.explanation or exc}") from None  # fmt: skip
    return True


def in_storage(client: docker.DockerClient, settings: Settings, *command: str) -> None:
    """Run `command` as root, with no capability, in a throwaway container of the hub image
    that sees the shared storage (its root folder is root's)."""
    storage = settings.swarm_storage
    try:
        client.containers.run(
            names.hub_image(settings.hub_name), list(command), entrypoint=[],
            volumes={storage: {"bind": storage, "mode": "rw"}}, network_disabled=True,
            user="0", cap_drop=["ALL"], remove=True,
            labels=names.labels(settings.hub_name, "storage"),
        )  # fmt: skip
    except docker.errors.ContainerError as exc:
        raise UserError(f"{' '.join(command)} on the shared storage failed: {exc}") from None


def said(folder: str, host: str) -> float:
    """When the node's guard last said its table is loaded (epoch seconds; 0: never)."""
    try:
        return float(json.loads((Path(folder) / f"{host}.json").read_text())["loaded"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def wait(client: docker.DockerClient, settings: Settings, since: float, timeout: float = 90):
    """Return once every node that takes servers has said, since `since`, that its table is
    loaded; stop setup before the hub starts if one does not (its students would reach each
    other), with what the guards said."""
    folder = words(settings)
    deadline = time.monotonic() + timeout
    while True:
        waiting = [host for host in ready_nodes(client) if said(folder, host) < since]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"the firewall did not load its rules on {', '.join(waiting)} within "
                f"{timeout:.0f} s, so students there would reach each other's servers; the hub "
                "is not started. What it said:\n" + logs(client, settings.hub_name, since)
            )
        time.sleep(0.5)


def logs(client: docker.DockerClient, hub: str, since: float, tail: int = 15) -> str:
    found = _find(client, names.firewall_container(hub))
    if found is None:
        return "   (no firewall service)"
    with contextlib.suppress(docker.errors.APIError):
        lines = b"".join(found.logs(stdout=True, stderr=True, since=int(since), tail=tail))
        return "\n".join("   " + line for line in lines.decode("utf-8", "replace").splitlines())
    return "   (its log could not be read)"


def remove(client: docker.DockerClient, hub: str) -> int:
    found = _find(client, names.firewall_container(hub))
    if found is None:
        return 0
    found.remove()
    return 1
