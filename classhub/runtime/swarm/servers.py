"""Students' servers on a swarm: the services the hub's spawner made (swarmspawner.py), looked at
and removed by the tasks that stop, sweep or destroy them. A service is removed, never updated:
its student's files are in the shared storage, and the next start makes a new one."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker
import docker.errors

from ... import hubfile, names
from ...console import Echo
from ..single_host import stack
from ..single_host.builder import find as find_image


def of(client: docker.DockerClient, hub: str) -> list:
    """This hub's students' services."""
    flt = {"label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}=user"]}
    return client.services.list(filters=flt)


def remove(client: docker.DockerClient, service) -> bool:
    """Remove one; False when it was gone already."""
    try:
        service.remove()
        return True
    except docker.errors.NotFound:
        return False


def stop_all(client: docker.DockerClient, hub: str, echo: Echo) -> int:
    count = 0
    for service in of(client, hub):
        echo(f"-> stopping and removing {service.name} (its folders stay)")
        count += remove(client, service)
    return count


def sweep(client: docker.DockerClient, hub: str, prefix: str) -> int:
    """Remove the services of the users whose names start with `prefix`; how many."""
    mine = names.user_container(hub, prefix)
    return sum(remove(client, s) for s in of(client, hub) if s.name.startswith(mine))


def stale(client: docker.DockerClient, hub: str, hub_file: Any, storage: str) -> dict[str, str]:
    """Running servers whose folders, limits or image differ from what the roster and the images
    now give their user (user -> what changed); they pick it up at their next start."""
    users = hub_file.get("users")
    found = {}
    for service in of(client, hub):
        spec = service.attrs["Spec"]
        user = (spec.get("Labels") or {}).get(names.LABEL_USER, "")
        if user not in users:
            continue
        container = spec["TaskTemplate"]["ContainerSpec"]
        have = {m["Source"]: m["Target"] for m in container.get("Mounts") or []
                if m.get("Type") == "bind"}  # fmt: skip
        want = {hubfile.swarm_source(storage, hub, source): bound["bind"]
                for source, bound in hubfile.mounts(hub_file, user).items()}  # fmt: skip
        image = find_image(client, users[user]["image"])
        limits = (spec["TaskTemplate"].get("Resources") or {}).get("Limits") or {}
        wanted = users[user]["limits"]
        changed = stack.what_changed(
            have, want, image is None or container.get("Image") != image.id,
            limits.get("MemoryBytes") != wanted["mem_limit"]
            or limits.get("NanoCPUs") != round(float(wanted["cpu_limit"]) * 1e9),
        )  # fmt: skip
        if changed:
            found[user] = changed
    return found


def every(client: docker.DockerClient, hub: str) -> list:
    """Every service of this hub: its students' and its firewall."""
    return client.services.list(filters={"label": f"{names.LABEL_HUB}={hub}"})


def remove_all(client: docker.DockerClient, hub: str, timeout: float = 60) -> int:
    """Every service of this hub, for destroy; returns once their tasks are gone from every
    node (until then they hold the hub's network, which could not be removed)."""
    removed = set()
    for service in every(client, hub):
        with contextlib.suppress(docker.errors.NotFound):
            service.remove()
            removed.add(service.id)
    deadline = time.monotonic() + timeout
    while any(t["ServiceID"] in removed for t in client.api.tasks()):
        if time.monotonic() > deadline:
            break  # the network's removal then says what still holds it
        time.sleep(0.5)
    return len(removed)
