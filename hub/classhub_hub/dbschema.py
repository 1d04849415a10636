"""The hub database's schema revision against this image's JupyterHub, and its upgrade.

`invoke setup` runs it in a one-off container of the (new) hub image before a hub starts, with
the hub's mounts (hub file, secrets, data volume) and networks, so it finds the database exactly
as the hub does:

    python3 -m classhub_hub.dbschema check     prints "current=REV head=REV"
    python3 -m classhub_hub.dbschema upgrade   runs JupyterHub's own migrations to head

`current` is "none" for a database without JupyterHub's tables (a new hub: nothing to upgrade).
The host takes a backup before it asks for `upgrade`.
"""

from __future__ import annotations

import argparse
import sys

from jupyterhub import dbutil
from sqlalchemy import create_engine, inspect, text

from classhub import hubfile
from classhub_hub.config import read_secrets


def head(db_url: str) -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    with dbutil._temp_alembic_ini(db_url) as ini:
        return ScriptDirectory.from_config(Config(ini)).get_heads()[0]


def current(db_url: str) -> str:
    engine = create_engine(db_url)
    try:
        if "alembic_version" not in inspect(engine).get_table_names():
            return "none"
        with engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else "none"
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classhub_hub.dbschema")
    parser.add_argument("command", choices=("check", "upgrade"))
    args = parser.parse_args(argv)
    db_url = hubfile.db_url(hubfile.load(hubfile.HUB_FILE_IN_HUB), read_secrets())
    if args.command == "check":
        print(f"current={current(db_url)} head={head(db_url)}", flush=True)
    else:
        dbutil.upgrade(db_url)
        print(f"dbschema: upgraded to {current(db_url)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
