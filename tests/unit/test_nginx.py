"""The printed nginx block, in a real nginx, in front of a real HTTP server on loopback.

This proves the block parses, routes /<HUB_NAME>/ with the path intact, redirects the bare path, and
passes the headers the hub and websockets need. (Issue-level websocket tests through the real hub
come with the Docker tests.)
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from classhub import render
from classhub.inputs.parsers import Context
from classhub.inputs.settings import load_settings
from classhub.paths import Paths
from tests.conftest import PROJECT


class Echo(BaseHTTPRequestHandler):
    """Answers every GET with the path and headers it received, as JSON."""

    def do_GET(self):
        body = json.dumps(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def nginx_with_block(tmp_path: Path, upstream: int):
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    assert binary, "nginx is needed for this test: apt-get install nginx-light (.ci/run does)"
    settings, problems, _ = load_settings(
        f"HUB_NAME=math101\nPORT={upstream}\n", ".env", {}, Context(root=PROJECT, cpu_count=2)
    )
    assert not problems
    (tmp_path / "classhub.conf").write_text(render.nginx_location(Paths.at(PROJECT), settings))
    port = free_port()
    (tmp_path / "nginx.conf").write_text(
        f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        include {tmp_path}/classhub.conf;
    }}
}}
"""
    )
    conf = str(tmp_path / "nginx.conf")
    check = subprocess.run(
        [binary, "-t", "-c", conf, "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-c", conf, "-e", str(tmp_path / "error.log"), "-g", "daemon off;"]
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            assert proc.poll() is None, (tmp_path / "error.log").read_text()
            time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(port: int, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_block_routes_hub_path_with_forwarded_headers(nginx_with_block: int):
    port = nginx_with_block
    response, body = get(port, "/math101/hub/login?next=%2Fmath101%2F")
    assert response.status == 200
    seen = json.loads(body)
    assert seen["path"] == "/math101/hub/login?next=%2Fmath101%2F"  # path passed unchanged
    assert seen["headers"]["host"] == f"127.0.0.1:{port}"  # with the port the browser used
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_block_passes_websocket_upgrade(nginx_with_block: int):
    response, body = get(
        nginx_with_block,
        "/math101/user/alice/api/kernels/k1/channels",
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
    )
    assert response.status == 200
    seen = json.loads(body)["headers"]
    assert seen["upgrade"] == "websocket"
    assert seen["connection"].lower() == "upgrade"


def test_bare_path_redirects_and_other_paths_are_not_routed(nginx_with_block: int):
    response, _ = get(nginx_with_block, "/math101")
    assert response.status == 302
    assert response.getheader("Location").endswith("/math101/")
    response, _ = get(nginx_with_block, "/math1010/hub/")
    assert response.status == 404


# --- invoke nginx --server: the whole TLS site ---------------------------------------------------


def start_nginx(binary: str, folder: Path, conf_text: str, port: int) -> subprocess.Popen:
    conf = folder / "nginx.conf"
    conf.write_text(conf_text)
    log = folder / "error.log"
    check = subprocess.run([binary, "-t", "-c", str(conf), "-e", str(log)],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([binary, "-c", str(conf), "-e", str(log), "-g", "daemon off;"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)


@pytest.fixture
def tls_site(tmp_path: Path, upstream: int):
    """`invoke nginx --server` for a hub on `upstream`, with a self-signed pair, in a real nginx."""
    from classhub import commands, tls
    from classhub.console import Output

    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    assert binary, "nginx is needed for this test: apt-get install nginx-light (.ci/run does)"
    checkout = Paths.at(tmp_path)
    shutil.copytree(PROJECT / "nginx", tmp_path / "nginx")
    tls.make_self_signed(checkout)
    cert, key = tls.self_signed_paths(checkout)
    https, http = free_port(), free_port()
    (tmp_path / "userlist").write_text("ann\n")
    (tmp_path / ".env").write_text(
        f"HUB_NAME=math101\nPORT={upstream}\nHTTPS_PORT={https}\nHTTP_PORT={http}\n"
        f"TLS_CERT={cert}\nTLS_KEY={key}\nLOGIN_RATE_LIMIT=5\n"
    )
    printed = io.StringIO()
    commands.nginx(checkout, {}, Output(printed, io.StringIO()), server=True)
    site = printed.getvalue()
    assert f"ssl_certificate {cert};" in site
    proc = start_nginx(binary, tmp_path, f"""
pid {tmp_path}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
{site}
}}
""", https)  # fmt: skip
    try:
        yield https, http
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def https_request(port: int, method: str, path: str, source: str = "127.0.0.1"):
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context,
                                       source_address=(source, 0))  # fmt: skip
    conn.request(method, path, body="username=ann&password=x" if method == "POST" else None)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_tls_site_redirects_http_and_sends_hsts(tls_site):
    https, http_port = tls_site
    response, _ = get(http_port, "/math101/hub/login")
    assert response.status == 301
    assert response.getheader("Location") == f"https://127.0.0.1:{https}/math101/hub/login"
    response, body = https_request(https, "GET", "/math101/hub/login")
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000"
    assert json.loads(body)["headers"]["x-forwarded-proto"] == "https"


def test_tls_site_refuses_tls_1_1(tls_site):
    https, _ = tls_site
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that the client offers TLS 1.1 at all
    # The refusal comes from the server: its alert, not the client's own settings.
    with (
        socket.create_connection(("127.0.0.1", https), timeout=10) as raw,
        pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"),
    ):
        context.wrap_socket(raw)
    with socket.create_connection(("127.0.0.1", https), timeout=10) as raw:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with context.wrap_socket(raw) as tls_socket:
            assert tls_socket.version() == "TLSv1.2"


def test_tls_site_limits_login_posts_per_address(tls_site):
    https, _ = tls_site
    codes = [https_request(https, "POST", "/math101/hub/login")[0].status for _ in range(6)]
    assert codes == [200] * 5 + [429]  # LOGIN_RATE_LIMIT=5
    assert (
        https_request(https, "GET", "/math101/hub/login")[0].status == 200
    )  # the form: not counted
    assert https_request(https, "POST", "/math101/hub/login", source="127.0.0.2")[0].status == 200
