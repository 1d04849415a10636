"""AUTHENTICATOR=oidc and github: single sign-on through OAuthenticator, with the roster's rules.

OAuthenticator does the redirect flow (state cookie, PKCE, code for token, user info). classhub
adds how a person's account becomes a roster name, and the roster's say (auth.ClasshubAuthenticator):

- **The name** comes from one claim (USERNAME_CLAIM; by default `email` for oidc and `login` for
  GitHub) by `names.from_account`: an e-mail address loses its domain, which must be one of
  ALLOWED_DOMAINS when that is set (`Jane.Doe@uni.edu` -> `jane.doe`), then `names.from_account`
  makes it a valid name or refuses it with the reason.
- **Collisions**: the first account that signs in with a name owns it (`classhub_identities`, a
  table in the hub's database: name -> issuer and subject). Another account that maps to the same
  name (`jane.doe@uni.edu` from a second tenant, say) is refused, with a page that says so.
  Deleting the user from the hub (`invoke remove-user`) frees the name.
- **Who gets in**: a name on the roster, or anyone when the hub is open to all (OPEN_TO_ALL);
  everyone else gets a page saying they are not on the hub's list. Admins are the roster's.
- **Groups**: the roster's (or DEFAULT_GROUPS); with GROUPS_CLAIM also those of the claim's
  groups that the roster declares (others are ignored), as of the person's last sign-in.
- The OIDC provider's endpoints come from its discovery document (OIDC_ISSUER), read when the
  hub starts; a provider that cannot be read stops the hub with the reason in its log. A provider
  without discovery is given its three endpoints instead (OIDC_AUTHORIZE_URL, OIDC_TOKEN_URL,
  OIDC_USERINFO_URL); its accounts are then named by the authorize URL's site unless OIDC_ISSUER
  is also set.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from sqlalchemy import Column, MetaData, Table, Unicode, delete, insert, select
from tornado import web
from traitlets import List
from traitlets import Unicode as UnicodeTrait

from classhub import names

from .auth import ClasshubAuthenticator

_META = MetaData()
IDENTITIES = Table(
    "classhub_identities",
    _META,
    Column("username", Unicode(255), primary_key=True),
    Column("identity", Unicode(2048), nullable=False),
)


def discover(issuer: str, timeout: float = 15) -> dict:
    """The provider's discovery document, or RuntimeError saying why it could not be read."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            doc = json.load(response)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"classhub: cannot read {url} (OIDC_ISSUER): {exc}") from None
    missing = [k for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")
               if not doc.get(k)]  # fmt: skip
    if missing:
        raise RuntimeError(f"classhub: {url} names no {', '.join(missing)}")
    return doc


def identity_site(url: str) -> str:
    """Whose accounts a provider without an issuer signs in: its authorize URL's scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _SingleSignOn(ClasshubAuthenticator):
    """The roster's rules for an OAuthenticator (mixed in before it)."""

    allowed_domains = List(UnicodeTrait(), config=True, help="ALLOWED_DOMAINS (lowercase).")
    groups_claim = UnicodeTrait("", config=True, help="GROUPS_CLAIM; empty: userlist only.")
    identity_source = "oauth"  # what an identity's subject is relative to

    def _identities(self):
        if not getattr(self, "_table_made", False):
            _META.create_all(self.db.get_bind(), tables=[IDENTITIES], checkfirst=True)
            self._table_made = True
        return self.db

    def user_info_to_username(self, user_info):
        raw = super().user_info_to_username(user_info)
        name, refusal = names.from_account(str(raw), self.allowed_domains)
        if refusal:
            raise web.HTTPError(403, refusal)
        return name

    def _subject(self, user_info: dict) -> str:
        return str(user_info.get("sub") or user_info.get("id") or "")

    def _claim_owner(self, name: str, identity: str) -> bool:
        """Bind `name` to `identity` if it is free; whether `identity` owns it."""
        db = self._identities()
        row = db.execute(select(IDENTITIES.c.identity).where(IDENTITIES.c.username == name)).first()
        if row is None:
            db.execute(insert(IDENTITIES).values(username=name, identity=identity))
            db.commit()
            return True
        return row[0] == identity

    async def update_auth_model(self, auth_model):
        name = auth_model["name"]
        user_info = auth_model["auth_state"].get(self.user_auth_state_key) or {}
        subject = self._subject(user_info)
        if not subject:
            raise web.HTTPError(403, "Your sign-in provider sent no account id (sub).")
        entry = self.classhub_user(name)
        if entry is None:
            raise web.HTTPError(403, f"{name} is not on this hub's list of users. Ask the hub's "
                                     "admin to add you.")  # fmt: skip
        if not self._claim_owner(name, f"{self.identity_source}#{subject}"):
            raise web.HTTPError(403, f"The username {name} already belongs to another account. "
                                     "Ask the hub's admin.")  # fmt: skip
        groups = set(entry["groups"])
        if self.groups_claim:
            claimed = user_info.get(self.groups_claim) or []
            known = set(self._roster().hub().get("groups"))
            groups |= {str(g).lower() for g in claimed if isinstance(g, str)} & known
        auth_model.update(self.standing(entry))
        auth_model["groups"] = sorted(groups)
        auth_model["auth_state"]["classhub_groups"] = sorted(groups)
        return auth_model

    def delete_user(self, user):
        """A user deleted from the hub (`invoke remove-user`, or `sync` after their line went)
        frees their name: the next account that maps to it may take it."""
        db = self._identities()
        db.execute(delete(IDENTITIES).where(IDENTITIES.c.username == user.name))
        db.commit()
        return super().delete_user(user)

    async def get_user_groups(self, auth_state):
        return set(auth_state.get("classhub_groups") or [])

    async def refresh_user(self, user, handler=None, **kwargs):
        model = await super().refresh_user(user, handler)
        if model and self.groups_claim:  # the claim's groups hold until the next sign-in
            known = set(self._roster().hub().get("groups"))
            model["groups"] = sorted(set(model["groups"]) | ({g.name for g in user.groups} & known))
        return model


class ClasshubOIDCAuthenticator(_SingleSignOn, GenericOAuthenticator):
    oidc_issuer = UnicodeTrait("", config=True, help="OIDC_ISSUER: endpoints come from discovery.")
    # GenericOAuthenticator's traits, for the type checker (annotations only: no new traits).
    authorize_url: str
    token_url: str

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Accounts are the issuer's; without one, those of the site that signs people in.
        self.identity_source = self.oidc_issuer or identity_site(self.authorize_url)
        if self.oidc_issuer and not self.token_url:
            doc = discover(self.oidc_issuer)
            self.authorize_url = doc["authorization_endpoint"]
            self.token_url = doc["token_endpoint"]
            self.userdata_url = doc["userinfo_endpoint"]


class ClasshubGitHubAuthenticator(_SingleSignOn, GitHubOAuthenticator):
    identity_source = "github"
