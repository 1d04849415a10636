"""Who may use the hub and as whom: the rules every classhub authenticator shares, and the roster's
own password login.

`ClasshubAuthenticator` holds the shared rules. However a person proves who they are (the roster's
password, a password they chose with AUTHENTICATOR=native), the hub file decides the rest: a name
on the roster gets its admin flag and groups; a name that is not is refused, unless the hub is
open to all (OPEN_TO_ALL), and then it gets DEFAULT_GROUPS (`hubfile.user_entry`). Taking someone
off the roster ends their session at the next refresh (`auth_refresh_age`), because
`refresh_user` answers False for them.

Admins: with ADMIN_SEES_USERS the roster's admins are JupyterHub's admins, who may do anything,
open students' servers too. Without it (the default) JupyterHub's admin role, which cannot be
changed, is nobody's: the roster's admins get `admin_role` instead (config.py's ADMIN_SCOPES:
the admin page, start and stop servers, not open them), given and taken back at each login and
refresh like groups (`manage_roles`), so a roster change reaches them within a minute.

`RosterAuthenticator` (AUTHENTICATOR=roster) logs in with the roster's passwords: the hub file's
bcrypt hashes; there is no sign-up. Hashes are checked in a thread so that a class logging in at
once does not stall the hub's event loop (bcrypt takes tens of milliseconds by design).

Guessing (`Guesses`): each name may be tried `failures_per_minute` times a minute (names not on
the roster share one count); past that, an attempt is answered 429 before any hash is checked, so
a flood of guesses costs the hub nothing and slows no one else's login, whichever way it reaches
the hub (nginx limits by address only, and not every hub has it). The owner is not locked out:
a browser that signed in as that name before carries a signed cookie that lets it through, and
any browser gets through again once the name has had a quiet minute.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import bcrypt
from jupyterhub.auth import Authenticator
from jupyterhub.roles import get_default_roles
from tornado import web
from traitlets import Dict, Integer, Unicode

from .roster import LiveRoster

_USER_ROLE = next(r for r in get_default_roles() if r["name"] == "user")
# Checked when the name is unknown, so that an unknown name costs as long as a wrong password.
_UNKNOWN = bcrypt.hashpw(b"classhub-unknown-user", bcrypt.gensalt(10))


class ClasshubAuthenticator(Authenticator):
    hub_file = Unicode(config=True, help="Path of the rendered hub file inside the hub container.")
    admin_role = Dict(
        config=True,
        help="The role the roster's admins get instead of JupyterHub's admin; empty: that one.",
    )

    def _roster(self) -> LiveRoster:
        if not hasattr(self, "_live"):
            self._live = LiveRoster(self.hub_file)
        return self._live

    def roster_entry(self, name: str) -> dict | None:
        """The name's entry on the roster itself (None for a newcomer or a stranger)."""
        return self._roster().hub().get("users").get(name)

    def classhub_user(self, name: str) -> dict | None:
        """The user's entry (roster or newcomer), or None when they may not use this hub."""
        return self._roster().user(name)

    def standing(self, entry: dict) -> dict:
        """The admin flag and roles the roster gives someone (see the module's docstring). With
        managed roles JupyterHub takes away every role the list leaves out, its `user` role too,
        so that one is in it as JupyterHub defines it."""
        admin = bool(entry["admin"])
        if not self.admin_role:
            return {"admin": admin}
        return {"admin": False, "roles": [_USER_ROLE, *([self.admin_role] if admin else [])]}

    async def load_managed_roles(self):
        """Every role `standing` gives. The `user` role is among them because JupyterHub 6, at
        start, reads a managed role with users but no list of them as a stale assignment only
        when told to look for stale ones (`reset_managed_roles_on_startup`), and fails at start
        otherwise; told to, it would take away any managed role this list leaves out."""
        return [_USER_ROLE, self.admin_role] if self.admin_role else []

    def model(self, name: str, entry: dict) -> dict:
        """What JupyterHub is told at login and refresh: the name, admin standing and groups."""
        return {"name": name, **self.standing(entry), "groups": list(entry["groups"])}

    def check_allowed(self, username, authentication=None):
        return self.classhub_user(username) is not None

    async def refresh_user(self, user, handler=None):
        entry = self.classhub_user(user.name)
        if entry is None:
            return False
        return self.model(user.name, entry)

    async def roster_password_ok(self, name: str, password: str) -> bool:
        """Whether `password` is the roster's for `name` (False for a name not on the roster,
        after as long a check)."""
        entry = self.roster_entry(name)
        hashed = entry["password_hash"].encode("ascii") if entry else _UNKNOWN
        ok = await asyncio.to_thread(check_hash, password.encode("utf-8"), hashed)
        return ok and entry is not None


class Guesses:
    """Attempts per key in the last `window` seconds, each counted from its start (so that many
    at once cannot all pass before the first one fails) until it succeeds."""

    def __init__(self, limit: int, window: float = 60.0):
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[key]  # the dict holds only keys tried in the last window
            return deque()
        return times

    def allows(self, key: str, now: float) -> bool:
        return len(self._recent(key, now)) < self.limit

    def start(self, key: str, now: float) -> None:
        self._recent(key, now)
        self._seen.setdefault(key, deque()).append(now)

    def succeeded(self, key: str, started: float) -> None:
        times = self._seen.get(key)
        if times and started in times:
            times.remove(started)


KNOWN_BROWSER = "classhub-signed-in"  # signed cookie: the name this browser last signed in as
_STRANGER = "\0not on the roster"  # one count for every name that is not


class RosterAuthenticator(ClasshubAuthenticator):
    failures_per_minute = Integer(
        10, config=True, help="Wrong passwords a name may get in a minute; then it waits."
    )

    @property
    def guesses(self) -> Guesses:
        if not hasattr(self, "_guesses"):
            self._guesses = Guesses(self.failures_per_minute)
        return self._guesses

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        key = name if self.roster_entry(name) is not None else _STRANGER
        started = time.monotonic()
        known = handler is not None and _signed_in_before(handler, name)
        if not known and not self.guesses.allows(key, started):
            raise web.HTTPError(
                429,
                f"Too many wrong passwords for {name} in the last minute. Wait a minute and try "
                "again, or sign in from a browser you have signed in with before.",
            )
        self.guesses.start(key, started)
        if not await self.roster_password_ok(name, data.get("password", "")):
            return None
        self.guesses.succeeded(key, started)
        entry = self.classhub_user(name)
        if entry is None:  # taken off the roster while the password was checked
            return None
        if handler is not None:
            handler.set_secure_cookie(
                KNOWN_BROWSER, name, expires_days=180, path=handler.hub.base_url, httponly=True,
                secure=handler.request.protocol == "https",
            )  # fmt: skip
        return self.model(name, entry)


def _signed_in_before(handler, name: str) -> bool:
    cookie = handler.get_secure_cookie(KNOWN_BROWSER, max_age_days=180)
    return cookie is not None and cookie.decode("utf-8", "replace") == name


def check_hash(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash: never a match
        return False
