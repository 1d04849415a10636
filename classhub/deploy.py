"""The setup plan: from a validated `Config` to the ordered steps that bring the host in line.

Every step looks first and acts only when needed, so running setup twice changes nothing the
second time. Steps here prepare the host side: `.env`, `secrets/`, passwords and the rendered hub
file. Nothing here deletes anything, and a step never overwrites a value it did not create.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import credentials, render, secrets
from .config import Config
from .files import ensure_private_dir, file_mode, read_text, write_atomic
from .paths import Paths
from .plan import Step

Progress = Callable[[int, int], None]


def setup_steps(paths: Paths, config: Config, progress: Progress) -> list[Step]:
    steps = [_env_step(paths, config), _private_dir_step("secrets/", paths.secrets_dir)]
    steps += [_secret_step(paths, spec) for spec in secrets.needed(config.settings)]
    creds = credentials.load(paths)
    todo = credentials.missing(creds, config.roster.names)
    steps.append(_passwords_step(paths, config, len(todo), progress))
    steps.append(hub_file_step(paths, config, creds, pending=bool(todo)))
    return steps


def reset_password_steps(paths: Paths, config: Config, name: str) -> list[Step]:
    creds = credentials.load(paths)
    state = "set" if name in creds else "none yet"

    def run() -> None:
        credentials.reset(paths, name)

    return [
        Step(f"password of {name}", state, "replace with a new random one", run),
        hub_file_step(paths, config, creds, pending=True),
    ]


def hub_file_step(
    paths: Paths, config: Config, creds: dict[str, credentials.Credential], pending: bool
) -> Step:
    """Render the hub file from `creds`; `pending`: an earlier step changes passwords first."""
    path = paths.hub_file
    shown = paths.show(path)

    def run() -> None:
        ensure_private_dir(paths.state_dir)
        # Rendered now, not at planning: an earlier step may have made or replaced passwords.
        text = render.hub_file(config.settings, config.roster, credentials.load(paths))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text, mode=0o600)
        else:
            path.chmod(0o600)

    if not path.exists():
        return Step(shown, "missing", "write", run)
    if pending:
        return Step(shown, "present", "rewrite with the new passwords", run)
    current = read_text(path, shown, "run invoke setup")
    if current != render.hub_file(config.settings, config.roster, creds):
        return Step(shown, "out of date", "rewrite", run)
    if file_mode(path) != 0o600 or file_mode(paths.state_dir) != 0o700:
        return Step(shown, "up to date, permissions too open", "tighten to 0600 (folder 0700)", run)
    return Step(shown, "up to date")


def _env_step(paths: Paths, config: Config) -> Step:
    if not config.env_missing:
        return Step(".env", "present")

    def run() -> None:
        if not paths.env_file.exists():  # never overwrite one made meanwhile
            text = read_text(paths.env_example, ".env.example", "restore .env.example")
            write_atomic(paths.env_file, text, mode=0o600)

    return Step(".env", "missing", "create from .env.example", run)


def _private_dir_step(label: str, path: Path) -> Step:
    if not path.exists():
        return Step(label, "missing", "create (mode 0700)", lambda: ensure_private_dir(path))
    mode = file_mode(path)
    if mode != 0o700:
        return Step(label, f"mode {mode:04o}", "tighten to 0700", lambda: ensure_private_dir(path))
    return Step(label, "present")


def _secret_step(paths: Paths, spec: secrets.SecretSpec) -> Step:
    label = f"secrets/{spec.filename}"
    state = secrets.state(paths, spec)
    if state == "missing":
        return Step(label, state, f"create ({spec.what})", lambda: secrets.ensure(paths, spec))
    if state != "present":
        return Step(label, state, "tighten to 0600", lambda: secrets.ensure(paths, spec))
    return Step(label, state)


def _passwords_step(paths: Paths, config: Config, todo: int, progress: Progress) -> Step:
    total = len(config.roster.users)
    state = f"{total - todo} of {total} users have one"
    if not todo:
        return Step("passwords", state)

    def run() -> None:
        credentials.ensure(paths, config.roster.names, progress)

    return Step("passwords", state, f"make {todo} (bcrypt hashes for the hub)", run)
