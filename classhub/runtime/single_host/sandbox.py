"""Grading sandboxes on Docker: one throwaway container and volume per submission.

Rules that hold here: the container has no network (`network_mode=none`), no volume but its own,
a read-only root, memory (swap included), CPU, process and time limits, and classhub's hardening;
it runs as the students' user. Its files go in and its results come out through Docker's
archive API (a helper that is never started), and both container and volume are removed whatever
happened, so nothing a submission did outlives its grading.
"""

from __future__ import annotations

import contextlib
import secrets

import docker
import docker.errors
import requests
from docker.types import LogConfig

from ... import hubfile, names
from .. import SandboxLimits, SandboxRun
from . import database

KIND = "sandbox"  # the classhub.kind of a sandbox's container and volume
OUT_MAX = 64 * 1024**2  # bytes of results read back; a sandbox that left more is cut off there
HOME = {"HOME": "/tmp", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime", "LANG": "C.UTF-8"}


def run(client: docker.DockerClient, hub: str, image: str, files: bytes,
        limits: SandboxLimits) -> SandboxRun:  # fmt: skip
    name = names.sandbox(hub, secrets.token_hex(4))
    labels = names.labels(hub, KIND)
    volume = client.volumes.create(name, labels=labels)
    container = None
    try:
        with database.volume_helper(client, hub, name, "rw") as helper:
            helper.put_archive("/v", files)
        uid, gid = hubfile.FOLDER_OWNER
        container = client.containers.create(
            image, name=name, user=f"{uid}:{gid}", network_mode="none",
            mem_limit=limits.memory, memswap_limit=limits.memory,
            nano_cpus=int(limits.cpus * 1e9), pids_limit=limits.pids, read_only=True,
            tmpfs={"/tmp": f"size={limits.tmp},mode=1777"},
            volumes={name: {"bind": "/grading", "mode": "rw"}}, environment=HOME, labels=labels,
            log_config=LogConfig(type="json-file", config={"max-size": "1m"}),
            **hubfile.HARDENING,
        )  # fmt: skip
        container.start()
        timed_out, code = False, None
        try:
            code = container.wait(timeout=limits.seconds).get("StatusCode")
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            container.kill()
        container.reload()
        oom = bool(container.attrs["State"].get("OOMKilled"))
        log = container.logs(tail=40).decode("utf-8", "replace")
        return SandboxRun(timed_out, code, oom, _results(client, hub, name), log)
    finally:
        if container is not None:
            container.remove(force=True)
        volume.remove(force=True)


def sweep(client: docker.DockerClient, hub: str) -> int:
    """Remove the sandboxes an autograde that was killed left (containers, then volumes); how
    many objects. Autograde runs one at a time per hub, so at its start every one is left over."""
    wanted: dict[str, str | list[str] | bool] = {
        "label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}={KIND}"]
    }
    removed = 0
    for container in client.containers.list(all=True, filters=wanted):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed += 1
    for volume in client.volumes.list(filters=wanted):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed += 1
    return removed


def _results(client: docker.DockerClient, hub: str, volume: str) -> bytes:
    with database.volume_helper(client, hub, volume, "ro") as helper:
        try:
            stream, _ = helper.get_archive("/v/out")
        except docker.errors.NotFound:
            return b""
        read = bytearray()
        for chunk in stream:
            if len(read) < OUT_MAX:
                read += chunk[: OUT_MAX - len(read)]
        return bytes(read)
