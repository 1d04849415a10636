"""What tasks print, and how errors reach the person running them.

Rules: results go to stdout (so `invoke login --csv > file` holds only the CSV); warnings, progress
and errors go to stderr. A `UserError` ends the task with its message and exit code 1, never a
traceback. Secret values are printed only by the tasks whose purpose is to print them (login,
reset-password and the end of setup).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

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

    def info(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        print(f"warning: {text}", file=self.err, flush=True)

    def progress(self, label: str, done: int, total: int) -> None:
        """A progress line: rewritten in place on a terminal, every 10th and the last otherwise."""
        if self.err.isatty():
            end = "\n" if done == total else ""
            print(f"\r   {label}: {done}/{total}", end=end, file=self.err, flush=True)
        elif done == total or done % 10 == 0:
            print(f"   {label}: {done}/{total}", file=self.err, flush=True)


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
