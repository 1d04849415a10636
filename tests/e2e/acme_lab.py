"""An ACME CA and a DNS server on loopback, for the certificate tests (test_acme.py).

- pebble: Let's Encrypt's own ACME test server (Debian's package). Each one a test starts has a
  directory URL of its own, its HTTPS signed by this lab's CA (ACME_CA_BUNDLE names it), looks
  names up in the lab's DNS server alone, and connects for HTTP-01 to the hub's HTTP_PORT;
  options: a short certificate lifetime, its rate of refused requests (badNonce), and external
  account binding required.
- named (BIND 9, Debian's): the zone classhub.test, which answers pebble's lookups and takes
  RFC 2136 updates signed with the lab's TSIG key (what certbot's DNS-01 plugin sends, and what
  `set_address` and `remove` send through nsupdate).

Nothing leaves loopback.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from .conftest import free_port

ZONE = "classhub.test"
TSIG_NAME = "classhub-lab"


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{process.args[0]} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Pebble:
    directory: str
    management: int
    process: subprocess.Popen
    ca: Path

    def root(self) -> str:
        """The PEM of the root pebble signs with (made anew each time pebble starts)."""
        found = requests.get(f"https://127.0.0.1:{self.management}/roots/0", verify=str(self.ca),
                             timeout=10)  # fmt: skip
        found.raise_for_status()
        return found.text


class Lab:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, ca_key = folder / "lab-ca.pem", folder / "lab-ca.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                 "/CN=classhub test lab CA", "-keyout", str(ca_key), "-out", str(self.ca))  # fmt: skip
        self.tls, tls_key, csr = folder / "pebble.pem", folder / "pebble.key", folder / "pebble.csr"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                 "-keyout", str(tls_key), "-out", str(csr))  # fmt: skip
        (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-days", "2", "-extfile", str(folder / "san.ext"),
                 "-out", str(self.tls))  # fmt: skip
        self.tls_key = tls_key
        self.tsig = base64.b64encode(os.urandom(32)).decode()
        self.dns_port = free_port()
        self.processes: list[subprocess.Popen] = []
        self._start_named()

    def _start_named(self) -> None:
        zone = self.folder / "zone.db"
        zone.write_text(
            "$TTL 2\n"
            f"@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 60 60 600 2\n"
            f"@ IN NS ns.{ZONE}.\n"
            "ns IN A 127.0.0.1\n"
        )
        conf = self.folder / "named.conf"
        conf.write_text(
            f'options {{ directory "{self.folder}"; pid-file "{self.folder}/named.pid";\n'
            f"  listen-on port {self.dns_port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n"
            "  recursion no; dnssec-validation no; };\n"
            f'key "{TSIG_NAME}" {{ algorithm hmac-sha256; secret "{self.tsig}"; }};\n'
            f'zone "{ZONE}" {{ type master; file "{zone}"; allow-update {{ key "{TSIG_NAME}"; }}; }};\n'
        )
        named = shutil.which("named") or "/usr/sbin/named"
        log = self.folder / "named.log"
        process = subprocess.Popen([named, "-g", "-c", str(conf)], stdout=log.open("w"),
                                   stderr=subprocess.STDOUT)  # fmt: skip
        self.processes.append(process)
        _wait_for_port(self.dns_port, process, log)

    def _update(self, lines: str) -> None:
        result = subprocess.run(
            ["nsupdate", "-y", f"hmac-sha256:{TSIG_NAME}:{self.tsig}"],
            input=f"server 127.0.0.1 {self.dns_port}\n{lines}send\n",
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    def set_address(self, name: str, address: str = "127.0.0.1") -> None:
        self._update(f"update delete {name} A\nupdate add {name} 2 A {address}\n")

    def remove(self, name: str) -> None:
        self._update(f"update delete {name} A\n")

    def rfc2136_ini(self) -> str:
        """certbot's RFC 2136 credentials for the lab's DNS server (secrets/acme-rfc2136.ini)."""
        return (
            "dns_rfc2136_server = 127.0.0.1\n"
            f"dns_rfc2136_port = {self.dns_port}\n"
            f"dns_rfc2136_name = {TSIG_NAME}\n"
            f"dns_rfc2136_secret = {self.tsig}\n"
            "dns_rfc2136_algorithm = HMAC-SHA256\n"
        )

    def pebble(self, http_port: int, lifetime: int | None = None, refuse: int = 0,
               eab: dict[str, str] | None = None) -> Pebble:  # fmt: skip
        """A new pebble: `lifetime` seconds a certificate lasts, `refuse` percent of good
        requests refused (badNonce), `eab` the key ids and HMAC keys it requires."""
        port, management = free_port(), free_port()
        config = {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(self.tls),
            "privateKey": str(self.tls_key),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab is not None,
            "externalAccountMACKeys": eab or {},
        }
        if lifetime is not None:
            config["certificateValidityPeriod"] = lifetime
        path = self.folder / f"pebble-{port}.json"
        path.write_text(json.dumps({"pebble": config}))
        log = self.folder / f"pebble-{port}.log"
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": str(refuse)}
        process = subprocess.Popen(
            ["pebble", "-config", str(path), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self.processes.append(process)
        _wait_for_port(port, process, log)
        return Pebble(f"https://127.0.0.1:{port}/dir", management, process, self.ca)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
