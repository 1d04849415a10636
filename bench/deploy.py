"""Benchmark: setup cold and warm, and spawns from request to a usable kernel, on the real engine.

Run from the checkout with the engine up (invoke engine) and the dev tools installed:
    .venv/bin/python -m bench.deploy [--spawns N]
It sets up a throwaway hub under its own HUB_NAME (images are built first if missing, and timed),
prints its figures and writes them to bench/results/deploy.json, then removes the hub's objects.
Targets: a warm setup under 30 s; a spawn to a usable kernel in seconds, not minutes.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import docker

from classhub.student import Browser
from tests.conftest import invoke
from tests.e2e.conftest import engine_environ, free_port, new_checkout, read_passwords, sweep

RESULTS = Path(__file__).parent / "results" / "deploy.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=4, help="students to spawn one after another")
    args = parser.parse_args()
    client = docker.from_env(environment=engine_environ())
    name = f"bench{secrets.token_hex(3)}"
    port = free_port()
    roster = "hub-admin admin\n" + "".join(f"s{i} team-1\n" for i in range(args.spawns))
    figures: dict[str, object] = {"hub": name, "engine": client.version()["Version"]}
    with tempfile.TemporaryDirectory() as tmp:
        paths = new_checkout(Path(tmp) / "clone", name, port, roster)
        try:
            for label in ("setup cold (s)", "setup warm (s)"):
                started = time.monotonic()
                result = invoke(paths, "setup", env=engine_environ(), timeout=1800)
                figures[label] = round(time.monotonic() - started, 2)
                assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
                for line in result.stdout.splitlines():
                    if line.strip().startswith(("hub image: built", "notebook image: built")):
                        figures[line.split(":")[0].strip() + " build"] = line.split(" in ")[-1]
            passwords = read_passwords(paths)
            spawns = []
            for i in range(args.spawns):
                browser = Browser(f"http://127.0.0.1:{port}/{name}/", f"s{i}")
                assert browser.login(passwords[f"s{i}"]).status_code == 302
                started = time.monotonic()
                browser.start()
                browser.open_lab()
                out = browser.run("print(1 + 1)")
                assert out == "2\n", repr(out)
                spawns.append(round(time.monotonic() - started, 2))
            figures["spawn to usable kernel (s), each"] = spawns
            figures["spawn to usable kernel (s), median"] = round(statistics.median(spawns), 2)
        finally:
            sweep(client, name)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
