"""Course materials: hand them out into students' homes (or group folders), collect them back,
return feedback. The tasks `handout`, `collect` and `return` (docs/assignments.md).

What each keeps on the server, in `assignments/<NAME>/` of the checkout (0700, never committed):

    handout.json          what was handed to whom: each target's files with the SHA-256 of the
                          version it was last given, so a second handout tells a file the student
                          changed from one they left alone
    collected-<time>/     one collect: `<who>/...` (the regular files of each `~/NAME`), and
                          submissions.csv and files.csv

Rules that hold here:
- A student's file is never overwritten once it differs from what was handed to them: the new
  version goes beside it (`<stem>.updated-<date>-<time><suffix>`), and the task says so.
- Collect reads the folders through a read-only mount and writes nothing into them. Only regular
  files are collected; links, devices and files above a size limit are listed, not copied.
- Every name, group and path is checked before anything is written, so bad input changes nothing.
- Files reach the volumes through the engine (`Runtime.read_folder`, `Runtime.write_files`):
  no program runs on a student's files, and a student who never logged in gets them as well.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import posixpath
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from . import hubfile, names
from .console import Echo, Progress, human_size
from .errors import UserError
from .files import ensure_private_dir, write_atomic
from .inputs.roster import Roster
from .paths import Paths
from .runtime import Folder, Runtime

RECORD = "handout.json"
FEEDBACK = "feedback"  # inside ~/NAME: what `return` puts there, never collected
MAX_FILE = 100 * 1024**2  # collect skips a file larger than this (--max-size)
MAX_SOURCE = 500 * 1024**2  # a handout larger than this is refused: a mistake, not material
NOT_MATERIAL = {".git", ".ipynb_checkpoints", "__pycache__", ".DS_Store"}
CLONE_TIMEOUT = 120  # seconds git may take to clone a repository
FILE_MODE = {"user": 0o644, "group": 0o664}  # as JupyterLab makes them there (umask 002 in groups)
_ASSIGNMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def folder_of(paths: Paths, name: str) -> Path:
    return paths.root / "assignments" / name


# --- what is handed out ------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The material, read once: each file's path (posix, inside NAME/) and content."""

    where: str
    files: dict[str, bytes]
    left_out: tuple[str, ...] = ()  # links and the like, not handed out


def check_name(name: str, option: str = "NAME") -> str:
    """An assignment's name: one folder name a student sees in their home."""
    if not _ASSIGNMENT.fullmatch(name):
        raise UserError(
            f"{option} {name!r}: not a folder name classhub hands out; use letters, digits, "
            "'.', '_' and '-' (e.g. week1 or lab-2)"
        )
    return name


def looks_like_git(text: str) -> bool:
    return "://" in text or text.startswith("git@") or text.endswith(".git")


def read_source(text: str, cwd: Path) -> Source:
    """SOURCE as `handout` takes it: a folder on this server, or a git repository (an address
    or the path of one) that is cloned, its newest commit, without its history."""
    folder = Path(text).expanduser()
    folder = folder if folder.is_absolute() else cwd / folder
    if folder.is_dir() and not _bare_repository(folder):
        return _read_folder(folder, text)  # a working tree's files as they are, edits and all
    if not folder.exists() and not looks_like_git(text):
        raise UserError(
            f"SOURCE {text}: no such folder on this server ({folder}); give a folder of the "
            "material, or a git repository's address (https://... or git@...)"
        )
    if folder.exists() and not folder.is_dir():
        raise UserError(f"SOURCE {text}: is a file, not a folder; give the folder that holds it")
    with tempfile.TemporaryDirectory(prefix="classhub-handout-") as scratch:
        target = Path(scratch) / "material"
        where = str(folder) if folder.exists() else text
        try:
            done = subprocess.run(
                ["git", "clone", "--quiet", "--depth", "1", "--", where, str(target)],
                capture_output=True, text=True, timeout=CLONE_TIMEOUT, check=False,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            )  # fmt: skip
        except FileNotFoundError:
            raise UserError(
                f"SOURCE {text}: a git repository, and git is not installed on this server; "
                "install it (apt-get install git) or give a folder"
            ) from None
        except subprocess.TimeoutExpired:
            raise UserError(
                f"SOURCE {text}: git could not clone it in {CLONE_TIMEOUT}s; check that this "
                "server reaches the address"
            ) from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["(nothing)"])[-1]
            raise UserError(
                f"SOURCE {text}: git could not clone it ({said}); check the address, that this "
                "server reaches it and that it needs no password"
            )
        return _read_folder(target, text)


def _bare_repository(folder: Path) -> bool:
    return (folder / "HEAD").is_file() and (folder / "objects").is_dir()


def _read_folder(folder: Path, shown: str) -> Source:
    files: dict[str, bytes] = {}
    left_out: list[str] = []
    total = 0
    for here, dirs, found in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in NOT_MATERIAL)
        for entry in sorted(dirs):
            if (Path(here) / entry).is_symlink():
                left_out.append(_relative(folder, Path(here) / entry))
                dirs.remove(entry)
        for entry in sorted(found):
            path = Path(here) / entry
            if entry in NOT_MATERIAL:
                continue
            if path.is_symlink() or not path.is_file():
                left_out.append(_relative(folder, path))
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                unreadable = _relative(folder, path)
                raise UserError(
                    f"SOURCE {shown}: {unreadable} cannot be read ({exc.strerror}); make it "
                    "readable, then hand out again"
                ) from None
            total += len(data)
            if total > MAX_SOURCE:
                raise UserError(
                    f"SOURCE {shown}: more than {human_size(MAX_SOURCE)} of files; hand out the "
                    "material, and put large data in the shared folder (SHARED_DATA) instead"
                )
            files[_relative(folder, path)] = data
    if not files:
        raise UserError(f"SOURCE {shown}: holds no files to hand out")
    return Source(shown, files, tuple(left_out))


def _relative(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


# --- who gets it -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A student's home, or a group's folder."""

    who: str
    kind: str  # "user" or "group", as names' volume kinds
    volume: str

    @property
    def key(self) -> str:
        return self.who if self.kind == "user" else f"group:{self.who}"


def targets(
    roster: Roster, hub: str, group: str, users: Iterable[str], group_folder: bool
) -> list[Target]:
    """The homes (or, with `group_folder`, group folders) chosen: a group's members or named
    users; every student who is not an admin when neither is given."""
    users = [u.strip().lower() for u in users if u.strip()]
    groups = roster.groups()
    if group and group.lower() not in groups:
        raise UserError(
            f"--to {group}: no such group in userlist (groups: {', '.join(groups) or 'none'})"
        )
    if group_folder:
        if users:
            raise UserError("into group folders, handout takes --to GROUP, not --users")
        chosen = [group.lower()] if group else list(groups)
        if not chosen:
            raise UserError("no group folders to hand out into: userlist has no groups")
        return [Target(g, "group", names.group_volume(hub, g)) for g in chosen]
    unknown = [u for u in users if roster.get(u) is None]
    if unknown:
        raise UserError(f"--users: {', '.join(unknown)} not on the roster (userlist)")
    picked = list(groups[group.lower()]) if group else []
    picked += users
    if not group and not users:
        picked = [u.name for u in roster.users if not u.admin]
    if not picked:
        raise UserError(
            "nobody to hand out to: the group has no members, or every user is an admin; "
            "name them with --users a,b"
        )
    return [Target(u, "user", names.user_volume(hub, u)) for u in dict.fromkeys(picked)]


def missing_volumes(rt: Runtime, chosen: list[Target]) -> None:
    """Refuse when a chosen home or group folder is not made yet (nothing is written)."""
    have = rt.volume_names()
    missing = [t.key for t in chosen if t.volume not in have]
    if missing:
        raise UserError(
            f"no home or group folder yet for {', '.join(missing)}: run invoke sync (it makes "
            "them for everyone on userlist), then hand out again"
        )


# --- what a folder holds now -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "folder" or "other" (a link, a device, ...)
    sha256: str = ""
    size: int = 0
    mtime: float = 0.0


@dataclass(frozen=True)
class Found:
    """What a target's NAME/ holds: whether it is a folder (MISSING, or OTHER: NAME itself is
    a file or a link), and each entry below it."""

    state: Folder
    entries: dict[str, Entry] = field(default_factory=dict)


def look(rt: Runtime, target: Target, name: str, keep: Path | None = None,
         max_size: int = MAX_FILE) -> Found:  # fmt: skip
    """What `name/` in the target's volume holds; with `keep`, its regular files up to
    `max_size` are also copied there (collect)."""
    with rt.read_folder(target.volume, name) as (state, stream):
        if state is not Folder.FOLDER or stream is None:
            return Found(state)
        return Found(Folder.FOLDER, dict(_entries(stream, keep, max_size)))


def _entries(stream: BinaryIO, keep: Path | None, max_size: int) -> Iterator[tuple[str, Entry]]:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = _inside(member.name)
            if path is None:
                continue
            if member.isdir():
                yield path, Entry("folder", mtime=member.mtime)
            elif not member.isreg():
                yield path, Entry("other", mtime=member.mtime)
            else:
                digest = hashlib.sha256()
                handle = tar.extractfile(member)
                target = None
                if (keep is not None and member.size <= max_size and not _is_feedback(path)
                        and not _not_material(path)):  # fmt: skip
                    target = keep / path
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                copy = target.open("wb") if target is not None else None
                try:
                    while handle is not None and (chunk := handle.read(1024 * 1024)):
                        digest.update(chunk)
                        if copy is not None:
                            copy.write(chunk)
                finally:
                    if copy is not None and target is not None:
                        copy.close()
                        os.utime(target, (member.mtime, member.mtime))
                yield path, Entry("file", digest.hexdigest(), member.size, member.mtime)


def _inside(name: str) -> str | None:
    """A tar entry's path below the archived folder (its first part is the folder's own name);
    None for the folder itself and for anything that would leave it."""
    parts = PurePosixPath(posixpath.normpath(name)).parts[1:]
    if not parts or any(p in ("..", "") for p in parts) or name.startswith("/"):
        return None
    return "/".join(parts)


def _not_material(path: str) -> bool:
    """JupyterLab's checkpoints and the like: neither handed out nor collected."""
    return any(part in NOT_MATERIAL for part in path.split("/"))


def _is_feedback(path: str) -> bool:
    return path == FEEDBACK or path.startswith(f"{FEEDBACK}/")


# --- handing out -------------------------------------------------------------------------------

NEW, UPDATED, SAME, KEPT, RESTORED, BLOCKED = (
    "new", "updated", "unchanged", "kept yours", "restored", "not handed out",
)  # fmt: skip


@dataclass(frozen=True)
class Delivery:
    """What a handout does to one target: the files it writes (path in NAME/ -> content), each
    file's outcome, and the record to keep once written."""

    target: Target
    writes: dict[str, bytes]
    outcomes: tuple[tuple[str, str, str], ...]  # (path, what happened, a note)
    given: dict[str, str]  # path -> SHA-256 of the version this target was last given
    folders: tuple[str, ...]  # folders to make (not there yet), NAME itself first when new
    problem: str = ""  # why nothing could be handed to this target

    def count(self, what: str) -> int:
        return sum(1 for _, done, _ in self.outcomes if done == what)


def plan_delivery(source: Source, found: Found, given: dict[str, str], target: Target,
                  name: str, stamp: str) -> Delivery:  # fmt: skip
    """The pure decision, file by file (docs/assignments.md has the table)."""
    if found.state is Folder.OTHER:
        return Delivery(target, {}, (), given, (), problem=(
            f"~/{name} is a file or a link of theirs, not a folder; rename it, then hand out again"
        ))  # fmt: skip
    entries = found.entries
    writes: dict[str, bytes] = {}
    outcomes: list[tuple[str, str, str]] = []
    record = dict(given)
    for path, data in sorted(source.files.items()):
        digest = hashlib.sha256(data).hexdigest()
        theirs = entries.get(path)
        blocked = _blocked(path, entries)
        if blocked:
            outcomes.append((path, BLOCKED, f"their {blocked} is in the way"))
            continue
        before = given.get(path)
        if theirs is None:
            writes[path] = data
            outcomes.append((path, RESTORED if before else NEW, ""))
        elif theirs.kind == "file" and theirs.sha256 == digest:
            outcomes.append((path, SAME, ""))
        elif theirs.kind == "file" and before is not None and theirs.sha256 == before:
            writes[path] = data
            outcomes.append((path, UPDATED, ""))
        elif before == digest:
            outcomes.append((path, SAME, "their own changes kept"))
        else:
            beside = _beside(path, stamp, entries, writes)
            writes[beside] = data
            outcomes.append((path, KEPT, f"the new version is beside it as {beside}"))
        record[path] = digest
    folders = _new_folders(writes, entries, found.state is Folder.FOLDER)
    return Delivery(target, writes, tuple(outcomes), record, folders)


def _blocked(path: str, entries: dict[str, Entry]) -> str:
    """The student's file or link that sits where a folder of `path` must be ('' when none)."""
    parts = path.split("/")
    for end in range(1, len(parts)):
        above = "/".join(parts[:end])
        if above in entries and entries[above].kind != "folder":
            return above
    return ""


def _beside(path: str, stamp: str, entries: dict[str, Entry], writes: dict[str, bytes]) -> str:
    pure = PurePosixPath(path)
    suffix = "".join(pure.suffixes[-1:])
    stem = pure.name[: len(pure.name) - len(suffix)] if suffix else pure.name
    for n in range(1, 1000):
        tail = f".updated-{stamp}" + (f"-{n}" if n > 1 else "")
        candidate = str(pure.with_name(f"{stem}{tail}{suffix}"))
        if candidate not in entries and candidate not in writes:
            return candidate
    raise UserError(f"{path}: a thousand updated versions beside it already; tidy them first")


def _new_folders(writes: dict[str, bytes], entries: dict[str, Entry], exists: bool
                 ) -> tuple[str, ...]:  # fmt: skip
    """The folders the writes need that are not there ('' is NAME itself)."""
    needed = set() if exists else {""}
    for path in writes:
        parts = path.split("/")[:-1]
        needed.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return tuple(sorted(f for f in needed if f == "" or f not in entries))


def archive(name: str, kind: str, folders: Iterable[str], writes: dict[str, bytes]) -> bytes:
    """The tar `Runtime.write_files` unpacks at a volume's root: NAME/... owned by the students'
    user (jovyan), with the modes JupyterLab gives files there. Folders that exist are not in
    it, so their owner and mode stay as the student left them."""
    uid, gid = hubfile.FOLDER_OWNER
    now = dt.datetime.now().timestamp()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in folders:
            info = tarfile.TarInfo(f"{name}/{folder}".rstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, hubfile.FOLDER_MODES[kind]
            info.uid, info.gid, info.mtime = uid, gid, now
            tar.addfile(info)
        for path, data in sorted(writes.items()):
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size, info.mode, info.uid, info.gid, info.mtime = (
                len(data), FILE_MODE[kind], uid, gid, now,
            )  # fmt: skip
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Record:
    """assignments/NAME/handout.json."""

    name: str
    source: str = ""
    given: dict[str, dict[str, str]] = field(default_factory=dict)  # target key -> path -> sha
    when: dict[str, str] = field(default_factory=dict)  # target key -> last handed out (ISO)

    @classmethod
    def read(cls, paths: Paths, name: str) -> Record | None:
        path = folder_of(paths, name) / RECORD
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            raise UserError(
                f"{path} is damaged (not JSON); move it away to hand {name} out afresh (every "
                "file a student changed will then be kept, the new version beside it)"
            ) from None
        return cls(name, data.get("source", ""), data.get("given", {}), data.get("when", {}))

    def write(self, paths: Paths) -> None:
        folder = folder_of(paths, self.name)
        ensure_private_dir(folder.parent)
        ensure_private_dir(folder)
        data = {"source": self.source, "given": self.given, "when": self.when}
        write_atomic(folder / RECORD, json.dumps(data, indent=1, sort_keys=True) + "\n", 0o600)


def known(paths: Paths) -> list[str]:
    """Every assignment handed out from this checkout."""
    top = paths.root / "assignments"
    return sorted(p.parent.name for p in top.glob(f"*/{RECORD}")) if top.is_dir() else []


def handout(paths: Paths, rt: Runtime, source: Source, name: str, chosen: list[Target],
            dry_run: bool, progress: Progress) -> list[Delivery]:  # fmt: skip
    """Look at every target, decide, and (unless `dry_run`) write each one's files and then
    its record. A target that cannot be handed to is reported and left as it was."""
    record = Record.read(paths, name) or Record(name)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M")
    done: list[Delivery] = []
    for number, target in enumerate(chosen, 1):
        found = look(rt, target, name)
        delivery = plan_delivery(source, found, record.given.get(target.key, {}), target,
                                 name, stamp)  # fmt: skip
        if not dry_run and not delivery.problem:
            if delivery.writes or delivery.folders:
                rt.write_files(target.volume, archive(name, target.kind, delivery.folders,
                                                      delivery.writes))  # fmt: skip
            record.source = source.where
            record.given[target.key] = delivery.given
            record.when[target.key] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            record.write(paths)
        done.append(delivery)
        progress("handing out", number, len(chosen))
    return done


def report(deliveries: list[Delivery], name: str, echo: Echo) -> None:
    """One line per target, then each file that was not simply new or unchanged."""
    for d in deliveries:
        if d.problem:
            echo(f"  {d.target.key}: nothing handed out: {d.problem}")
            continue
        counts = [f"{d.count(w)} {w}" for w in (NEW, UPDATED, RESTORED, KEPT, SAME, BLOCKED)
                  if d.count(w)]  # fmt: skip
        echo(f"  {d.target.key}: {', '.join(counts)}")
        for path, what, note in d.outcomes:
            if what in (KEPT, RESTORED, BLOCKED):
                echo(f"      {name}/{path}: {what}" + (f"; {note}" if note else ""))


# --- collecting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handed:
    """One target's collected folder. A file still as it was handed out is collected (a grader
    needs the whole folder) but is not work handed in: it neither hands in nor makes late."""

    target: Target
    files: dict[str, Entry]
    skipped: tuple[tuple[str, str], ...]  # (path, why)
    changed: frozenset[str] = frozenset()  # the files that differ from what was handed out

    def newest(self) -> float | None:
        times = [self.files[p].mtime for p in self.changed]
        return max(times) if times else None

    def late(self, due: dt.datetime | None) -> bool:
        newest = self.newest()
        return due is not None and newest is not None and newest > due.timestamp()


def parse_due(text: str, now: dt.datetime) -> dt.datetime:
    """--due: 'YYYY-MM-DD HH:MM' (or with a T), or HH:MM today, this server's local time."""
    for form in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(text.strip(), form).astimezone()
        except ValueError:
            pass
    try:
        clock = dt.datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise UserError(
            f"--due {text}: not a time; write it as 'YYYY-MM-DD HH:MM' or HH:MM (today), this "
            "server's local time, e.g. --due '2026-12-01 17:00'"
        ) from None
    return now.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)


def handed_out(paths: Paths, name: str) -> Record:
    """The record of handout `name`; an error naming those handed out when there is none."""
    record = Record.read(paths, name)
    if record is None:
        listed = ", ".join(known(paths)) or "none yet"
        raise UserError(
            f"no handout named {name} (handed out so far: {listed}); hand it out first: "
            f"invoke handout SOURCE --as {name}"
        )
    return record


def collect_targets(record: Record, roster: Roster, hub: str, name: str, groups: bool
                    ) -> list[Target]:  # fmt: skip
    """Whom a collect reads: everyone this assignment was handed to (their homes, or with
    `groups` their groups' folders) who is still on the roster."""
    kind = "group" if groups else "user"
    keys = [k for k in record.given if (k.startswith("group:") == groups)]
    whos = [k.removeprefix("group:") for k in keys]
    if groups:
        current = roster.groups()
        chosen = [Target(g, kind, names.group_volume(hub, g)) for g in whos if g in current]
    else:
        chosen = [Target(u, kind, names.user_volume(hub, u)) for u in whos if roster.get(u)]
    if not chosen:
        where = "group folders" if groups else "homes"
        other = "without --groups" if groups else "with --groups"
        raise UserError(f"{name} was not handed into any {where} still on the roster; try {other}")
    return chosen


def collect(rt: Runtime, chosen: list[Target], name: str, folder: Path, max_size: int,
            given: dict[str, dict[str, str]], progress: Progress) -> list[Handed]:  # fmt: skip
    """Copy each target's NAME/ (regular files up to `max_size`, not feedback/) into
    `folder/<who>/`, which is made 0700 and left for the instructor. `given`: the handout's
    record, to tell the files a student changed from those left as handed out."""
    ensure_private_dir(folder)
    handed: list[Handed] = []
    for number, target in enumerate(chosen, 1):
        keep = folder / target.who
        found = look(rt, target, name, keep, max_size)
        files, skipped = {}, []
        for path, entry in found.entries.items():
            if _is_feedback(path) or entry.kind == "folder" or _not_material(path):
                continue
            if entry.kind == "other":
                skipped.append((path, "not a regular file (a link or the like)"))
            elif entry.size > max_size:
                skipped.append(
                    (path, f"larger than {human_size(max_size)} ({human_size(entry.size)})")
                )
            else:
                files[path] = entry
        if found.state is Folder.OTHER:
            skipped.append(("", f"~/{name} is a file or a link, not a folder"))
        given_to = given.get(target.key, {})
        changed = frozenset(p for p, e in files.items() if given_to.get(p) != e.sha256)
        handed.append(Handed(target, files, tuple(skipped), changed))
        progress("collecting", number, len(chosen))
    return handed


def write_tables(folder: Path, handed: list[Handed], due: dt.datetime | None) -> None:
    """submissions.csv (one row a student or group) and files.csv (one row a file)."""

    def when(stamp: float | None) -> str:
        if stamp is None:
            return ""
        return dt.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")

    def late(stamp: float | None) -> str:
        if due is None or stamp is None:
            return ""
        return "yes" if stamp > due.timestamp() else "no"

    summary = io.StringIO()
    rows = csv.writer(summary, lineterminator="\n")
    rows.writerow(["who", "handed_in", "files_changed", "bytes", "last_changed", "late", "note"])
    for h in handed:
        note = "; ".join(f"{p or '~'}: {why}" for p, why in h.skipped)
        if not h.changed:
            nothing = "nothing handed in (no file changed since the handout)" if h.files else (
                "nothing handed in")  # fmt: skip
            note = nothing + (f"; {note}" if note else "")
        rows.writerow([h.target.who, "yes" if h.changed else "no", len(h.changed),
                       sum(h.files[p].size for p in h.changed), when(h.newest()),
                       late(h.newest()), note])  # fmt: skip
    write_atomic(folder / "submissions.csv", summary.getvalue(), 0o600)
    detail = io.StringIO()
    rows = csv.writer(detail, lineterminator="\n")
    rows.writerow(["who", "file", "bytes", "last_changed", "changed", "late", "collected"])
    for h in handed:
        for path, entry in sorted(h.files.items()):
            mine = path in h.changed
            rows.writerow([h.target.who, path, entry.size, when(entry.mtime),
                           "yes" if mine else "no (as handed out)",
                           late(entry.mtime) if mine else "", "yes"])  # fmt: skip
        for path, why in h.skipped:
            rows.writerow([h.target.who, path, "", "", "", "", f"no: {why}"])
    write_atomic(folder / "files.csv", detail.getvalue(), 0o600)


# --- giving feedback back ----------------------------------------------------------------------


def feedback_from(folder: Path, roster: Roster, hub: str, groups: bool) -> dict[Target, Source]:
    """FOLDER/<who>/... for each student (or group): checked whole before anything is written."""
    if not folder.is_dir():
        raise UserError(f"FOLDER {folder}: no such folder on this server")
    found: dict[Target, Source] = {}
    unknown: list[str] = []
    current = roster.groups()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        who = sub.name.lower()
        if groups and who in current:
            target = Target(who, "group", names.group_volume(hub, who))
        elif not groups and roster.get(who) is not None:
            target = Target(who, "user", names.user_volume(hub, who))
        else:
            unknown.append(sub.name)
            continue
        if any(p.is_file() for p in sub.rglob("*")):  # an empty folder: nothing for them
            found[target] = _read_folder(sub, str(sub))
    if unknown:
        kind = "groups" if groups else "users"
        raise UserError(
            f"FOLDER {folder}: {', '.join(unknown)} not {kind} on the roster (userlist); each "
            f"folder in it must be named for one of the roster's {kind}. Nothing was returned"
        )
    if not found:
        raise UserError(f"FOLDER {folder}: no folder named for a student with files in it")
    return found


def give_back(rt: Runtime, feedback: dict[Target, Source], name: str,
              progress: Progress) -> dict[Target, int]:  # fmt: skip
    """Write each target's feedback into NAME/feedback/ (replacing an earlier return's files of
    the same name); how many files each got."""
    given: dict[Target, int] = {}
    for number, (target, source) in enumerate(feedback.items(), 1):
        found = look(rt, target, name)
        if found.state is Folder.OTHER:
            raise UserError(f"{target.key}: ~/{name} is a file or a link, not a folder; "
                            "nothing was returned to them")  # fmt: skip
        writes = {f"{FEEDBACK}/{p}": data for p, data in source.files.items()}
        folders = _new_folders(writes, found.entries, found.state is Folder.FOLDER)
        rt.write_files(target.volume, archive(name, target.kind, folders, writes))
        given[target] = len(writes)
        progress("returning", number, len(feedback))
    return given
