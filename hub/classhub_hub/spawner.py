"""The hub's spawner: DockerSpawner, tuned for a class whose students all log in at once.

`ClasshubSpawner` changes three things, each measured with `invoke rehearse --users 50` on 2
cores (bench/class_start.py has the figures; docs/rehearsal.md quotes them):
- Docker calls run on `docker_threads` threads. DockerSpawner runs every call of every spawn on
  one thread, so fifty container starts (each about 0.6 s on a busy engine) queued behind each
  other: a container was created a median 8 s after its student's login (now 0.7 s).
- At most `concurrent_starts` servers start at once (0: one per CPU core); the others wait their
  turn, first come first served, and the spawn page tells each how many are ahead. A server's
  start is about a CPU-second of Python; fifty at once on two cores each took 30 s and all
  finished together, and the contention cost CPU time of its own. In turn, the first students
  have a kernel within seconds and the last one no later than before.
- Readiness is polled every `ready_poll_interval` seconds while the server holds its turn
  (JupyterHub backs off to 5 s between checks, so a ready server could wait seconds unnoticed);
  a container that exits meanwhile fails the spawn at once with its exit status.
After the hub went down while servers were starting, it reports those servers stopped and
removes their containers (`poll`), so that their students can start again at once.
It also makes the home volume of a person not on the roster (OPEN_TO_ALL) before their first
container, with the labels the host gives the roster's (`home_to_make`, set by config.py's
pre-spawn hook); Docker would otherwise make it unlabelled, out of sight of backups and status.
Everything else is DockerSpawner's, configured as `c.DockerSpawner` in config.py.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import aiohttp
from dockerspawner import DockerSpawner
from traitlets import Dict, Float, Integer


class ClasshubSpawner(DockerSpawner):
    docker_threads = Integer(
        4, config=True, help="Threads for calls to Docker, shared by all spawns (DockerSpawner: 1)."
    )
    concurrent_starts = Integer(
        0,
        config=True,
        help="Servers that may start at once; the others wait their turn. 0: one per CPU core.",
    )
    ready_poll_interval = Float(
        0.1, config=True, help="Seconds between checks whether a starting server answers."
    )

    home_to_make = Dict(
        help="Set for each start by the pre-spawn hook: a volume (name, labels) to make first."
    )

    _pool: ClassVar[ThreadPoolExecutor | None] = None
    _turns: ClassVar[asyncio.Semaphore | None] = None
    _line: ClassVar[list[ClasshubSpawner]] = []  # spawns waiting for a turn, oldest first

    @property
    def executor(self) -> ThreadPoolExecutor:
        """One pool for every spawner (DockerSpawner's own is a single thread)."""
        cls = ClasshubSpawner
        if cls._pool is None:
            cls._pool = ThreadPoolExecutor(self.docker_threads, thread_name_prefix="docker")
        return cls._pool

    def _turn(self) -> asyncio.Semaphore:
        cls = ClasshubSpawner
        if cls._turns is None:
            cls._turns = asyncio.Semaphore(self.concurrent_starts or os.cpu_count() or 2)
        return cls._turns

    async def start(self):
        turn = self._turn()
        self._line.append(self)
        try:
            await turn.acquire()
        finally:
            self._line.remove(self)
        try:
            if self.home_to_make:
                await self.docker("create_volume", **self.home_to_make)  # kept if it exists
            ip, port = await super().start()
            await self._wait_until_answering(ip, port)
            return ip, port
        finally:
            turn.release()

    async def poll(self):
        """DockerSpawner's, except while the hub checks, at its start, a server it has a record
        of whose start it never saw finish: JupyterHub saves a spawn's container only once the
        start has returned, so a record without one means the hub went down while the server was
        starting. Such a server is reported stopped and the container that start made (if any)
        is removed, its student never having had it. Otherwise JupyterHub waits http_timeout for
        it at an address the hub never learnt, and its student cannot start meanwhile."""
        if self._check_pending and not self.get_state().get("object_id"):
            found = await self.get_object()  # by the container's name; sets object_id
            if found is not None:
                self.log.warning(
                    "%s: its server was starting when the hub went down; removing container %s",
                    self._log_name, self.object_name,
                )  # fmt: skip
                await self.stop_object()
                await self.remove_object()
                self.object_id = ""
            return 0
        return await super().poll()

    async def _wait_until_answering(self, ip: str, port: int) -> None:
        """Return once the server answers HTTP (any status below 500), or its container has
        exited (raised, with the status), or http_timeout has passed (JupyterHub then waits and
        reports as it always does)."""
        url = f"http://{ip}:{port}{self.server.base_url}api"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        next_poll = loop.time() + 1.0
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while loop.time() < deadline:
                try:
                    async with session.get(url, allow_redirects=False) as response:
                        if response.status < 500:
                            return
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    pass  # not listening yet
                if loop.time() >= next_poll:
                    status = await self.poll()
                    if status is not None:
                        raise RuntimeError(
                            f"the server's container exited (status {status}) before it answered"
                        )
                    next_poll = loop.time() + 1.0
                await asyncio.sleep(self.ready_poll_interval)

    async def progress(self):
        """What the spawn page shows: the place in line while waiting for a turn."""
        while self in self._line:
            ahead = self._line.index(self)
            yield {
                "progress": 10,
                "message": f"Waiting for a turn to start: {ahead} ahead of you"
                if ahead
                else "Next in line to start",
            }
            await asyncio.sleep(1)
        yield {"progress": 50, "message": "Starting your server"}
