"""classhub's Jupyter server extension in the notebook image: a busy kernel counts as activity.

The hub's idle culler stops a server when its last activity is older than CULL_IDLE_TIMEOUT. A
kernel computing silently for hours sends nothing, so without this it would look idle and be
stopped mid-computation. While any kernel is busy this keeps `classhub_busy_last_activity` in the
server's settings at now: Jupyter server counts every `*_last_activity` setting in its last
activity, which jupyterhub-singleuser reports to the hub. With CULL_BUSY=true (the hub passes
`CLASSHUB_CULL_BUSY`) it does nothing, and busy servers are culled like idle ones.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from tornado.ioloop import PeriodicCallback

CHECK_EVERY_MS = 10_000


def _jupyter_server_extension_points():
    return [{"module": "classhub_notebook"}]


def _load_jupyter_server_extension(serverapp) -> None:
    if os.environ.get("CLASSHUB_CULL_BUSY", "false") == "true":
        return
    kernels = serverapp.kernel_manager
    settings = serverapp.web_app.settings

    def note_busy_kernels() -> None:
        if any(k.get("execution_state") == "busy" for k in kernels.list_kernels()):
            settings["classhub_busy_last_activity"] = datetime.now(timezone.utc)

    PeriodicCallback(note_busy_kernels, CHECK_EVERY_MS).start()
