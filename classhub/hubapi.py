"""The hub's REST API, as the host's `classhub` service uses it (token in secrets/).

Used for what only the running hub knows or holds: whether it answers, which users have a
running server, and its users and groups, which `drift` and `apply_drift` keep in step with the
roster (so the admin panel shows every student before their first login). Someone taken off the
roster is removed from the hub: their server is stopped and they can no longer log in. Their home
volume is not the hub's: it stays (invoke remove-user --purge deletes it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from .errors import UserError
from .inputs.roster import Roster
from .inputs.settings import Settings

PAGINATED = "application/jupyterhub-pagination+json"


class HubAPI:
    def __init__(
        self,
        settings: Settings,
        token: Callable[[], str],
        timeout: float = 30,
        host: Callable[[], str | None] | None = None,
    ):
        """`token` is called on first use: on a fresh setup the token does not exist yet.
        `host` gives the hub's host:port when it is not `settings.upstream` (behind the bundled
        nginx the hub is not published); it is asked until it knows (the network may be new)."""
        self._settings = settings
        self._host = host
        self._found: str | None = None
        self.session = requests.Session()
        self._token = token
        self.timeout = timeout

    @property
    def root(self) -> str:
        if self._found is None and self._host is not None:
            self._found = self._host()
        host = self._found or self._settings.upstream
        return f"http://{host}{self._settings.base_url}hub/api"

    def _authorize(self) -> None:
        if "Authorization" not in self.session.headers:
            self.session.headers["Authorization"] = f"token {self._token()}"

    def answers(self) -> bool:
        try:
            return self.session.get(self.root + "/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        self._authorize()
        try:
            response = self.session.request(
                method, self.root + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise UserError(
                f"the hub's API at {self.root} does not answer ({type(exc).__name__}); "
                "start the hub with: invoke up (its log: invoke logs)"
            ) from None
        if response.status_code >= 400:
            raise UserError(
                f"the hub's API refused {method} {path}: {response.status_code} "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else None

    def _all(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.call(
                "GET", path, params={"offset": offset, "limit": 200}, headers={"Accept": PAGINATED}
            )
            items += page["items"]
            following = (page.get("_pagination") or {}).get("next")
            if not following:
                return items
            offset = following["offset"]

    def users(self) -> list[dict[str, Any]]:
        return self._all("/users")

    def groups(self) -> list[dict[str, Any]]:
        return self._all("/groups")

    def running(self) -> list[str]:
        """Users with a running (or starting) server."""
        return sorted(u["name"] for u in self.users() if u.get("servers"))


@dataclass(frozen=True)
class Drift:
    """How the hub's users and groups differ from the roster's."""

    new_users: tuple[str, ...]
    new_groups: tuple[str, ...]
    add_members: dict[str, tuple[str, ...]]
    drop_members: dict[str, tuple[str, ...]]
    gone_users: tuple[str, ...] = ()  # in the hub, not on the roster
    gone_groups: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.new_users or self.new_groups or self.add_members or self.drop_members
            or self.gone_users or self.gone_groups
        )  # fmt: skip

    def describe(self) -> str:
        parts = []
        if self.new_users:
            parts.append(f"add user(s) {_few(self.new_users)}")
        if self.new_groups:
            parts.append(f"add group(s) {_few(self.new_groups)}")
        changed = sorted(set(self.add_members) | set(self.drop_members))
        if changed:
            parts.append(f"change the members of {_few(changed)}")
        if self.gone_users:
            parts.append(f"remove user(s) {_few(self.gone_users)} (servers stopped, homes kept)")
        if self.gone_groups:
            parts.append(f"remove group(s) {_few(self.gone_groups)} (folders kept)")
        return "; ".join(parts)


def _few(items, most: int = 4) -> str:
    items = list(items)
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def drift(
    api: HubAPI, roster: Roster, open_to_all: bool = False, keep_members: bool = False
) -> Drift:
    """What differs between the hub's users and groups and the roster's. On a hub open to all
    (OPEN_TO_ALL), users not on the roster are newcomers the hub let in: they and their group
    memberships stay. With `keep_members` (GROUPS_CLAIM: the sign-in provider adds people to
    groups) no one is taken out of a group."""
    have_users = {u["name"] for u in api.users()}
    have_groups = {g["name"]: set(g.get("users") or ()) for g in api.groups()}
    wanted = {g: set(members) for g, members in roster.groups().items()}
    others = have_users - set(roster.names)
    gone_users = set() if open_to_all else others
    add, drop = {}, {}
    for group, members in wanted.items():
        have = have_groups.get(group, set())
        if members - have:
            add[group] = tuple(sorted(members - have))
        if have - members - others and not keep_members:  # removing a user takes them out
            drop[group] = tuple(sorted(have - members - others))
    return Drift(
        new_users=tuple(n for n in roster.names if n not in have_users),
        new_groups=tuple(sorted(set(wanted) - set(have_groups))),
        add_members=add,
        drop_members=drop,
        gone_users=tuple(sorted(gone_users)),
        gone_groups=tuple(sorted(set(have_groups) - set(wanted))),
    )


def apply_drift(api: HubAPI, change: Drift) -> None:
    if change.new_users:
        api.call("POST", "/users", json={"usernames": list(change.new_users)})
    for group in change.new_groups:
        api.call("POST", f"/groups/{group}")
    for group, members in change.add_members.items():
        api.call("POST", f"/groups/{group}/users", json={"users": list(members)})
    for group, members in change.drop_members.items():
        api.call("DELETE", f"/groups/{group}/users", json={"users": list(members)})
    for user in change.gone_users:
        remove_user(api, user)
    for group in change.gone_groups:
        api.call("DELETE", f"/groups/{group}")


def remove_user(api: HubAPI, user: str, timeout: float = 120) -> None:
    """Delete `user` from the hub, which first stops their server (their volume stays)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.call("DELETE", f"/users/{user}")
            return
        except UserError as exc:
            if "in the process of stopping" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)
