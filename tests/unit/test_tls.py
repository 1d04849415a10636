"""The bundled nginx's self-signed certificate (classhub/tls.py): the names it holds, checked by a
real TLS handshake that verifies the host name as a browser does."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from classhub import tls
from classhub.inputs.parsers import Context
from classhub.inputs.settings import load_settings
from classhub.paths import Paths
from tests.conftest import PROJECT


def settings_of(env: str):
    settings, problems, _ = load_settings(env, ".env", {}, Context(PROJECT, 2))
    assert not problems, problems
    return settings


def handshake(cert: Path, key: Path, server_hostname: str) -> None:
    """A TLS handshake with a server holding (cert, key), verified against cert for the name."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_side.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = ssl.create_default_context(cafile=str(cert))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname=server_hostname),
        ):
            pass
    finally:
        thread.join(timeout=10)
        listener.close()


def test_user_subdomains_get_a_certificate_for_every_users_server(tmp_path: Path):
    paths = Paths.at(tmp_path)
    cert, key = tls.self_signed_paths(paths)
    one_origin = settings_of("PROXY=nginx\nPUBLIC_URL=https://class.localhost/hub/\n")
    tls.make_self_signed(paths, tls.names(one_origin))
    assert tls.names_in(cert) >= {"DNS:class.localhost", "DNS:localhost", "IP:127.0.0.1"}
    handshake(cert, key, "class.localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert, key, "ann.class.localhost")

    made = cert.read_bytes()
    tls.make_self_signed(paths, tls.names(one_origin))
    assert cert.read_bytes() == made  # nothing missing: kept

    own = settings_of(
        "PROXY=nginx\nPUBLIC_URL=https://class.localhost/hub/\nUSER_SUBDOMAINS=true\n"
    )
    assert tls.missing_names(cert, tls.names(own)) == ["DNS:*.class.localhost"]
    tls.make_self_signed(paths, tls.names(own))  # what setup's step runs: a new pair
    assert tls.missing_names(cert, tls.names(own)) == []
    handshake(cert, key, "ann.class.localhost")
    handshake(cert, key, "class.localhost")
    assert oct(cert.stat().st_mode & 0o777) == oct(key.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in cert.parent.iterdir()) == ["selfsigned.crt", "selfsigned.key"]


def test_an_address_public_url_is_named_as_an_address_and_kept_once_made(tmp_path: Path):
    settings = settings_of("PROXY=nginx\nPUBLIC_URL=https://10.1.2.3:8443/hub/\n")
    assert tls.names(settings) == ["IP:10.1.2.3"]
    six = settings_of("PROXY=nginx\nPUBLIC_URL=https://[::1]:8443/hub/\n")
    assert tls.names(six) == ["IP:::1"]
    paths = Paths.at(tmp_path)
    tls.make_self_signed(paths, tls.names(six))
    cert, _ = tls.self_signed_paths(paths)
    assert tls.missing_names(cert, tls.names(six)) == []  # openssl's 0:0:...:1 is ::1: kept
