"""invoke prewarm (issue: class start): a class's servers are started before it begins, a
student then finds theirs running, and a hold keeps the idle culler off them until it ends."""

from __future__ import annotations

import subprocess
import sys
import time

import requests

from classhub.student import Browser
from tests.conftest import invoke

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, sweep


def running(hub_url: str, token: str) -> set[str]:
    users = requests.get(hub_url + "hub/api/users", headers={"Authorization": f"token {token}"})
    return {u["name"] for u in users.json() if (u.get("servers") or {}).get("", {}).get("ready")}


def test_prewarm_starts_a_group_and_the_student_finds_it_running(hub: Hub):
    token = (hub.paths.secrets_dir / "classhub_api_token").read_text().strip()
    for name in ("student3", "student4"):  # earlier tests may have left theirs running
        student = Browser(hub.url, name)
        assert student.login(hub.passwords[name]).status_code == 302
        if student.hub_api("GET", f"/users/{name}").json().get("servers"):
            student.stop()
    result = hub.invoke("prewarm", "--group", "team-2", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 servers ready" in result.stdout
    assert {"student3", "student4"} <= running(hub.url, token)
    student = Browser(hub.url, "student3")
    assert student.login(hub.passwords["student3"]).status_code == 302
    assert student.start() < 2  # already running: ready at once
    student.open_lab()
    # A kernel is waiting for the student, and their first kernel in the home is that one.
    deadline = time.monotonic() + 60
    while not (waiting := student.server_api("GET", "/kernels").json()):
        assert time.monotonic() < deadline, "no warm kernel"
        time.sleep(0.5)
    first = student.server_api("POST", "/kernels", json={"name": "python3"}).json()["id"]
    assert [k["id"] for k in waiting] == [first]
    second = student.server_api("POST", "/kernels", json={"name": "python3"}).json()["id"]
    assert second != first  # the next one is new, as without prewarm
    assert student.run("import os; print(os.getcwd())") == "/home/jovyan\n"
    student.stop()
    # A start that was not a prewarm has no kernel waiting (the option was for that start only).
    assert student.start() > 0
    student.open_lab()
    time.sleep(3)
    assert student.server_api("GET", "/kernels").json() == []
    student.stop()
    other = Browser(hub.url, "student4")
    assert other.login(hub.passwords["student4"]).status_code == 302
    other.stop()
    unknown = hub.invoke("prewarm", "--group", "nobody")
    assert unknown.returncode == 1 and "no such group" in unknown.stderr


def test_a_held_server_outlives_the_cull_timeout_until_the_hold_ends(hub: Hub, tmp_path):
    """A hub of its own with CULL_IDLE_TIMEOUT=15s (the culler looks every 5 s)."""
    name = f"{hub.name}w"
    port = free_port()
    paths = new_checkout(tmp_path / "clone", name, port, "hub-admin admin\nann\n")
    env = paths.root / ".env"
    env.write_text(env.read_text().replace("CULL_IDLE_TIMEOUT=1h", "CULL_IDLE_TIMEOUT=15s"))
    url = f"http://127.0.0.1:{port}/{name}/"
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        token = (paths.secrets_dir / "classhub_api_token").read_text().strip()
        holding = subprocess.Popen(
            [sys.executable, "-m", "invoke", "prewarm", "--users", "ann", "--hold", "45s"],
            cwd=paths.root, env=engine_environ(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "ann" not in running(url, token):
            assert time.monotonic() < deadline and holding.poll() is None, holding.stdout.read()
            time.sleep(1)
        ready_at = time.monotonic()
        time.sleep(35)  # more than twice the cull timeout plus the culler's interval
        assert "ann" in running(url, token), "the held server was culled during the hold"
        output, _ = holding.communicate(timeout=60)
        assert holding.returncode == 0 and "Hold over" in output, output
        while "ann" in running(url, token):
            assert time.monotonic() - ready_at < 45 + 60, (
                "the server was never culled after the hold"
            )
            time.sleep(2)
        assert read_passwords(paths)["ann"]  # the roster is untouched
    finally:
        sweep(hub.client, name)
