"""Run inside the notebook image (tests/e2e/test_kernel_connection.py): which kernel websocket
the server is configured with, and how often a new websocket's first wait asks a real kernel for
its info while the websocket's IOPub subscription has not reached the kernel yet.

Usage: python kernel_nudge.py [configured|jupyter]; prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import zmq
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

LOST_FOR = 0.45  # seconds the websocket's IOPub gets nothing, as before its subscription lands


async def measure(connection_class) -> dict:
    kernels = AsyncMappingKernelManager()
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    kernel = kernels.get_kernel(kernel_id)
    watcher = kernel.client()  # an IOPub subscriber of its own, settled before the websocket
    watcher.start_channels()
    await watcher.wait_for_ready(timeout=60)
    asked: list[float] = []

    async def watch() -> None:
        while True:
            msg = await watcher.get_iopub_msg()
            if (
                msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "busy"
                and msg["parent_header"].get("msg_type") == "kernel_info_request"
            ):
                asked.append(time.monotonic())

    watching = asyncio.ensure_future(watch())
    await asyncio.sleep(0.5)
    asked.clear()
    connection = connection_class(parent=kernel, kernel_info_timeout=10)
    connection.session.key = kernel.session.key  # as the websocket handler's connect() does
    connection.create_stream()
    iopub = connection.channels["iopub"].socket
    iopub.setsockopt(zmq.UNSUBSCRIBE, b"")
    asyncio.get_running_loop().call_later(LOST_FOR, iopub.setsockopt, zmq.SUBSCRIBE, b"")
    started = time.monotonic()
    await connection.nudge()
    ended = time.monotonic()
    await asyncio.sleep(0.5)
    watching.cancel()
    watcher.stop_channels()
    await kernels.shutdown_kernel(kernel_id, now=True)
    return {
        "asked while waiting": sum(1 for t in asked if t <= ended),
        "asked after": sum(1 for t in asked if t > ended),
        "waited (s)": round(ended - started, 3),
    }


def main() -> None:
    app = ServerApp()
    app.load_config_file()
    configured = app.kernel_websocket_connection_class
    used = configured if sys.argv[1:] != ["jupyter"] else ZMQChannelsWebsocketConnection
    found = asyncio.run(measure(used))
    found["configured"] = f"{configured.__module__}.{configured.__name__}"
    print(json.dumps(found))


if __name__ == "__main__":
    main()
