"""`invoke rehearse`: the first minute of a class, rehearsed with temporary students, then removed.

N temporary users `_rehearse-01` ... (a name no roster line can take: roster names start with a
letter or digit) are added to the hub file with random passwords and given home volumes. Each
then does what a student's browser does, starting at its own moment within the ramp: posts the
login form, starts a server and waits until the hub says it is ready, opens JupyterLab (its OAuth
round trip) and runs code in a new kernel over the websocket, through the hub's proxy. The
kernel is left running, as a student leaves their notebook open, until the servers go at the end.

Times per student, each from the moment it began: login answered, server ready, kernel usable.
`summary` gives median, 95th percentile and max per phase and the failures with their reasons;
`write_json` the raw timings; `draw_timeline` a PNG with one line per student.

A sustained rehearsal (`minutes`) goes on after the start: each student keeps its notebook open
and runs a short cell (CELL, bounded in time by CELL_TIMEOUT) every `every` seconds until that
many minutes after the first login, as a class at work does; every cell's time and every failed
cell are recorded.

Rules that hold here:
- Everything a rehearsal makes is removed afterwards, also when it fails or is interrupted
  (Ctrl-C, SIGTERM): the temporary hub users (their servers stop), their containers, their
  volumes and their hub-file entries. A run that was killed outright is cleaned up by the next
  one, before it starts, and by `cleanup` alone (invoke rehearse --cleanup).
- The roster, `userlist` and `secrets/` are never touched; real users' servers are not stopped.
"""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import components, credentials, hubapi, hubfile, names, prewarm, render
from .components import Part
from .console import Echo
from .errors import UserError
from .files import write_atomic
from .inputs.roster import Roster, User
from .inputs.settings import Settings
from .paths import Paths
from .runtime import Runtime
from .student import Browser

PREFIX = "_rehearse-"
CODE = "print(sum(range(1000)))"
EXPECTED = "499500\n"
PHASES = ("login", "server ready", "kernel usable", "total")
# A sustained rehearsal's cell: a few tens of milliseconds of the kernel's CPU, and a variable kept
# between cells (a notebook's state), checked by what it prints.
CELL = "n = globals().get('n', 0) + 1; print(n, sum(i * i for i in range(100_000)))"
CELL_SUM = sum(i * i for i in range(100_000))
CELL_TIMEOUT = 60.0


@dataclass
class Timing:
    """One temporary student. `start` is seconds after the rehearsal's first login; the phase
    figures are seconds that phase took (None when it was not reached)."""

    user: str
    start: float
    login: float | None = None
    ready: float | None = None
    kernel: float | None = None
    failure: str = ""
    waited: bool = False  # waited in the hub's line for a turn to start its server
    cell_times: list[float] = field(default_factory=list)  # a sustained rehearsal's cells, each
    cell_failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> float | None:
        if self.login is None or self.ready is None or self.kernel is None:
            return None
        return self.login + self.ready + self.kernel


def temporary_users(count: int) -> list[str]:
    width = max(2, len(str(count)))
    return [f"{PREFIX}{index:0{width}d}" for index in range(1, count + 1)]


# --- adding and removing the temporary students -----------------------------------------------


def _hub_data(paths: Paths) -> dict:
    try:
        return json.loads(paths.hub_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{paths.show(paths.hub_file)} cannot be read ({exc}); run invoke setup"
        ) from None


def _write_hub_data(paths: Paths, data: dict) -> None:
    text = render.dump(data, paths.show(paths.hub_file))
    write_atomic(paths.hub_file, text, mode=0o600)


def add_students(
    paths: Paths, settings: Settings, rt: Runtime, users: list[str], echo: Echo
) -> dict[str, str]:
    """Give each temporary user a password, a hub-file entry (the hub re-reads the file; no
    restart) and a home volume; returns their passwords."""
    hub = settings.hub_name
    passwords = {user: credentials.new_password() for user in users}
    data = _hub_data(paths)
    nobody = Roster(users=())  # the hub's own limits and image, no group's
    for user, password in passwords.items():
        temporary = User(user, admin=False, groups=(), line=None)
        data["users"][user] = render.user_entry(
            settings, nobody, temporary, credentials.hash_password(password)
        )
    volumes = {names.user_volume(hub, user): "user" for user in users}
    sizes = dict.fromkeys(volumes, settings.disk_limit)
    rt.create_volumes(volumes, settings.notebook_image, echo, settings.disk_store, sizes)
    _write_hub_data(paths, data)
    return passwords


def cleanup(paths: Paths, settings: Settings, rt: Runtime, api: hubapi.HubAPI, echo: Echo) -> int:
    """Remove every temporary student: hub users (servers stopped), containers, volumes and
    hub-file entries. Returns how many objects it removed."""
    removed = 0
    data = _hub_data(paths)
    entries = [user for user in data["users"] if user.startswith(PREFIX)]
    if entries:
        for user in entries:
            del data["users"][user]
        _write_hub_data(paths, data)  # first: no temporary student can log in any more
        removed += len(entries)
    if api.answers():
        for user in [u["name"] for u in api.users() if u["name"].startswith(PREFIX)]:
            with contextlib.suppress(UserError):
                _settle(api, user)
                hubapi.remove_user(api, user)
                removed += 1
    # A spawn under way when the run stopped may still make its container: sweep until nothing
    # new has appeared for a few seconds.
    quiet_since, deadline = time.monotonic(), time.monotonic() + 120
    while time.monotonic() - quiet_since < QUIET and time.monotonic() < deadline:
        found = rt.sweep_users(PREFIX)
        removed += found
        if found:
            quiet_since = time.monotonic()
        time.sleep(0.5)
    if removed:
        echo(f"   removed {removed} object(s) of temporary students")
    return removed


QUIET = 3.0  # seconds without a new temporary container before the sweep ends


def _settle(api: hubapi.HubAPI, user: str, timeout: float = 300) -> None:
    """Wait while the user's server is starting or stopping: the hub refuses to stop a server
    whose spawn is pending, and deleting the user then would orphan its container."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = (api.call("GET", f"/users/{user}").get("servers") or {}).get("")
        if not server or not server.get("pending"):
            return
        time.sleep(1)


# --- the rehearsal -------------------------------------------------------------------------------


def student_url(settings: Settings, rt: Runtime) -> tuple[str, str | None]:
    """Where the temporary students open the hub, as (URL, address): its published port, or
    behind the bundled nginx the hub's own address (nginx would count every login from this host
    as one address). With USER_SUBDOMAINS, PUBLIC_URL sent to that address (student.Browser), so
    each server is reached at its own host name without asking DNS."""
    if components.has(settings, Part.FRONT_DOOR):
        address = f"{rt.hub_address()}:{hubfile.PROXY_PORT}"
    else:
        address = settings.upstream
    if settings.user_subdomains:
        return settings.public_url, address
    return f"http://{address}{settings.base_url}", None


def _one_student(
    url: tuple[str, str | None],
    timing: Timing,
    password: str,
    began: float,
    stop: threading.Event,
    keep_going: tuple[float, float] | None = None,
) -> None:
    """One temporary student's start, then (`keep_going`: (until, every), monotonic clock and
    seconds) its cells until `until`."""
    if stop.wait(max(0.0, began + timing.start - time.monotonic())):
        timing.failure = "not started: the rehearsal was stopped"
        return
    browser = Browser(url[0], timing.user, address=url[1])
    phase = "login"
    try:
        mark = time.monotonic()
        response = browser.login(password)
        if response.status_code != 302:
            raise UserError(f"the login form answered {response.status_code}")
        timing.login, mark = time.monotonic() - mark, time.monotonic()
        if stop.is_set():
            raise UserError("the rehearsal was stopped")
        phase = "server"
        try:
            browser.start(timeout=600)
        finally:
            timing.waited = any(_in_line(message) for message in browser.progress)
        timing.ready, mark = time.monotonic() - mark, time.monotonic()
        phase = "kernel"
        browser.open_lab()
        # The kernel stays, as a student's notebook stays open; it goes with the server at the
        # end. Shutting it down here would add load a class's first minute does not have.
        kernel_id = browser.new_kernel()
        output = browser.run_in(kernel_id, CODE, timeout=120)
        if output != EXPECTED:
            raise UserError(f"the kernel printed {output!r}, not {EXPECTED!r}")
        timing.kernel = time.monotonic() - mark
    except Exception as exc:  # a student's failure is a figure, not the rehearsal's end
        timing.failure = f"{phase}: {type(exc).__name__}: {str(exc)[:200]}"
        return
    if keep_going:
        _keep_running_cells(browser, kernel_id, timing, stop, *keep_going)


def _keep_running_cells(
    browser: Browser, kernel_id: str, timing: Timing, stop: threading.Event, until: float,
    every: float,
) -> None:  # fmt: skip
    """Run CELL in the student's open kernel every `every` seconds until `until`; a failed cell is
    recorded (its number and reason) and the next one is tried, as a student runs it again."""
    count = last = 0
    while not stop.wait(every) and time.monotonic() < until:
        count += 1
        mark = time.monotonic()
        try:
            output = browser.run_in(kernel_id, CELL, timeout=CELL_TIMEOUT)
            seen, _, total = output.strip().partition(" ")
            if total != str(CELL_SUM) or not seen.isdigit() or int(seen) <= last:
                raise UserError(f"the kernel printed {output!r} (its state lost?)")
            last = int(seen)
            timing.cell_times.append(time.monotonic() - mark)
        except Exception as exc:
            timing.cell_failures.append(f"cell {count}: {type(exc).__name__}: {str(exc)[:200]}")


def _in_line(message: str) -> bool:
    """The hub's spawn-page message while a server waits for its turn (classhub_hub/spawner.py)."""
    return message.startswith(("Waiting for a turn to start", "Next in line to start"))


@contextlib.contextmanager
def _interrupts_as_keyboard() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(
    paths: Paths,
    settings: Settings,
    rt: Runtime,
    api: hubapi.HubAPI,
    count: int,
    ramp: float,
    echo: Echo,
    prewarmed: bool = False,
    minutes: float = 0,
    every: float = 10,
) -> list[Timing]:
    """Rehearse a class start of `count` students whose logins are spread over `ramp` seconds,
    then remove everything it made (also when interrupted). `prewarmed`: their servers are
    started (as invoke prewarm does) before the first login. `minutes`: a sustained rehearsal,
    each student running a cell every `every` seconds until then (from the first login)."""
    users = temporary_users(count)
    url = student_url(settings, rt)
    stop = threading.Event()
    with _interrupts_as_keyboard():
        cleanup(paths, settings, rt, api, echo)  # what a killed run left behind
        try:
            passwords = add_students(paths, settings, rt, users, echo)  # the hub re-reads
            if prewarmed:
                echo(f"   prewarming their {count} servers ...")
                api.call("POST", "/users", json={"usernames": users})
                failed = prewarm.start(api, users, lambda *_: None)
                if failed:
                    raise UserError(f"prewarming failed: {failed}")
            step = ramp / max(1, count - 1) if count > 1 else 0.0
            timings = [Timing(user, round(index * step, 3)) for index, user in enumerate(users)]
            began = time.monotonic()
            keep_going = (began + minutes * 60, every) if minutes else None
            threads = [
                threading.Thread(target=_one_student, daemon=True,
                                 args=(url, t, passwords[t.user], began, stop, keep_going))
                for t in timings
            ]  # fmt: skip
            for thread in threads:
                thread.start()
            if keep_going:
                _report_cells(threads, timings, began, minutes, echo)
            for done, thread in enumerate(threads, 1):
                thread.join()
                echo(f"   {done}/{count} students done")
            return timings
        finally:
            echo("Removing the temporary students ...")
            stop.set()  # students not yet started stay away; those under way end at their step
            cleanup(paths, settings, rt, api, echo)


def _report_cells(
    threads: list[threading.Thread], timings: list[Timing], began: float, minutes: float, echo: Echo
) -> None:
    """A sustained rehearsal's progress, once a minute until every student is done."""
    mark = began
    while any(thread.is_alive() for thread in threads):
        time.sleep(1)
        if time.monotonic() - mark >= 60:
            mark += 60
            run = sum(len(t.cell_times) for t in timings)
            failed = sum(len(t.cell_failures) for t in timings)
            echo(f"   minute {round((mark - began) / 60)} of {minutes:g}: {run} cells run, "
                 f"{failed} failed")  # fmt: skip


# --- what it found -------------------------------------------------------------------------------


def _phase_values(timings: list[Timing], phase: str) -> list[float]:
    attr = {"login": "login", "server ready": "ready", "kernel usable": "kernel", "total": "total"}
    return [v for v in (getattr(t, attr[phase]) for t in timings) if v is not None]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _row(name: str, values: list[float], tried: int) -> tuple[str, str, str, str, str]:
    """A row of the summary: median, 95th percentile and max seconds, and how many were done."""
    if not values:
        return (name, "-", "-", "-", f"0/{tried}")
    return (name, f"{statistics.median(values):.2f}s", f"{percentile(values, 0.95):.2f}s",
            f"{max(values):.2f}s", f"{len(values)}/{tried}")  # fmt: skip


def summary(timings: list[Timing]) -> str:
    rows = [("PHASE", "MEDIAN", "95TH", "MAX", "DONE")]
    rows += [_row(phase, _phase_values(timings, phase), len(timings)) for phase in PHASES]
    cells = [value for t in timings for value in t.cell_times]
    cell_failures = [(t.user, failure) for t in timings for failure in t.cell_failures]
    if cells or cell_failures:
        rows.append(_row("each cell", cells, len(cells) + len(cell_failures)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)) for row in rows]
    waited = sum(t.waited for t in timings)
    if waited:
        lines.append(f"Waited in the hub's line for a turn to start: {waited} of {len(timings)}")
    failed = [t for t in timings if t.failure]
    lines.append(f"Failures: {len(failed)}")
    lines += [f"  {t.user}: {t.failure}" for t in failed]
    if cells or cell_failures:
        lines.append(f"Failed cells: {len(cell_failures)}")
        lines += [f"  {user}: {failure}" for user, failure in cell_failures[:20]]
        if len(cell_failures) > 20:
            lines.append(f"  ... and {len(cell_failures) - 20} more (timings.json has them all)")
    return "\n".join(line.rstrip() for line in lines)


def write_json(
    path: Path, settings: Settings, timings: list[Timing], ramp: float, minutes: float = 0,
    every: float = 0,
) -> None:  # fmt: skip
    data = {
        "hub": settings.hub_name,
        "students": len(timings),
        "ramp (s)": ramp,
        "code": CODE,
        **({"minutes": minutes, "cell every (s)": every, "cell": CELL} if minutes else {}),
        "timings (s)": [{**asdict(t), "total": t.total} for t in timings],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


COLOURS = {"login": (150, 150, 150), "spawn": (66, 133, 244), "kernel": (52, 168, 83)}


def draw_timeline(path: Path, timings: list[Timing]) -> None:
    """One line per student, left to right in seconds from the first login: grey while logging
    in, blue while the server starts, green until the kernel ran the code; a red end where a
    student failed."""
    from PIL import Image, ImageDraw

    row, left, top, width = 14, 110, 30, 900
    ends = [
        t.start + (t.total or sum(v for v in (t.login, t.ready, t.kernel) if v)) for t in timings
    ]
    span = max([*ends, 1.0]) * 1.05
    height = top + row * len(timings) + 40
    image = Image.new("RGB", (left + width + 20, height), "white")
    draw = ImageDraw.Draw(image)

    def x(seconds: float) -> float:
        return left + width * seconds / span

    tick = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if span / s <= 12)
    for second in range(0, int(span) + 1, tick):
        draw.line([(x(second), top - 5), (x(second), height - 35)], fill=(225, 225, 225))
        draw.text((x(second) - 4, height - 30), f"{second}s", fill="black")
    draw.text((left, 8), "grey: login   blue: server starting   green: kernel   red: failed",
              fill="black")  # fmt: skip
    for index, t in enumerate(timings):
        y = top + index * row + row // 2
        draw.text((5, y - 6), t.user, fill="black")
        at = t.start
        for length, colour in ((t.login, "login"), (t.ready, "spawn"), (t.kernel, "kernel")):
            if length is None:
                break
            draw.line([(x(at), y), (x(at + length), y)], fill=COLOURS[colour], width=6)
            at += length
        if t.failure:
            draw.rectangle([x(at) - 3, y - 4, x(at) + 3, y + 4], fill=(219, 68, 55))
    image.save(path)
