"""A term with a class: roster edits reach the running hub with `invoke sync`, nothing restarts,
and nobody's files are lost (issue: a term with a class).

These tests edit the shared hub's `userlist` with users of their own, and leave the roster's first
users (student1..4) as they found them.
"""

from __future__ import annotations

import io
import json
import tarfile
import time

import docker.errors
import pytest

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke

from .conftest import (
    LAB_OVERRIDES,
    Hub,
    engine_environ,
    free_port,
    new_checkout,
    read_passwords,
    sweep,
)
from .test_hub import running_server


def edit_roster(hub: Hub, add: str = "", drop: tuple[str, ...] = ()) -> None:
    lines = [
        line
        for line in hub.paths.userlist.read_text().splitlines()
        if not line.split() or line.split()[0] not in drop
    ]
    hub.paths.userlist.write_text("\n".join(lines) + "\n" + add)


def sync(hub: Hub, *args: str) -> str:
    result = hub.invoke("sync", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def password(hub: Hub, user: str) -> str:
    result = hub.invoke("login", "--name", user)
    assert result.returncode == 0, result.stderr
    return result.stdout.rsplit("Password: ", 1)[1].split()[0]


def logged_in_as(hub: Hub, user: str) -> Browser:
    browser = Browser(hub.url, user)
    assert browser.login(password(hub, user)).status_code == 302
    return browser


def started_at(hub: Hub, container: str) -> tuple[str, str]:
    found = hub.client.containers.get(container)
    return found.id, found.attrs["State"]["StartedAt"]


def volume_file(hub: Hub, volume: str, path: str) -> str:
    """A file's text read straight from a volume, as an administrator on the host would (copied
    out of a container that never runs: no log to race with)."""
    container = hub.client.containers.create(
        hub.image, ["true"], volumes={volume: {"bind": "/v", "mode": "ro"}},
        network_disabled=True,
    )  # fmt: skip
    try:
        stream, _ = container.get_archive(f"/v/{path}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read().decode()
    finally:
        container.remove()


def test_a_late_student_logs_in_after_sync_and_nothing_restarts(hub: Hub):
    running_server(hub, "student1")
    before = started_at(hub, names.user_container(hub.name, "student1"))
    hub_before = started_at(hub, names.hub_container(hub.name))
    edit_roster(hub, add="late1 team-1\n")
    plan = sync(hub, "--dry-run")
    assert "add user(s) late1" in plan and "Dry run" in plan
    synced = sync(hub)
    assert synced.count("-> ") >= 2  # a password, the hub file, the volume, the hub user
    # The new student's login, as add-user prints it, is the one that works.
    assert "Username: late1" in synced and f"Password: {password(hub, 'late1')}" in synced
    late = logged_in_as(hub, "late1")
    late.start()
    late.open_lab()
    assert late.run("import os; print(os.path.isdir('team-1'))") == "True\n"
    late.stop()
    assert started_at(hub, names.user_container(hub.name, "student1")) == before
    assert started_at(hub, names.hub_container(hub.name)) == hub_before
    assert "Nothing to change." in sync(hub)


def test_moving_a_student_between_teams_takes_effect_at_their_next_start(hub: Hub):
    edit_roster(hub, add="mover team-1\n")
    sync(hub)
    browser = logged_in_as(hub, "mover")
    browser.start()
    browser.open_lab()
    assert browser.run("import os; print(os.path.isdir('team-1'), os.path.isdir('team-2'))") == (
        "True False\n"
    )
    edit_roster(hub, add="mover team-2\n", drop=("mover",))
    out = sync(hub)
    assert "change the members of team-1, team-2" in out
    assert "Waiting for a restart" in out and "mover (+team-2, -team-1)" in out
    status = hub.invoke("status")
    assert "mover (+team-2, -team-1)" in status.stdout
    # The running server keeps its folders until it restarts.
    assert browser.run("import os; print(os.path.isdir('team-1'))") == "True\n"
    browser.stop()
    browser.start()
    browser.open_lab()
    assert browser.run("import os; print(os.path.isdir('team-1'), os.path.isdir('team-2'))") == (
        "False True\n"
    )
    browser.stop()
    assert "mover" not in hub.invoke("status").stdout.split("Waiting for a restart")[-1]


def test_a_removed_student_is_stopped_refused_and_keeps_their_files(hub: Hub):
    edit_roster(hub, add="leaver team-2\ngroup: old-project\n")
    sync(hub)
    group_volume = names.group_volume(hub.name, "old-project")
    hub.client.volumes.get(group_volume)
    secret = password(hub, "leaver")
    browser = logged_in_as(hub, "leaver")
    browser.start()
    browser.open_lab()
    browser.run("open('essay.txt', 'w').write('my essay')")
    container = names.user_container(hub.name, "leaver")
    volume = names.user_volume(hub.name, "leaver")

    result = hub.invoke("remove-user", "leaver")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remove user(s) leaver" in result.stdout
    with pytest.raises(docker.errors.NotFound):
        hub.client.containers.get(container)
    assert Browser(hub.url, "leaver").login(secret).status_code == 403
    assert "leaver" not in hub.paths.userlist.read_text()
    assert volume_file(hub, volume, "essay.txt") == "my essay"

    edit_roster(hub, drop=("group:",))
    out = sync(hub)
    assert "remove group(s) old-project" in out
    hub.client.volumes.get(group_volume)  # kept
    status = hub.invoke("status").stdout
    assert "Detached volumes" in status and volume in status and group_volume in status

    # --purge asks first: without a terminal and without --yes, nothing is deleted.
    refused = hub.invoke("remove-user", "leaver", "--purge")
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert volume_file(hub, volume, "essay.txt") == "my essay"
    purged = hub.invoke("remove-user", "leaver", "--purge", "--yes")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert f"This deletes, for good: the volume {volume}" in purged.stdout
    with pytest.raises(docker.errors.NotFound):
        hub.client.volumes.get(volume)


def test_per_user_and_per_group_limits_reach_the_containers_cgroup(hub: Hub):
    edit_roster(hub, add="bigger team-1 mem=768M\nteamed quota-team\ngroup: quota-team cpu=0.5\n")
    sync(hub)
    cgroup = (
        "import os\n"
        "for path in ('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'):\n"
        "    if os.path.exists(path):\n"
        "        print(open(path).read().strip())\n"
        "        break\n"
    )
    bigger = logged_in_as(hub, "bigger")
    bigger.start()
    bigger.open_lab()
    assert bigger.run(cgroup).strip() == str(768 * 1024**2)
    host = hub.client.containers.get(names.user_container(hub.name, "bigger")).attrs["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["CpuQuota"]) == (768 * 1024**2,) * 2 + (
        100_000,
    )
    bigger.stop()
    teamed = logged_in_as(hub, "teamed")
    teamed.start()
    host = hub.client.containers.get(names.user_container(hub.name, "teamed")).attrs["HostConfig"]
    assert (host["Memory"], host["CpuQuota"]) == (1024**3, 50_000)  # the default mem, group cpu
    teamed.stop()


def test_shared_data_is_read_only_for_students_and_writable_for_admins(hub: Hub):
    admin = running_server(hub, "hub-admin")
    admin.run("open('shared/syllabus.txt', 'w').write('week 1: python')")
    student = running_server(hub, "student2")
    out = student.run(
        "print(open('shared/syllabus.txt').read())\n"
        "for attempt in ('shared/mine.txt', 'shared/syllabus.txt'):\n"
        "    try:\n"
        "        open(attempt, 'a').write('x')\n"
        "        print('written')\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    assert out.split("\n")[:3] == ["week 1: python", "OSError", "OSError"], out
    assert volume_file(hub, f"{hub.name}-shared", "syllabus.txt") == "week 1: python"


def test_admins_see_every_students_home_and_students_see_none(hub: Hub):
    running_server(hub, "student1").run("open('for-the-teacher.txt', 'w').write('hello')")
    admin = running_server(hub, "hub-admin")
    out = admin.run(
        "import os\n"
        "print(*sorted(os.listdir('users')))\n"
        "print(open('users/student1/for-the-teacher.txt').read())\n"
    )
    listed, text = out.split("\n")[:2]
    assert {"student1", "student2", "student3", "student4"} <= set(listed.split()), listed
    assert "hub-admin" not in listed.split() and text == "hello"
    assert (
        running_server(hub, "student3").run("import os; print(os.path.exists('users'))")
        == "False\n"
    )


NEWS = "@jupyterlab/apputils-extension:notification"


def test_the_classs_packages_and_lab_settings_are_in_every_server(hub: Hub):
    browser = running_server(hub, "student4")
    out = browser.run(
        "import json, sys, tabulate\n"
        "print(tabulate.__version__)\n"
        "print(json.load(open(sys.prefix + '/share/jupyter/lab/settings/overrides.json')))\n"
    )
    version, overrides = out.strip().split("\n")
    assert version == "0.9.0"
    # The class's settings over classhub's own default: no news pop-up for every student.
    assert overrides == str({NEWS: {"fetchNews": "false"}, **LAB_OVERRIDES})
    news = browser.session.get(browser.server_url + f"lab/api/settings/{NEWS}")
    assert news.status_code == 200, news.status_code
    assert news.json()["schema"]["properties"]["fetchNews"]["default"] == "false", news.text
    settings = browser.session.get(
        browser.server_url + "lab/api/settings/@jupyterlab/notebook-extension:tracker"
    )
    assert settings.status_code == 200
    defaults = settings.json()["schema"]["properties"]["codeCellConfig"]["default"]
    assert defaults.get("lineNumbers") is True, defaults


def test_build_rebuilds_only_on_change_and_status_names_outdated_servers(hub: Hub):
    browser = running_server(hub, "student3")
    unchanged = hub.invoke("build")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "Every image is up to date." in unchanged.stdout
    overrides = hub.paths.root / "singleuser" / "overrides.json"
    original = overrides.read_text()
    overrides.write_text(json.dumps({**LAB_OVERRIDES, "@jupyterlab/apputils-extension:themes": {}}))
    try:
        built = hub.invoke("build", timeout=900)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        assert "notebook image" in built.stdout and "Images built." in built.stdout
        assert "student3 (new image)" in built.stdout
        assert "student3 (new image)" in hub.invoke("status").stdout
        assert browser.run("print('still on the old image')") == "still on the old image\n"
        browser.stop()
        browser.start()
        assert "student3 (" not in hub.invoke("status").stdout
    finally:
        overrides.write_text(original)
    browser.stop()


def test_a_group_with_its_own_image_gets_it_and_others_do_not(hub: Hub):
    alt = f"{hub.name}-alt:latest"
    hub.client.images.get(hub.image).tag(alt)
    proxy = hub.client.containers.get(names.socket_proxy_container(hub.name)).id
    try:
        edit_roster(hub, add=f"artist special\ngroup: special image={alt}\n")
        sync(hub)  # the proxy reads the group's image from the rewritten hub file (checked below)
        artist = logged_in_as(hub, "artist")
        artist.start()
        container = hub.client.containers.get(names.user_container(hub.name, "artist"))
        assert container.attrs["Config"]["Image"] == alt
        artist.stop()
        running_server(hub, "student1")
        other = hub.client.containers.get(names.user_container(hub.name, "student1"))
        assert other.attrs["Config"]["Image"] == hub.image
        assert hub.client.containers.get(names.socket_proxy_container(hub.name)).id == proxy
    finally:
        edit_roster(hub, drop=("artist", "group:"))
        sync(hub)
        hub.client.images.remove(alt, noprune=True)


def test_idle_servers_are_culled_and_keep_their_files_busy_ones_run_on(hub: Hub, tmp_path):
    """A hub of its own with CULL_IDLE_TIMEOUT=30s: an idle server is stopped, its files stay;
    a server whose kernel computes silently is not (CULL_BUSY=false, the default)."""
    name = f"{hub.name}cull"
    port = free_port()
    paths = new_checkout(tmp_path / "clone", name, port, "hub-admin admin\nidler\nworker\n")
    with (paths.root / ".env").open("a") as env:
        env.write("CULL_IDLE_TIMEOUT=30s\n")
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        url = f"http://127.0.0.1:{port}/{name}/"
        secrets = read_passwords(paths)
        idler, worker = Browser(url, "idler"), Browser(url, "worker")
        for browser in (idler, worker):
            assert browser.login(secrets[browser.user]).status_code == 302
            browser.start()
            browser.open_lab()
        idler.run("open('draft.txt', 'w').write('unsaved thoughts')")
        worker.start_code("import time\ntime.sleep(600)")  # silent for ten minutes
        started = time.monotonic()
        while idler.hub_api("GET", "/users/idler").json().get("servers"):
            assert time.monotonic() - started < 150, "the idle server was never culled"
            time.sleep(2)
        hub.figures["cull: idle server stopped after (s)"] = time.monotonic() - started
        assert worker.hub_api("GET", "/users/worker").json().get("servers"), (
            "the server with a busy kernel was culled"
        )
        assert volume_file(hub, names.user_volume(name, "idler"), "draft.txt") == (
            "unsaved thoughts"
        )
    finally:
        sweep(hub.client, name)


def test_restart_server_gives_a_stuck_student_a_new_server_and_keeps_their_files(hub: Hub):
    browser = running_server(hub, "student3")
    browser.run("open('before-restart.txt', 'w').write('kept')")
    before = started_at(hub, names.user_container(hub.name, "student3"))
    result = hub.invoke("restart-server", "student3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 server(s) restarted and ready." in result.stdout
    assert started_at(hub, names.user_container(hub.name, "student3")) != before
    browser.open_lab()
    assert browser.run("print(open('before-restart.txt').read())") == "kept\n"
    # A group's: only the members whose servers run (student4's is stopped first).
    other = logged_in_as(hub, "student4")
    if other.hub_api("GET", "/users/student4").json().get("servers"):
        other.stop()
    group = hub.invoke("restart-server", "team-2", "--group")
    assert group.returncode == 0, group.stdout + group.stderr
    assert "Restarting the server(s) of: student3 (their files stay)" in group.stdout
    assert not other.hub_api("GET", "/users/student4").json().get("servers")
    typo = hub.invoke("restart-server", "studnet3")
    assert typo.returncode == 1 and "did you mean student3?" in typo.stderr
    forgot = hub.invoke("restart-server", "team-2")
    assert forgot.returncode == 1 and "invoke restart-server team-2 --group" in forgot.stderr
