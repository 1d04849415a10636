"""One function per invoke task: load the inputs, plan, apply (unless dry run), report.

`tasks.py` only parses arguments and calls these, so every task can be run and tested without
invoke, against a temporary checkout. Each function takes the checkout's `Paths`, the environment
to read settings from, and an `Output`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import functools
import inspect
import io
import ipaddress
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import (
    acme,
    assignments,
    components,
    credentials,
    deploy,
    disks,
    grading,
    hubfile,
    locks,
    names,
    neighbours,
    plan,
    render,
    wait,
)
from . import backup as backup_mod
from . import exams as exams_mod
from . import prewarm as prewarm_mod
from . import rehearse as rehearse_mod
from .components import Part
from .console import Output, human_size
from .errors import ConfigError, UserError, quoted
from .inputs import config as config_mod
from .inputs import parsers, userlist
from .inputs.config import Config
from .inputs.roster import (
    ADMIN_WORD,
    Roster,
    did_you_mean,
)
from .inputs.settings import Settings
from .paths import Paths
from .plan import Step
from .runtime import Runtime, single_host, swarm
from .runtime.swarm import runtime as swarm_runtime


def runtime(environ: Mapping[str, str], settings: Settings) -> Runtime:
    """The hub of these settings on the engine they choose (ENGINE), reached as the environment
    says: the one place a task picks its engine. An error saying how to start one when none
    answers."""
    if settings.engine == "swarm":
        return swarm_runtime.connect(environ, settings)
    return single_host.connect(environ, settings.hub_name)


def _runtime_if_any(environ: Mapping[str, str], settings: Settings) -> Runtime | None:
    try:
        return runtime(environ, settings)
    except UserError:
        return None


T = TypeVar("T")


def changes(task: str):
    """A task that changes the hub: it runs under the checkout's lock and its HUB_NAME's
    (`locks`), unless given `dry_run=True`, when it only reads."""

    def wrap(function: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(paths: Paths, environ: Mapping[str, str], *args: Any, **kwargs: Any) -> T:
            if signature.bind(paths, environ, *args, **kwargs).arguments.get("dry_run"):
                return function(paths, environ, *args, **kwargs)
            try:
                hub = config_mod.load(paths, environ).settings.hub_name
            except ConfigError:
                return function(paths, environ, *args, **kwargs)  # it says what is wrong
            with locks.held(paths, hub, f"invoke {task}"):
                return function(paths, environ, *args, **kwargs)

        return run

    return wrap


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
    line += "\n" + disks.summary(s)
    if overridden:
        line += f"\nFrom the environment, overriding {cfg.env_path.name}: {', '.join(overridden)}."
    return line


def _show_setup_plan(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    docker: str = "required",
    full: bool = True,
) -> tuple[Config, list[Step], Runtime | None]:
    """Load the inputs, print the summary and the plan; returns them and the engine (None when
    Docker was skipped or does not answer).

    `docker`: "required" (no engine is an error), "skip" (files only), "plan" (setup --dry-run:
    the engine's row when none answers) or "if-available" (status: the same, and no check of
    other hubs' ports). `full`: every row of the plan; else only those that change (plan.brief).
    """
    cfg = load(paths, environ, out)
    rt = None
    if docker == "required":
        rt = runtime(environ, cfg.settings)
    elif docker in ("plan", "if-available"):
        rt = _runtime_if_any(environ, cfg.settings)
    if rt is not None and docker in ("required", "plan"):
        _refuse_conflicts(rt, paths, cfg)
    steps = deploy.setup_steps(paths, cfg, out.progress)
    if rt is not None:
        steps += deploy.docker_steps(paths, cfg, rt, out.info)
    elif docker in ("plan", "if-available"):
        steps.append(
            Step("Docker engine", "none answers",
                 f"needed at {single_host.where(environ)}: invoke engine installs and starts one; "
                 "the images, volumes and the hub are planned once it answers")
        )  # fmt: skip
    out.info(summary(cfg))
    if rt is not None:
        out.info(f"{rt.version()}.")
    elif docker in ("plan", "if-available"):
        out.info(
            f"No Docker engine answers at {single_host.where(environ)}: start one with invoke engine."
        )
    shown = plan.table(steps) if full else plan.brief(steps)
    out.info()
    if shown:
        out.info(shown)
        out.info()
    return cfg, steps, rt


@changes("setup")
def setup(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    dry_run: bool = False,
    files_only: bool = False,
    verbose: bool = False,
    restoring: bool = False,
) -> int:
    """Plan and apply all of setup (only the host's files with `files_only`); the plan's every
    row with `dry_run` or `verbose`, else those that change. Ends with the nginx block (when
    something changed, or `verbose`), the admin's login, how students reach the hub and the
    warnings again. Refused while a restore is unfinished, but as that restore's last step
    (`restoring`).

    Returns how many steps changed something."""
    if not (dry_run or restoring):
        backup_mod.refuse_while_restoring(paths)
    docker = "skip" if files_only else "plan" if dry_run else "required"
    cfg, changed = _converge(paths, environ, out, dry_run, docker, full=dry_run or verbose)
    if dry_run:
        return 0
    if not files_only:
        backup_mod.end_restore(paths)  # its last step, or all that was left of it
        if cfg.settings.engine == "swarm":
            _warn_without_workers(runtime(environ, cfg.settings), out)
    out.info()
    if changed or verbose:
        out.info("For your nginx site (also printed by: invoke nginx):")
        out.info(render.nginx_location(paths, cfg.settings))
    else:
        out.info("The block for your nginx site: invoke nginx.")
    admin = cfg.settings.admin_user
    out.info("Log in as the admin (also printed by: invoke login):")
    out.info(_login_text(cfg.settings, admin, _password(paths, cfg.roster, admin)))
    out.info()
    out.info(how_students_reach(paths, cfg.settings))
    if out.warnings:  # the first ones may be far above by now
        out.info()
        out.info("Warnings (said above too):")
        for warning in out.warnings:
            out.info(f"  - {warning}")
    return changed


def _warn_without_workers(rt: Runtime, out: Output) -> None:
    """On a swarm, students' servers run on workers only: with none ready to take them, every
    start fails at once (with that reason, on the student's page); say so once setup is done."""
    takers = [n for n in rt.nodes()
              if (n.role, n.state, n.availability) == ("worker", "ready", "active")]  # fmt: skip
    if not takers:
        out.warn("no node of the swarm takes students' servers yet, so no student's server can "
                 "start: join one with invoke add-node HOST (docs/swarm.md)")  # fmt: skip


def how_students_reach(paths: Paths, settings: Settings) -> str:
    """Which of the three front doors this hub has, the URL students open, and, when that URL
    works only on this server, the one change that opens it (setup's last lines)."""
    url = settings.public_url
    if components.has(settings, Part.FRONT_DOOR):
        if settings.tls_cert:
            own = ""
        elif settings.acme:
            served = acme.serving(acme.read_status(paths), settings)
            own = (f" (certificate from {settings.acme_directory}, renewed by itself)" if served
                   else " (self-signed until the ACME CA issues a certificate: see above)")  # fmt: skip
        else:
            own = " (self-signed: browsers warn until TLS_CERT and TLS_KEY name a real certificate)"
        text = (
            f"Students open {url}: the bundled nginx, HTTPS on port {settings.https_port} of "
            f"every interface{own}."
        )
    elif ipaddress.ip_address(settings.bind_address).is_loopback:
        text = (
            f"Students reach the hub through your nginx: it answers only on this server "
            f"({settings.upstream}). Put the nginx block (invoke nginx prints it) in your site's "
            f"server {{ }} (invoke nginx --server prints a whole HTTPS site), then they open {url}."
        )
    else:
        text = (
            f"Students open {url}: the hub's own port, plain HTTP, so passwords cross the "
            "network unencrypted (PROXY=nginx in .env gives HTTPS)."
        )
    host = settings.public_host
    if host == "localhost" or _is_loopback(host):
        text += (
            "\nThat URL works only on this server. To open the hub to students, set in "
            ".env either PROXY=nginx (classhub's own HTTPS front door) or, once your nginx "
            "serves the hub's block, PUBLIC_URL=https://jupyter.example.edu/"
            f"{settings.hub_name}/ (its address); then run invoke setup."
        )
    return text


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _converge(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    dry_run: bool,
    docker: str,
    full: bool = False,
) -> tuple[Config, int]:
    """Show the plan (every row with `full`, else those that change), then apply it unless a dry
    run; returns the config and the changed count."""
    cfg, steps, _ = _show_setup_plan(paths, environ, out, docker, full)
    return cfg, _apply_unless_dry(steps, out, dry_run)


def _apply_unless_dry(
    steps: list[Step],
    out: Output,
    dry_run: bool,
    nothing: str = "Nothing to change: everything is already set up.",
) -> int:
    """Apply the shown plan (or say what a dry run would change); returns the changed count."""
    if dry_run:
        pending = sum(step.changes for step in steps)
        out.info(f"Dry run: nothing was changed ({pending} step(s) would change something).")
        return 0
    changed = plan.apply(steps, out.info)
    if changed:
        out.info(f"Done: {changed} step(s) changed something.")
    else:
        out.info(nothing)
    return changed


@changes("add-user")
def add_user(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    name: str,
    groups: list[str],
    admin: bool,
) -> None:
    """Put NAME on the roster (with groups, admin), then bring the hub in line; print the login."""
    cfg = load(paths, environ, out)
    who = name.lower()
    wanted = [g.lower() for g in groups] + ([ADMIN_WORD] if admin else [])
    user = cfg.roster.get(who)
    have = (list(user.groups) + ([ADMIN_WORD] if user.admin else [])) if user else []
    tokens = [t for t in dict.fromkeys(wanted) if t not in have]
    if user is None or tokens:
        text = userlist.with_user(userlist.read(paths), user.line if user else None, who, tokens)
        _write_userlist(paths, cfg, environ, text)
        out.info(
            f"userlist: {'added' if user is None else 'updated'} {who} {' '.join(tokens)}".rstrip()
        )
    else:
        what = " and ".join(
            part
            for part in (
                f"in {', '.join(user.groups)}" if user.groups else "",
                "an admin" if user.admin else "",
            )
            if part
        )
        out.info(
            f"{who} is already on the roster (userlist:{user.line})"
            + (f", {what}" if what else "")
            + "; nothing to add."
        )
    cfg, shown = _sync(paths, environ, out)
    if who not in shown:
        out.info()
        out.info(_login_text(cfg.settings, who, _password(paths, cfg.roster, who)))


@changes("add-group")
def add_group(
    paths: Paths, environ: Mapping[str, str], out: Output, group: str, members: list[str]
) -> None:
    """Create GROUP (its volume and hub group), adding MEMBERS (already on the roster) to it."""
    cfg = load(paths, environ, out)
    group = group.lower()
    problem = names.name_problem(group)
    if problem:
        raise UserError(f"group name {group!r} {problem}; {names.NAME_RULE}")
    who = [m.lower() for m in members]
    unknown = [m for m in who if cfg.roster.get(m) is None]
    if unknown:
        raise UserError(_not_on_roster(cfg.roster, unknown))
    original = userlist.read(paths)
    text, added = userlist.with_group(original, cfg.settings.admin_user, group, who)
    if text == original:
        out.info(f"userlist: group {group} already has these members; nothing to add.")
    else:
        _write_userlist(paths, cfg, environ, text)
        out.info(
            f"userlist: group {group}: " + (f"added {', '.join(added)}" if added else "declared")
        )
    _sync(paths, environ, out)


@changes("sync")
def sync(paths: Paths, environ: Mapping[str, str], out: Output, dry_run: bool = False) -> None:
    """Bring the running hub in line with `userlist` without restarting it or any server."""
    _sync(paths, environ, out, dry_run, full=True)


def _sync(
    paths: Paths, environ: Mapping[str, str], out: Output, dry_run: bool = False, full: bool = False
) -> tuple[Config, set[str]]:
    """sync's plan (every row with `full`, else those that change) shown and applied: never an
    image built nor the hub or a server replaced (add-user and add-group run it too). Returns
    the config and the users whose new login it printed."""
    if not dry_run:
        backup_mod.refuse_while_restoring(paths)
    cfg = load(paths, environ, out)
    rt = runtime(environ, cfg.settings)
    steps = deploy.sync_steps(paths, cfg, rt, out.info, out.progress)
    out.info(summary(cfg))
    shown = plan.table(steps) if full else plan.brief(steps)
    if shown:
        out.info()
        out.info(shown)
    out.info()
    had_passwords = set(credentials.load(paths))
    _apply_unless_dry(steps, out, dry_run, nothing="Nothing to change.")
    if dry_run:
        return cfg, set()
    _report_roster_state(paths, cfg, rt, out)
    made = credentials.load(paths)
    new = [n for n in cfg.roster.names if n in made and n not in had_passwords]
    for who in new:
        out.info()  # a new user's login
        out.info(_login_text(cfg.settings, who, made[who].password))
    return cfg, set(new)


@changes("build")
def build(paths: Paths, environ: Mapping[str, str], out: Output, dry_run: bool = False) -> None:
    """Build the base, hub and notebook images when their inputs changed; nothing else."""
    cfg = load(paths, environ, out)
    rt = runtime(environ, cfg.settings)
    steps, _ = deploy.image_steps(paths, cfg.settings, rt, out.info, cfg.roster.image_refs())
    out.info(plan.table(steps))
    out.info()
    if dry_run:
        out.info("Dry run: nothing was built.")
        return
    changed = plan.apply(steps, out.info)
    out.info("Images built." if changed else "Every image is up to date.")
    if changed:
        out.info("A new hub image reaches the hub with: invoke setup (user servers keep running).")
    _report_roster_state(paths, cfg, rt, out)


def _report_roster_state(paths: Paths, cfg: Config, rt: Runtime, out: Output) -> None:
    """Servers that wait for a restart to see a roster change, and volumes nobody uses now."""
    if paths.hub_file.exists():
        stale = rt.stale_servers(hubfile.load(paths.hub_file))
        if stale:
            out.info(
                "Waiting for a restart (their next start picks up the change): "
                + "; ".join(f"{user} ({change})" for user, change in sorted(stale.items()))
            )
    detached = rt.detached_volumes(cfg.roster)
    if detached:
        out.info(
            "Detached volumes, kept (no roster user or group uses them; "
            "invoke remove-user NAME --purge deletes a user's): " + ", ".join(detached)
        )


@changes("remove-user")
def remove_user(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    name: str,
    purge: bool = False,
    yes: bool = False,
) -> None:
    """Take NAME off the roster and the hub (server stopped); with `purge`, delete their home."""
    cfg = load(paths, environ, out)
    who = name.lower()
    _not_an_option(who)
    user = cfg.roster.get(who)
    if who == cfg.settings.admin_user:
        raise UserError(
            f"{who} is this hub's ADMIN_USER, always on the roster; set another ADMIN_USER in "
            f"{paths.show(cfg.env_path)} first"
        )
    if user is not None and user.line is not None:
        text = userlist.without_line(userlist.read(paths), user.line)
        _write_userlist(paths, cfg, environ, text)
        out.info(f"userlist: removed {who} (line {user.line})")
    else:
        out.info(f"userlist: {who} is not on the roster{did_you_mean(who, cfg.roster.names)}")
    sync(paths, environ, out)
    if not purge:
        out.info(f"{who}'s home volume is kept; invoke remove-user {who} --purge deletes it.")
        return
    rt = runtime(environ, cfg.settings)
    hub = cfg.settings.hub_name
    volume = names.user_volume(hub, who)
    if volume not in rt.volume_names():
        out.info(f"{who} has no home volume ({volume}); nothing to delete.")
        return
    container = names.user_container(hub, who)
    # Docker removes a stopped server's container itself, a moment after the stop.
    wait.until(f"{who}'s server container {container} to go",
               lambda: rt.container_status(container) is None, 60, out.info)  # fmt: skip
    out.info(f"This deletes, for good: the volume {volume}, every file in {who}'s home.")
    _confirm(who, f"Type {who} to delete their home: ", yes)
    rt.remove_volume(volume)
    out.info(f"Deleted {volume}.")


def _write_userlist(paths: Paths, cfg: Config, environ: Mapping[str, str], text: str) -> None:
    """Replace userlist with `text` once it parses and an engine answers, so nothing is half done."""
    userlist.checked(text, cfg.settings.admin_user)
    runtime(environ, cfg.settings)
    userlist.write(paths, text, cfg.settings.admin_user)


def status(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    """Each component's state (the same table as `setup --dry-run`) and who has a server running."""
    cfg, steps, rt = _show_setup_plan(paths, environ, out, "if-available")
    api = rt.hub_api(paths, cfg.settings) if rt is not None else None
    if api is not None and api.answers():
        running = api.running()
        out.info(
            f"Servers running: {len(running)}" + (f" ({', '.join(running)})" if running else "")
        )
    elif api is not None:
        out.info(f"The hub does not answer at {api.root}.")
    exams = exams_mod.in_progress(paths)
    if exams:
        out.info("In an exam (their servers reach the hub alone): " + ", ".join(
            f"{group} {exams_mod.describe(until)}" for group, until in exams.items()))  # fmt: skip
    if rt is not None:
        _report_roster_state(paths, cfg, rt, out)
        _report_nodes(rt, out)
    pending = sum(step.changes for step in steps)
    unfinished = backup_mod.unfinished_restore(paths)
    if unfinished is not None:
        out.info(f"The restore of {unfinished['backup']} did not finish: run invoke restore "
                 f"{unfinished['backup']} again to finish it.")  # fmt: skip
    else:
        out.info(f"{pending} step(s) pending: run invoke setup." if pending
                 else "In step with the settings.")  # fmt: skip


@changes("destroy")
def destroy(paths: Paths, environ: Mapping[str, str], out: Output, yes: bool = False) -> None:
    """Remove every Docker object of this hub, its users' files included, after asking."""
    cfg = load(paths, environ, out)
    rt = runtime(environ, cfg.settings)
    hub = cfg.settings.hub_name
    found = rt.inventory()
    if not any(found.values()):
        out.info(f"Hub {hub} has no Docker objects on this engine; nothing to remove.")
        return
    out.info(f"This removes, for good, every Docker object of hub {hub}:")
    for what, objects in found.items():
        for name, _ in objects:
            out.info(f"  {what[:-1]:<9} {name}")
    homes = [name for name, kind in found["volumes"] if kind in ("user", "group", "shared")]
    if homes:
        out.info(f"The {len(homes)} user, group and shared volume(s) hold your users' files.")
    out.info("Your files in this checkout (.env, userlist, secrets/) and the images stay.")
    _confirm(hub, f"Type {hub} to remove all of it: ", yes)
    rt.destroy(out.info)


@changes("backup")
def backup(
    paths: Paths, environ: Mapping[str, str], out: Output, users: str = "", folder: str = ""
) -> Path:
    """Write a dated backup of this hub while it runs (only some users' homes with `users`)."""
    cfg = load(paths, environ, out)
    return _backup(paths, cfg, runtime(environ, cfg.settings), out, users, folder)


def _backup(
    paths: Paths, cfg: Config, rt: Runtime, out: Output, users: str = "", folder: str = ""
) -> Path:
    settings, roster = cfg.settings, cfg.roster
    hub = settings.hub_name
    if names.hub_data_volume(hub) not in rt.volume_names():
        raise UserError(f"hub {hub} has no database volume on this engine, so there is nothing "
                        "to back up yet; run invoke setup first")  # fmt: skip
    chosen = None
    if users:
        chosen = sorted({u.strip().lower() for u in users.split(",") if u.strip()})
        have = rt.volume_names()
        unknown = [u for u in chosen if names.user_volume(hub, u) not in have]
        if unknown:
            raise UserError(f"--users: no home volume for {', '.join(unknown)} on hub {hub}; "
                            f"the users on the roster are: {', '.join(roster.names)}")  # fmt: skip
    target = Path(folder).resolve() if folder else backup_mod.default_folder(settings)
    what = f"the homes of {', '.join(chosen)}" if chosen else "the whole hub"
    out.info(f"Backing up {what} ({hub}) to {target} while it runs:")
    manifest = backup_mod.write(rt, paths, settings, roster, target, out.info, chosen)
    size = sum(entry["size"] for entry in manifest.files.values())
    out.info(f"Backup complete: {len(manifest.files)} files, {human_size(size)}, "
             "each with its checksum in manifest.json.")  # fmt: skip
    if settings.shared_data.startswith("/"):
        out.warn(f"SHARED_DATA is the folder {settings.shared_data} on this server; it is not in "
                 "the backup: back it up with the server's other files")  # fmt: skip
    out.info(f"Restore it with: invoke restore {target}")
    return target


def restore(
    paths: Paths, environ: Mapping[str, str], out: Output, folder: str, dry_run: bool = False
) -> None:
    """Recreate this hub from a backup on an engine that does not have it (or after destroy): the
    backup checked, then a plan (printed; with `dry_run` only printed) applied step by step."""
    source = Path(folder).resolve()
    manifest = backup_mod.verify(
        source, lambda label, done, total: out.progress(label, done, total)
    )
    out.info(f"Backup of hub {manifest.hub} made {manifest.created}: {len(manifest.users)} "
             f"user(s), {len(manifest.volumes)} volume(s); every file matches its checksum.")  # fmt: skip
    if dry_run:
        _restore(paths, environ, out, source, manifest, dry_run)
        return
    with locks.held(paths, manifest.hub, "invoke restore"):
        _restore(paths, environ, out, source, manifest, dry_run)


def _restore(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    source: Path,
    manifest: backup_mod.Manifest,
    dry_run: bool,
) -> None:
    # The engine the hub is restored onto: the backup's settings choose it (or, restoring homes
    # only, the checkout's).
    chosen = config_mod.load(
        Paths.at(source / backup_mod.CHECKOUT) if manifest.complete else paths, environ
    )
    rt = runtime(environ, dataclasses.replace(chosen.settings, hub_name=manifest.hub))
    journal = backup_mod.unfinished_restore(paths)
    again = journal is not None and (journal["hub"], journal["created"]) == (
        manifest.hub, manifest.created
    )  # fmt: skip
    if journal is not None and not again:
        raise UserError(
            f"the restore of another backup, {journal['backup']}, did not finish in this "
            f"checkout: finish it first (invoke restore {journal['backup']}), or give it up "
            f"(invoke destroy --yes, then delete state/{backup_mod.RESTORING}). Nothing was changed"
        )
    if again and journal is not None and journal.get("stage") == backup_mod.ONLY_SETUP_LEFT:
        out.info("Finishing the restore of this backup that was interrupted: its files and "
                 "database are back; setup is left.")  # fmt: skip
        if not dry_run:
            setup(paths, environ, out, restoring=True)
        return
    if again:
        out.info("Finishing the restore of this backup that was interrupted: what it made is "
                 "filled again from the backup.")  # fmt: skip
    taken = [] if again else backup_mod.existing_volumes(rt, manifest.hub, manifest)
    if taken:
        raise UserError(
            f"these volumes of hub {manifest.hub} already exist and restore never writes over "
            f"one: {', '.join(taken)}. Back them up and run invoke destroy first, or restore on "
            "another engine. Nothing was changed"
        )
    if not manifest.complete:
        homes = _restore_volumes_step(rt, source, manifest, out, load(paths, environ, out), again)
        out.info()
        out.info(plan.table([homes]))
        out.info()
        if not dry_run:
            backup_mod.begin_restore(paths, source, manifest)
        if _apply_unless_dry([homes], out, dry_run):
            backup_mod.end_restore(paths)
            out.info(f"Restored the homes of {', '.join(manifest.users)}. They appear in their "
                     "servers at the next start.")  # fmt: skip
        return
    saved = Paths.at(source / backup_mod.CHECKOUT)
    cfg = load(saved, environ, out)  # the backup's settings: those restored
    if (cfg.settings.hub_name, cfg.settings.hub_db) != (manifest.hub, manifest.database):
        raise UserError(f"HUB_NAME={cfg.settings.hub_name} and HUB_DB={cfg.settings.hub_db} (the "
                        f"environment overrides the backup's .env) differ from the backup's hub "
                        f"{manifest.hub} and its {manifest.database} database; unset them. "
                        "Nothing was changed")  # fmt: skip
    _refuse_conflicts(rt, paths, cfg)

    restored: list[Config] = []  # the checkout's config, once its files are back

    def put_back() -> None:
        backup_mod.restore_checkout(source, manifest, paths, out.info)
        restored.append(load(paths, environ, out))

    def images() -> None:
        config = restored[0]
        steps = deploy.image_steps(paths, config.settings, rt, out.info, config.roster.image_refs())
        plan.apply(steps[0], out.info)

    def rest_of_setup() -> None:
        backup_mod.begin_restore(paths, source, manifest, backup_mod.ONLY_SETUP_LEFT)
        setup(paths, environ, out, restoring=True)

    def hub_database() -> None:
        copy = backup_mod.database_copy(source, manifest)
        settings = restored[0].settings
        if components.has(settings, Part.DATABASE):
            deploy.start_database(paths, restored[0], rt, out.info)
        rt.restore_database(settings, copy, again)

    checkout = [f for f in manifest.files if f.startswith(backup_mod.CHECKOUT + "/")]
    steps = [
        Step("settings, roster and secrets", f"{len(checkout)} file(s) in the backup",
             "put in the checkout (a file that differs is kept as NAME.before-restore)", put_back),
        Step("images", "as the backup's settings name them",
             "build those missing or out of date (as invoke build)", images),
        _restore_volumes_step(rt, source, manifest, out, cfg, again),
        Step(f"hub database ({manifest.database})", "in the backup", "restore", hub_database),
        Step("the rest of setup", "", "as invoke setup does it", rest_of_setup),
    ]  # fmt: skip
    out.info()
    out.info(plan.table(steps))
    out.info()
    if not dry_run:
        backup_mod.begin_restore(paths, source, manifest)
    _apply_unless_dry(steps, out, dry_run)


def _restore_volumes_step(
    rt: Runtime, source: Path, manifest: backup_mod.Manifest, out: Output, cfg: Config,
    again: bool = False,
) -> Step:  # fmt: skip
    """Each volume of the backup, made and filled from its archive; a home or group folder goes
    into DISK_STORE (when set) with the size the roster gives it, else DISK_LIMIT or
    GROUP_DISK_LIMIT. `again`: finishing an interrupted restore, whose volumes are filled again."""
    total = len(manifest.volumes)
    settings = cfg.settings
    sizes = {name: size for name, (_, size) in disks.wanted(settings, cfg.roster).items()}
    defaults = {"user": settings.disk_limit, "group": settings.group_disk_limit}

    def run() -> None:
        for index, (volume, kind) in enumerate(sorted(manifest.volumes.items()), 1):
            archive = source / backup_mod.VOLUMES / f"{volume}.tar.gz"
            size = sizes.get(volume, defaults.get(kind))
            store = settings.disk_store if size is not None else ""
            rt.restore_volume(volume, kind, archive, store, size or 0, again)
            out.progress("restoring volumes", index, total)

    where = f", homes and group folders into {settings.disk_store}" if settings.disk_store else ""
    if again:
        state = "some made by the interrupted restore"
        return Step(f"{total} volume(s)", state, f"create or fill again{where}", run)
    return Step(f"{total} volume(s)", "missing on this engine", f"create and fill{where}", run)


@changes("archive")
def archive(paths: Paths, environ: Mapping[str, str], out: Output) -> Path:
    """Semester end: a full backup, then the hub's containers stopped and removed (volumes and
    the backup stay)."""
    cfg = load(paths, environ, out)
    rt = runtime(environ, cfg.settings)
    target = _backup(paths, cfg, rt, out)
    removed = rt.remove_containers(out.info)
    out.info(f"Archived: {removed} container(s) removed; the backup is {target}. The volumes "
             "stay until invoke destroy; invoke up starts the hub again.")  # fmt: skip
    return target


@changes("rehearse")
def rehearse(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    users: int,
    ramp: float = 10.0,
    folder: str = "",
    only_cleanup: bool = False,
    prewarmed: bool = False,
    minutes: float = 0,
    every: float = 10,
) -> list:
    """Rehearse a class start with `users` temporary students (and with `minutes`, a class at
    work: a cell every `every` seconds each); print the figures and write the raw timings and the
    timeline picture. Everything temporary is removed afterwards."""
    cfg = load(paths, environ, out)
    settings = cfg.settings
    if not only_cleanup:
        _needs_passwords(settings, "the rehearsal logs its temporary students in with passwords",
                         "rehearse on a hub with AUTHENTICATOR=roster or native")  # fmt: skip
    rt = runtime(environ, settings)
    api = rt.hub_api(paths, settings)
    if not paths.hub_file.exists() or not api.answers():
        raise UserError(f"the hub {settings.hub_name} does not answer; start it with invoke up")
    if only_cleanup:
        removed = rehearse_mod.cleanup(paths, settings, rt, api, out.info)
        out.info(f"Removed {removed} object(s) left by a rehearsal." if removed else
                 "No rehearsal left anything behind.")  # fmt: skip
        return []
    if users < 1 or ramp < 0:
        raise UserError("--users must be 1 or more and --ramp 0 or more (seconds)")
    if minutes < 0 or every <= 0 or (minutes and minutes * 60 <= ramp):
        raise UserError("--minutes must be 0 (a class start only) or longer than the --ramp, "
                        "and --every more than 0 (seconds between a student's cells)")  # fmt: skip
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = Path(folder).resolve() if folder else paths.state_dir / "rehearsals" / stamp
    warm = " to prewarmed servers" if prewarmed else ""
    work = f", then a cell every {every:g}s each until minute {minutes:g}" if minutes else ""
    out.info(f"Rehearsing {users} students logging in{warm} over {ramp:g}s{work} on hub "
             f"{settings.hub_name} (temporary users {rehearse_mod.PREFIX}*, removed afterwards) ...")  # fmt: skip
    timings = rehearse_mod.run(paths, settings, rt, api, users, ramp, out.info, prewarmed,
                               minutes, every)  # fmt: skip
    target.mkdir(parents=True, exist_ok=True)
    rehearse_mod.write_json(target / "timings.json", settings, timings, ramp, minutes, every)
    rehearse_mod.draw_timeline(target / "timeline.png", timings)
    out.info("")
    out.info("Seconds each phase took, per student (total: from the login to a usable kernel):")
    out.info(rehearse_mod.summary(timings))
    out.info(f"Raw timings: {target / 'timings.json'}; picture: {target / 'timeline.png'}")
    return timings


def prewarm(
    paths: Paths,
    environ: Mapping[str, str],
    out: Output,
    group: str = "",
    users: str = "",
    at: str = "",
    hold: str = "",
) -> None:
    """Start a class's servers (at a time, with `at`) and keep the culler off them for `hold`."""
    cfg = load(paths, environ, out)
    settings = cfg.settings
    chosen = prewarm_mod.targets(
        cfg.roster, group, [u.strip() for u in users.split(",") if u.strip()]
    )
    try:
        hold_seconds = parsers.duration(hold or "0", parsers.Context(paths.root, 1))
    except parsers.Invalid as bad:
        raise UserError(f"--hold {hold} {bad.reason}; e.g. --hold 30m") from None
    when = prewarm_mod.parse_at(at, dt.datetime.now().astimezone()) if at else None
    api = runtime(environ, settings).hub_api(paths, settings)
    if not api.answers():
        raise UserError(f"the hub {settings.hub_name} does not answer; start it with invoke up")
    if when is not None:
        prewarm_mod.wait_until(when, out.info)
    out.info(f"Starting the servers of {len(chosen)} user(s): {', '.join(chosen)}")
    began = time.monotonic()
    failed = prewarm_mod.start(
        api, chosen, lambda label, done, total: out.progress(label, done, total)
    )
    out.info(f"{len(chosen) - len(failed)} of {len(chosen)} servers ready after "
             f"{time.monotonic() - began:.1f}s.")  # fmt: skip
    for user, why in failed.items():
        out.warn(f"{user}: {why}")
    held = [u for u in chosen if u not in failed]
    if hold_seconds and held:
        timeout = settings.cull_idle_timeout
        if not timeout:
            out.info("CULL_IDLE_TIMEOUT=0: no server is ever culled, so there is nothing to hold.")
        else:
            until = time.time() + hold_seconds
            every = hubfile.activity_interval(timeout)
            out.info(f"Holding them until {dt.datetime.fromtimestamp(until):%H:%M:%S}: activity "
                     f"every {every}s keeps the idle culler away (Ctrl-C ends the hold early; "
                     "the servers keep running).")  # fmt: skip
            prewarm_mod.hold(api, held, until, every, out.info)
            out.info("Hold over: from now on the idle culler treats them like any server.")
    if failed:
        raise UserError(f"{len(failed)} server(s) did not start; see the warnings above")


def restart_server(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str, group: bool = False
) -> None:
    """Restart NAME's server, or (`group`) the running servers of group NAME's members: stop,
    then start. Their files are in volumes and stay; a user's server not running is started."""
    cfg = load(paths, environ, out)
    name = name.lower()
    if not group and cfg.roster.get(name) is None and name in cfg.roster.groups():
        raise UserError(f"{name} is a group; to restart its members' running servers: "
                        f"invoke restart-server {name} --group")  # fmt: skip
    if not group:
        _on_roster(cfg.roster, name)
    chosen = prewarm_mod.targets(cfg.roster, name if group else "", [] if group else [name])
    api = runtime(environ, cfg.settings).hub_api(paths, cfg.settings)
    if not api.answers():
        raise UserError(f"the hub {cfg.settings.hub_name} does not answer; start it with invoke up")
    live = set(api.running())  # one listing of the hub's users, not one a name
    running = [u for u in chosen if u in live]
    if group:
        chosen = running
        if not chosen:
            out.info(f"No server of group {name} is running; nothing to restart.")
            return
    out.info(f"Restarting the server(s) of: {', '.join(chosen)} (their files stay)")
    prewarm_mod.stop(api, running, out.progress)
    failed = prewarm_mod.start(api, chosen, out.progress, warm_kernel=False)
    for user, why in failed.items():
        out.warn(f"{user}: {why}")
    if failed:
        raise UserError(f"{len(failed)} server(s) did not start again; see the warnings above")
    out.info(f"{len(chosen)} server(s) restarted and ready.")


@changes("add-node")
def add_node(paths: Paths, environ: Mapping[str, str], out: Output, host: str) -> None:
    """Check another server and join it to this server's swarm as a node (docs/swarm.md)."""
    cfg = load(paths, environ, out)
    hostname = swarm.add_node(environ, paths, cfg.settings, host, out.info,
                              cfg.roster.image_refs())  # fmt: skip
    out.info(f"{hostname} is a node of this swarm. invoke status lists the nodes.")


@changes("drain-node")
def drain_node(paths: Paths, environ: Mapping[str, str], out: Output, host: str) -> None:
    """Place nothing new on a node and wait until what runs there has stopped; files stay."""
    load(paths, environ, out)
    hostname, address = swarm.drain_node(environ, host, out.info)
    out.info(f"{hostname} is drained: nothing new starts there (invoke add-node {address} makes "
             "it take servers again).")  # fmt: skip


@changes("remove-node")
def remove_node(paths: Paths, environ: Mapping[str, str], out: Output, host: str) -> None:
    """Drain a node, make it leave the swarm and take it off the list; files stay."""
    cfg = load(paths, environ, out)
    swarm.remove_node(environ, paths, cfg.settings, host, out.info)


def _report_nodes(rt: Runtime, out: Output) -> None:
    rows = rt.nodes()
    if not rows:
        return
    out.info(f"Nodes of this server's swarm ({len(rows)}):")
    out.info(f"  {'node':<20} {'role':<8} {'state':<6} {'takes':<7} {'servers':>7}  "
             f"{'engine':<16} reached at")  # fmt: skip
    for row in rows:
        out.info(f"  {row.hostname:<20} {row.role:<8} {row.state:<6} {row.availability:<7} "
                 f"{row.servers:>7}  {row.engine:<16} {row.address or '(this server)'}")  # fmt: skip


EXAM_ACK_TIMEOUT = 30


@changes("exam")
def exam(
    paths: Paths, environ: Mapping[str, str], out: Output, action: str, group: str, until: str = ""
) -> None:
    """`start`: cut group `group`'s servers off from everything but the hub (until `until`, HH:MM
    today, or until stopped); `stop`: give them back. No server restarts; the hub's firewall
    applies it within a second, and this waits until it has."""
    if action not in ("start", "stop"):
        raise UserError(f"invoke exam {action}: say start or stop, e.g. invoke exam start "
                        "--group team-1 --until 11:30")  # fmt: skip
    cfg = load(paths, environ, out)
    name = group.strip().lower()
    if not name:
        raise UserError(f"name the group: invoke exam {action} --group NAME")
    if name not in cfg.roster.groups():
        known = list(cfg.roster.groups())
        raise UserError(f"--group {name}: no such group in userlist{did_you_mean(name, known)}")
    if action == "stop" and until:
        raise UserError("--until goes with invoke exam start")
    rt = runtime(environ, cfg.settings)
    firewall = names.firewall_container(cfg.settings.hub_name)
    if rt.container_status(firewall) != "running":
        raise UserError(f"the hub's firewall {firewall} is not running, so no exam can be "
                        "enforced; start the hub with invoke up (or invoke setup) first")  # fmt: skip
    since = time.time()
    if action == "start":
        ends = None
        if until:
            now = dt.datetime.now().astimezone()
            ends = prewarm_mod.parse_at(until, now, "--until", "give a later time",
                                        "11:30").timestamp()  # fmt: skip
        changed = exams_mod.start(paths, name, ends)
    else:
        changed = exams_mod.stop(paths, name)
    running = exams_mod.in_progress(paths)
    said = _exam_ack(rt, since, running) if changed else {}
    if action == "stop":
        out.info(f"Exam over for group {name}: its servers reach the internet again."
                 if changed else f"Group {name} is not in an exam; nothing to change.")  # fmt: skip
        return
    count = said.get(name)
    servers = f"its {count} running server(s)" if count is not None else "its running servers"
    out.info(f"Exam mode for group {name} {exams_mod.describe(running[name])}: {servers} reach "
             "the hub alone now, and servers started meanwhile start that way; nothing restarted. "
             f"It ends {'by itself then, or ' if running[name] else ''}with: invoke exam stop "
             f"--group {name}")  # fmt: skip


_EXAM_ENTRY = re.compile(r"(?P<label>.+) \((?P<servers>\d+) server\(s\)\)")


def _exam_ack(rt: Runtime, since: float, running: dict[str, float | None]) -> dict[str, int]:
    """Once the firewall's last word on exams is exactly `running` wherever it runs (on every
    node of a swarm): each group's servers cut off, so many of them in all."""
    wanted = {hubfile.exam_label(group, until): group for group, until in running.items()}
    found: dict[str, int] = {}

    def applied() -> bool:
        counts: dict[str, int] = dict.fromkeys(wanted.values(), 0)
        for listed in rt.exams_applied(since - 1):
            if listed is None:
                return False
            entries = [] if listed == "none" else [_EXAM_ENTRY.fullmatch(e)
                                                   for e in listed.split("; ")]  # fmt: skip
            if any(e is None for e in entries):
                return False
            now = {e["label"]: int(e["servers"]) for e in entries if e is not None}
            if set(now) != set(wanted):
                return False
            for label, count in now.items():
                counts[wanted[label]] += count
        found.update(counts)
        return True

    wait.until("the hub's firewall to apply the exams", applied, EXAM_ACK_TIMEOUT, interval=0.2)
    return found


def _confirm(word: str, prompt: str, yes: bool) -> None:
    """Go on only when `yes` or the person types `word`; without a terminal, ask for --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UserError("not confirmed, nothing was deleted; to confirm without asking add --yes")
    if input(prompt).strip().lower() != word.lower():
        raise UserError("not confirmed, nothing was deleted")


def _refuse_conflicts(rt: Runtime, paths: Paths, cfg: Config) -> None:
    """Stop, before anything is made, when another hub or program holds HUB_NAME or PORT."""
    problems = rt.conflicts(cfg.settings, paths.root)
    if problems:
        raise UserError("\n".join(problems))


def hubs(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    """Every hub on this host's engine, and one nginx server block that routes each one's path."""
    found = single_host.hubs(environ)
    if not found:
        out.info("No hub on this host's Docker engine yet: run invoke setup in a checkout.")
        return
    rows = [("HUB", "PATH", "PUBLISHED ON", "STATE", "USERS", "CHECKOUT")]
    rows += [(h.name, f"/{h.name}/", h.address or _front(h), h.state, str(h.users),
              h.checkout or "?") for h in found]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [f"{cell:<{width}}" for cell, width in zip(row[:-1], widths, strict=True)]
        out.info("  ".join([*cells, row[-1]]))
    routed = [(h.name, _upstream(h.address)) for h in found if h.address]
    if routed:
        out.info()
        out.info(render.nginx_server(paths, routed).rstrip("\n"))


def _front(hub: neighbours.HubInfo) -> str:
    """Where a hub behind its bundled nginx answers (it publishes no port of its own)."""
    return ("nginx on " + ",".join(f":{port}" for port in sorted(hub.ports))) if hub.ports else "-"


def _upstream(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def engine(environ: Mapping[str, str], out: Output) -> None:
    out.info(single_host.install(environ, out.info))


@changes("up")
def up(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    """Start what `down` stopped: the network, the hub container, the hub's users and groups."""
    backup_mod.refuse_while_restoring(paths)
    cfg = load(paths, environ, out)
    rt = runtime(environ, cfg.settings)
    wanted = {image.what: image.tag for image in components.images(cfg.settings)}
    wanted["notebook image"] = cfg.settings.notebook_image
    missing = [what for what, tag in wanted.items() if rt.image(tag) is None]
    if missing or not paths.hub_file.exists():
        raise UserError(
            f"this hub is not set up yet ({', '.join(missing) or 'no hub file'}); run invoke setup"
        )
    _refuse_conflicts(rt, paths, cfg)
    steps = deploy.docker_steps(paths, cfg, rt, out.info, build=False)
    out.info(plan.table(steps))
    out.info()
    changed = plan.apply(steps, out.info)
    out.info(
        f"The hub answers at {cfg.settings.public_url}."
        if changed
        else "Already up: nothing to change."
    )


@changes("down")
def down(paths: Paths, environ: Mapping[str, str], out: Output) -> None:
    """Stop the hub and every user server; all data stays in the volumes."""
    cfg = load(paths, environ, out)
    count = runtime(environ, cfg.settings).stop_all(out.info)
    out.info(
        f"Stopped {count} container(s); every volume is kept. Start again with: invoke up"
        if count
        else "Nothing was running."
    )


def logs(
    paths: Paths, environ: Mapping[str, str], out: Output, user: str, tail: int, follow: bool
) -> None:
    cfg = load(paths, environ, out)
    rt = runtime(environ, cfg.settings)
    hub = cfg.settings.hub_name
    name = names.user_container(hub, user.lower()) if user else names.hub_container(hub)
    if rt.container_status(name) is None:
        who = f"{user}'s server is not running" if user else "the hub container does not exist"
        raise UserError(f"{who} (no container {name}); see: invoke status")
    if not follow:
        out.info(rt.logs(name, tail).rstrip("\n"))
        return
    for chunk in rt.follow_logs(name, tail):
        out.out.write(chunk.decode("utf-8", "replace"))
        out.out.flush()


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
        _needs_passwords(cfg.settings, "--csv lists the roster's passwords")
        out.info(_roster_csv(paths, cfg.roster).rstrip("\n"))
        return
    who = (name or cfg.settings.admin_user).lower()
    out.info(_login_text(cfg.settings, who, _password(paths, cfg.roster, who)))


@changes("reset-password")
def reset_password(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str, dry_run: bool = False
) -> None:
    cfg = load(paths, environ, out)
    who = name.lower()
    _on_roster(cfg.roster, who)
    _needs_passwords(cfg.settings, "reset-password makes a new roster password",
                     "people reset theirs at their sign-in provider")  # fmt: skip
    steps = deploy.reset_password_steps(paths, cfg, who)
    out.info(plan.table(steps))
    out.info()
    if dry_run:
        out.info("Dry run: nothing was changed.")
        return
    plan.apply(steps, out.info)
    out.info()
    out.info(_login_text(cfg.settings, who, _password(paths, cfg.roster, who)))


def nginx(paths: Paths, environ: Mapping[str, str], out: Output, server: bool = False) -> None:
    """The location block for your nginx's server, or (`server`) a whole TLS site for it."""
    cfg = load(paths, environ, out)
    settings = cfg.settings
    if components.has(settings, Part.FRONT_DOOR):
        raise UserError(
            "PROXY=nginx: classhub runs this hub's nginx itself and the hub's port is not "
            "published, so there is nothing to route to. Set PROXY=none in .env (and run "
            "invoke setup) to put the hub behind your own nginx"
        )
    if not server:
        out.info(render.nginx_location(paths, settings).rstrip("\n"))
        return
    if settings.tls_cert is not None and settings.tls_key is not None:
        cert, key = str(settings.tls_cert), str(settings.tls_key)
        out.info(render.nginx_site(paths, settings, settings.upstream, cert, key).rstrip("\n"))
        return
    # No certificate of yours yet: certbot's, with the lines that get it (ACME_DIRECTORY's CA).
    cert, key = acme.certbot_pair(settings)
    out.info(acme.certbot_lines(settings))
    site = render.nginx_site(paths, settings, settings.upstream, cert, key, acme.CERTBOT_WEBROOT)
    out.info(site.rstrip("\n"))


def _not_an_option(name: str) -> None:
    if name.startswith("-"):
        raise UserError(
            f"{name!r} is not a user name; for this task's options run: invoke --help TASK"
        )


def _on_roster(roster: Roster, name: str) -> None:
    _not_an_option(name)
    if roster.get(name) is None:
        raise UserError(_not_on_roster(roster, [name]))


def _not_on_roster(roster: Roster, unknown: list[str]) -> str:
    """Why these names are refused, with the roster's names closest to each; a name is added
    to the roster with add-user, which is said without repeating what may be a typo."""
    hints = "".join(f"\n   {quoted(n)}{did_you_mean(n, roster.names) or ': no name on the roster is close'}"
                    for n in unknown)  # fmt: skip
    head = "not on the roster: " + ", ".join(quoted(n) for n in unknown)
    return f"{head}{hints}\n   (someone new joins the roster with: invoke add-user NAME)"


def _password(paths: Paths, roster: Roster, name: str) -> str:
    _on_roster(roster, name)
    cred = credentials.load(paths).get(name)
    if cred is None:
        raise UserError(f"{name!r} has no password yet; run invoke setup, which makes it")
    return cred.password


def _single_sign_on(settings: Settings) -> str:
    """Where people sign in when the hub takes no passwords (oidc, github); "" when it does."""
    if settings.authenticator == "github":
        return "GitHub"
    if settings.authenticator == "oidc":
        return urlsplit(settings.oidc_issuer or settings.oidc_authorize_url).hostname or "OIDC"
    return ""


def _login_text(settings: Settings, name: str, password: str) -> str:
    provider = _single_sign_on(settings)
    if provider:  # the roster's password is kept (for a switch back) but the hub does not take it
        password = (f"none on this hub: sign in with {provider} "
                    f"(AUTHENTICATOR={settings.authenticator})")  # fmt: skip
    return f"  URL:      {settings.public_url}\n  Username: {name}\n  Password: {password}"


def _needs_passwords(settings: Settings, what: str, fix: str = "") -> None:
    provider = _single_sign_on(settings)
    if provider:
        raise UserError(f"{what}, but with AUTHENTICATOR={settings.authenticator} people sign in "
                        f"with {provider} and the hub takes no passwords"
                        + (f"; {fix}" if fix else ""))  # fmt: skip


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


# --- course materials (assignments.py; docs/assignments.md) -----------------------------------


@changes("handout")
def handout(
    paths: Paths, environ: Mapping[str, str], out: Output, source: str, to: str = "",
    users: str = "", name: str = "", group_folder: bool = False, dry_run: bool = False,
) -> list[assignments.Delivery]:  # fmt: skip
    """Hand SOURCE (a folder or a git repository) into the chosen homes or group folders."""
    cfg = load(paths, environ, out)
    return _handout(paths, cfg, runtime(environ, cfg.settings), out, source, to, users, name,
                    group_folder, dry_run)  # fmt: skip


def _handout(
    paths: Paths, cfg: Config, rt: Runtime, out: Output, source: str, to: str = "",
    users: str = "", name: str = "", group_folder: bool = False, dry_run: bool = False,
) -> list[assignments.Delivery]:  # fmt: skip
    hub = cfg.settings.hub_name
    chosen = assignments.targets(cfg.roster, hub, to, users.split(","), group_folder)
    given_name = name or Path(source.rstrip("/")).name.removesuffix(".git")
    assignments.check_name(given_name, "--as" if name else "SOURCE's folder name (or --as NAME)")
    material = assignments.read_source(source, Path.cwd())
    assignments.missing_volumes(rt, chosen)
    where = "group folders" if group_folder else "homes"
    out.info(f"{'Would hand' if dry_run else 'Handing'} out {len(material.files)} file(s) from "
             f"{source} as {given_name}/ into {len(chosen)} {where}:")  # fmt: skip
    for left in material.left_out:
        out.warn(f"{source}: {left} is a link or not a regular file; not handed out")
    done = assignments.handout(paths, rt, material, given_name, chosen, dry_run, out.progress)
    assignments.report(done, given_name, out.info)
    failed = [d.target.key for d in done if d.problem]
    if dry_run:
        out.info("Dry run: nothing was written.")
    else:
        out.info(f"Done: {len(done) - len(failed)} of {len(done)} {where} have {given_name}/ "
                 f"(record: {paths.show(assignments.folder_of(paths, given_name))}/"
                 f"{assignments.RECORD}).")  # fmt: skip
    if failed:
        raise UserError(f"nothing was handed to {', '.join(failed)}: see above why")
    return done


def collect(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str, due: str = "",
    groups: bool = False, max_size: str = "",
) -> Path:  # fmt: skip
    """Copy every `~/NAME` handed out into assignments/NAME/collected-<time>/, with tables."""
    cfg = load(paths, environ, out)
    return _collect(paths, cfg, runtime(environ, cfg.settings), out, name, due, groups, max_size)


def _collect(
    paths: Paths, cfg: Config, rt: Runtime, out: Output, name: str, due: str = "",
    groups: bool = False, max_size: str = "",
) -> Path:  # fmt: skip
    assignments.check_name(name)
    now = dt.datetime.now().astimezone()
    due_at = assignments.parse_due(due, now) if due else None
    limit = _size_option("--max-size", max_size, assignments.MAX_FILE, "200M")
    record = assignments.handed_out(paths, name)
    chosen = assignments.collect_targets(record, cfg.roster, cfg.settings.hub_name, name, groups)
    folder = assignments.folder_of(paths, name) / f"collected-{now:%Y%m%d-%H%M%S}"
    out.info(f"Collecting {name}/ from {len(chosen)} {'group folders' if groups else 'homes'} "
             f"into {paths.show(folder)} (read-only: nothing of theirs changes) ...")  # fmt: skip
    handed = assignments.collect(rt, chosen, name, folder, limit, record.given, out.progress)
    assignments.write_tables(folder, handed, due_at)
    for h in handed:
        line = f"  {h.target.who}: " + (
            f"{len(h.changed)} file(s) changed" if h.changed else "nothing handed in"
        )
        line += " (late)" if h.late(due_at) else ""
        line += "".join(f"; {p or '~'}: {why}" for p, why in h.skipped)
        out.info(line)
    missing = sum(1 for h in handed if not h.changed)
    late_count = sum(1 for h in handed if h.late(due_at))
    out.info(f"Collected from {len(handed) - missing} of {len(handed)}" +
             (f"; {late_count} late against {due_at:%Y-%m-%d %H:%M}" if due_at else "") +
             f". Tables: {paths.show(folder)}/submissions.csv and files.csv.")  # fmt: skip
    return folder


def _size_option(option: str, raw: str, default: int, example: str) -> int:
    """A size a task's option gives (`default` when not given); an error naming it."""
    if not raw:
        return default
    try:
        return parsers.size_with_unit(raw, f"e.g. {option} {example}")
    except parsers.Invalid as bad:
        raise UserError(f"{option} {raw} {bad.reason}; {bad.fix}") from None


@changes("return")
def return_feedback(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str, folder: str,
    groups: bool = False,
) -> None:  # fmt: skip
    """Put FOLDER/<student>/... into each student's ~/NAME/feedback/."""
    cfg = load(paths, environ, out)
    _return_feedback(paths, cfg, runtime(environ, cfg.settings), out, name, folder, groups)


def _return_feedback(
    paths: Paths, cfg: Config, rt: Runtime, out: Output, name: str, folder: str,
    groups: bool = False,
) -> None:  # fmt: skip
    assignments.check_name(name)
    assignments.handed_out(paths, name)
    feedback = assignments.feedback_from(Path(folder).expanduser().resolve(), cfg.roster,
                                         cfg.settings.hub_name, groups)  # fmt: skip
    assignments.missing_volumes(rt, list(feedback))
    out.info(f"Returning feedback into {name}/{assignments.FEEDBACK}/ of {len(feedback)} "
             f"{'group folders' if groups else 'homes'} ...")  # fmt: skip
    given = assignments.give_back(rt, feedback, name, out.progress)
    for target, count in given.items():
        out.info(f"  {target.key}: {count} file(s)")


@changes("autograde")
def autograde(
    paths: Paths, environ: Mapping[str, str], out: Output, name: str, key: str,
    timeout: int = grading.TIMEOUT, memory: str = "", cpus: float = grading.CPUS,
    parallel: int = 0,
) -> Path:  # fmt: skip
    """Grade NAME's newest collect against KEY, each submission in its own sandbox."""
    cfg = load(paths, environ, out)
    return _autograde(paths, cfg, runtime(environ, cfg.settings), out, name, key, timeout,
                      memory, cpus, parallel)  # fmt: skip


def _autograde(
    paths: Paths, cfg: Config, rt: Runtime, out: Output, name: str, key: str,
    timeout: int = grading.TIMEOUT, memory: str = "", cpus: float = grading.CPUS,
    parallel: int = 0,
) -> Path:  # fmt: skip
    assignments.check_name(name)
    if timeout < 1:
        raise UserError(f"--timeout {timeout}: give the seconds a cell may run, e.g. 60")
    size = _size_option("--memory", memory, grading.MEMORY, "1G")
    if not 0.1 <= cpus <= (os.cpu_count() or 1):
        raise UserError(f"--cpus {cpus}: give between 0.1 and this server's {os.cpu_count()} cores")
    if parallel < 0:
        raise UserError(f"--parallel {parallel}: give how many sandboxes may run at once, e.g. 2")
    at_once = parallel or grading.parallel_default(cpus)
    collected = grading.latest_collect(paths, name)
    the_key = grading.read_key(key, Path.cwd())
    box = grading.limits(timeout, size, cpus)
    left = rt.sweep_sandboxes()
    if left:
        out.info(f"Removed {left} container(s) and volume(s) of sandboxes an earlier autograde "
                 "left behind (it was stopped before it finished).")  # fmt: skip
    image = grading.ensure_image(paths, cfg.settings, rt, out.info)
    submissions = [p.name for p in collected.iterdir() if p.is_dir()]
    nobody = []
    table = collected / "submissions.csv"
    if table.exists():
        with table.open(newline="") as rows:
            nobody = [r["who"] for r in csv.DictReader(rows) if r["who"] not in submissions]
    out.info(f"Grading {len(submissions)} submission(s) of {name} from "
             f"{paths.show(collected)}, each in its own sandbox (no network; "
             f"{human_size(box.memory)}, {cpus:g} core(s), {box.pids} processes, "
             f"{timeout}s a cell; {at_once} at a time) ...")  # fmt: skip
    grades = grading.grade_all(rt, image, name, the_key, collected, timeout, box, at_once,
                               out.progress)  # fmt: skip
    folder = assignments.folder_of(paths, name) / f"autograded-{grading.stamp()}"
    grading.write_results(folder, grades, nobody)
    for g in grades:
        score = "no score" if g.score is None else f"{g.score:g}" + (
            f"/{g.max_score:g}" if g.max_score is not None else "")  # fmt: skip
        out.info(f"  {g.who}: {score}" + (f" ({'; '.join(g.reasons)})" if g.reasons else ""))
    out.info(f"Grades: {paths.show(folder)}/grades.csv. To give the feedback back: "
             f"invoke return {name} {paths.show(folder)}/feedback")  # fmt: skip
    return folder
