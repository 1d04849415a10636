"""What a single-user server loads at its start (issue: class start), in the built notebook image:
classhub's patch keeps JupyterHub's database layer out of jupyterhub-singleuser and changes nothing
else it touches; every module has current bytecode; jupyter-lsp is off while the image has no
language server, and comes back on when the class's packages bring one.

Runs tests/e2e/in_image/server_start.py in the image.
"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Hub

IN_IMAGE = Path(__file__).parent / "in_image"
SINGLEUSER = Path(__file__).parents[2] / "singleuser"


def run_in_image(hub: Hub, *args: str, user: str = "1000:100") -> dict:
    output = hub.client.containers.run(
        "classhub-notebook:latest",
        ["/opt/notebook/bin/python", "/check/server_start.py", *args],
        entrypoint=[],
        user=user,
        volumes={
            str(IN_IMAGE): {"bind": "/check", "mode": "ro"},
            str(SINGLEUSER / "language-servers"): {"bind": "/build/language-servers", "mode": "ro"},
        },
        environment={"HOME": "/tmp", "JUPYTER_RUNTIME_DIR": "/tmp/runtime"},
        remove=True,
        stderr=False,
    )
    return json.loads(output.decode().strip().splitlines()[-1])


def test_the_server_starts_without_the_hubs_database_layer_and_compiles_nothing(hub: Hub):
    found = run_in_image(hub)
    assert found["hub-only modules"] == [], found
    assert found["stale bytecode"] == [], found
    # What the patch changed still behaves as JupyterHub's own code did.
    assert found["log levels"] == ["DEBUG", "INFO"], found
    assert found["database error rolled back"] is True
    assert found["other error raised"] is True
    # No language server in the image: jupyter-lsp is off.
    assert found["jupyter_lsp"] == ["jupyter_lsp disabled"], found


def test_a_language_server_in_the_image_keeps_jupyter_lsp_on(hub: Hub):
    found = run_in_image(hub, "language-servers", "/build/language-servers", user="0")
    assert "pylsp" in found["said"], found
    assert "jupyter_lsp" not in found["config"]["ServerApp"]["jpserver_extensions"], found
    # classhub's own settings in the same file are kept.
    assert found["config"]["ServerApp"]["kernel_manager_class"] == (
        "classhub_notebook.WarmKernelManager"
    )
