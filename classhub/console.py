"""What tasks print, and how errors reach the person running them.

Rules: results go to stdout (so `invoke login --csv > file` holds only the CSV); warnings, progress
and errors go to stderr. A `UserError` ends the task with its message and exit code 1, never a
traceback. Secret values are printed only by the tasks whose purpose is to print them (login,
reset-password and the end of setup).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from rich import progress as bars
from rich.console import Console

from .errors import UserError

# What modules are given to say things with, so they print nothing themselves: a line for the
# person running the task (Output.info), and a step's progress as (label, done, total)
# (Output.progress).
Echo = Callable[[str], None]
Progress = Callable[[str, int, int], None]


class Output:
    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.warnings: list[str] = []  # every warning so far, for a task to repeat at its end
        self._bar: tuple[bars.Progress, str, bars.TaskID] | None = None  # the bar being drawn

    def info(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        print(f"warning: {text}", file=self.err, flush=True)

    def progress(self, label: str, done: int, total: int) -> None:
        """A step's progress: a bar (rich) on a terminal, kept once the step is done; elsewhere a
        line every 10th and at the last, which a log keeps readable."""
        if not self.err.isatty():
            if done == total or done % 10 == 0:
                print(f"   {label}: {done}/{total}", file=self.err, flush=True)
            return
        if self._bar is None or self._bar[1] != label:
            self._end_bar()
            columns = (bars.TextColumn("   {task.description}"), bars.BarColumn(),
                       bars.MofNCompleteColumn())  # fmt: skip
            bar = bars.Progress(*columns, console=Console(file=self.err), auto_refresh=False,
                                redirect_stdout=False, redirect_stderr=False)  # fmt: skip
            bar.start()
            atexit.register(bar.stop)  # the cursor comes back even if the task fails meanwhile
            self._bar = (bar, label, bar.add_task(label, total=total))
        bar, _, task = self._bar
        bar.update(task, completed=done, total=total, refresh=True)
        if done >= total:
            self._end_bar()

    def _end_bar(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()
            self._bar = None


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `UserError` into invoke's clean exit: the message on stderr, exit code 1.

    A reader that stops early (`invoke login --csv | head -3`) ends the task quietly, as other
    command-line tools do, instead of with a traceback.
    """
    from invoke.exceptions import Exit

    try:
        yield
    except UserError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise Exit(code=141) from None


def human_size(count: float) -> str:
    """A size in bytes as people read it: 512 B, 3.4 MB, 5.0 GB (units of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"
