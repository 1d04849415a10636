"""Students' servers as services of a Docker swarm (ENGINE=swarm; docs/swarm.md).

`ClasshubSwarmSpawner` is DockerSpawner's SwarmSpawner with classhub's start queue and readiness
polling (`spawner.ClasshubSpawner`), changed where SwarmSpawner falls short on this engine
(shared/SWARM-NOTES.md):
- the service is `services.user_service`, sent as is: the hardening and limits of a container on
  one host as far as a service can have them, labels on its container too, the image by its ID,
  one replica that the swarm never restarts, DNS round-robin (no virtual IP), and the student's
  folders bound from the shared storage. The socket proxy lets nothing else through;
- a task the swarm rejects or that fails fails the start at once, with the task's own error,
  which the student sees, and its service is removed (SwarmSpawner waits the whole start
  timeout on a rejected task);
- the server's address is its task's on the hub's network, known as soon as it runs (no wait for
  the swarm's DNS);
- a service already removed (by hand, or by `invoke down`) counts as stopped, and stopping it is
  done;
- a server whose node is down reads as stopped: the swarm does not restart it (restart policy
  none), and its student starts it again, on another node, with the same files.
"""

from __future__ import annotations

import asyncio

import docker.errors
from dockerspawner import SwarmSpawner
from traitlets import Integer, List, Unicode

from classhub import hubfile

from . import services
from .roster import LiveRoster
from .spawner import ClasshubSpawner

# Task states on their way to running, and those that end a task (docker's swagger.yaml).
STARTING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
ENDED = {"complete", "shutdown", "failed", "rejected", "remove", "orphaned"}


class StartFailed(RuntimeError):
    """A start the swarm cannot carry out, and why. JupyterHub shows an error's
    `jupyterhub_message` to the student, on the spawn page, in its progress and in its API's
    answer; without it a start that fails within a second reads "Internal Server Error"."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


class ClasshubSwarmSpawner(ClasshubSpawner, SwarmSpawner):
    swarm_storage = Unicode(
        "", config=True, help="The shared storage's folder, at the same path on every node."
    )
    pids_limit = Integer(0, config=True, help="Processes a student's server may have.")
    hub_file = Unicode(hubfile.HUB_FILE_IN_HUB, config=True, help="The hub file to read.")
    extra_groups: List = List(
        help="Set for each start by the pre-spawn hook: groups the sign-in provider gave."
    )

    _live: LiveRoster | None = None

    def _hub(self) -> hubfile.HubFile:
        if self._live is None:
            self._live = LiveRoster(self.hub_file)
        return self._live.hub()

    def _create_service(self, spec: dict) -> dict:
        """POST /services/create with exactly `spec` (docker-py's types would rewrite it)."""
        api = self.client
        return api._result(api._post_json(api._url("/services/create"), data=spec), True)

    async def create_object(self):
        image = await self.docker("inspect_image", self.image)
        spec = services.user_service(
            self._hub(), self.user.name, image["Id"], self.swarm_storage, self.get_env(),
            await self.get_command(), self.pids_limit, tuple(self.extra_groups),
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._create_service, spec)

    async def start_object(self):
        """Return once the service's task runs; raise with the task's own error when the swarm
        rejects it or it ends first."""
        interval = max(self.ready_poll_interval, 0.25)
        while True:
            task = await self.get_task()
            if task is None:
                raise StartFailed(f"the service {self.service_name} is gone")
            status = task["Status"]
            state = status["State"]
            if state == "running":
                return
            said = status.get("Err") or status.get("Message") or "no reason given"
            if state in ENDED:
                await self._give_up()
                raise StartFailed(f"the swarm could not start the server: its task is {state}: "
                                  f"{said}")  # fmt: skip
            if state == "pending" and "no suitable node" in said:  # it would wait for one
                await self._give_up()
                raise StartFailed(f"no node of the swarm can take the server ({said}); the hub's "
                                  "administrator adds one with invoke add-node")  # fmt: skip
            await asyncio.sleep(interval)

    async def _give_up(self) -> None:
        """Remove a service the swarm will not run: the hub does not stop a server that never
        ran, and the service would stay behind (counted by status, its task retried by none)."""
        try:
            await self.remove_object()
        except docker.errors.APIError as exc:  # the start's own error is what the student reads
            self.log.warning("service %s could not be removed: %s", self.service_name, exc)

    async def get_ip_and_port(self):
        task = await self.get_task()
        for attached in (task or {}).get("NetworksAttachments") or []:
            if attached["Network"]["Spec"]["Name"] == self.network_name and attached.get(
                "Addresses"
            ):
                return attached["Addresses"][0].split("/")[0], self.port
        raise RuntimeError(f"the service {self.service_name} has no address on {self.network_name}")

    async def poll(self):
        """Stopped (0, or what ended the task) unless its one task is starting or running on a
        node that is up."""
        if self._check_pending and not self.get_state().get("object_id"):
            return await super().poll()  # ClasshubSpawner: a start the hub never saw finish
        task = await self.get_task()
        if task is None:
            return 0
        state, wanted = task["Status"]["State"], task.get("DesiredState")
        if (state == "running" or state in STARTING) and wanted == "running":
            return None
        if wanted != "running":  # the swarm gave it up: its node is down, say, or it was drained
            return f"its task is to be {wanted} (was {state})"
        return f"{state}: {task['Status'].get('Err') or task['Status'].get('Message') or ''}"

    async def remove_object(self):
        """Remove the service; one already gone is removed."""
        try:
            await self.docker("remove_service", self.object_id or self.service_name)
        except docker.errors.NotFound:
            self.log.info("service %s was already removed", self.service_name)
