"""One task that changes a hub at a time: a lock for the checkout, and one for the hub's name on
this server's engine (two checkouts of the same HUB_NAME are the same hub's objects).

Each lock is a file in a folder of this server's (`SYSTEM_LOCKS`; nothing in the checkout) held
with `flock`, so the kernel lets it go when its holder ends in any way (a
killed task leaves nothing to clean up: the next task takes the lock over). The holder writes who
it is (task, process, since when, checkout) into the file, so a task that finds the lock held can
say so. A task waits `WAIT` seconds for a lock, then stops before it changes anything. Tasks that
only read (status, login, logs, every --dry-run) take no lock and never wait. A task that runs
another (add-user runs sync's steps, restore runs setup) holds its locks once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError
from .paths import Paths

WAIT = 5.0  # seconds a task waits for another to finish before it gives up
# Where the locks of hub names live: shared by every checkout on this server.
SYSTEM_LOCKS = (Path("/run/lock/classhub"), Path(tempfile.gettempdir()) / "classhub-locks")

_held: dict[Path, int] = {}  # lock file -> how many times this process holds it


def checkout_lock(paths: Paths) -> Path:
    """The lock of the checkout at `paths` (named by its folder's hash)."""
    digest = hashlib.sha256(str(paths.root.resolve()).encode()).hexdigest()[:16]
    return _folder() / f"checkout-{digest}.lock"


def hub_lock(hub: str) -> Path:
    """The lock of HUB_NAME `hub` on this server."""
    return _folder() / f"hub-{hub}.lock"


def _folder() -> Path:
    """The first of SYSTEM_LOCKS this process may write in."""
    for folder in SYSTEM_LOCKS:
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
    raise UserError(
        f"no folder for classhub's locks can be written ({', '.join(map(str, SYSTEM_LOCKS))})"
    )


@contextlib.contextmanager
def held(paths: Paths, hub: str, task: str, wait: float = WAIT) -> Iterator[None]:
    """Hold the checkout's lock and hub `hub`'s for `task` ("invoke setup"), waiting up to `wait`
    seconds for another task to finish; an error naming it when it does not."""
    with contextlib.ExitStack() as stack:
        for path in (checkout_lock(paths), hub_lock(hub)):
            stack.enter_context(_one(path, paths, task, wait))
        yield


@contextlib.contextmanager
def _one(path: Path, paths: Paths, task: str, wait: float) -> Iterator[None]:
    if _held.get(path):
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UserError(_busy(path)) from None
                time.sleep(0.2)
        me = {"task": task, "pid": os.getpid(), "since": time.time(),
              "checkout": str(paths.root.resolve())}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        _held[path] = 1
        try:
            yield
        finally:
            _held.pop(path, None)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _busy(path: Path) -> str:
    """Who holds the lock at `path`, as the holder wrote it."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        holder = {}
    since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if "since" in holder else "?"
    who = f"{holder.get('task', 'another task')} (process {holder.get('pid', '?')}, since {since}"
    where = holder.get("checkout")
    who += f", in the checkout {where})" if where else ")"
    return (f"{who} is changing this hub; wait for it to finish (or stop it), then run this "
            "again. Nothing was changed")  # fmt: skip
