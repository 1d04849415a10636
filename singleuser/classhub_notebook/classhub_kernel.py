"""Shared folders in a user's home: links out of them, and a kernel that does not import from one.

A user's home holds folders that others can write: each group's folder (every member), `shared`
(the admins) and, for an admin with ADMIN_SEES_USERS, `users/<name>` (that user). Each is a mount
point below the home (`mount_points`), which is how `shared_folder` knows one.

A link that a teammate puts in a group folder (`team-1/notes.txt -> /home/jovyan/secret.txt`)
would be followed by the reader's own server, so that saving "the group's file" overwrote a
private one. `leaves_shared_folder` finds such a link on a path; the server's contents manager
(classhub_notebook) refuses the path. Links a user makes in their own folders are theirs to follow.

Python puts the folder a kernel starts in first on `sys.path` (IPython puts it again before
site-packages), so a notebook opened in a group folder would import a `requests.py` or `json.py`
that a teammate left there instead of the real one, and run it with the reader's own token and
files. Loaded into every kernel as an IPython extension (ipython_kernel_config.json), this takes
that folder off `sys.path` when it is a shared one. Modules beside a notebook in the user's own
folders import as usual.

Standard library only: every kernel imports it at start.
"""

from __future__ import annotations

import functools
import os
import re
import sys


@functools.cache
def mount_points() -> frozenset[str]:
    """Where this container has something mounted (/proc/self/mountinfo's fifth field). Python's
    os.path.ismount cannot tell: each folder is a bind mount from the host's same filesystem."""
    with open("/proc/self/mountinfo", encoding="utf-8") as table:
        found = {line.split()[4] for line in table if line.strip()}
    # The table writes space, tab, newline and backslash as octal escapes (\040 ...).
    return frozenset(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), p) for p in found)


def shared_folder(path: str, home: str) -> str | None:
    """The shared folder (the outermost mount point below `home`) that `path`, a path without
    links, lies in; None when it lies in the user's own folders or outside `home`."""
    home, path = os.path.abspath(home), os.path.abspath(path)
    if not path.startswith(home + os.sep):
        return None
    here, mounts = home, mount_points()
    for part in os.path.relpath(path, home).split(os.sep):
        here = os.path.join(here, part)
        if here in mounts:
            return here
    return None


def leaves_shared_folder(path: str, home: str) -> str | None:
    """The shared folder that a link on `path` (absolute, below `home`) leads out of, or None.
    Walks `path` as the kernel resolves it, one name at a time, and looks at each link where it
    lies: a link in a shared folder must lead (through any further links) into that folder."""
    done, todo, hops = os.path.realpath(home), os.path.relpath(path, home).split(os.sep), 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            done = os.path.dirname(done)
            continue
        here = os.path.join(done, part)
        if not os.path.islink(here):
            done = here
            continue
        hops += 1
        target = os.readlink(here)
        folder = shared_folder(done, home)
        if hops > 40 or (folder and not _inside(os.path.realpath(here), folder)):
            return folder or here
        if os.path.isabs(target):
            done = "/"
        todo = target.split("/") + todo
    return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def load_ipython_extension(ipython) -> None:
    cwd = os.getcwd()
    if shared_folder(cwd, os.path.expanduser("~")) is None:
        return
    real = os.path.realpath(cwd)
    sys.path[:] = [p for p in sys.path if p != "" and os.path.realpath(p) != real]
