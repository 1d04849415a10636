"""What a single-user server loads at its start (issue: class start), in the built notebook image:
classhub's patch keeps JupyterHub's database layer out of jupyterhub-singleuser and changes nothing
else it touches; every module has current bytecode; jupyter-lsp is off while the image has no
language server, and comes back on when the class's packages bring one.

Runs tests/e2e/in_image/server_start.py in the image.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import Hub

LANGUAGE_SERVERS = Path(__file__).parents[2] / "singleuser" / "language-servers"


def test_the_server_starts_without_the_hubs_database_layer_and_compiles_nothing(hub: Hub):
    found = hub.in_image("server_start.py")
    assert found["hub-only modules"] == [], found
    assert found["stale bytecode"] == [], found
    # What the patch changed still behaves as JupyterHub's own code did.
    assert found["log levels"] == ["DEBUG", "INFO"], found
    assert found["database error rolled back"] is True
    assert found["other error raised"] is True
    # No language server in the image: jupyter-lsp is off.
    assert found["jupyter_lsp"] == ["jupyter_lsp disabled"], found


def test_a_language_server_in_the_image_keeps_jupyter_lsp_on(hub: Hub):
    found = hub.in_image(
        "server_start.py", "language-servers", "/build/language-servers",
        user="0", mounts=[(LANGUAGE_SERVERS, "/build/language-servers")],
    )  # fmt: skip
    assert "pylsp" in found["said"], found
    assert "jupyter_lsp" not in found["config"]["ServerApp"]["jpserver_extensions"], found
    # classhub's own settings in the same file are kept.
    assert found["config"]["ServerApp"]["kernel_manager_class"] == (
        "classhub_notebook.WarmKernelManager"
    )
