"""The bundled nginx's certificate (PROXY=nginx): the administrator's own pair (TLS_CERT and
TLS_KEY), or a self-signed pair that setup makes once in secrets/tls/.

Rules: a pair is made when neither file exists, and made anew only when it does not name every
host students open (`names`: PUBLIC_URL's host, and with USER_SUBDOMAINS every subdomain of it,
besides this host, localhost and 127.0.0.1); delete both to get a new one otherwise. The key is
0600 in the 0700 secrets folder. The certificate lasts 825 days; browsers warn about it, which
setup says.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import subprocess
from pathlib import Path

from .errors import UserError
from .files import ensure_private_dir
from .inputs.settings import Settings
from .paths import Paths

DAYS = 825


def self_signed_paths(paths: Paths) -> tuple[Path, Path]:
    folder = paths.secrets_dir / "tls"
    return folder / "selfsigned.crt", folder / "selfsigned.key"


def cert_paths(paths: Paths, settings: Settings) -> tuple[Path, Path]:
    """(certificate, key) the bundled nginx serves."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return settings.tls_cert, settings.tls_key
    return self_signed_paths(paths)


def needs_self_signed(paths: Paths, settings: Settings) -> bool:
    cert, key = self_signed_paths(paths)
    return settings.tls_cert is None and not (cert.exists() and key.exists())


def names(settings: Settings) -> list[str]:
    """The names a certificate for this hub must hold, as subjectAltName entries: DNS:... and
    IP:... (PUBLIC_URL's host; with USER_SUBDOMAINS also DNS:*.host, the users' servers)."""
    host = settings.public_host
    try:
        return [f"IP:{ipaddress.ip_address(host)}"]
    except ValueError:
        return [f"DNS:{host}"] + ([f"DNS:*.{host}"] if settings.user_subdomains else [])


def names_in(cert: Path) -> set[str] | None:
    """The subjectAltName entries of a PEM certificate, as DNS:... and IP:...; None when openssl
    cannot read it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    result = subprocess.run(
        [openssl, "x509", "-noout", "-ext", "subjectAltName", "-in", str(cert)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if result.returncode != 0:
        return None
    found = re.findall(r"(DNS|IP Address):([^,\s]+)", result.stdout)
    # openssl writes IPv6 addresses long (0:0:...:1): the same form as names() gives
    return {f"DNS:{value}" if kind == "DNS" else f"IP:{ipaddress.ip_address(value)}"
            for kind, value in found}  # fmt: skip


def missing_names(cert: Path, wanted: list[str]) -> list[str]:
    """Which of `wanted` the certificate does not name (all of them if it cannot be read)."""
    held = names_in(cert)
    if held is None:
        return list(wanted)
    return [name for name in wanted if name not in held]


def make_self_signed(paths: Paths, wanted: list[str] | None = None) -> None:
    """A new self-signed pair for this host and `wanted` (tls.names), replacing one that lacks
    any of them (openssl, which Debian's ca-certificates brings)."""
    cert, key = self_signed_paths(paths)
    wanted = list(wanted or [])
    if cert.exists() and key.exists() and not missing_names(cert, wanted):
        return
    openssl = shutil.which("openssl")
    if openssl is None:
        raise UserError(
            "making a self-signed certificate needs openssl (apt-get install openssl); or set "
            "TLS_CERT and TLS_KEY in .env to your own certificate"
        )
    ensure_private_dir(paths.secrets_dir)
    ensure_private_dir(cert.parent)
    host = socket.gethostname()
    every = [f"DNS:{host}", "DNS:localhost", "IP:127.0.0.1"]
    every += [name for name in wanted if name not in every]
    new_cert, new_key = cert.with_suffix(".crt.new"), key.with_suffix(".key.new")
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", str(DAYS), "-subj", f"/CN={host}", "-addext", "subjectAltName=" + ",".join(every),
         "-keyout", str(new_key), "-out", str(new_cert)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        for path in (new_cert, new_key):
            path.unlink(missing_ok=True)
        raise UserError(
            f"openssl could not make a self-signed certificate: {result.stderr.strip()}"
        )
    new_key.chmod(0o600)
    new_cert.chmod(0o600)  # not secret, but secrets/ holds only 0600 files
    new_key.replace(key)  # each file replaced whole: nginx reads them when setup restarts it
    new_cert.replace(cert)
