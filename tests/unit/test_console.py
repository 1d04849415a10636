"""What tasks print (classhub/console.py, classhub/plan.py): progress on a terminal and elsewhere,
and plan tables to the terminal's width."""

from __future__ import annotations

import io
import os
import pty

from classhub import plan
from classhub.console import Output
from classhub.plan import Step
from tests.conftest import plan_rows


def on_a_terminal(run) -> bytes:
    """What `run` writes to a pseudo-terminal (standard output and error both go there)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: run, then leave without pytest's cleanup
        try:
            run()
        finally:
            os._exit(0)
    written = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        written += chunk
    os.waitpid(pid, 0)
    return written


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log():
    def steps() -> None:
        # The terminal's own descriptors (pytest has put its capture in place of sys.stdout).
        stdout, stderr = os.fdopen(1, "w"), os.fdopen(2, "w")
        out = Output(stdout, stderr)
        for done in range(1, 4):
            out.progress("hashing passwords", done, 3)
        out.info("after the bar")

    drawn = on_a_terminal(steps).decode("utf-8", "replace")
    assert "hashing passwords" in drawn and "3/3" in drawn
    assert "\u2501" in drawn  # the bar itself
    assert drawn.rindex("\x1b[?25h") < drawn.index("after the bar")  # cursor back before more

    log = io.StringIO()
    out = Output(io.StringIO(), log)
    for done in range(1, 26):
        out.progress("servers ready", done, 25)
    assert log.getvalue().splitlines() == [
        "   servers ready: 10/25",
        "   servers ready: 20/25",
        "   servers ready: 25/25",
    ]


def test_plan_tables_take_the_width_they_are_given():
    steps = [Step("secrets/tls/selfsigned.crt", "lacks DNS:*.physics.example.edu and more",
                  "make a self-signed certificate and key for DNS:*.physics.example.edu",
                  lambda: None)]  # fmt: skip
    for width in (60, 80, 140):
        text = plan.table(steps, width=width)
        assert max(len(line) for line in text.splitlines()) <= width
        state, action = plan_rows(text)["secrets/tls/selfsigned.crt"]
        # Wrapped between words; a word longer than a narrow column is cut, not lost.
        assert state.replace(" ", "") == steps[0].state.replace(" ", "")
        assert action.replace(" ", "") == steps[0].action.replace(" ", "")
    assert len(plan.table(steps, width=140).splitlines()) == 2  # room enough: one line a row
    assert plan.terminal_width() == plan.WIDTH  # pytest's output is no terminal
