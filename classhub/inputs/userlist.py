"""Edits of `userlist` that tasks make (add-user, add-group, remove-user): each one a change of
the text that keeps every other line, comment and blank as the administrator wrote it, and is
written only once the whole new text parses as a roster (nothing half done).

`roster.parse_userlist` stays the only parser; this module only changes text and checks it with
that parser.
"""

from __future__ import annotations

from .. import names
from ..errors import ConfigError, UserError
from ..files import file_mode, write_atomic
from ..paths import Paths
from .roster import GROUP_WORD, Roster, parse_userlist


def read(paths: Paths) -> str:
    return paths.userlist.read_text(encoding="utf-8-sig")


def checked(text: str, admin_user: str) -> Roster:
    """The roster `text` gives, or ConfigError with every problem in it."""
    roster, problems, _ = parse_userlist(text, admin_user)
    if roster is None:
        raise ConfigError(problems)
    return roster


def write(paths: Paths, text: str, admin_user: str) -> None:
    """Replace userlist with `text` once it parses (its mode kept)."""
    checked(text, admin_user)
    write_atomic(paths.userlist, text, mode=file_mode(paths.userlist))


def with_user(text: str, line: int | None, who: str, tokens: list[str]) -> str:
    """`who` added (a new line) or given more `tokens` (groups, admin) on their `line`."""
    problem = names.name_problem(who)
    if problem:
        raise UserError(f"user name {who!r} {problem}; {names.NAME_RULE}")
    return with_tokens(text, line, who, tokens)


def with_group(text: str, admin_user: str, group: str, members: list[str]) -> tuple[str, list[str]]:
    """`group` given to each of `members` (on the roster) or, with none, declared on a `group:`
    line when nobody is in it yet; returns the text and the members added."""
    added = []
    for member in dict.fromkeys(members):
        user = checked(text, admin_user).user(member)  # line numbers as of the latest edit
        if group not in user.groups:
            text = with_tokens(text, user.line, member, [group])
            added.append(member)
    if not members and group not in checked(text, admin_user).groups():
        text = with_tokens(text, None, GROUP_WORD, [group])
    return text, added


def with_tokens(text: str, line: int | None, name: str, tokens: list[str]) -> str:
    """`text` with `tokens` added to the user's line (kept before any comment), or a new line."""
    lines = text.splitlines()
    if line is None:
        body = text if text.endswith("\n") or not text else text + "\n"
        return body + " ".join([name, *tokens]) + "\n"
    code, sep, comment = lines[line - 1].partition("#")
    lines[line - 1] = " ".join([code.rstrip(), *tokens]) + (f"  #{comment}" if sep else "")
    return "\n".join(lines) + "\n"


def without_line(text: str, line: int) -> str:
    """`text` without line `line` (1-based), e.g. a user taken off the roster."""
    lines = text.splitlines()
    del lines[line - 1]
    return "\n".join(lines) + ("\n" if lines else "")
