"""The Docker engine: finding it, and on a Debian or Ubuntu host installing and starting it.

`connect` is how every other module gets a client; when no engine answers it says exactly what
to do. `install_and_start` is `invoke engine`: it installs the host's own `docker.io` package
when `dockerd` is missing, then starts the daemon with systemd where systemd runs, or as a
background `dockerd` otherwise, and waits until the engine answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors
import requests

from ... import wait
from ...console import Echo
from ...errors import UserError

DOCKERD_LOG = Path("/var/log/classhub-dockerd.log")


def _client(environ: Mapping[str, str]) -> docker.DockerClient | None:
    try:
        client = docker.from_env(environment=dict(environ), timeout=600)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.RequestException):
        return None


def where(environ: Mapping[str, str]) -> str:
    return environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(environ: Mapping[str, str]) -> docker.DockerClient:
    client = _client(environ)
    if client is not None:
        return client
    if shutil.which("dockerd") is None and "DOCKER_HOST" not in environ:
        fix = "install and start one with: invoke engine (Debian and Ubuntu; as root)"
    else:
        fix = "start it with: invoke engine (or: systemctl start docker)"
    raise UserError(f"no Docker engine answers at {where(environ)}; {fix}")


def version(client: docker.DockerClient) -> str:
    return client.version().get("Version", "?")


def install_and_start(environ: Mapping[str, str], echo: Echo) -> str:
    """Make a Docker engine answer; returns a line saying what was done."""
    client = _client(environ)
    if client is not None:
        return f"The Docker engine {version(client)} is already running at {where(environ)}."
    if "DOCKER_HOST" in environ:
        raise UserError(
            f"DOCKER_HOST={environ['DOCKER_HOST']} does not answer; start that engine, or unset "
            "DOCKER_HOST to use this machine's own"
        )
    if os.geteuid() != 0:
        raise UserError("installing and starting Docker needs root: run sudo invoke engine")
    installed = ""
    if shutil.which("dockerd") is None:
        if shutil.which("apt-get") is None:
            raise UserError(
                "this host has no apt-get: install Docker Engine as your distribution "
                "documents (https://docs.docker.com/engine/install/), then run invoke setup"
            )
        echo("-> installing Debian's docker.io package (apt-get) ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "docker.io", "iptables", "debootstrap"],
        ):
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                said = (result.stdout + result.stderr).strip().splitlines()[-15:]
                raise UserError(
                    f"{' '.join(command)} failed (exit {result.returncode}):\n"
                    + "\n".join("     " + line for line in said)
                )
        installed = "installed docker.io and "
    if Path("/run/systemd/system").is_dir():
        echo("-> starting the docker service (systemctl enable --now docker) ...")
        subprocess.run(["systemctl", "enable", "--now", "docker"], check=False)
        logs = "journalctl -u docker"
    else:
        echo(f"-> starting dockerd in the background (log: {DOCKERD_LOG}) ...")
        with DOCKERD_LOG.open("ab") as log:
            subprocess.Popen(
                ["dockerd"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        logs = str(DOCKERD_LOG)

    def tail() -> str:
        if logs == str(DOCKERD_LOG):
            return "\n".join(DOCKERD_LOG.read_text(errors="replace").splitlines()[-20:])
        return f"see: {logs}"

    wait.until("the Docker engine to answer", lambda: _client(environ) is not None, 60, echo, tail)
    client = _client(environ)
    assert client is not None
    return f"Docker engine {version(client)}: {installed}started; it answers at {where(environ)}."


def container_said(exc: docker.errors.ContainerError) -> str:
    """What a container that failed wrote to its standard error, as text."""
    said = exc.stderr or b""
    return (said.decode("utf-8", "replace") if isinstance(said, bytes) else said).strip()
