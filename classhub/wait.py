"""Waiting, done one way everywhere: poll until a check passes or a deadline passes.

A wait shows a progress line with the seconds spent, and when its deadline passes it raises a
`UserError` that names what did not happen and carries the logs that explain why (`on_timeout`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import UserError


def until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    echo: Callable[[str], None] | None = None,
    on_timeout: Callable[[], str] | None = None,
    interval: float = 0.5,
) -> float:
    """Poll `check` until it returns True; returns the seconds it took."""
    started = time.monotonic()
    shown = 0.0
    while True:
        if check():
            return time.monotonic() - started
        spent = time.monotonic() - started
        if spent > timeout:
            details = on_timeout() if on_timeout else ""
            raise UserError(
                f"{what}: still not done after {timeout:.0f}s" + (f"\n{details}" if details else "")
            )
        if echo and spent - shown >= 10:
            shown = spent
            echo(f"   waiting for {what} ({spent:.0f}s) ...")
        time.sleep(interval)
