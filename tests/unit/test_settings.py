"""The settings model: defaults, overrides, every bad value named by file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classhub.errors import Problem
from classhub.inputs import settings as settings_mod
from classhub.inputs.parsers import HOST_CA_STORES, Context
from classhub.inputs.settings import FIELDS, KEYS, load_settings, read_env_text
from tests.conftest import PROJECT

CTX = Context(root=Path("/srv/classhub"), cpu_count=2)


def load(text: str, environ: dict[str, str] | None = None, ctx: Context = CTX):
    return load_settings(text, ".env", environ or {}, ctx)


def only_problem(text: str, environ: dict[str, str] | None = None) -> Problem:
    settings, problems, _ = load(text, environ)
    assert settings is None
    assert len(problems) == 1, problems
    return problems[0]


def test_defaults_when_env_is_empty():
    settings, problems, warnings = load("")
    assert problems == [] and warnings == []
    assert settings.hub_name == "hub"
    assert settings.port == 8000
    assert settings.bind_address == "127.0.0.1"
    assert settings.public_url == "http://127.0.0.1:8000/hub/"
    assert settings.admin_user == "hub-admin"
    assert settings.hub_db == "sqlite"
    assert settings.notebook_image == "classhub-notebook:hub"  # the hub's own (HUB_NAME=hub)
    assert settings.base_image == "debian:bookworm-slim"
    assert settings.build_ca_bundle == next((p for p in HOST_CA_STORES if p.is_file()), None)
    assert settings.mem_limit == 2 * 1024**3
    assert settings.cpu_limit == 1.0
    assert settings.cull_idle_timeout == 3600
    assert settings.base_url == "/hub/"
    assert set(settings.sources.values()) == {"default"}


def test_values_from_env_file_with_their_lines():
    text = "# comment\nHUB_NAME=math101\nexport PORT=8001\nMEM_LIMIT='512M'\nCPU_LIMIT=0.5\n"
    settings, problems, _ = load(text)
    assert problems == []
    assert (settings.hub_name, settings.port, settings.mem_limit) == (
        "math101",
        8001,
        512 * 1024**2,
    )
    assert settings.cpu_limit == 0.5
    assert settings.public_url == "http://127.0.0.1:8001/math101/"
    assert settings.sources["HUB_NAME"] == ".env:2"
    assert settings.sources["PORT"] == ".env:3"


def test_environment_overrides_the_file():
    settings, problems, _ = load("PORT=8001\nHUB_NAME=math\n", {"PORT": "9000", "UNRELATED": "x"})
    assert problems == []
    assert settings.port == 9000
    assert settings.hub_name == "math"
    assert settings.sources["PORT"] == "environment"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("PORT=abc", "use a whole number from 1 to 65535"),
        ("PORT=0", "out of range"),
        ("PORT=65536", "out of range"),
        ("PORT=", "not a port number"),
        ("HUB_NAME=Math_101", "lowercase letters"),
        ("HUB_NAME=1st", "starting with a letter"),
        ("HUB_NAME=a-very-long-hub-name-for-maths", "is 30 characters long"),
        ("BIND_ADDRESS=localhost", "is not an IP address"),
        ("ADMIN_USER=root@x", "'@'"),
        ("HUB_DB=mysql", "use sqlite or postgres"),
        ("NOTEBOOK_IMAGE=My Image", "is not a Docker image name"),
        ("BASE_IMAGE=Debian:bookworm", "is not a Docker image name"),
        ("MEM_LIMIT=lots", "e.g. MEM_LIMIT=2G"),
        ("MEM_LIMIT=2048", "too small"),
        ("MEM_LIMIT=64M", "at least 128M"),
        ("CPU_LIMIT=many", "is not a number of cores"),
        ("CPU_LIMIT=0", "is not a number of cores"),
        ("CPU_LIMIT=nan", "is not a number of cores"),
        ("CPU_LIMIT=3", "more than this server's 2 cores"),
        ("CULL_IDLE_TIMEOUT=soon", "is not a duration"),
        ("CULL_IDLE_TIMEOUT=-5", "is not a duration"),
        ("PUBLIC_URL=jupyter.example.edu/hub/", "is not an http(s) URL"),
        ("PUBLIC_URL=https://x.edu/other/", "does not end in /hub/"),
        ("USER_SUBDOMAINS=true", "USER_SUBDOMAINS=true needs PUBLIC_URL"),
        ("USER_SUBDOMAINS=maybe", "USER_SUBDOMAINS=maybe"),
        ("BUILD_CA_BUNDLE=/nonexistent/ca.pem", "does not exist"),
        ("PIDS_LIMIT=10", "at least 64"),
        ("PIDS_LIMIT=many", "is not a whole number"),
        ("SHARED_DATA=/nonexistent/course", "is not a folder on this server"),
        ("ENGINE=kubernetes", "use docker (everything on this server) or swarm"),
        ("SWARM_STORAGE=/nonexistent/shared", "mount the shared filesystem (NFS) at the same path"),
        ("SWARM_STORAGE=shared", "is not a folder on this server"),
        ("SWARM_ADDRESS=manager.example.edu", "the address the other servers reach this one at"),
        ("NODE_SSH_KEY=/nonexistent/id_ed25519", "is not a file"),
        ("SHARED_DATA=course data", "neither an absolute folder nor a Docker volume name"),
        ("SHARED_DATA=hub-data", "is the hub's database of this hub"),
        ("SHARED_DATA=hub-db-data", "is PostgreSQL's data of this hub"),
        ("SHARED_DATA=hub-user-ann", "is a user's home of this hub"),
        ("SHARED_DATA=hub-group-team-1", "is a group's folder of this hub"),
        ("SHARED_DATA=/", "this server's whole filesystem"),
        ("SHARED_DATA=/..", "this server's whole filesystem"),
        ("ADMIN_SEES_USERS=maybe", "write true or false"),
        ("AUTHENTICATOR=ldap", "roster: the roster's generated passwords"),
        ("OPEN_TO_ALL=true", "set AUTHENTICATOR=native"),
        ("DEFAULT_GROUPS=team-1 Guests!", "names a group 'Guests!'"),
        ("PASSWORD_MIN_LENGTH=0", "from 1 to 128"),
        ("LOGIN_ATTEMPTS=-1", "e.g. LOGIN_ATTEMPTS=5"),
        ("LOCKOUT=a while", "e.g. LOCKOUT=10m"),
        ("OIDC_ISSUER=idp.uni.edu", "is not an issuer URL"),
        ("OIDC_TOKEN_URL=sso.uni.edu/token", "OIDC_TOKEN_URL=https://idp.uni.edu/oauth2/token"),
        ("ALLOWED_DOMAINS=uni", "not an e-mail domain"),
        ("USERNAME_CLAIM=e mail", "is not a claim name"),
    ],
)
def test_bad_value_names_line_key_and_fix(line: str, fragment: str):
    problem = only_problem(f"# settings\n{line}\n")
    assert problem.where == ".env:2"
    assert problem.what.startswith(line + " ")
    assert fragment in str(problem)
    assert problem.fix  # always a way out


def test_bad_value_from_environment_says_environment():
    problem = only_problem("PORT=8000\n", {"PORT": "http"})
    assert problem.where == "environment"
    assert problem.what == "PORT=http is not a port number"


def test_every_problem_at_once():
    _, problems, _ = load("PORT=abc\nMEM_LIMIT=lots\nHUB_DB=oracle\nnonsense line\n")
    assert sorted(p.where for p in problems) == [".env:1", ".env:2", ".env:3", ".env:4"]


def test_unparsable_line_is_named():
    problem = only_problem("PORT=8000\nthis is not a setting\n")
    assert problem.where == ".env:2"
    assert "cannot be read" in problem.what
    assert "KEY=value" in problem.fix


def test_unknown_key_warns_with_closest_known_key():
    settings, problems, warnings = load("PROT=8001\nmem_limit=1G\nFOO=1\n")
    assert problems == [] and settings.port == 8000
    assert warnings == [
        ".env:1: unknown key PROT is ignored; did you mean PORT?",
        ".env:2: unknown key mem_limit is ignored; did you mean MEM_LIMIT?",
        ".env:3: unknown key FOO is ignored; the known keys are in .env.example",
    ]


def test_key_set_twice_warns_and_last_wins():
    settings, _, warnings = load("PORT=8001\nPORT=8002\n")
    assert settings.port == 8002
    assert warnings == [".env:2: PORT is set again (also on line 1); line 2 wins"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("512M", 512 * 1024**2), ("2G", 2 * 1024**3), ("2g", 2 * 1024**3), ("1.5G", 1536 * 1024**2),
     ("1GiB", 1024**3), ("4096m", 4 * 1024**3), ("1T", 1024**4)],
)  # fmt: skip
def test_memory_sizes(raw: str, expected: int):
    settings, problems, _ = load(f"MEM_LIMIT={raw}\n")
    assert problems == [] and settings.mem_limit == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)],
)
def test_durations(raw: str, expected: int):
    settings, problems, _ = load(f"CULL_IDLE_TIMEOUT={raw}\n")
    assert problems == [] and settings.cull_idle_timeout == expected


def test_builds_trust_the_hosts_ca_store_unless_told_otherwise(tmp_path: Path):
    store = tmp_path / "ca-certificates.crt"
    store.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    ctx = Context(root=tmp_path, cpu_count=2, ca_stores=(tmp_path / "missing.crt", store))
    for text in ("", "BUILD_CA_BUNDLE=\n", "BUILD_CA_BUNDLE=host\n", "BUILD_CA_BUNDLE=HOST\n"):
        settings, problems, _ = load(text, ctx=ctx)
        assert problems == [] and settings.build_ca_bundle == store, text
    settings, problems, _ = load("BUILD_CA_BUNDLE=none\n", ctx=ctx)
    assert problems == [] and settings.build_ca_bundle is None
    no_store = Context(root=tmp_path, cpu_count=2, ca_stores=(tmp_path / "missing.crt",))
    settings, problems, _ = load("", ctx=no_store)
    assert problems == [] and settings.build_ca_bundle is None  # a host without one: none


def test_ca_bundle_relative_to_checkout_and_must_hold_a_certificate(tmp_path: Path):
    ctx = Context(root=tmp_path, cpu_count=2)
    (tmp_path / "corp-ca.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    )
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    settings, problems, _ = load("BUILD_CA_BUNDLE=corp-ca.pem\n", ctx=ctx)
    assert problems == [] and settings.build_ca_bundle == tmp_path / "corp-ca.pem"
    _, problems, _ = load("BUILD_CA_BUNDLE=empty.pem\n", ctx=ctx)
    assert [p.where for p in problems] == [".env:1"]
    assert "holds no PEM certificate" in problems[0].what


def test_user_subdomains_put_servers_under_public_urls_host():
    settings, _, _ = load("PUBLIC_URL=https://jupyter.uni.edu/hub/\nUSER_SUBDOMAINS=true\n")
    assert settings.subdomain_host == "https://jupyter.uni.edu"
    settings, _, _ = load("PUBLIC_URL=http://class.localhost:8000/hub/\nUSER_SUBDOMAINS=true\n")
    assert settings.subdomain_host == "http://class.localhost:8000"
    settings, _, _ = load("PUBLIC_URL=https://jupyter.uni.edu/hub/\n")
    assert settings.subdomain_host == ""
    for address in ("https://10.0.0.5/hub/", "http://[::1]:8000/hub/"):
        problem = only_problem(f"USER_SUBDOMAINS=true\nPUBLIC_URL={address}\n")
        assert problem.where == ".env:2"
        assert "names an IP address, which has no subdomains" in problem.what
        assert "e.g. PUBLIC_URL=https://jupyter.example.edu/hub/" in problem.fix


def test_public_url_gets_trailing_slash_and_derived_url_uses_hostname_on_all_interfaces():
    settings, _, _ = load("PUBLIC_URL=https://jupyter.example.edu/hub\n")
    assert settings.public_url == "https://jupyter.example.edu/hub/"
    settings, _, _ = load("BIND_ADDRESS=0.0.0.0\n")
    assert settings.public_url.startswith("http://") and ":8000/hub/" in settings.public_url
    assert "0.0.0.0" not in settings.public_url
    assert settings.upstream == "127.0.0.1:8000"
    settings, _, _ = load("BIND_ADDRESS=::1\n")
    assert settings.public_url == "http://[::1]:8000/hub/"
    assert settings.upstream == "[::1]:8000"


def test_admin_user_is_lowercased():
    settings, _, _ = load("ADMIN_USER=Teacher\n")
    assert settings.admin_user == "teacher"


def test_env_example_documents_every_key_with_its_default():
    """.env.example and the model cannot drift: same keys, same defaults, each with a comment."""
    text = (PROJECT / ".env.example").read_text()
    entries, problems, warnings = read_env_text(text, ".env.example")
    assert problems == [] and warnings == []
    assert list(entries) == list(KEYS)
    for field in FIELDS:
        assert entries[field.key].value == field.default, field.key
        before = text.split(f"\n{field.key}=")[0].rstrip().splitlines()[-1]
        assert before.startswith("#"), f"{field.key} has no comment above it in .env.example"


def test_the_docs_document_every_setting():
    table = (PROJECT / "docs" / "settings.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE)
    assert rows == list(KEYS)  # one row a setting, in FIELDS' order
    for field in FIELDS:
        default = f"`{field.default}`" if field.default else "(empty)"
        row = re.search(rf"^\| `{field.key}` \| {re.escape(default)} \|", table, re.MULTILINE)
        assert row, f"docs/settings.md has no row for {field.key} with default {field.default!r}"


def test_sign_in_settings():
    settings, problems, _ = load(
        "AUTHENTICATOR=Native\nOPEN_TO_ALL=yes\nDEFAULT_GROUPS=guests, Team-1 guests\n"
        "SIGNUP=false\nPASSWORD_MIN_LENGTH=12\nLOGIN_ATTEMPTS=0\nLOCKOUT=1h\n"
    )
    assert problems == []
    assert settings.authenticator == "native" and settings.open_to_all is True
    assert settings.default_groups == ("guests", "team-1")
    assert (settings.signup, settings.password_min_length) == (False, 12)
    assert (settings.login_attempts, settings.lockout) == (0, 3600)
    default, _, _ = load("")
    assert (default.authenticator, default.open_to_all, default.default_groups) == (
        "roster",
        False,
        (),
    )


def test_single_sign_on_needs_its_issuer_and_client_id():
    _, problems, _ = load("AUTHENTICATOR=oidc\n")
    assert [p.what for p in problems] == [
        "AUTHENTICATOR=oidc needs OIDC_ISSUER",
        "AUTHENTICATOR=oidc needs OAUTH_CLIENT_ID",
    ]
    _, problems, _ = load("AUTHENTICATOR=github\n")
    assert [p.what for p in problems] == ["AUTHENTICATOR=github needs OAUTH_CLIENT_ID"]
    # A provider without discovery: its three endpoints stand in for the issuer.
    endpoints = ("OIDC_AUTHORIZE_URL=https://sso.uni.edu/a\nOIDC_TOKEN_URL=https://sso.uni.edu/t\n"
                 "OIDC_USERINFO_URL=https://sso.uni.edu/u?schema=openid\n")  # fmt: skip
    settings, problems, _ = load("AUTHENTICATOR=oidc\nOAUTH_CLIENT_ID=x\n" + endpoints)
    assert problems == [] and settings.oidc_userinfo_url == "https://sso.uni.edu/u?schema=openid"
    _, problems, _ = load("AUTHENTICATOR=oidc\nOAUTH_CLIENT_ID=x\n" + endpoints.split("\n", 1)[1])
    assert [p.what for p in problems] == [
        "OIDC_TOKEN_URL and OIDC_USERINFO_URL are set but not OIDC_AUTHORIZE_URL"
    ]
    problem = only_problem("OIDC_AUTHORIZE_URL=https://sso.uni.edu/a\n")
    assert problem.where == ".env:1" and problem.what == (
        "OIDC_AUTHORIZE_URL is set but not OIDC_TOKEN_URL and OIDC_USERINFO_URL"
    )


# Every setting that is a number, and inputs that are not one in ASCII digits: superscripts and
# other scripts' digits (str.isdigit() takes them, and int() turned full-width 8000 into 8000),
# underscores, signs, exponents, special floats.
NUMERIC = ["PORT", "HTTPS_PORT", "HTTP_PORT", "PIDS_LIMIT", "LOGIN_RATE_LIMIT",
           "PASSWORD_MIN_LENGTH", "LOGIN_ATTEMPTS", "MEM_LIMIT", "CPU_LIMIT",
           "CULL_IDLE_TIMEOUT", "LOCKOUT", "DISK_LIMIT", "GROUP_DISK_LIMIT", "ACME_DNS_WAIT"]  # fmt: skip
ODD_NUMBERS = ["\u00b2", "\uff18\uff10\uff10\uff10", "\u0663", "1_000", "1e3", "+5", "-1",
               "nan", "inf", "0x10", "\u00bd", "8\u00b2", "\uff12G", "\u0661h"]  # fmt: skip


@pytest.mark.parametrize("key", NUMERIC)
def test_every_numeric_setting_takes_only_ascii_digits(key):
    numbers = {f.key for f in FIELDS if re.fullmatch(r"[0-9]+[a-zA-Z]?", f.default)}
    assert numbers == set(NUMERIC)  # every setting whose default is a number is tried
    for odd in ODD_NUMBERS:
        problem = only_problem(f"{key}={odd}\n")  # never a traceback, never a number
        assert problem.where == ".env:1" and problem.what.startswith(f"{key}={odd} "), problem


def test_a_long_value_is_quoted_briefly():
    for text in (
        "HUB_NAME=" + "h" * 200_000,
        "x" * 200_000 + "=1",
        "SHARED_DATA=/" + "a" * 200_000,
    ):
        _, problems, warnings = load(text + "\n")
        shown = " ".join([*map(str, problems), *warnings])
        assert shown and len(shown) < 500 and "characters)" in shown, shown[:600]


def test_a_swarm_needs_its_shared_storage_no_disk_store_and_a_port_of_its_own_behind_nginx(
    tmp_path,
):
    assert load("")[0].engine == "docker"
    settings, problems, _ = load(f"ENGINE=Swarm\nSWARM_STORAGE={tmp_path}\n")
    assert problems == [] and (settings.engine, settings.swarm_storage) == ("swarm", str(tmp_path))
    problem = only_problem("ENGINE=swarm\n")
    assert (problem.what, problem.where) == ("ENGINE=swarm needs SWARM_STORAGE", "default")
    assert "docs/swarm.md" in problem.fix
    nginx = (
        f"ENGINE=swarm\nSWARM_STORAGE={tmp_path}\nPROXY=nginx\nPUBLIC_URL=https://j.uni.edu/hub/\n"
    )
    assert load(nginx)[1] == []  # the bundled nginx reaches the hub at PORT on loopback
    (problem,) = load(nginx + "PORT=443\n")[1]
    assert problem.what.startswith("PORT is 443, as HTTPS_PORT is") and problem.where == ".env:5"
    # A DISK_STORE must be on btrfs, which these tests' folders are not: the check alone.
    values = {**vars(settings), "disk_store": "/srv/classhub-disks"}
    (problem,) = settings_mod._cross_checks(values, {**settings.sources, "DISK_STORE": ".env:3"})
    assert problem.what.startswith("DISK_STORE is for one server") and problem.where == ".env:3"


def test_a_sites_registry_is_named_as_docker_names_one():
    for raw, kept in [("", ""), ("Registry.Uni.EDU:5000", "registry.uni.edu:5000"),
                      ("reg.uni.edu/classhub/", "reg.uni.edu/classhub"), ("10.0.0.5:5000", "10.0.0.5:5000")]:  # fmt: skip
        settings, problems, _ = load(f"SWARM_REGISTRY={raw}\n")
        assert problems == [] and settings.swarm_registry == kept, raw
    for raw in ("https://reg.uni.edu", "reg uni", "reg.uni.edu:port"):
        problem = only_problem(f"SWARM_REGISTRY={raw}\n")
        assert (
            "which is not a registry's host" in problem.what and "without https://" in problem.fix
        )


def test_disk_settings(tmp_path):
    settings, problems, _ = load("DISK_LIMIT=20G\nGROUP_DISK_LIMIT=512M\n")
    assert problems == [] and settings.disk_store == ""
    assert (settings.disk_limit, settings.group_disk_limit) == (20 * 1024**3, 512 * 1024**2)
    default, _, _ = load("")
    assert (default.disk_limit, default.group_disk_limit) == (5 * 1024**3, 10 * 1024**3)
    # The unit tests' folders are not on btrfs (the end-to-end tests make a real store).
    problem = only_problem(f"DISK_STORE={tmp_path}\n")
    assert "which cannot limit a folder's size (btrfs can)" in problem.what, problem
    assert "docs/disk-limits.md" in problem.fix
    assert "is not a folder" in only_problem(f"DISK_STORE={tmp_path}/nothing\n").what
    assert "is not a folder" in only_problem("DISK_STORE=relative/store\n").what
    assert "at least 64M" in only_problem("DISK_LIMIT=10M\n").fix


def test_egress_allow_takes_addresses_networks_and_ports_and_names_a_bad_one():
    settings, problems, _ = load("EGRESS_ALLOW=10.1.2.3:5432, 10.20.0.0/16 [fd00::5]:443\n")
    assert problems == []
    assert [(t.network, t.port) for t in settings.egress_allow] == [
        ("10.1.2.3/32", 5432), ("10.20.0.0/16", None), ("fd00::5/128", 443)]  # fmt: skip
    assert load("")[0].egress_allow == ()
    problem = only_problem("HUB_NAME=math\nEGRESS_ALLOW=10.1.2.3, licence.campus.edu:27000\n")
    assert problem.where == ".env:2"
    assert "EGRESS_ALLOW" in problem.what and "licence.campus.edu:27000" in problem.what
    assert "a host name is not looked up" in problem.what and "EGRESS_ALLOW=" in problem.fix
