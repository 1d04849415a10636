"""Several hubs on one host (issue: several hubs): same usernames, nothing shared, and setup
refusing a HUB_NAME or PORT that another hub or program holds, before it makes anything."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from classhub import names
from classhub.student import Browser
from tests.conftest import invoke

from .conftest import Hub, engine_environ, free_port, new_checkout, read_passwords, sweep

ROSTER = "hub-admin admin\nann team-a\nbob team-a\ncat\n"
EXTRA = "termcolor==2.5.0"  # the second hub's class's own package (not in the first's image)


@pytest.fixture(scope="module")
def second(hub: Hub, tmp_path_factory):
    """A second hub beside the shared one, with the same three usernames as the first gets."""
    for user in ("ann", "bob", "cat"):
        result = hub.invoke("add-user", user, "--group", "team-a")
        assert result.returncode == 0, result.stdout + result.stderr
    name = "two" + hub.name[3:]  # not the first hub's name and '-': no shared object names
    port = free_port()
    paths = new_checkout(tmp_path_factory.mktemp("second") / "clone", name, port, ROSTER)
    # Its class installs one more package than the first hub's: its notebook image differs.
    (paths.root / "singleuser" / "requirements.txt").write_text(f"tabulate==0.9.0\n{EXTRA}\n")
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield name, port, paths
    finally:
        sweep(hub.client, name)


def has_termcolor(hub: Hub, image: str) -> bool:
    out = hub.client.containers.run(
        image, ["/opt/notebook/bin/python", "-c",
                "import importlib.util; print(importlib.util.find_spec('termcolor') is not None)"],
        entrypoint=[], network_disabled=True, remove=True,
    )  # fmt: skip
    return out.decode().strip() == "True"


def test_each_hub_keeps_the_class_image_it_built(hub: Hub, second):
    """Issue 22: every checkout built classhub-notebook:latest (and classhub-hub:latest), so a
    second hub's setup replaced the image under the first, whose next servers lacked their
    packages."""
    name, _, paths = second
    mine, theirs = (
        hub.client.images.get(hub.image),
        hub.client.images.get(names.notebook_image(name)),
    )
    assert mine.id != theirs.id
    assert has_termcolor(hub, theirs.id) and not has_termcolor(hub, mine.id)
    # Each checkout's build and setup again: both images stay as they are.
    for checkout in (hub.paths, paths):
        again = invoke(checkout, "build", env=engine_environ(), timeout=900)
        assert again.returncode == 0 and "Every image is up to date." in again.stdout, again.stdout
    assert hub.client.images.get(hub.image).id == mine.id
    assert hub.client.images.get(names.notebook_image(name)).id == theirs.id
    # The hub image too is each hub's own (the same build here: one image under two names).
    for each in (hub.name, name):
        running = hub.client.containers.get(names.hub_container(each)).attrs["Config"]["Image"]
        assert running == names.hub_image(each)


def objects(hub: Hub, name: str) -> set[str]:
    flt = {"label": f"{names.LABEL_HUB}={name}"}
    return (
        {c.name for c in hub.client.containers.list(all=True, filters=flt)}
        | {v.name for v in hub.client.volumes.list(filters=flt)}
        | {n.name for n in hub.client.networks.list(filters=flt)}
    )


def test_two_hubs_with_the_same_usernames_share_nothing(hub: Hub, second):
    name, port, paths = second
    assert not {o for o in objects(hub, hub.name) if not o.startswith(hub.name + "-")} - {hub.name}
    assert objects(hub, hub.name).isdisjoint(objects(hub, name))
    first_ann = Browser(hub.url, "ann")
    assert first_ann.login(_password(hub, "ann")).status_code == 302
    first_ann.start()
    first_ann.open_lab()
    first_ann.run("open('hub-one.txt', 'w').write('one'); open('team-a/t.txt', 'w').write('one')")
    second_ann = Browser(f"http://127.0.0.1:{port}/{name}/", "ann")
    assert second_ann.login(read_passwords(paths)["ann"]).status_code == 302
    second_ann.start()
    second_ann.open_lab()
    out = second_ann.run("import os; print(os.path.exists('hub-one.txt'), os.listdir('team-a'))")
    assert out == "False []\n"
    # Each hub answers on its own port and path only.
    assert first_ann.session.get(hub.url + "hub/api/").status_code == 200
    assert second_ann.session.get(f"http://127.0.0.1:{port}/{hub.name}/hub/api/").status_code == 404
    first_ann.stop()
    second_ann.stop()


def _password(hub: Hub, user: str) -> str:
    result = hub.invoke("login", "--name", user)
    assert result.returncode == 0, result.stderr
    return result.stdout.rsplit("Password: ", 1)[1].split()[0]


def refused(root, name: str, port: int, *needles: str, settings: str = "") -> None:
    """Setup in a new checkout (with `settings` lines added to its .env) fails naming the owner,
    before it makes anything anywhere."""
    paths = new_checkout(root, name, port, ROSTER)
    with (paths.root / ".env").open("a") as env:
        env.write(settings)
    before = {v.name for v in docker_client().volumes.list()}
    result = invoke(paths, "setup", env=engine_environ(), timeout=300)
    assert result.returncode == 1, result.stdout[-2000:]
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert {v.name for v in docker_client().volumes.list()} == before, "setup made something"
    assert not (paths.secrets_dir / "cookie_secret").exists(), "setup wrote secrets"


def docker_client():
    import docker

    return docker.from_env(environment=engine_environ())


def test_setup_refuses_a_name_or_port_that_another_hub_or_program_holds(hub: Hub, second, tmp_path):
    name, _, paths = second
    refused(tmp_path / "same-name", name, free_port(), f"HUB_NAME={name} is already the hub of",
            str(paths.root.resolve()))  # fmt: skip
    refused(
        tmp_path / "same-port",
        "thirdhub",
        hub.port,
        f"PORT={hub.port} is published by the hub {hub.name}",
    )
    refused(tmp_path / "prefix", f"{hub.name}-user", free_port(), "would share Docker object names")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        refused(tmp_path / "program", "fourthhub", taken, f"PORT={taken} is in use by the program")


def test_hubs_lists_every_hub_and_routes_each_path_through_nginx(hub: Hub, second, tmp_path):
    name, port, _ = second
    result = hub.invoke("hubs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for hub_name, hub_port in ((hub.name, hub.port), (name, port)):
        row = next(line for line in lines if line.startswith(hub_name + " "))
        assert f"/{hub_name}/" in row and f":{hub_port}" in row and "running" in row
        assert f"location /{hub_name}/ {{" in result.stdout
        assert f"proxy_pass http://127.0.0.1:{hub_port};" in result.stdout
    server = result.stdout[result.stdout.index("# classhub: every hub") :]
    listen = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "pid nginx.pid; error_log stderr; events {}\n"
        "http { access_log off; client_body_temp_path body; proxy_temp_path proxy;\n"
        + server.replace("listen 80;", f"listen 127.0.0.1:{listen};")
        + "}\n"
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [nginx, "-p", str(tmp_path), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode()
    # nginx goes to the background: no pipes for it to keep open.
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    try:
        for hub_name in (hub.name, name):
            page = Browser(f"http://127.0.0.1:{listen}/{hub_name}/", "x").session.get(
                f"http://127.0.0.1:{listen}/{hub_name}/hub/login"
            )
            assert page.status_code == 200 and "login" in page.text.lower(), hub_name
    finally:
        subprocess.run([*command, "-s", "stop"], capture_output=True, timeout=30)


def nft_table_exists(hub: Hub, name: str) -> bool:
    container = hub.client.containers.create(
        names.hub_image(hub.name), ["nft", "list", "table", "inet", names.firewall_table(name)],
        entrypoint=[], network_mode="host", cap_drop=["ALL"], cap_add=["NET_ADMIN"],
    )  # fmt: skip
    try:
        container.start()
        return container.wait(timeout=60)["StatusCode"] == 0
    finally:
        container.remove(force=True)


def test_destroy_lists_asks_and_removes_only_this_hub(hub: Hub, tmp_path):
    name = f"{hub.name}d"
    paths = new_checkout(tmp_path / "clone", name, free_port(), "hub-admin admin\nann t\n")
    try:
        result = invoke(paths, "setup", env=engine_environ(), timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        made = objects(hub, name)
        assert names.user_volume(name, "ann") in made and nft_table_exists(hub, name)
        others = objects(hub, hub.name)

        asked = invoke(paths, "destroy", env=engine_environ())
        assert asked.returncode == 1 and "add --yes" in asked.stderr
        assert f"volume    {names.user_volume(name, 'ann')}" in asked.stdout
        assert objects(hub, name) == made, "nothing is removed without confirmation"

        done = invoke(paths, "destroy", "--yes", env=engine_environ(), timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert objects(hub, name) == set()
        assert not nft_table_exists(hub, name)
        assert objects(hub, hub.name) == others, "another hub lost something"
        assert (paths.root / "userlist").exists() and (paths.secrets_dir / "cookie_secret").exists()
    finally:
        sweep(hub.client, name)
