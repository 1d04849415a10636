"""`invoke prewarm`: start a class's servers before the class begins, and keep them from being
culled until it has.

`targets` picks the users (a group's members, or named users, all on the roster); `wait_until`
waits for a clock time today (`--at 08:50`); `start` asks the hub for each server and waits until
they are all ready, with progress; `hold` then reports activity for them every
`activity_interval` seconds until the window ends, so that the idle culler, which stops servers
unused for CULL_IDLE_TIMEOUT, leaves them alone until students arrive. A student's own use
reports activity too, so holding never shortens anyone's server.

Rules: only roster users are started (never an admin's server unless named); a server already
running is left as it is; nothing is stopped here.
"""

from __future__ import annotations

import datetime as dt
import time

from . import hubapi
from .console import Echo, Progress
from .errors import UserError
from .inputs.roster import Roster


def targets(roster: Roster, group: str, users: list[str]) -> list[str]:
    """The users to prewarm: the group's members and the named users, each on the roster."""
    chosen: list[str] = []
    if group:
        members = roster.groups().get(group.lower())
        if members is None:
            known = ", ".join(sorted(roster.groups())) or "none"
            raise UserError(f"--group {group}: no such group in userlist (groups: {known})")
        chosen += list(members)
    unknown = [u for u in users if u.lower() not in roster.names]
    if unknown:
        raise UserError(f"--users: {', '.join(unknown)} not on the roster (userlist)")
    chosen += [u.lower() for u in users]
    if not chosen:
        raise UserError("name whom to prewarm: --group NAME or --users a,b")
    return sorted(set(chosen))


def parse_at(
    text: str,
    now: dt.datetime,
    option: str = "--at",
    passed: str = "leave --at out to start now",
    example: str = "08:50",
) -> dt.datetime:
    """Today's HH:MM (this server's local time) as a datetime after `now`."""
    try:
        clock = dt.datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise UserError(
            f"{option} {text}: not a time; write it as HH:MM, e.g. {option} {example}"
        ) from None
    when = now.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    if when <= now:
        raise UserError(f"{option} {text}: that time has passed today; {passed}")
    return when


def wait_until(when: dt.datetime, echo: Echo) -> None:
    echo(f"Waiting until {when:%H:%M} (Ctrl-C to cancel) ...")
    while (left := (when - dt.datetime.now(when.tzinfo)).total_seconds()) > 0:
        time.sleep(min(left, 30))


def start(
    api: hubapi.HubAPI,
    users: list[str],
    progress: Progress,
    timeout: float = 600,
    warm_kernel: bool = True,
) -> dict[str, str]:
    """Ask for every user's server, then wait until each is ready; returns the users whose
    server did not come up, with the reason. `warm_kernel`: each server also starts a kernel
    for its student's first notebook (the hub's `warm_kernel` option)."""
    failed: dict[str, str] = {}
    body = {"warm_kernel": True} if warm_kernel else None
    for user in users:
        try:
            api.call("POST", f"/users/{user}/server", json=body)
        except UserError as exc:
            if "already running" not in str(exc) and "pending spawn" not in str(exc):
                failed[user] = str(exc)
    waiting = [u for u in users if u not in failed]
    deadline = time.monotonic() + timeout
    ready: set[str] = set()
    while waiting and time.monotonic() < deadline:
        models = {m["name"]: m for m in api.users() if m["name"] in waiting}
        for user in list(waiting):
            server = (models.get(user, {}).get("servers") or {}).get("")
            if server and server.get("ready"):
                ready.add(user)
                waiting.remove(user)
            elif not server:
                failed[user] = "the server stopped while starting (see invoke logs --user NAME)"
                waiting.remove(user)
        progress("servers ready", len(ready), len(users))
        if waiting:
            time.sleep(1)
    failed.update({u: f"not ready after {timeout:.0f}s" for u in waiting})
    return failed


def stop(api: hubapi.HubAPI, users: list[str], progress: Progress, timeout: float = 120) -> None:
    """Stop the users' servers (their containers go; their files are in volumes and stay) and
    wait until the hub lists none of them as running."""
    for user in users:
        api.call("DELETE", f"/users/{user}/server")
    deadline = time.monotonic() + timeout
    while (left := set(users) & set(api.running())) and time.monotonic() < deadline:
        progress("servers stopped", len(users) - len(left), len(users))
        time.sleep(0.5)
    if left:
        raise UserError(f"not stopped after {timeout:.0f}s: {', '.join(sorted(left))}; see "
                        "invoke logs --user NAME, and invoke logs for the hub's")  # fmt: skip
    progress("servers stopped", len(users), len(users))


def hold(api: hubapi.HubAPI, users: list[str], until: float, every: float, echo: Echo) -> int:
    """Report activity for the users' servers every `every` seconds until `until` (epoch
    seconds); returns how many reports were sent."""
    sent = 0
    while time.time() < until:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat()
        body = {"last_activity": stamp, "servers": {"": {"last_activity": stamp}}}
        for user in users:
            try:
                api.call("POST", f"/users/{user}/activity", json=body)
                sent += 1
            except UserError as exc:  # a server stopped meanwhile: nothing to hold
                echo(f"   {user}: {exc}")
        time.sleep(max(0.0, min(every, until - time.time())))
    return sent
