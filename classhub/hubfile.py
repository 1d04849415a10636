"""The one file the hub reads (`state/hub.json`): its format, and the reader the hub uses.

It is also the contract between host and hub: where the hub container finds the file, the
secrets and its data, which the host's engine (runtime/single_host/stack.py) mounts and the hub's config reads.

The host renders this file from the validated settings and roster (`render.hub_file`); the hub's
`jupyterhub_config.py` reads it with `load` and never parses `.env` or `userlist` itself.

Rules: standard library only (the hub image copies this module and `names`, not the package); `get`
raises on a missing key rather than inventing a default, so a host/hub mismatch fails loudly at
hub start instead of silently running with a value nobody chose.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import names

FORMAT = 1
# In the hub file's `newcomers` templates, where a newcomer's name goes.
NAME_SLOT = "{name}"

# Where the hub container finds what the host gives it (runtime/single_host/stack.py mounts them there).
HUB_FILE_IN_HUB = "/etc/classhub/state/hub.json"
# Beside it in state/: the exams in progress (`invoke exam`), which the firewall reads.
EXAMS_FILE = "exams.json"
# The line the firewall prints once it enforces the exams: `exam_label`s, each with its number of
# servers ("team-1 until 10:30 UTC (2 server(s)); ..."), or "none"; `invoke exam` waits for it.
EXAMS_APPLIED = "firewall: exams: "
# The socket proxy's list of this hub's user containers and their addresses, in a volume of its
# own that the firewall mounts too (read-only): {"servers": {address: user}}.
ADDRESSES_IN_HUB = "/run/classhub/addresses"
ADDRESSES_FILE = "addresses.json"
# Beside it, the firewall's word that its table is loaded in this kernel: {"boot_id": ...}. The proxy
# starts no student's server until it is (after a reboot the table is gone until the firewall is
# back; a server started before then would reach the others).
FIREWALL_FILE = "firewall.json"
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # the kernel's, the same in every container


def replace_whole(path: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write `path` as its readers must see it, whole or not at all: beside it first (a hidden
    `.partial` file, given `mode`), then renamed over it. On the hub's side, where files the
    firewall and the proxies read each other's words in are written."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    if mode is not None:
        partial.chmod(mode)
    partial.replace(path)


def boot_id() -> str:
    """This kernel's boot: it changes at every reboot, and the firewall's table goes with it."""
    try:
        with open(BOOT_ID, encoding="ascii") as found:
            return found.read().strip()
    except OSError:
        return ""


SECRETS_IN_HUB = "/etc/classhub/secrets"
CONFIG_D_IN_HUB = "/etc/classhub/jupyterhub_config.d"
DATA_IN_HUB = "/srv/jupyterhub"
# The hub's sqlite database in DATA_IN_HUB, and the name it keeps once moved to PostgreSQL.
SQLITE_FILE = "jupyterhub.sqlite"
SQLITE_MOVED = SQLITE_FILE + ".moved-to-postgres"
# The proxy's public port and the hub's own API port inside the hub container.
PROXY_PORT = 8000
HUB_API_PORT = 8081
# The Docker socket proxy's port on the hub's socket network (the hub's DOCKER_HOST).
SOCKET_PROXY_PORT = 2375
# The secrets the hub reads from SECRETS_IN_HUB (files of the same names in the host's secrets/).
HUB_SECRETS = ("cookie_secret", "proxy_auth_token", "classhub_api_token")
DB_SECRET = "postgres_password"  # also, with HUB_DB=postgres
# The authenticators that sign people in elsewhere: no passwords on the hub, an OAuth client
# secret instead.
SINGLE_SIGN_ON = ("oidc", "github")
OAUTH_SECRET = "oauth_client_secret"  # also, with AUTHENTICATOR in SINGLE_SIGN_ON
# The hub's database with HUB_DB=postgres: the database container's name is in the hub file.
DB_NAME = DB_USER = "jupyterhub"
DB_PORT = 5432


# Every home, group folder and shared-data volume classhub makes is jovyan's (1000:100); group
# and shared folders are setgid and group-writable, so every member can edit what another made.
FOLDER_OWNER = (1000, 100)
FOLDER_MODES = {"user": 0o755, "group": 0o2775, "shared": 0o2775}

# What every container classhub makes runs with (docker-py's keyword arguments): no capability
# it does not add back by name, and no privileges gained through setuid programs.
HARDENING: dict[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}

# A user container's root filesystem is read-only, with a tmpfs at /tmp (the only place outside
# the home it writes): nothing a student writes lands in Docker's storage on the host's disk, and
# what she keeps in /tmp counts against her memory limit. The socket proxy requires exactly this.
USER_TMPFS = {"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"}


def store_volume_options(store: str, volume: str) -> dict[str, str]:
    """A volume whose folder is in DISK_STORE: the local driver's options that bind it there
    (the host makes such volumes, and the socket proxy a newcomer's home)."""
    return {"type": "none", "o": "bind", "device": f"{store.rstrip('/')}/{volume}"}


# In swarm_folders: where each node's firewall (swarmguard) says its tables are loaded, one file
# a node and table; not a volume's name, so no home or group folder can be called so.
GUARD_WORDS = ".firewall"
# The tables of each node's firewall, each loaded by a guard of its own: between the hub's
# servers (in the overlay's namespace), and out of the overlay (in the node's own namespace).
GUARD_TABLES = ("overlay", "node")
GUARD_NODE_ENV = "CLASSHUB_NODE"  # the guard's node's hostname (a service template), in its word
GUARD_WORD_FRESH = 20.0  # seconds a word is taken as true (a guard says it every 5 s)


def guard_word(folder: str | Path, host: str, table: str) -> Path:
    """The file in which the guard of `table` on node `host` says it is loaded."""
    return Path(folder) / f"{host}.{table}.json"


def guard_said(folder: str | Path, host: str) -> float:
    """When the node's guards last said, all of them, that their tables are loaded (epoch
    seconds; 0: one never did, or its word cannot be read)."""
    said = []
    for table in GUARD_TABLES:
        try:
            said.append(float(json.loads(guard_word(folder, host, table).read_text())["loaded"]))
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0
    return min(said)


def guard_inputs(folder: str | Path) -> tuple[Path, Path, Path]:
    """On a swarm, where in the guards' words folder the socket proxy keeps, for every node's
    guard, what the one firewall reads on one server: a copy of the hub file and of the exams,
    and its list of servers (`{"servers": {address on the overlay: user}}`)."""
    return (Path(folder) / Path(HUB_FILE_IN_HUB).name, Path(folder) / EXAMS_FILE,
            Path(folder) / ADDRESSES_FILE)  # fmt: skip


def swarm_folders(storage: str, hub: str) -> str:
    """On a swarm, the folder of the shared storage (SWARM_STORAGE, the same path on every node)
    that holds this hub's homes and group folders, each named as its volume on one server."""
    return f"{storage.rstrip('/')}/{hub}"


def swarm_source(storage: str, hub: str, source: str) -> str:
    """Where a folder a server binds (a key of `mounts`: a volume's name, or SHARED_DATA's
    absolute folder, which every node has at that path) is on a swarm's nodes."""
    return source if source.startswith("/") else f"{swarm_folders(storage, hub)}/{source}"


def volume_store(volume: str, options: dict | None) -> str | None:
    """The store a volume's folder is in, read back from its options; None: Docker's storage."""
    options = options or {}
    device = options.get("device", "")
    if options.get("o") != "bind" or not device.endswith("/" + volume):
        return None
    return device[: -len(volume) - 1] or "/"


def activity_interval(timeout: int) -> int:
    """How often (seconds) activity is reported and the culler looks, for a cull timeout: a third
    of it, between 5 seconds and JupyterHub's default of 5 minutes. (invoke prewarm holds
    servers by reporting at the same pace.)"""
    return max(5, min(300, timeout // 3))


def hub_secrets(db: str, authenticator: str = "roster") -> tuple[str, ...]:
    found = HUB_SECRETS + ((DB_SECRET,) if db == "postgres" else ())
    return found + ((OAUTH_SECRET,) if authenticator in SINGLE_SIGN_ON else ())


def exam_label(group: str, until: float | None) -> str:
    """How the firewall names an exam it enforces: "team-1 until 10:30 UTC" (its end, in UTC: the
    firewall's clock has no time zone), or "team-1 until invoke exam stop"."""
    when = time.strftime("%H:%M UTC", time.gmtime(until)) if until else "invoke exam stop"
    return f"{group} until {when}"


def postgres_url(host: str, password: str) -> str:
    return f"postgresql+psycopg2://{DB_USER}:{password}@{host}:{DB_PORT}/{DB_NAME}"


def db_url(hub: HubFile, secrets: dict[str, str]) -> str:
    """SQLAlchemy's URL of the hub's database."""
    if hub.get("db") == "postgres":
        return postgres_url(hub.get("db_host"), secrets[DB_SECRET])
    return f"sqlite:///{DATA_IN_HUB}/{SQLITE_FILE}"


# Where a user's volumes appear in their container: the home, and in it the shared data folder
# and (for admins, with ADMIN_SEES_USERS) the folder of every other user's home.
HOME = "/home/jovyan"
SHARED_FOLDER = "shared"
USERS_FOLDER = "users"


class HubFileError(Exception):
    pass


class Each:
    """In a shape: a JSON object whose every key is a name and every value has `shape`."""

    def __init__(self, shape: Any):
        self.shape = shape


# What the hub, its socket proxy and its firewall re-read while they run: a file whose parts
# differ from this is refused as a whole, and they keep the last good one (their logs say why).
# A dict: these keys at least; a list of one shape: a JSON array of those; a type: that type.
_LIMITS = {"mem_limit": int, "cpu_limit": (int, float)}
_TARGET = {"network": str, "port": (int, type(None))}
SHAPE: dict[str, Any] = {
    "hub_name": str,
    "network": str,
    "shared_data": str,
    "admin_sees_users": bool,
    "notebook_image": str,
    "auth": {"open_to_all": bool, "groups_claim": str},
    "users": Each(
        {
            "admin": bool,
            "groups": [str],
            "limits": _LIMITS,
            "image": str,
            "password_hash": str,
            "volume": str,
            "container": str,
        }
    ),
    "groups": Each({"members": [str], "volume": str, "egress": [_TARGET]}),
    "newcomers": {
        "groups": [str],
        "limits": _LIMITS,
        "image": str,
        "volume": str,
        "container": str,
    },
    "socket_proxy": {"images": [str], "disk_store": str, "disk_limit": int},
    "firewall": {"egress": [_TARGET]},
}


def shape_problem(value: Any, shape: Any, where: str = "") -> str | None:
    """Where `value` differs from `shape` and how ("users.ann.groups[0] is 3, not a string"), or
    None when it does not."""
    if isinstance(shape, Each):
        if not isinstance(value, dict):
            return f"{where or 'the file'} is {_kind(value)}, not an object"
        for key, item in value.items():
            found = shape_problem(item, shape.shape, f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'the file'} is {_kind(value)}, not an object"
        for key, inner in shape.items():
            here = f"{where}.{key}" if where else key
            if key not in value:
                return f"{here} is missing"
            found = shape_problem(value[key], inner, here)
            if found:
                return found
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is {_kind(value)}, not a list"
        for index, item in enumerate(value):
            found = shape_problem(item, shape[0], f"{where}[{index}]")
            if found:
                return found
        return None
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in types:  # JSON's true is not a number
        return f"{where} is {_kind(value)}, not {_names(types)}"
    if not isinstance(value, types):
        return f"{where} is {_kind(value)}, not {_names(types)}"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _names(types: tuple) -> str:
    words = {bool: "true or false", int: "a number", float: "a number", str: "a string",
             type(None): "null"}  # fmt: skip
    return " or ".join(dict.fromkeys(words.get(t, t.__name__) for t in types))


class HubFile:
    def __init__(self, data: Any, source: str):
        if not isinstance(data, dict):
            raise HubFileError(f"{source}: holds {_kind(data)}, not the hub file's object; "
                               "re-run invoke setup")  # fmt: skip
        if data.get("format") != FORMAT:
            raise HubFileError(
                f"{source}: format {data.get('format')!r}, this hub reads format {FORMAT}; "
                "run invoke setup with the same classhub version as the hub image"
            )
        problem = shape_problem(data, SHAPE)
        if problem:
            raise HubFileError(f"{source}: {problem}; re-run invoke setup")
        self._data = data
        self._source = source

    def get(self, dotted: str) -> Any:
        """The value at a dotted key, e.g. get("limits.mem_limit"); raises when it is absent."""
        node: Any = self._data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise HubFileError(f"{self._source}: no key {dotted!r}; re-run invoke setup")
            node = node[part]
        return node


def load(path: str | Path) -> HubFile:
    path = Path(path)
    try:
        return HubFile(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError) as exc:
        raise HubFileError(f"{path}: cannot be read ({exc}); re-run invoke setup") from None


def user_entry(hub: HubFile, username: str) -> dict[str, Any] | None:
    """What the hub knows of a user: their roster entry; else, when the hub is open to all
    (OPEN_TO_ALL), a newcomer's (DEFAULT_GROUPS, their limits and image, volume and container
    from the `newcomers` templates, `newcomer` True); else None. A name that could not be on
    the roster (names.name_problem) is never anyone."""
    found = hub.get("users").get(username)
    if found is not None:
        return {**found, "newcomer": False}
    if not hub.get("auth.open_to_all") or names.name_problem(username):
        return None
    template = hub.get("newcomers")
    return {
        "admin": False,
        "groups": list(template["groups"]),
        "limits": dict(template["limits"]),
        "image": template["image"],
        "volume": template["volume"].replace(NAME_SLOT, username),
        "container": template["container"].replace(NAME_SLOT, username),
        "newcomer": True,
    }


def mounts(
    hub: HubFile, username: str, extra_groups: tuple[str, ...] = ()
) -> dict[str, dict[str, str]]:
    """The volumes (or host folders) a user's container mounts: source -> {bind, mode}. The home,
    one folder per group (also `extra_groups`, those the sign-in provider gave: GROUPS_CLAIM), the
    shared data (read-only but for admins) and, for admins when the hub
    says so, every other user's home under users/. Used by the hub at each spawn and by the host
    to see which running servers are out of date."""
    users = hub.get("users")
    user = user_entry(hub, username)
    if user is None:
        raise HubFileError(f"{username!r} is not on the roster and the hub is not open to all")
    volumes = {user["volume"]: {"bind": HOME, "mode": "rw"}}
    known = hub.get("groups")
    for group in [*user["groups"], *sorted(set(extra_groups) - set(user["groups"]))]:
        if group not in known:
            continue
        volumes[known[group]["volume"]] = {"bind": f"{HOME}/{group}", "mode": "rw"}
    if hub.get("shared_data"):
        mode = "rw" if user["admin"] else "ro"
        volumes[hub.get("shared_data")] = {"bind": f"{HOME}/{SHARED_FOLDER}", "mode": mode}
    if user["admin"] and hub.get("admin_sees_users"):
        for other, entry in sorted(users.items()):
            if other != username:
                volumes[entry["volume"]] = {"bind": f"{HOME}/{USERS_FOLDER}/{other}", "mode": "rw"}
    return volumes
