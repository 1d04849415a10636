"""Every roster user's password: making, hashing and storing them (commands.py prints them).

Rules:
- A password is random, easy to type and read aloud: three groups of five characters from an
  alphabet without look-alikes (no 0/o, 1/l/i), about 74 bits; far below bcrypt's 72-byte limit.
- Plaintext lives only on the host, in `secrets/credentials.json` (0600). The hub receives only
  bcrypt hashes, made with passlib's API (the maintained `libpass` distribution).
- bcrypt cost 10 (about 0.06 s a check here, against 0.24 s at cost 12): the passwords are random,
  so the cost guards nothing that 74 bits do not, while 50 logins at 9:00 cost CPU that spawns need.
- An existing password is never changed except by `reset-password`; people removed from the roster
  keep their entry (they get the same password back if they return).
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Iterable
from dataclasses import dataclass

from passlib.hash import bcrypt

from .console import Progress
from .errors import UserError
from .files import write_atomic
from .paths import Paths

ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
GROUPS, GROUP_LEN = 3, 5
BCRYPT_ROUNDS = 10
FORMAT = 1


def new_password() -> str:
    return "-".join(
        "".join(random.choice(ALPHABET) for _ in range(GROUP_LEN)) for _ in range(GROUPS)
    )


def hash_password(password: str) -> str:
    return bcrypt.using(rounds=BCRYPT_ROUNDS).hash(password)


def verify(password: str, hashed: str) -> bool:
    return bcrypt.verify(password, hashed)


@dataclass(frozen=True)
class Credential:
    password: str
    hash: str


def new_credential() -> Credential:
    password = new_password()
    return Credential(password, hash_password(password))


def load(paths: Paths) -> dict[str, Credential]:
    """The stored credentials (empty when the file does not exist yet)."""
    path = paths.credentials_file
    shown = paths.show(path)
    if not path.exists():
        return {}
    fix = (
        "restore it from a backup; or delete it and run invoke setup, which makes new passwords "
        "for everyone (hand them out again with invoke login --csv)"
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        users = data["users"]
        if data.get("format") != FORMAT or not isinstance(users, dict):
            raise ValueError("unknown format")
        creds = {
            str(name): Credential(str(entry["password"]), str(entry["hash"]))
            for name, entry in users.items()
        }
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{shown}: cannot be read ({exc}); {fix}") from None
    for name, cred in creds.items():
        if not bcrypt.identify(cred.hash):
            raise UserError(f"{shown}: the entry of {name!r} has no valid bcrypt hash; {fix}")
    return creds


def save(paths: Paths, creds: dict[str, Credential]) -> None:
    data = {
        "format": FORMAT,
        "users": {
            name: {"password": c.password, "hash": c.hash} for name, c in sorted(creds.items())
        },
    }
    write_atomic(paths.credentials_file, json.dumps(data, indent=2) + "\n", mode=0o600)


def missing(creds: dict[str, Credential], names: Iterable[str]) -> list[str]:
    return [name for name in names if name not in creds]


def ensure(
    paths: Paths,
    names: Iterable[str],
    progress: Progress = lambda label, done, total: None,
) -> list[str]:
    """Give every one of `names` without a password a new one (bcrypt takes a moment each: said
    as "hashing passwords" progress). Returns the names that got one."""
    creds = load(paths)
    todo = missing(creds, names)
    for done, name in enumerate(todo, start=1):
        creds[name] = new_credential()
        progress("hashing passwords", done, len(todo))
    if todo:
        save(paths, creds)
    return todo


def reset(paths: Paths, name: str) -> Credential:
    """Replace `name`'s password with a new random one."""
    creds = load(paths)
    creds[name] = new_credential()
    save(paths, creds)
    return creds[name]
