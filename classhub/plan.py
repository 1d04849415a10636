"""Plans: what a task will do, shown before it is done.

A mutating task builds a list of `Step`s (component, state now, action), prints it as a table,
and applies it unless it is a dry run. A step with `run=None` needs nothing; `invoke status` shows
the same rows and applies none. Steps are ordered: a later step may rely on an earlier one.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

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


WIDTH = 100  # a table's width where output is no terminal (a log, a pipe, a test)


def table(steps: Iterable[Step], width: int | None = None) -> str:
    """The steps as (component, state, action) columns, drawn by rich to `width` (the terminal's
    width on a terminal, else WIDTH): the component whole, long states and actions wrapped onto
    lines of their own under their column (a word longer than its column is cut)."""
    grid = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="")
    grid.add_column("COMPONENT", no_wrap=True)
    grid.add_column("STATE", overflow="fold", ratio=1)
    grid.add_column("ACTION", overflow="fold", ratio=1)
    for step in steps:  # Text: a state is never read as rich's markup ("[...]")
        grid.add_row(Text(step.component), Text(step.state), Text(step.action))
    buffer = io.StringIO()
    Console(file=buffer, width=width or terminal_width(), color_system=None).print(grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def terminal_width() -> int:
    """The width of the terminal standard output goes to, or WIDTH when it goes elsewhere."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size((WIDTH, 24)).columns
    return WIDTH


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
