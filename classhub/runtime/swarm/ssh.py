"""Reaching another server's Docker engine over SSH, as add-node, drain-node and remove-node do.

A node is named the way ssh names a server: `HOST`, `USER@HOST`, `USER@HOST:PORT` or
`ssh://USER@HOST:PORT`. classhub runs the system's `ssh` with a local socket forwarded to the
node's `/var/run/docker.sock` (`ssh -L`), so the key, agent and `~/.ssh/config` an administrator
already uses work unchanged; `NODE_SSH_KEY` names a key of its own. It never asks a question
(BatchMode): a server seen for the first time is remembered in the checkout's
`state/known_hosts`, and one whose host key changed since is refused, as ssh does.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests

from ...errors import UserError, quoted

REMOTE_SOCKET = "/var/run/docker.sock"
_TARGET = re.compile(
    r"(?:ssh://)?(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]{0,31})@)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


@dataclass(frozen=True)
class Target:
    """A server as ssh reaches it."""

    host: str
    user: str = ""
    port: int = 0

    def __str__(self) -> str:
        """As add-node takes it (and parses it back: an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        who = f"{self.user}@{host}" if self.user else host
        return f"{who}:{self.port}" if self.port else who

    @property
    def ssh(self) -> str:
        """The ssh command line that reaches it, for messages."""
        port = f"-p {self.port} " if self.port else ""
        return f"ssh {port}{self.user + '@' if self.user else ''}{self.host}"


def parse(raw: str) -> Target:
    """A node as add-node was given it; a UserError saying the accepted forms otherwise."""
    found = _TARGET.fullmatch(raw.strip())
    port = int(found["port"]) if found and found["port"] else 0
    if not found or (found["port"] and not 0 < port < 65536):
        raise UserError(
            f"{quoted(raw)} is not a server ssh can reach; write HOST, USER@HOST or "
            "USER@HOST:PORT, e.g. root@node2.example.edu or admin@10.0.0.6:2222"
        )
    return Target(found["host"].strip("[]"), found["user"] or "", port)


def command(target: Target, socket: Path, known_hosts: Path, key: Path | None) -> list[str]:
    """The ssh command that forwards `socket` to the node's Docker socket, and nothing else."""
    options = {
        "BatchMode": "yes",  # never a password prompt: fail with ssh's own message instead
        "ExitOnForwardFailure": "yes",
        "ConnectTimeout": "15",
        "ServerAliveInterval": "15",
        "StrictHostKeyChecking": "accept-new",
        "UserKnownHostsFile": str(known_hosts),
    }
    if key is not None:
        options["IdentitiesOnly"] = "yes"
    line = ["ssh", "-N", "-T"]
    for name, value in options.items():
        line += ["-o", f"{name}={value}"]
    if key is not None:
        line += ["-i", str(key)]
    if target.port:
        line += ["-p", str(target.port)]
    if target.user:
        line += ["-l", target.user]
    return [*line, "-L", f"{socket}:{REMOTE_SOCKET}", "--", target.host]


@contextlib.contextmanager
def engine(
    target: Target, known_hosts: Path, key: Path | None = None, timeout: float = 30
) -> Iterator[docker.DockerClient]:
    """The node's Docker engine, through an SSH tunnel that closes afterwards."""
    if shutil.which("ssh") is None:
        raise UserError("classhub reaches nodes with ssh, which is not installed here; "
                        "install it: apt-get install openssh-client")  # fmt: skip
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="classhub-ssh-"))  # mode 0700: only we use the socket
    socket = folder / "docker.sock"
    tunnel = subprocess.Popen(
        command(target, socket, known_hosts, key),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield _wait(tunnel, target, socket, timeout)
    finally:
        tunnel.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            tunnel.wait(timeout=10)
        if tunnel.poll() is None:
            tunnel.kill()
        if tunnel.stderr is not None:
            tunnel.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait(
    tunnel: subprocess.Popen, target: Target, socket: Path, timeout: float
) -> docker.DockerClient:
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if tunnel.poll() is not None:
            said = (tunnel.stderr.read() if tunnel.stderr else b"").decode(errors="replace")
            raise UserError(
                f"cannot reach {target} over SSH: "
                f"{said.strip().splitlines()[-1] if said.strip() else 'ssh stopped'}. "
                f"Check that `{target.ssh} docker version` works from this server as this user "
                "(a key it accepts: NODE_SSH_KEY in .env or your ssh settings)"
            )
        if time.monotonic() > deadline:
            raise UserError(f"{target} did not answer over SSH within {timeout:.0f}s; check the "
                            "address and that its SSH server runs")  # fmt: skip
        time.sleep(0.1)
    client = docker.DockerClient(base_url=f"unix://{socket}", timeout=600)
    try:
        client.ping()
    except (docker.errors.DockerException, requests.RequestException):
        raise UserError(
            f"{target} answers over SSH, but its Docker engine does not: start it there "
            "(systemctl start docker), and log in as a user who may use it (root, or a member "
            "of the docker group)"
        ) from None
    return client
