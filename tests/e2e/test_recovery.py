"""The hub dies mid-class, and the engine restarts (issue "faults and load", items 3 and 4).

Each on a hub of its own beside the shared one. The hub's container is killed from the host (as a
crash or the OOM killer would) while ten students' servers are starting; and this machine's
Docker engine is stopped and started again (what a reboot is to classhub) while students run
code, on a hub with everything: PostgreSQL, the bundled nginx, the firewall. After each, without
anyone running a classhub task: the hub comes back by itself, its record of servers matches the
containers that run, and every student gets a working server, with their files, by trying again.

The engine's restart stops every container on this machine, the shared test hub's too: the tests
after this one run on it as it came back.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from classhub import names
from classhub.student import Browser

from .conftest import Hub, free_port, hub_beside

STUDENTS = [f"s{index:02d}" for index in range(1, 11)]
ROSTER = "hub-admin admin\n" + "".join(f"{name} class\n" for name in STUDENTS)


def api(hub: Hub, path: str) -> requests.Response:
    token = (hub.paths.secrets_dir / "classhub_api_token").read_text().strip()
    return requests.get(f"{hub.url}hub/api{path}", timeout=10, verify=False,
                        headers={"Authorization": f"token {token}"})  # fmt: skip


def wait_until_the_hub_answers(hub: Hub, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if api(hub, "/").status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"the hub did not come back:\n{hub.logs()[-3000:]}"
        time.sleep(0.5)


def record_and_containers(hub: Hub) -> tuple[set[str], set[str]]:
    """Whose servers the hub says run (ready or starting), and whose containers Docker runs."""
    users = api(hub, "/users?state=active").json()
    recorded = {user["name"] for user in users if user.get("servers", {}).get("")}
    flt = {"label": [f"{names.LABEL_HUB}={hub.name}", f"{names.LABEL_KIND}=user"]}
    running = {c.labels[names.LABEL_USER] for c in hub.client.containers.list(filters=flt)}
    return recorded, running


def the_record_matches(hub: Hub, timeout: float = 120) -> set[str]:
    """Wait until the hub's record of servers is what Docker runs (the hub polls its servers at
    its start); returns whose servers run."""
    deadline = time.monotonic() + timeout
    while (found := record_and_containers(hub))[0] != found[1]:
        assert time.monotonic() < deadline, f"the hub records {found[0]}, Docker runs {found[1]}"
        time.sleep(1)
    return found[1]


def works(hub: Hub, user: str, attempts: int = 3) -> str:
    """A student trying until their server works, as one does after an error page: log in, start,
    open JupyterLab, run code that reads their file. Returns what it printed."""
    failures = []
    for _ in range(attempts):
        try:
            browser = Browser(hub.url, user)
            assert browser.login(hub.passwords[user]).status_code == 302
            browser.start(timeout=300)
            browser.open_lab()
            return browser.run(
                "import pathlib; print(pathlib.Path('mine.txt').read_text(), end='')"
            )
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            time.sleep(3)
    raise AssertionError(f"{user} got no working server in {attempts} tries: {failures}")


def write_own_file(hub: Hub, user: str) -> Browser:
    browser = Browser(hub.url, user)
    assert browser.login(hub.passwords[user]).status_code == 302
    browser.start(timeout=300)
    browser.open_lab()
    assert browser.run(f"open('mine.txt', 'w').write('{user} was here\\n')") == ""
    return browser


def test_the_hub_killed_while_ten_students_start_comes_back_and_each_gets_a_server(
    hub: Hub, tmp_path
):
    with hub_beside(hub, tmp_path, f"{hub.name}c", ROSTER, {}) as crashed:
        for user in STUDENTS:  # each has a file from an earlier lesson
            write_own_file(crashed, user).stop()
        first = write_own_file(crashed, "hub-admin")  # one already working, a kernel open
        kernel = first.new_kernel()
        assert first.run_in(kernel, "x = 41; print(x + 1)") == "42\n"
        outcomes: dict[str, str] = {}

        def start(user: str) -> None:
            try:
                browser = Browser(crashed.url, user)
                browser.login(crashed.passwords[user])
                browser.start(timeout=120)
                outcomes[user] = "started"
            except Exception as exc:
                outcomes[user] = f"{type(exc).__name__}: {str(exc)[:200]}"

        hub_container = crashed.client.containers.get(names.hub_container(crashed.name))
        # The kill comes as the third student's container starts: their server is not answering
        # yet, so the hub has no record of that container; others wait in line, some are ready.
        flt = {"type": "container", "event": "start", "label": f"{names.LABEL_KIND}=user"}
        events = crashed.client.events(decode=True, since=int(time.time()), filters=flt)
        timer = threading.Timer(120, events.close)  # no start at all: fail below, not hang
        timer.start()
        threads = [threading.Thread(target=start, args=(user,)) for user in STUDENTS]
        for thread in threads:
            thread.start()
        started = []
        for event in events:
            if event["Actor"]["Attributes"].get(names.LABEL_HUB) == crashed.name:
                started.append(event)
                if len(started) == 3:
                    os.kill(hub_container.attrs["State"]["Pid"], signal.SIGKILL)
                    break
        timer.cancel()
        events.close()
        assert len(started) == 3, "the students' servers did not start"
        for thread in threads:
            thread.join(timeout=300)
        print("while the hub died:", outcomes)  # in the report when the test fails
        wait_until_the_hub_answers(crashed)
        hub_container.reload()
        assert hub_container.attrs["RestartCount"] >= 1  # Docker brought it back, nobody else
        # The student whose server was starting at the kill is not kept waiting for it: the hub
        # never learnt its address (JupyterHub would wait http_timeout, 5 minutes, for it).
        caught = started[-1]["Actor"]["Attributes"][names.LABEL_USER]
        deadline = time.monotonic() + 60
        while (server := api(crashed, f"/users/{caught}").json()["servers"].get("")) and (
            server.get("pending")
        ):
            assert time.monotonic() < deadline, f"{caught}: still pending {server['pending']}"
            time.sleep(1)
        # No container the hub does not know of, and no server it thinks runs that does not.
        the_record_matches(crashed)
        for user in STUDENTS:
            assert works(crashed, user) == f"{user} was here\n"  # in 3 tries, 3 s apart
        assert the_record_matches(crashed) == {"hub-admin", *STUDENTS}
        # The server that ran through it all kept its kernel and its variable.
        assert first.run_in(kernel, "print(x + 1)") == "42\n"


@dataclasses.dataclass
class BehindNginx(Hub):
    """A hub whose students come through the bundled nginx (PROXY=nginx), on HTTPS_PORT."""

    https: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https}/{self.name}/"


def dockerd_pid() -> int:
    return int(Path("/var/run/docker.pid").read_text().strip())


def restart_engine(hub: Hub) -> None:
    """Stop this machine's dockerd (SIGTERM: it stops every container, as at shutdown) and start
    it again with invoke engine, as classhub starts it on a server without systemd."""
    if "DOCKER_HOST" in os.environ:
        pytest.fail("this test restarts this machine's own dockerd: unset DOCKER_HOST")
    pid = dockerd_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 180
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.5)
    result = hub.invoke("engine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert dockerd_pid() != pid


def table_in_kernel(hub: Hub) -> bool:
    listed = subprocess.run(["nft", "list", "table", "inet", names.firewall_table(hub.name)],
                            capture_output=True, text=True)  # fmt: skip
    return listed.returncode == 0 and "chain" in listed.stdout


def test_after_the_engine_restarts_everything_comes_back_by_itself(hub: Hub, tmp_path):
    https, http = free_port(), free_port()
    settings = {"HUB_DB": "postgres", "PROXY": "nginx", "HTTPS_PORT": str(https),
                "HTTP_PORT": str(http)}  # fmt: skip
    roster = "hub-admin admin\nann class\nbob class\n"
    with hub_beside(hub, tmp_path, f"{hub.name}r", roster, settings) as beside:
        rebooted = BehindNginx(**{f.name: getattr(beside, f.name)
                                  for f in dataclasses.fields(beside)}, https=https)  # fmt: skip
        ann, _ = (write_own_file(rebooted, user) for user in ("ann", "bob"))
        ann.start_code("import time\nwhile True: time.sleep(1)")  # code running at the restart
        parts = [component for component in rebooted.client.containers.list(
            filters={"label": f"{names.LABEL_HUB}={rebooted.name}"}
        ) if component.labels[names.LABEL_KIND] != "user"]  # fmt: skip
        assert len(parts) == 5, [c.name for c in parts]  # firewall, proxy, db, hub, nginx
        restart_engine(rebooted)
        # The firewall's rules never left the kernel: no server can start unguarded meanwhile.
        assert table_in_kernel(rebooted)
        wait_until_the_hub_answers(rebooted)
        for part in parts:
            deadline = time.monotonic() + 120
            while (status := rebooted.client.containers.get(part.id).status) != "running":
                assert time.monotonic() < deadline, f"{part.name} is {status}"
                time.sleep(0.5)
        # The students' servers stopped with the engine; the hub knows it.
        assert the_record_matches(rebooted) == set()
        for user in ("ann", "bob"):
            assert works(rebooted, user) == f"{user} was here\n"
        assert the_record_matches(rebooted) == {"ann", "bob"}
    wait_until_the_hub_answers(hub)  # the shared hub came back for the tests after this one
