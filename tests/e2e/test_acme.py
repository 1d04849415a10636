"""Automatic HTTPS (issue: certificates from an ACME CA, renewed without dropping a class): a hub
behind the bundled nginx with ACME=true gets its certificates from pebble, Let's Encrypt's test
CA, on loopback (tests/e2e/acme_lab.py), whose DNS is a BIND server the test writes to.

The tests run in order on one hub: a name that does not resolve, then a certificate through
HTTP-01, renewed by itself while a kernel's websocket keeps running code, a renewal that fails
when the CA is gone, a closed HTTP port, a CA that refuses, a CA that requires external account
binding, a wildcard through DNS-01; and certbot's lines for a host's own nginx (PROXY=none), run
against pebble."""

from __future__ import annotations

import datetime
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import requests

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke, plan_rows

from .acme_lab import ZONE, Lab
from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, set_env, sweep

ROSTER = "hub-admin admin\nann\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    found = Lab(tmp_path_factory.mktemp("acme-lab"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def site(hub: Hub, lab: Lab, tmp_path_factory):
    """A hub of its own behind the bundled nginx with ACME=true, its host in the lab's zone, and
    a pebble answering on its HTTP_PORT (certificates last 2 minutes)."""
    name = f"{hub.name}t"
    https, http = free_port(), free_port()
    host = f"{name}.{ZONE}"
    pebble = lab.pebble(http, lifetime=120)
    paths = new_checkout(tmp_path_factory.mktemp("acme") / "clone", name, free_port(), ROSTER)
    set_env(paths, {
        "PROXY": "nginx", "HTTPS_PORT": str(https), "HTTP_PORT": str(http),
        "PUBLIC_URL": f"https://{host}:{https}/{name}/", "ACME": "true",
        "ACME_DIRECTORY": pebble.directory, "ACME_CA_BUNDLE": str(lab.ca),
        "ACME_EMAIL": "it@example.edu",
    })  # fmt: skip
    try:
        yield {"name": name, "host": host, "https": https, "http": http, "paths": paths,
               "pebble": pebble}  # fmt: skip
    finally:
        sweep(hub.client, name)


def setup(site) -> str:
    result = invoke(site["paths"], "setup", env=engine_environ(), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def served(site) -> str:
    """The certificate nginx serves for the hub's name (PEM)."""
    pem = ssl.get_server_certificate(("127.0.0.1", site["https"]))
    return pem.strip()


def renewers_last(site) -> str:
    """The certificate the renewer last put in the served folder (the leaf of its chain, PEM)."""
    chain = (site["paths"].secrets_dir / "acme" / "served" / "cert.pem").read_text()
    end = "-----END CERTIFICATE-----"
    return chain.split(end)[0].strip() + "\n" + end


def verify(site, root: str) -> dict:
    """Connect as a browser trusting only `root` does, by the hub's name; the peer's certificate."""
    context = ssl.create_default_context(cadata=root)
    with (
        socket.create_connection(("127.0.0.1", site["https"]), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=site["host"]) as tls,
    ):
        return tls.getpeercert()


def login_page(site) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        page = requests.get(f"https://127.0.0.1:{site['https']}/{site['name']}/hub/login",
                            verify=False, timeout=30)  # fmt: skip
    return page.status_code


def test_a_name_that_does_not_resolve_is_said_in_words_and_the_hub_serves_self_signed(lab, site):
    lab.remove(site["host"])  # not in the CA's DNS
    output = setup(site)
    assert "NO CERTIFICATE" in output, output[-3000:]
    assert f"{site['host']} does not resolve to this server in the CA's DNS" in output
    assert "add an A (or AAAA) record" in output and "invoke setup to try at once" in output
    assert "Traceback" not in output
    assert login_page(site) == 200  # the class is not locked out
    pem = served(site)
    assert pem == (site["paths"].secrets_dir / "tls" / "selfsigned.crt").read_text().strip()
    status = invoke(site["paths"], "status", env=engine_environ(), timeout=300)
    row, _ = plan_rows(status.stdout)[f"certificate for {site['host']}"]
    assert "self-signed until the CA issues one" in row and "failed" in row, row
    assert "does not resolve" in row and "next attempt" in row


def test_the_certificate_comes_through_http_01_and_verifies_against_pebbles_root(lab, site):
    lab.set_address(site["host"])
    output = setup(site)
    assert "got a certificate from Pebble Intermediate CA" in output, output[-3000:]
    assert "renews by itself" in output
    peer = until_served_verified(site, site["pebble"].root())
    assert ("DNS", site["host"]) in peer["subjectAltName"]
    key = site["paths"].secrets_dir / "acme" / "served" / "key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (site["paths"].secrets_dir / "acme").stat().st_mode & 0o777 == 0o700
    accounts = site["paths"].secrets_dir / "acme" / "certbot" / "accounts"
    assert any(accounts.rglob("private_key.json"))  # the account key, under secrets/
    status = invoke(site["paths"], "status", env=engine_environ(), timeout=300)
    row, action = plan_rows(status.stdout)[f"certificate for {site['host']}"]
    assert "from Pebble Intermediate CA" in row and "valid until" in row, row
    assert "succeeded" in row
    assert action == "none"
    again = setup(site)  # nothing to do: the certificate holds
    assert "asking" not in again and "ask https" not in again, again[-2000:]


def until_served_verified(site, root: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return verify(site, root)
        except ssl.SSLCertVerificationError:
            assert time.monotonic() < deadline, "nginx does not serve a certificate from pebble"
            time.sleep(1)


def test_a_short_lived_certificate_renews_itself_while_a_kernels_websocket_keeps_running(
    hub: Hub, site
):
    """Pebble's certificates here last 120 s: the renewer asks again after 80 s, and nginx
    reloads the new pair gracefully. A student's kernel websocket, open through nginx all along,
    keeps running code before, during and after."""
    first = served(site)
    ann = Browser(f"https://127.0.0.1:{site['https']}/{site['name']}/", "ann")
    assert ann.login(read_passwords(site["paths"])["ann"]).status_code == 302
    ann.start()
    ann.open_lab()
    kernel = ann.new_kernel()
    channels = ann.channels(kernel)
    try:
        assert channels.run("n = 0\nprint('open')") == "open\n"
        deadline = time.monotonic() + 150
        runs = 0
        while served(site) == first:
            assert time.monotonic() < deadline, "the certificate was not renewed by itself"
            runs += 1
            assert channels.run("n += 1\nprint(n)") == f"{runs}\n"
            time.sleep(2)
        # the same websocket, after nginx reloaded the new pair
        for _ in range(3):
            runs += 1
            assert channels.run("n += 1\nprint(n)") == f"{runs}\n"
            time.sleep(1)
    finally:
        channels.close()
    logs = hub.client.containers.get(names.nginx_container(site["name"])).logs().decode()
    assert "the certificate changed; nginx reloaded it" in logs
    renewer = hub.client.containers.get(names.acme_container(site["name"])).logs().decode()
    assert renewer.count("got a certificate for") >= 2, renewer[-2000:]
    ann.stop()


def test_a_failed_renewal_keeps_the_certificate_shows_in_status_and_backs_off(site):
    """The CA gone while its certificate is still valid: the renewal fails, nginx keeps serving
    that certificate, and status says when and why, and when the renewer tries again."""
    status_file = site["paths"].secrets_dir / "acme" / "status.json"
    site["pebble"].process.terminate()
    site["pebble"].process.wait(timeout=30)
    deadline = time.monotonic() + 150  # the next renewal is due within 80 s
    while (status := json.loads(status_file.read_text())).get("state") != "failed":
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert served(site) == renewers_last(site)  # the one it had
    assert login_page(site) == 200
    failed = datetime.datetime.fromisoformat(status["last_failure"])
    again = datetime.datetime.fromisoformat(status["next_attempt"])
    assert 299 <= (again - failed).total_seconds() <= 301  # the first back-off: 5 minutes
    shown = invoke(site["paths"], "status", env=engine_environ(), timeout=300)
    row, action = plan_rows(shown.stdout)[f"certificate for {site['host']}"]
    assert "from Pebble Intermediate CA" in row and "valid until" in row, row
    assert "failed: ACME_DIRECTORY" in row and "cannot be reached" in row, row
    assert "next attempt" in row and action.startswith("ask ")


def test_a_closed_http_port_is_said_in_words_and_nginx_keeps_the_certificate_it_had(lab, site):
    """A CA whose HTTP-01 connections find nothing listening, as when a firewall on the way
    keeps port 80 closed: this pebble connects to a port nothing answers on."""
    walled = lab.pebble(free_port())
    set_env(site["paths"], {"ACME_DIRECTORY": walled.directory})
    output = setup(site)
    assert "NO CERTIFICATE" in output, output[-3000:]
    said = f"the CA could not connect to http://{site['host']}:{site['http']}/"
    assert said in output and f"port {site['http']} (HTTP_PORT) is open" in output
    assert "connection refused" in output  # the CA's own words, after ours
    assert "nginx keeps serving the certificate it had" in output
    assert login_page(site) == 200
    walled.process.terminate()


def test_a_ca_that_refuses_is_said_in_words_and_nginx_keeps_the_certificate_it_had(lab, site):
    refusing = lab.pebble(site["http"], refuse=100)  # every request refused (badNonce)
    set_env(site["paths"], {"ACME_DIRECTORY": refusing.directory})
    output = setup(site)
    assert "NO CERTIFICATE" in output and "badNonce" in output, output[-3000:]
    assert "nginx keeps serving the certificate it had" in output
    assert login_page(site) == 200
    # nginx still serves the last certificate the renewer got from the first pebble
    assert served(site) == renewers_last(site)
    selfsigned = (site["paths"].secrets_dir / "tls" / "selfsigned.crt").read_text().strip()
    assert served(site) != selfsigned
    refusing.process.terminate()


def test_external_account_binding_is_sent_when_configured(lab, site, hub: Hub):
    kid, hmac = "classhub-kid", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    strict = lab.pebble(site["http"], eab={kid: hmac})
    set_env(site["paths"], {"ACME_DIRECTORY": strict.directory})
    without = setup(site)
    assert "NO CERTIFICATE" in without and "external account binding" in without, without[-3000:]
    assert "secrets/acme-eab-kid" in without
    secrets = site["paths"].secrets_dir
    (secrets / "acme-eab-kid").write_text(kid + "\n")
    (secrets / "acme-eab-hmac").write_text(hmac + "\n")
    for path in (secrets / "acme-eab-kid", secrets / "acme-eab-hmac"):
        path.chmod(0o600)
    output = setup(site)
    assert "got a certificate from Pebble Intermediate CA" in output, output[-3000:]
    until_served_verified(site, strict.root())
    # the HMAC key is in no log: certbot's own, the renewer's, setup's
    logs = secrets / "acme" / "logs"
    assert any(logs.glob("letsencrypt.log*"))
    for log in logs.glob("letsencrypt.log*"):
        assert hmac not in log.read_text(errors="replace"), log
    renewer = hub.client.containers.get(names.acme_container(site["name"])).logs().decode()
    assert hmac not in renewer and hmac not in output + without


def test_a_wildcard_for_user_subdomains_comes_through_dns_01(lab, site, hub: Hub):
    secrets = site["paths"].secrets_dir
    for name in ("acme-eab-kid", "acme-eab-hmac"):
        (secrets / name).unlink()
    fresh = lab.pebble(site["http"])
    set_env(site["paths"], {"ACME_DIRECTORY": fresh.directory,
                            "USER_SUBDOMAINS": "true", "ACME_CHALLENGE": "dns-01",
                            "ACME_DNS_WAIT": "1s"})  # fmt: skip
    missing = invoke(site["paths"], "setup", env=engine_environ(), timeout=300)
    assert missing.returncode != 0 and "secrets/acme-rfc2136.ini" in missing.stderr
    assert "Traceback" not in missing.stderr
    ini = secrets / "acme-rfc2136.ini"
    ini.write_text(lab.rfc2136_ini())
    ini.chmod(0o600)
    lab.remove(site["host"])  # DNS-01 asks for no address at all
    output = setup(site)
    assert "got a certificate from Pebble Intermediate CA" in output, output[-3000:]
    peer = until_served_verified(site, fresh.root())
    wanted = {("DNS", site["host"]), ("DNS", f"*.{site['host']}")}
    assert wanted <= set(peer["subjectAltName"])


def test_certbots_lines_for_your_own_nginx_get_the_certificate_its_site_names(
    hub: Hub, lab: Lab, tmp_path
):
    """PROXY=none: `invoke nginx --server` prints certbot's lines beside the site; the site run
    in a real nginx on loopback answers pebble's HTTP-01 challenge from the printed folder, and
    the printed certbot command (its folders moved into the test's) gets the certificate."""
    http, https = free_port(), free_port()
    pebble = lab.pebble(http)
    host = f"own.{ZONE}"
    lab.set_address(host)
    paths = new_checkout(tmp_path / "clone", "own", free_port())
    set_env(paths, {"PUBLIC_URL": f"https://{host}/own/", "HTTP_PORT": str(http),
                    "HTTPS_PORT": str(https), "ACME_DIRECTORY": pebble.directory})  # fmt: skip
    printed = invoke(paths, "nginx", "--server", env=engine_environ())
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout
    assert (
        "location /.well-known/acme-challenge/" in text and f"--server {pebble.directory}" in text
    )
    # nginx's workers (nobody) read the challenge files, as from /var/www/letsencrypt: a folder
    # they may enter, outside pytest's own (root's alone)
    webroot = Path(tempfile.mkdtemp(prefix="classhub-webroot-"))
    webroot.chmod(0o755)
    site = text.replace("/var/www/letsencrypt", str(webroot))
    live = tmp_path / "letsencrypt"
    site = site.replace("/etc/letsencrypt", str(live))
    command = next(line.strip("# \\") for line in site.splitlines() if "certbot certonly" in line)
    rest = next(
        line.strip("# \\") for line in site.splitlines() if line.lstrip("# ").startswith("-d ")
    )
    # Only the HTTP server matters for the challenge; the HTTPS one needs the certificate first.
    http_only = site.split("server {\n    listen " + str(https))[0]
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid; error_log stderr; events {{}}\n"
        "http { access_log off; client_body_temp_path body; proxy_temp_path proxy;\n"
        f"{http_only}\n}}\n"
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    nginx = [binary, "-p", str(tmp_path), "-c", str(conf)]
    checked = subprocess.run([*nginx, "-t"], capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode() + conf.read_text()
    subprocess.run(nginx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    try:
        args = (command + " " + rest).replace("--deploy-hook 'systemctl reload nginx'", "").split()
        got = subprocess.run(
            [*args, "-n", "--agree-tos", "--register-unsafely-without-email",
             "--config-dir", str(live), "--work-dir", str(tmp_path / "work"),
             "--logs-dir", str(tmp_path / "logs")],
            capture_output=True, text=True, timeout=300,
            env={"PATH": "/usr/bin:/bin", "REQUESTS_CA_BUNDLE": str(lab.ca)},
        )  # fmt: skip
        assert got.returncode == 0, got.stdout + got.stderr
    finally:
        subprocess.run([*nginx, "-s", "stop"], capture_output=True, timeout=30)
        shutil.rmtree(webroot, ignore_errors=True)
    named = next(line.split()[1].rstrip(";") for line in site.splitlines()
                 if line.strip().startswith("ssl_certificate "))  # fmt: skip
    cert = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", named],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert f"DNS:{host}" in cert.stdout, cert.stdout + cert.stderr
