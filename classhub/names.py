"""Names: which user, group and hub names are valid, and the name of every Docker object.

This is the only place a Docker object's name is made. The rules that keep names unambiguous:

- A hub name is `[a-z0-9-]`, a user or group name is `[a-z0-9._-]`, each starting and ending with a
  letter or digit; user and group names are lowercased before anything else sees them (JupyterHub
  lowercases usernames, so `Alice` and `alice` are one person).
- Every object of a hub starts with `<hub>-`, and each kind has its own infix (`-user-`, `-group-`),
  so within one hub two different (kind, name) pairs never give the same object name.
- Lengths are capped so that the longest container name (`<hub>-user-<name>`: 24 + 6 + 32) stays
  within the 63 characters of a DNS label, which Docker uses to resolve containers on a network.
"""

from __future__ import annotations

import re

HUB_NAME_MAX = 24
NAME_MAX = 32

_HUB_NAME = re.compile(r"[a-z](?:[a-z0-9-]*[a-z0-9])?")
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")

HUB_NAME_RULE = (
    f"use 1 to {HUB_NAME_MAX} lowercase letters, digits and '-', starting with a letter "
    "and ending with a letter or digit"
)
NAME_RULE = (
    f"use 1 to {NAME_MAX} letters, digits, '.', '_' and '-', starting and ending with a letter "
    "or digit"
)


def hub_name_problem(value: str) -> str | None:
    """Why `value` cannot be a hub name, or None when it can."""
    if not value:
        return "is empty"
    if len(value) > HUB_NAME_MAX:
        return f"is {len(value)} characters long"
    if not _HUB_NAME.fullmatch(value):
        return "is not a valid hub name"
    return None


def name_problem(value: str) -> str | None:
    """Why `value` (already lowercased) cannot be a user or group name, or None when it can."""
    if len(value) > NAME_MAX:
        return f"is {len(value)} characters long"
    if not _NAME.fullmatch(value):
        bad = sorted({ch for ch in value if not re.fullmatch(r"[a-z0-9._-]", ch)})
        if bad:
            shown = " ".join(repr(ch) for ch in bad)
            return f"has characters a name cannot carry ({shown})"
        return "does not start and end with a letter or digit"
    return None


def from_account(
    value: str, allowed_domains: list[str] | tuple[str, ...]
) -> tuple[str, str | None]:
    """The username a sign-in provider's claim gives (AUTHENTICATOR=oidc, github): (name, None),
    or ("", why not, in words for the person signing in). The rule, as docs/sign-in.md states it: an
    e-mail address loses its domain, which must be one of `allowed_domains` when any are given;
    the rest is lowercased, each run of characters a name cannot carry becomes '-', and leading or
    trailing '.', '_' and '-' go. What is left must be a valid name (`name_problem`)."""
    value = value.strip()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if allowed_domains and domain.lower() not in allowed_domains:
            return "", (f"{value} cannot sign in here: this hub takes addresses of "
                        f"{', '.join(allowed_domains)} only.")  # fmt: skip
        value = local
    elif allowed_domains:
        return "", (f"Your sign-in provider sent {value!r}, not an e-mail address, so its domain "
                    "cannot be checked. Ask the hub's admin (USERNAME_CLAIM).")  # fmt: skip
    name = re.sub(r"[^a-z0-9._-]+", "-", value.lower()).strip("._-")
    problem = name_problem(name) if name else "it is empty"
    if problem:
        return "", f"{value!r} gives no valid username here ({problem})."
    return name, None


# One function per kind of Docker object.


def hub_container(hub: str) -> str:
    return hub


def network(hub: str) -> str:
    return f"{hub}-net"


def front_network(hub: str) -> str:
    """On a swarm, the hub container's own bridge on the manager, where its port is published
    (a container on an overlay loses its published port once it joins an internal network)."""
    return f"{hub}-front"


def socket_network(hub: str) -> str:
    """The network only the hub and its Docker socket proxy join (internal: no way out)."""
    return f"{hub}-socket"


def socket_proxy_container(hub: str) -> str:
    return f"{hub}-socket-proxy"


def firewall_container(hub: str) -> str:
    return f"{hub}-firewall"


def firewall_table(hub: str) -> str:
    """The nftables table of the hub network's firewall (hub names have no '_': one to one)."""
    return "classhub_" + hub.replace("-", "_")


def hub_data_volume(hub: str) -> str:
    """The hub's database (sqlite) and runtime state."""
    return f"{hub}-data"


def nginx_container(hub: str) -> str:
    """The bundled front door (PROXY=nginx), on the host's network."""
    return f"{hub}-nginx"


def acme_container(hub: str) -> str:
    """The certificate renewer (ACME=true), beside the bundled nginx on the host's network."""
    return f"{hub}-acme"


def db_container(hub: str) -> str:
    """The hub's PostgreSQL (HUB_DB=postgres)."""
    return f"{hub}-db"


def db_network(hub: str) -> str:
    """The network only the hub and its database join (internal: no way out)."""
    return f"{hub}-db-net"


def db_volume(hub: str) -> str:
    """PostgreSQL's data folder."""
    return f"{hub}-db-data"


def addresses_volume(hub: str) -> str:
    """Where the socket proxy lists the hub's servers and their addresses for the firewall."""
    return f"{hub}-addresses"


def user_container(hub: str, user: str) -> str:
    return f"{hub}-user-{user}"


def user_volume(hub: str, user: str) -> str:
    """The user's home, /home/jovyan."""
    return f"{hub}-user-{user}"


def group_volume(hub: str, group: str) -> str:
    """The group's shared folder, mounted in each member's home as `<group>`."""
    return f"{hub}-group-{group}"


def made_for(hub: str, volume: str) -> str | None:
    """What `volume` holds when it is one classhub makes for hub `hub` ("the hub's database",
    ...), or None. SHARED_DATA may name none of these: every student would get it in ~/shared."""
    if volume == hub_data_volume(hub):
        return "the hub's database"
    if volume == db_volume(hub):
        return "PostgreSQL's data"
    if volume == addresses_volume(hub):
        return "the firewall's list of servers"
    if volume.startswith(user_volume(hub, "")):
        return "a user's home"
    if volume.startswith(group_volume(hub, "")):
        return "a group's folder"
    return None


# The images a hub builds from its checkout are its own (tagged with its name): two hubs on one
# engine whose checkouts differ (another classhub version, a class with other packages) never
# replace each other's. Docker's cache makes a second hub's build of the same files a retag.


def hub_image(hub: str) -> str:
    return f"classhub-hub:{hub}"


def notebook_image(hub: str) -> str:
    """The class's image, from the checkout's singleuser/ (NOTEBOOK_IMAGE's default)."""
    return f"classhub-notebook:{hub}"


def grading_image(hub: str) -> str:
    """The class's image with nbgrader, from grading/: `invoke autograde`'s sandboxes run it."""
    return f"classhub-grading:{hub}"


def sandbox(hub: str, token: str) -> str:
    """One grading sandbox's container and its volume (a submission and what it is graded by)."""
    return f"{hub}-sandbox-{token}"


def db_image(hub: str) -> str:
    return f"classhub-db:{hub}"


def nginx_image(hub: str) -> str:
    return f"classhub-nginx:{hub}"


def acme_image(hub: str) -> str:
    return f"classhub-acme:{hub}"


# Shared by every hub on this engine: the Debian base built when none can be pulled, and labels.
LOCAL_BASE_IMAGE = "classhub-base"  # tagged with the host's Debian codename
# Every container, network and volume classhub makes carries these, so status, down and tests
# find exactly one hub's objects.
LABEL_HUB = "classhub.hub"
LABEL_KIND = "classhub.kind"
LABEL_SPEC = "classhub.spec"
LABEL_USER = "classhub.user"  # on a user's container: whose it is
# On the images classhub builds: the hash of every input (classhub/images.py), and a local base's source.
LABEL_INPUTS = "classhub.inputs"
LABEL_BASE = "classhub.base"


def labels(hub: str, kind: str) -> dict[str, str]:
    return {LABEL_HUB: hub, LABEL_KIND: kind}


def user_labels(hub: str, user: str) -> dict[str, str]:
    """A user container's labels (`user` may be DockerSpawner's "{raw_username}" template)."""
    return {**labels(hub, "user"), LABEL_USER: user}


def is_user_container(hub: str, found: dict[str, str]) -> bool:
    """Whether a container's labels say it is one of this hub's user containers."""
    return found.get(LABEL_HUB) == hub and found.get(LABEL_KIND) == "user"
