"""Backups of one hub and their restore: what a backup holds, its manifest, and the checks.

A backup is one folder, `<BACKUP_DIR>/<hub>-<UTC date and time>/`:

    manifest.json      the hub, when, what kind of database, which users, and every file below
                       with its size, mode and SHA-256
    manifest.sha256    the manifest's own checksum, so a damaged manifest is caught as well
    checkout/          .env, userlist and secrets/ (credentials.json holds the passwords)
    database/          jupyterhub.sqlite: a consistent copy (SQLite's online backup), or
                       jupyterhub.dump: pg_dump's custom format (HUB_DB=postgres)
    volumes/NAME.tar.gz  each user, group and shared-data volume, owners and modes kept

Rules that hold here:
- A backup is taken while the hub runs and never stops it. It is written as `NAME.partial` and
  renamed once complete, so a backup that failed half way never looks like one that did not.
  The folder is 0700 and its files 0600: it holds the secrets and every student's files.
- Restore checks every file against the manifest before it changes anything, and refuses a
  damaged backup naming the file. It never overwrites: a volume that exists stops it, and a
  checkout file that differs from the backup's is kept beside it as `NAME.before-restore`.
- The engine (`runtime.Runtime`) reads and writes the volumes and the database copy; on Docker
  through a container that is created but never started (Docker's archive API), so no program
  runs on the students' files. What is in a backup, and its checks, are decided here.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import hubfile, names
from .console import Echo, Progress, human_size
from .errors import UserError
from .files import ensure_private_dir, write_atomic
from .inputs.roster import Roster
from .inputs.settings import Settings
from .paths import Paths
from .runtime import Runtime

FORMAT = 1
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
CHECKOUT = "checkout"
DATABASE = "database"
VOLUMES = "volumes"
DUMP_FILE = "jupyterhub.dump"  # in DATABASE: pg_dump's custom format (HUB_DB=postgres)
CHUNK = 1024 * 1024
NEARLY_FULL = 1024 * 1024  # bytes free: a backup that failed with less left ran out of room


@dataclass(frozen=True)
class Manifest:
    hub: str
    created: str
    database: str  # "sqlite" or "postgres"
    users: list[str]  # the users whose homes are in it
    complete: bool  # False when made with --users
    volumes: dict[str, str]  # volume name -> kind (user, group, shared)
    files: dict[str, dict]  # path in the folder -> {size, sha256, mode}

    def to_json(self) -> str:
        data = {"format": FORMAT, **self.__dict__}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def default_folder(settings: Settings, suffix: str = "") -> Path:
    """BACKUP_DIR/<hub>-<UTC date>-<time><suffix>."""
    now = dt.datetime.now(dt.timezone.utc)
    return settings.backup_dir / f"{settings.hub_name}-{now:%Y%m%d-%H%M%S}{suffix}"


# --- what goes in ------------------------------------------------------------------------------


def volumes_to_save(
    rt: Runtime, settings: Settings, roster: Roster, users: list[str] | None
) -> dict[str, str]:
    """The volumes a backup holds (name -> kind): every user's home, every group's folder and the
    shared data volume; with `users`, only those users' homes. Volumes of users no longer on the
    roster are this hub's too and go in a full backup."""
    hub = settings.hub_name
    have = rt.volume_names()
    if users is not None:
        return {names.user_volume(hub, u): "user" for u in users}
    wanted = roster.volumes(hub)
    for name in rt.detached_volumes(roster):
        wanted[name] = "group" if name.startswith(names.group_volume(hub, "")) else "user"
    if settings.shared_data and not settings.shared_data.startswith("/"):
        wanted[settings.shared_data] = "shared"
    return {name: kind for name, kind in sorted(wanted.items()) if name in have}


def checkout_files(paths: Paths) -> list[Path]:
    """The checkout's own files a backup holds: settings, roster and every secret."""
    found = [p for p in (paths.env_file, paths.userlist) if p.is_file()]
    if paths.secrets_dir.is_dir():
        found += sorted(p for p in paths.secrets_dir.rglob("*") if p.is_file())
    return found


# --- writing a backup --------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def write(
    rt: Runtime,
    paths: Paths,
    settings: Settings,
    roster: Roster,
    folder: Path,
    echo: Echo,
    users: list[str] | None = None,
) -> Manifest:
    """Write a backup into `folder` (which must not exist); returns its manifest."""
    if folder.exists():
        raise UserError(f"{folder} already exists; choose another folder")
    hub = settings.hub_name
    volumes = volumes_to_save(rt, settings, roster, users)
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # our own leftover from a failed run: never a finished backup
    # A missing BACKUP_DIR is made private; an existing folder (say /srv) is never changed.
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    ensure_private_dir(partial)
    try:
        for source in checkout_files(paths):
            target = partial / CHECKOUT / source.relative_to(paths.root)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(source, target)
        echo("   settings, roster and secrets: copied")
        if users is None:  # a backup of some users holds their homes only
            (partial / DATABASE).mkdir(mode=0o700)
            rt.save_database(settings, partial / DATABASE)
            echo(f"   hub database ({settings.hub_db}): copied")
        (partial / VOLUMES).mkdir(mode=0o700)
        total = len(volumes)
        for index, volume in enumerate(volumes, 1):
            size = rt.save_volume(volume, partial / VOLUMES / f"{volume}.tar.gz")
            echo(f"   volume {index}/{total}: {volume} ({human_size(size)})")
        manifest = Manifest(
            hub=hub,
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            database=settings.hub_db,
            users=sorted(users) if users is not None else list(roster.names),
            complete=users is None,
            volumes=volumes,
            files=describe(partial),
        )
        seal(partial, manifest)
        for path in partial.rglob("*"):  # the manifest keeps each checkout file's own mode
            if path.is_file():
                path.chmod(0o600)
        partial.rename(folder)
    except BaseException as exc:
        written, full = _size(partial), _full(exc, folder.parent)
        shutil.rmtree(partial, ignore_errors=True)
        if full:
            free = shutil.disk_usage(folder.parent).free
            raise UserError(
                f"{folder.parent} is full ({human_size(free)} free): the backup had written "
                f"{human_size(written)} when it ran out of room, and what it wrote is removed "
                "(the hub kept running). Free some space there, or back up into a folder with "
                "more room: BACKUP_DIR in .env, or invoke backup --to DIR"
            ) from None
        raise
    return manifest


def _full(exc: BaseException, where: Path) -> bool:
    """Whether the backup failed because its disk is full: the error says so, here or in a
    container that wrote there (sqlite says "database or disk is full"), or the disk has almost
    nothing left."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(where).free < NEARLY_FULL
    except OSError:
        return False


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def seal(folder: Path, manifest: Manifest) -> None:
    """Write the manifest and its own checksum into `folder`."""
    text = manifest.to_json()
    write_atomic(folder / MANIFEST, text, mode=0o600)
    checksum = hashlib.sha256(text.encode()).hexdigest()
    write_atomic(folder / MANIFEST_SUM, f"{checksum}  {MANIFEST}\n", mode=0o600)


def describe(folder: Path) -> dict[str, dict]:
    """Every file under `folder`: its path in the folder -> {size, sha256, mode}."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            relative = path.relative_to(folder).as_posix()
            mode = path.stat().st_mode & 0o777
            files[relative] = {"size": path.stat().st_size, "sha256": sha256_file(path),
                               "mode": f"{mode:04o}"}  # fmt: skip
    return files


# --- checking and reading one --------------------------------------------------------------------


def verify(folder: Path, progress: Progress | None = None) -> Manifest:
    """The backup's manifest, once every file in it has its recorded size and checksum; an error
    naming the first file that does not."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such backup folder")
    if folder.name.endswith(".partial"):
        raise UserError(f"{folder}: a backup that did not finish (it was interrupted, or its disk "
                        "filled), so it cannot be restored; restore a finished one, or take a new "
                        "one with invoke backup, which removes this folder")  # fmt: skip
    manifest_path, sum_path = folder / MANIFEST, folder / MANIFEST_SUM
    for path in (manifest_path, sum_path):
        if not path.is_file():
            raise UserError(f"{path}: missing, so this is not a whole classhub backup")
    text = manifest_path.read_bytes()
    recorded = sum_path.read_text(encoding="utf-8", errors="replace").split(" ", 1)[0].strip()
    if hashlib.sha256(text).hexdigest() != recorded:
        raise UserError(f"{manifest_path}: damaged (its checksum does not match {MANIFEST_SUM}); "
                        "nothing was restored")  # fmt: skip
    try:
        data = json.loads(text)
        if data.pop("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        manifest = Manifest(**data)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{manifest_path}: not a manifest this classhub reads ({exc})") from None
    total = len(manifest.files)
    for index, (relative, entry) in enumerate(sorted(manifest.files.items()), 1):
        path = folder / relative
        if not _inside(folder, path) or not path.is_file():
            raise UserError(f"{path}: missing from the backup; nothing was restored")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise UserError(
                f"{path}: damaged (its size or checksum differs from the manifest's); "
                "nothing was restored. Restore from another backup"
            )
        if progress:
            progress("checking the backup's files", index, total)
    return manifest


def _inside(folder: Path, path: Path) -> bool:
    return os.path.commonpath([folder.resolve(), path.resolve()]) == str(folder.resolve())


def database_copy(folder: Path, manifest: Manifest) -> Path:
    name = DUMP_FILE if manifest.database == "postgres" else hubfile.SQLITE_FILE
    return folder / DATABASE / name


# --- restoring ---------------------------------------------------------------------------------


def existing_volumes(rt: Runtime, hub: str, manifest: Manifest) -> list[str]:
    """Volumes a restore would make that already exist (restore never writes over one)."""
    have = rt.volume_names()
    wanted = list(manifest.volumes)
    if manifest.complete:
        wanted += [names.hub_data_volume(hub), names.db_volume(hub)]
    return sorted(name for name in wanted if name in have)


RESTORING = "restoring.json"  # in state/ while a restore is under way; gone once it finished
RESTORING_DATA, ONLY_SETUP_LEFT = "restoring", "setup"  # its stages


def begin_restore(
    paths: Paths, source: Path, manifest: Manifest, stage: str = RESTORING_DATA
) -> None:
    """Note in the checkout that a restore of this backup is under way, and at which stage:
    while it restores files and the database, the tasks that would make volumes or start the
    hub refuse; if it is interrupted, the next restore of the same backup finishes it (what it
    made is filled again). Once only setup is left, setup may finish it too."""
    record = {"backup": str(source), "hub": manifest.hub, "created": manifest.created,
              "stage": stage}  # fmt: skip
    ensure_private_dir(paths.state_dir)
    write_atomic(paths.state_dir / RESTORING, json.dumps(record) + "\n", mode=0o600)


def unfinished_restore(paths: Paths) -> dict | None:
    """The restore under way in this checkout (or one that was interrupted), else None."""
    try:
        return json.loads((paths.state_dir / RESTORING).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{paths.show(paths.state_dir / RESTORING)} cannot be read ({exc}); "
                        "delete it once no restore runs") from None  # fmt: skip


def end_restore(paths: Paths) -> None:
    (paths.state_dir / RESTORING).unlink(missing_ok=True)


def refuse_while_restoring(paths: Paths) -> None:
    """An error when a restore did not finish: volumes made or the hub started now would stand
    in the way of (or beside) what it restores."""
    found = unfinished_restore(paths)
    if found is not None and found.get("stage") != ONLY_SETUP_LEFT:
        raise UserError(
            f"the restore of {found['backup']} (hub {found['hub']}) did not finish: run invoke "
            f"restore {found['backup']} again, which finishes it (its last step is setup). "
            "Nothing was changed"
        )


def restore_checkout(folder: Path, manifest: Manifest, paths: Paths, echo: Echo) -> None:
    """Put the backup's .env, userlist and secrets in the checkout with the modes they had. A
    file there that differs is kept beside it as NAME.before-restore; secrets/ is 0700 and its
    files 0600 whatever they were."""
    prefix = f"{CHECKOUT}/"
    for name, entry in sorted(manifest.files.items()):
        if not name.startswith(prefix):
            continue
        source, relative = folder / name, Path(name.removeprefix(prefix))
        target = paths.root / relative
        if relative.parts[0] == "secrets":
            ensure_private_dir(target.parent)
        if target.exists():
            if target.read_bytes() == source.read_bytes():
                continue
            kept = target.with_name(target.name + ".before-restore")
            os.replace(target, kept)
            echo(f"   {paths.show(target)}: differed from the backup's, kept as {kept.name}")
        mode = int(entry["mode"], 8)
        mode = 0o600 if relative.parts[0] == "secrets" else mode
        data = source.read_bytes()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(target, mode)
