"""Certificates from an ACME CA (ACME=true): what the host decides for the renewer and reads back.

The renewer (`<hub>-acme`, acme/renew-certificates) runs certbot beside the bundled nginx; this
module is the one place that says what it is given and where things are:

- `secrets/acme/` (0700, the renewer's `ACME_STATE`): `certbot/` is certbot's own state (the
  ACME account key under `accounts/`, every certificate and key under `archive/`), `served/` the
  pair nginx serves (seeded here with the self-signed pair, so nginx starts before the CA has
  answered), `status.json` the last attempt, which setup and status read;
- `secrets/acme-eab-kid` and `secrets/acme-eab-hmac`: external account binding, written by the
  administrator when the CA asks for it (campus CAs);
- `secrets/acme-rfc2136.ini`: with ACME_CHALLENGE=dns-01, certbot's RFC 2136 credentials
  (the DNS server, the TSIG key's name, secret and algorithm), written by the administrator;
- `state/acme-challenges/`: the HTTP-01 files, which nginx serves on HTTP_PORT.

`explain` turns the CA's reason for a refusal into what to check; `certbot_lines` is the same
request for an administrator's own nginx (PROXY=none).
"""

from __future__ import annotations

import datetime
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from . import names, tls
from .errors import UserError
from .files import ensure_private_dir
from .inputs.settings import LETS_ENCRYPT, Settings
from .paths import Paths
from .plan import Step

# Inside the renewer's container (and, for the challenge folder and the served pair, nginx's).
IN_STATE = "/acme"
IN_WEBROOT = "/var/www/acme"
IN_SECRETS = "/run/classhub"
IN_CA = "/etc/classhub/acme-ca.pem"
IN_SERVED = "/etc/classhub/tls"  # nginx's: render.NGINX_CERT_IN_CONTAINER is in it

EAB_KID, EAB_HMAC, RFC2136 = "acme-eab-kid", "acme-eab-hmac", "acme-rfc2136.ini"
RFC2136_KEYS = ("dns_rfc2136_server", "dns_rfc2136_name", "dns_rfc2136_secret")
# How long setup waits for the CA's answer (a DNS-01 attempt waits ACME_DNS_WAIT besides).
ANSWER_WAIT = 300


def state_dir(paths: Paths) -> Path:
    return paths.secrets_dir / "acme"


def served_pair(paths: Paths) -> tuple[Path, Path]:
    folder = state_dir(paths) / "served"
    return folder / "cert.pem", folder / "key.pem"


def webroot(paths: Paths) -> Path:
    return paths.state_dir / "acme-challenges"


def status_file(paths: Paths) -> Path:
    return state_dir(paths) / "status.json"


def cert_names(settings: Settings) -> list[str]:
    """The names the certificate holds: PUBLIC_URL's host, and its wildcard with USER_SUBDOMAINS."""
    return [name.removeprefix("DNS:") for name in tls.names(settings) if name.startswith("DNS:")]


def eab_files(paths: Paths) -> tuple[Path, Path]:
    return paths.secrets_dir / EAB_KID, paths.secrets_dir / EAB_HMAC


def input_problems(paths: Paths, settings: Settings) -> list[str]:
    """What the administrator's own ACME files lack (every one at once); [] when ready."""
    problems = []
    kid, hmac = eab_files(paths)
    if kid.exists() != hmac.exists():
        have, lack = (kid, hmac) if kid.exists() else (hmac, kid)
        problems.append(
            f"secrets/{have.name} is there but secrets/{lack.name} is not: external account "
            "binding needs both (the key id and the HMAC key your CA gave), or neither"
        )
    for path in (kid, hmac):
        if path.exists() and not _text(path):
            problems.append(f"secrets/{path.name} is empty or unreadable: write what your CA gave")
    if settings.acme_challenge == "dns-01":
        ini = paths.secrets_dir / RFC2136
        if not ini.is_file():
            problems.append(
                f"ACME_CHALLENGE=dns-01 needs secrets/{RFC2136}: your DNS server's address and the "
                "TSIG key that may update the zone (docs/nginx-and-tls.md shows the five lines)"
            )
        else:
            keys = {
                line.split("=", 1)[0].strip() for line in _text(ini).splitlines() if "=" in line
            }
            lacking = [key for key in RFC2136_KEYS if key not in keys]
            if lacking:
                problems.append(
                    f"secrets/{RFC2136} lacks {', '.join(lacking)} (docs/nginx-and-tls.md)"
                )
    return problems


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def environment(paths: Paths, settings: Settings) -> dict[str, str]:
    """The renewer's environment (what acme/renew-certificates reads)."""
    env = {
        "ACME_NAMES": ",".join(cert_names(settings)),
        "ACME_DIRECTORY": settings.acme_directory,
        "ACME_EMAIL": settings.acme_email,
        "ACME_CHALLENGE": settings.acme_challenge,
        "ACME_DNS_WAIT": str(settings.acme_dns_wait),
        "ACME_STATE": IN_STATE,
        "ACME_WEBROOT": IN_WEBROOT,
    }
    if settings.acme_challenge == "dns-01":
        env["ACME_RFC2136"] = f"{IN_SECRETS}/{RFC2136}"
    kid, hmac = eab_files(paths)
    if kid.exists() and hmac.exists():
        env["ACME_EAB_KID_FILE"] = f"{IN_SECRETS}/{EAB_KID}"
        env["ACME_EAB_HMAC_FILE"] = f"{IN_SECRETS}/{EAB_HMAC}"
    if settings.acme_ca_bundle is not None:
        env["REQUESTS_CA_BUNDLE"] = IN_CA
    return env


def mounts(paths: Paths, settings: Settings) -> dict[str, dict[str, str]]:
    """The renewer's mounts: its state (read-write), the challenge folder, the secrets it reads."""
    found = {
        str(state_dir(paths)): {"bind": IN_STATE, "mode": "rw"},
        str(webroot(paths)): {"bind": IN_WEBROOT, "mode": "rw"},
    }
    named = set(environment(paths, settings).values())  # only the files it is told to read
    for name in (EAB_KID, EAB_HMAC, RFC2136):
        if f"{IN_SECRETS}/{name}" in named:
            found[str(paths.secrets_dir / name)] = {"bind": f"{IN_SECRETS}/{name}", "mode": "ro"}
    if settings.acme_ca_bundle is not None:
        found[str(settings.acme_ca_bundle)] = {"bind": IN_CA, "mode": "ro"}
    return found


def nginx_mounts(paths: Paths) -> dict[str, dict[str, str]]:
    """What nginx mounts with ACME=true: the served folder (whole, so a replaced pair shows) and
    the challenge folder it answers the CA from."""
    return {
        str(served_pair(paths)[0].parent): {"bind": IN_SERVED, "mode": "ro"},
        str(webroot(paths)): {"bind": IN_WEBROOT, "mode": "ro"},
    }


# --- setup: the host's side, before the containers ---


def setup_steps(paths: Paths, settings: Settings) -> list[Step]:
    """The renewer's folders, and the pair nginx serves until the CA answers (a copy of the
    self-signed one, which the step before makes)."""
    problems = input_problems(paths, settings)
    if problems:
        raise UserError("ACME=true, but:\n" + "\n".join(f"  - {p}" for p in problems)
                        + "\nNothing was changed.")  # fmt: skip
    cert, key = served_pair(paths)
    label = paths.show(cert.parent)
    own_cert, own_key = tls.self_signed_paths(paths)
    from_ca = isinstance((read_status(paths) or {}).get("served"), dict)

    def current() -> bool:
        """Served: the CA's pair, or else the self-signed one as it is now (its names change
        with USER_SUBDOMAINS and PUBLIC_URL)."""
        if not (cert.exists() and key.exists()):
            return False
        return from_ca or (own_cert.exists() and cert.read_bytes() == own_cert.read_bytes())

    if current() and webroot(paths).is_dir():
        return [Step(label, "present" + ("" if from_ca else " (the self-signed pair)"))]

    def seed() -> None:
        ensure_private_dir(state_dir(paths))
        ensure_private_dir(cert.parent)
        folder = webroot(paths)
        ensure_private_dir(paths.state_dir)
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)  # nginx's workers (www-data) read the CA's challenge files
        if current():
            return
        for source, target in ((own_key, key), (own_cert, cert)):
            new = target.with_suffix(".new")
            shutil.copyfile(source, new)
            new.chmod(0o600)
            new.replace(target)

    state = "an older self-signed pair" if cert.exists() else "missing"
    return [Step(label, state, "copy the self-signed pair in: nginx serves it until the CA has "
                 "issued a certificate", seed)]  # fmt: skip


# --- what the renewer says ---


def read_status(paths: Paths) -> dict | None:
    try:
        found = json.loads(status_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _when(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None


def _day(stamp: str | float | None) -> str:
    at = _when(stamp) if isinstance(stamp, str) or stamp is None else stamp
    if at is None:
        return "?"
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def serving(status: dict | None, settings: Settings) -> dict | None:
    """The certificate from this CA that nginx serves, holding every name, or None."""
    served = (status or {}).get("served")
    if not isinstance(served, dict) or served.get("directory") != settings.acme_directory:
        return None
    if any(name not in served.get("names", []) for name in cert_names(settings)):
        return None
    return served


def describe(status: dict | None, settings: Settings) -> str:
    """The certificate's row in setup's and status's table: what nginx serves, until when,
    the last attempt and its error."""
    served = serving(status, settings)
    had = (status or {}).get("served")
    if served is None and isinstance(had, dict):
        text = (f"from {_issuer(had)}, valid until {_day(had.get('not_after'))}, but not from "
                "ACME_DIRECTORY or lacking a name: asked for anew")  # fmt: skip
    elif served is None:
        text = "self-signed until the CA issues one"
    else:
        text = (f"from {_issuer(served)}, valid until {_day(served.get('not_after'))}, renews "
                f"from {_day(served.get('renew_from'))}")  # fmt: skip
    if status is None:
        return text + "; the renewer has not run yet"
    if status.get("last_attempt"):
        text += f"; last attempt {_day(status['last_attempt'])}"
        error = status.get("error")
        if status.get("state") == "asking":
            text += ", in progress"
        elif isinstance(error, dict):  # the renewer clears it on success
            text += f" failed: {explain(error, settings)}"
            if status.get("next_attempt"):
                text += f"; next attempt {_day(status['next_attempt'])}"
        else:
            text += ", succeeded"
    return text


def _issuer(served: dict) -> str:
    issuer = str(served.get("issuer", ""))
    for part in issuer.split(","):
        if part.startswith(("CN=", "O=")):
            return part.split("=", 1)[1]
    return issuer or "the CA"


def explain(error: dict, settings: Settings) -> str:
    """The CA's (or certbot's) reason for a refusal, in words, with what to check."""
    kind, detail = str(error.get("type", "")), str(error.get("detail", ""))
    low, host, port = detail.lower(), settings.public_host, settings.http_port
    said = f" (the CA said: {detail})" if kind != "client" else f" ({detail})"
    # certbot refuses by itself when the directory says EAB is required: before "client"
    if "external account" in low or kind == "externalAccountRequired":
        return (f"the CA requires external account binding, or refused the one sent: write the key "
                f"id your CA gave in secrets/{EAB_KID} and its HMAC key in secrets/{EAB_HMAC}"
                + said)  # fmt: skip
    if kind == "client":  # certbot's own failure: the CA was not reached, or not trusted
        if "certificate_verify_failed" in low:
            return (f"the HTTPS certificate of ACME_DIRECTORY ({settings.acme_directory}) cannot "
                    "be verified: for a campus CA name its root in ACME_CA_BUNDLE" + said)  # fmt: skip
        if any(w in low for w in ("connection", "max retries", "name or service", "timed out")):
            return (f"ACME_DIRECTORY ({settings.acme_directory}) cannot be reached: check the URL "
                    "and that this server may make HTTPS connections out" + said)  # fmt: skip
        return f"certbot failed{said}"
    if settings.acme_challenge == "dns-01" and kind in ("dns", "unauthorized", "incorrectResponse"):
        return (f"the CA did not find the TXT record at _acme-challenge.{host}: check that "
                f"secrets/{RFC2136} names the DNS server that holds {host}'s zone, that its key may "
                "update the zone, and that ACME_DNS_WAIT lets the record reach every DNS server"
                + said)  # fmt: skip
    if kind == "dns" or any(w in low for w in ("nxdomain", "could not resolve", "no such host",
                                               "no valid a records", "servfail")):  # fmt: skip
        return (f"{host} does not resolve to this server in the CA's DNS: add an A (or AAAA) "
                f"record for {host} with this server's public address, wait for it to spread, "
                "and run invoke setup again" + said)  # fmt: skip
    if kind == "connection" or any(w in low for w in ("connection refused", "timeout", "timed out",
                                                      "no route to host")):  # fmt: skip
        return (f"the CA could not connect to http://{host}:{port}/: check that {host} points at "
                f"this server and that port {port} (HTTP_PORT) is open to the internet in every "
                "firewall on the way" + said)  # fmt: skip
    if kind in ("unauthorized", "incorrectResponse"):
        return (
            f"the CA reached {host} but not this hub's challenge file: {host} points at "
            f"another server, or something else answers on port {port}" + said
        )
    if kind == "rateLimited":
        return ("the CA's rate limit: it issues no more for these names for now. Wait until the "
                "time it names (Let's Encrypt's limits last up to a week); while experimenting use "
                "a staging directory (docs/nginx-and-tls.md)" + said)  # fmt: skip
    if kind in ("rejectedIdentifier", "caa"):
        return (f"the CA will not issue for {host}: a CAA record in its DNS, or the CA's policy, "
                "forbids it" + said)  # fmt: skip
    if kind == "badNonce":
        return ("the CA kept refusing requests (badNonce, its replay check), retries included: "
                "it may be overloaded; the renewer tries again later" + said)  # fmt: skip
    if kind == "refused":
        return f"the CA refused{said}"
    return f"the CA refused ({kind}){said}"


# --- setup: the engine's side, after the containers ---


def _answered(status: dict, since: float) -> bool:
    """Whether the renewer has finished an attempt begun at `since` or later (it writes its
    times to the millisecond)."""
    attempted = _when(status.get("last_attempt"))
    done = status.get("state") in ("ok", "failed")
    return done and attempted is not None and attempted > since - 0.001


def certificate_step(
    paths: Paths, settings: Settings, restart: Callable[[str], None], echo: Callable[[str], None]
) -> Step:
    """The certificate nginx serves: from the CA, or asked for now (by a new renewer, or by the
    running one restarted) and reported in words; a refusal leaves nginx as it was and setup
    goes on."""
    label = "certificate for " + ", ".join(cert_names(settings))
    status = read_status(paths)
    state = describe(status, settings)
    served = serving(status, settings)
    if served is not None and status is not None and not status.get("error"):
        return Step(label, state)
    planned = time.time()
    container = names.acme_container(settings.hub_name)
    how = ("HTTP-01 through nginx on port " + str(settings.http_port)
           if settings.acme_challenge == "http-01" else "DNS-01 through RFC 2136")  # fmt: skip

    def ask() -> None:
        found = read_status(paths) or {}
        started = _when(found.get("started"))
        since = planned
        if started is None or started < planned:  # not started by this setup: ask it again
            since = time.time()
            restart(container)
        echo(f"   asking {settings.acme_directory} ({how}) ...")
        dns_wait = settings.acme_dns_wait if settings.acme_challenge == "dns-01" else 0
        deadline = time.monotonic() + ANSWER_WAIT + dns_wait
        while time.monotonic() < deadline:
            now = read_status(paths) or {}
            if _answered(now, since):
                break
            time.sleep(1)
        else:
            echo(f"   the CA has not answered yet: {container} goes on asking; invoke status shows "
                 "how it went")  # fmt: skip
            return
        result = serving(now, settings)
        if now.get("state") == "ok" and result is not None:
            echo(f"   got a certificate from {_issuer(result)}, valid until "
                 f"{_day(result.get('not_after'))}; nginx serves it within seconds and it renews "
                 f"by itself from {_day(result.get('renew_from'))}")  # fmt: skip
            return
        error = now.get("error") if isinstance(now.get("error"), dict) else {}
        had = now.get("served")
        keeps = (f"the certificate it had (valid until {_day(had.get('not_after'))})"
                 if isinstance(had, dict) else "the self-signed certificate (browsers warn)")  # fmt: skip
        echo(f"   NO CERTIFICATE: {explain(error or {}, settings)}.")
        echo(f"   The hub stays up: nginx keeps serving {keeps}. {container} tries again at "
             f"{_day(now.get('next_attempt'))} and later; run invoke setup to try at once.")  # fmt: skip

    return Step(label, state, f"ask {settings.acme_directory} ({how})", ask)


# --- your own nginx (PROXY=none) ---


CERTBOT_WEBROOT = "/var/www/letsencrypt"  # where certbot_lines' webroot is, which the site serves


def _certbot_host(settings: Settings) -> str:
    return settings.public_host or "example.edu"


def certbot_pair(settings: Settings) -> tuple[str, str]:
    """Where certbot keeps the certificate and key `certbot_lines` get (its --cert-name)."""
    live = f"/etc/letsencrypt/live/{_certbot_host(settings)}"
    return f"{live}/fullchain.pem", f"{live}/privkey.pem"


def certbot_lines(settings: Settings) -> str:
    """The certbot commands (as comment lines) that get and renew the certificate `invoke nginx
    --server` names (`certbot_pair`), for an administrator's own nginx."""
    host = _certbot_host(settings)
    webroot_path = CERTBOT_WEBROOT
    command = f"certbot certonly --cert-name {host}"
    if settings.acme_directory != LETS_ENCRYPT:
        command += f" --server {settings.acme_directory}"
    if settings.acme_email:
        command += f" --email {settings.acme_email}"
    lines = ["# The certificate, from an ACME CA with Debian's certbot:"]
    if settings.user_subdomains:
        lines += [
            "# the wildcard for USER_SUBDOMAINS needs the DNS challenge; rfc2136.ini (mode 0600)",
            "# names your DNS server and a TSIG key that may update the zone (docs/nginx-and-tls.md).",
            "#   apt-get install certbot python3-certbot-dns-rfc2136",
            f"#   {command} --authenticator dns-rfc2136 \\",
            "#     --dns-rfc2136-credentials /etc/letsencrypt/rfc2136.ini \\",
            f"#     -d {host} -d '*.{host}' --deploy-hook 'systemctl reload nginx'",
        ]
    else:
        lines += [
            f"# the CA fetches a file from http://{host}/.well-known/acme-challenge/, which the",
            f"# site below serves from {webroot_path}.",
            f"#   apt-get install certbot && mkdir -p {webroot_path}",
            f"#   {command} --webroot -w {webroot_path} \\",
            f"#     -d {host} --deploy-hook 'systemctl reload nginx'",
        ]
    lines += [
        "# A campus CA that asks for external account binding: add --eab-kid KID --eab-hmac-key HMAC.",
        "# certbot renews it by itself (certbot.timer) and reloads nginx after each renewal.",
    ]
    return "\n".join(lines) + "\n"
