"""The roster as the hub sees it: the `users` of the hub file, re-read whenever the file changes.

`invoke setup` and `invoke add-user` replace the file atomically (a new inode), so comparing the
file's inode and mtime tells whether it changed; reading it costs one `stat` per call otherwise.
A file that cannot be read keeps the last good roster and logs why.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from classhub import hubfile

log = logging.getLogger("classhub")


class LiveRoster:
    def __init__(self, path: str):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._hub: hubfile.HubFile | None = None

    def hub(self) -> hubfile.HubFile:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns)
            if stamp != self._stamp:
                self._hub = hubfile.load(self.path)
                self._stamp = stamp
                log.info("classhub: read %s (%d users)", self.path, len(self._hub.get("users")))
        except (OSError, hubfile.HubFileError) as exc:
            if self._hub is None:
                raise
            log.error("classhub: keeping the last roster; %s", exc)
        assert self._hub is not None
        return self._hub

    def user(self, name: str) -> dict[str, Any] | None:
        """The user's roster entry, a newcomer's when the hub is open to all, else None."""
        return hubfile.user_entry(self.hub(), name)
