"""The settings model: what `.env` (and the environment, which overrides it) may say, and its checks.

Rules:
- `FIELDS` is the one list of settings: key, attribute, default and parser. Defaults live here
  alone; `.env.example` documents each key with its default for people, and tests keep it and the
  table in docs/settings.md equal to this list.
- `load_settings` never stops at the first mistake: it returns every problem, each naming the file
  and line (or the environment) and the key, what is wrong, and the accepted form.
- `Settings` is frozen and holds parsed values (bytes, seconds, Paths); nothing downstream re-parses.
"""

from __future__ import annotations

import difflib
import io
import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv.parser import parse_stream

from .. import hubfile, names
from ..errors import Problem, clipped, quoted
from . import parsers
from .parsers import Context, Invalid


@dataclass(frozen=True)
class Field:
    key: str
    attr: str
    default: str
    parse: Callable[[str, Context], Any]


@dataclass(frozen=True)
class Settings:
    hub_name: str
    port: int
    bind_address: str
    public_url: str  # always filled: derived from BIND_ADDRESS, PORT and HUB_NAME when not set
    user_subdomains: bool  # every user's server on an origin of its own: NAME.<PUBLIC_URL's host>
    admin_user: str
    hub_db: str
    notebook_image: str  # always filled: this hub's own (names.notebook_image) when not set
    base_image: str
    build_ca_bundle: Path | None  # the CA file builds trust (the host's store by default)
    mem_limit: int  # bytes
    cpu_limit: float  # cores
    pids_limit: int  # processes and threads in one user container
    shared_data: str  # "" (none), an absolute host folder, or a Docker volume's name
    disk_store: str  # "" (homes in Docker's own storage, no size limits) or a btrfs folder
    disk_limit: int  # bytes: each home's size limit (enforced with DISK_STORE)
    group_disk_limit: int  # bytes: each group folder's
    egress_allow: tuple[parsers.EgressTarget, ...]  # what students reach past the egress policy
    admin_sees_users: bool
    cull_busy: bool  # cull servers whose kernels are computing, like idle ones
    cull_idle_timeout: int  # seconds; 0 never culls
    backup_dir: Path  # where invoke backup writes (absolute: relative values are the checkout's)
    proxy: str  # "none" (publish the hub on BIND_ADDRESS:PORT) or "nginx" (the bundled front door)
    https_port: int  # the bundled nginx's ports, on every interface of the host
    http_port: int
    tls_cert: Path | None  # PEM files for the bundled nginx; None: a generated self-signed pair
    tls_key: Path | None
    acme: bool  # the bundled nginx's certificate comes from an ACME CA, renewed by itself
    acme_directory: str  # the ACME CA's directory URL (Let's Encrypt's by default)
    acme_email: str  # "" or the address the CA writes to about the account
    acme_challenge: str  # "http-01" (through the bundled nginx) or "dns-01" (RFC 2136)
    acme_ca_bundle: Path | None  # the root the ACME server's HTTPS is checked against
    acme_dns_wait: int  # seconds from a DNS-01 record's update to the CA's look
    login_rate_limit: int  # login attempts per minute from one address, at nginx
    authenticator: str  # how people sign in: "roster", "native", "oidc" or "github"
    hub_title: str  # the login page's heading ("": HUB_NAME)
    login_note: str  # the login page's line on where passwords come from ("": LOGIN_NOTES)
    open_to_all: bool  # anyone the authenticator accepts gets in, not only roster names
    default_groups: tuple[str, ...]  # the groups of a person not on the roster (open_to_all)
    signup: bool  # native: the sign-up page is open
    password_min_length: int  # native: for passwords people choose
    login_attempts: int  # native: failed logins before a name is locked out; 0 never locks
    lockout: int  # native: seconds a locked-out name waits
    oidc_issuer: str  # oidc: the provider's issuer URL (its endpoints come from discovery)
    engine: str  # "docker" (one server) or "swarm" (students' servers on the swarm's nodes)
    swarm_storage: str  # "" or the shared filesystem's folder, at this path on every swarm node
    swarm_address: str  # "" (Docker picks) or the address other servers reach this one at
    swarm_registry: str  # "" (images loaded into nodes over SSH) or a site's registry, host[:port]
    node_ssh_key: Path | None  # the private key add-node's SSH uses (None: ssh's own choice)
    oidc_authorize_url: str  # oidc without discovery: all three endpoints, or none
    oidc_token_url: str
    oidc_userinfo_url: str
    oauth_client_id: str  # oidc, github: the id the provider gave this hub
    username_claim: (
        str  # oidc, github: the claim a roster name comes from ("": email, github login)
    )
    allowed_domains: tuple[str, ...]  # e-mail domains whose addresses may sign in ("" any)
    groups_claim: str  # oidc: the claim listing a person's groups ("" : groups from userlist only)
    # Where each key's value came from: "default", ".env:LINE", "environment".
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def base_url(self) -> str:
        """The path JupyterHub serves under."""
        return f"/{self.hub_name}/"

    @property
    def login_page(self) -> tuple[str, str]:
        """The login page's heading and its line on where passwords come from."""
        return self.hub_title or self.hub_name, self.login_note or LOGIN_NOTES[self.authenticator]

    @property
    def public_host(self) -> str:
        """The host name (or address) in PUBLIC_URL: where students go, and with USER_SUBDOMAINS
        the domain their servers' hosts are under."""
        return urlsplit(self.public_url).hostname or ""

    @property
    def subdomain_host(self) -> str:
        """With USER_SUBDOMAINS, PUBLIC_URL's scheme, host and port (JupyterHub's
        `subdomain_host`: user servers are at NAME.<host>); else ""."""
        if not self.user_subdomains:
            return ""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def upstream(self) -> str:
        """Where a proxy on this host reaches the hub's published port."""
        addr = ipaddress.ip_address(self.bind_address)
        if addr.is_unspecified:
            addr = ipaddress.ip_address("::1" if addr.version == 6 else "127.0.0.1")
        host = f"[{addr}]" if addr.version == 6 else str(addr)
        return f"{host}:{self.port}"


# Parsers. Each takes the raw text and returns the parsed value or raises Invalid (those the
# roster shares are in parsers.py).
def _hub_name(raw: str, _: Context) -> str:
    problem = names.hub_name_problem(raw)
    if problem:
        raise Invalid(problem, names.HUB_NAME_RULE + ", e.g. HUB_NAME=math101")
    return raw


def _port(raw: str, _: Context) -> int:
    fix = "use a whole number from 1 to 65535, e.g. PORT=8000"
    value = parsers.whole_number(raw)
    if value is None:
        raise Invalid("is not a port number", fix)
    if not 1 <= value <= 65535:
        raise Invalid("is out of range", fix)
    return value


def _bind_address(raw: str, _: Context) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise Invalid(
            "is not an IP address",
            "use 127.0.0.1 (only this server, e.g. its nginx, reaches the hub) or 0.0.0.0 "
            "(every network interface)",
        ) from None


def _public_url(raw: str, _: Context) -> str:
    # Checked against HUB_NAME once both are known (see _cross_checks); here only the form.
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(
            "is not an http(s) URL",
            "write the address students open, e.g. PUBLIC_URL=https://jupyter.example.edu/hub/, "
            "or leave it empty",
        )
    return raw if raw.endswith("/") else raw + "/"


def _user_name(raw: str, _: Context) -> str:
    value = raw.lower()
    problem = names.name_problem(value)
    if problem:
        raise Invalid(problem, names.NAME_RULE + ", e.g. ADMIN_USER=hub-admin")
    return value


def _hub_db(raw: str, _: Context) -> str:
    value = raw.lower()
    if value not in ("sqlite", "postgres"):
        raise Invalid("is not a known database", "use sqlite or postgres")
    return value


def _notebook_image(raw: str, ctx: Context) -> str:
    """Empty: this hub's own (filled in once HUB_NAME is known), else the name given."""
    return raw and parsers.image(f"NOTEBOOK_IMAGE={names.notebook_image('physics')}")(raw, ctx)


def _ca_bundle(raw: str, ctx: Context) -> Path | None:
    """host (or empty): the host's own CA store, when it has one; none: no extra CA; else a file."""
    if raw.lower() == "none":
        return None
    if raw.lower() in ("", "host"):
        return next((store for store in ctx.ca_stores if store.is_file()), None)
    fix = (
        "name a PEM file of CA certificates, e.g. BUILD_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt, "
        "or write host (this host's own CA store) or none"
    )
    return _pem_file(raw, ctx, "certificate", "-----BEGIN CERTIFICATE-----", fix)


def _pem_file(raw: str, ctx: Context, kind: str, marker: str, fix: str) -> Path:
    """A PEM file named in .env (relative to the checkout) that exists, reads and holds `marker`."""
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else ctx.root / path
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise Invalid(f"names {clipped(str(path))}, which does not exist", fix) from None
    except OSError as exc:
        raise Invalid(
            f"names {clipped(str(path))}, which cannot be read ({exc.strerror})", fix
        ) from None
    if marker not in text:
        raise Invalid(f"names {clipped(str(path))}, which holds no PEM {kind}", fix)
    return path


_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def _shared_data(raw: str, ctx: Context) -> str:
    if not raw:
        return ""
    if raw.startswith("/"):
        path = Path(raw)
        if not _is_dir(path):
            raise Invalid(
                "is not a folder on this server",
                "create the folder (owned by 1000:100 so admins can write to it), or name a "
                "Docker volume instead, e.g. SHARED_DATA=course-data",
            )
        return str(path)
    if not _VOLUME_NAME.fullmatch(raw):
        raise Invalid(
            "is neither an absolute folder nor a Docker volume name",
            "write a folder such as /srv/course-data, or a volume name such as course-data",
        )
    return raw


def _disk_store(raw: str, _: Context) -> str:
    if not raw:
        return ""
    fix = (
        "name a folder on a btrfs filesystem with quotas enabled, e.g. "
        "DISK_STORE=/srv/classhub-disks (docs/disk-limits.md shows how to make one), or leave "
        "DISK_STORE empty"
    )
    path = Path(raw)
    if not path.is_absolute() or not _is_dir(path):
        raise Invalid("is not a folder on this server", fix)
    kind, device = mount_of(path)
    if kind != "btrfs":
        raise Invalid(
            f"is on a filesystem of type {kind or 'unknown'}, which cannot limit a folder's size "
            "(btrfs can)",
            fix,
        )
    if btrfs_quotas(device) is False:
        raise Invalid(
            "is on a btrfs filesystem whose quotas are off, so no size limit would hold",
            f"turn them on: btrfs quota enable {path}",
        )
    return str(path.resolve())


def mount_of(path: Path) -> tuple[str | None, str]:
    """(filesystem type, device) of the mount `path` is on: its longest mount point in
    /proc/self/mounts; (None, "") when unknown."""
    target = str(path.resolve())
    best: tuple[int, str | None, str] = (-1, None, "")
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        where = fields[1].replace("\\040", " ")
        inside = target == where or target.startswith(where.rstrip("/") + "/")
        if inside and len(where) >= best[0]:
            best = (len(where), fields[2], fields[0])
    return best[1], best[2]


def btrfs_quotas(device: str) -> bool | None:
    """Whether the btrfs filesystem on `device` has quotas on (the kernel lists its quota groups
    in /sys/fs/btrfs/UUID/qgroups only then); None when the kernel does not say."""
    found = list(Path("/sys/fs/btrfs").glob(f"*/devices/{Path(device).name}"))
    if not device or not found:
        return None
    return (found[0].parent.parent / "qgroups").is_dir()


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long for the filesystem, say
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _backup_dir(raw: str, ctx: Context) -> Path:
    if not raw:
        raise Invalid(
            "is empty", "name a folder, e.g. BACKUP_DIR=backups or BACKUP_DIR=/srv/backups"
        )
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else ctx.root / path
    if _exists(path) and not _is_dir(path):
        raise Invalid(
            f"names {clipped(str(path))}, which is not a folder",
            "name a folder, e.g. BACKUP_DIR=backups",
        )
    return path


def _engine(raw: str, _: Context) -> str:
    value = raw.lower() or "docker"
    if value not in ENGINES:
        raise Invalid(
            "is not a known engine",
            "use docker (everything on this server) or swarm (students' servers on the nodes "
            "invoke add-node joins; docs/swarm.md)",
        )
    return value


ENGINES = ("docker", "swarm")


def _swarm_storage(raw: str, _: Context) -> str:
    if not raw:
        return ""
    path = Path(raw)
    if not path.is_absolute() or not _is_dir(path):
        raise Invalid(
            "is not a folder on this server",
            "mount the shared filesystem (NFS) at the same path on this server and every node, "
            "e.g. SWARM_STORAGE=/srv/classhub-shared (docs/swarm.md shows how), or leave it empty",
        )
    return str(path.resolve())


def _swarm_address(raw: str, _: Context) -> str:
    if not raw:
        return ""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise Invalid(
            "is not an IP address",
            "write the address the other servers reach this one at, e.g. SWARM_ADDRESS=10.0.0.5, "
            "or leave it empty (Docker picks it when this server has one network interface)",
        ) from None


_REGISTRY = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9._-]+)*", re.ASCII)


def _swarm_registry(raw: str, _: Context) -> str:
    if not raw:
        return ""
    if not _REGISTRY.fullmatch(raw.lower().rstrip("/")):
        raise Invalid(
            f"has {clipped(raw)}, which is not a registry's host, host:port or host:port/path",
            "name your site's registry as Docker does, without https://, e.g. "
            "SWARM_REGISTRY=registry.uni.edu:5000, or leave it empty (images go to the nodes "
            "over SSH)",
        )
    return raw.lower().rstrip("/")


def _ssh_key(raw: str, ctx: Context) -> Path | None:
    if not raw:
        return None
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else ctx.root / path
    if not path.is_file():
        raise Invalid(
            f"names {clipped(str(path))}, which is not a file",
            "name the private key that logs in to the nodes, e.g. NODE_SSH_KEY=/root/.ssh/id_ed25519, "
            "or leave it empty (ssh then uses its own settings and agent)",
        )
    return path


def _proxy(raw: str, _: Context) -> str:
    value = raw.lower() or "none"
    if value not in ("none", "nginx"):
        raise Invalid(
            "is not a known front door",
            "use none (your own nginx in front of BIND_ADDRESS:PORT; see invoke nginx) or nginx "
            "(classhub runs one with TLS)",
        )
    return value


def _pem(kind: str, marker: str) -> Callable[[str, Context], Path | None]:
    def parse(raw: str, ctx: Context) -> Path | None:
        if not raw:
            return None
        example = "fullchain" if kind == "certificate" else "privkey"
        fix = (f"name the PEM file of your {kind}, e.g. /etc/letsencrypt/live/NAME/{example}.pem, "
               "or leave it empty for a self-signed pair")  # fmt: skip
        return _pem_file(raw, ctx, kind, marker, fix)

    return parse


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


def _acme_directory(raw: str, _: Context) -> str:
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in raw):
        raise Invalid(
            "is not an ACME directory's https:// URL",
            f"use the URL your CA gives, e.g. Let's Encrypt's {LETS_ENCRYPT} or its staging "
            f"{LETS_ENCRYPT_STAGING}",
        )
    return raw


def _email(raw: str, _: Context) -> str:
    if raw and not re.fullmatch(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+", raw):
        raise Invalid(
            "is not an e-mail address",
            "write one, e.g. ACME_EMAIL=it@example.edu, or leave it empty",
        )
    return raw


def _challenge(raw: str, _: Context) -> str:
    value = raw.lower()
    if value not in ("http-01", "dns-01"):
        raise Invalid(
            "is not a challenge classhub answers",
            "use http-01 (the CA fetches a file through the bundled nginx on HTTP_PORT) or dns-01 "
            "(a TXT record through RFC 2136 updates, secrets/acme-rfc2136.ini; needed for "
            "USER_SUBDOMAINS' wildcard)",
        )
    return value


def _acme_ca_bundle(raw: str, ctx: Context) -> Path | None:
    if not raw:
        return None
    fix = ("name the PEM file of the CA that signed your ACME server's HTTPS certificate (a campus "
           "CA's root), or leave it empty for a public CA such as Let's Encrypt")  # fmt: skip
    return _pem_file(raw, ctx, "certificate", "-----BEGIN CERTIFICATE-----", fix)


def _rate(raw: str, _: Context) -> int:
    value = parsers.whole_number(raw)
    if value is None or not 1 <= value <= 10_000:
        raise Invalid("is not a number of attempts", "use a whole number, e.g. LOGIN_RATE_LIMIT=10")
    return value


AUTHENTICATORS = {
    "roster": "the roster's generated passwords (invoke login prints them)",
    "native": "people sign up and pick their own password; an admin approves newcomers",
    "oidc": "single sign-on with an OpenID Connect provider (OIDC_ISSUER, OAUTH_CLIENT_ID)",
    "github": "sign in with GitHub (OAUTH_CLIENT_ID)",
}


def _authenticator(raw: str, _: Context) -> str:
    value = raw.strip().lower() or "roster"
    if value not in AUTHENTICATORS:
        known = "; ".join(f"{k}: {v}" for k, v in AUTHENTICATORS.items())
        raise Invalid("is not a known way to sign in", f"use one of {known}")
    return value


def _group_list(raw: str, _: Context) -> tuple[str, ...]:
    found = []
    for word in raw.replace(",", " ").split():
        value = word.lower()
        problem = names.name_problem(value)
        if problem:
            raise Invalid(f"names a group {quoted(word)} that {problem}",
                          names.NAME_RULE + ", e.g. DEFAULT_GROUPS=guests")  # fmt: skip
        if value not in found:
            found.append(value)
    return tuple(found)


def _issuer(raw: str, _: Context) -> str:
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise Invalid("is not an issuer URL",
                      "write the issuer your provider names, e.g. OIDC_ISSUER=https://login."
                      "microsoftonline.com/TENANT/v2.0 or https://keycloak.uni.edu/realms/NAME")  # fmt: skip
    return raw.rstrip("/")


# oidc without discovery: the three endpoints a provider's documentation lists, all or none.
ENDPOINT_KEYS = {"authorize": "OIDC_AUTHORIZE_URL", "token": "OIDC_TOKEN_URL",
                 "userinfo": "OIDC_USERINFO_URL"}  # fmt: skip


def _endpoint(key: str) -> Callable[[str, Context], str]:
    def parse(raw: str, _: Context) -> str:
        parts = urlsplit(raw)
        if raw and (parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment):
            raise Invalid("is not an endpoint URL",
                          f"write the full URL your provider's documentation gives, e.g. {key}="
                          f"https://idp.uni.edu/oauth2/{key[5:-4].lower()}")  # fmt: skip
        return raw

    return parse


# What the login page says of passwords unless LOGIN_NOTE says otherwise, by AUTHENTICATOR.
LOGIN_NOTES = {
    "roster": "Your instructor gives you your user name and password.",
    "native": "Sign in with the password you chose. New here? Sign up first; an admin lets you in.",
    "oidc": "Sign in with your school account.",
    "github": "Sign in with your GitHub account.",
}


def _line(key: str, longest: int, example: str) -> Callable[[str, Context], str]:
    """One line of text for a page, at most `longest` characters."""

    def parse(raw: str, _: Context) -> str:
        if len(raw) > longest:
            raise Invalid(
                f"is {len(raw)} characters long", f"at most {longest}, e.g. {key}={example}"
            )
        if any(ord(ch) < 32 for ch in raw):
            raise Invalid(
                "holds a control character", f"write one plain line, e.g. {key}={example}"
            )
        return raw

    return parse


_CLAIM = re.compile(r"[A-Za-z0-9_.:-]+")


def _claim(key: str, example: str) -> Callable[[str, Context], str]:
    def parse(raw: str, _: Context) -> str:
        if raw and not _CLAIM.fullmatch(raw):
            raise Invalid("is not a claim name", f"e.g. {key}={example}")
        return raw

    return parse


def _domains(raw: str, _: Context) -> tuple[str, ...]:
    found = []
    for word in raw.replace(",", " ").split():
        value = word.lower().lstrip("@")
        if not re.fullmatch(
            r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+", value
        ):
            raise Invalid(f"names {quoted(word)}, which is not an e-mail domain",
                          "e.g. ALLOWED_DOMAINS=uni.edu (several: separate them with spaces)")  # fmt: skip
        if value not in found:
            found.append(value)
    return tuple(found)


def _client_id(raw: str, _: Context) -> str:
    if raw and not re.fullmatch(r"[!-~]+", raw):
        raise Invalid("is not a client id", "copy the client (application) id the provider shows")
    return raw


def _whole(key: str, low: int, high: int, example: int) -> Callable[[str, Context], int]:
    def parse(raw: str, _: Context) -> int:
        value = parsers.whole_number(raw)
        if value is None or not low <= value <= high:
            raise Invalid(f"is not a whole number from {low} to {high}",
                          f"e.g. {key}={example}")  # fmt: skip
        return value

    return parse


def _bool(raw: str, _: Context) -> bool:
    value = raw.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off", ""):
        return False
    raise Invalid("is not true or false", "write true or false")


PIDS_LIMIT_MIN = 64


def _pids_limit(raw: str, _: Context) -> int:
    fix = "use a whole number of at least 64, e.g. PIDS_LIMIT=1024"
    value = parsers.whole_number(raw)
    if value is None:
        raise Invalid("is not a whole number", fix)
    if value < PIDS_LIMIT_MIN:
        raise Invalid("is too small: JupyterLab and one kernel run about 40 threads", fix)
    return value


def _lockout(raw: str, ctx: Context) -> int:
    try:
        return parsers.duration(raw, ctx)
    except Invalid as bad:
        raise Invalid(
            bad.reason, "use seconds or a number with s, m, h or d, e.g. LOCKOUT=10m"
        ) from None


FIELDS: tuple[Field, ...] = (
    Field("HUB_NAME", "hub_name", "hub", _hub_name),
    Field("PORT", "port", "8000", _port),
    Field("BIND_ADDRESS", "bind_address", "127.0.0.1", _bind_address),
    Field("PUBLIC_URL", "public_url", "", _public_url),
    Field("USER_SUBDOMAINS", "user_subdomains", "false", _bool),
    Field("ADMIN_USER", "admin_user", "hub-admin", _user_name),
    Field("HUB_DB", "hub_db", "sqlite", _hub_db),
    Field("NOTEBOOK_IMAGE", "notebook_image", "", _notebook_image),
    Field("BASE_IMAGE", "base_image", "debian:bookworm-slim", parsers.image("BASE_IMAGE=debian:bookworm-slim")),
    Field("BUILD_CA_BUNDLE", "build_ca_bundle", "host", _ca_bundle),
    Field("MEM_LIMIT", "mem_limit", "2G", parsers.mem_limit),
    Field("CPU_LIMIT", "cpu_limit", "1", parsers.cpu_limit),
    Field("PIDS_LIMIT", "pids_limit", "1024", _pids_limit),
    Field("SHARED_DATA", "shared_data", "", _shared_data),
    Field("DISK_STORE", "disk_store", "", _disk_store),
    Field("DISK_LIMIT", "disk_limit", "5G", parsers.disk_size("DISK_LIMIT", "5G")),
    Field("GROUP_DISK_LIMIT", "group_disk_limit", "10G", parsers.disk_size("GROUP_DISK_LIMIT", "10G")),
    Field("EGRESS_ALLOW", "egress_allow", "", parsers.egress_targets("EGRESS_ALLOW", "10.1.2.3:5432")),
    Field("ADMIN_SEES_USERS", "admin_sees_users", "false", _bool),
    Field("CULL_IDLE_TIMEOUT", "cull_idle_timeout", "1h", parsers.duration),
    Field("CULL_BUSY", "cull_busy", "false", _bool),
    Field("BACKUP_DIR", "backup_dir", "backups", _backup_dir),
    Field("PROXY", "proxy", "none", _proxy),
    Field("HTTPS_PORT", "https_port", "443", _port),
    Field("HTTP_PORT", "http_port", "80", _port),
    Field("TLS_CERT", "tls_cert", "", _pem("certificate", "-----BEGIN CERTIFICATE-----")),
    Field("TLS_KEY", "tls_key", "", _pem("private key", "PRIVATE KEY-----")),
    Field("ACME", "acme", "false", _bool),
    Field("ACME_DIRECTORY", "acme_directory", LETS_ENCRYPT, _acme_directory),
    Field("ACME_EMAIL", "acme_email", "", _email),
    Field("ACME_CHALLENGE", "acme_challenge", "http-01", _challenge),
    Field("ACME_CA_BUNDLE", "acme_ca_bundle", "", _acme_ca_bundle),
    Field("ACME_DNS_WAIT", "acme_dns_wait", "60s", parsers.duration),
    Field("LOGIN_RATE_LIMIT", "login_rate_limit", "10", _rate),
    Field("AUTHENTICATOR", "authenticator", "roster", _authenticator),
    Field("HUB_TITLE", "hub_title", "", _line("HUB_TITLE", 80, '"Physics 101"')),
    Field("LOGIN_NOTE", "login_note", "", _line("LOGIN_NOTE", 300, '"Your password is on the sheet handed out in class."')),
    Field("OPEN_TO_ALL", "open_to_all", "false", _bool),
    Field("DEFAULT_GROUPS", "default_groups", "", _group_list),
    Field("SIGNUP", "signup", "true", _bool),
    Field("PASSWORD_MIN_LENGTH", "password_min_length", "8", _whole("PASSWORD_MIN_LENGTH", 1, 128, 10)),
    Field("LOGIN_ATTEMPTS", "login_attempts", "5", _whole("LOGIN_ATTEMPTS", 0, 1000, 5)),
    Field("LOCKOUT", "lockout", "10m", _lockout),
    Field("OIDC_ISSUER", "oidc_issuer", "", _issuer),
    *(Field(key, f"oidc_{name}_url", "", _endpoint(key)) for name, key in ENDPOINT_KEYS.items()),
    Field("OAUTH_CLIENT_ID", "oauth_client_id", "", _client_id),
    Field("USERNAME_CLAIM", "username_claim", "", _claim("USERNAME_CLAIM", "preferred_username")),
    Field("ALLOWED_DOMAINS", "allowed_domains", "", _domains),
    Field("GROUPS_CLAIM", "groups_claim", "", _claim("GROUPS_CLAIM", "groups")),
    Field("ENGINE", "engine", "docker", _engine),
    Field("SWARM_STORAGE", "swarm_storage", "", _swarm_storage),
    Field("SWARM_ADDRESS", "swarm_address", "", _swarm_address),
    Field("SWARM_REGISTRY", "swarm_registry", "", _swarm_registry),
    Field("NODE_SSH_KEY", "node_ssh_key", "", _ssh_key),
)  # fmt: skip

KEYS = tuple(f.key for f in FIELDS)


@dataclass(frozen=True)
class EnvEntry:
    value: str
    line: int


def read_env_text(text: str, shown: str) -> tuple[dict[str, EnvEntry], list[Problem], list[str]]:
    """Parse `.env` text: the entries by key (the last one wins), problems, warnings."""
    entries: dict[str, EnvEntry] = {}
    problems: list[Problem] = []
    warnings: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            snippet = binding.original.string.strip()
            problems.append(
                Problem(
                    f"{shown}:{line}",
                    f"this line cannot be read ({quoted(snippet)})",
                    "write it as KEY=value, or start it with # to make it a comment",
                )
            )
            continue
        if binding.key is None:
            continue  # blank line or comment
        key, value = binding.key, binding.value or ""
        if key not in KEYS:
            close = difflib.get_close_matches(key.upper(), KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "the known keys are in .env.example"
            warnings.append(f"{shown}:{line}: unknown key {clipped(key)} is ignored; {hint}")
            continue
        if key in entries:
            warnings.append(
                f"{shown}:{line}: {key} is set again (also on line {entries[key].line}); "
                f"line {line} wins"
            )
        entries[key] = EnvEntry(value.strip(), line)
    return entries, problems, warnings


def load_settings(
    env_text: str, shown: str, environ: Mapping[str, str], ctx: Context
) -> tuple[Settings | None, list[Problem], list[str]]:
    """Build `Settings` from `.env` text and the environment (which overrides the file).

    Returns (settings or None when there are problems, problems, warnings).
    """
    entries, problems, warnings = read_env_text(env_text, shown)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for fld in FIELDS:
        if fld.key in environ:
            raw, where = environ[fld.key].strip(), "environment"
        elif fld.key in entries:
            raw, where = entries[fld.key].value, f"{shown}:{entries[fld.key].line}"
        else:
            raw, where = fld.default, "default"
        sources[fld.key] = where
        try:
            values[fld.attr] = fld.parse(raw, ctx)
        except Invalid as bad:
            default = f" (default: {fld.default})" if fld.default else ""
            problems.append(
                Problem(where, f"{fld.key}={clipped(raw)} {bad.reason}", bad.fix + default)
            )
    if problems:
        return None, problems, warnings
    problems += _cross_checks(values, sources)
    if problems:
        return None, problems, warnings
    if not values["public_url"] and values["proxy"] == "nginx":
        port = "" if values["https_port"] == 443 else f":{values['https_port']}"
        values["public_url"] = f"https://{socket.gethostname()}{port}/{values['hub_name']}/"
    elif not values["public_url"]:
        host = values["bind_address"]
        if ipaddress.ip_address(host).is_unspecified:
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        values["public_url"] = f"http://{host}:{values['port']}/{values['hub_name']}/"
    values["notebook_image"] = values["notebook_image"] or names.notebook_image(values["hub_name"])
    return Settings(**values, sources=sources), [], warnings


def _subdomain_problems(values: dict[str, Any], sources: dict[str, str]) -> list[Problem]:
    """USER_SUBDOMAINS needs a PUBLIC_URL whose host is a DNS name: servers are at its subdomains."""
    if not values["user_subdomains"]:
        return []
    example = f"PUBLIC_URL=https://jupyter.example.edu/{values['hub_name']}/"
    url = values["public_url"]
    if not url:
        return [
            Problem(sources["USER_SUBDOMAINS"],
                    "USER_SUBDOMAINS=true needs PUBLIC_URL: every user's server is served at a "
                    "subdomain of its host",
                    f"write the hub's DNS name, e.g. {example} (servers are then at "
                    "https://NAME.jupyter.example.edu/...; a wildcard DNS record "
                    "*.jupyter.example.edu must point at this server), or USER_SUBDOMAINS=false")
        ]  # fmt: skip
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return []
    return [
        Problem(sources["PUBLIC_URL"],
                f"PUBLIC_URL={clipped(url)} names an IP address, which has no subdomains for "
                "USER_SUBDOMAINS=true",
                f"write the hub's DNS name, e.g. {example}, or USER_SUBDOMAINS=false")
    ]  # fmt: skip


def _acme_problems(values: dict[str, Any], sources: dict[str, str]) -> list[Problem]:
    """ACME=true: the bundled nginx, no certificate of the administrator's, a DNS name, and the
    DNS challenge for USER_SUBDOMAINS' wildcard."""
    if not values["acme"]:
        return []
    where = sources["ACME"]
    if values["proxy"] != "nginx":
        return [Problem(where, "ACME=true gets the bundled nginx's certificate, but PROXY is not nginx",
                        "set PROXY=nginx; with your own nginx (PROXY=none) set ACME=false and "
                        "run invoke nginx --server, which prints the certbot lines for it")]  # fmt: skip
    problems = []
    if values["tls_cert"] is not None:
        problems.append(Problem(sources["TLS_CERT"], "TLS_CERT is set, and ACME=true would get "
                                "another certificate", "leave TLS_CERT and TLS_KEY empty with "
                                "ACME=true, or set ACME=false to serve your own"))  # fmt: skip
    host = urlsplit(values["public_url"]).hostname or ""
    try:
        ipaddress.ip_address(host)
        problems.append(Problem(sources["PUBLIC_URL"], f"PUBLIC_URL names an IP address ({host}), "
                                "and ACME CAs issue certificates for DNS names",
                                "write the hub's DNS name in PUBLIC_URL, e.g. "
                                f"PUBLIC_URL=https://jupyter.example.edu/{values['hub_name']}/"))  # fmt: skip
    except ValueError:
        pass
    if values["user_subdomains"] and values["acme_challenge"] != "dns-01":
        problems.append(Problem(sources["ACME_CHALLENGE"], "USER_SUBDOMAINS=true needs a wildcard "
                                "certificate, which ACME CAs issue only through the DNS challenge",
                                "set ACME_CHALLENGE=dns-01 and put your DNS server's RFC 2136 key in "
                                "secrets/acme-rfc2136.ini (docs/nginx-and-tls.md)"))  # fmt: skip
    return problems


def _cross_checks(values: dict[str, Any], sources: dict[str, str]) -> list[Problem]:
    problems = []
    url = values["public_url"]
    if url and urlsplit(url).path != f"/{values['hub_name']}/":
        problems.append(
            Problem(
                sources["PUBLIC_URL"],
                f"PUBLIC_URL={clipped(url)} does not end in /{values['hub_name']}/, the path this hub is served under",
                f"end it with /{values['hub_name']}/ (the path comes from HUB_NAME)",
            )
        )
    problems += _subdomain_problems(values, sources)
    shared, hub = values["shared_data"], values["hub_name"]
    owned = names.made_for(hub, shared) if not shared.startswith("/") else None
    if owned:
        problems.append(
            Problem(sources["SHARED_DATA"],
                    f"SHARED_DATA={clipped(shared)} is {owned} of this hub: every student would get it "
                    "in ~/shared",
                    "name a volume of its own for the course's data, e.g. SHARED_DATA=course-data")
        )  # fmt: skip
    if shared.startswith("/") and Path(shared).resolve() == Path("/"):
        problems.append(
            Problem(sources["SHARED_DATA"],
                    f"SHARED_DATA={clipped(shared)} would give every student this server's whole filesystem",
                    "name the course data's own folder, e.g. SHARED_DATA=/srv/course-data")
        )  # fmt: skip
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        given, missing = (
            ("TLS_CERT", "TLS_KEY") if values["tls_key"] is None else ("TLS_KEY", "TLS_CERT")
        )
        problems.append(
            Problem(sources[given], f"{given} is set but {missing} is not",
                    "set both (your certificate and its key), or neither for a self-signed pair")
        )  # fmt: skip
    problems += _acme_problems(values, sources)
    if values["open_to_all"] and values["authenticator"] == "roster":
        problems.append(
            Problem(sources["OPEN_TO_ALL"],
                    "OPEN_TO_ALL=true lets in people who are not on the roster, but with "
                    "AUTHENTICATOR=roster only roster names have a password",
                    "set AUTHENTICATOR=native (people sign up), or OPEN_TO_ALL=false")
        )  # fmt: skip
    auth = values["authenticator"]
    endpoints = [key for name, key in ENDPOINT_KEYS.items() if values[f"oidc_{name}_url"]]
    if endpoints and len(endpoints) < len(ENDPOINT_KEYS):
        unset = [key for key in ENDPOINT_KEYS.values() if key not in endpoints]
        problems.append(Problem(sources[endpoints[0]],
                                f"{' and '.join(endpoints)} {'is' if len(endpoints) == 1 else 'are'}"
                                f" set but not {' and '.join(unset)}",
                                "set all three endpoints, or none of them and OIDC_ISSUER "
                                "(endpoints from discovery)"))  # fmt: skip
    if auth == "oidc" and not values["oidc_issuer"] and not endpoints:
        problems.append(Problem(sources["OIDC_ISSUER"], "AUTHENTICATOR=oidc needs OIDC_ISSUER",
                                "write the issuer URL your provider shows, e.g. OIDC_ISSUER="
                                "https://keycloak.uni.edu/realms/NAME (or, for a provider "
                                "without discovery, OIDC_AUTHORIZE_URL, OIDC_TOKEN_URL and "
                                "OIDC_USERINFO_URL)"))  # fmt: skip
    if auth in hubfile.SINGLE_SIGN_ON and not values["oauth_client_id"]:
        problems.append(Problem(sources["OAUTH_CLIENT_ID"], f"AUTHENTICATOR={auth} needs OAUTH_CLIENT_ID",
                                "register this hub with the provider (docs/sign-in.md says how) and "
                                "write the client id it gives"))  # fmt: skip
    if values["engine"] == "swarm" and not values["swarm_storage"]:
        problems.append(
            Problem(sources["SWARM_STORAGE"], "ENGINE=swarm needs SWARM_STORAGE",
                    "mount the shared filesystem (NFS) at the same path on this server and every "
                    "node and name it, e.g. SWARM_STORAGE=/srv/classhub-shared (docs/swarm.md)")
        )  # fmt: skip
    front = {values["https_port"]: "HTTPS_PORT", values["http_port"]: "HTTP_PORT"}
    if values["engine"] == "swarm" and values["proxy"] == "nginx" and values["port"] in front:
        problems.append(
            Problem(sources["PORT"], f"PORT is {values['port']}, as {front[values['port']]} is: "
                    "on a swarm the bundled nginx reaches the hub at PORT on this server's "
                    "loopback", "give PORT another port, e.g. PORT=8000")
        )  # fmt: skip
    if values["engine"] == "swarm" and values["disk_store"]:
        problems.append(
            Problem(sources["DISK_STORE"], "DISK_STORE is for one server: on a swarm students' "
                    "folders are in SWARM_STORAGE, without size limits",
                    "leave DISK_STORE empty with ENGINE=swarm")
        )  # fmt: skip
    if values["proxy"] == "nginx" and values["https_port"] == values["http_port"]:
        problems.append(
            Problem(sources["HTTPS_PORT"], f"HTTPS_PORT and HTTP_PORT are both {values['http_port']}",
                    "give them different ports, e.g. 443 and 80")
        )  # fmt: skip
    return problems
