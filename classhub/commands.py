"""One function per invoke task: load the inputs, plan, apply (unless dry run), report.

`tasks.py` only parses arguments and calls these, so every task can be run and tested without
invoke, against a temporary checkout. Each function takes the checkout's `Paths`, the environment
to read settings from, and an `Output`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from . import config as config_mod
from . import credentials, deploy, plan, render
from .config import Config
from .console import Output
from .errors import UserError
from .paths import Paths
from .plan import Step
from .roster import Roster
from .settings import Settings


def load(paths: Paths, environ: Mapping[str, str], out: Output) -> Config:
    cfg = config_mod.load(paths, environ)
    for warning in cfg.warnings:
        out.warn(warning)
    return cfg


def summary(cfg: Config) -> str:
    s, roster = cfg.settings, cfg.roster
    admins = sum(u.admin for u in roster.users)
    groups = len(roster.groups())
    overridden = [k for k, where in s.sources.items() if where == "environment"]
    line = (
        f"Hub {s.hub_name!r} at {s.public_url} (published on {s.bind_address}:{s.port}): "
        f"{len(roster.users)} users ({admins} admin{'s' if admins != 1 else ''}), "
        f"{groups} group{'s' if groups != 1 else ''}."
    )
    if overridden:
        line += f"\nFrom the environment, overriding {cfg.env_path.name}: {', '.join(overridden)}."
    return line


def _show_setup_plan(
    paths: Paths, environ: Mapping[str, str], out: Output
) -> tuple[Config, list[Step]]:
    """Load the inputs and print the summary and the setup plan; returns both."""
    cfg = load(paths, environ, out)
    steps = deploy.setup_steps(
        paths, cfg, lambda done, total: out.progress("hashing passwords", done, total)
    )
    out.info(summary(cfg))
    out.info()
    out.info(plan.table(steps))
    out.info()
    return cfg, steps


def setup(paths: Paths, environ: Mapping[str, str], out: Output, dry_run: bool = False) -> int:
    """Plan and apply the host side of setup. Returns how many steps changed something."""
    cfg, steps = _show_setup_plan(paths, environ, out)
    if dry_run:
        pending = sum(step.changes for step in steps)
        out.info(f"Dry run: nothing was changed ({pending} step(s) would change something).")
        return 0
    changed = plan.apply(steps, out.info)
    if changed:
        out.info(f"Done: {changed} step(s) changed something.")
    else:
        out.info("Nothing to change: everything is already set up.")
    out.info()
    out.info("For your nginx site (also printed by: invoke nginx):")
    out.info(render.nginx_location(paths, cfg.settings))
    admin = cfg.settings.admin_user
    out.info("Log in as the admin (also printed by: invoke login):")
    out.info(_login_text(cfg.settings, admin, _password(paths, cfg.roster, admin)))
    return changed


def status(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    """What setup would find: the same table as `setup --dry-run`, changing nothing."""
    _, steps = _show_setup_plan(paths, environ, out)
    pending = sum(step.changes for step in steps)
    out.info(
        f"{pending} step(s) pending: run invoke setup." if pending else "In step with the settings."
    )


def check(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    cfg = load(paths, environ, out)
    out.info(summary(cfg))
    out.info(f"{paths.show(cfg.env_path)} and userlist are valid.")


def login(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str | None, as_csv: bool
) -> None:
    cfg = load(paths, environ, out)
    if as_csv:
        if name:
            raise UserError("--csv prints the whole roster; leave out the name, or leave out --csv")
        out.info(_roster_csv(paths, cfg.roster).rstrip("\n"))
        return
    who = (name or cfg.settings.admin_user).lower()
    out.info(_login_text(cfg.settings, who, _password(paths, cfg.roster, who)))


def reset_password(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str, dry_run: bool = False
) -> None:
    cfg = load(paths, environ, out)
    who = name.lower()
    _on_roster(cfg.roster, who)
    steps = deploy.reset_password_steps(paths, cfg, who)
    out.info(plan.table(steps))
    out.info()
    if dry_run:
        out.info("Dry run: nothing was changed.")
        return
    plan.apply(steps, out.info)
    out.info()
    out.info(_login_text(cfg.settings, who, _password(paths, cfg.roster, who)))


def nginx(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    cfg = load(paths, environ, out)
    out.info(render.nginx_location(paths, cfg.settings).rstrip("\n"))


def _on_roster(roster: Roster, name: str) -> None:
    if name.startswith("-"):
        raise UserError(
            f"{name!r} is not a user name; for this task's options run: invoke --help TASK"
        )
    if roster.get(name) is None:
        raise UserError(
            f"{name!r} is not on the roster; add a line for them to userlist and run invoke setup"
        )


def _password(paths: Paths, roster: Roster, name: str) -> str:
    _on_roster(roster, name)
    cred = credentials.load(paths).get(name)
    if cred is None:
        raise UserError(f"{name!r} has no password yet; run invoke setup, which makes it")
    return cred.password


def _login_text(settings: Settings, name: str, password: str) -> str:
    return f"  URL:      {settings.public_url}\n  Username: {name}\n  Password: {password}"


def _roster_csv(paths: Paths, roster: Roster) -> str:
    creds = credentials.load(paths)
    missing = credentials.missing(creds, roster.names)
    if missing:
        raise UserError(
            f"{len(missing)} user(s) have no password yet ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}); run invoke setup, which makes them"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["username", "password"])
    for user in roster.users:
        writer.writerow([user.name, creds[user.name].password])
    return buffer.getvalue()
