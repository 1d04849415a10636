"""The roster: who may use the hub, who is an admin, and which groups each person is in.

`userlist` has one user a line: `name [token ...]`. Each token after the name is a group name, the
word `admin`, which makes the user an admin, or a limit, `mem=SIZE`, `cpu=CORES` or `disk=SIZE` (the
home's size), for that user. `#` starts a comment; blank lines are ignored; any whitespace separates
tokens. A line `group: NAME ... [mem=SIZE] [cpu=CORES] [disk=SIZE]` declares groups that may have no
members yet (`invoke add-group`) and gives each of them the limits on the line. A user's memory or
CPU limit is their own, else the largest of their groups', else the hub's default (MEM_LIMIT,
CPU_LIMIT). A `disk=` on a group: line sizes the group's folder, not its members' homes: a home's
size is its user's own disk=, else DISK_LIMIT; a group folder's its group's, else GROUP_DISK_LIMIT.
A group: line may also give its groups an image (`image=`) and what their members' servers may reach
past the egress policy (`egress=10.1.2.3:5432,10.20.0.0/16`, as EGRESS_ALLOW).
Rules that hold for every `Roster`:
- user and group names are lowercased (JupyterHub lowercases usernames, so `Alice` is `alice`) and
  valid for JupyterHub and for Docker object names (`names.name_problem`);
- no user appears twice, so no two users share a container or a volume;
- the hub's `ADMIN_USER` is always on it, always as an admin.
This is the only parser of `userlist`; the hub reads what the host rendered from a `Roster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import names
from ..errors import Problem, quoted
from . import parsers
from .parsers import Context, Invalid

ADMIN_WORD = "admin"
GROUP_WORD = "group:"

HEADER_HELP = "one user a line: name [group ...] [admin], e.g. 'alice team-1'"


LIMIT_KEYS = {
    "mem": "memory, e.g. mem=4G",
    "cpu": "cores, e.g. cpu=2 or cpu=0.5",
    "disk": "a size for the home (on a group: line, the group's folder), e.g. disk=10G",
}
GROUP_KEYS = {
    **LIMIT_KEYS,
    "image": "an image name, e.g. image=classhub-gpu:latest",
    "egress": "addresses or networks with optional ports, e.g. egress=10.1.2.3:5432,10.20.0.0/16",
}
# The limits' values, checked as the settings' are (MEM_LIMIT, CPU_LIMIT, DISK_LIMIT).
_IMAGE = parsers.image("image=classhub-gpu:latest")
_DISK = parsers.disk_size("disk", "5G")
_EGRESS = parsers.egress_targets("egress", "10.1.2.3:5432,10.20.0.0/16")


@dataclass(frozen=True)
class Limits:
    mem: int | None = None  # bytes
    cpu: float | None = None  # cores
    disk: int | None = None  # bytes: the home's size (a group's: its folder's)


@dataclass(frozen=True)
class User:
    name: str
    admin: bool
    groups: tuple[str, ...]
    line: int | None  # None: not in the file (the ADMIN_USER that classhub adds)
    limits: Limits = Limits()


@dataclass(frozen=True)
class Roster:
    users: tuple[User, ...]
    declared: tuple[str, ...] = ()  # groups from `group:` lines, members or not
    group_limits: tuple[tuple[str, Limits], ...] = ()  # from `group:` lines
    group_images: tuple[tuple[str, str, int], ...] = ()  # (group, image, line) from `group:` lines
    group_lines: tuple[tuple[str, int], ...] = ()  # each group with the first line naming it
    # (group, what it may reach past the egress policy) from `group:` lines' egress=
    group_egress: tuple[tuple[str, tuple[parsers.EgressTarget, ...]], ...] = ()

    def group_line(self, group: str) -> int | None:
        """The first line of the roster that names `group` (None: not in the file)."""
        return dict(self.group_lines).get(group)

    def image_refs(self) -> tuple[str, ...]:
        """The images `group:` lines give (each once)."""
        return tuple(sorted({image for _, image, _ in self.group_images}))

    def image_for(self, name: str | User, default: str) -> str:
        """The image their groups give the user (at most one, which several of their groups may
        give), or the hub's. `name` may be a User not on the roster (a newcomer with
        DEFAULT_GROUPS)."""
        user = name if isinstance(name, User) else self.user(name)
        images = {g: image for g, image, _ in self.group_images}
        return next((images[g] for g in user.groups if g in images), default)

    def limits_for(self, name: str | User, default: Limits) -> Limits:
        """Most specific wins: the user's own, the largest of their groups', the default."""
        user = name if isinstance(name, User) else self.user(name)
        by_group = dict(self.group_limits)
        groups = [by_group[g] for g in user.groups if g in by_group]
        mem = [g.mem for g in groups if g.mem is not None]
        cpu = [g.cpu for g in groups if g.cpu is not None]
        return Limits(
            mem=user.limits.mem if user.limits.mem is not None else max(mem, default=default.mem),
            cpu=user.limits.cpu if user.limits.cpu is not None else max(cpu, default=default.cpu),
        )

    def home_size(self, name: str | User, default: int) -> int:
        """The size limit of the user's home: their own disk=, else `default` (DISK_LIMIT)."""
        user = name if isinstance(name, User) else self.user(name)
        return user.limits.disk if user.limits.disk is not None else default

    def group_size(self, group: str, default: int) -> int:
        """The size limit of the group's folder: its group: line's disk=, else `default`."""
        disk = dict(self.group_limits).get(group, Limits()).disk
        return disk if disk is not None else default

    def user(self, name: str) -> User:
        """The roster's user `name` (KeyError when not on it)."""
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def get(self, name: str) -> User | None:
        name = name.lower()
        return next((u for u in self.users if u.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.users)

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each group (sorted) with its members in roster order."""
        members: dict[str, list[str]] = {g: [] for g in self.declared}
        for user in self.users:
            for group in user.groups:
                members.setdefault(group, []).append(user.name)
        return {g: tuple(members[g]) for g in sorted(members)}

    def volumes(self, hub: str) -> dict[str, str]:
        """The volume of every user's home and every group's folder on hub `hub`: name ->
        'user' or 'group'."""
        found = {names.user_volume(hub, n): "user" for n in self.names}
        found.update({names.group_volume(hub, g): "group" for g in self.groups()})
        return found


def edits(a: str, b: str) -> int:
    """How many letters to add, drop, change or swap with a neighbour to turn `a` into `b`."""
    rows = [list(range(len(b) + 1))]
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (x != y)))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def closest(name: str, known: tuple[str, ...] | list[str], most: int = 3) -> list[str]:
    """The known names nearest to `name`, if within two edits of it (one for names of up to four
    letters): those the fewest edits away, at most `most`."""
    reach = 1 if len(name) <= 4 else 2
    near = sorted((edits(name, k), k) for k in known if k != name)
    if not near or near[0][0] > reach:
        return []
    return [k for distance, k in near if distance == near[0][0]][:most]


def did_you_mean(name: str, known: tuple[str, ...] | list[str]) -> str:
    """'; did you mean a or b?' for a name that is not known, or '' when none is close."""
    near = closest(name, known)
    return f"; did you mean {' or '.join(near)}?" if near else ""


def _typo_warnings(
    shown: str, group_lines: dict[str, int], mentions: dict[str, int], admin_typos: list
) -> list[str]:
    """A token a letter or two from `admin`, read as a group; a group named once and one letter
    from a group named more often (or earlier), which is likely meant; but not one number of a
    series from another (team-1, team-2)."""
    found = [f"{shown}:{line}: {quoted(token)} is read as a group name; did you mean {ADMIN_WORD}?"
             for line, token in admin_typos]  # fmt: skip
    for group, line in sorted(group_lines.items(), key=lambda item: item[1]):
        if mentions[group] != 1:
            continue
        for other in closest(group, list(group_lines)):
            numbered = len(other) == len(group) and all(
                a == b or (a in "0123456789" and b in "0123456789")
                for a, b in zip(group, other, strict=True)
            )
            if numbered or edits(group, other) != 1:
                continue
            if mentions[other] > 1 or group_lines[other] < line:
                found.append(f"{shown}:{line}: group {quoted(group)} is named only here; did "
                             f"you mean {other} (named on {mentions[other]} line(s))?")  # fmt: skip
                break
    return found


def _limit(
    token: str, where: str, ctx: Context | None, problems: list[Problem], keys: dict[str, str]
):
    """(key, value) of a `key=value` token, or None after adding a problem."""
    key, _, raw = token.partition("=")
    key = key.lower()
    if key not in keys:
        known = " or ".join(f"{k}=..." for k in keys)
        where_ok = "" if "image" in keys else " (image= and egress= go on a group: line)"
        problems.append(Problem(where, f"{quoted(token)} is not a setting of this line{where_ok}",
                                f"write {known}, e.g. mem=4G"))  # fmt: skip
        return None
    # Without a context (no host to ask), cpu= is not checked against the host's cores.
    ctx = ctx or Context(root=Path.cwd(), cpu_count=10**6)
    try:
        if key == "image":
            return key, _IMAGE(raw, ctx)
        if key == "egress":
            return key, _EGRESS(raw, ctx)
        if key == "mem":
            return key, parsers.mem_limit(raw, ctx)
        if key == "disk":
            return key, _DISK(raw, ctx)
        return key, parsers.cpu_limit(raw, ctx)
    except Invalid as exc:
        problems.append(Problem(where, f"{quoted(token)} {exc.reason}", f"give {keys[key]}"))
        return None


def parse_userlist(
    text: str, admin_user: str | None, shown: str = "userlist", ctx: Context | None = None
) -> tuple[Roster | None, list[Problem], list[str]]:
    """Read `userlist` text into a Roster. Returns (roster or None, problems, warnings).

    `admin_user` is the hub's ADMIN_USER (None when that setting is itself invalid); `ctx` gives
    the host's cores for checking `cpu=` limits (None: not checked against them).
    """
    problems: list[Problem] = []
    warnings: list[str] = []
    users: list[User] = []
    declared: list[str] = []
    group_limits: dict[str, tuple[Limits, int]] = {}  # group -> (limits, line)
    group_images: list[tuple[str, str, int]] = []
    group_egress: dict[str, list[parsers.EgressTarget]] = {}
    first_line: dict[str, tuple[int, str]] = {}  # lowercased name -> (line, name as written)
    group_lines: dict[str, int] = {}  # group -> the first line that names it
    mentions: dict[str, int] = {}  # group -> how many lines name it
    admin_typos: list[tuple[int, str]] = []  # (line, token) a letter or two from `admin`

    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        tokens = raw_line.split("#", 1)[0].split()
        if not tokens:
            continue
        where = f"{shown}:{lineno}"
        limits = {}
        keys = GROUP_KEYS if tokens[0].lower() == GROUP_WORD else LIMIT_KEYS
        for token in [t for t in tokens[1:] if "=" in t]:
            found = _limit(token, where, ctx, problems, keys)
            if found:
                limits[found[0]] = found[1]
        image = limits.pop("image", None)
        egress = limits.pop("egress", ())
        tokens = [t for t in tokens if "=" not in t]
        if not tokens:
            continue
        if tokens[0].lower() == GROUP_WORD:
            if len(tokens) == 1:
                problems.append(Problem(where, "this group: line names no group, so its "
                                        "settings would apply to none",
                                        "name the groups after 'group:', e.g. 'group: team-3 "
                                        "mem=8G'"))  # fmt: skip
            seen_here: set[str] = set()
            for token in tokens[1:]:
                word = token.lower()
                if word in seen_here:
                    warnings.append(f"{where}: group {quoted(word)} is given twice on this "
                                    "line; once is enough")  # fmt: skip
                    continue
                seen_here.add(word)
                group_lines.setdefault(word, lineno)
                mentions[word] = mentions.get(word, 0) + 1
                if limits and word in group_limits:
                    problems.append(
                        Problem(
                            where,
                            f"group {word!r} has limits on line {group_limits[word][1]} already",
                            "give a group's limits on one line",
                        )
                    )
                elif limits:
                    group_limits[word] = (Limits(**limits), lineno)
                if image:
                    group_images.append((word, image, lineno))
                for target in egress:  # several lines may each open something for a group
                    if target not in group_egress.setdefault(word, []):
                        group_egress[word].append(target)
                problem = names.name_problem(token.lower())
                if problem:
                    problems.append(
                        Problem(where, f"group name {quoted(token)} {problem}", names.NAME_RULE)
                    )
                elif token.lower() not in declared:
                    declared.append(token.lower())
            continue
        written, name = tokens[0], tokens[0].lower()
        line_ok = True

        problem = names.name_problem(name)
        if problem:
            problems.append(
                Problem(where, f"user name {quoted(written)} {problem}", names.NAME_RULE)
            )
            line_ok = False
        elif name in first_line:
            earlier, as_written = first_line[name]
            same = (
                ""
                if as_written == written
                else (
                    f" as {as_written!r}; names are case-insensitive, so both would be the same "
                    f"JupyterHub user with one home volume"
                )
            )
            problems.append(
                Problem(
                    where,
                    f"user {written!r} is already listed on line {earlier}{same}",
                    "keep one line for each user and put all their groups on it",
                )
            )
            line_ok = False
        else:
            first_line[name] = (lineno, written)

        admin = False
        groups: list[str] = []
        for token in tokens[1:]:
            word = token.lower()
            if word == ADMIN_WORD:
                admin = True
                continue
            problem = names.name_problem(word)
            if problem:
                problems.append(
                    Problem(
                        where,
                        f"group name {quoted(token)} {problem}",
                        names.NAME_RULE + f"; or write '{ADMIN_WORD}' to make the user an admin",
                    )
                )
                line_ok = False
            elif word in groups:
                warnings.append(
                    f"{where}: group {quoted(word)} is given twice for {quoted(name)}; once is "
                    "enough"
                )
            else:
                groups.append(word)
                group_lines.setdefault(word, lineno)
                mentions[word] = mentions.get(word, 0) + 1
                if 0 < edits(word, ADMIN_WORD) <= 2:
                    admin_typos.append((lineno, token))
        if line_ok:
            users.append(User(name, admin, tuple(groups), lineno, Limits(**limits)))

    if not first_line and not problems:
        problems.append(Problem(shown, "lists no users", f"add {HEADER_HELP}"))
    if problems:
        return None, problems, warnings
    warnings += _typo_warnings(shown, group_lines, mentions, admin_typos)

    problems += _image_clashes(users, group_images, shown)
    if problems:
        return None, problems, warnings
    if admin_user is not None:
        users = _with_admin(users, admin_user)
    limits_by_group = tuple((g, lim) for g, (lim, _) in sorted(group_limits.items()))
    roster = Roster(tuple(users), tuple(declared), limits_by_group, tuple(group_images),
                    tuple(sorted(group_lines.items())),
                    tuple((g, tuple(t)) for g, t in sorted(group_egress.items())))  # fmt: skip
    return roster, [], warnings


def _image_clashes(
    users: list[User], group_images: list[tuple[str, str, int]], shown: str
) -> list[Problem]:
    """A group given two images, or a user in two groups with different images."""
    problems: list[Problem] = []
    first: dict[str, tuple[str, int]] = {}
    for group, image, line in group_images:
        if group in first and first[group][0] != image:
            problems.append(Problem(f"{shown}:{line}", f"group {group!r} has image "
                                    f"{first[group][0]} on line {first[group][1]} already",
                                    "give a group one image"))  # fmt: skip
        first.setdefault(group, (image, line))
    for user in users:
        mine = {first[g][0]: g for g in user.groups if g in first}
        if len(mine) > 1:  # groups that give the same image agree: that is one image
            problems.append(Problem(f"{shown}:{user.line}", f"{user.name} is in groups with "
                                    f"different images ({', '.join(sorted(mine.values()))})",
                                    "keep them out of all but one of those groups, or give "
                                    "those groups the same image"))  # fmt: skip
    return problems


def _with_admin(users: list[User], admin_user: str) -> list[User]:
    """ADMIN_USER is always on the roster and always an admin."""
    for i, user in enumerate(users):
        if user.name == admin_user:
            if not user.admin:
                users[i] = User(user.name, True, user.groups, user.line, user.limits)
            return users
    return [User(admin_user, True, (), None), *users]
