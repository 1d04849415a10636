"""Rendering: from validated settings and roster to the files and text others read.

- `hub_file`: the JSON the hub and its Docker socket proxy read (users, admin flags, groups,
  password hashes, limits, images, Docker object names, what the proxy allows). Deterministic (sorted keys) so that "up to date" is a plain comparison and
  an unchanged roster never rewrites the file.
- `nginx_location`: the `location /<HUB_NAME>/` block for a host's existing nginx, from the template
  in `nginx/location.conf.template`.
"""

from __future__ import annotations

import json
import re

from . import acme, hubfile, names
from .credentials import Credential
from .inputs.roster import Limits, Roster, User
from .inputs.settings import Settings
from .paths import Paths


def hub_settings(settings: Settings) -> dict:
    """The hub file's settings: everything but users and groups, which the hub re-reads live."""
    hub = settings.hub_name
    return {
        "format": hubfile.FORMAT,
        "hub_name": hub,
        "hub_container": names.hub_container(hub),
        "base_url": settings.base_url,
        "public_url": settings.public_url,
        "subdomain_host": settings.subdomain_host,
        "db": settings.hub_db,
        "db_host": names.db_container(hub),
        "notebook_image": settings.notebook_image,
        "network": names.network(hub),
        # On a swarm, students' servers are services with their folders in the shared storage.
        "engine": settings.engine,
        "swarm_storage": settings.swarm_storage,
        "limits": {
            "mem_limit": settings.mem_limit,
            "cpu_limit": settings.cpu_limit,
            "pids_limit": settings.pids_limit,
        },
        "cull_idle_timeout": settings.cull_idle_timeout,
        "cull_busy": settings.cull_busy,
        "shared_data": settings.shared_data,
        "admin_sees_users": settings.admin_sees_users,
        "login_page": dict(zip(("title", "note"), settings.login_page, strict=True)),
        "auth": {
            "authenticator": settings.authenticator,
            "open_to_all": settings.open_to_all,
            "signup": settings.signup,
            "password_min_length": settings.password_min_length,
            "login_attempts": settings.login_attempts,
            "lockout": settings.lockout,
            "oidc_issuer": settings.oidc_issuer,
            "oidc_endpoints": {
                "authorize": settings.oidc_authorize_url,
                "token": settings.oidc_token_url,
                "userinfo": settings.oidc_userinfo_url,
            },
            "client_id": settings.oauth_client_id,
            "callback_url": settings.public_url + "hub/oauth_callback",
            "username_claim": settings.username_claim,
            "allowed_domains": list(settings.allowed_domains),
            "groups_claim": settings.groups_claim,
        },
    }


def folders_store(settings: Settings) -> str:
    """On a swarm, where the hub's homes and group folders are: `<SWARM_STORAGE>/<HUB_NAME>`,
    every node's same path (hub/classhub_hub/services.py's `folder`); "" on one server."""
    if settings.engine != "swarm":
        return ""
    return hubfile.swarm_folders(settings.swarm_storage, settings.hub_name)


def user_entry(settings: Settings, roster: Roster, user: User, password_hash: str) -> dict:
    """A user's entry in the hub file (`user` may be one the roster does not list, such as a
    rehearsal's temporary student: the hub's limits and image, no groups)."""
    hub = settings.hub_name
    default = Limits(mem=settings.mem_limit, cpu=settings.cpu_limit)
    return {
        "admin": user.admin,
        "groups": list(user.groups),
        "limits": _limits(roster.limits_for(user, default)),
        "image": roster.image_for(user, settings.notebook_image),
        "password_hash": password_hash,
        "volume": names.user_volume(hub, user.name),
        "container": names.user_container(hub, user.name),
    }


def dump(data: dict, shown: str) -> str:
    """The hub file's text for `data`, refused (HubFileError) when the hub could not read it."""
    hubfile.HubFile(data, shown)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def hub_file(settings: Settings, roster: Roster, creds: dict[str, Credential]) -> str:
    """The hub file's text. Every roster user must have credentials."""
    hub = settings.hub_name
    default = Limits(mem=settings.mem_limit, cpu=settings.cpu_limit)
    users = {user.name: user_entry(settings, roster, user, creds[user.name].hash)
             for user in roster.users}  # fmt: skip
    opened = dict(roster.group_egress)
    groups = {
        group: {
            "members": list(members),
            "volume": names.group_volume(hub, group),
            "egress": egress_targets(opened.get(group, ())),
        }
        for group, members in roster.groups().items()
    }
    # A person not on the roster, let in with OPEN_TO_ALL: DEFAULT_GROUPS, and what follows from
    # them; the hub puts the name into the two templates.
    newcomer = User(name="", admin=False, groups=settings.default_groups, line=None)
    newcomers = {
        "groups": list(newcomer.groups),
        "limits": _limits(roster.limits_for(newcomer, default)),
        "image": roster.image_for(newcomer, settings.notebook_image),
        "volume": names.user_volume(hub, hubfile.NAME_SLOT),
        "container": names.user_container(hub, hubfile.NAME_SLOT),
    }
    # What the Docker socket proxy allows (it re-reads this file: no restart when they change).
    socket_proxy = {
        "images": sorted({settings.notebook_image, *roster.image_refs()}),
        # A newcomer's home, made in the store by the proxy: size-limited in DISK_STORE, or on
        # a swarm a plain folder (limit 0) in the shared storage.
        "disk_store": folders_store(settings) or settings.disk_store,
        "disk_limit": 0 if folders_store(settings) else settings.disk_limit,
    }
    # What the firewall lets students reach past its egress policy (each group's is with the
    # group); the exams it reads from their own file (state/exams.json).
    firewall = {"egress": egress_targets(settings.egress_allow)}
    data = {**hub_settings(settings), "users": users, "groups": groups, "newcomers": newcomers,
            "socket_proxy": socket_proxy, "firewall": firewall}  # fmt: skip
    return dump(data, "the rendered hub file")


def egress_targets(targets) -> list[dict]:
    """EGRESS_ALLOW's and egress='s targets as the hub file (and the swarm's firewall) lists them."""
    return [{"network": t.network, "port": t.port} for t in targets]


def _limits(limits: Limits) -> dict:
    return {"mem_limit": limits.mem, "cpu_limit": limits.cpu}


_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")


def nginx_location(paths: Paths, settings: Settings) -> str:
    return subdomain_note(settings) + location_block(paths, settings.hub_name, settings.upstream)


def subdomain_note(settings: Settings) -> str:
    """With USER_SUBDOMAINS, what a host's nginx, its certificate and DNS need (comment lines)."""
    if not settings.user_subdomains:
        return ""
    host = settings.public_host
    return (
        f"# USER_SUBDOMAINS=true: every user's server is at NAME.{host}, so the server {{ }} this\n"
        f"# goes in answers for both names (server_name {host} *.{host};), its certificate names\n"
        f"# both ({host} and *.{host}), and a DNS record *.{host} points at this server.\n"
    )


def location_block(paths: Paths, hub: str, upstream: str) -> str:
    template = (paths.nginx_dir / "location.conf.template").read_text(encoding="utf-8")
    values = {"HUB_NAME": hub, "UPSTREAM": upstream}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def nginx_server(paths: Paths, hubs: list[tuple[str, str]]) -> str:
    """One `server` block routing each (hub, upstream) path, for `invoke hubs`."""
    blocks = "\n".join(
        "    " + location_block(paths, hub, upstream).rstrip("\n").replace("\n", "\n    ")
        for hub, upstream in hubs
    )
    return (
        "# classhub: every hub on this host, each at /HUB_NAME/. Add TLS (listen 443 ssl, your\n"
        "# certificate) for students outside; then: nginx -t && nginx -s reload\n"
        "server {\n    listen 80;\n    server_name _;\n" + blocks + "\n}\n"
    )


def nginx_site(
    paths: Paths, settings: Settings, upstream: str, cert: str, key: str,
    challenges: str | None = None,
) -> str:  # fmt: skip
    """The whole front door for one hub: an HTTP server that redirects, and the HTTPS server with
    TLS 1.2+, HSTS, the login rate limit and the hub's location block (`invoke nginx --server`,
    and inside the bundled nginx's configuration). With `challenges`, the HTTP server also serves
    an ACME CA's HTTP-01 files from that folder's .well-known/acme-challenge/."""
    hub = settings.hub_name
    location = location_block(paths, hub, upstream)
    location = "\n".join(line for line in location.splitlines() if not line.startswith("#"))
    values = {
        "HUB_NAME": hub,
        "ZONE": hub.replace("-", "_"),  # nginx variable names take no '-'
        "RATE": str(settings.login_rate_limit),
        "BURST": str(settings.login_rate_limit - 1),  # the first attempt, then this many more
        "HTTP_PORT": str(settings.http_port),
        "HTTPS_PORT": str(settings.https_port),
        "REDIRECT_PORT": "" if settings.https_port == 443 else f":{settings.https_port}",
        "CERT": cert,
        "KEY": key,
        "UPSTREAM": upstream,
        "LOCATION": _indent(location),
        "CHALLENGE": ""
        if challenges is None
        else (
            "    # The ACME CA's HTTP-01 challenge files (certbot --webroot), served as they are.\n"
            "    location /.well-known/acme-challenge/ {\n"
            f"        root {challenges};\n"
            "        default_type text/plain;\n"
            "    }\n"
        ),
    }
    template = (paths.nginx_dir / "site.conf.template").read_text(encoding="utf-8")
    return subdomain_note(settings) + _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


# The bundled nginx's pair, in the folder the renewer replaces it in (ACME=true; acme.py).
NGINX_CERT_IN_CONTAINER = f"{acme.IN_SERVED}/cert.pem"
NGINX_KEY_IN_CONTAINER = f"{acme.IN_SERVED}/key.pem"


def nginx_bundled(paths: Paths, settings: Settings, upstream: str) -> str:
    """The bundled nginx's nginx.conf (PROXY=nginx): the site, with the certificate and key where
    the container mounts them and the hub's own address as the upstream."""
    site = nginx_site(paths, settings, upstream, NGINX_CERT_IN_CONTAINER, NGINX_KEY_IN_CONTAINER,
                      acme.IN_WEBROOT if settings.acme else None)  # fmt: skip
    values = {
        "HUB_NAME": settings.hub_name,
        "SITE": "    " + site.rstrip("\n").replace("\n", "\n    "),
    }
    template = (paths.nginx_dir / "bundled.conf.template").read_text(encoding="utf-8")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())
