"""Copy the hub's database to an empty one: how a hub moves from sqlite to PostgreSQL.

`invoke setup` runs it in a one-off hub-image container, with the hub stopped, when HUB_DB
changes to postgres on a hub whose data volume holds a sqlite database:

    python3 -m classhub_hub.dbcopy --source sqlite:////data/jupyterhub.sqlite \
        --target-host HOST --password-file FILE

The source must be at this JupyterHub's schema revision (the hub that last ran on it was this
version; otherwise it stops, naming both revisions). The target gets JupyterHub's tables from
`jupyterhub.orm`, stamped with that revision as a new hub's database is, then every row of every
table in dependency order, in one transaction; PostgreSQL's id sequences are moved past the
copied ids. A target that already holds rows is refused, unless `--replace`: setup passes it
while the sqlite file is still the hub's database (it is renamed only once a copy has finished),
so what PostgreSQL holds then is only what an interrupted copy left, and its tables are dropped
first. It prints one line per table and `dbcopy: copied N rows`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jupyterhub import orm
from sqlalchemy import Integer, create_engine, func, select, text
from sqlalchemy import inspect as inspect_db

from classhub import hubfile


def copy(source_url: str, target_url: str, replace: bool = False) -> int:
    source = create_engine(source_url)
    orm.check_db_revision(source)  # raises DatabaseSchemaMismatch naming both revisions
    target = create_engine(target_url)
    if replace:
        with target.begin() as dst:
            left = set(inspect_db(dst).get_table_names())
            if left:
                print(f"dbcopy: dropping {len(left)} tables an interrupted copy left", flush=True)
            orm.Base.metadata.drop_all(dst)
            dst.execute(text("DROP TABLE IF EXISTS alembic_version"))
    orm.new_session_factory(target_url)  # JupyterHub's tables, stamped with its revision
    have = set(inspect_db(source).get_table_names())
    total = 0
    with source.connect() as src, target.begin() as dst:
        for table in orm.Base.metadata.sorted_tables:
            if dst.execute(select(func.count()).select_from(table)).scalar():
                raise SystemExit(f"error: the target's table {table.name} is not empty")
            if table.name not in have:
                continue
            rows = [dict(row._mapping) for row in src.execute(select(table))]
            if rows:
                dst.execute(table.insert(), rows)
            print(f"dbcopy: {table.name}: {len(rows)} rows", flush=True)
            total += len(rows)
        if target.dialect.name == "postgresql":
            for table in orm.Base.metadata.sorted_tables:
                for column in table.primary_key.columns:
                    if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                        dst.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                            f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                        ))  # fmt: skip
    print(f"dbcopy: copied {total} rows", flush=True)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classhub_hub.dbcopy")
    parser.add_argument("--source", required=True, help="SQLAlchemy URL of the database to copy")
    parser.add_argument("--target-host", required=True, help="the PostgreSQL container")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--replace", action="store_true",
                        help="drop what an interrupted copy left in the target first")  # fmt: skip
    args = parser.parse_args(argv)
    password = Path(args.password_file).read_text(encoding="utf-8").strip()
    target = hubfile.postgres_url(args.target_host, password)
    try:
        copy(args.source, target, args.replace)
    except orm.DatabaseSchemaMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
