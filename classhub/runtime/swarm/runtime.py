"""ENGINE=swarm: one hub whose students' servers are services on the nodes of a Docker swarm.

This server's engine is the swarm's manager, and the hub's own parts (the socket proxy, the
database, the hub and the bundled nginx) run on it as containers, as on one server:
`single_host.SingleHost` makes them, and this class changes what differs on a swarm:
- the hub's network is an overlay (attachable: the hub's container joins it at its fixed
  address, the students' services beside it, on any node); the hub is made on a bridge of its
  own, `<HUB_NAME>-front`, where its port is published (at BIND_ADDRESS:PORT, behind the
  bundled nginx too: this server's programs, nginx and classhub, cannot reach the overlay),
  and joins the overlay after;
- the firewall is `guard`'s two global services, one task each on every node;
- the socket proxy is given the shared storage (`--swarm-storage`): it then lets the hub make
  students' services, and makes a newcomer's home as a folder there;
- homes, group folders and the shared data are folders in the shared storage
  (`<SWARM_STORAGE>/<HUB_NAME>/<volume name>`, `hubfile.swarm_folders`), made with their owner
  and mode (diskstore.py, limit 0) and each bound on the manager by a Docker volume of the
  usual name, so that backup, restore, status, remove-user --purge and destroy find them as on
  one server; the students' services bind the folders themselves, on whichever node;
- students' servers are services (`servers`): stopped, swept and destroyed as such.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker

from ... import hubfile, names, render, secrets
from ...components import Component, Part
from ...console import Echo
from ...errors import UserError
from ...hubapi import HubAPI
from ...inputs.settings import Settings
from ...paths import Paths
from .. import Service
from ..single_host import SingleHost, disks, engine, stack
from . import guard, nodes, servers


class Swarm(SingleHost):
    def __init__(self, client: docker.DockerClient, settings: Settings, where: str = ""):
        super().__init__(client, settings.hub_name, where)
        self.settings = settings
        self.folders = render.folders_store(settings)

    def version(self) -> str:
        return f"Docker swarm, managed by engine {engine.version(self.client)} at {self.where}"

    # --- the hub's network: an overlay, and the hub's own bridge beside it ---
    def network_state(self) -> str:
        state = stack.network_state(self.client, self.hub, overlay=True)
        if state == "present" and not stack.network_exists(self.client, self._front):
            return "missing"  # its bridge alone: the step makes that (the overlay is kept)
        return state

    def ensure_network(self, echo: Echo, owner: dict[str, str]) -> None:
        nodes.ensure_swarm(self.client, self.settings.swarm_address, echo)
        stack.ensure_network(self.client, self.hub, echo, owner, overlay=True)
        if not stack.network_exists(self.client, self._front):
            self.client.networks.create(self._front, driver="bridge",
                                        labels={**names.labels(self.hub, "front"), **owner})  # fmt: skip

    @property
    def _front(self) -> str:
        return names.front_network(self.hub)

    # --- homes and group folders: in the shared storage ---
    def create_volumes(
        self,
        volumes: dict[str, str],
        image: str,
        echo: Echo,
        store: str = "",
        sizes: Mapping[str, int] | None = None,
    ) -> None:
        stack.create_volumes(self.client, self.hub, volumes, image, echo, self.folders,
                             dict.fromkeys(volumes, 0))  # fmt: skip

    def restore_volume(
        self, name: str, kind: str, archive: Path, store: str = "", size: int = 0,
        again: bool = False,
    ) -> None:  # fmt: skip
        super().restore_volume(name, kind, archive, self.folders, 0, again)

    # --- the hub's own services: the guard instead of the one firewall ---
    def services(self, paths: Paths, settings: Settings) -> list[Service]:
        makers: dict[Part, stack.Maker] = {
            Part.FIREWALL: guard.service,
            Part.SOCKET_PROXY: _socket_proxy_service,
            Part.HUB: _hub_service,
            Part.FRONT_DOOR: _nginx_service,
        }
        return stack.services(self.client, paths, settings, makers)

    def service_state(self, service: Service) -> tuple[str, str]:
        if service.component.part is Part.FIREWALL:
            return guard.state(self.client, self.hub, service)
        return super().service_state(service)

    def ensure_service(self, service: Service, echo: Echo) -> bool:
        if service.component.part is Part.FIREWALL:
            return guard.ensure(self.client, self.settings, service, echo)
        return super().ensure_service(service, echo)

    def wait_ready(self, part: Part, since: int) -> None:
        if part is Part.FIREWALL:
            guard.wait(self.client, self.settings, since)
        else:
            super().wait_ready(part, since)

    def hub_api(self, paths: Paths, settings: Settings) -> HubAPI:
        """At its published port, behind the bundled nginx too (`_hub_service`)."""
        return HubAPI(settings, lambda: secrets.api_token(paths))

    def exams_applied(self, since: float) -> list[str | None]:
        return guard.exams_applied(self.client, self.settings, since)

    def container_status(self, name: str) -> str | None:
        if name == names.firewall_container(self.hub):  # a service, not a container
            return guard.status(self.client, self.hub)
        if self._server(name) is not None:
            return "running"
        return super().container_status(name)

    # --- a student's server's log: its service's, from whichever node it runs on ---
    def _server(self, name: str):
        return next((s for s in servers.of(self.client, self.hub) if s.name == name), None)

    def logs(self, name: str, tail: int = 60) -> str:
        found = self._server(name)
        if found is None:
            return super().logs(name, tail)
        return b"".join(found.logs(stdout=True, stderr=True, tail=tail)).decode("utf-8", "replace")

    def follow_logs(self, name: str, tail: int) -> Iterator[bytes]:
        found = self._server(name)
        if found is None:
            yield from super().follow_logs(name, tail)
        else:
            yield from found.logs(stdout=True, stderr=True, tail=tail, follow=True)

    # --- students' servers: services ---
    def stale_servers(self, hub_file: Any) -> dict[str, str]:
        return servers.stale(self.client, self.hub, hub_file, self.settings.swarm_storage)

    def sweep_users(self, prefix: str) -> int:
        return servers.sweep(self.client, self.hub, prefix) + super().sweep_users(prefix)

    def stop_all(self, echo: Echo) -> int:
        """The students' services, then the hub's containers as on one server. The firewall's
        service stays: it holds no student's work and keeps every node guarded."""
        return servers.stop_all(self.client, self.hub, echo) + super().stop_all(echo)

    def inventory(self) -> dict[str, list[tuple[str, str]]]:
        found = super().inventory()
        found["services"] = [
            (str(s.name), (s.attrs["Spec"].get("Labels") or {}).get(names.LABEL_KIND, ""))
            for s in servers.every(self.client, self.hub)
        ]
        return found

    def remove_containers(self, echo: Echo) -> int:
        return servers.remove_all(self.client, self.hub) + super().remove_containers(echo)

    def destroy(self, echo: Echo) -> int:
        """The hub's services (on every node), then its containers, networks and volumes with
        their folders, then the firewall's words and the hub's folder in the shared storage."""
        count = servers.remove_all(self.client, self.hub)
        count += super().destroy(echo)
        # The guards' words (root's, as the folder is), then the hub's folder if nothing else
        # is left in it (what rmdir removes).
        words, folder = guard.words(self.settings), self.folders
        script = f"rm -rf {shlex.quote(words)}; rmdir {shlex.quote(folder)} 2>/dev/null; true"
        guard.in_storage(self.client, self.settings, "sh", "-c", script)
        return count


def _socket_proxy_service(
    client: docker.DockerClient, paths: Paths, settings: Settings, component: Component,
    where: stack.Where,
) -> Service:  # fmt: skip
    """The one-server proxy, given the shared storage: it lets the hub make students' services,
    reads each node's firewall word there, and makes a newcomer's home there."""
    made = stack.MAKERS[Part.SOCKET_PROXY](client, paths, settings, component, where)
    folders = render.folders_store(settings)
    kwargs = dict(made.kwargs)
    kwargs["command"] = [*kwargs["command"], "--swarm-storage", settings.swarm_storage]
    kwargs["volumes"] = {**kwargs["volumes"], folders: {"bind": folders, "mode": "rw"}}
    kwargs["cap_add"] = disks.STORE_CAPS
    return dataclasses.replace(made, kwargs=kwargs)


def _hub_service(
    client: docker.DockerClient, paths: Paths, settings: Settings, component: Component,
    where: stack.Where,
) -> Service:  # fmt: skip
    """The one-server hub, made on its own bridge (where its port is published) and joining the
    overlay at its fixed address after: a container made on an overlay loses its published port
    when it joins an internal network, as the hub joins its socket proxy's (Docker 20.10)."""
    made = stack.MAKERS[Part.HUB](client, paths, settings, component, where)
    network, front = names.network(settings.hub_name), names.front_network(settings.hub_name)
    kwargs = {k: v for k, v in made.kwargs.items() if k != "networking_config"}
    kwargs["network"] = front
    # Published at BIND_ADDRESS:PORT behind the bundled nginx too (below).
    kwargs["ports"] = {f"{hubfile.PROXY_PORT}/tcp": (settings.bind_address, settings.port)}
    return dataclasses.replace(made, kwargs=kwargs, join=(network, *made.join),
                               addresses=((network, where.address),))  # fmt: skip


def _nginx_service(
    client: docker.DockerClient, paths: Paths, settings: Settings, component: Component,
    where: stack.Where,
) -> Service:  # fmt: skip
    """The one-server bundled nginx, reaching the hub at its published port (BIND_ADDRESS, on
    loopback by default) as a site's own nginx would: this server's own programs cannot reach
    the hub's overlay."""
    return stack.nginx_service(client, paths, settings, component, settings.upstream)


def connect(environ: Mapping[str, str], settings: Settings) -> Swarm:
    client = engine.connect(environ)
    if not settings.swarm_storage:
        raise UserError("ENGINE=swarm needs SWARM_STORAGE")
    return Swarm(client, settings, engine.where(environ))
