"""Benchmark: a large class starting, then a class at work for a whole lesson, on the real engine.

Run from the checkout with the engine up (invoke engine) and the dev tools installed:
    .venv/bin/python -m bench.load [--users 100] [--ramp 30] [--working 30] [--minutes 20]
It sets up a throwaway hub from this checkout as shipped (images are built first if missing) and
runs two rehearsals on it, sampling the hub container's memory (JupyterHub and its proxy) every
few seconds throughout:
- a class start: `invoke rehearse --users 100`, its logins spread over the ramp;
- a class at work: `invoke rehearse --users 30 --minutes 20 --every 10`, each student keeping its
  notebook open and running a short cell (rehearse.CELL, at most 60 s each) every 10 s.
For each: the wall time, each phase's median, 95th percentile and maximum, the failures with their
reasons, the hub's memory before, at its peak and at the end; for the class at work also every
cell's time and the hub's memory growth from the first minute to the last.
Figures go to bench/results/load.json. Targets (issue "faults and load"): 100 students with 0
failures on one 2-core machine; 30 students at work for 20 minutes without a failed request.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

import docker

from classhub import names
from classhub.rehearse import PHASES, percentile
from tests.conftest import invoke
from tests.e2e.conftest import engine_environ, free_port, new_checkout, sweep

RESULTS = Path(__file__).parent / "results" / "load.json"
MIB = 1024**2


class MemorySampler:
    """The hub container's memory (MiB, the kernel's figure less its file cache), every `every`
    seconds in a thread, with the seconds since it began."""

    def __init__(self, client: docker.DockerClient, container: str, every: float) -> None:
        self.container = client.containers.get(container)
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        while True:
            stats = self.container.stats(stream=False)["memory_stats"]
            cache = stats.get("stats", {}).get("inactive_file", 0)
            self.samples.append((time.monotonic() - began, (stats["usage"] - cache) / MIB))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict:
        values = [mib for _, mib in self.samples]
        return {"before (MiB)": round(values[0], 1), "peak (MiB)": round(max(values), 1),
                "at the end (MiB)": round(values[-1], 1), "samples": len(values)}  # fmt: skip


def rehearsal(paths, folder: Path, *args: str) -> tuple[dict, dict]:
    """Run `invoke rehearse ARGS --out FOLDER`; (its figures, its timings.json)."""
    started = time.monotonic()
    result = invoke(paths, "rehearse", *args, "--out", str(folder), env=engine_environ(),
                    timeout=7200)  # fmt: skip
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout[-2500:], flush=True)
    data = json.loads((folder / "timings.json").read_text())
    timings = data["timings (s)"]
    found: dict[str, object] = {"students": data["students"], "ramp (s)": data["ramp (s)"],
                                "wall time incl. cleanup (s)": round(wall, 1)}  # fmt: skip
    keys = {"login": "login", "server ready": "ready", "kernel usable": "kernel", "total": "total"}
    for phase in PHASES:
        values = [t[keys[phase]] for t in timings if t[keys[phase]] is not None]
        found[phase] = _spread(values) | {"done": f"{len(values)}/{len(timings)}"}
    found["failures"] = sum(bool(t["failure"]) for t in timings)
    found["failures, each"] = sorted(t["failure"][:160] for t in timings if t["failure"])
    return found, data


def _spread(values: list[float]) -> dict:
    if not values:
        return {}
    return {"median (s)": round(statistics.median(values), 2),
            "95th (s)": round(percentile(values, 0.95), 2), "max (s)": round(max(values), 2)}  # fmt: skip


def at_work(found: dict, data: dict, memory: MemorySampler) -> dict:
    """The class at work's cells, and the hub's memory growth from its first minute (every
    server up) to its last."""
    timings = data["timings (s)"]
    cells = [value for t in timings for value in t["cell_times"]]
    failed = [f"{t['user']}: {f}" for t in timings for f in t["cell_failures"]]
    ready = max(t["start"] + t["total"] for t in timings if t["total"] is not None)
    settled = [mib for at, mib in memory.samples if ready + 60 <= at <= ready + 120]
    end = data["minutes"] * 60  # the rehearsal's students stop then; its cleanup follows
    last = [mib for at, mib in memory.samples if end - 60 <= at <= end]
    found["cells"] = _spread(cells) | {"run": len(cells) + len(failed), "failed": len(failed)}
    found["failed cells, each"] = failed[:50]
    found["hub memory growth"] = {
        "in its first settled minute (MiB)": round(statistics.median(settled), 1),
        "in its last minute (MiB)": round(statistics.median(last), 1),
        "growth (MiB)": round(statistics.median(last) - statistics.median(settled), 1),
        "every sample (s, MiB)": [(round(at), round(mib, 1)) for at, mib in memory.samples],
    }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--ramp", type=float, default=30.0)
    parser.add_argument("--working", type=int, default=30, help="students of the class at work")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--results", default=str(RESULTS), help="the JSON file to write")
    args = parser.parse_args()
    client = docker.from_env(environment=engine_environ(), timeout=600)
    name = f"benchload{secrets.token_hex(2)}"
    figures: dict[str, object] = {"engine": client.version()["Version"], "cores": os.cpu_count(),
                                  "memory (GiB)": round(os.sysconf("SC_PAGE_SIZE")
                                                        * os.sysconf("SC_PHYS_PAGES") / 1024**3)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        paths = new_checkout(Path(tmp) / "hub", name, free_port(), "hub-admin admin\n")
        try:
            result = invoke(paths, "setup", env=engine_environ(), timeout=3600)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            hub = names.hub_container(name)
            with MemorySampler(client, hub, every=2) as memory:
                found, _ = rehearsal(paths, Path(tmp) / "start", "--users", str(args.users),
                                     "--ramp", str(args.ramp))  # fmt: skip
            found["hub memory"] = memory.figures()
            figures[f"class start, {args.users} students"] = found
            print(json.dumps(found, indent=2), flush=True)
            with MemorySampler(client, hub, every=10) as memory:
                found, data = rehearsal(paths, Path(tmp) / "work", "--users", str(args.working),
                                        "--ramp", str(args.ramp), "--minutes", str(args.minutes),
                                        "--every", str(args.every))  # fmt: skip
            found["hub memory"] = memory.figures()
            key = f"class at work, {args.working} students for {args.minutes:g} minutes"
            figures[key] = at_work(found, data, memory)
            print(json.dumps({k: v for k, v in figures[key].items()
                              if k != "hub memory growth"}, indent=2), flush=True)  # fmt: skip
        finally:
            sweep(client, name)
    Path(args.results).parent.mkdir(exist_ok=True)
    Path(args.results).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"Written: {args.results}")


if __name__ == "__main__":
    main()
