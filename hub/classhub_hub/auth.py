"""Log in with the roster's passwords: the hub file's bcrypt hashes, admins and groups.

Only users on the roster can log in; there is no sign-up. Taking a user off the roster stops new
logins at once and ends their session at the next refresh (`auth_refresh_age`), because
`refresh_user` answers False for them. Hashes are checked in a thread so that a class logging in
at once does not stall the hub's event loop (bcrypt takes tens of milliseconds by design).
"""

from __future__ import annotations

import asyncio

import bcrypt
from jupyterhub.auth import Authenticator
from traitlets import Unicode

from .roster import LiveRoster

# Checked when the name is unknown, so that an unknown name costs as long as a wrong password.
_UNKNOWN = bcrypt.hashpw(b"classhub-unknown-user", bcrypt.gensalt(10))


class RosterAuthenticator(Authenticator):
    hub_file = Unicode(config=True, help="Path of the rendered hub file inside the hub container.")

    def _roster(self) -> LiveRoster:
        if not hasattr(self, "_live"):
            self._live = LiveRoster(self.hub_file)
        return self._live

    def _model(self, name: str, user: dict) -> dict:
        return {"name": name, "admin": bool(user["admin"]), "groups": list(user["groups"])}

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        password = data.get("password", "").encode("utf-8")
        user = self._roster().user(name)
        hashed = user["password_hash"].encode("ascii") if user else _UNKNOWN
        ok = await asyncio.to_thread(_check, password, hashed)
        if user is None or not ok:
            return None
        return self._model(name, user)

    def check_allowed(self, username, authentication=None):
        return self._roster().user(username) is not None

    async def refresh_user(self, user, handler=None):
        entry = self._roster().user(user.name)
        if entry is None:
            return False
        return self._model(user.name, entry)


def _check(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash: never a match
        return False
