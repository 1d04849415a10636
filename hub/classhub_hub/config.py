"""JupyterHub's configuration, set from the rendered hub file: `apply_config(c, hub, secrets)`.

Pure and set-only: it reads nothing and starts nothing, so tests check it against a plain
`traitlets.config.Config`. What it promises:
- the hub serves under `/<HUB_NAME>/`; with USER_SUBDOMAINS each user's server is served on an
  origin of its own, NAME.<PUBLIC_URL's host> (`subdomain_host`; the proxy routes by host); the
  proxy listens on PROXY_PORT, the hub's API on HUB_API_PORT, reached by user containers at the
  hub container's name on the hub's network;
- people sign in as AUTHENTICATOR says: the roster's passwords (auth.RosterAuthenticator),
  passwords of their own (native.ClasshubNativeAuthenticator) or single sign-on (oauth.py: OIDC
  or GitHub); either way only roster names get in unless the hub is open to all, and admins and
  groups are the roster's (`manage_groups`; with GROUPS_CLAIM also the provider's known groups);
- the login page shows the hub's title and where passwords come from (HUB_TITLE, LOGIN_NOTE;
  templates/pages), every page the title in the browser's tab;
- admins open students' servers only with ADMIN_SEES_USERS (then they are JupyterHub's admins);
  otherwise they hold ADMIN_SCOPES through a role of classhub's (auth.py), and the admin page
  offers no "Access Server" (templates/admin.html);
- every user gets the image, limits and folders the roster gives them, worked out by the host
  into the hub file and read at each spawn (`pre_spawn_hook`): the notebook image or their
  group's, never pulled and never chosen by them; memory, CPU and pids limits; their home at
  /home/jovyan, one folder per group, the shared data and, for admins, the users' homes;
- user containers are hardened: every capability dropped, `no-new-privileges`, Docker's default
  seccomp profile, and no server config read from the user's home (`disable_user_config`); the
  hub reaches Docker only through the socket proxy (`DOCKER_HOST`, classhub_hub/dockerproxy.py),
  which refuses any container made otherwise;
- servers start through `spawner.ClasshubSpawner` (DockerSpawner tuned for a class starting at
  once), on a swarm through `swarmspawner.ClasshubSwarmSpawner` (the same, as services), and the
  spawn page shows its progress after a second;
- user containers are removed on stop (data lives only in volumes), and restarting the hub keeps
  user servers running (`cleanup_servers = False`);
- the idle culler and the host's `classhub` service hold only the scopes they use; activity is
  reported often enough for CULL_IDLE_TIMEOUT, and a busy kernel counts as activity unless
  CULL_BUSY (singleuser/classhub_notebook).
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from urllib.parse import urlsplit

from classhub import hubfile, names

from .roster import LiveRoster

# A class starting at once on a small machine: 50 containers may need minutes to all answer.
START_TIMEOUT = 600
HTTP_TIMEOUT = 300

# The one start option classhub takes (take_user_options) and what it tells the server.
WARM_KERNEL_OPTION = "warm_kernel"
WARM_KERNEL_ENV = "CLASSHUB_WARM_KERNEL"
AUTHENTICATORS = {
    "roster": "classhub_hub.auth.RosterAuthenticator",
    "native": "classhub_hub.native.ClasshubNativeAuthenticator",
    "oidc": "classhub_hub.oauth.ClasshubOIDCAuthenticator",
    "github": "classhub_hub.oauth.ClasshubGitHubAuthenticator",
}
# The claim a roster name comes from when USERNAME_CLAIM is empty.
DEFAULT_CLAIMS = {"oidc": "email", "github": "login"}
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
# Every user container gets these (the Docker socket proxy refuses a container without them).
HARDENING = {**hubfile.HARDENING, "read_only": True, "tmpfs": hubfile.USER_TMPFS}
# What `invoke add-user`, `add-group` and `status` use through the hub's REST API.
CLASSHUB_SCOPES = ["admin:users", "admin:groups", "admin:servers", "list:users", "list:groups"]
# The role of the roster's admins, unless ADMIN_SEES_USERS (auth.py: JupyterHub's own admin role
# cannot be changed, so they do not get it): the admin page, every user and group to look at, and
# starting and stopping servers. Not JupyterHub's `access:servers` (open a student's server),
# `tokens` (make a token as a student, which opens it too), `shares` (share a student's server
# with oneself), nor `admin:users`'s writes (renaming oneself to a student's name gives their
# home at the next start): the roster, not the admin page, says who is who.
# With AUTHENTICATOR=native they also hold `admin:users`, which NativeAuthenticator's approval
# and change-password pages require (and so they can sign in as anyone: SECURITY.md says so).
ADMIN_ROLE = "classhub-admin"
ADMIN_SCOPES = ["admin-ui", "list:users", "read:users", "admin:servers", "list:groups",
                "read:groups", "read:roles", "read:hub", "list:services", "read:services"]  # fmt: skip
# The admin page without the "Access Server" buttons those admins could not use.
ADMIN_TEMPLATES = str(Path(__file__).parent / "templates" / "admin")
# Every page: the hub's title; the login page: its heading and where passwords come from.
PAGE_TEMPLATES = str(Path(__file__).parent / "templates" / "pages")


def read_secrets(folder: str = hubfile.SECRETS_IN_HUB) -> dict[str, str]:
    """The secrets the host mounted (the PostgreSQL password only with HUB_DB=postgres, the OAuth
    client secret only with AUTHENTICATOR=oidc or github)."""
    found = {}
    for name in hubfile.hub_secrets("postgres", "oidc"):
        path = Path(folder) / name
        if name in hubfile.HUB_SECRETS or path.exists():
            found[name] = path.read_text(encoding="utf-8").strip()
    return found


def make_pre_spawn_hook(live: LiveRoster):
    def pre_spawn_hook(spawner) -> None:
        warm = take_user_options(spawner)
        # Read at each spawn, so a roster change reaches the next start without a hub restart.
        hub = live.hub()
        user = hubfile.user_entry(hub, spawner.user.name)
        if user is None:
            from tornado import web

            raise web.HTTPError(403, f"{spawner.user.name} is not on this hub's roster")
        # A newcomer's home (OPEN_TO_ALL) is made by the spawner, labelled as the host makes one.
        spawner.home_to_make = (
            {"name": user["volume"], "labels": names.labels(hub.get("hub_name"), "user")}
            if user["newcomer"] else {}
        )  # fmt: skip
        # With GROUPS_CLAIM the sign-in provider adds groups the roster does not give (oauth.py).
        extra = tuple(g.name for g in spawner.user.groups) if hub.get("auth.groups_claim") else ()
        spawner.volumes = hubfile.mounts(hub, spawner.user.name, extra)
        spawner.extra_groups = list(extra)  # the swarm's spawner works out its folders again
        spawner.image = user["image"]  # the hub's, or that of the user's group with one
        # The user's limits: their own, else their groups' largest, else the hub's (the host
        # worked it out); no swap beyond the memory limit.
        spawner.mem_limit = user["limits"]["mem_limit"]
        spawner.cpu_limit = float(user["limits"]["cpu_limit"])
        spawner.extra_host_config = {
            **spawner.extra_host_config,
            "memswap_limit": user["limits"]["mem_limit"],
        }
        mine = set(user["groups"]) | set(extra)
        others = sorted(set(hub.get("groups")) - mine)  # their folders, if left empty, go
        environment = {**spawner.environment, "CLASSHUB_OTHER_GROUPS": " ".join(others)}
        environment.pop(WARM_KERNEL_ENV, None)  # the spawner outlives this start: only if asked
        if warm:
            environment[WARM_KERNEL_ENV] = "1"
        spawner.environment = environment

    return pre_spawn_hook


def take_user_options(spawner) -> bool:
    """classhub servers take one option, `warm_kernel` (invoke prewarm asks for it: the server
    starts a kernel for its student to take, singleuser/classhub_notebook); returns whether it
    was asked for. Any other option (an image, say) is refused.

    JupyterHub saves a start request's options before the spawner looks at them and reuses them
    for every later start that names none, so they are forgotten here first: a refused option
    would otherwise block that user's server for good, and a warm kernel is for this start only."""
    options = dict(spawner.user_options or {})
    if not options:
        return False
    from tornado import web

    spawner.user_options = {}
    spawner.orm_spawner.user_options = {}
    spawner.db.commit()
    warm = options.pop(WARM_KERNEL_OPTION, False)
    if options or not isinstance(warm, bool):
        asked = ", ".join(sorted(options) or [WARM_KERNEL_OPTION])
        raise web.HTTPError(
            400,
            f"Specifying {asked} is not allowed: each user gets the server the roster gives them",
        )
    return warm


def apply_config(c, hub: hubfile.HubFile, secrets: dict[str, str]) -> None:
    name = hub.get("hub_name")
    base_url = hub.get("base_url")

    c.JupyterHub.bind_url = f"http://0.0.0.0:{hubfile.PROXY_PORT}{base_url}"
    c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{hubfile.HUB_API_PORT}"
    c.JupyterHub.hub_connect_url = f"http://{hub.get('hub_container')}:{hubfile.HUB_API_PORT}"
    c.JupyterHub.db_url = hubfile.db_url(hub, secrets)
    c.JupyterHub.cookie_secret_file = f"{hubfile.SECRETS_IN_HUB}/cookie_secret"
    c.ConfigurableHTTPProxy.auth_token = secrets["proxy_auth_token"]
    c.JupyterHub.cleanup_servers = False
    if hub.get("subdomain_host"):
        c.JupyterHub.subdomain_host = hub.get("subdomain_host")

    auth = hub.get("auth")
    c.JupyterHub.authenticator_class = AUTHENTICATORS[auth["authenticator"]]
    c.ClasshubAuthenticator.hub_file = hubfile.HUB_FILE_IN_HUB
    if auth["authenticator"] == "native":
        c.NativeAuthenticator.enable_signup = auth["signup"]
        c.NativeAuthenticator.open_signup = False  # newcomers wait for an admin's approval
        c.NativeAuthenticator.minimum_password_length = auth["password_min_length"]
        c.NativeAuthenticator.check_common_password = True
        c.NativeAuthenticator.allowed_failed_logins = auth["login_attempts"]
        c.NativeAuthenticator.seconds_before_next_try = auth["lockout"]
    if auth["authenticator"] in hubfile.SINGLE_SIGN_ON:
        c.OAuthenticator.client_id = auth["client_id"]
        c.OAuthenticator.client_secret = secrets[hubfile.OAUTH_SECRET]
        c.OAuthenticator.oauth_callback_url = auth["callback_url"]
        c.OAuthenticator.username_claim = (
            auth["username_claim"] or DEFAULT_CLAIMS[auth["authenticator"]]
        )
        sso = c[AUTHENTICATORS[auth["authenticator"]].rsplit(".", 1)[1]]
        sso.allowed_domains = list(auth["allowed_domains"])
        sso.groups_claim = auth["groups_claim"]
        if auth["authenticator"] == "oidc":
            endpoints = auth["oidc_endpoints"]
            sso.oidc_issuer = auth["oidc_issuer"]
            if endpoints["token"]:  # a provider without discovery: its endpoints as given
                c.GenericOAuthenticator.authorize_url = endpoints["authorize"]
                c.GenericOAuthenticator.token_url = endpoints["token"]
                c.GenericOAuthenticator.userdata_url = endpoints["userinfo"]
            c.GenericOAuthenticator.scope = ["openid", "email", "profile"]
            c.GenericOAuthenticator.login_service = urlsplit(
                auth["oidc_issuer"] or endpoints["authorize"]
            ).hostname
        else:
            c.GitHubOAuthenticator.scope = ["user:email"] if auth["allowed_domains"] else []
    c.Authenticator.manage_groups = True
    admins = {u for u, v in hub.get("users").items() if v["admin"]}
    if hub.get("admin_sees_users"):
        c.Authenticator.admin_users = admins
        c.ClasshubAuthenticator.admin_role = {}
    else:  # the admins' role (auth.py; load_managed_roles says why the reset)
        c.Authenticator.manage_roles = True
        c.Authenticator.reset_managed_roles_on_startup = True
        native = ["admin:users"] if auth["authenticator"] == "native" else []
        c.Authenticator.admin_users = set()
        c.ClasshubAuthenticator.admin_role = {
            "name": ADMIN_ROLE,
            "description": "The roster's admins: start and stop servers, not open them",
            "scopes": ADMIN_SCOPES + native,
        }
    title, note = hub.get("login_page.title"), hub.get("login_page.note")
    c.JupyterHub.template_vars = {
        "classhub_title": title,
        "announcement_login": f'<h1 id="classhub-title">{html.escape(title)}</h1>'
        f'<p id="classhub-login-note">{html.escape(note)}</p>',
    }
    # Every page's template; the admin page's only where admins cannot open servers.
    admin_page = [] if hub.get("admin_sees_users") else [ADMIN_TEMPLATES]
    c.JupyterHub.template_paths = [PAGE_TEMPLATES, *admin_page]
    c.Authenticator.auth_refresh_age = 60
    c.Authenticator.refresh_pre_spawn = True

    c.JupyterHub.spawner_class = "classhub_hub.spawner.ClasshubSpawner"  # DockerSpawner, tuned
    c.DockerSpawner.image = hub.get("notebook_image")
    c.DockerSpawner.allowed_images = []  # users get the one image, never a choice
    c.DockerSpawner.pull_policy = "never"  # a pull would stall every spawn; setup builds it
    c.DockerSpawner.remove = True
    c.DockerSpawner.network_name = hub.get("network")
    c.DockerSpawner.use_internal_ip = True
    c.DockerSpawner.name_template = names.user_container(name, "{raw_username}")
    c.DockerSpawner.extra_create_kwargs = {"labels": names.user_labels(name, "{raw_username}")}
    c.DockerSpawner.notebook_dir = hubfile.HOME
    c.DockerSpawner.mem_limit = hub.get("limits.mem_limit")
    c.DockerSpawner.cpu_limit = float(hub.get("limits.cpu_limit"))
    c.DockerSpawner.extra_host_config = {
        **HARDENING,
        "pids_limit": int(hub.get("limits.pids_limit")),
        "memswap_limit": hub.get("limits.mem_limit"),  # no swap beyond the limit
    }
    if hub.get("engine") == "swarm":  # servers as services on the swarm's nodes
        c.JupyterHub.spawner_class = "classhub_hub.swarmspawner.ClasshubSwarmSpawner"
        c.ClasshubSwarmSpawner.swarm_storage = hub.get("swarm_storage")
        c.ClasshubSwarmSpawner.pids_limit = int(hub.get("limits.pids_limit"))
    c.Spawner.disable_user_config = True  # no server config from the student's own home
    c.Spawner.pre_spawn_hook = make_pre_spawn_hook(LiveRoster(hubfile.HUB_FILE_IN_HUB))
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = START_TIMEOUT
    c.Spawner.http_timeout = HTTP_TIMEOUT
    # The spawn page with its progress after 1 s (JupyterHub: a blank wait of up to 10 s), so a
    # student in line for a turn to start sees how many are ahead (spawner.py). Not 0: JupyterHub
    # then answers before the spawn has begun, and says 201 (ready) for a server not yet made.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 1}

    services: list[dict[str, object]] = [
        {"name": "classhub", "api_token": secrets["classhub_api_token"]}
    ]
    roles = [{"name": "classhub", "scopes": CLASSHUB_SCOPES, "services": ["classhub"]}]
    timeout = hub.get("cull_idle_timeout")
    if timeout:
        # Activity must reach the hub several times per timeout (JupyterHub's defaults, 5 minutes,
        # suit the usual hour; a short timeout needs shorter intervals or servers look idle).
        every = hubfile.activity_interval(timeout)
        c.JupyterHub.last_activity_interval = every
        c.Spawner.environment = {
            "JUPYTERHUB_ACTIVITY_INTERVAL": str(every),
            "CLASSHUB_CULL_BUSY": "true" if hub.get("cull_busy") else "false",
        }
        command = [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}",
                   f"--cull-every={every}"]  # fmt: skip
        services.append({"name": "idle-culler", "command": command})
        roles.append({"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
