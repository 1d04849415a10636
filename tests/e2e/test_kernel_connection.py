"""The notebook image's kernel websocket (issue: class start): a new websocket's first wait for a
fresh kernel ends as soon as the kernel's IOPub reaches it, not at Jupyter server's next ask half
a second later (classhub_notebook.PromptChannelsConnection).

Runs tests/e2e/in_image/kernel_nudge.py in the built image against a real kernel, with the
websocket's IOPub subscription held back for a moment, as when it has not reached a kernel that
has just started: how often the kernel was asked for its info while the websocket waited.
"""

from __future__ import annotations

from .conftest import Hub


def test_a_new_kernel_websocket_asks_again_until_the_kernel_answers(hub: Hub):
    ours = hub.in_image("kernel_nudge.py")
    assert ours["configured"] == "classhub_notebook.PromptChannelsConnection"
    # Jupyter server's two asks (shell and control) at the start, then ours every 0.05 s.
    assert ours["asked while waiting"] >= 6, ours
    assert ours["asked after"] <= 2, ours  # it stops once the wait is over
    # The same moment with Jupyter server's own websocket: asked at the start and 0.5 s later.
    theirs = hub.in_image("kernel_nudge.py", "jupyter")
    assert theirs["asked while waiting"] <= 4, theirs
