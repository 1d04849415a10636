"""Plans: what a task will do, shown before it is done.

A mutating task builds a list of `Step`s (component, state now, action), prints it as a table,
and applies it unless it is a dry run. A step with `run=None` needs nothing; `invoke status` shows
the same rows and applies none. Steps are ordered: a later step may rely on an earlier one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

NOTHING = "none"


@dataclass(frozen=True)
class Step:
    component: str
    state: str
    action: str = NOTHING
    run: Callable[[], None] | None = None

    @property
    def changes(self) -> bool:
        return self.run is not None


def table(steps: Iterable[Step]) -> str:
    rows = [("COMPONENT", "STATE", "ACTION")] + [(s.component, s.state, s.action) for s in steps]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip() for row in rows
    )


def apply(steps: Iterable[Step], echo: Callable[[str], None]) -> int:
    """Run every step that changes something, saying which. Returns how many ran."""
    count = 0
    for step in steps:
        if step.run is None:
            continue
        echo(f"-> {step.component}: {step.action}")
        step.run()
        count += 1
    return count
