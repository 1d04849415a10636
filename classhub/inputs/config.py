"""Loading everything a person edits (`.env`, the environment, `userlist`) into one `Config`.

Rules: every problem in all inputs is collected and raised together as one `ConfigError`; nothing
is written here. When `.env` does not exist yet, `.env.example` stands in for it (that is exactly
what setup will copy), and the `Config` says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import hubfile
from ..errors import ConfigError, Problem
from ..files import read_text
from ..paths import Paths
from .parsers import Context
from .roster import HEADER_HELP, Roster, parse_userlist
from .settings import Settings, load_settings


@dataclass(frozen=True)
class Config:
    settings: Settings
    roster: Roster
    warnings: tuple[str, ...]
    env_path: Path  # the file the settings were read from
    env_missing: bool  # .env does not exist; env_path is .env.example


def load(paths: Paths, environ: Mapping[str, str], cpu_count: int | None = None) -> Config:
    env_missing = not paths.env_file.exists()
    env_path = paths.env_example if env_missing else paths.env_file
    env_shown = paths.show(env_path)
    problems: list[Problem] = []
    warnings: list[str] = []
    settings: Settings | None = None
    roster: Roster | None = None
    ctx = Context(root=paths.root, cpu_count=cpu_count or os.cpu_count() or 1)

    try:
        env_text = read_text(
            env_path,
            env_shown,
            "restore .env.example (git checkout .env.example), or write a .env"
            if env_missing
            else "copy .env.example to .env, or run invoke setup, which does",
        )
    except ConfigError as exc:
        problems += exc.problems
    else:
        settings, env_problems, env_warnings = load_settings(env_text, env_shown, environ, ctx)
        problems += env_problems
        warnings += env_warnings

    users_shown = paths.show(paths.userlist)
    try:
        userlist_text = read_text(paths.userlist, users_shown, f"create it with {HEADER_HELP}")
    except ConfigError as exc:
        problems += exc.problems
    else:
        # With a bad ADMIN_USER (or other bad settings) the roster is still checked, so that every
        # problem shows at once; it is then checked without adding the admin.
        admin_user = settings.admin_user if settings else None
        roster, roster_problems, roster_warnings = parse_userlist(
            userlist_text, admin_user, users_shown, ctx
        )
        problems += roster_problems
        warnings += roster_warnings

    if settings is not None and roster is not None:
        problems += _folder_clashes(settings, roster, users_shown, env_shown)
        problems += _unknown_default_groups(settings, roster, users_shown)
    if problems:
        raise ConfigError(problems, warnings)
    assert settings is not None and roster is not None
    if env_missing:
        warnings.insert(
            0, f".env does not exist yet: using {env_shown} (invoke setup copies it to .env)"
        )
    return Config(settings, roster, tuple(warnings), env_path, env_missing)


def _folder_clashes(settings: Settings, roster: Roster, users_shown: str, env_shown: str):
    """A group whose folder in the home would sit where the shared data or the users' homes go."""
    taken = {}
    if settings.shared_data:
        taken[hubfile.SHARED_FOLDER] = "SHARED_DATA"
    if settings.admin_sees_users:
        taken[hubfile.USERS_FOLDER] = "ADMIN_SEES_USERS"
    return [
        Problem(
            f"{users_shown}:{roster.group_line(group)}",
            f"group {group!r} would have the same folder as {key} (~/{group}) set in {env_shown}",
            "rename the group",
        )
        for group in roster.groups()
        if group in taken and (key := taken[group])
    ]


def _unknown_default_groups(settings: Settings, roster: Roster, users_shown: str) -> list[Problem]:
    """DEFAULT_GROUPS must be groups of the roster: their folders are made from it."""
    known = roster.groups()
    return [
        Problem(
            settings.sources["DEFAULT_GROUPS"],
            f"DEFAULT_GROUPS names group {group!r}, which is not a group of {users_shown}",
            f"add a line 'group: {group}' to {users_shown} (invoke add-group {group} does), "
            "or take it out of DEFAULT_GROUPS",
        )
        for group in settings.default_groups
        if group not in known
    ]
