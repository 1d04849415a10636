"""Stand-ins for what lies beyond this machine, for the egress tests (one server and swarm).

A network namespace of this machine holds a stand-in for the internet (198.51.100.2, a
documentation address), for a private network (10.222.33.44), for the metadata endpoint
(169.254.77.77: another link-local address; never 169.254.169.254 itself, which these machines
may use) and for two exceptions, each answering HTTP on port 8080, and for a name server on a
private network answering on port 53 as well, with host routes to it through a veth pair
(`stand_ins`; conftest's `outside` fixture). `reach` asks from a student's kernel.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

PORT = 8080
DNS_PORT = 53  # TCP: what a connection needs; the name server's port, whatever answers it
LINK = ("198.51.100.1", "198.51.100.2")  # this server's side of the veth, the namespace's side


@dataclass(frozen=True)
class Outside:
    internet: str = LINK[1]
    private: str = "10.222.33.44"
    allowed: str = "10.222.33.45"  # EGRESS_ALLOW, this port only
    group_allowed: str = "10.222.33.46"  # egress= of group team-a only
    metadata: str = "169.254.77.77"
    resolver: str = "10.222.33.47"  # a name server on a private network (port 53 open too)
    this_server: str = LINK[0]  # an address this server has


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


REACH = """
import socket, time
def reach(host, port=8080):
    began = time.monotonic()
    try:
        socket.create_connection((host, port), timeout=8).close()
        return "open"
    except OSError as exc:
        return f"{type(exc).__name__}@{time.monotonic() - began:.1f}s"
"""


def reach(browser, *targets: tuple[str, int]) -> list[str]:
    """What each (address, port) answers from the student's kernel, and how fast a refusal is."""
    calls = ", ".join(f"reach({host!r}, {port})" for host, port in targets)
    return browser.run(REACH + f"print(*[{calls}])").split()


def refused_at_once(result: str) -> bool:
    name, _, seconds = result.partition("@")
    return (
        name in ("ConnectionRefusedError", "OSError", "PermissionError")
        and float(seconds.rstrip("s")) < 2
    )


@contextlib.contextmanager
def stand_ins() -> Iterator[Outside]:
    """The stand-ins, up and answering, until the block ends."""
    tag = secrets.token_hex(2)
    ns, host_if, ns_if = f"ceg{tag}", f"cegh{tag}", f"cegn{tag}"
    made = Outside()
    servers: list[subprocess.Popen] = []
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{LINK[0]}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        inside = ("ip", "netns", "exec", ns)
        sh(*inside, "ip", "addr", "add", f"{LINK[1]}/30", "dev", ns_if)
        sh(*inside, "ip", "link", "set", ns_if, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "route", "add", "default", "via", LINK[0])
        for address in (made.private, made.allowed, made.group_allowed, made.metadata,
                        made.resolver):  # fmt: skip
            sh(*inside, "ip", "addr", "add", f"{address}/32", "dev", "lo")
            sh("ip", "route", "add", f"{address}/32", "via", LINK[1])
        command = [*inside, sys.executable, "-m", "http.server", "--bind", "0.0.0.0"]
        servers = [subprocess.Popen([*command, str(port)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for port in (PORT, DNS_PORT)]  # fmt: skip
        deadline = time.monotonic() + 20
        while True:  # this server reaches every stand-in: the routes work
            try:
                for address in (made.internet, made.private, made.metadata):
                    socket.create_connection((address, PORT), timeout=2).close()
                socket.create_connection((made.resolver, DNS_PORT), timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the stand-ins never answered"
                time.sleep(0.2)
        yield made
    finally:
        for server in servers:
            server.kill()
        with contextlib.suppress(subprocess.CalledProcessError):
            sh("ip", "netns", "del", ns)  # its end of the veth goes, and with it the routes
