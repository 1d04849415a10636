"""classhub's Jupyter server extension in the notebook image: the server cannot be traced by its
student's code, does not follow a link out of a shared folder, a busy kernel counts as activity,
a prewarmed server has a kernel waiting for its student, and a new kernel websocket's first wait
ends as soon as the kernel answers.

Not traceable: the server and the student's kernels run as the same user (jovyan), and Linux lets
a process trace or write the memory of another of its own user's (ptrace, /proc/PID/mem,
process_vm_writev, pidfd_getfd), Docker's seccomp profile allows it, and the host may have no Yama
to refuse it. A student's code could then rewrite her server so that it serves a page without
a login, under the hub's own origin, to whoever opens her link. So the server makes itself
non-dumpable (prctl PR_SET_DUMPABLE 0) when this extension loads, before it listens and before any
kernel or terminal exists: the kernel then refuses every one of those to a process without
CAP_SYS_PTRACE, which no one in the container has. Its children (kernels, terminals) are
dumpable again after their exec, as usual. If the call fails, the server does not start.

The hub's idle culler stops a server when its last activity is older than CULL_IDLE_TIMEOUT. A
kernel computing silently for hours sends nothing, so without this it would look idle and be
stopped mid-computation. While any kernel is busy this keeps `classhub_busy_last_activity` in the
server's settings at now: Jupyter server counts every `*_last_activity` setting in its last
activity, which jupyterhub-singleuser reports to the hub. With CULL_BUSY=true (the hub passes
`CLASSHUB_CULL_BUSY`) it does nothing, and busy servers are culled like idle ones.

Links out of a shared folder (`SharedFolderContentsManager`, the server's contents manager): a
path on which a link in a group folder (or `shared`, or an admin's `users/NAME`) leads out of it
is answered 404, for reading and writing alike, and left out of its folder's listing
(classhub_kernel.leaves_shared_folder says why).

A warm kernel (`WarmKernelManager`, the server's kernel manager): when the hub starts the server
with `CLASSHUB_WARM_KERNEL=1` (invoke prewarm asks for it), one kernel of the default kind starts
with the server, and the student's first request for such a kernel in their home folder gets it
instead of waiting for a new one (half a CPU-second each, which 50 students arriving at once
wait for in turn). Any other request (another kind, another folder, a second kernel) starts a
new kernel as usual. The warm kernel lacks only `JPY_SESSION_NAME` (IPython's `__session__`),
which Jupyter sets for a kernel started for a notebook; until taken it shows in JupyterLab's
list of running kernels and holds about 45 MiB.

A prompt kernel connection (`PromptChannelsConnection`, the server's kernel websocket): before a
new websocket carries anything, Jupyter server asks the kernel for its info until a reply and an
IOPub message both came back, which shows the kernel's messages reach the browser. It asks every
0.5 s (a fixed interval), and a kernel that has just started usually misses the first ask's IOPub
message, because IOPub is dropped until the server's subscription reaches the new kernel. So a
student's first kernel waited half a second more than needed. This asks again every 0.05 s on a
channel of its own until Jupyter server's wait is over; the wait and its checks are Jupyter
server's own.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from datetime import datetime, timezone

from classhub_kernel import leaves_shared_folder
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from tornado.ioloop import IOLoop, PeriodicCallback

CHECK_EVERY_MS = 10_000
NUDGE_EVERY_S = 0.05
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3  # <linux/prctl.h>


def make_untraceable() -> None:
    """Make this process non-dumpable: no process without CAP_SYS_PTRACE may trace it, read or
    write its memory, or take its file descriptors. Raises OSError if the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) did not take")


def _jupyter_server_extension_points():
    return [{"module": "classhub_notebook"}]


class LeadsOut(web.HTTPError, OSError):
    """404 to whoever asks; an OSError to Jupyter server's folder listing, which then leaves the
    entry out instead of failing the whole folder (a teammate could otherwise hide it)."""


class SharedFolderContentsManager(AsyncLargeFileManager):
    """Jupyter server's contents manager, which does not follow a link out of a shared folder."""

    def _get_os_path(self, path):
        os_path = super()._get_os_path(path)
        folder = leaves_shared_folder(os_path, os.path.abspath(self.root_dir))
        if folder is not None:
            raise LeadsOut(404, f"{path} leads out of the shared folder {folder}")
        return os_path


class WarmKernelManager(AsyncMappingKernelManager):
    """Jupyter server's kernel manager, with at most one warm kernel for the student to take."""

    _warm: asyncio.Future | None = None

    def warm_up(self) -> None:
        self._warm = asyncio.ensure_future(super().start_kernel())
        self._warm.add_done_callback(self._note_failure)

    def _note_failure(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.log.error("classhub: the warm kernel did not start: %s", future.exception())

    def _fits(self, kernel_id, path, kwargs) -> bool:
        """A request the warm kernel can answer: a new kernel of the default kind, in the home."""
        return (
            kernel_id is None
            and kwargs.get("kernel_name") in (None, self.default_kernel_name)
            and self.cwd_for_path(path or "") == self.cwd_for_path("")
        )

    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        warm = self._warm
        if warm is not None and self._fits(kernel_id, path, kwargs):
            self._warm = None
            try:
                found = await warm
            except Exception:  # logged by _note_failure; start one as usual
                found = None
            if found in self:
                self.log.info("classhub: the warm kernel %s goes to the first request", found)
                return found
        return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)


class PromptChannelsConnection(ZMQChannelsWebsocketConnection):
    """Jupyter server's kernel websocket, whose first wait for the kernel ends sooner."""

    def nudge(self):
        done = super().nudge()
        if done.done():  # a busy kernel is not nudged
            return done
        shell = self.kernel_manager.connect_shell()  # its replies are not the browser's
        loop = IOLoop.current()

        def again() -> None:
            if done.done() or shell.closed():
                return
            self.session.send(shell, "kernel_info_request")
            loop.call_later(NUDGE_EVERY_S, again)

        def close(_) -> None:
            if not shell.closed():
                shell.close()

        done.add_done_callback(close)
        loop.call_later(NUDGE_EVERY_S, again)
        return done


def _load_jupyter_server_extension(serverapp) -> None:
    try:
        make_untraceable()  # first, and fatal: see the module's docstring
    except OSError as exc:
        serverapp.log.critical("classhub: the server cannot make itself untraceable: %s", exc)
        os._exit(1)  # Jupyter server would only log an extension's exception and go on
    kernels = serverapp.kernel_manager
    if os.environ.get("CLASSHUB_WARM_KERNEL") == "1" and isinstance(kernels, WarmKernelManager):
        IOLoop.current().add_callback(kernels.warm_up)
    if os.environ.get("CLASSHUB_CULL_BUSY", "false") == "true":
        return
    settings = serverapp.web_app.settings

    def note_busy_kernels() -> None:
        if any(k.get("execution_state") == "busy" for k in kernels.list_kernels()):
            settings["classhub_busy_last_activity"] = datetime.now(timezone.utc)

    PeriodicCallback(note_busy_kernels, CHECK_EVERY_MS).start()
