"""Benchmark: a class starting at once on a swarm of two workers, beside one server, in one run.

Run from the checkout with the engine up (invoke engine) and the dev tools installed:
    .venv/bin/python -m bench.swarm_start [--students 10] [--ramp 5]
It sets up a throwaway hub on this machine's engine (building the images if missing), rehearses
a class start there (`invoke rehearse`), and takes it down; then makes a swarm of nested Docker
engines on this machine (a manager and two workers, tests/e2e/swarm.py), sets the same class up
with ENGINE=swarm (its students' servers on the workers), and rehearses the same class there.
For each it records what class_start.py does (seconds until the last student has a usable
kernel, median and 95th percentile of login to kernel, failures); for the swarm also the CPU
seconds the workers spent per student during the start (read from the nested nodes' cgroups),
the swarm's cost per start against one server (the difference of the medians), and from the CPU
seconds an estimate of how many students one added worker takes in a class start: its cores x
the start window (45 s) / CPU seconds per student.

On one machine the swarm's nodes share its cores with each other and with the hub: the figures
are the swarm's overhead (services, the overlay, the shared storage over a bind mount, not NFS),
not a speed-up. Figures go to bench/results/swarm_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import docker

from bench.class_start import run, summary
from tests.e2e.conftest import engine_environ, free_port, new_checkout, set_env, sweep
from tests.e2e.swarm import NodeSpec, class_swarm

RESULTS = Path(__file__).parent / "results" / "swarm_start.json"
WORKERS = ("worker1", "worker2")
START_WINDOW = 45.0  # seconds: the class-start target (issue "class start")


def cpu_seconds(container) -> float:
    """CPU seconds a nested node (a container on this machine) has used so far."""
    return container.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--results", default=str(RESULTS), help="the JSON file to write")
    args = parser.parse_args()
    size = args.students
    client = docker.from_env(environment=engine_environ(), timeout=600)
    roster = "hub-admin admin\n" + "".join(f"s{i:02d} class\n" for i in range(size))
    figures: dict[str, object] = {"engine": client.version()["Version"], "ramp (s)": args.ramp,
                                  "cores": os.cpu_count(), "students": size}  # fmt: skip
    name = f"benchsw{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = new_checkout(root / "one", name, free_port(), roster)
        try:
            run(paths, "setup")
            run(paths, "rehearse", "--users", str(size), "--ramp", str(args.ramp), "--out",
                str(root / "one-server"))  # fmt: skip
            figures["one server"] = found = summary(root / "one-server", size)
            print("one server", json.dumps(found), flush=True)
            run(paths, "down")
            specs = {"manager": NodeSpec(ssh=False), **{w: NodeSpec() for w in WORKERS}}
            (root / "swarm").mkdir()
            with class_swarm(client, name, root / "swarm", specs, WORKERS) as swarm:
                manager = swarm.nodes["manager"].address
                (swarm.paths.root / "userlist").write_text(roster)
                set_env(swarm.paths, {"ENGINE": "swarm", "BIND_ADDRESS": manager})
                made = swarm.invoke("setup", timeout=1800)
                assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
                before = {w: cpu_seconds(swarm.nodes[w].container) for w in WORKERS}
                started = time.monotonic()
                done = swarm.invoke("rehearse", "--users", str(size), "--ramp", str(args.ramp),
                                    "--out", str(root / "on-swarm"), timeout=3600)  # fmt: skip
                assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
                spent = sum(cpu_seconds(swarm.nodes[w].container) - before[w] for w in WORKERS)
                found = summary(root / "on-swarm", size)
                per_student = spent / size
                found |= {
                    "workers' CPU seconds, rehearsal incl. cleanup": round(spent, 1),
                    "workers' CPU seconds per student": round(per_student, 2),
                    "rehearsal incl. cleanup (s)": round(time.monotonic() - started, 1),
                }
                figures["swarm of two workers"] = found
                print("swarm", json.dumps(found), flush=True)
        finally:
            sweep(client, name)
    one, on_swarm = figures["one server"], figures["swarm of two workers"]
    assert isinstance(one, dict) and isinstance(on_swarm, dict)
    median = "login to kernel, median (s)"
    if one[median] is not None and on_swarm[median] is not None:
        figures["swarm's cost per start: median login to kernel, swarm - one server (s)"] = round(
            on_swarm[median] - one[median], 2
        )
    cost = on_swarm["workers' CPU seconds per student"]
    if cost:
        figures[f"students one added worker starts in {START_WINDOW:.0f} s, per core"] = round(
            START_WINDOW / cost, 1
        )
    print(json.dumps(figures, indent=2))
    Path(args.results).parent.mkdir(exist_ok=True)
    Path(args.results).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
