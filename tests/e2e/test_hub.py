"""A real hub on the real engine, used as students and an administrator use it.

Tests share one hub (tests/e2e/conftest.py); each uses its own users or restores what it changes.
"""

from __future__ import annotations

import re
import time

import requests

from classhub import names
from classhub.student import Browser

from .conftest import Hub


def logged_in(hub: Hub, user: str) -> Browser:
    browser = Browser(hub.url, user)
    response = browser.login(hub.passwords[user])
    assert response.status_code == 302, (response.status_code, response.text[:500])
    return browser


def running_server(hub: Hub, user: str) -> Browser:
    browser = logged_in(hub, user)
    hub.figures.setdefault(f"spawn {user}, request to ready (s)", browser.start())
    lab = browser.open_lab()
    assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
    return browser


def test_setup_printed_the_nginx_block_and_the_admins_login(hub: Hub):
    assert f"location /{hub.name}/ {{" in hub.setup_output
    assert "Username: hub-admin" in hub.setup_output
    # Its last lines: the front door this hub has (its port on 127.0.0.1), and the way out.
    assert "Students reach the hub through your nginx" in hub.setup_output
    assert "That URL works only on this server" in hub.setup_output.splitlines()[-1]
    assert hub.passwords["hub-admin"] in hub.setup_output


def test_the_login_page_shows_the_hubs_title_and_where_passwords_come_from(hub: Hub):
    page = requests.get(hub.url + "hub/login", timeout=30)
    assert page.status_code == 200
    assert re.search(rf"<title>\s*{hub.name}\s*</title>", page.text), page.text[:500]
    intro = re.search(r'id="classhub-login-intro">(.*?)</div>', page.text, re.S)
    assert intro, page.text[:2000]
    assert f'<h1 id="classhub-title">{hub.name}</h1>' in intro.group(1)
    assert "Your instructor gives you your user name and password." in intro.group(1)
    assert "alert" not in page.text.split('id="classhub-login-intro"')[0].rsplit("<div", 1)[1]


def test_a_student_runs_code_in_their_own_container(hub: Hub):
    started = time.monotonic()
    browser = running_server(hub, "student1")
    out = browser.run("import os, socket; print(6 * 7, os.getuid(), os.getgid(), os.getcwd())")
    hub.figures["spawn to first kernel output (s)"] = time.monotonic() - started
    assert out.split() == ["42", "1000", "100", "/home/jovyan"]
    container = hub.client.containers.get(names.user_container(hub.name, "student1"))
    assert container.attrs["Config"]["Image"] == hub.image
    assert container.attrs["HostConfig"]["Memory"] == 1024**3
    assert container.attrs["HostConfig"]["NanoCpus"] or container.attrs["HostConfig"]["CpuQuota"]
    # The hub gets the CPU before the students' servers (runtime/single_host/stack.py's FIRST; Docker's default is 1024).
    shares = hub.client.containers.get(names.hub_container(hub.name)).attrs["HostConfig"]
    assert shares["CpuShares"] == 4096 and container.attrs["HostConfig"]["CpuShares"] in (0, 1024)
    mounts = {m["Name"]: m["Destination"] for m in container.attrs["Mounts"] if m.get("Name")}
    assert mounts == {
        names.user_volume(hub.name, "student1"): "/home/jovyan",
        names.group_volume(hub.name, "team-1"): "/home/jovyan/team-1",
        f"{hub.name}-shared": "/home/jovyan/shared",  # SHARED_DATA, read-only
    }
    # The Python environment belongs to root: a student cannot break it.
    out = browser.run(
        "import os, sys; print(os.stat(sys.prefix).st_uid, os.access(sys.prefix, os.W_OK))"
    )
    assert out.split() == ["0", "False"]
    # run() stops its kernel; with keep (what the rehearsal's students do) the kernel stays.
    assert browser.server_api("GET", "/kernels").json() == []
    browser.run("print(1)", keep=True)
    assert len(browser.server_api("GET", "/kernels").json()) == 1


def test_home_survives_stop_start_and_down_up(hub: Hub):
    browser = running_server(hub, "student2")
    browser.run(
        "import pathlib; pathlib.Path('notes.txt').write_text('kept'); "
        "pathlib.Path('.local/lib').mkdir(parents=True, exist_ok=True); "
        "pathlib.Path('.local/lib/mine').write_text('local')"
    )
    container = names.user_container(hub.name, "student2")
    browser.stop()
    assert container not in {c.name for c in hub.client.containers.list(all=True)}, (
        "a stopped server's container is removed"
    )
    browser.start()
    browser.open_lab()  # the new server's OAuth round trip, as a reloaded page does
    assert browser.run("print(open('notes.txt').read(), open('.local/lib/mine').read())") == (
        "kept local\n"
    )

    down = hub.invoke("down")
    assert down.returncode == 0, down.stderr
    ours = hub.client.containers.list(filters={"label": f"{names.LABEL_HUB}={hub.name}"})
    assert ours == [], "invoke down leaves nothing of this hub running"
    up = hub.invoke("up")
    assert up.returncode == 0, up.stdout + up.stderr
    again = logged_in(hub, "student2")
    again.start()
    again.open_lab()
    assert again.run("print(open('notes.txt').read())") == "kept\n"
    again.stop()


def test_teammates_share_their_group_folder_and_others_do_not_see_it(hub: Hub):
    first = running_server(hub, "student1")
    second = running_server(hub, "student2")
    first.run("open('team-1/plan.txt', 'w').write('from student1\\n')")
    second.run("open('team-1/plan.txt', 'a').write('edited by student2\\n')")
    out = first.run(
        "import os, stat; st = os.stat('team-1/plan.txt'); "
        "print(open('team-1/plan.txt').read(), stat.filemode(st.st_mode), st.st_gid)"
    )
    assert out.split("\n")[:2] == ["from student1", "edited by student2"]
    assert out.split()[-2:] == ["-rw-rw-r--", "100"]
    other = running_server(hub, "student3")
    assert other.run(
        "import os; print(sorted(p for p in os.listdir('.') if p.startswith('team')))"
    ) == ("['team-2']\n")
    folder = first.run("import os, stat; print(stat.filemode(os.stat('team-1').st_mode))")
    assert folder.strip() == "drwxrwsr-x"


def test_a_wrong_password_gets_403_and_no_server(hub: Hub):
    browser = Browser(hub.url, "student4")
    response = browser.login("not-" + hub.passwords["student4"])
    assert response.status_code == 403
    assert "jupyterhub-hub-login" not in browser.session.cookies
    assert browser.hub_api("POST", "/users/student4/server").status_code == 403
    unknown = Browser(hub.url, "nobody").login(hub.passwords["student4"])
    assert unknown.status_code == 403
    assert names.user_container(hub.name, "student4") not in {
        c.name for c in hub.client.containers.list(all=True)
    }


def test_a_student_cannot_reach_another_students_server(hub: Hub):
    running_server(hub, "student1")
    intruder = logged_in(hub, "student4")
    response = intruder.session.get(hub.url + "user/student1/api/contents")
    assert response.status_code == 403, (response.status_code, response.url)
    # The hub answers 404 rather than confirm that another user exists.
    assert intruder.hub_api("POST", "/users/student1/server").status_code in (403, 404)
    assert intruder.hub_api("DELETE", "/users/student1/server").status_code in (403, 404)
    assert intruder.hub_api("GET", "/users/student1").status_code in (403, 404)
    # Without cookies at all: the proxy sends the request to the hub's login.
    anonymous = requests.get(hub.url + "user/student1/api/contents", allow_redirects=False)
    assert anonymous.status_code in (302, 403)


def test_a_second_setup_changes_nothing(hub: Hub):
    container = hub.client.containers.get(names.hub_container(hub.name))
    before = (container.id, container.attrs["State"]["StartedAt"])
    volumes = sorted(
        v.id for v in hub.client.volumes.list(filters={"label": f"{names.LABEL_HUB}={hub.name}"})
    )
    started = time.monotonic()
    result = hub.invoke("setup")
    hub.figures["setup, warm (s)"] = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Nothing to change: everything is already set up." in result.stdout
    container.reload()
    assert (container.id, container.attrs["State"]["StartedAt"]) == before
    assert (
        sorted(
            v.id
            for v in hub.client.volumes.list(filters={"label": f"{names.LABEL_HUB}={hub.name}"})
        )
        == volumes
    )


def test_engine_task_sees_the_running_engine(hub: Hub):
    result = hub.invoke("engine")
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout


def test_add_group_and_add_user_reach_the_running_hub_without_restarts(hub: Hub):
    hub_container = hub.client.containers.get(names.hub_container(hub.name))
    hub_started = hub_container.attrs["State"]["StartedAt"]
    running_server(hub, "student1")
    user_container = hub.client.containers.get(names.user_container(hub.name, "student1"))
    user_started = user_container.attrs["State"]["StartedAt"]
    # A change to the class's image is pending (setup would build it): adding people builds
    # nothing and replaces nothing.
    dockerfile = hub.paths.root / "singleuser" / "Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original + "# a change the instructor has not built yet\n")
    images = {tag: hub.client.images.get(tag).id for tag in (names.hub_image(hub.name), hub.image)}
    try:
        _add_people(hub)
    finally:
        dockerfile.write_text(original)
    assert {tag: hub.client.images.get(tag).id for tag in images} == images
    assert hub.client.containers.get(names.hub_container(hub.name)).id == hub_container.id
    password = (
        hub.invoke("login", "--name", "student5").stdout.rsplit("Password: ", 1)[1].split()[0]
    )

    newcomer = Browser(hub.url, "student5")
    assert newcomer.login(password).status_code == 302
    newcomer.start()
    newcomer.open_lab()
    assert newcomer.run("import os; print(os.path.isdir('team-3'))") == "True\n"
    newcomer.stop()

    hub_container.reload()
    user_container.reload()
    assert hub_container.attrs["State"]["StartedAt"] == hub_started, "the hub was not restarted"
    assert user_container.attrs["State"]["StartedAt"] == user_started, "nor a user's server"

    # Taken off the roster: can no longer log in.
    lines = hub.paths.userlist.read_text().splitlines()
    hub.paths.userlist.write_text(
        "\n".join(x for x in lines if not x.startswith("student5")) + "\n"
    )
    result = hub.invoke("setup")
    assert result.returncode == 0, result.stdout + result.stderr
    assert Browser(hub.url, "student5").login(password).status_code == 403


def _add_people(hub: Hub) -> None:
    result = hub.invoke("add-group", "team-3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "group: team-3" in hub.paths.userlist.read_text()
    hub.client.volumes.get(names.group_volume(hub.name, "team-3"))
    result = hub.invoke("add-user", "student5", "--group", "team-3")
    assert result.returncode == 0, result.stdout + result.stderr
    password = result.stdout.rsplit("Password: ", 1)[1].split()[0]
    assert result.stdout.count(password) == 1  # the login, printed once
    again = hub.invoke("add-user", "student5", "--group", "team-3")  # said in plain words
    assert again.returncode == 0 and "student5 is already on the roster (userlist:" in again.stdout
    assert ", in team-3; nothing to add." in again.stdout and password in again.stdout
    result = hub.invoke("add-group", "team-3", "--members", "student1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        hub.invoke("add-group", "team-3", "--members", "student1").returncode == 0
    )  # again: no-op


def test_hub_restart_keeps_user_servers_running(hub: Hub):
    browser = running_server(hub, "student3")
    user_container = hub.client.containers.get(names.user_container(hub.name, "student3"))
    started = user_container.attrs["State"]["StartedAt"]
    hub.client.containers.get(names.hub_container(hub.name)).restart(timeout=20)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(hub.url + "hub/api/", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    user_container.reload()
    assert user_container.status == "running"
    assert user_container.attrs["State"]["StartedAt"] == started
    # The proxy's routes come back with the hub: the same session reaches the same kernel host.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if browser.server_api("GET", "/status").status_code == 200:
            break
        time.sleep(0.5)
    assert browser.run("print('still here')") == "still here\n"
