"""Run inside the notebook image (tests/e2e/test_server_start.py): what a single-user server's start
loads, whether its bytecode is current, and classhub's patch to JupyterHub at work. Prints one JSON
line. With the argument `language-servers SCRIPT`: runs the image's build step SCRIPT with a
stand-in language server importable and prints the config it wrote.
"""

import importlib.util
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

CONFIG = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.json"
HUB_ONLY = ("sqlalchemy", "alembic", "jupyterhub.orm", "jupyterhub.handlers", "jupyterhub.metrics")


def stale_bytecode() -> list[str]:
    """Modules loaded from source whose cached bytecode is missing or older than the source: a
    server run as jovyan cannot write it, so it would compile them again at every start."""
    stale = []
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None) or ""
        if not source.endswith(".py") or source.startswith(str(Path(__file__).parent)):
            continue
        cached = Path(importlib.util.cache_from_source(source))
        if not cached.exists():
            stale.append(source)
            continue
        header = cached.read_bytes()[:16]
        stat = Path(source).stat()
        if (
            int.from_bytes(header[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF
            or int.from_bytes(header[12:16], "little") != stat.st_size & 0xFFFFFFFF
        ):
            stale.append(source)
    return sorted(stale)


def patched_behaviour() -> dict:
    import asyncio

    from jupyterhub import log, utils
    from tornado.log import access_log
    from tornado.web import StaticFileHandler

    # log_request: a static file's success is debug-level, a page's info-level.
    class Request:
        uri, method, remote_ip, headers = "/x?token=secret", "GET", "127.0.0.1", {}

        def request_time(self):
            return 0.01

    def handler(cls):
        h = cls.__new__(cls)
        h.request, h._headers, h.current_user = Request(), {}, None
        h.get_status = lambda: 200
        return h

    levels = []
    access_log.log = lambda level, msg, *a, **k: levels.append(level)
    log.log_request(handler(type("Static", (StaticFileHandler,), {})))
    log.log_request(handler(type("Page", (), {})))

    # catch_db_error: a database error rolls back, any other error goes on up.
    from sqlalchemy.exc import OperationalError

    class Handler:
        rolled_back = False
        log = logging.getLogger("check")
        db = type("DB", (), {"rollback": lambda self: setattr(Handler, "rolled_back", True)})()

    @utils.catch_db_error
    def failing(self, error):
        raise error

    asyncio.run(failing(Handler(), OperationalError("select", {}, Exception("gone"))))
    try:
        asyncio.run(failing(Handler(), KeyError("other")))
        other_raised = False
    except KeyError:
        other_raised = True
    return {
        "log levels": [logging.getLevelName(level) for level in levels],
        "database error rolled back": Handler.rolled_back,
        "other error raised": other_raised,
    }


def main() -> None:
    if sys.argv[1:2] == ["language-servers"]:
        fake = Path("/tmp/fake-language-server")
        (fake / "pylsp").mkdir(parents=True, exist_ok=True)
        (fake / "pylsp" / "__init__.py").write_text("")
        done = subprocess.run(
            [sys.executable, sys.argv[2]], capture_output=True, text=True,
            env={"PYTHONPATH": str(fake), "PATH": "/opt/notebook/bin:/usr/bin:/bin"},
        )  # fmt: skip
        print(json.dumps({"said": done.stdout.strip(), "error": done.stderr[-500:],
                          "config": json.loads(CONFIG.read_text())}))  # fmt: skip
        return
    # what jupyterhub-singleuser imports
    import jupyterhub.singleuser
    import jupyterhub.singleuser.extension  # noqa: F401

    hub_only = sorted({m.split(".")[0] if m.startswith(("sqlalchemy", "alembic")) else m
                       for m in sys.modules if m.startswith(HUB_ONLY)})  # fmt: skip
    import classhub_notebook  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import jupyterlab.labapp  # noqa: F401

    stale = stale_bytecode()
    listing = subprocess.run(
        ["jupyter", "server", "extension", "list"], capture_output=True, text=True
    )
    lines = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr).splitlines()
    lsp = [line.strip() for line in lines
           if line.strip().startswith("jupyter_lsp") and "abled" in line]  # fmt: skip
    print(json.dumps({"hub-only modules": hub_only, "stale bytecode": stale,
                      "jupyter_lsp": lsp, **patched_behaviour()}))  # fmt: skip


if __name__ == "__main__":
    main()
