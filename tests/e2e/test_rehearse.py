"""invoke rehearse (issue: class start): temporary students log in, start servers and run code,
the figures and the picture are written, and nothing of them is left afterwards: not after a
run, not after Ctrl-C, and after a run killed outright, not after invoke rehearse --cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests

from classhub import names
from classhub.rehearse import PREFIX
from classhub.runtime.single_host.stack import user_containers

from .conftest import Hub, engine_environ


def leftovers(hub: Hub) -> list[str]:
    """Every trace of a temporary student: containers, volumes, hub users, hub-file entries."""
    found = [name for name, _ in user_containers(hub.client, hub.name, PREFIX)]
    found += [v.name for v in hub.client.volumes.list()
              if v.name.startswith(names.user_volume(hub.name, PREFIX))]  # fmt: skip
    token = (hub.paths.secrets_dir / "classhub_api_token").read_text().strip()
    users = requests.get(hub.url + "hub/api/users", headers={"Authorization": f"token {token}"})
    found += [f"hub user {u['name']}" for u in users.json() if u["name"].startswith(PREFIX)]
    entries = json.loads(hub.paths.hub_file.read_text())["users"]
    found += [f"hub-file entry {name}" for name in entries if name.startswith(PREFIX)]
    return found


def test_a_rehearsal_reports_every_phase_and_leaves_nothing(hub: Hub, tmp_path):
    before = hub.paths.hub_file.read_bytes()
    result = hub.invoke("rehearse", "--users", "3", "--ramp", "2", "--out", str(tmp_path),
                        timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for phase in ("login", "server ready", "kernel usable", "total"):
        row = next(line for line in result.stdout.splitlines() if line.startswith(phase + " "))
        assert row.rstrip().endswith("3/3"), result.stdout
    assert "Failures: 0" in result.stdout
    data = json.loads((tmp_path / "timings.json").read_text())
    assert data["students"] == 3 and len(data["timings (s)"]) == 3
    for timing in data["timings (s)"]:
        assert timing["user"].startswith(PREFIX) and not timing["failure"]
        assert timing["total"] == timing["login"] + timing["ready"] + timing["kernel"] > 0
    starts = sorted(t["start"] for t in data["timings (s)"])
    assert starts == [0.0, 1.0, 2.0]  # spread over the ramp
    picture = (tmp_path / "timeline.png").read_bytes()
    assert picture.startswith(b"\x89PNG\r\n\x1a\n") and len(picture) > 1000
    assert leftovers(hub) == []
    assert hub.paths.hub_file.read_bytes() == before


def test_a_class_at_work_runs_a_cell_every_few_seconds_in_each_open_notebook(hub: Hub, tmp_path):
    result = hub.invoke("rehearse", "--users", "2", "--ramp", "1", "--minutes", "0.5",
                        "--every", "2", "--out", str(tmp_path), timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Failures: 0" in result.stdout and "Failed cells: 0" in result.stdout, result.stdout
    data = json.loads((tmp_path / "timings.json").read_text())
    assert data["minutes"] == 0.5 and data["cell every (s)"] == 2
    for timing in data["timings (s)"]:
        # Each cell checked that the kernel kept its variable from the one before (rehearse.CELL).
        assert len(timing["cell_times"]) >= 5 and not timing["cell_failures"], timing
        assert all(0 < value < 60 for value in timing["cell_times"])
    row = next(line for line in result.stdout.splitlines() if line.startswith("each cell"))
    ran = sum(len(t["cell_times"]) for t in data["timings (s)"])
    assert row.rstrip().endswith(f"{ran}/{ran}"), row
    assert leftovers(hub) == []


def start_rehearsal(hub: Hub, *args: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "rehearse", *args], cwd=hub.paths.root,
        env=engine_environ(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not user_containers(hub.client, hub.name, PREFIX):
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no temporary student's server started"
        time.sleep(0.2)
    return process


def test_ctrl_c_in_the_middle_still_removes_everything(hub: Hub):
    # Spread over 20 s, so the first student's server is up while the others still wait: with
    # every start at once a warm hub finished all four before the signal came (seen once).
    process = start_rehearsal(hub, "--users", "4", "--ramp", "20")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0, output
    assert "Removing the temporary students" in output, output
    assert leftovers(hub) == []


def test_a_killed_rehearsal_is_cleaned_up_by_cleanup(hub: Hub):
    process = start_rehearsal(hub, "--users", "2", "--ramp", "0")
    process.kill()
    process.communicate(timeout=60)
    assert leftovers(hub), "the killed run should have left something to clean"
    result = hub.invoke("rehearse", "--cleanup", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Removed" in result.stdout
    assert leftovers(hub) == []


def test_a_prewarmed_rehearsal_finds_the_servers_running(hub: Hub, tmp_path):
    result = hub.invoke("rehearse", "--users", "2", "--ramp", "0", "--prewarm", "--out",
                        str(tmp_path), timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "prewarming their 2 servers" in result.stdout and "Failures: 0" in result.stdout
    timings = json.loads((tmp_path / "timings.json").read_text())["timings (s)"]
    # The servers were up before the logins: "server ready" is one look at the hub, no spawn.
    assert all(t["ready"] < 2 for t in timings), timings
    assert leftovers(hub) == []


def test_more_students_than_cores_wait_in_line_and_all_get_in(hub: Hub, tmp_path):
    """The hub starts one server per CPU core at a time (classhub_hub/spawner.py); the others
    wait their turn and the spawn page says so: the students see it, and every one gets in."""
    cores = os.cpu_count() or 1
    count = 3 * cores  # the last ones wait two turns, longer than the hub's 1 s before the page
    result = hub.invoke("rehearse", "--users", str(count), "--ramp", "0", "--out",
                        str(tmp_path), timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Failures: 0" in result.stdout, result.stdout
    timings = json.loads((tmp_path / "timings.json").read_text())["timings (s)"]
    waited = [t["user"] for t in timings if t["waited"]]
    assert 1 <= len(waited) <= count - cores, timings
    line = f"Waited in the hub's line for a turn to start: {len(waited)} of {count}"
    assert line in result.stdout, result.stdout
    assert leftovers(hub) == []
