"""Plans: what a task will do, shown before it is done.

A mutating task builds a list of `Step`s (component, state now, action), prints it as a table,
and applies it unless it is a dry run. A step with `run=None` needs nothing; `invoke status` shows
the same rows and applies none. Steps are ordered: a later step may rely on an earlier one.
"""

from __future__ import annotations

import textwrap
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


WIDTH = 100  # a table's lines fit in this many columns: long states and actions wrap


def table(steps: Iterable[Step], width: int = WIDTH) -> str:
    """The steps as (component, state, action) columns, each line at most `width` wide: the
    component column as wide as its longest, the state at most half the rest, and what does not
    fit wraps onto lines of its own under its column."""
    rows = [("COMPONENT", "STATE", "ACTION")] + [(s.component, s.state, s.action) for s in steps]
    first = max(len(row[0]) for row in rows)
    room = max(20, width - first - 4)
    second = min(max(len(row[1]) for row in rows), room // 2)
    third = max(10, room - second)
    lines = []
    for component, state, action in rows:
        # Names keep their hyphens on one line (classhub-base:bookworm); only a word longer than
        # its column is cut.
        states = textwrap.wrap(state, second, break_on_hyphens=False) or [""]
        actions = textwrap.wrap(action, third, break_on_hyphens=False) or [""]
        for i in range(max(len(states), len(actions))):
            left = component if i == 0 else ""
            middle = states[i] if i < len(states) else ""
            right = actions[i] if i < len(actions) else ""
            lines.append(f"{left:<{first}}  {middle:<{second}}  {right}".rstrip())
    return "\n".join(lines)


def brief(steps: list[Step]) -> str:
    """What setup prints of its plan unless asked for all of it: the rows that change something
    and how many others were checked; "" when nothing changes (setup says so in a line)."""
    changing = [step for step in steps if step.changes]
    if not changing:
        return ""
    settled = len(steps) - len(changing)
    return table(changing) + f"\n(and {settled} other components checked: as they should be)"


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
