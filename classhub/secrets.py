"""The hub's generated secrets in `secrets/`: which exist, when they are made, and their checks.

Rules:
- A secret is created only when its file is absent. Setup never overwrites one; rotating is a
  deliberate act (delete the file, run setup), documented in secrets/README.md.
- The folder is 0700 and every file 0600; looser modes found on disk are tightened.
- A file that exists but does not hold a usable value is an error naming the file, never silently
  replaced: the running hub and its users depend on it.
- Values never reach logs or output; functions here return states, not values (except `read`).
"""

from __future__ import annotations

import re
import secrets as random
from dataclasses import dataclass
from pathlib import Path

from . import components, hubfile
from .errors import UserError
from .files import file_mode, write_atomic
from .inputs.settings import Settings
from .paths import Paths

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[!-~]{32,}")  # printable, no whitespace


@dataclass(frozen=True)
class SecretSpec:
    filename: str
    what: str
    pattern: re.Pattern[str]
    form: str
    provided: str = ""  # not generated: where the administrator gets the value

    def path(self, paths: Paths) -> Path:
        return paths.secrets_dir / self.filename


SPECS: tuple[SecretSpec, ...] = (
    SecretSpec("cookie_secret", "JupyterHub cookie secret", _HEX64,
               "64 hexadecimal characters (32 bytes)"),
    SecretSpec("proxy_auth_token", "proxy auth token", _TOKEN,
               "at least 32 printable characters without spaces"),
    SecretSpec("classhub_api_token", "classhub service token", _TOKEN,
               "at least 32 printable characters without spaces"),
    SecretSpec(hubfile.DB_SECRET, "PostgreSQL password", _TOKEN,
               "at least 32 printable characters without spaces"),
    SecretSpec(hubfile.OAUTH_SECRET, "OAuth client secret", re.compile(r"[!-~]+"),
               "one line, no spaces", provided="the client secret your sign-in provider gave "
               "when you registered this hub (docs/sign-in.md)"),
)  # fmt: skip


def needed(settings: Settings) -> list[SecretSpec]:
    """The secrets this hub's components read (components.of)."""
    wanted = components.secrets(settings)
    return [spec for spec in SPECS if spec.filename in wanted]


def new_value() -> str:
    """32 random bytes as hex: valid for every secret above."""
    return random.token_hex(32)


def read(paths: Paths, spec: SecretSpec) -> str:
    """The secret's value; an error naming the file when it is missing or malformed."""
    path = spec.path(paths)
    shown = paths.show(path)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if spec.provided:
            raise UserError(f"{shown}: missing; write into it {spec.provided}") from None
        raise UserError(f"{shown}: missing; run invoke setup to create it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{shown}: cannot be read ({exc}); restore it from a backup") from None
    if not spec.pattern.fullmatch(value):
        raise UserError(
            f"{shown}: does not hold a valid {spec.what} (expected {spec.form}); restore it from "
            f"a backup, or delete it and run invoke setup to make a new one"
            + (" (everyone will have to log in again)" if spec.filename == "cookie_secret" else "")
        )
    return value


def state(paths: Paths, spec: SecretSpec) -> str:
    """'missing', 'present' or 'present, mode 0644': checks the value (raising if it is bad)."""
    path = spec.path(paths)
    if not path.exists() and not spec.provided:
        return "missing"
    read(paths, spec)  # raises for a provided secret that is missing
    mode = file_mode(path)
    return "present" if mode == 0o600 else f"present, mode {mode:04o}"


def ensure(paths: Paths, spec: SecretSpec) -> None:
    """Create the secret when absent; tighten its mode; never change an existing value."""
    path = spec.path(paths)
    if not path.exists():
        write_atomic(path, new_value() + "\n", mode=0o600)
    elif file_mode(path) != 0o600:
        path.chmod(0o600)


def api_token(paths: Paths) -> str:
    """The token of the hub's `classhub` service, which the host's tasks use on the hub's API."""
    return read(paths, next(spec for spec in SPECS if spec.filename == "classhub_api_token"))
