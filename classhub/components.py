"""Which parts a hub has: decided here once, from the settings, and read by everything else.

A hub always has its firewall, its Docker socket proxy and the hub itself; HUB_DB=postgres adds
the database, PROXY=nginx the bundled front door, and ACME=true beside it the certificate
renewer. Each `Component` says what it is called, the container and image it runs, the internal
network and data volumes it brings and the secrets it reads. Deploy makes them in `of`'s order; status, destroy, backup, secrets, images and the hub
container's mounts read the same list. How each is made and when it is ready is the engine's side
(`runtime.Runtime.services`; on Docker `runtime/single_host/stack.py`), keyed by `Part`, never by a list position or a name compared as text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from . import hubfile, names
from .inputs.settings import Settings


class Part(enum.Enum):
    """A kind of component; its value is the `classhub.kind` label of its container."""

    FIREWALL = "firewall"
    SOCKET_PROXY = "socket-proxy"
    DATABASE = "db"
    HUB = "hub"
    FRONT_DOOR = "nginx"
    CERTIFICATES = "acme"


@dataclass(frozen=True)
class Image:
    """An image a component runs, built from the checkout's folder of that name."""

    what: str  # "hub image"
    tag: str
    folder: str  # "hub": hub/Dockerfile


@dataclass(frozen=True)
class Network:
    """An internal network (no way out) a component brings, which only the hub joins besides."""

    name: str
    kind: str  # its classhub.kind label
    who: str  # who joins it, for the plan


@dataclass(frozen=True)
class Volume:
    """A data volume of the hub's own (students' homes and group folders are the roster's)."""

    name: str
    kind: str
    what: str


@dataclass(frozen=True)
class Component:
    part: Part
    what: str  # how plans and messages call it
    container: str
    image: Image
    networks: tuple[Network, ...] = ()
    volumes: tuple[Volume, ...] = ()
    secrets: tuple[str, ...] = ()  # files of the host's secrets/ it reads

    @property
    def row(self) -> str:
        """Its row in a plan: what it is and its container's name."""
        return f"{self.what} {self.container}"


def hub_image(hub: str) -> Image:
    return Image("hub image", names.hub_image(hub), "hub")


def of(settings: Settings) -> tuple[Component, ...]:
    """This hub's components, in the order they start (each needs the ones before it)."""
    hub = settings.hub_name
    own = hub_image(hub)
    found = [
        Component(Part.FIREWALL, "firewall", names.firewall_container(hub), own),
        Component(
            Part.SOCKET_PROXY,
            "Docker socket proxy",
            names.socket_proxy_container(hub),
            own,
            networks=(
                Network(names.socket_network(hub), "socket-net", "hub and Docker proxy only"),
            ),
            # Where it lists the servers and their addresses for the firewall.
            volumes=(Volume(names.addresses_volume(hub), "addresses", "servers' addresses"),),
        ),
    ]
    if settings.hub_db == "postgres":
        found.append(
            Component(
                Part.DATABASE,
                "database",
                names.db_container(hub),
                Image("database image", names.db_image(hub), "db"),
                networks=(Network(names.db_network(hub), "db-net", "hub and database only"),),
                volumes=(Volume(names.db_volume(hub), "db-data", "PostgreSQL's data"),),
                secrets=(hubfile.DB_SECRET,),
            )
        )
    found.append(
        Component(
            Part.HUB,
            "hub container",
            names.hub_container(hub),
            own,
            volumes=(Volume(names.hub_data_volume(hub), "data", "hub database"),),
            secrets=hubfile.hub_secrets(settings.hub_db, settings.authenticator),
        )
    )
    if settings.proxy == "nginx":
        found.append(
            Component(
                Part.FRONT_DOOR,
                "nginx",
                names.nginx_container(hub),
                Image("nginx image", names.nginx_image(hub), "nginx"),
            )
        )
        if settings.acme:  # after nginx, which answers the CA's HTTP-01 challenge
            found.append(
                Component(
                    Part.CERTIFICATES,
                    "certificate renewer",
                    names.acme_container(hub),
                    Image("certificate renewer image", names.acme_image(hub), "acme"),
                )
            )
    return tuple(found)


def find(settings: Settings, part: Part) -> Component | None:
    """This hub's component of that kind, or None when it has none."""
    return next((c for c in of(settings) if c.part is part), None)


def has(settings: Settings, part: Part) -> bool:
    return find(settings, part) is not None


def images(settings: Settings) -> tuple[Image, ...]:
    """The images the components run, each once, in start order."""
    return tuple({c.image.tag: c.image for c in of(settings)}.values())


def node_images(settings: Settings, group_images: Iterable[str] = ()) -> tuple[str, ...]:
    """The images every node of a swarm holds (docs/swarm.md): the class's, which students'
    servers run, the hub's own, and those the roster gives groups (`image=`)."""
    first = (settings.notebook_image, names.hub_image(settings.hub_name))
    return first + tuple(sorted(set(group_images) - set(first)))


def networks(settings: Settings) -> tuple[Network, ...]:
    return tuple(n for c in of(settings) for n in c.networks)


def volumes(settings: Settings) -> tuple[Volume, ...]:
    return tuple(v for c in of(settings) for v in c.volumes)


def secrets(settings: Settings) -> frozenset[str]:
    """The files of secrets/ some component reads."""
    return frozenset(s for c in of(settings) for s in c.secrets)
