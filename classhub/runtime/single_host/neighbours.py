"""The hubs on this Docker engine, read from their labels, for the checks of `classhub/neighbours.py`
and for `invoke hubs`."""

from __future__ import annotations

from pathlib import Path

import docker
import docker.errors

from ... import hubfile, names
from ...neighbours import (
    LABEL_CHECKOUT,
    LABEL_FRONT_PORTS,
    LABEL_PUBLIC_HOST,
    LABEL_SUBDOMAINS,
    HubInfo,
    Neighbourhood,
    port_of,
)


def hubs(client: docker.DockerClient) -> list[HubInfo]:
    """Every hub on this engine: from hub networks and hub containers, by HUB_NAME."""
    found: dict[str, dict] = {}
    for network in client.networks.list(filters={"label": f"{names.LABEL_KIND}=net"}):
        hub = network.attrs.get("Labels", {}).get(names.LABEL_HUB)
        if hub:
            found.setdefault(hub, {"checkout": network.attrs["Labels"].get(LABEL_CHECKOUT, "")})
    for container in client.containers.list(all=True, filters={"label": f"{names.LABEL_KIND}=hub"}):
        hub = container.labels.get(names.LABEL_HUB)
        if not hub:
            continue
        entry = found.setdefault(hub, {"checkout": ""})
        entry["checkout"] = container.labels.get(LABEL_CHECKOUT, entry["checkout"])
        entry["state"] = container.status
        entry["address"] = _published(container)
        entry["public_host"] = container.labels.get(LABEL_PUBLIC_HOST, "")
        entry["user_subdomains"] = container.labels.get(LABEL_SUBDOMAINS) == "true"
    for container in client.containers.list(
        all=True, filters={"label": f"{names.LABEL_KIND}=nginx"}
    ):
        hub = container.labels.get(names.LABEL_HUB)
        if not hub:
            continue
        entry = found.setdefault(hub, {"checkout": ""})
        front = container.labels.get(LABEL_FRONT_PORTS, "")
        entry["front"] = {int(port) for port in front.split(",") if port.isdigit()}
    users: dict[str, int] = {}
    for volume in client.volumes.list(filters={"label": f"{names.LABEL_KIND}=user"}):
        hub = (volume.attrs.get("Labels") or {}).get(names.LABEL_HUB)
        if hub:
            users[hub] = users.get(hub, 0) + 1
    return [
        HubInfo(
            hub,
            e["checkout"],
            e.get("state", "no container"),
            e.get("address", ""),
            users.get(hub, 0),
            frozenset(e.get("front", set()) | port_of(e.get("address", ""))),
            e.get("public_host", ""),
            e.get("user_subdomains", False),
        )
        for hub, e in sorted(found.items())
    ]


def _published(container) -> str:
    bindings = (container.attrs.get("HostConfig") or {}).get("PortBindings") or {}
    for binding in bindings.get(f"{hubfile.PROXY_PORT}/tcp") or []:
        return f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}"
    return ""


def around(client: docker.DockerClient) -> Neighbourhood:
    """Every hub on the engine, its volumes' labels and where it keeps its data."""

    def volume_labels(name: str) -> dict[str, str] | None:
        try:
            return client.volumes.get(name).attrs.get("Labels") or {}
        except docker.errors.NotFound:
            return None

    root = Path(client.info().get("DockerRootDir") or "/var/lib/docker").resolve()
    return Neighbourhood(hubs(client), volume_labels, root)
