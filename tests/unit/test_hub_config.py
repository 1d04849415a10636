"""The hub's configuration (hub/classhub_hub/config.py) against a real traitlets Config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker
from traitlets.config import Config

from classhub import hubfile, names, render
from classhub.credentials import Credential
from classhub.inputs.parsers import Context
from classhub.inputs.roster import parse_userlist
from classhub.inputs.settings import load_settings
from classhub_hub.config import (
    ADMIN_ROLE,
    ADMIN_TEMPLATES,
    CLASSHUB_SCOPES,
    CULLER_SCOPES,
    PAGE_TEMPLATES,
    apply_config,
    read_secrets,
)
from classhub_hub.dockerproxy import Policy
from tests.conftest import PROJECT

SECRETS = {"cookie_secret": "c" * 64, "proxy_auth_token": "p" * 64, "classhub_api_token": "t" * 64}


def hub_file(env: str = "HUB_NAME=physics\nMEM_LIMIT=1G\nCPU_LIMIT=0.5\n") -> hubfile.HubFile:
    settings, problems, _ = load_settings(env, ".env", {}, Context(PROJECT, 4))
    assert not problems
    roster, problems, _ = parse_userlist("ann team-1 team-2\nbob team-1\ngroup: empty\n", "boss")
    assert not problems
    creds = {n: Credential("x", "$2b$10$" + "a" * 53) for n in roster.names}
    return hubfile.HubFile(json.loads(render.hub_file(settings, roster, creds)), "test")


def test_apply_config_sets_the_promised_behaviour():
    c = Config()
    hub = hub_file()
    apply_config(c, hub, SECRETS)
    assert c.JupyterHub.bind_url == "http://0.0.0.0:8000/physics/"
    assert c.JupyterHub.hub_connect_url == "http://physics:8081"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.authenticator_class == "classhub_hub.auth.RosterAuthenticator"
    assert c.JupyterHub.spawner_class == "classhub_hub.spawner.ClasshubSpawner"
    assert c.JupyterHub.tornado_settings == {"slow_spawn_timeout": 1}
    assert c.Authenticator.manage_groups is True
    assert c.Authenticator.admin_users == set()  # the roster's admins get ADMIN_ROLE instead
    assert c.DockerSpawner.image == "classhub-notebook:physics"
    assert c.DockerSpawner.allowed_images == []
    assert c.DockerSpawner.pull_policy == "never"
    assert c.DockerSpawner.remove is True
    assert c.DockerSpawner.network_name == "physics-net"
    assert c.DockerSpawner.mem_limit == 1024**3
    assert c.DockerSpawner.cpu_limit == 0.5
    assert c.Spawner.start_timeout >= 300 and c.Spawner.http_timeout >= 120
    # The container name the spawner makes is the one the host's names module gives.
    rendered = c.DockerSpawner.name_template.replace("{raw_username}", "ann")
    assert rendered == names.user_container("physics", "ann")
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["classhub"]["api_token"] == SECRETS["classhub_api_token"]
    assert "--timeout=3600" in services["idle-culler"]["command"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["idle-culler"]["scopes"] == CULLER_SCOPES
    assert roles["classhub"]["scopes"] == CLASSHUB_SCOPES
    assert "admin" not in str(CULLER_SCOPES)


def test_on_a_swarm_servers_start_as_services_with_their_folders_in_the_shared_storage(tmp_path):
    c = Config()
    hub = hub_file(f"HUB_NAME=physics\nENGINE=swarm\nSWARM_STORAGE={tmp_path}\nPIDS_LIMIT=300\n")
    apply_config(c, hub, SECRETS)
    assert c.JupyterHub.spawner_class == "classhub_hub.swarmspawner.ClasshubSwarmSpawner"
    assert c.ClasshubSwarmSpawner.swarm_storage == str(tmp_path)
    assert c.ClasshubSwarmSpawner.pids_limit == 300
    assert c.DockerSpawner.network_name == "physics-net"  # the overlay, of the same name
    # A newcomer's home is a plain folder (limit 0) there, made by the socket proxy.
    assert hub.get("socket_proxy.disk_store") == f"{tmp_path}/physics"
    assert hub.get("socket_proxy.disk_limit") == 0
    one_host = Config()
    apply_config(one_host, hub_file(), SECRETS)
    assert "ClasshubSwarmSpawner" not in one_host


def test_user_subdomains_give_every_server_an_origin_of_its_own():
    shared = Config()
    apply_config(shared, hub_file(), SECRETS)
    assert "subdomain_host" not in shared.JupyterHub  # one origin: PUBLIC_URL's
    own = Config()
    env = (
        "HUB_NAME=physics\nPUBLIC_URL=https://jupyter.uni.edu:8443/physics/\nUSER_SUBDOMAINS=true\n"
    )
    apply_config(own, hub_file(env), SECRETS)
    assert own.JupyterHub.subdomain_host == "https://jupyter.uni.edu:8443"
    assert own.JupyterHub.bind_url == "http://0.0.0.0:8000/physics/"  # the same path, per host


def test_the_login_page_says_the_hubs_title_and_where_passwords_come_from():
    c = Config()
    apply_config(c, hub_file(), SECRETS)
    assert c.JupyterHub.template_vars["classhub_title"] == "physics"  # HUB_NAME
    intro = c.JupyterHub.template_vars["announcement_login"]
    assert "Your instructor gives you your user name and password." in intro
    assert (Path(PAGE_TEMPLATES) / "page.html").is_file()

    c = Config()
    env = 'HUB_NAME=physics\nHUB_TITLE="Physics <101> & co"\nAUTHENTICATOR=native\n'
    apply_config(c, hub_file(env), SECRETS)
    assert c.JupyterHub.template_vars["classhub_title"] == "Physics <101> & co"
    intro = c.JupyterHub.template_vars["announcement_login"]
    assert "Physics &lt;101&gt; &amp; co" in intro and "<101>" not in intro  # escaped
    assert "New here? Sign up first" in intro

    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nLOGIN_NOTE=Ask Ms Smith.\n"), SECRETS)
    assert (
        '<p id="classhub-login-note">Ask Ms Smith.</p>'
        in c.JupyterHub.template_vars["announcement_login"]
    )


def test_no_culler_when_the_timeout_is_zero():
    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nCULL_IDLE_TIMEOUT=0\n"), SECRETS)
    assert [s["name"] for s in c.JupyterHub.services] == ["classhub"]


def rw(path: str) -> dict[str, str]:
    return {"bind": path, "mode": "rw"}


def test_volumes_home_and_one_folder_per_group():
    hub = hub_file()
    assert hubfile.mounts(hub, "ann") == {
        "physics-user-ann": rw("/home/jovyan"),
        "physics-group-team-1": rw("/home/jovyan/team-1"),
        "physics-group-team-2": rw("/home/jovyan/team-2"),
    }
    assert hubfile.mounts(hub, "boss") == {"physics-user-boss": rw("/home/jovyan")}
    assert hub.get("groups")["empty"] == {
        "members": [],
        "volume": "physics-group-empty",
        "egress": [],
    }


def test_shared_data_read_only_for_students_and_homes_for_admins():
    hub = hub_file("HUB_NAME=physics\nSHARED_DATA=course-data\nADMIN_SEES_USERS=true\n")
    ann = hubfile.mounts(hub, "ann")
    assert ann["course-data"] == {"bind": "/home/jovyan/shared", "mode": "ro"}
    assert not [v for v in ann.values() if v["bind"].startswith("/home/jovyan/users")]
    boss = hubfile.mounts(hub, "boss")
    assert boss["course-data"] == rw("/home/jovyan/shared")
    assert boss["physics-user-ann"] == rw("/home/jovyan/users/ann")
    assert boss["physics-user-bob"] == rw("/home/jovyan/users/bob")
    assert boss["physics-user-boss"] == rw("/home/jovyan")  # their own home once, as the home
    plain = hub_file("HUB_NAME=physics\nSHARED_DATA=course-data\n")
    assert "physics-user-ann" not in hubfile.mounts(plain, "boss")


def _pin(path: str, package: str) -> str:
    match = re.search(rf"^{package}==(\S+)", (PROJECT / path).read_text(), re.MULTILINE)
    assert match, (path, package)
    return match.group(1)


def test_singleuser_jupyterhub_matches_the_hub():
    assert _pin("singleuser/base-requirements.txt", "jupyterhub") == _pin(
        "hub/requirements.txt", "jupyterhub"
    )


def test_pinned_versions_are_above_known_advisories():
    version = tuple(int(p) for p in _pin("hub/requirements.txt", "jupyterhub").split(".")[:3])
    assert version >= (5, 5, 1)  # CSRF (5.4.5/5.4.6), failed-login DoS (5.5.0), 5.5.1
    assert int(_pin("hub/requirements.txt", "dockerspawner").split(".")[0]) >= 13  # CVE-2023-48311


def test_user_containers_are_made_the_way_the_docker_proxy_requires():
    """The spawner's settings, through docker-py as DockerSpawner sends them, pass the proxy."""
    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nPIDS_LIMIT=300\n"), SECRETS)
    spawner = c.DockerSpawner
    assert c.Spawner.disable_user_config is True
    assert spawner.extra_host_config["pids_limit"] == 300
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    labels = {k: v.replace("{raw_username}", "ann")
              for k, v in spawner.extra_create_kwargs["labels"].items()}  # fmt: skip
    body = api.create_container_config(
        image=spawner.image,
        command=["start-notebook"],
        labels=labels,
        host_config=api.create_host_config(
            auto_remove=spawner.remove,
            links={},  # DockerSpawner's links and mounts: none
            mounts=[],
            binds=["physics-user-ann:/home/jovyan:rw"],
            mem_limit=spawner.mem_limit,
            cpu_period=100_000,  # DockerSpawner's, with cpu_quota from cpu_limit
            cpu_quota=int(spawner.cpu_limit * 100_000),
            network_mode=spawner.network_name,
            **spawner.extra_host_config,
        ),
    )
    name = spawner.name_template.replace("{raw_username}", "ann")
    policy = Policy("physics", names.network("physics"), frozenset({spawner.image}))
    target = f"/v1.41/containers/create?name={name}"
    assert policy.refusal("POST", target, json.dumps(body).encode(), None) is None
    body["HostConfig"]["CapDrop"] = []
    assert "drop all capabilities" in policy.refusal(
        "POST", target, json.dumps(body).encode(), None
    )


def test_culling_settings_reach_the_culler_and_every_server():
    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nCULL_IDLE_TIMEOUT=30s\n"), SECRETS)
    culler = {s["name"]: s for s in c.JupyterHub.services}["idle-culler"]["command"]
    assert "--timeout=30" in culler and "--cull-every=10" in culler
    assert c.JupyterHub.last_activity_interval == 10
    assert c.Spawner.environment == {
        "JUPYTERHUB_ACTIVITY_INTERVAL": "10",
        "CLASSHUB_CULL_BUSY": "false",
    }
    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nCULL_BUSY=true\n"), SECRETS)
    assert c.Spawner.environment["CLASSHUB_CULL_BUSY"] == "true"
    assert c.JupyterHub.last_activity_interval == 300  # the usual hour: JupyterHub's default


def test_the_database_url_follows_hub_db_and_the_mounted_secrets(tmp_path):
    c = Config()
    apply_config(c, hub_file(), SECRETS)
    assert c.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    c = Config()
    apply_config(
        c,
        hub_file("HUB_NAME=physics\nHUB_DB=postgres\n"),
        {**SECRETS, "postgres_password": "s" * 64},
    )
    assert c.JupyterHub.db_url == (
        f"postgresql+psycopg2://jupyterhub:{'s' * 64}@{names.db_container('physics')}:5432/jupyterhub"
    )
    for name, value in SECRETS.items():
        (tmp_path / name).write_text(value + "\n")
    assert read_secrets(str(tmp_path)) == SECRETS  # sqlite: no database password mounted
    (tmp_path / "postgres_password").write_text("s" * 64 + "\n")
    assert read_secrets(str(tmp_path))["postgres_password"] == "s" * 64


def test_native_sign_in_follows_the_settings():
    c = Config()
    env = ("HUB_NAME=physics\nAUTHENTICATOR=native\nSIGNUP=false\nPASSWORD_MIN_LENGTH=10\n"
           "LOGIN_ATTEMPTS=3\nLOCKOUT=2m\n")  # fmt: skip
    apply_config(c, hub_file(env), SECRETS)
    assert c.JupyterHub.authenticator_class == "classhub_hub.native.ClasshubNativeAuthenticator"
    assert c.ClasshubAuthenticator.hub_file == hubfile.HUB_FILE_IN_HUB
    native = c.NativeAuthenticator
    assert (native.enable_signup, native.open_signup) == (False, False)
    assert (native.minimum_password_length, native.check_common_password) == (10, True)
    assert (native.allowed_failed_logins, native.seconds_before_next_try) == (3, 120)
    assert c.Authenticator.admin_users == set()


def test_who_the_hub_knows():
    closed = hub_file()
    assert hubfile.user_entry(closed, "ann")["groups"] == ["team-1", "team-2"]
    assert hubfile.user_entry(closed, "ann")["newcomer"] is False
    assert hubfile.user_entry(closed, "jane.doe") is None
    opened = hub_file("HUB_NAME=physics\nAUTHENTICATOR=native\nOPEN_TO_ALL=true\n"
                      "DEFAULT_GROUPS=empty\nMEM_LIMIT=1G\n")  # fmt: skip
    jane = hubfile.user_entry(opened, "jane.doe")
    assert jane == {
        "admin": False,
        "groups": ["empty"],
        "limits": {"mem_limit": 1024**3, "cpu_limit": 1.0},
        "image": "classhub-notebook:physics",
        "volume": names.user_volume("physics", "jane.doe"),
        "container": names.user_container("physics", "jane.doe"),
        "newcomer": True,
    }
    assert hubfile.mounts(opened, "jane.doe") == {
        "physics-user-jane.doe": {"bind": "/home/jovyan", "mode": "rw"},
        "physics-group-empty": {"bind": "/home/jovyan/empty", "mode": "rw"},
    }
    for bad in ("Jane", "jane doe", "../etc", "-x", "a" * 33, ""):
        assert hubfile.user_entry(opened, bad) is None, bad


def test_single_sign_on_follows_the_settings():
    env = ("HUB_NAME=physics\nAUTHENTICATOR=oidc\nOIDC_ISSUER=https://idp.uni.edu/realms/x/\n"
           "OAUTH_CLIENT_ID=hub-1\nALLOWED_DOMAINS=Uni.edu\nGROUPS_CLAIM=groups\n"
           "PUBLIC_URL=https://jupyter.uni.edu/physics/\n")  # fmt: skip
    c = Config()
    apply_config(c, hub_file(env), {**SECRETS, "oauth_client_secret": "s3cret"})
    assert c.JupyterHub.authenticator_class == "classhub_hub.oauth.ClasshubOIDCAuthenticator"
    assert (c.OAuthenticator.client_id, c.OAuthenticator.client_secret) == ("hub-1", "s3cret")
    assert (
        c.OAuthenticator.oauth_callback_url == "https://jupyter.uni.edu/physics/hub/oauth_callback"
    )
    assert c.OAuthenticator.username_claim == "email"
    oidc = c.ClasshubOIDCAuthenticator
    assert oidc.oidc_issuer == "https://idp.uni.edu/realms/x"
    assert (oidc.allowed_domains, oidc.groups_claim) == (["uni.edu"], "groups")
    assert c.GenericOAuthenticator.scope == ["openid", "email", "profile"]
    assert "token_url" not in c.GenericOAuthenticator  # from discovery, when the hub starts

    # A provider without discovery: its endpoints as given, and no issuer to read.
    endpoints = {"authorize": "https://sso.uni.edu/oauth2/authorize",
                 "token": "https://sso.uni.edu/oauth2/token",
                 "userinfo": "https://sso.uni.edu/oauth2/userinfo"}  # fmt: skip
    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nAUTHENTICATOR=oidc\nOAUTH_CLIENT_ID=hub-1\n"
                             + "".join(f"OIDC_{k.upper()}_URL={v}\n" for k, v in endpoints.items())),
                 {**SECRETS, "oauth_client_secret": "s3cret"})  # fmt: skip
    generic = c.GenericOAuthenticator
    assert (generic.authorize_url, generic.token_url, generic.userdata_url) == tuple(
        endpoints.values()
    )
    assert c.ClasshubOIDCAuthenticator.oidc_issuer == ""
    assert generic.login_service == "sso.uni.edu"

    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nAUTHENTICATOR=github\nOAUTH_CLIENT_ID=gh\n"),
                 {**SECRETS, "oauth_client_secret": "s3cret"})  # fmt: skip
    assert c.JupyterHub.authenticator_class == "classhub_hub.oauth.ClasshubGitHubAuthenticator"
    assert c.OAuthenticator.username_claim == "login"
    assert c.ClasshubGitHubAuthenticator.allowed_domains == []


def test_admins_start_and_stop_servers_but_open_them_only_with_admin_sees_users():
    """JupyterHub's admin role can open every server (access:servers), or get there through a
    token made as the student, a share, or a rename to the student's name; it cannot be changed,
    so the roster's admins get a role of classhub's instead."""
    c = Config()
    apply_config(c, hub_file(), SECRETS)
    assert c.Authenticator.admin_users == set() and c.Authenticator.manage_roles is True
    assert c.Authenticator.reset_managed_roles_on_startup is True
    role = c.ClasshubAuthenticator.admin_role
    scopes = set(role["scopes"])
    assert role["name"] == ADMIN_ROLE and role["name"] != "admin"
    assert not scopes & {"access:servers", "tokens", "shares", "admin:users", "users"}
    assert {"admin-ui", "admin:servers", "list:users", "read:users"} <= scopes
    # ... and the admin page shows no "Access Server" button they could not use.
    assert c.JupyterHub.template_paths == [PAGE_TEMPLATES, ADMIN_TEMPLATES]
    assert (
        'a[href*="/user/"] { display: none; }' in (Path(ADMIN_TEMPLATES) / "admin.html").read_text()
    )
    # The roles classhub loads assign none to users (JupyterHub refuses that with manage_roles).
    assert not [r for r in c.JupyterHub.load_roles if r.get("users") or r.get("groups")]

    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nAUTHENTICATOR=native\n"), SECRETS)
    native = c.ClasshubAuthenticator.admin_role
    assert set(native["scopes"]) == scopes | {"admin:users"}  # approving sign-ups needs it

    c = Config()
    apply_config(c, hub_file("HUB_NAME=physics\nADMIN_SEES_USERS=true\n"), SECRETS)
    assert c.Authenticator.admin_users == {"boss"}  # JupyterHub's own admin role
    assert c.ClasshubAuthenticator.admin_role == {}
    assert c.JupyterHub.template_paths == [PAGE_TEMPLATES]  # no admin page of classhub's
    assert "manage_roles" not in c.Authenticator
