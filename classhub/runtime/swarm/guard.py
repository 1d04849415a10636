"""The hub's firewall on a swarm: `hub/classhub_hub/swarmguard.py` as two global services.

Each has one task on every node (this server's too, and each node add-node joins later), runs
the hub image by its ID (every node has that build) with a read-only root, and binds the folder
of the shared storage where each task says its table is loaded (`hubfile.GUARD_WORDS`):
- `<hub>-firewall` guards between the hub's servers. It is attached to the hub's overlay, so that
  every node holds the network's namespace, with the table loaded, before a student's server
  lands there; with NET_ADMIN and SYS_ADMIN (to enter that namespace) and Docker's namespaces
  bound (`rslave`, so later ones appear);
- `<hub>-firewall-node` guards what leaves the overlay on the node (its docker_gwbridge), in the
  node's own namespace: on the host's network, with the same capabilities (SYS_ADMIN to enter
  each container's namespace, where it finds a server's address on that bridge) and bind; it
  reads the hub file (the exceptions, the groups), the exams and which server is whose in the
  words folder, where the socket proxy keeps them.
Setup waits for every node's words; the socket proxy starts no student's server while one is
missing or stale. The component's recipe (`Service.kwargs`) is both services' recipes, by
`hubfile.GUARD_TABLES`: one spec hash, so both are made from the same settings and image.
"""

from __future__ import annotations

import json
import time

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
# The guards' caps: nftables in a namespace (NET_ADMIN), and entering one (SYS_ADMIN).
CAPS = ["NET_ADMIN", "SYS_ADMIN"]


def words(settings: Settings) -> str:
    """The folder of the shared storage where each node's guard says its table is loaded."""
    folders = hubfile.swarm_folders(settings.swarm_storage, settings.hub_name)
    return f"{folders}/{hubfile.GUARD_WORDS}"


def service(
    client: docker.DockerClient, paths: Paths, settings: Settings, component: Component,
    where: stack.Where,
) -> Service:  # fmt: skip
    """The guards' services as `ensure` takes them (a Maker for the FIREWALL part)."""
    hub = settings.hub_name
    found = find_image(client, component.image.tag)  # every node has it, by its ID
    image = str(found.id) if found is not None else component.image.tag  # (still to be built)
    guard = ["python3", "-m", "classhub_hub.swarmguard", "--table", names.firewall_table(hub),
             "--word", words(settings)]  # fmt: skip
    labels = names.labels(hub, component.part.value)
    common = {
        "image": image,
        "mode": docker.types.ServiceMode("global"),
        "env": [f"{hubfile.GUARD_NODE_ENV}={{{{.Node.Hostname}}}}"],  # its word's name
        "cap_drop": ["ALL"],
        "read_only": True,
        "restart_policy": docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
        "labels": labels,
        "container_labels": labels,
    }
    mounts = [docker.types.Mount(NETNS, NETNS, type="bind", propagation="rslave"),
              docker.types.Mount(words(settings), words(settings), type="bind")]  # fmt: skip
    between = [*guard, "--network-id", where.network_id, "--hub-ip", where.address,
               "--port", str(hubfile.HUB_API_PORT)]  # fmt: skip
    overlay = {
        **common,
        "name": name(hub, "overlay"),
        "command": between,
        "networks": [names.network(hub)],
        "cap_add": CAPS,
        "mounts": mounts,
        "endpoint_spec": docker.types.EndpointSpec(mode="dnsrr"),
    }
    node = {
        **common,
        "name": name(hub, "node"),
        "command": [*guard, "--node", "--servers", where.servers],
        "networks": ["host"],
        "cap_add": CAPS,
        "mounts": mounts,
    }
    return Service(component, {"overlay": overlay, "node": node}, inputs=image)


def name(hub: str, table: str) -> str:
    """The service of the guard of `table` (hubfile.GUARD_TABLES)."""
    return names.firewall_container(hub) + ("" if table == "overlay" else f"-{table}")


def _find(client: docker.DockerClient, name: str):
    found = [s for s in client.services.list(filters={"name": name}) if s.name == name]
    return found[0] if found else None


def status(client: docker.DockerClient, hub: str) -> str | None:
    """'running' while both guards' services exist (their tasks run on every node), else None."""
    found = [_find(client, name(hub, table)) for table in hubfile.GUARD_TABLES]
    return None if None in found else "running"


def ready_nodes(client: docker.DockerClient) -> list[str]:
    """The hostnames of the nodes that take servers now (ready, active)."""
    return sorted(
        node.attrs["Description"]["Hostname"]
        for node in client.nodes.list()
        if node.attrs["Status"].get("State") == "ready"
        and node.attrs["Spec"].get("Availability") == "active"
    )


def state(client: docker.DockerClient, hub: str, made: Service) -> tuple[str, str]:
    """(state, action) of the guards' services; action '' when nothing is to be done."""
    found = {table: _find(client, kwargs["name"]) for table, kwargs in made.kwargs.items()}
    for service in found.values():
        if (
            service is not None
            and (service.attrs["Spec"].get("Labels") or {}).get(names.LABEL_HUB) != hub
        ):
            raise UserError(
                f"a swarm service named {service.name!r} exists that classhub did not make for "
                "this hub; choose another HUB_NAME in .env, or remove that service yourself"
            )
    if None in found.values():
        return "missing", "create"
    if any((s.attrs["Spec"].get("Labels") or {}).get(names.LABEL_SPEC) != spec_hash(made)
           for s in found.values()):  # fmt: skip
        return "made from other settings or image", "replace"
    running = {t["NodeID"] for t in found["overlay"].tasks({"desired-state": "running"})
               if t["Status"]["State"] == "running"}  # fmt: skip
    return f"running on {len(running)} node(s)", ""


def ensure(client: docker.DockerClient, settings: Settings, made: Service, echo: Echo) -> bool:
    """Make (or replace) the guards' services as their state asks; whether it did. Each table
    stays loaded in its namespace while an old guard goes and the new one starts."""
    _, action = state(client, settings.hub_name, made)
    if not action:
        return False
    # The shared storage's folder for the words, made here (every node sees it).
    in_storage(client, settings, "mkdir", "-p", words(settings))
    for table, recipe in made.kwargs.items():
        old = _find(client, recipe["name"])
        labels = (old.attrs["Spec"].get("Labels") or {}) if old is not None else {}
        if labels.get(names.LABEL_SPEC) == spec_hash(made):
            continue
        if old is not None:
            echo(f"   replacing the {made.component.row} ({table}) on every node")
            old.remove()
        kwargs = {**recipe, "labels": {**recipe["labels"], names.LABEL_SPEC: spec_hash(made)}}
        try:
            client.services.create(**kwargs)
        except docker.errors.APIError as exc:
            raise UserError(f"starting the {made.component.row} ({table}) failed: "
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


def wait(client: docker.DockerClient, settings: Settings, since: float, timeout: float = 90):
    """Return once every node that takes servers has said, since `since`, that its table is
    loaded; stop setup before the hub starts if one does not (its students would reach each
    other), with what the guards said."""
    folder = words(settings)
    deadline = time.monotonic() + timeout
    while True:
        waiting = [h for h in ready_nodes(client) if hubfile.guard_said(folder, h) < since]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"the firewall did not load its rules on {', '.join(waiting)} within "
                f"{timeout:.0f} s, so students there would reach each other's servers; the hub "
                "is not started. What it said:\n" + logs(client, settings.hub_name, since)
            )
        time.sleep(0.5)


def exams_applied(
    client: docker.DockerClient, settings: Settings, since: float
) -> list[str | None]:
    """What the guard of each node that takes servers says it enforces (its word's "exams", as
    hubfile.EXAMS_APPLIED's line words it); None where it has said nothing since `since` (it
    says it at once when its exams change, else every 5 s)."""
    folder, found = words(settings), []
    for host in ready_nodes(client):
        try:
            said = json.loads(hubfile.guard_word(folder, host, "node").read_text())
            found.append(str(said["exams"]) if float(said["loaded"]) >= since else None)
        except (OSError, ValueError, KeyError, TypeError):
            found.append(None)
    return found


def logs(client: docker.DockerClient, hub: str, since: float, tail: int = 15) -> str:
    said = []
    for table in hubfile.GUARD_TABLES:
        found = _find(client, name(hub, table))
        if found is None:
            said.append(f"   (no firewall service {name(hub, table)})")
            continue
        try:
            lines = b"".join(found.logs(stdout=True, stderr=True, since=int(since), tail=tail))
        except docker.errors.APIError:
            said.append(f"   (the log of {found.name} could not be read)")
            continue
        said += ["   " + line for line in lines.decode("utf-8", "replace").splitlines()]
    return "\n".join(said)
