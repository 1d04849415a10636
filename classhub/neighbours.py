"""The other hubs and programs on this host: who holds a HUB_NAME or a PORT, and the list of hubs.

Several checkouts (one per course) run side by side on one engine. Each hub's Docker objects carry
its name (`names`), and its network and hub container also carry `classhub.checkout`, the folder
of the checkout that made them. Before setup or up creates anything, `conflicts` finds:
- a HUB_NAME whose network or hub container another checkout made;
- a HUB_NAME that is another hub's name followed by '-' (or the reverse): `math` and `math-user`
  would both want the volume `math-user-data`;
- a PORT another hub publishes, or that another program on this host listens on (named when `ss`
  can tell);
- a PUBLIC_URL host another hub has too, or one among another hub's students' hosts (or over
  another hub's host), when either uses USER_SUBDOMAINS: each student's server then has an origin
  of its own, which another hub on the same names would share (`origin_labels` carries the host
  on every hub container);
- a SHARED_DATA that is a volume another hub's classhub made (a home, a group folder, a database),
  by its labels or by its name, or a folder that holds or lies in the engine's own data, where
  every hub's volumes are;
each named with its owner. The engine lists the hubs on it (`runtime/single_host/neighbours.py`
on Docker, for `conflicts` and `invoke hubs`).
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import components, names
from .components import Part
from .errors import clipped
from .inputs.settings import Settings

LABEL_CHECKOUT = "classhub.checkout"
LABEL_FRONT_PORTS = "classhub.front-ports"  # on a bundled nginx: "HTTPS_PORT,HTTP_PORT"
LABEL_PUBLIC_HOST = "classhub.public-host"  # on a hub container: PUBLIC_URL's host
LABEL_SUBDOMAINS = "classhub.user-subdomains"  # on a hub container: "true" with USER_SUBDOMAINS


@dataclass(frozen=True)
class HubInfo:
    name: str
    checkout: str  # "" when made before checkouts were labelled
    state: str
    address: str  # host:port it is published on, "" when not running
    users: int
    ports: frozenset[int] = frozenset()  # every host port it holds (hub or bundled nginx)
    public_host: str = ""  # PUBLIC_URL's host ("" when made before hubs were labelled with it)
    user_subdomains: bool = False


def checkout_labels(root: Path) -> dict[str, str]:
    return {LABEL_CHECKOUT: str(root.resolve())}


def origin_labels(settings: Settings) -> dict[str, str]:
    """What the hub container says of its origin, for other hubs' `conflicts`."""
    return {
        LABEL_PUBLIC_HOST: settings.public_host,
        **({LABEL_SUBDOMAINS: "true"} if settings.user_subdomains else {}),
    }


def port_of(address: str) -> set[int]:
    port = address.rpartition(":")[2]
    return {int(port)} if port.isdigit() else set()


@dataclass(frozen=True)
class Neighbourhood:
    """What the engine says of the others: every hub on it, the labels of a volume by name
    (None: no such volume) and the folder that holds the engine's own data."""

    hubs: list[HubInfo]
    volume_labels: Callable[[str], dict[str, str] | None]
    engine_root: Path


def conflicts(around: Neighbourhood, settings: Settings, root: Path) -> list[str]:
    """Why this checkout's hub cannot have its HUB_NAME and PORT here (empty when it can)."""
    me, mine = settings.hub_name, str(root.resolve())
    problems = []
    others = around.hubs
    for other in others:
        if other.name == me and other.checkout and other.checkout != mine:
            problems.append(
                f"HUB_NAME={me} is already the hub of the checkout {other.checkout}; set another "
                "HUB_NAME in .env (each checkout is one hub)"
            )
        elif other.name != me and (
            other.name.startswith(me + "-") or me.startswith(other.name + "-")
        ):
            problems.append(
                f"HUB_NAME={me} and the hub {other.name} on this host (checkout "
                f"{other.checkout or 'unknown'}) would share Docker object names (one is the "
                "other's name and '-'); choose a HUB_NAME that does not start with theirs"
            )
    problems += _origin_problems(settings, others)
    problems += _shared_data_problems(around, settings.shared_data)
    if components.has(settings, Part.FRONT_DOOR):
        wanted = [("HTTPS_PORT", settings.https_port, "0.0.0.0"),
                  ("HTTP_PORT", settings.http_port, "0.0.0.0")]  # fmt: skip
    else:
        wanted = [("PORT", settings.port, settings.bind_address)]
    for key, port, address in wanted:
        taken = next((o for o in others if o.name != me and port in o.ports), None)
        if taken is not None:
            problems.append(
                f"{key}={port} is published by the hub {taken.name} (checkout "
                f"{taken.checkout or 'unknown'}); set another {key} in .env"
            )
        elif not any(o.name == me and port in o.ports for o in others):
            holder = port_holder(address, port)
            if holder:
                problems.append(f"{key}={port} is in use by {holder}; set another {key} in .env")
    return problems


def _origin_problems(settings: Settings, others: list[HubInfo]) -> list[str]:
    """A hub with USER_SUBDOMAINS needs its host, and the hosts under it, to itself."""
    host = settings.public_host
    problems = []
    for other in others:
        if other.name == settings.hub_name or not other.public_host:
            continue
        theirs = other.public_host
        if host == theirs and (settings.user_subdomains or other.user_subdomains):
            where = f"is also the hub {other.name}'s"
        elif other.user_subdomains and host.endswith("." + theirs):
            where = f"lies among the hub {other.name}'s students' hosts (NAME.{theirs})"
        elif settings.user_subdomains and theirs.endswith("." + host):
            where = f"has under it the hub {other.name}'s host {theirs}"
        else:
            continue
        problems.append(
            f"PUBLIC_URL's host {host} {where} (checkout {other.checkout or 'unknown'}), and "
            "USER_SUBDOMAINS needs a host of its own: pages of one hub's students would share "
            "an origin with the other hub; give this hub a host name apart from theirs in "
            "PUBLIC_URL (e.g. physics.example.edu beside maths.example.edu)"
        )
    return problems


def _shared_data_problems(around: Neighbourhood, shared: str) -> list[str]:
    """Why SHARED_DATA may not be shared with every student here (this hub's own volumes are
    checked with the settings)."""
    if not shared:
        return []
    fix = "name a volume or folder of the course data's own, e.g. SHARED_DATA=course-data"
    if shared.startswith("/"):
        root = around.engine_root
        folder = Path(shared).resolve()
        if folder == root or root in folder.parents or folder in root.parents:
            return [f"SHARED_DATA={clipped(shared)} holds or lies in the Docker engine's data ({root}), "
                    f"where every hub's volumes are; {fix}"]  # fmt: skip
        return []
    labels = around.volume_labels(shared) or {}
    owner, kind = labels.get(names.LABEL_HUB), labels.get(names.LABEL_KIND)
    if owner and kind != "shared":
        return [f"SHARED_DATA={clipped(shared)} is a volume classhub made for the hub {owner} ({kind}); "
                f"{fix}"]  # fmt: skip
    for other in around.hubs:
        owned = names.made_for(other.name, shared)
        if owned:
            return [f"SHARED_DATA={clipped(shared)} is {owned} of the hub {other.name}; {fix}"]
    return []


def port_holder(address: str, port: int) -> str | None:
    """Who listens on `address:port` ("the program nginx (pid 123)"), or None when it is free."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                return None
        else:
            return None
    return _ss_owner(port) or "another program"


def _ss_owner(port: int) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ss", "-H", "-ltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
        match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
        if match:
            return f"the program {match.group(1)} (pid {match.group(2)})"
    return None
