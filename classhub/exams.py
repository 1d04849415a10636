"""Exams: which groups' servers reach the hub alone, and until when (`state/exams.json`).

`invoke exam start` and `stop` write the file; the hub's firewall (hub/classhub_hub/firewall.py)
reads it every half second and cuts the group's servers off, or lets them out again, with no
restart; at an exam's end it lets them out by itself. Nothing else reads it but `invoke status`.

    {"format": 1, "groups": {"team-1": {"started": 1764489600, "until": 1764495000}}}

`until` is seconds since the epoch, or null for an exam that lasts until `invoke exam stop`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import hubfile
from .errors import UserError
from .files import ensure_private_dir, write_atomic
from .paths import Paths

FORMAT = 1


def path(paths: Paths) -> Path:
    return paths.state_dir / hubfile.EXAMS_FILE


def read(paths: Paths) -> dict[str, dict]:
    """Every exam the file holds, ended or not: group -> {"started", "until"}."""
    where = path(paths)
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{paths.show(where)} cannot be read ({exc}); delete it to end every "
                        "exam, then start the exams again") from None  # fmt: skip
    return dict(data.get("groups") or {})


def in_progress(paths: Paths, now: float | None = None) -> dict[str, float | None]:
    """The exams not yet ended: group -> until (None: until `invoke exam stop`)."""
    now = time.time() if now is None else now
    return {
        group: exam.get("until")
        for group, exam in sorted(read(paths).items())
        if exam.get("until") is None or now < float(exam["until"])
    }


def start(paths: Paths, group: str, until: float | None) -> bool:
    """Put `group` in an exam until `until`; whether that changed the file."""
    exams = {g: read(paths)[g] for g in in_progress(paths)}  # ended ones go
    wanted = {"started": exams.get(group, {}).get("started") or int(time.time()),
              "until": int(until) if until is not None else None}  # fmt: skip
    if exams.get(group) == wanted:
        return False
    exams[group] = wanted
    _write(paths, exams)
    return True


def stop(paths: Paths, group: str) -> bool:
    """End `group`'s exam; whether it had one in progress."""
    exams = {g: read(paths)[g] for g in in_progress(paths)}
    if group not in exams:
        return False
    del exams[group]
    _write(paths, exams)
    return True


def _write(paths: Paths, exams: dict[str, dict]) -> None:
    ensure_private_dir(paths.state_dir)
    text = json.dumps({"format": FORMAT, "groups": exams}, indent=2, sort_keys=True) + "\n"
    write_atomic(path(paths), text, mode=0o600)


def describe(until: float | None) -> str:
    """'until 11:30' (this server's clock) or 'until invoke exam stop'."""
    if until is None:
        return "until invoke exam stop"
    return f"until {time.strftime('%H:%M', time.localtime(until))}"
