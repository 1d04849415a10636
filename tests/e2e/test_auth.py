"""Sign-in the way each school does it (issue: sign-in): AUTHENTICATOR=native on a hub of its own.

NativeAuthenticator runs for real on the pinned JupyterHub, through classhub's compatibility layer
(hub/classhub_hub/native.py): people sign up, an admin approves newcomers on the hub's page, the
newcomer logs in and runs code in their server with DEFAULT_GROUPS' folder; roster names are
approved at once; the settings (password length, lockout, sign-up, open to all) hold.
"""

from __future__ import annotations

import re

import pytest

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, sweep

ROSTER = "hub-admin admin\nann team-1\nbob\ngroup: guests\n"
NATIVE = {
    "AUTHENTICATOR": "native",
    "OPEN_TO_ALL": "true",
    "DEFAULT_GROUPS": "guests",
    "PASSWORD_MIN_LENGTH": "10",
    "LOGIN_ATTEMPTS": "3",
    "LOCKOUT": "1m",
}
GOOD = "a long enough pass phrase"


def set_env(paths, values: dict[str, str]) -> None:
    env = paths.root / ".env"
    lines = [line for line in env.read_text().splitlines()
             if line.split("=", 1)[0] not in values]  # fmt: skip
    env.write_text("\n".join(lines + [f"{k}={v}" for k, v in values.items()]) + "\n")


@pytest.fixture(scope="module")
def native(hub: Hub, tmp_path_factory):
    """A hub of its own with AUTHENTICATOR=native, open to all (images are the shared ones)."""
    name = f"{hub.name}n"
    port = free_port()
    paths = new_checkout(tmp_path_factory.mktemp("auth") / "clone", name, port, ROSTER)
    set_env(paths, NATIVE)
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield Hub(name, paths, port, read_passwords(paths), hub.client)
    finally:
        sweep(hub.client, name)


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
