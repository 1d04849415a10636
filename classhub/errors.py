"""The errors classhub shows to a person, and how they are worded.

Rule: anything a person can fix by editing a file or running a command is raised as a
`UserError` (or `ConfigError`, which lists every problem at once). Its text names the file and line
or the key, what is wrong, and what to do. Tasks print it without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

QUOTED_MAX = 40  # characters of an offending value a message repeats


def quoted(value: str) -> str:
    """`value` as a message shows it: repr'd, and cut to its first QUOTED_MAX characters with
    its length when longer, so that a 200,000-character name does not fill the screen."""
    if len(value) <= QUOTED_MAX:
        return repr(value)
    return f"{value[:QUOTED_MAX]!r}... ({len(value)} characters)"


def clipped(value: str) -> str:
    """`value` as a message shows it unquoted (KEY=value): cut like `quoted` when longer."""
    return (
        value if len(value) <= QUOTED_MAX else f"{value[:QUOTED_MAX]}... ({len(value)} characters)"
    )


class UserError(Exception):
    """A problem the person running classhub can fix; the message says how."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (`.env:3`, `userlist:7`, `environment`), what, the fix."""

    where: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}; {self.fix}"


class ConfigError(UserError):
    """Every problem found in `.env`, the environment and `userlist`, reported together.

    Problems are listed by file, then line; warnings found on the way are listed after them, so
    that a typo's warning (an unknown key) is not lost when another line is an error.
    """

    def __init__(self, problems: list[Problem], warnings: list[str] | tuple[str, ...] = ()):
        files = list(dict.fromkeys(p.where.split(":")[0] for p in problems))
        self.problems = sorted(
            problems, key=lambda p: (files.index(p.where.split(":")[0]), _line(p))
        )
        self.warnings = tuple(warnings)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        lines = [f"classhub found {head} in its settings and roster; nothing was changed:"]
        lines += [f"  {p}" for p in self.problems]
        if self.warnings:
            lines.append("Also noticed:")
            lines += [f"  {w}" for w in self.warnings]
        super().__init__("\n".join(lines))


def _line(problem: Problem) -> int:
    _, _, line = problem.where.partition(":")
    return int(line) if line.isdigit() else 0
