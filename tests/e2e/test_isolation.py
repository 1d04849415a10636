"""Attacks from inside a student's container, and what each must run into (issue: isolation).

Each test runs code in a student's kernel, as a student would, against the shared e2e hub. Where a
defence could only be shown by something being absent, the test first shows that the target is
really there (a listener that the hub, or the host, does reach).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from pathlib import Path

import docker.errors
import pytest
import requests

from classhub import hubfile, names
from classhub.errors import UserError
from classhub.runtime.single_host import stack
from classhub.student import Browser, KernelDied, StudentError
from classhub_hub import firewall
from tests.conftest import invoke, plan_rows

from .conftest import (
    Hub,
    engine_environ,
    free_port,
    gateway,
    hub_beside,
    new_checkout,
    sweep,
)
from .test_hub import logged_in, running_server
from .test_hubs import refused

PROBE = """
import socket
def probe(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError as exc:
        return type(exc).__name__
"""


def user_ip(hub: Hub, user: str) -> str:
    container = hub.client.containers.get(names.user_container(hub.name, user))
    return container.attrs["NetworkSettings"]["Networks"][names.network(hub.name)]["IPAddress"]


def exec_in_hub(hub: Hub, code: str) -> str:
    container = hub.client.containers.get(names.hub_container(hub.name))
    result = container.exec_run(["python3", "-c", code])
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode()


# --- 1. no Docker API for students ------------------------------------------------------------


def test_setup_refuses_a_volume_classhub_made_or_dockers_own_data_as_shared_data(
    hub: Hub, tmp_path
):
    """Issue "Security" 4: SHARED_DATA naming the hub's own database volume put it in every
    student's server, read-only for them, writable for admins. Another hub's volume, by its
    labels, and the folder Docker keeps every volume in are refused too, before anything is made."""
    name = "shd" + hub.name[3:]
    root = hub.client.info()["DockerRootDir"]
    for n, (shared, needle) in enumerate([
        (names.hub_data_volume(name), f"SHARED_DATA={name}-data is the hub's database of this hub"),
        (names.user_volume(hub.name, "student1"),
         f"is a volume classhub made for the hub {hub.name} (user)"),
        (f"{root}/volumes", "holds or lies in the Docker engine's data"),
        ("/", "would give every student this server's whole filesystem"),
    ]):  # fmt: skip
        refused(
            tmp_path / str(n),
            name,
            free_port(),
            needle,
            "SHARED_DATA=",
            settings=f"SHARED_DATA={shared}\n",
        )


def test_students_have_no_docker_socket_and_cannot_reach_the_proxy(hub: Hub):
    browser = running_server(hub, "student1")
    proxy = hub.client.containers.get(names.socket_proxy_container(hub.name))
    proxy_ip = proxy.attrs["NetworkSettings"]["Networks"][names.socket_network(hub.name)][
        "IPAddress"
    ]
    out = browser.run(
        PROBE
        + "import os\n"
        + "print(os.path.exists('/var/run/docker.sock'), 'DOCKER_HOST' in os.environ)\n"
        + f"print(probe({proxy_ip!r}, {hubfile.SOCKET_PROXY_PORT}))\n"
        + f"print(probe({names.socket_proxy_container(hub.name)!r}, 2375))\n"
    )
    socket_file, docker_host, by_address, by_name = out.split()
    assert (socket_file, docker_host, by_name) == ("False", "False", "gaierror"), out
    assert by_address in ("TimeoutError", "ConnectionRefusedError", "OSError"), out
    # The proxy does answer there: the hub reaches it by name.
    version = exec_in_hub(
        hub,
        "import docker; print(docker.from_env().version()['ApiVersion'])",
    )
    assert version.strip()


def test_the_hub_holds_no_docker_socket_and_the_proxy_refuses_what_spawning_does_not_need(hub: Hub):
    container = hub.client.containers.get(names.hub_container(hub.name))
    assert not [m for m in container.attrs["Mounts"] if "docker.sock" in m.get("Source", "")]
    # A hub taken over by a student: every dangerous call is refused by the proxy.
    out = exec_in_hub(
        hub,
        f"""
import docker
client = docker.from_env()
attempts = {{
    "list containers": lambda: client.containers.list(),
    "privileged container": lambda: client.containers.create(
        "{hub.image}", name="{hub.name}-user-student1", privileged=True,
        labels={{"classhub.hub": "{hub.name}", "classhub.kind": "user"}}),
    "mount the host": lambda: client.containers.create(
        "{hub.image}", name="{hub.name}-user-student1", volumes={{"/": {{"bind": "/host"}}}},
        labels={{"classhub.hub": "{hub.name}", "classhub.kind": "user"}}),
    "stop the hub": lambda: client.api.stop("{hub.name}"),
    "exec": lambda: client.api.exec_create("{hub.name}-firewall", "true"),
    "pull": lambda: client.images.pull("busybox"),
}}
for what, attempt in attempts.items():
    try:
        attempt()
        print(what, "ALLOWED")
    except docker.errors.APIError as exc:
        print(what, exc.status_code, "classhub docker proxy" in str(exc))
""",
    )
    for line in out.strip().splitlines():
        assert line.endswith("403 True"), out
    assert len(out.strip().splitlines()) == 6


def test_the_proxy_refuses_a_hardened_container_whose_mount_reaches_the_host(hub: Hub):
    """Issue "Security" 3: a volume whose driver options bind a host folder passed the proxy, as
    its check read a mount's type and source only. Each container here is hardened as a user
    container must be, named as a student's and with her image; only its mount (or unmasked
    /proc) differs."""
    out = exec_in_hub(
        hub,
        f"""
import docker
from docker.types import DriverConfig, Mount
api = docker.from_env().api
def hardened(**extra):
    return api.create_host_config(
        network_mode="{names.network(hub.name)}", cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], pids_limit=64, mem_limit="256m",
        memswap_limit="256m", cpu_period=100000, cpu_quota=50000, read_only=True,
        tmpfs={hubfile.USER_TMPFS!r}, **extra)
host_folder = DriverConfig("local", {{"type": "none", "o": "bind", "device": "/"}})
attempts = {{
    "VolumeOptions": [Mount("/home/jovyan/host", "{hub.name}-user-evil", driver_config=host_folder)],
    "BindOptions": [Mount("/home/jovyan/x", "{hub.name}-user-student1", type="bind",
                          propagation="rshared")],
    "MaskedPaths": None,
}}
for what, mounts in attempts.items():
    config = hardened(mounts=mounts) if mounts else hardened()
    if what == "MaskedPaths":
        config["MaskedPaths"] = []
    try:
        api.create_container("{hub.image}", name="{hub.name}-user-student1",
                             labels={{"classhub.hub": "{hub.name}", "classhub.kind": "user"}},
                             host_config=config)
        print(what, "ALLOWED")
    except docker.errors.APIError as exc:
        print(what, exc.status_code, what in str(exc))
""",
    )
    assert out.split() == ["VolumeOptions", "403", "True", "BindOptions", "403", "True",
                           "MaskedPaths", "403", "True"], out  # fmt: skip
    with pytest.raises(docker.errors.NotFound):
        hub.client.volumes.get(f"{hub.name}-user-evil")


def test_students_cannot_reach_docker_tcp_ports_on_the_gateway(hub: Hub):
    browser = running_server(hub, "student2")
    address = gateway(hub.client, names.network(hub.name))
    listeners = []
    for port in (2375, 2376, 0):  # 0: any free port, a service of this server's own
        server = socket.create_server((address, port))
        listeners.append(server)
        threading.Thread(target=_accept_forever, args=(server,), daemon=True).start()
    try:
        ports = [s.getsockname()[1] for s in listeners]
        out = browser.run(PROBE + f"print(*[probe({address!r}, p) for p in {ports}])")
        assert out.split() == ["ConnectionRefusedError"] * 3, out  # this server is off limits
        # The listeners answer at all: the hub (whom the egress policy does not limit) reaches the
        # third; Docker's ports stay refused to it too.
        reach = exec_in_hub(hub, PROBE + f"print(*[probe({address!r}, p) for p in {ports}])")
        assert reach.split() == ["ConnectionRefusedError", "ConnectionRefusedError", "open"], reach
    finally:
        for server in listeners:
            server.close()


def _accept_forever(server: socket.socket) -> None:
    try:
        while True:
            conn, _ = server.accept()
            conn.close()
    except OSError:
        pass


# --- 2. no lateral movement -------------------------------------------------------------------


def test_students_cannot_reach_each_other_nor_the_hubs_proxy_port_but_reach_its_api(hub: Hub):
    """Issue \"Security\" 6: students posted wrong passwords straight to the proxy's port, past
    nginx's login limit. They need the hub's API only (OAuth, activity)."""
    victim = running_server(hub, "student1")
    # The victim opens a port of their own, in a process that outlives the kernel.
    victim.run(
        "import subprocess; subprocess.Popen(['python3', '-m', 'http.server', '9999'], "
        "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    )
    target = user_ip(hub, "student1")
    deadline = time.monotonic() + 20
    while "open" not in victim.run(PROBE + "print(probe('127.0.0.1', 9999))"):
        assert time.monotonic() < deadline, "the victim's own listener never came up"
        time.sleep(0.5)
    # The hub reaches both ports: they are open and the firewall lets the hub through.
    reach = exec_in_hub(hub, PROBE + f"print(probe({target!r}, 8888), probe({target!r}, 9999))")
    assert reach.split() == ["open", "open"]

    attacker = running_server(hub, "student3")
    hub_name = names.hub_container(hub.name)
    out = attacker.run(
        PROBE
        + "import os, urllib.request, json\n"
        + f"print(probe({target!r}, 8888), probe({target!r}, 9999))\n"
        + "api = urllib.request.urlopen(os.environ['JUPYTERHUB_API_URL'], timeout=5)\n"
        + "print(api.status, 'version' in json.load(api))\n"
        + f"print(probe({hub_name!r}, {hubfile.PROXY_PORT}))\n"
    )
    assert out.split() == [
        "ConnectionRefusedError",
        "ConnectionRefusedError",
        "200",
        "True",
        "ConnectionRefusedError",
    ], out
    # The proxy's port is there: the host reaches it (the hub's published port leads to it).
    assert requests.get(hub.url + "hub/api/", timeout=10).status_code == 200


def test_one_student_cannot_hold_every_connection_to_the_hub(hub: Hub):
    """Issue "Security" 6: one student opened 2,000 idle connections to the hub's proxy in a
    second. The firewall lets one address hold at most MAX_CONNECTIONS to the hub at once."""
    hoarder = running_server(hub, "student3")
    bystander = running_server(hub, "student2")
    out = hoarder.run(
        "import os, socket, urllib.parse\n"
        "api = urllib.parse.urlsplit(os.environ['JUPYTERHUB_API_URL'])\n"
        "held, refused = [], 0\n"
        "for _ in range(300):\n"
        "    try:\n"
        "        held.append(socket.create_connection((api.hostname, api.port), timeout=3))\n"
        "    except OSError:\n"
        "        refused += 1\n"
        "print(len(held), refused)\n"
        "for sock in held:\n"
        "    sock.close()\n",
        timeout=120,
    )
    held, refused = (int(n) for n in out.split())
    assert held <= firewall.MAX_CONNECTIONS and refused >= 300 - firewall.MAX_CONNECTIONS, out
    assert held >= firewall.MAX_CONNECTIONS // 2, out  # its own server holds a few
    # Meanwhile another student's server reached the hub, and the hoarder's works again after.
    assert bystander.run("print(6 * 7)") == "42\n"
    assert hoarder.run("print(6 * 7)") == "42\n"


READ = ("GET",)
WRITE = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("lab", READ),
        ("tree", READ),
        ("api/status", READ),
        ("api/contents", WRITE),
        ("api/contents/team-1", WRITE),
        ("api/contents/notes.txt", WRITE),
        ("api/kernels", ("GET", "POST")),
        ("api/sessions", ("GET", "POST")),
        ("api/terminals", ("GET", "POST")),
        ("files/notes.txt", READ),
        ("lab/api/settings", READ),
        ("nbconvert/html/notes.ipynb", READ),
        ("doesnotexist", READ),
    ],
)
def test_through_the_proxy_a_student_gets_nothing_of_anothers_server(hub: Hub, path, methods):
    """Every method each URL of a Jupyter server answers to (others get 405 before any check)."""
    running_server(hub, "student1")
    intruder = logged_in(hub, "student4")
    intruder.start()
    intruder.open_lab()  # the intruder has a server of their own, and its cookies
    for method in methods:
        response = intruder.session.request(
            method, hub.url + f"user/student1/{path}", allow_redirects=True, timeout=30
        )
        assert response.status_code in (403, 404), (method, path, response.status_code)


# --- 3. hardened containers --------------------------------------------------------------------


def test_user_containers_are_hardened(hub: Hub):
    browser = running_server(hub, "student2")
    container = hub.client.containers.get(names.user_container(hub.name, "student2"))
    host = container.attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert not [o for o in host["SecurityOpt"] if "unconfined" in o]
    assert host["PidsLimit"] == 256
    assert host["Memory"] == 1024**3 and host["MemorySwap"] == 1024**3
    assert host["CpuQuota"] == 100_000
    assert host["NetworkMode"] == names.network(hub.name)
    # Nothing she writes outside her home lands on the host's disk: a read-only root, and /tmp
    # in memory (counted against her memory limit).
    assert host["ReadonlyRootfs"] is True and host["Tmpfs"] == hubfile.USER_TMPFS
    written = browser.run(
        "import os\n"
        "for path in ('/var/tmp/x', '/opt/notebook/x', '/home/jovyan/.x', '/tmp/x'):\n"
        "    try:\n"
        "        open(path, 'w').write('x'); os.remove(path); print(path, 'ok')\n"
        "    except OSError as exc:\n"
        "        print(path, exc.errno)\n"
        "print('tmp', os.statvfs('/tmp').f_blocks * os.statvfs('/tmp').f_frsize)\n"
    )
    assert written.split() == ["/var/tmp/x", "30", "/opt/notebook/x", "30", "/home/jovyan/.x",
                               "ok", "/tmp/x", "ok", "tmp", str(1024**3)], written  # fmt: skip
    status = browser.run(
        "import socket\n"
        "fields = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "print(*[fields[k].strip() for k in ('Seccomp', 'NoNewPrivs', 'CapEff', 'CapBnd')])\n"
        "try:\n"
        "    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw')\n"
        "except PermissionError:\n"
        "    print('no-raw')\n"
    )
    # Seccomp 2: a filter (Docker's default profile); no capabilities at all, not even NET_RAW.
    assert status.split() == ["2", "1", "0000000000000000", "0000000000000000", "no-raw"], status


def test_a_fork_bomb_is_contained_and_the_hub_keeps_serving(hub: Hub):
    bystander = running_server(hub, "student1")
    bomber = running_server(hub, "student4")
    out = bomber.run(
        "import os, time\n"
        "count, error = 0, None\n"
        "while count < 100_000:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as exc:\n"
        "        error = exc.errno; break\n"
        "    if pid == 0:\n"
        "        time.sleep(25); os._exit(0)\n"
        "    count += 1\n"
        "print(count, error)\n",
        timeout=120,
    )
    count, error = out.split()
    assert int(count) < 256 and error == "11", out  # EAGAIN: the pids limit
    # While the bomb's processes hold every pid the student may have, everyone else works.
    assert requests.get(hub.url + "hub/api/", timeout=10).status_code == 200
    assert bystander.run("print(6 * 7)") == "42\n"
    assert logged_in(hub, "student2").hub_api("GET", "/users/student2").status_code == 200


def test_memory_past_the_limit_kills_only_that_kernel(hub: Hub):
    browser = running_server(hub, "student3")
    container = hub.client.containers.get(names.user_container(hub.name, "student3"))
    started = container.attrs["State"]["StartedAt"]
    with pytest.raises(KernelDied):
        browser.run(
            "chunks = []\n"
            "for _ in range(64):  # 4 GiB at most, four times the limit\n"
            "    chunks.append(b'x' * 2**26)\n"
            "print('survived')\n",
            timeout=120,
        )
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] == started
    assert browser.server_api("GET", "/status").status_code == 200
    assert browser.run("print('a new kernel')") == "a new kernel\n"


# --- 4. a fixed environment --------------------------------------------------------------------

# An injection into a process of the student's own user: trace it, then overwrite in its memory
# every copy of `old` with `new` (same length). Against the student's server, `old` is the version
# its /api answers with to anyone, so a change would show in that answer.
INJECT = """
import ctypes, os, re
def inject(pid, old, new):
    libc = ctypes.CDLL(None, use_errno=True)
    found = {}
    if libc.ptrace(16, pid, 0, 0) == 0:  # PTRACE_ATTACH
        os.waitpid(pid, 0)
        libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH
        found["ptrace"] = "attached"
    else:
        found["ptrace"] = os.strerror(ctypes.get_errno())
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        written = 0
        with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
            for line in maps:
                span, perms = line.split()[:2]
                if not perms.startswith("rw"):
                    continue
                start, end = (int(x, 16) for x in span.split("-"))
                try:
                    mem.seek(start)
                    data = mem.read(end - start)
                except OSError:
                    continue
                for match in re.finditer(re.escape(old), data):
                    mem.seek(start + match.start())
                    written += mem.write(new) > 0
        found["mem"] = f"wrote {written}"
    except OSError as exc:
        found["mem"] = type(exc).__name__
    return found
"""
# The control: the same injection into a small server of the student's own, which it changes.
CONTROL = '''
import subprocess, sys, time, urllib.request
serve = """
import http.server
BODY = ("control-" + "a1b2c3").encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 9876), Handler).serve_forever()
"""
control = subprocess.Popen([sys.executable, "-c", serve])
for _ in range(100):
    try:
        urllib.request.urlopen("http://127.0.0.1:9876", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
attack = inject(control.pid, b"control-a1b2c3", b"injected-x9y8z")
print(attack["ptrace"], attack["mem"], urllib.request.urlopen("http://127.0.0.1:9876").read().decode())
control.kill()
'''
SERVER_PID = "int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[1])"  # the parent


def test_a_student_cannot_change_what_her_own_server_serves(hub: Hub):
    """Issue "Security" 1: her kernel traced her server (same uid) and made it serve a page of
    hers. The same injection works on a process of her own (the control), not on her server."""
    browser = running_server(hub, "student1")
    control = browser.run(INJECT + CONTROL)
    assert control.split() == ["attached", "wrote", control.split()[2], "injected-x9y8z"], control
    version = requests.get(browser.server_url + "api", timeout=10).json()["version"]
    out = browser.run(
        INJECT + f"print(inject({SERVER_PID}, {version.encode()!r}, {b'X' * len(version)!r}))"
    )
    assert out.strip() == str({"ptrace": "Operation not permitted", "mem": "PermissionError"})
    assert requests.get(browser.server_url + "api", timeout=10).json()["version"] == version
    # Nor its open files and sockets, or its environment: /proc keeps them from her.
    out = browser.run(
        f"import os\npid = {SERVER_PID}\n"
        "for what in ('fd', 'environ'):\n"
        "    try:\n"
        "        open(f'/proc/{pid}/environ') if what == 'environ' else os.listdir(f'/proc/{pid}/fd')\n"
        "        print(what, 'open')\n"
        "    except OSError as exc:\n"
        "        print(what, type(exc).__name__)\n"
    )
    assert out.split() == ["fd", "PermissionError", "environ", "PermissionError"], out


def test_a_spawn_asking_for_another_image_is_refused(hub: Hub):
    browser = logged_in(hub, "student2")
    if browser.hub_api("GET", "/users/student2").json().get("servers"):
        browser.stop()
    response = browser.hub_api(
        "POST", "/users/student2/server", json={"image": names.hub_image(hub.name)}
    )
    assert response.status_code == 400, (response.status_code, response.text)
    assert "not allowed" in response.json()["message"]
    with pytest.raises(docker.errors.NotFound):
        hub.client.containers.get(names.user_container(hub.name, "student2"))
    # The refused request is not remembered: the next plain start gets the notebook image.
    browser.start()
    container = hub.client.containers.get(names.user_container(hub.name, "student2"))
    assert container.attrs["Config"]["Image"] == hub.image


def test_students_cannot_change_the_python_that_runs_their_server(hub: Hub):
    browser = running_server(hub, "student2")
    out = browser.run(
        "import os, site, sys, sysconfig\n"
        "purelib = sysconfig.get_paths()['purelib']\n"
        "print(os.access(sys.prefix, os.W_OK), os.access(purelib, os.W_OK), site.ENABLE_USER_SITE)\n"
        "os.makedirs(site.getusersitepackages(), exist_ok=True)\n"
        "open(os.path.join(site.getusersitepackages(), 'usercustomize.py'), 'w').write('X = 1')\n"
        "print(os.environ.get('JUPYTERHUB_DISABLE_USER_CONFIG'))\n"
    )
    assert out.split() == ["False", "False", "False", "1"], out


def test_server_config_in_the_home_is_not_loaded(hub: Hub):
    browser = running_server(hub, "student2")
    browser.run(
        "import os\n"
        "os.makedirs('.jupyter', exist_ok=True)\n"
        "open('.jupyter/jupyter_server_config.py', 'w').write(\n"
        "    \"c.ServerApp.tornado_settings = {'headers': {'X-Student-Config': 'loaded'}}\\n\")\n"
    )
    browser.stop()
    browser.start()
    response = browser.open_lab()
    assert response.status_code == 200
    assert "X-Student-Config" not in response.headers
    browser.run("import os; os.remove('.jupyter/jupyter_server_config.py')")


def test_a_teammates_module_in_the_group_folder_does_not_shadow_an_installed_one(hub: Hub):
    """Issue "Security" 7: a module planted in the group folder ran in a teammate's kernel when
    a notebook there imported a package of the same name. A kernel started in a shared folder
    does not import from it; in the student's own folders a module beside a notebook still does."""
    planter = running_server(hub, "student1")
    planter.run(
        "for module in ('colorsys', 'tabulate'):\n"
        "    open(f'team-1/{module}.py', 'w').write(\n"
        "        \"open('/home/jovyan/planted-ran', 'w').write('yes')\\nVERSION = 'planted'\\n\")\n"
    )
    victim = running_server(hub, "student2")
    victim.run("open('helper.py', 'w').write('WHERE = \"my own\"\\n')")
    out = victim.run(
        "import colorsys, os, tabulate\n"
        "print(colorsys.__file__.startswith('/usr/lib/python3'), tabulate.__file__.startswith('/opt/'),"
        " os.path.exists('/home/jovyan/planted-ran'), os.getcwd())\n",
        folder="team-1",
    )
    assert out.split() == ["True", "True", "False", "/home/jovyan/team-1"], out
    assert victim.run("import helper\nprint(helper.WHERE)") == "my own\n"
    planter.run("import os\nfor m in ('colorsys', 'tabulate'):\n    os.remove(f'team-1/{m}.py')")


def test_a_link_in_the_group_folder_is_not_followed_out_of_it_by_a_teammates_server(hub: Hub):
    """Issue "Security" 7: a teammate's link `team-1/notes.txt -> /home/jovyan/secret.txt` was
    followed by the victim's own server: opening "the group's file" showed her private one, and
    saving it overwrote it. Links that stay in the group folder work as ever."""
    planter = running_server(hub, "student1")
    planter.run(
        "import os\n"
        "os.symlink('/home/jovyan/secret.txt', 'team-1/notes.txt')\n"
        "os.symlink('/home/jovyan', 'team-1/home')\n"
        "open('team-1/agenda.txt', 'w').write('meet at 10')\n"
        "os.symlink('agenda.txt', 'team-1/today.txt')\n"
    )
    victim = running_server(hub, "student2")
    victim.run("open('secret.txt', 'w').write('private')")
    try:
        for path in ("team-1/notes.txt", "team-1/home/secret.txt", "team-1/home"):
            response = victim.server_api("GET", f"/contents/{path}")
            assert response.status_code == 404 and "private" not in response.text, path
            saved = victim.server_api("PUT", f"/contents/{path}",
                                      json={"type": "file", "format": "text", "content": "gone"})  # fmt: skip
            assert saved.status_code == 404, (path, saved.status_code)
        assert victim.run("print(open('secret.txt').read())") == "private\n"
        listing = victim.server_api("GET", "/contents/team-1")
        assert listing.status_code == 200  # the folder still lists, without the links out
        listed = {item["name"] for item in listing.json()["content"]}
        assert {"agenda.txt", "today.txt"} <= listed and not {"notes.txt", "home"} & listed
        today = victim.server_api("GET", "/contents/team-1/today.txt")
        assert today.status_code == 200 and today.json()["content"] == "meet at 10"
    finally:
        planter.run(
            "import os\nfor n in ('notes.txt', 'home', 'agenda.txt', 'today.txt'):\n"
            "    os.remove(f'team-1/{n}')\n"
        )


# --- 5. secrets stay secret ---------------------------------------------------------------------


def test_secrets_appear_in_no_container_log_or_status(hub: Hub):
    running_server(hub, "student1")
    secret_values = {
        name: (hub.paths.secrets_dir / name).read_text().strip() for name in hubfile.HUB_SECRETS
    }
    culler = culler_token(hub)
    secret_values["culler token"] = culler
    status = hub.invoke("status")
    assert status.returncode == 0, status.stderr
    places = {"invoke status": status.stdout + status.stderr}
    flt = {"label": f"{names.LABEL_HUB}={hub.name}"}
    for container in hub.client.containers.list(all=True, filters=flt):
        places[f"docker inspect {container.name}"] = json.dumps(container.attrs)
        places[f"log of {container.name}"] = container.logs().decode("utf-8", "replace")
    for where, text in places.items():
        for name, value in secret_values.items():
            assert value not in text, f"{name} appears in {where}"
    for name in hubfile.HUB_SECRETS:
        assert (hub.paths.secrets_dir / name).stat().st_mode & 0o777 == 0o600
    modes = exec_in_hub(
        hub,
        "import os, glob; print(*sorted({oct(os.stat(p).st_mode & 0o777) for p in "
        f"glob.glob('{hubfile.SECRETS_IN_HUB}/*') + ['{hubfile.HUB_FILE_IN_HUB}']}}))",
    )
    assert modes.split() == ["0o600"]


def culler_token(hub: Hub) -> str:
    return exec_in_hub(
        hub,
        "import glob\n"
        "for path in glob.glob('/proc/[0-9]*/cmdline'):\n"
        "    if b'jupyterhub_idle_culler' in open(path, 'rb').read():\n"
        "        env = open(path.replace('cmdline', 'environ'), 'rb').read().split(b'\\0')\n"
        "        print([e for e in env if e.startswith(b'JUPYTERHUB_API_TOKEN=')][0]"
        ".split(b'=', 1)[1].decode())\n"
        "        break\n",
    ).strip()


def test_the_cullers_token_is_refused_outside_its_scopes(hub: Hub):
    token = culler_token(hub)
    assert token
    api = hub.url + "hub/api"
    headers = {"Authorization": f"token {token}"}
    assert requests.get(api + "/users", headers=headers, timeout=10).status_code == 200
    for method, path in [
        ("POST", "/users/intruder"),
        ("DELETE", "/users/student1"),
        ("POST", "/users/student1/tokens"),
        ("GET", "/proxy"),
        ("POST", "/groups/team-1/users"),
        ("POST", "/users/student1/server"),
    ]:
        response = requests.request(method, api + path, headers=headers, json={}, timeout=10)
        assert response.status_code == 403, (method, path, response.status_code)


# --- 6. authentication -----------------------------------------------------------------------


def test_there_is_no_sign_up_page(hub: Hub):
    for path in ("hub/signup", "hub/api/users/newcomer"):
        response = requests.post(hub.url + path, data={"username": "newcomer"}, timeout=10)
        assert response.status_code in (403, 404, 405), (path, response.status_code)
    assert requests.get(hub.url + "hub/signup", timeout=10).status_code == 404


def test_passwords_reach_the_hub_only_as_hashes(hub: Hub):
    password = hub.passwords["student4"]
    out = hub.client.containers.get(names.hub_container(hub.name)).exec_run(
        ["grep", "-r", "-l", "-F", password, hubfile.DATA_IN_HUB, "/etc/classhub"]
    )
    assert out.exit_code == 1, out.output.decode()  # grep: no file holds it
    assert "$2b$" in (hub.paths.state_dir / "hub.json").read_text()


def new_user(hub: Hub, name: str) -> str:
    """Add `name` to the shared hub's roster; their password."""
    result = hub.invoke("add-user", name)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.rsplit("Password: ", 1)[1].split()[0]


def test_fifty_wrong_passwords_never_500_and_the_owners_browser_still_gets_in(hub: Hub):
    """A name gets RosterAuthenticator.failures_per_minute (10) checked guesses a minute; the
    rest are refused before any hash is checked. A browser that signed in as the name before
    gets through; a new one waits for a quiet minute."""
    password = new_user(hub, "guessed")
    owner = Browser(hub.url, "guessed")
    assert owner.login(password).status_code == 302
    statuses = [Browser(hub.url, "guessed").login(f"wrong-{n}").status_code for n in range(50)]
    assert statuses == [403] * 10 + [429] * 40, statuses
    owner.session.get(hub.url + "hub/logout")  # signed out; the browser is the same
    assert owner.login(password).status_code == 302  # the owner's own browser
    elsewhere = Browser(hub.url, "guessed").login(password)
    assert elsewhere.status_code == 429 and "Wait a minute" in elsewhere.text
    assert logged_in(hub, "student1")  # other names are not slowed


def test_guesses_straight_at_the_hub_from_a_students_server_are_limited_by_name(hub: Hub):
    """Issue "Security" 6: from a student's server, 16 threads posted 158 wrong passwords in 8 s
    straight to the hub, past nginx's limit by address, and another student's login took ten
    times as long. The hub's API port, which servers must reach, serves the login form too."""
    new_user(hub, "target")
    attacker = Browser(hub.url, "attacker")  # a server of its own: the fork bomb's may be gone
    assert attacker.login(new_user(hub, "attacker")).status_code == 302
    attacker.start()
    attacker.open_lab()
    out = attacker.run(
        "import concurrent.futures, http.cookiejar, os, re, urllib.error, urllib.request\n"
        "api = os.environ['JUPYTERHUB_API_URL']\n"
        "login = api[: -len('api')] + 'login'\n"
        "def guess(n):\n"
        "    opener = urllib.request.build_opener(\n"
        "        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))\n"
        "    page = opener.open(login, timeout=30).read().decode()\n"
        '    token = re.search(r\'name="_xsrf" value="([^"]+)"\', page).group(1)\n'
        "    form = f'_xsrf={token}&username=target&password=wrong-{n}'.encode()\n"
        "    try:\n"
        "        return opener.open(login, data=form, timeout=30).status\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        return exc.code\n"
        "with concurrent.futures.ThreadPoolExecutor(16) as pool:\n"
        "    print(*sorted(pool.map(guess, range(60))))\n",
        timeout=180,
    )
    statuses = [int(s) for s in out.split()]
    assert statuses.count(403) <= 10 and statuses.count(429) >= 50, out
    assert set(statuses) <= {403, 429}, out  # never a 500, never a sign-in
    assert logged_in(hub, "student1")  # meanwhile others sign in as ever


# --- 7. names ----------------------------------------------------------------------------------

ODD_NAMES = ["7seas", "jane.doe", "jane-doe", "jane_doe", "l" * 32]


def test_odd_names_get_distinct_stable_containers_and_volumes(hub: Hub):
    passwords = {name: new_user(hub, name) for name in ODD_NAMES}
    seen = {}
    for name in ODD_NAMES[:4]:
        browser = Browser(hub.url, name)
        assert browser.login(passwords[name]).status_code == 302
        for _ in range(2):  # the same names again after a restart
            browser.start()
            container = hub.client.containers.get(names.user_container(hub.name, name))
            home = [
                m["Name"] for m in container.attrs["Mounts"] if m["Destination"] == "/home/jovyan"
            ]
            assert home == [names.user_volume(hub.name, name)]
            seen.setdefault(name, set()).add((container.name, home[0]))
            browser.stop()
    assert all(len(pairs) == 1 for pairs in seen.values()), seen
    assert len({pair for pairs in seen.values() for pair in pairs}) == 4
    long_one = Browser(hub.url, ODD_NAMES[-1])
    assert long_one.login(passwords[ODD_NAMES[-1]]).status_code == 302
    long_one.start()
    assert hub.client.containers.get(names.user_container(hub.name, ODD_NAMES[-1]))
    long_one.stop()


def test_setup_stops_when_the_firewall_cannot_load_its_rules(hub: Hub):
    """A firewall without NET_ADMIN: the real nft fails, and setup's wait says so and why."""
    other = f"{hub.name}fw"
    container = hub.client.containers.run(
        names.hub_image(hub.name),
        ["python3", "-m", "classhub_hub.firewall", "--table", names.firewall_table(other),
         "--bridge", "br-none", "--hub-ip", "10.0.0.1", "--servers", "10.0.0.0/25", "--port", "8000"],
        name=names.firewall_container(other), network_mode="host", cap_drop=["ALL"],
        labels=names.labels(other, "firewall"), detach=True,
    )  # fmt: skip
    try:
        with pytest.raises(UserError) as failed:
            stack.wait_for_firewall(hub.client, other, since=1)
        assert "could not load its rules" in str(failed.value)
        assert "error: nft could not load" in str(failed.value)
    finally:
        container.remove(force=True)


def test_no_server_starts_before_the_firewall_has_loaded_its_rules_since_the_server_booted(
    hub: Hub,
):
    """Issue "Faults" 3: after a reboot the firewall's table is gone until its container is back,
    and a student's server started meanwhile would reach the others. The firewall's word from
    another boot (and the firewall stopped, so it cannot give a new one) stands in for the reboot;
    the table itself stays in this kernel meanwhile, so nothing opens up for the other tests."""
    container = hub.client.containers.get(names.firewall_container(hub.name))
    folder = hub.client.volumes.get(names.addresses_volume(hub.name)).attrs["Mountpoint"]
    said = Path(folder) / hubfile.FIREWALL_FILE
    assert json.loads(said.read_text())["boot_id"] == hubfile.boot_id()  # as setup left it
    browser = logged_in(hub, "student4")
    browser.stop()
    hub_container = hub.client.containers.get(names.hub_container(hub.name))
    since = int(time.time())
    container.stop(timeout=10)
    try:
        said.write_text(json.dumps({"boot_id": "an-earlier-boot", "table": "?"}))
        with pytest.raises(StudentError):  # JupyterHub shows the student a plain 500
            browser.start(timeout=120)
        server = names.user_container(hub.name, "student4")
        with contextlib.suppress(docker.errors.NotFound):
            assert hub.client.containers.get(server).status != "running"
        log = hub_container.logs(since=since).decode("utf-8", "replace")
        assert "has not loaded its rules since this server started" in log  # the hub's log: why
    finally:
        container.start()
    deadline = time.monotonic() + 30
    while json.loads(said.read_text()).get("boot_id") != hubfile.boot_id():
        assert time.monotonic() < deadline, "the firewall never said its table is loaded"
        time.sleep(0.2)
    browser.start()  # the student tries again: in
    assert browser.open_lab().status_code == 200


def test_a_network_from_before_the_firewall_is_recreated_with_a_fixed_hub_address(
    hub: Hub, tmp_path
):
    """A hub set up by an older classhub has a network without a fixed hub address."""
    name = f"{hub.name}old"
    old = hub.client.networks.create(
        names.network(name), driver="bridge", labels=names.labels(name, "net")
    )
    try:
        paths = new_checkout(tmp_path / "clone", name, free_port(), "hub-admin admin\n")
        plan = invoke(paths, "setup", "--dry-run", env=engine_environ())
        state, action = plan_rows(plan.stdout)[f"network {names.network(name)}"]
        assert state == "without a fixed hub address" and "recreate" in action, plan.stdout
        result = invoke(paths, "setup", env=engine_environ(), timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        network = hub.client.networks.get(names.network(name))
        assert network.id != old.id and network.attrs["IPAM"]["Config"][0]["IPRange"]
        status = invoke(paths, "status", env=engine_environ())
        for row in ("firewall", "Docker socket proxy", "hub container"):
            assert row in status.stdout, status.stdout
        assert "running" in status.stdout
    finally:
        sweep(hub.client, name)


# --- 8. admins -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(hub: Hub, tmp_path_factory):
    """A hub beside the shared one with a new .env's ADMIN_SEES_USERS (false), which the shared
    hub turns on."""
    root = tmp_path_factory.mktemp("plain") / "clone"
    roster, settings = "hub-admin admin\nann\n", {"ADMIN_SEES_USERS": "false"}
    with hub_beside(hub, root, "pln" + hub.name[3:], roster, settings) as plain_hub:
        yield plain_hub


def test_admins_start_and_stop_a_students_server_but_cannot_open_it(plain: Hub):
    """Issue "Security" 8: JupyterHub's admin role opens every server (and SECURITY.md said it
    did not). Every way there is tried: the server's pages and API with the admin's cookies, a
    token made as the student, sharing her server, renaming the student away."""
    student = running_server(plain, "ann")
    student.run("open('private.txt', 'w').write('mine')")
    admin = logged_in(plain, "hub-admin")
    me = admin.hub_api("GET", "/user").json()
    assert me["admin"] is False and "admin" not in me["roles"], me
    page = admin.session.get(plain.url + "hub/admin")
    assert page.status_code == 200 and "classhub-admin-note" in page.text
    assert 'a[href*="/user/"] { display: none; }' in page.text  # no "Access Server" button
    assert sorted(u["name"] for u in admin.hub_api("GET", "/users").json()) == ["ann", "hub-admin"]
    for path in ("files/private.txt", "api/contents/private.txt", "lab"):
        response = admin.session.get(plain.url + f"user/ann/{path}", timeout=30)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "mine" not in response.text
    for method, path, body in [
        ("POST", "/users/ann/tokens", {}),
        ("POST", "/shares/ann/", {"user": "hub-admin"}),
        ("PATCH", "/users/ann", {"name": "ann2"}),
        ("PATCH", "/users/hub-admin", {"admin": True}),
        ("DELETE", "/users/ann", None),
    ]:
        response = admin.hub_api(method, path, json=body)
        assert response.status_code == 403, (method, path, response.status_code)
    # What admins are for: stopping and starting a student's server.
    assert admin.hub_api("DELETE", "/users/ann/server").status_code in (202, 204)
    assert admin.hub_api("POST", "/users/ann/server").status_code in (201, 202)
    student.stop()


def test_with_admin_sees_users_admins_are_jupyterhubs_admins(hub: Hub):
    """The shared hub sets ADMIN_SEES_USERS=true: its admins may open a student's server."""
    running_server(hub, "student1")
    admin = logged_in(hub, "hub-admin")
    assert admin.hub_api("GET", "/user").json()["admin"] is True
    # Opening another's server: JupyterHub asks the admin to authorize it, as in a browser.
    ask = admin.session.get(hub.url + "user/student1/lab", timeout=30)
    assert ask.status_code == 200 and "Authorize" in ask.text, ask.status_code
    form = {"_xsrf": re.search(r'name="_xsrf" value="([^"]+)"', ask.text).group(1),
            "scopes": re.findall(r'name="scopes" value="([^"]+)"', ask.text)}  # fmt: skip
    lab = admin.session.post(ask.url, data=form, timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
    response = admin.session.get(hub.url + "user/student1/api/contents", timeout=30)
    assert response.status_code == 200, response.status_code
