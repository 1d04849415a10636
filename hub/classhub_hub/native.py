"""AUTHENTICATOR=native: people sign up with a password of their own, and an admin approves newcomers.

NativeAuthenticator (jupyterhub-nativeauthenticator) does the sign-up page, the password table,
the admin's approval page (`/hub/authorize`), the change-password page and the lockout after
failed logins. classhub adds its roster rules (`auth.ClasshubAuthenticator`):
- a roster name may sign up and is approved at once; the roster's password (invoke login) also
  keeps working for it, so the admin can always get in;
- an admin's name cannot be signed up by anyone (whoever did first would be an admin);
- a name not on the roster can sign up only when the hub is open to all (OPEN_TO_ALL), and then
  waits for an admin's approval; it gets DEFAULT_GROUPS;
- the sign-up page says which of these refused a name, instead of NativeAuthenticator's guess,
  and tells a roster name that it may log in now (NativeAuthenticator says "sent to the admin"
  to everyone it approved at once but its own admins).

Compatibility layer, because NativeAuthenticator 1.3.0 (the newest, September 2024) was written
for JupyterHub 4 and fails on 6.1.1. Each piece below is tested end to end (tests/e2e/test_auth.py):
- its login handler calls `self.statsd`, which JupyterHub 5 removed: every login answered 500.
  `LoginHandler.post` here is NativeAuthenticator's without the timer (and answers 403 on a
  failed login, as JupyterHub's own form does);
- JupyterHub 5 renders error pages with `_render(..., sync=True)` and from a second, synchronous
  template environment; NativeAuthenticator's `_render` takes no `sync` and adds its templates to
  the asynchronous environment only, so every failed login's page failed too. `_render` here
  passes `sync` on, and `_add_templates` adds the templates to both environments;
- its approval and discard links change state on a GET, so a link on another site could make a
  signed-in admin approve someone. Here they refuse a request that a browser says came from
  another site (`Sec-Fetch-Site`).
"""

from __future__ import annotations

import asyncio

from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.nativeauthenticator import NativeAuthenticator
from tornado import web
from tornado.escape import url_escape
from tornado.httputil import url_concat

from classhub import names

from .auth import ClasshubAuthenticator, check_hash

_ENVIRONMENTS = ("jinja2_env", "jinja2_env_sync")


def _add_templates(handler) -> None:
    """NativeAuthenticator's templates, after JupyterHub's, in both template environments."""
    from jinja2 import ChoiceLoader, FileSystemLoader

    for key in _ENVIRONMENTS:
        env = handler.settings.get(key)
        if env is None or getattr(env, "_classhub_native", False):
            continue
        env.loader = ChoiceLoader([env.loader, FileSystemLoader([native_handlers.TEMPLATE_DIR])])
        env._classhub_native = True


class _Templates:
    def initialize(self, *args, **kwargs):
        super().initialize(*args, **kwargs)  # type: ignore[misc]  # a mixin of a tornado handler
        _add_templates(self)


def _same_site(handler) -> None:
    site = handler.request.headers.get("Sec-Fetch-Site", "same-origin")
    if site not in ("same-origin", "none"):
        raise web.HTTPError(403, "This link works only from the hub's own pages.")


class LoginHandler(_Templates, native_handlers.LoginHandler):
    def _render(self, login_error=None, username=None, sync=False, **kwargs):
        return self.render_template(
            "native-login.html",
            sync=sync,
            next=url_escape(self.get_argument("next", default="")),
            username=username,
            login_error=login_error,
            custom_html=self.authenticator.custom_html,
            login_url=self.settings["login_url"],
            enable_signup=self.authenticator.enable_signup,
            two_factor_auth=self.authenticator.allow_2fa,
            authenticator_login_url=url_concat(
                self.authenticator.login_url(self.hub.base_url),
                {"next": self.get_argument("next", "")},
            ),
            xsrf=self.xsrf_token.decode("ascii"),
        )

    async def post(self):
        data = {arg: self.get_argument(arg, strip=arg == "username")
                for arg in self.request.body_arguments if arg != "_xsrf"}  # fmt: skip
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        username = data.get("username", "")
        self.set_status(403)
        html = await self._render(
            login_error=await self.authenticator.login_error(username, data.get("password", "")),
            username=username[:32],
        )
        self.finish(html)


class SignUpHandler(_Templates, native_handlers.SignUpHandler):
    def get_result_message(self, user, *args):
        refusal = self.authenticator.signup_refusal(self.get_body_argument("username", ""))
        if user is None and refusal:
            return "alert-danger", refusal
        if user is not None and user.is_authorized:  # NativeAuthenticator: "sent to the admin"
            return "alert-success", "The signup was successful! You can now log in."
        return super().get_result_message(user, *args)


class AuthorizationAreaHandler(_Templates, native_handlers.AuthorizationAreaHandler):
    pass


class ToggleAuthorizationHandler(_Templates, native_handlers.ToggleAuthorizationHandler):
    async def get(self, slug):
        _same_site(self)
        return await super().get(slug)


class DiscardHandler(_Templates, native_handlers.DiscardHandler):
    async def get(self, user_name):
        _same_site(self)
        return await super().get(user_name)


class ChangePasswordHandler(_Templates, native_handlers.ChangePasswordHandler):
    pass


class ChangePasswordAdminHandler(_Templates, native_handlers.ChangePasswordAdminHandler):
    pass


class ClasshubNativeAuthenticator(ClasshubAuthenticator, NativeAuthenticator):
    def get_handlers(self, app):
        # Self-approval by e-mail (/confirm) needs a mail server classhub does not set up.
        return [
            (r"/login", LoginHandler),
            (r"/signup", SignUpHandler),
            (r"/discard/([^/]*)", DiscardHandler),
            (r"/authorize", AuthorizationAreaHandler),
            (r"/authorize/([^/]*)", ToggleAuthorizationHandler),
            (r"/change-password", ChangePasswordHandler),
            (r"/change-password/([^/]+)", ChangePasswordAdminHandler),
        ]

    def signup_refusal(self, username: str) -> str | None:
        """Why `username` may not sign up here, in words for the person signing up, or None."""
        name = self.normalize_username(username.strip())
        problem = names.name_problem(name)
        if not name or problem:
            return f"A username here must {names.NAME_RULE.removeprefix('use ')}."
        entry = self.roster_entry(name)
        if entry is not None and entry["admin"]:
            return f"{name} is taken."
        if self.classhub_user(name) is None:
            return (f"{name} is not on this hub's list of users. Ask the hub's admin to add "
                    "you, then sign up again.")  # fmt: skip
        return None

    def get_authed_users(self):
        """Approved at sign-up: roster names (NativeAuthenticator also approves admin_users)."""
        return super().get_authed_users() | set(self._roster().hub().get("users"))

    def create_user(self, username, password, **kwargs):
        if self.signup_refusal(username):
            return None
        return super().create_user(username, password, **kwargs)

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", "").strip())
        password = data.get("password", "")
        if self.allowed_failed_logins and self.is_blocked(name):
            return None
        entry = self.classhub_user(name)
        # The roster's check first, as long for a name not on it (no hint of who is).
        ok = await self.roster_password_ok(name, password) or (
            entry is not None and await self._own_password_ok(name, password)
        )
        if ok and entry is not None:
            self.successful_login(name)
            return self.model(name, entry)
        self.add_login_attempt(name)
        return None

    async def _own_password_ok(self, name: str, password: str) -> bool:
        info = self.get_user(name)
        if info is None or not info.is_authorized:
            return False
        return await asyncio.to_thread(check_hash, password.encode("utf-8"), info.password)

    async def login_error(self, name: str, password: str) -> str:
        """The login page's message after a failed login."""
        name = self.normalize_username(name.strip())
        if self.allowed_failed_logins and self.is_blocked(name):
            minutes = max(1, round(self.seconds_before_next_try / 60))
            return (f"Too many failed logins for {name}: try again in {minutes} minute"
                    f"{'s' if minutes != 1 else ''}.")  # fmt: skip
        info = self.get_user(name)
        if (info is not None and not info.is_authorized
                and await asyncio.to_thread(check_hash, password.encode("utf-8"), info.password)):  # fmt: skip
            return f"{name} has not been approved by an admin yet."
        return "Invalid username or password."

    async def refresh_user(self, user, handler=None):
        if self.roster_entry(user.name) is None:  # a newcomer: an admin may withdraw approval
            info = self.get_user(user.name)
            if info is None or not info.is_authorized:
                return False
        return await super().refresh_user(user, handler)
