"""The hub's database, either kind: a sqlite file in the hub's data volume (HUB_DB=sqlite) or
the PostgreSQL container `<hub>-db` (HUB_DB=postgres). Its copy for a backup and its restore,
the move from sqlite to PostgreSQL, and the schema upgrade a new JupyterHub needs.

Rules that hold here:
- A copy is consistent while the hub runs: SQLite's online backup API, or pg_dump.
- Nothing here deletes a database. The move to PostgreSQL copies every row (the hub stopped),
  then renames the sqlite file to `jupyterhub.sqlite.moved-to-postgres`; there is no move back,
  and a hub whose data is in PostgreSQL is not silently started on a new sqlite file.
- Work inside the engine runs in short-lived containers of the hub image, or through `docker
  exec` in the database container, never in the hub itself.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ... import backup, components, hubfile, names
from ...components import Part
from ...errors import UserError
from ...paths import Paths
from . import engine, stack

SQLITE_FILE, MOVED = hubfile.SQLITE_FILE, hubfile.SQLITE_MOVED
DUMP_FILE = backup.DUMP_FILE
DB_USER = hubfile.DB_USER
DB_NAME = hubfile.DB_NAME

# Run in a short-lived hub-image container with the data volume at /data and a host folder at
# /out: SQLite's backup API copies a consistent state while the hub writes.
SQLITE_BACKUP = """
import sqlite3
source = sqlite3.connect("file:/data/jupyterhub.sqlite?mode=ro", uri=True)
target = sqlite3.connect("/out/jupyterhub.sqlite")
source.backup(target)
target.close()
source.close()
"""


@contextlib.contextmanager
def volume_helper(client: docker.DockerClient, hub: str, volume: str, mode: str) -> Iterator:
    """A container created (never started) with `volume` at /v: Docker's archive API reads and
    writes the volume through it, and no program runs on its files."""
    container = client.containers.create(
        names.hub_image(hub), ["true"], entrypoint=[], network_disabled=True,
        volumes={volume: {"bind": "/v", "mode": mode}}, labels=names.labels(hub, "helper"),
    )  # fmt: skip
    try:
        yield container
    finally:
        container.remove(force=True)


def _file_in_volume(client: docker.DockerClient, hub: str, volume: str, name: str) -> bool:
    if not any(v.name == volume for v in client.volumes.list(filters={"name": volume})):
        return False
    with volume_helper(client, hub, volume, "ro") as container:
        try:
            stream, _ = container.get_archive(f"/v/{name}")
        except docker.errors.NotFound:
            return False
        for _ in stream:  # read to the end so the connection is released
            pass
        return True


def has_sqlite(client: docker.DockerClient, hub: str) -> bool:
    """Whether the hub's data volume holds a sqlite database (one not moved to PostgreSQL)."""
    return _file_in_volume(client, hub, names.hub_data_volume(hub), SQLITE_FILE)


def has_postgres(client: docker.DockerClient, hub: str) -> bool:
    return any(
        v.name == names.db_volume(hub)
        for v in client.volumes.list(filters={"name": names.db_volume(hub)})
    )


# --- copies for backups, and their restore ------------------------------------------------------


def save_sqlite(client: docker.DockerClient, hub: str, folder: Path) -> Path:
    """A consistent copy of the hub's sqlite database in `folder`, taken while the hub runs."""
    try:
        client.containers.run(
            names.hub_image(hub), ["python3", "-c", SQLITE_BACKUP], entrypoint=[],
            volumes={names.hub_data_volume(hub): {"bind": "/data", "mode": "rw"},
                     str(folder): {"bind": "/out", "mode": "rw"}},
            network_disabled=True, remove=True, labels=names.labels(hub, "backup"),
        )  # fmt: skip
    except docker.errors.ContainerError as exc:
        raise UserError(
            f"copying the hub database from volume {names.hub_data_volume(hub)} failed: "
            f"{engine.container_said(exc)[-500:]}"
        ) from None
    return folder / SQLITE_FILE


def _db(client: docker.DockerClient, hub: str):
    try:
        container = client.containers.get(names.db_container(hub))
    except docker.errors.NotFound:
        container = None
    if container is None or container.status != "running":
        raise UserError(f"the database container {names.db_container(hub)} is not running; "
                        "start the hub with invoke up first")  # fmt: skip
    return container


def _exec(container, command: list[str], what: str) -> None:
    result = container.exec_run(command, user="postgres")
    if result.exit_code != 0:
        raise UserError(f"{what} failed in {container.name}: "
                        f"{result.output.decode('utf-8', 'replace').strip()[-800:]}")  # fmt: skip


def save_postgres(client: docker.DockerClient, hub: str, folder: Path) -> Path:
    """pg_dump's custom-format dump of the hub's database (consistent while the hub runs)."""
    container = _db(client, hub)
    inside = f"/tmp/{DUMP_FILE}"
    _exec(container, ["pg_dump", "-Fc", "-U", DB_USER, "-d", DB_NAME, "-f", inside], "pg_dump")
    try:
        stream, _ = container.get_archive(inside)
        with tempfile.TemporaryFile() as raw:
            for chunk in stream:
                raw.write(chunk)
            raw.seek(0)
            with tarfile.open(fileobj=raw) as tar:
                member = tar.extractfile(DUMP_FILE)
                if member is None:
                    raise UserError(f"pg_dump wrote no {DUMP_FILE} in the database container")
                with (folder / DUMP_FILE).open("wb") as out:
                    while block := member.read(1024 * 1024):
                        out.write(block)
    finally:
        container.exec_run(["rm", "-f", inside], user="postgres")
    return folder / DUMP_FILE


def restore_sqlite(client: docker.DockerClient, hub: str, copy: Path, again: bool = False) -> None:
    """Create the hub's data volume holding the database copy (removed again if that fails);
    `again`: the volume an interrupted restore made is filled again."""
    volume = names.hub_data_volume(hub)
    if again and volume in stack.volume_names(client):
        with volume_helper(client, hub, volume, "rw") as container:
            container.put_archive("/v", _tar_of(copy, SQLITE_FILE))
        return
    made = client.volumes.create(volume, labels=names.labels(hub, "data"))
    try:
        with volume_helper(client, hub, made.name, "rw") as container:
            container.put_archive("/v", _tar_of(copy, SQLITE_FILE))
    except BaseException:
        made.remove(force=True)
        raise


def restore_postgres(
    client: docker.DockerClient, hub: str, dump: Path, again: bool = False
) -> None:
    """Load a dump into the hub's new, empty PostgreSQL (running, before the hub first starts);
    `again`: over what an interrupted load left (each object of the dump dropped first)."""
    container = _db(client, hub)
    container.put_archive("/tmp", _tar_of(dump, DUMP_FILE, uid=_postgres_uid(container)))
    clean = ["--clean", "--if-exists"] if again else []
    try:
        _exec(container, ["pg_restore", "--exit-on-error", "--no-owner", *clean, "-U", DB_USER,
                          "-d", DB_NAME, f"/tmp/{DUMP_FILE}"], "pg_restore")  # fmt: skip
    finally:
        container.exec_run(["rm", "-f", f"/tmp/{DUMP_FILE}"], user="root")


def _postgres_uid(container) -> int:
    return int(container.exec_run(["id", "-u", "postgres"]).output.decode().strip())


def _tar_of(path: Path, name: str, uid: int = 0) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid = path.stat().st_size, 0o600 if uid else 0o644, uid
        with path.open("rb") as handle:
            tar.addfile(info, handle)
    return buffer.getvalue()


# --- moving a hub from sqlite to PostgreSQL -------------------------------------------------------


def move_to_postgres(client: docker.DockerClient, paths: Paths, hub: str) -> str:
    """Copy every row of the sqlite database into the hub's PostgreSQL (running), in place of
    whatever an interrupted copy left there, then rename the sqlite file so the copy is not made
    twice. The hub must be stopped."""
    for leftover in stack.hub_objects(client, hub, "db-move"):
        leftover.remove(force=True)  # a killed run's copy, maybe still running: rolled back
    secret = str(paths.secrets_dir / hubfile.DB_SECRET)
    command = ["python3", "-m", "classhub_hub.dbcopy", "--source",
               "sqlite:////data/jupyterhub.sqlite", "--target-host", names.db_container(hub),
               "--password-file", "/run/classhub/postgres_password", "--replace"]  # fmt: skip
    container = client.containers.create(
        names.hub_image(hub), command, entrypoint=[], network=names.db_network(hub),
        volumes={names.hub_data_volume(hub): {"bind": "/data", "mode": "rw"},
                 secret: {"bind": "/run/classhub/postgres_password", "mode": "ro"}},
        **hubfile.HARDENING, labels=names.labels(hub, "db-move"),
    )  # fmt: skip
    try:
        container.start()
        status = container.wait(timeout=600)["StatusCode"]
        log = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    if status != 0:
        raise UserError(
            "copying the hub database from sqlite to PostgreSQL failed; the sqlite file is "
            "untouched. Set HUB_DB=sqlite in .env and run invoke setup to go on as before. "
            "The copy's log:\n" + "\n".join("   " + line for line in log.strip().splitlines()[-15:])
        )
    client.containers.run(
        names.hub_image(hub), ["mv", f"/data/{SQLITE_FILE}", f"/data/{MOVED}"], entrypoint=[],
        volumes={names.hub_data_volume(hub): {"bind": "/data", "mode": "rw"}},
        network_disabled=True, remove=True, labels=names.labels(hub, "db-move"),
    )  # fmt: skip
    return log.strip().splitlines()[-1] if log.strip() else ""


# --- the schema a new JupyterHub needs ----------------------------------------------------------


def _schema_command(client: docker.DockerClient, paths: Paths, settings, command: str) -> str:
    """Run classhub_hub.dbschema COMMAND in a one-off hub-image container that sees the database
    exactly as the hub does (its mounts; the database network with HUB_DB=postgres)."""
    hub = settings.hub_name
    service = stack.service(client, paths, settings, Part.HUB)
    # The networks of the hub's other components that hold its database (HUB_DB=postgres).
    network: dict[str, Any] = {"network_disabled": True}
    db = components.find(settings, Part.DATABASE)
    if db is not None:
        (db_network,) = db.networks
        network = {"network": db_network.name}
    container = client.containers.create(
        names.hub_image(hub), ["python3", "-m", "classhub_hub.dbschema", command], entrypoint=[],
        volumes=service.kwargs["volumes"], **hubfile.HARDENING,
        labels=names.labels(hub, "db-schema"), **network,
    )  # fmt: skip
    try:
        container.start()
        status = container.wait(timeout=900)["StatusCode"]
        log = container.logs().decode("utf-8", "replace").strip()
    finally:
        container.remove(force=True)
    if status != 0:
        raise UserError(
            f"the hub database's schema {command} failed; the hub is not started on it. "
            "Its log:\n" + "\n".join("   " + line for line in log.splitlines()[-15:])
        )
    return log


def schema(client: docker.DockerClient, paths: Paths, settings) -> tuple[str, str]:
    """(the database's revision or "none", the revision the hub image's JupyterHub needs)."""
    line = _schema_command(client, paths, settings, "check").splitlines()[-1]
    found = dict(part.split("=", 1) for part in line.split())
    return found["current"], found["head"]


def upgrade_schema(client: docker.DockerClient, paths: Paths, settings) -> str:
    """JupyterHub's migrations to its head revision (the hub stopped, a backup taken)."""
    return _schema_command(client, paths, settings, "upgrade").splitlines()[-1]
