"""The bundled nginx's certificate (PROXY=nginx): the administrator's own pair (TLS_CERT and
TLS_KEY), or a self-signed pair that setup makes once in secrets/tls/.

Rules: a pair is made only when neither file exists and never replaced by setup (delete both to
get a new one); the key is 0600 in the 0700 secrets folder. The self-signed certificate names this
host and 127.0.0.1, and lasts 825 days; browsers warn about it, which setup says.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from .errors import UserError
from .files import ensure_private_dir
from .paths import Paths
from .settings import Settings

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


def make_self_signed(paths: Paths) -> None:
    """A new self-signed pair for this host (openssl, which Debian's ca-certificates brings)."""
    cert, key = self_signed_paths(paths)
    if cert.exists() and key.exists():
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
    names = f"subjectAltName=DNS:{host},DNS:localhost,IP:127.0.0.1"
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", str(DAYS), "-subj", f"/CN={host}", "-addext", names,
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        for path in (cert, key):
            path.unlink(missing_ok=True)
        raise UserError(
            f"openssl could not make a self-signed certificate: {result.stderr.strip()}"
        )
    key.chmod(0o600)
    cert.chmod(0o600)  # not secret, but secrets/ holds only 0600 files
