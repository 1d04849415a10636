"""Sign-in the way each school does it (issue: sign-in): AUTHENTICATOR=native on a hub of its own.

NativeAuthenticator runs for real on the pinned JupyterHub, through classhub's compatibility layer
(hub/classhub_hub/native.py): people sign up, an admin approves newcomers on the hub's page, the
newcomer logs in and runs code in their server with DEFAULT_GROUPS' folder; roster names are
approved at once; the settings (password length, lockout, sign-up, open to all) hold.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

from classhub import names
from classhub.student import Browser
from tests.conftest import PROJECT, invoke

from .conftest import (
    Hub,
    engine_environ,
    free_port,
    gateway,
    hub_beside,
    new_checkout,
    set_env,
    sweep,
)

ROSTER = "hub-admin admin\nann team-1\nbob\ngroup: guests\n"
NATIVE = {
    "AUTHENTICATOR": "native",
    # A new .env's: the roster's admin approves newcomers through classhub's admin role (with
    # admin:users), not as JupyterHub's admin.
    "ADMIN_SEES_USERS": "false",
    "OPEN_TO_ALL": "true",
    "HUB_TITLE": "Physics 101 & more",
    "DEFAULT_GROUPS": "guests",
    "PASSWORD_MIN_LENGTH": "10",
    "LOGIN_ATTEMPTS": "3",
    "LOCKOUT": "1m",
}
GOOD = "a long enough pass phrase"


@pytest.fixture(scope="module")
def native(hub: Hub, tmp_path_factory):
    """A hub of its own with AUTHENTICATOR=native, open to all (images are the shared ones)."""
    root = tmp_path_factory.mktemp("auth") / "clone"
    with hub_beside(hub, root, f"{hub.name}n", ROSTER, NATIVE) as native_hub:
        yield native_hub


def message(page) -> str:
    """The alert a NativeAuthenticator page shows (sign-up result, login error)."""
    found = re.search(r'class="alert[^"]*"[^>]*>\s*(.*?)\s*</', page.text, re.S)
    return (
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()
        if found
        else page.text[:500]
    )


def test_a_newcomer_signs_up_is_approved_by_an_admin_and_runs_code(native: Hub):
    jane = Browser(native.url, "jane.doe")
    page = jane.signup(GOOD)
    assert page.status_code == 200 and "sent to the admin" in message(page), message(page)
    refused = jane.login(GOOD)
    assert refused.status_code == 403
    assert "jane.doe has not been approved by an admin yet" in refused.text

    admin = Browser(native.url, "hub-admin")
    assert admin.login(native.passwords["hub-admin"]).status_code == 302
    listing = admin.session.get(native.url + "hub/authorize")
    assert listing.status_code == 200 and "jane.doe" in listing.text
    # A link on another site cannot make a signed-in admin approve anyone.
    forged = admin.session.get(
        native.url + "hub/authorize/jane.doe", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert forged.status_code == 403
    assert jane.login(GOOD).status_code == 403
    approve = admin.session.get(native.url + "hub/authorize/jane.doe", allow_redirects=False)
    assert approve.status_code == 302

    assert jane.login(GOOD).status_code == 302
    jane.start()
    jane.open_lab()
    out = jane.run(
        "import os, pathlib; pathlib.Path('guests/hello.txt').write_text('from jane');"
        "print(os.getuid(), sorted(os.listdir('.')), open('guests/hello.txt').read())"
    )
    assert out.split(None, 1)[0] == "1000" and "'guests'" in out and "from jane" in out, out
    model = admin.hub_api("GET", "/users/jane.doe").json()
    assert model["groups"] == ["guests"] and model["admin"] is False
    home = native.client.volumes.get(names.user_volume(native.name, "jane.doe"))
    assert home.attrs["Labels"] == names.labels(native.name, "user")
    jane.stop()


def test_the_native_login_page_shows_the_title_and_says_to_sign_up_first(native: Hub):
    page = requests.get(native.url + "hub/login", timeout=30)
    assert page.status_code == 200 and 'id="password_input"' in page.text  # NativeAuthenticator's
    intro = re.search(r'id="classhub-login-intro">(.*?)</div>', page.text, re.S)
    assert intro, page.text[:2000]
    assert '<h1 id="classhub-title">Physics 101 &amp; more</h1>' in intro.group(1)
    assert "New here? Sign up first" in intro.group(1)
    assert re.search(r"<title>\s*Physics 101 &amp; more\s*</title>", page.text)


def test_roster_names_are_approved_at_once_and_admin_names_are_reserved(native: Hub):
    ann = Browser(native.url, "ann")
    short = ann.signup("too short")
    assert "at least 10 characters" in message(short), message(short)
    page = ann.signup(GOOD)
    assert "signup was successful" in message(page), message(page)
    assert ann.login(GOOD).status_code == 302
    assert Browser(native.url, "ann").login(native.passwords["ann"]).status_code == 302

    taken = Browser(native.url, "hub-admin").signup(GOOD)
    assert message(taken) == "hub-admin is taken."
    bad = Browser(native.url, "Bad Name").signup(GOOD)
    assert "A username here must" in message(bad), message(bad)


def test_failed_logins_lock_a_name_out(native: Hub):
    bob = Browser(native.url, "bob")
    for _ in range(3):
        assert bob.login("not the password").status_code == 403
    locked = bob.login(native.passwords["bob"])
    assert locked.status_code == 403 and "Too many failed logins for bob" in locked.text
    # Another name is not locked.
    assert Browser(native.url, "ann").login(native.passwords["ann"]).status_code == 302


def test_closing_the_hub_keeps_roster_people_and_shuts_out_newcomers(native: Hub):
    # Setup again while open: the hub keeps the newcomer it let in (the roster does not list them).
    again = native.invoke("setup", timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    admin = Browser(native.url, "hub-admin")
    assert admin.login(native.passwords["hub-admin"]).status_code == 302
    assert admin.hub_api("GET", "/users/jane.doe").status_code == 200

    set_env(native.paths, {"OPEN_TO_ALL": "false", "SIGNUP": "false"})
    closed = native.invoke("setup", timeout=600)
    assert closed.returncode == 0, closed.stdout[-3000:] + closed.stderr[-3000:]
    assert Browser(native.url, "jane.doe").login(GOOD).status_code == 403
    assert Browser(native.url, "zed").signup(GOOD).status_code == 404
    assert Browser(native.url, "ann").login(GOOD).status_code == 302  # chose it before
    home = names.user_volume(native.name, "jane.doe")
    assert native.client.volumes.get(home)  # never deleted without an explicit flag


# --- AUTHENTICATOR=oidc against a real OpenID Connect provider ---------------------------------

IDP = PROJECT / "tests" / "idp"
CLIENT = ("classhub-test", "a-client-secret-for-the-tests")
OIDC_ROSTER = "hub-admin admin\njane.doe team-1\ngroup: chess-club\n"


@pytest.fixture(scope="module")
def oidc(hub: Hub, tmp_path_factory):
    """A hub of its own signing in with oidc-provider (tests/idp), which runs on this host at the
    default Docker bridge's address: the one address both this test's browser and the hub
    container reach. Its accounts: jane (Jane.Doe@uni.edu), bob (bob@elsewhere.org), janet
    (jane.doe@uni.edu, another account)."""
    name = f"{hub.name}o"
    port = free_port()
    address = gateway(hub.client, "bridge")
    idp_port = free_port()
    callback = f"http://127.0.0.1:{port}/{name}/hub/oauth_callback"
    provider = subprocess.Popen(
        ["node", "server.mjs", address, str(idp_port), *CLIENT, callback],
        cwd=IDP, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    paths = new_checkout(tmp_path_factory.mktemp("oidc") / "clone", name, port, OIDC_ROSTER)
    try:
        for line in provider.stdout:
            if line.startswith("listening "):
                issuer = line.split()[1]
                break
        else:
            raise AssertionError("the test provider did not start: " + provider.stdout.read())
        set_env(paths, {"AUTHENTICATOR": "oidc", "OIDC_ISSUER": issuer,
                        "OAUTH_CLIENT_ID": CLIENT[0], "ALLOWED_DOMAINS": "uni.edu",
                        "GROUPS_CLAIM": "groups"})  # fmt: skip
        missing = invoke(paths, "setup", env=engine_environ(), timeout=300)
        assert missing.returncode != 0 and "secrets/oauth_client_secret: missing" in missing.stderr
        secret = paths.root / "secrets" / "oauth_client_secret"
        secret.write_text(CLIENT[1] + "\n")
        secret.chmod(0o600)
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield Hub(name, paths, port, {}, hub.client)  # no passwords: people sign in at the provider
    finally:
        provider.terminate()
        provider.wait(10)
        sweep(hub.client, name)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_INPUT = re.compile(r"<input[^>]*>")
_ATTR = re.compile(r'(name|value)="([^"]*)"')


def sign_in(browser: Browser, account: str, stop_at_callback: bool = False):
    """Sign in through the provider as a browser does: the hub's redirect to the provider, its
    login form (any password: development interactions), its consent form, and back to the hub.
    Returns the last response (the hub's, or the callback's own URL with stop_at_callback)."""
    session = browser.session
    # To the hub's home page, not its default (which would start the server at once).
    start = browser.hub_url + "hub/oauth_login?next=" + browser.prefix + "hub/home"
    response = session.get(start, allow_redirects=False)
    for _ in range(20):
        location = response.headers.get("Location")
        if response.is_redirect and location:
            url = requests.compat.urljoin(response.url, location)
            if stop_at_callback and "/hub/oauth_callback" in url:
                return url
            response = session.get(url, allow_redirects=False)
            continue
        form = _FORM.search(response.text)
        if response.url.startswith(browser.hub_url) or not form:
            return response
        fields = [dict(_ATTR.findall(tag)) for tag in _INPUT.findall(form.group(2))]
        data = {f["name"]: f.get("value", "") for f in fields if "name" in f}
        if "login" in data:
            data.update(login=account, password="any")
        response = session.post(requests.compat.urljoin(response.url, form.group(1)), data=data,
                                allow_redirects=False)  # fmt: skip
    raise AssertionError(f"no end to the sign-in's redirects at {response.url}")


def test_single_sign_on_gives_the_roster_name_its_groups_and_server(oidc: Hub):
    jane = Browser(oidc.url, "jane.doe")
    landed = sign_in(jane, "jane")
    assert landed.url.startswith(oidc.url), landed.url
    model = jane.hub_api("GET", "/users/jane.doe").json()
    assert model["name"] == "jane.doe"
    assert sorted(model["groups"]) == ["chess-club", "team-1"]  # roster's and the claim's known one
    jane.start()
    jane.open_lab()
    out = jane.run("import os; print(sorted(os.listdir('.')))")
    assert "'chess-club'" in out and "'team-1'" in out, out
    jane.stop()


def test_an_address_outside_the_allowed_domain_is_refused_with_a_clear_page(oidc: Hub):
    page = sign_in(Browser(oidc.url, "bob"), "bob")
    assert page.status_code == 403
    assert "bob@elsewhere.org cannot sign in here: this hub takes addresses of uni.edu only" in (
        page.text
    )


def test_a_second_account_with_a_taken_name_is_refused(oidc: Hub):
    sign_in(Browser(oidc.url, "jane.doe"), "jane")  # jane owns jane.doe (if not already)
    page = sign_in(Browser(oidc.url, "jane.doe"), "janet")
    assert page.status_code == 403 and "already belongs to another account" in page.text


def test_a_tampered_state_is_refused(oidc: Hub):
    browser = Browser(oidc.url, "jane.doe")
    callback = sign_in(browser, "jane", stop_at_callback=True)
    assert "state=" in callback
    tampered = re.sub(r"state=([^&]+)", lambda m: "state=" + m.group(1)[::-1], callback)
    page = browser.session.get(tampered, allow_redirects=False)
    assert page.status_code == 400 and "state" in page.text.lower()
    assert not browser.hub_api("GET", "/users/jane.doe").ok  # not signed in


def test_a_provider_without_discovery_signs_in_from_its_endpoints(oidc: Hub):
    """OIDC_AUTHORIZE_URL, OIDC_TOKEN_URL and OIDC_USERINFO_URL instead of OIDC_ISSUER (after the
    tests above: it reconfigures the module's hub). The authorize URL's site names the accounts,
    which for this provider is its issuer, so jane keeps her name."""
    issuer = next(line.split("=", 1)[1] for line in (oidc.paths.root / ".env").read_text().split("\n")
                  if line.startswith("OIDC_ISSUER="))  # fmt: skip
    doc = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    set_env(oidc.paths, {"OIDC_ISSUER": "", "OIDC_AUTHORIZE_URL": doc["authorization_endpoint"],
                         "OIDC_TOKEN_URL": doc["token_endpoint"],
                         "OIDC_USERINFO_URL": doc["userinfo_endpoint"]})  # fmt: skip
    again = oidc.invoke("setup", timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    jane = Browser(oidc.url, "jane.doe")
    landed = sign_in(jane, "jane")
    assert landed.url.startswith(oidc.url), landed.url
    assert jane.hub_api("GET", "/users/jane.doe").json()["name"] == "jane.doe"
    assert sign_in(Browser(oidc.url, "bob"), "bob").status_code == 403  # the same rules


def test_removing_a_user_frees_their_name_for_another_account(oidc: Hub):
    sign_in(Browser(oidc.url, "jane.doe"), "jane")  # jane owns jane.doe (if not already)
    assert sign_in(Browser(oidc.url, "jane.doe"), "janet").status_code == 403
    removed = oidc.invoke("remove-user", "jane.doe")
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-3000:]
    added = oidc.invoke("add-user", "jane.doe", "--group", "team-1")
    assert added.returncode == 0, added.stdout[-3000:] + added.stderr[-3000:]
    janet = Browser(oidc.url, "jane.doe")
    assert sign_in(janet, "janet").url.startswith(oidc.url)
    assert janet.hub_api("GET", "/users/jane.doe").ok
    page = sign_in(Browser(oidc.url, "jane.doe"), "jane")  # now the name is janet's
    assert page.status_code == 403 and "already belongs to another account" in page.text
