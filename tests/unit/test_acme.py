"""Certificates from an ACME CA (ACME=true), without a CA: when the renewer asks (its pure
functions, loaded from acme/renew-certificates), how certbot's failures read, the words setup
prints for each, the settings and secrets it checks, the served pair and what the site serves on
HTTP_PORT. The renewer in setup's plan is in test_plans.py; tests/e2e/test_acme.py gets real
certificates from pebble."""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import io
import json
from pathlib import Path

import pytest

from classhub import acme, commands, render
from classhub.console import Output
from classhub.errors import UserError
from classhub.inputs.parsers import Context
from classhub.inputs.settings import load_settings
from classhub.paths import Paths
from tests.conftest import PROJECT, make_checkout

HUB = "math"
DAY = 86400.0
HOST = "jupyter.example.edu"
URL = f"https://{HOST}/{HUB}/"


def renewer():
    path = PROJECT / "acme" / "renew-certificates"
    loader = importlib.machinery.SourceFileLoader("renew_certificates", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


R = renewer()
DIRECTORY = "https://acme.example.edu/directory"


def settings_of(text: str):
    found, problems, _ = load_settings(text, ".env", {}, Context(PROJECT, 2))
    assert not problems, problems
    return found


def problems_of(text: str) -> list[str]:
    _, problems, _ = load_settings(text, ".env", {}, Context(PROJECT, 2))
    return [str(p) for p in problems]


ACME_ENV = f"HUB_NAME={HUB}\nPROXY=nginx\nPUBLIC_URL={URL}\nACME=true\n"


# --- when the renewer asks ---


def test_a_certificate_is_due_when_a_third_of_its_lifetime_is_left():
    assert R.renew_from(0, 90 * DAY) == 60 * DAY
    assert R.renew_from(1000, 1120) == 1080  # pebble's 2-minute ones in the e2e test


def test_failed_attempts_back_off_from_five_minutes_to_six_hours():
    assert [R.retry_after(n) for n in (1, 2, 3, 4)] == [300, 600, 1200, 2400]
    assert R.retry_after(30) == 6 * 3600


def test_the_renewer_asks_at_once_for_what_nginx_does_not_serve_from_this_ca():
    names_ = [HOST, f"*.{HOST}"]
    held = {"directory": DIRECTORY, "names": names_, "not_before": 0.0, "not_after": 90 * DAY}
    assert "no certificate" in R.why_ask(None, names_, DIRECTORY)
    assert "not from ACME_DIRECTORY" in R.why_ask(held, names_, "https://other/dir")
    assert R.why_ask({**held, "names": [HOST]}, names_, DIRECTORY).endswith(f"lacks *.{HOST}")
    assert R.why_ask(held, names_, DIRECTORY) == ""
    now = 10 * DAY
    assert R.next_attempt(None, names_, DIRECTORY, 0, None, now) == now
    assert R.next_attempt(held, names_, DIRECTORY, 0, None, now) == 60 * DAY
    # after two failures in a row: not before 10 minutes after the last
    assert R.next_attempt(None, names_, DIRECTORY, 2, now - 60, now) == now - 60 + 600
    assert R.next_attempt(held, names_, DIRECTORY, 1, 61 * DAY, 61 * DAY) == 61 * DAY + 300


# certbot 2.1's own words (Debian bookworm's, run against pebble)
NXDOMAIN = """Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for nx.classhub.test
Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: nx.classhub.test
  Type:   dns
  Detail: DNS problem: NXDOMAIN looking up A for nx.classhub.test

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.
Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org."""
UNVERIFIED = """Saving debug log to /tmp/lab/cbl/letsencrypt.log
An unexpected error occurred:
requests.exceptions.SSLError: HTTPSConnectionPool(host='127.0.0.1', port=14000): Max retries exceeded with url: /dir (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:992)')))
Ask for help or search for solutions at https://community.letsencrypt.org."""
NONCE = """Saving debug log to /acme/logs/letsencrypt.log
Unable to register an account with ACME server. Error returned by the ACME server: JWS has an invalid anti-replay nonce: dWVCwgVl0Tv7CgZq_BDeOQ
Ask for help or search for solutions at https://community.letsencrypt.org."""
LIMITED = """An unexpected error occurred:
urn:ietf:params:acme:error:rateLimited :: There were too many requests of a given type :: too many certificates already issued for exact set of domains"""


def test_certbots_failures_are_read_as_the_cas_error_type_and_detail():
    assert R.reason(NXDOMAIN) == {
        "type": "dns", "detail": "DNS problem: NXDOMAIN looking up A for nx.classhub.test"
    }  # fmt: skip
    assert R.reason(UNVERIFIED)["type"] == "client"
    assert "CERTIFICATE_VERIFY_FAILED" in R.reason(UNVERIFIED)["detail"]
    assert R.reason(NONCE)["type"] == "badNonce"
    assert R.reason(LIMITED)["type"] == "rateLimited"
    assert R.reason("")["detail"] == "certbot failed without a word"


# --- the words setup and status print ---


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ({"type": "dns", "detail": "NXDOMAIN looking up A"},
         [f"{HOST} does not resolve to this server", "add an A (or AAAA) record"]),
        ({"type": "connection", "detail": "could not resolve URL http://x/"},
         [f"{HOST} does not resolve"]),
        ({"type": "connection", "detail": "dial tcp 1.2.3.4:80: connect: connection refused"},
         [f"could not connect to http://{HOST}:80/", "port 80 (HTTP_PORT) is open"]),
        ({"type": "unauthorized", "detail": "Invalid response: 404"},
         ["points at another server, or something else answers on port 80"]),
        ({"type": "rateLimited", "detail": "too many certificates"},
         ["rate limit", "staging"]),
        ({"type": "externalAccountRequired", "detail": "no EAB"},
         ["secrets/acme-eab-kid", "secrets/acme-eab-hmac"]),
        ({"type": "client",  # certbot's own words, when the directory says EAB is required
          "detail": "Server requires external account binding. Please use --eab-kid and "
                    "--eab-hmac-key."},
         ["secrets/acme-eab-kid", "secrets/acme-eab-hmac"]),
        ({"type": "badNonce", "detail": "JWS has an invalid anti-replay nonce"},
         ["badNonce", "tries again later"]),
        ({"type": "caa", "detail": "CAA record forbids"}, ["CAA record"]),
        ({"type": "client", "detail": "SSLError: CERTIFICATE_VERIFY_FAILED"},
         ["ACME_CA_BUNDLE"]),
        ({"type": "client", "detail": "ValueError: Requesting 127.0.0.1/dir: Connection refused"},
         ["ACME_DIRECTORY", "cannot be reached"]),
    ],
)  # fmt: skip
def test_each_refusal_is_said_in_words_with_what_to_check(error, says):
    said = acme.explain(error, settings_of(ACME_ENV))
    for words in says:
        assert words in said, said
    assert error["detail"] in said  # and the CA's own words


def test_with_dns_01_a_missing_record_points_at_the_rfc2136_key():
    settings = settings_of(ACME_ENV + "ACME_CHALLENGE=dns-01\n")
    said = acme.explain({"type": "unauthorized", "detail": "No TXT record found"}, settings)
    assert f"_acme-challenge.{HOST}" in said and "secrets/acme-rfc2136.ini" in said


# --- settings and secrets ---


def test_acme_needs_the_bundled_nginx_a_dns_name_no_own_certificate_and_dns_01_for_wildcards(
    tmp_path: Path,
):
    [alone] = problems_of(f"HUB_NAME={HUB}\nPUBLIC_URL={URL}\nACME=true\n")
    assert "PROXY is not nginx" in alone and "invoke nginx --server" in alone
    [ip] = problems_of(
        f"HUB_NAME={HUB}\nPROXY=nginx\nPUBLIC_URL=https://10.1.2.3/{HUB}/\nACME=true\n"
    )
    assert "IP address" in ip and "DNS name" in ip
    [wild] = problems_of(ACME_ENV + "USER_SUBDOMAINS=true\n")
    assert "ACME_CHALLENGE=dns-01" in wild and "wildcard" in wild
    settings_of(ACME_ENV + "USER_SUBDOMAINS=true\nACME_CHALLENGE=dns-01\n")
    cert = tmp_path / "c.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    [own] = problems_of(ACME_ENV + f"TLS_CERT={cert}\nTLS_KEY={key}\n")
    assert "TLS_CERT is set" in own
    bad = problems_of(ACME_ENV + "ACME_DIRECTORY=http://acme.example.edu/dir\nACME_EMAIL=me\n"
                      "ACME_CHALLENGE=tls-alpn-01\nACME_DNS_WAIT=soon\n")  # fmt: skip
    assert len(bad) == 4, bad
    assert "https:// URL" in bad[0] and "e-mail" in bad[1] and "http-01" in bad[2]


def test_own_acme_files_are_checked_all_at_once_before_anything_is_made(tmp_path: Path):
    paths = Paths.at(tmp_path)
    paths.secrets_dir.mkdir()
    settings = settings_of(ACME_ENV + "ACME_CHALLENGE=dns-01\n")
    (paths.secrets_dir / acme.EAB_KID).write_text("kid-1\n")
    found = acme.input_problems(paths, settings)
    assert len(found) == 2, found
    assert "secrets/acme-eab-kid is there but secrets/acme-eab-hmac is not" in found[0]
    assert "secrets/acme-rfc2136.ini" in found[1]
    (paths.secrets_dir / acme.EAB_HMAC).write_text("")
    (paths.secrets_dir / acme.RFC2136).write_text("dns_rfc2136_server = 10.0.0.53\n")
    found = acme.input_problems(paths, settings)
    assert "acme-eab-hmac is empty" in found[0]
    assert "lacks dns_rfc2136_name, dns_rfc2136_secret" in found[1]
    with pytest.raises(UserError, match="Nothing was changed"):
        acme.setup_steps(paths, settings)
    assert not acme.state_dir(paths).exists()


def test_the_renewer_gets_the_eab_and_rfc2136_files_and_the_campus_root_only_when_given(
    tmp_path: Path,
):
    paths = Paths.at(tmp_path)
    paths.secrets_dir.mkdir()
    settings = settings_of(ACME_ENV)
    env = acme.environment(paths, settings)
    assert env["ACME_NAMES"] == HOST and env["ACME_CHALLENGE"] == "http-01"
    assert "ACME_EAB_KID_FILE" not in env and "REQUESTS_CA_BUNDLE" not in env
    assert "ACME_RFC2136" not in env
    assert set(acme.mounts(paths, settings)) == {
        str(acme.state_dir(paths)),
        str(acme.webroot(paths)),
    }
    for name in (acme.EAB_KID, acme.EAB_HMAC):
        (paths.secrets_dir / name).write_text("x\n")
    wild = settings_of(ACME_ENV + "USER_SUBDOMAINS=true\nACME_CHALLENGE=dns-01\n")
    env = acme.environment(paths, wild)
    assert env["ACME_NAMES"] == f"{HOST},*.{HOST}"
    assert env["ACME_EAB_KID_FILE"] == f"{acme.IN_SECRETS}/{acme.EAB_KID}"
    assert env["ACME_RFC2136"] == f"{acme.IN_SECRETS}/{acme.RFC2136}"
    mounted = acme.mounts(paths, wild)
    assert mounted[str(paths.secrets_dir / acme.EAB_HMAC)]["mode"] == "ro"


def answer(paths: Paths, state: str, error: dict | None = None, served: dict | None = None):
    """What the renewer writes once it has asked (acme/renew-certificates)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    status = {"started": stamp, "last_attempt": stamp, "state": state, "error": error,
              "next_attempt": stamp, "served": served}  # fmt: skip
    acme.status_file(paths).write_text(json.dumps(status))


# --- what nginx serves on HTTP_PORT ---


def test_only_with_acme_does_the_bundled_nginx_answer_the_http_01_challenge(tmp_path: Path):
    paths = make_checkout(tmp_path / "clone")
    with_acme = render.nginx_bundled(paths, settings_of(ACME_ENV), "10.0.0.2:8000")
    assert "location /.well-known/acme-challenge/" in with_acme
    assert f"root {acme.IN_WEBROOT};" in with_acme
    assert f"ssl_certificate {acme.IN_SERVED}/cert.pem;" in with_acme
    plain = settings_of(f"HUB_NAME={HUB}\nPROXY=nginx\nPUBLIC_URL={URL}\n")
    assert "acme-challenge" not in render.nginx_bundled(paths, plain, "10.0.0.2:8000")


def test_nginx_server_prints_certbots_lines_for_the_certificate_it_names(tmp_path: Path):
    paths = make_checkout(tmp_path / "clone")
    (paths.root / "userlist").write_text("ann\n")

    def printed(text: str) -> str:
        (paths.root / ".env").write_text(text)
        out = io.StringIO()
        commands.nginx(paths, {}, Output(out, io.StringIO()), server=True)
        return out.getvalue()

    site = printed(f"HUB_NAME={HUB}\nPUBLIC_URL={URL}\n")
    assert f"certbot certonly --cert-name {HOST} --webroot -w /var/www/letsencrypt" in site
    assert "--server" not in site  # Let's Encrypt is certbot's own default
    assert "root /var/www/letsencrypt;" in site
    assert f"ssl_certificate /etc/letsencrypt/live/{HOST}/fullchain.pem;" in site
    campus = printed(f"HUB_NAME={HUB}\nPUBLIC_URL={URL}\nACME_DIRECTORY={DIRECTORY}\n"
                     "USER_SUBDOMAINS=true\nACME_EMAIL=it@example.edu\n")  # fmt: skip
    assert f"--server {DIRECTORY} --email it@example.edu --authenticator dns-rfc2136" in campus
    assert f"-d {HOST} -d '*.{HOST}'" in campus


def test_nginx_serves_the_self_signed_pair_as_it_is_now_until_the_ca_has_issued(tmp_path: Path):
    from classhub import tls

    paths = Paths.at(tmp_path)
    settings = settings_of(ACME_ENV)
    tls.make_self_signed(paths, [f"DNS:{HOST}"])
    [step] = acme.setup_steps(paths, settings)
    assert step.state == "missing" and step.run is not None
    step.run()
    cert, _ = acme.served_pair(paths)
    own, _ = tls.self_signed_paths(paths)
    assert cert.read_bytes() == own.read_bytes()
    assert acme.setup_steps(paths, settings)[0].run is None
    tls.make_self_signed(paths, [f"DNS:{HOST}", f"DNS:*.{HOST}"])  # USER_SUBDOMAINS came
    [step] = acme.setup_steps(paths, settings)
    assert step.state == "an older self-signed pair" and step.run is not None
    step.run()
    assert cert.read_bytes() == own.read_bytes()
    answer(paths, "ok", None, {"directory": settings.acme_directory, "names": [HOST]})
    cert.write_bytes(b"the CA's pair")  # the renewer's: never replaced by the self-signed one
    [step] = acme.setup_steps(paths, settings)
    assert step.run is None and step.state == "present"
