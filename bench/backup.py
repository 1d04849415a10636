"""Benchmark: backup and restore of a class's files, on the real engine.

Run from the checkout with the engine up (invoke engine) and the dev tools installed:
    .venv/bin/python -m bench.backup [--users N] [--megabytes M]
It sets up a throwaway hub with N students (images are built first if missing), writes M MB of
files into each home (half random, half text, as notebooks and data are), then times
`invoke backup` while the hub runs, `invoke destroy --yes` and `invoke restore`, prints the
figures and writes them to bench/results/backup.json, then removes the hub's objects.
Target: a class's nightly backup in minutes, and a restore no slower than the backup.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from pathlib import Path

import docker

from classhub import names
from tests.conftest import invoke
from tests.e2e.conftest import engine_environ, free_port, new_checkout, sweep

RESULTS = Path(__file__).parent / "results" / "backup.json"
FILL = (
    "head -c {half} /dev/urandom > /v/data.bin && "
    "yes 'print(\"a line of a notebook or a csv file\")' | head -c {half} > /v/notes.py"
)


def timed(paths, *args: str) -> float:
    started = time.monotonic()
    result = invoke(paths, *args, env=engine_environ(), timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return round(time.monotonic() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=20, help="of files in each home")
    args = parser.parse_args()
    client = docker.from_env(environment=engine_environ())
    name = f"bench{secrets.token_hex(3)}"
    roster = "hub-admin admin\n" + "".join(f"s{i} team-1\n" for i in range(args.users))
    figures: dict[str, object] = {"hub": name, "users": args.users,
                                  "MB per home": args.megabytes}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        paths = new_checkout(Path(tmp) / "clone", name, free_port(), roster)
        try:
            timed(paths, "setup")
            half = args.megabytes * 1024 * 1024 // 2
            for i in range(args.users):
                client.containers.run(
                    names.notebook_image(name), ["sh", "-c", FILL.format(half=half)],
                    entrypoint=[], user="1000:100", remove=True, network_disabled=True,
                    volumes={names.user_volume(name, f"s{i}"): {"bind": "/v", "mode": "rw"}},
                )  # fmt: skip
            folder = Path(tmp) / "backup"
            figures["backup while running (s)"] = timed(paths, "backup", "--to", str(folder))
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            figures["backup size (MB)"] = round(size / 1024**2, 1)
            data = args.users * args.megabytes
            figures["backup rate (MB of homes/s)"] = round(
                data / figures["backup while running (s)"], 1
            )
            figures["destroy (s)"] = timed(paths, "destroy", "--yes")
            figures["restore incl. hub start (s)"] = timed(paths, "restore", str(folder))
        finally:
            sweep(client, name)
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
