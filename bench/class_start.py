"""Benchmark: a class starting at once, classhub as shipped against a baseline hub, on the real engine.

Run from the checkout with the engine up (invoke engine) and the dev tools installed:
    .venv/bin/python -m bench.class_start [--sizes 10,25,50] [--ramp 10]
It sets up two throwaway hubs from this checkout (images are built first if missing):
- "classhub": as shipped;
- "baseline": what the reference deployments run, on the same machinery: plain DockerSpawner
  (one thread for Docker calls, every server starting at once, JupyterHub's readiness polling
  backing off to 5 s), JupyterHub's and DockerSpawner's default timeouts (start 60 s, HTTP 30 s,
  the spawn page after 10 s), the hub without CPU priority (Docker's default weight), and the
  notebook image without classhub's tuning (bench/untuned-requirements.txt put back, no patches
  from singleuser/patches/, jupyter-lsp left on), tagged classhub-notebook-untuned.
For each class size it runs `invoke rehearse` on both, alternating, and records per hub: seconds
until the last student has a usable kernel, median and 95th percentile of login-to-kernel,
failures with their reasons; and the ratio baseline / classhub. On the classhub hub it then
measures one student on the idle hub (five rehearsals of one: spawn request to usable kernel),
a prewarmed class of the largest size (login to usable kernel; prewarmed servers hold a warm
kernel), and, with that many servers started as logins start them (no warm kernel) and left
idle: memory per user container, the hub container's memory (JupyterHub and its proxy), the CPU
seconds one server's start took, and the estimated limit (N x (container start + server start
CPU) / cores).
Figures go to bench/results/class_start.json. Targets (issue "class start"): 50 students all
with a kernel within 45 s, 0 failures, the baseline at least 2x worse; one student 2 s or less;
a prewarmed class 1 s or less; idle container <= 95 MiB; hub <= 300 MiB with 50 servers.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import docker

from classhub import names, prewarm
from classhub.inputs import config
from classhub.rehearse import percentile
from classhub.runtime.single_host import SingleHost
from tests.conftest import invoke
from tests.e2e.conftest import engine_environ, free_port, new_checkout, sweep

RESULTS = Path(__file__).parent / "results" / "class_start.json"
BASELINE = """\
# What reference deployments run with: plain DockerSpawner and JupyterHub's defaults.
c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 30
c.JupyterHub.tornado_settings = {}
"""
UNTUNED_IMAGE = "classhub-notebook-untuned:latest"
UNTUNED = Path(__file__).parent / "untuned-requirements.txt"
# The untuned image's build step for jupyter-lsp: JupyterLab's own setting (on) is left alone.
UNTUNED_LANGUAGE_SERVERS = 'print("baseline: jupyter-lsp left as JupyterLab installs it")\n'


def untune(paths) -> None:
    """Make the baseline checkout's notebook image the one reference deployments run."""
    folder = paths.root / "singleuser"
    pins = folder / "base-requirements.txt"
    pins.write_text(pins.read_text() + UNTUNED.read_text())
    for patch in (folder / "patches").glob("*.patch"):
        patch.unlink()
    (folder / "language-servers").write_text(UNTUNED_LANGUAGE_SERVERS)
    with (paths.root / ".env").open("a") as env:
        env.write(f"NOTEBOOK_IMAGE={UNTUNED_IMAGE}\n")


def run(paths, *args: str, timeout: int = 3600):
    result = invoke(paths, *args, env=engine_environ(), timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def rehearsal(paths, size: int, ramp: float, folder: Path, *extra: str) -> dict:
    started = time.monotonic()
    run(paths, "rehearse", "--users", str(size), "--ramp", str(ramp), "--out", str(folder),
        *extra)  # fmt: skip
    return {
        **summary(folder, size),
        "wall time incl. cleanup (s)": round(time.monotonic() - started, 1),
    }


def summary(folder: Path, size: int) -> dict:
    """The figures of a rehearsal of `size` students that wrote its timings to `folder`."""
    timings = json.loads((folder / "timings.json").read_text())["timings (s)"]
    totals = [t["total"] for t in timings if t["total"] is not None]
    done = [t["start"] + t["total"] for t in timings if t["total"] is not None]
    return {
        "students": size,
        "all usable after (s)": round(max(done), 2) if len(done) == size else None,
        "login to kernel, median (s)": round(statistics.median(totals), 2) if totals else None,
        "login to kernel, 95th (s)": round(percentile(totals, 0.95), 2) if totals else None,
        "waited in line": sum(bool(t.get("waited")) for t in timings),
        "failures": size - len(totals),
        "failures, each": sorted(t["failure"][:160] for t in timings if t["failure"]),
    }


def ratios(figures: dict, size: int) -> dict:
    """Baseline / classhub for one class size: until all were usable (only when the baseline
    had no failures: with failures it never got there) and the median login to kernel."""
    ours, theirs = figures[f"classhub, {size} students"], figures[f"baseline, {size} students"]
    found = {"failures, baseline vs classhub": f"{theirs['failures']} vs {ours['failures']}"}
    for key in ("all usable after (s)", "login to kernel, median (s)"):
        if ours[key] and theirs[key]:
            found[key.replace(" (s)", "")] = round(theirs[key] / ours[key], 2)
    return found


def one_student(paths, folder: Path, runs: int = 5) -> dict:
    """Five rehearsals of one student on the idle hub: spawn request to usable kernel."""
    spans, totals = [], []
    for index in range(runs):
        run(paths, "rehearse", "--users", "1", "--out", str(folder / str(index)))
        timing = json.loads((folder / str(index) / "timings.json").read_text())["timings (s)"][0]
        assert timing["total"] is not None, timing
        spans.append(timing["ready"] + timing["kernel"])
        totals.append(timing["total"])
    return {
        "runs": runs,
        "request to usable kernel, median (s)": round(statistics.median(spans), 2),
        "login to usable kernel, median (s)": round(statistics.median(totals), 2),
        "each, request to usable kernel (s)": [round(v, 2) for v in spans],
    }


def lower_priority(client, hub: str) -> None:
    """The baseline's hub and socket proxy at Docker's default CPU weight, as elsewhere."""
    for name in (names.hub_container(hub), names.socket_proxy_container(hub)):
        client.containers.get(name).update(cpu_shares=1024)


def memory_and_limit(client, paths, hub: str, size: int) -> dict:
    """Start `size` roster students' servers as their own logins would (no warm kernel), let
    them settle, read memory and CPU, stop them."""
    settings = config.load(paths, engine_environ()).settings
    api = SingleHost(client, hub).hub_api(paths, settings)
    failed = prewarm.start(api, [f"s{i:02d}" for i in range(size)], lambda *_: None,
                           warm_kernel=False)  # fmt: skip
    assert not failed, failed
    time.sleep(20)
    flt = {"label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}=user"]}
    mem, cpu = [], []
    for container in client.containers.list(filters=flt):
        stats = container.stats(stream=False)
        mem.append(stats["memory_stats"]["usage"] / 1024**2)
        cpu.append(stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9)
    hub_stats = client.containers.get(names.hub_container(hub)).stats(stream=False)
    started = time.monotonic()
    client.containers.run(names.hub_image(hub), ["true"], entrypoint=[], remove=True)
    container_start = time.monotonic() - started
    run(paths, "down")
    run(paths, "up")
    cores = os.cpu_count() or 1
    per_server = statistics.median(cpu)
    return {
        "servers": len(mem),
        "idle user container, median (MiB)": round(statistics.median(mem), 1),
        "hub container with them running (MiB)": round(
            hub_stats["memory_stats"]["usage"] / 1024**2, 1
        ),
        "server start CPU, median (s)": round(per_server, 2),
        "container start (s)": round(container_start, 2),
        "cores": cores,
        f"estimated limit for {size} students (s)": round(
            size * (container_start + per_server) / cores, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,25,50")
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument("--results", default=str(RESULTS), help="the JSON file to write")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    client = docker.from_env(environment=engine_environ(), timeout=600)
    tag = secrets.token_hex(2)
    roster = "hub-admin admin\n" + "".join(f"s{i:02d} class\n" for i in range(max(sizes)))
    figures: dict[str, object] = {"engine": client.version()["Version"], "ramp (s)": args.ramp,
                                  "cores": os.cpu_count()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        hubs = {}
        for kind in ("classhub", "baseline"):
            name = f"bench{kind[:4]}{tag}"
            paths = new_checkout(Path(tmp) / kind, name, free_port(), roster)
            if kind == "baseline":
                (paths.root / "hub" / "jupyterhub_config.d" / "baseline.py").write_text(BASELINE)
                untune(paths)
            hubs[kind] = (name, paths)
        try:
            for _, paths in hubs.values():
                run(paths, "setup")
                run(paths, "down")  # one hub at a time on the machine
            for size in sizes:
                for kind in ("classhub", "baseline"):  # alternating, the same minute
                    name, paths = hubs[kind]
                    run(paths, "up")
                    if kind == "baseline":
                        lower_priority(client, name)
                    folder = Path(tmp) / f"{kind}-{size}"
                    figures[f"{kind}, {size} students"] = found = rehearsal(
                        paths, size, args.ramp, folder
                    )
                    print(kind, size, json.dumps(found), flush=True)
                    run(paths, "down")
                figures[f"ratio baseline/classhub, {size} students"] = ratios(figures, size)
            name, paths = hubs["classhub"]
            run(paths, "up")
            figures["one student, idle hub"] = found = one_student(paths, Path(tmp) / "one")
            print("one student", json.dumps(found), flush=True)
            largest = max(sizes)
            found = rehearsal(paths, largest, args.ramp, Path(tmp) / "prewarmed", "--prewarm")
            figures[f"prewarmed class, {largest} students"] = found
            print("prewarmed", json.dumps(found), flush=True)
            figures["memory and limit"] = memory_and_limit(client, paths, name, largest)
        finally:
            for name, _ in hubs.values():
                sweep(client, name)
    print(json.dumps(figures, indent=2))
    Path(args.results).parent.mkdir(exist_ok=True)
    Path(args.results).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
