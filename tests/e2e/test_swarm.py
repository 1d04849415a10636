"""Docker Swarm mode (issue "Docker Swarm mode"), on real servers of nested engines on this
machine (tests/e2e/swarm.py): a manager, which classhub reaches as DOCKER_HOST the way it reaches
its own server's engine, two workers it joins over SSH, and three servers it must refuse.

Here: nodes checked, joined, drained and removed (add-node, drain-node, remove-node, status),
the same build on every node without a registry (classhub/runtime/swarm/images.py), the
socket proxy's rules for students' services, sent through the real proxy to the real swarm, the
firewall agent of every node keeping students apart on the hub's overlay network, `setup` with
ENGINE=swarm running a class on the workers, and a worker that dies under its students.

This kernel has no NFS: the shared storage is a folder of this machine mounted into every node at
the same path (what an NFS mount at one path gives real servers); add-node's check reads it
through each node's engine all the same. classhub runs on this machine, not on the manager: the
manager sees the checkout at the same path too, as it would on a real manager, where classhub
runs from it.
"""

from __future__ import annotations

import copy
import csv
import io
import ipaddress
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.types
import pytest
import requests

from classhub import hubfile, names
from classhub import images as image_refs
from classhub.runtime import NodeAccess
from classhub.runtime.single_host import builder
from classhub.runtime.swarm import guard, images
from classhub.runtime.swarm import nodes as node_tasks
from classhub.runtime.swarm.nodes import LABEL_ADDRESS, PROBE_IMAGE, STORAGE_MARK
from classhub.student import Browser, StudentError
from classhub_hub import services, swarmguard
from tests.conftest import invoke, plan_rows

from .conftest import Hub, free_port, set_env
from .outside import PORT, Outside, reach, refused_at_once
from .swarm import NodeSpec, Swarm, class_swarm

WORKERS = ("worker1", "worker2")
SPECS = {
    "manager": NodeSpec(ssh=False),
    "worker1": NodeSpec(),
    "worker2": NodeSpec(),
    # Servers add-node must refuse: an engine with live-restore and no shared storage at
    # SWARM_STORAGE (both said at once); another folder at that path; an engine that does not
    # give containers no-new-privileges, on a server whose mounts are not shared (both seen
    # once the images are there).
    "odd": NodeSpec(dockerd=("--no-new-privileges", "--live-restore"), storage=None),
    "elsewhere": NodeSpec(storage="elsewhere"),
    "nonnp": NodeSpec(dockerd=("--no-new-privileges=false",), shared_mounts=False),
}


@pytest.fixture(scope="module")
def swarm(hub: Hub, tmp_path_factory) -> Iterator[Swarm]:
    with class_swarm(hub.client, hub.name, tmp_path_factory.mktemp("swarm"), SPECS,
                     WORKERS) as formed:  # fmt: skip
        yield formed


def test_add_node_checks_a_server_over_ssh_joins_it_and_gives_it_the_class_image(swarm: Swarm):
    for host in WORKERS:
        result = swarm.added[host]
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{host} is a node of this swarm" in result.stdout
        assert "loaded into node" in result.stdout
    assert "now the swarm's manager" in swarm.added[WORKERS[0]].stdout
    nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in swarm.manager.nodes.list()}
    assert sorted(nodes) == ["manager", *WORKERS]
    class_image = swarm.manager.images.get(names.notebook_image(swarm.hub))
    for host in WORKERS:
        assert nodes[host]["Status"]["State"] == "ready"
        assert nodes[host]["Spec"]["Role"] == "worker"
        assert nodes[host]["Spec"]["Labels"][LABEL_ADDRESS] == swarm.ssh_name(host)
        engine = swarm.nodes[host].engine
        assert images.has(engine, class_image.id)  # the same build, by ID
        assert not [i for i in engine.images.list() if PROBE_IMAGE in i.tags]
        assert engine.containers.list(all=True) == []  # the storage check ran nothing
    # Once more: checked again, nothing joined twice.
    again = swarm.invoke("add-node", swarm.ssh_name("worker1"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already a node of this swarm" in again.stdout
    assert len(swarm.manager.nodes.list()) == 3
    assert (swarm.storage / STORAGE_MARK).is_file()
    status = swarm.invoke("status")
    assert status.returncode == 0, status.stdout + status.stderr
    listed = status.stdout.split("Nodes of this server's swarm (3):", 1)[1].splitlines()
    rows = {line.split()[0]: line.split() for line in listed[2:5]}
    assert rows["manager"][1:4] == ["manager", "ready", "active"]
    assert rows["manager"][-1] == "server)"  # (this server)
    for host in WORKERS:
        assert rows[host][1:5] == ["worker", "ready", "active", "0"]
        assert rows[host][-1] == swarm.ssh_name(host)


def test_a_server_that_fails_a_check_is_refused_with_every_reason_and_nothing_changes(
    swarm: Swarm,
):
    before = len(swarm.manager.nodes.list())
    class_image = swarm.manager.images.get(names.notebook_image(swarm.hub))
    cases = {
        "127.0.0.1:1": ["cannot reach 127.0.0.1:1 over SSH", "NODE_SSH_KEY"],
        "root@two words": ["is not a server ssh can reach", "USER@HOST:PORT"],
        swarm.ssh_name("odd"): ["cannot join", "nothing was changed", "live-restore",
                                f"has no folder {swarm.storage} (SWARM_STORAGE)"],
        swarm.ssh_name("elsewhere"): ["is not the shared filesystem", STORAGE_MARK],
        swarm.ssh_name("nonnp"): ["no-new-privileges", "daemon.json", "mounts are not shared",
                                  "mount --make-rshared /",
                                  "it was not joined (the image loaded there stays"],
    }  # fmt: skip
    for host, said in cases.items():
        result = swarm.invoke("add-node", host)
        assert result.returncode == 1, (host, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        for words in said:
            assert words in result.stderr, (host, words, result.stderr)
    assert len(swarm.manager.nodes.list()) == before
    for host in ("odd", "elsewhere", "nonnp"):
        engine = swarm.nodes[host].engine
        assert engine.info()["Swarm"]["LocalNodeState"] == "inactive"
        assert engine.containers.list(all=True) == []
        loaded = [image.id for image in engine.images.list()]
        assert loaded == ([class_image.id] if host == "nonnp" else [])  # by ID, for the next try


def test_an_image_reaches_every_node_by_its_id_and_a_service_there_runs_that_build(
    hub: Hub, swarm: Swarm
):
    # The base: on the manager (setup's), never given to a node (add-node gives the class's and
    # the hub's images).
    base, _ = image_refs.resolve_base(lambda ref: builder.find(hub.client, ref),
                                      "debian:bookworm-slim")  # fmt: skip
    image = hub.client.images.get(base)
    members = swarm.members
    assert images.missing(members, image.id) == sorted(WORKERS)
    said: list[str] = []
    assert sorted(images.spread(hub.client, members, image.id, said.append)) == sorted(WORKERS)
    assert images.missing(members, image.id) == []
    assert len(said) == len(WORKERS) and all("loaded into node" in line for line in said)
    assert images.spread(hub.client, members, image.id, said.append) == []  # nothing again
    # A service that names the build by its ID runs it on the worker it is placed on.
    service = swarm.manager.services.create(  # its command replaces the image's entrypoint
        image.id, ["sleep", "300"], name="same-build", user="1000:100",
        constraints=["node.hostname==worker2"],
    )  # fmt: skip
    try:
        _wait_running(service)
        (running,) = swarm.nodes["worker2"].engine.containers.list(filters={"name": "same-build"})
        assert running.attrs["Image"] == image.id
    finally:
        service.remove()


def test_a_node_without_the_build_is_named_and_gets_it_again(hub: Hub, swarm: Swarm):
    image = hub.client.images.get(hub.image)
    members = swarm.members
    images.spread(hub.client, members, image.id, lambda line: None)
    swarm.nodes["worker1"].engine.images.remove(image.id, force=True)
    assert images.missing(members, image.id) == ["worker1"]
    assert images.spread(hub.client, members, image.id, lambda line: None) == ["worker1"]
    assert images.missing(members, image.id) == []


def test_status_names_a_node_whose_build_drifted_and_loading_gives_it_back(swarm: Swarm):
    ref = names.notebook_image(swarm.hub)
    row = f"images on node {WORKERS[0]}"
    assert plan_rows(swarm.invoke("status").stdout)[row][0] == "up to date"
    class_image = swarm.manager.images.get(ref)
    swarm.nodes[WORKERS[0]].engine.images.remove(class_image.id, force=True)
    state, action = plan_rows(swarm.invoke("status").stdout)[row]
    assert state.replace(" ", "") == f"lacks{ref}" and action == "load the images"  # wrapped
    said: list[str] = []
    node_tasks.load_images(
        swarm.manager,
        WORKERS[0],
        (ref,),
        NodeAccess(swarm.paths.known_hosts, swarm.key),
        said.append,
    )
    assert images.has(swarm.nodes[WORKERS[0]].engine, class_image.id)
    assert plan_rows(swarm.invoke("status").stdout)[row][0] == "up to date"
    assert f"images on node {WORKERS[1]}" in plan_rows(swarm.invoke("status").stdout)


@pytest.fixture(scope="module")
def site_registry(swarm: Swarm, tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A site's registry: Debian's docker-registry on this machine, plain HTTP (the nested nodes
    trust it on Docker's private ranges), reached by the nodes at this machine's address on their
    network; (that address:port as SWARM_REGISTRY names it, the port)."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"http:\n  addr: 0.0.0.0:{port}\n")  # fmt: skip
    with (root / "log").open("w") as log:
        server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (root / "log").read_text()
            time.sleep(0.2)
        yield f"{swarm.nodes['manager'].gateway}:{port}", port
    finally:
        server.kill()
        server.wait()


def test_a_sites_registry_brings_a_node_the_build_it_lacks(
    swarm: Swarm, site_registry: tuple[str, int]
):
    """SWARM_REGISTRY: the build pushed there once, pulled by the node by its digest, the same
    build by ID; a registry that does not answer is named, and nothing is half done."""
    registry, port = site_registry
    ref = names.notebook_image(swarm.hub)
    row = f"images on node {WORKERS[0]}"
    class_image = swarm.manager.images.get(ref)
    worker = swarm.nodes[WORKERS[0]].engine
    worker.images.remove(class_image.id, force=True)
    closed = f"{swarm.nodes['manager'].gateway}:{free_port()}"
    try:
        set_env(swarm.paths, {"SWARM_REGISTRY": closed})
        failed = swarm.invoke("build")
        assert failed.returncode != 0
        said = failed.stdout + failed.stderr
        assert f"pushing {ref} to the registry {closed} (SWARM_REGISTRY) failed" in said, said
        assert not images.has(worker, class_image.id)
        assert not [t for t in swarm.manager.images.get(class_image.id).tags if closed in t]
        set_env(swarm.paths, {"SWARM_REGISTRY": registry})
        state, action = plan_rows(swarm.invoke("status").stdout)[row]
        assert state.replace(" ", "") == f"lacks{ref}", state
        assert action.replace(" ", "") == f"pulltheimagesfrom{registry}", action
        built = swarm.invoke("build")
        assert built.returncode == 0, built.stdout + built.stderr
        assert f"pulled into node {WORKERS[0]}" in built.stdout, built.stdout
        assert images.has(worker, class_image.id)  # the same build, by its ID
        listed = requests.get(f"http://127.0.0.1:{port}/v2/_catalog", timeout=5).json()
        assert ref.split(":")[0] in listed["repositories"], listed
        assert plan_rows(swarm.invoke("status").stdout)[row][0] == "up to date"
    finally:
        set_env(swarm.paths, {"SWARM_REGISTRY": ""})


def test_drain_node_moves_what_runs_there_and_remove_node_takes_it_out_keeping_files(
    swarm: Swarm,
):
    (swarm.storage / "work.txt").write_text("a student's work\n")
    class_image = swarm.manager.images.get(names.notebook_image(swarm.hub)).id  # nodes: by ID
    service = swarm.manager.services.create(
        class_image, ["sleep", "300"], name="moved", constraints=["node.hostname!=manager"],
        mounts=[f"{swarm.storage}:/storage:ro"],
    )  # fmt: skip
    try:
        first = _wait_running(service)["NodeID"]
        host = swarm.manager.nodes.get(first).attrs["Description"]["Hostname"]
        other = next(h for h in WORKERS if h != host)
        drained = swarm.invoke("drain-node", host)
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert "waiting for the 1 task(s) there to stop" in drained.stdout
        assert swarm.manager.nodes.get(first).attrs["Spec"]["Availability"] == "drain"
        moved = _wait_running(service)
        assert swarm.manager.nodes.get(moved["NodeID"]).attrs["Description"]["Hostname"] == other
        status = swarm.invoke("status")
        assert any(line.split()[:4] == [host, "worker", "ready", "drain"]
                   for line in status.stdout.splitlines() if line.strip())  # fmt: skip
        again = swarm.invoke("drain-node", host)
        assert again.returncode == 0 and "already drained" in again.stdout

        removed = swarm.invoke("remove-node", swarm.ssh_name(host))
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"{host} left the swarm" in removed.stdout
        hostnames = {n.attrs["Description"]["Hostname"] for n in swarm.manager.nodes.list()}
        assert host not in hostnames and other in hostnames
        assert swarm.nodes[host].engine.info()["Swarm"]["LocalNodeState"] == "inactive"
        assert (swarm.storage / "work.txt").read_text() == "a student's work\n"
        gone = swarm.invoke("remove-node", host)
        assert gone.returncode == 1 and f"no node '{host}' in this swarm" in gone.stderr
        refused = swarm.invoke("remove-node", "manager")
        assert refused.returncode == 1 and "takes out workers only" in refused.stderr

        # It can come back: checked and joined again, taking servers.
        back = swarm.invoke("add-node", swarm.ssh_name(host))
        assert back.returncode == 0, back.stdout + back.stderr
        node = next(n for n in swarm.manager.nodes.list()
                    if n.attrs["Description"]["Hostname"] == host and
                    n.attrs["Status"]["State"] == "ready")  # fmt: skip
        assert node.attrs["Spec"]["Availability"] == "active"
        # A drained node takes servers again when it is added again, as drain-node says.
        drained = swarm.invoke("drain-node", host)
        assert f"invoke add-node {swarm.ssh_name(host)} makes it take servers" in drained.stdout
        active = swarm.invoke("add-node", swarm.ssh_name(host))
        assert active.returncode == 0 and "takes servers again" in active.stdout
        node.reload()
        assert node.attrs["Spec"]["Availability"] == "active"
    finally:
        service.remove()


def _wait_running(service, timeout: float = 60) -> dict:
    """The service's one running task, once it runs."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = [t for t in service.tasks(filters={"desired-state": "running"})
                 if t["Status"]["State"] == "running"]  # fmt: skip
        if tasks:
            return tasks[0]
        assert time.monotonic() < deadline, [
            (t["Status"]["State"], t["Status"].get("Err"), t["Status"].get("Message"))
            for t in service.tasks()
        ]
        time.sleep(0.5)


PROXY_PORT = 23750


def _through_proxy(swarm: Swarm, hub: Hub):
    """The real socket proxy (the hub image, given --swarm-storage) on the manager, with its
    socket and the shared storage, reading the hub file `setup --files-only` rendered; an API
    client of it. No firewall runs: the test writes each node's word as the firewall would
    (`_say_guarded`)."""
    files = swarm.invoke("setup", "--files-only")
    assert files.returncode == 0, files.stdout + files.stderr
    place = swarm.storage / "proxy"
    (place / "addresses").mkdir(parents=True, exist_ok=True)
    shutil.copy(swarm.paths.state_dir / "hub.json", place / "hub.json")
    hub_image = swarm.manager.images.get(names.hub_image(swarm.hub))
    _hub_network(swarm)
    for volume in ("student1", "student2"):  # homes as setup would make them on the storage
        home = Path(services.folder(str(swarm.storage), swarm.hub,
                                    names.user_volume(swarm.hub, volume)))  # fmt: skip
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, 1000, 100)
    for volume in [names.group_volume(swarm.hub, g) for g in ("team-1", "team-2")] + [
        f"{swarm.hub}-shared"  # SHARED_DATA, a volume's name on one host
    ]:
        folder = Path(services.folder(str(swarm.storage), swarm.hub, volume))
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, 1000, 100)
    proxy = swarm.manager.containers.run(
        hub_image.id,
        ["python3", "-m", "classhub_hub.dockerproxy", "--hub-file", "/hub/hub.json",
         "--addresses-folder", "/addresses", "--swarm-storage", str(swarm.storage)],
        entrypoint=[], detach=True, name="proxy", ports={"2375/tcp": PROXY_PORT},
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                 str(place): {"bind": "/hub", "mode": "ro"},
                 str(place / "addresses"): {"bind": "/addresses", "mode": "rw"},
                 str(swarm.storage): {"bind": str(swarm.storage), "mode": "rw"}},
    )  # fmt: skip
    api = docker.APIClient(base_url=f"tcp://{swarm.nodes['manager'].address}:{PROXY_PORT}",
                           version="1.41", timeout=60)  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            api.ping()
            return proxy, api
        except (docker.errors.DockerException, OSError):
            assert time.monotonic() < deadline, proxy.logs().decode(errors="replace")
            time.sleep(0.3)


def _say_guarded(swarm: Swarm) -> None:
    """Each node's words that its firewall's tables are loaded, as swarmguard writes them."""
    words = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub)) / hubfile.GUARD_WORDS
    words.mkdir(parents=True, exist_ok=True)
    for host in guard.ready_nodes(swarm.manager):
        for table in hubfile.GUARD_TABLES:
            swarmguard.say(words, host, table)


def _hub_network(swarm: Swarm) -> tuple[str, str]:
    """The hub's network as the swarm runtime will make it: an attachable overlay whose servers
    get addresses from the lower half, the hub a fixed one at the top; (its ID, the hub's
    address). Made once."""
    name = names.network(swarm.hub)
    found = [n for n in swarm.manager.networks.list(names=[name]) if n.name == name]
    if not found:
        probe = swarm.manager.networks.create(f"{name}-probe", driver="overlay")
        try:
            subnet = _subnet(probe)
        finally:
            probe.remove()
        pool = docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet[1]),
                                     iprange=str(next(subnet.subnets(prefixlen_diff=1))))  # fmt: skip
        found = [swarm.manager.networks.create(
            name, driver="overlay", attachable=True, labels=names.labels(swarm.hub, "net"),
            ipam=docker.types.IPAMConfig(pool_configs=[pool]))]  # fmt: skip
    network = swarm.manager.networks.get(found[0].id)
    return str(network.id), str(_subnet(network)[-2])


def _subnet(network) -> ipaddress.IPv4Network:
    """An overlay network's subnet, once the swarm's allocator has given it one: that happens
    after the create returns (CI at 7d5397c read None)."""
    deadline = time.monotonic() + 30
    while not (network.attrs.get("IPAM") or {}).get("Config"):
        assert time.monotonic() < deadline, network.attrs.get("IPAM")
        time.sleep(0.2)
        network.reload()
    return ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])


def _create(api: docker.APIClient, spec: dict):
    """POST /services/create with exactly this body, as the hub's spawner sends it."""
    return api._post_json(api._url("/services/create"), data=spec)


def test_the_proxy_lets_the_hub_make_a_hardened_students_service_and_nothing_else(
    hub: Hub, swarm: Swarm
):
    proxy, api = _through_proxy(swarm, hub)
    try:
        file = hubfile.load(swarm.paths.state_dir / "hub.json")
        image_id = swarm.manager.images.get(names.notebook_image(swarm.hub)).id
        good = services.user_service(file, "student1", image_id, str(swarm.storage),
                                     {"CLASS": "math"}, ["sleep", "300"], 256)  # fmt: skip
        bad = {
            "an added capability": ("TaskTemplate.ContainerSpec.CapabilityAdd", ["SYS_ADMIN"]),
            "a published port": ("EndpointSpec", {"Mode": "dnsrr", "Ports": [
                {"TargetPort": 8888, "PublishedPort": 8888}]}),
            "fifty replicas": ("Mode", {"Replicated": {"Replicas": 50}}),
            "the host's root": ("TaskTemplate.ContainerSpec.Mounts", [
                {"Type": "bind", "Source": "/", "Target": "/home/jovyan/host"},
                {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": services.TMPFS}]),
            "a secret": ("TaskTemplate.ContainerSpec.Secrets", [{"SecretName": "x"}]),
            "root": ("TaskTemplate.ContainerSpec.User", "0"),
            "another network": ("TaskTemplate.Networks", [{"Target": "ingress"}]),
            "the manager": ("TaskTemplate.Placement", {"Constraints": ["node.role==manager"]}),
        }  # fmt: skip
        for what, (dotted, value) in bad.items():
            spec = copy.deepcopy(good)
            *path, last = dotted.split(".")
            place = spec
            for key in path:
                place = place[key]
            place[last] = value
            response = _create(api, spec)
            assert response.status_code == 403, (what, response.text)
            assert "classhub docker proxy:" in response.json()["message"], what
        for method, path in [("GET", "/nodes"), ("POST", "/swarm/leave"), ("GET", "/secrets"),
                             ("GET", "/services"), ("POST", "/configs/create")]:  # fmt: skip
            response = api.request(method, api._url(path))
            assert response.status_code == 403, (method, path, response.text)
        assert swarm.manager.services.list() == []  # nothing was made
        # No node's firewall has said its table is loaded: the hub is told to try again.
        waiting = _create(api, good)
        assert waiting.status_code == 503, waiting.text
        assert "on manager, worker1, worker2, so" in waiting.json()["message"], waiting.text
        _say_guarded(swarm)

        created = _create(api, good)
        assert created.status_code == 201, created.text
        service = swarm.manager.services.get(good["Name"])
        task = _wait_running(service)
        node = swarm.manager.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]
        (container,) = swarm.nodes[node].engine.containers.list(
            filters={"label": f"{names.LABEL_USER}=student1"})  # fmt: skip
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert host["ReadonlyRootfs"] is True and host["PidsLimit"] == 256
        assert host["Memory"] == file.get("users")["student1"]["limits"]["mem_limit"]
        assert container.attrs["Config"]["User"] == "1000:100"
        assert (
            container.labels[names.LABEL_HUB] == swarm.hub
        )  # on the container, not only the service
        said = container.exec_run(["sh", "-c", "grep NoNewPrivs /proc/self/status; "
                                   "echo kept > /home/jovyan/work.txt; touch /etc/x; "
                                   "touch /tmp/ok && grep ' /tmp ' /proc/mounts"])  # fmt: skip
        out = said.output.decode()
        assert "NoNewPrivs:\t1" in out and "Read-only file system" in out, out
        assert "nosuid" in out and "nodev" in out, out
        home = Path(services.folder(str(swarm.storage), swarm.hub,
                                    names.user_volume(swarm.hub, "student1")))  # fmt: skip
        assert (home / "work.txt").read_text() == "kept\n"
        assert (home / "work.txt").stat().st_uid == 1000
        # For every node's firewall, the proxy lists the service's task by its address on the
        # overlay, and copies the hub file, in the shared storage (hubfile.guard_inputs).
        words = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub)) / hubfile.GUARD_WORDS
        hub_copy, _, listed = hubfile.guard_inputs(words)
        (attached,) = [a for a in task["NetworksAttachments"]
                       if a["Network"]["Spec"]["Name"] == names.network(swarm.hub)]  # fmt: skip
        address = attached["Addresses"][0].split("/")[0]
        deadline = time.monotonic() + 10
        while not listed.exists() or json.loads(listed.read_text())["servers"] != {
            address: "student1"
        }:
            assert time.monotonic() < deadline, proxy.logs().decode(errors="replace")
            time.sleep(0.3)
        assert hub_copy.read_bytes() == (swarm.storage / "proxy" / "hub.json").read_bytes()
        # Looking and removing go through the proxy too; another name's tasks do not.
        assert api.inspect_service(good["Name"])["Spec"]["Labels"] == good["Labels"]
        assert len(api.tasks(filters={"service": good["Name"]})) == 1
        with pytest.raises(docker.errors.APIError, match="tasks are listed only"):
            api.tasks()
        api.remove_service(good["Name"])
        assert swarm.manager.services.list() == []
    finally:
        for leftover in swarm.manager.services.list():
            leftover.remove()
        proxy.remove(force=True)
        # The folders made here by hand, which no volume of the hub binds: setup makes its own.
        shutil.rmtree(hubfile.swarm_folders(str(swarm.storage), swarm.hub))


def _serve(swarm: Swarm, name: str, image: str, node: str, network: str) -> None:
    """A stand-in for a student's server: the class's Python serving HTTP on 8888, pinned to
    `node`, on the hub's network (by the manager: the proxy would not let a test pin it)."""
    swarm.manager.services.create(
        image, ["python3", "-m", "http.server", "8888"], name=name, user="1000:100",
        networks=[network], constraints=[f"node.hostname=={node}"],
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
        labels=names.user_labels(swarm.hub, name),
    )  # fmt: skip


def _reaches(swarm: Swarm, service: str, address: str, port: int) -> bool:
    """Whether the service's container opens a TCP connection to address:port within 3 s."""
    (task,) = [t for t in swarm.manager.services.get(service).tasks()
               if t["Status"]["State"] == "running"]  # fmt: skip
    node = swarm.manager.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]
    container = swarm.nodes[node].engine.containers.get(
        task["Status"]["ContainerStatus"]["ContainerID"]
    )
    probe = (
        "import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)"
        "\n print('open')\nexcept OSError as e:\n print('refused', e)"
    )
    said = container.exec_run(["python3", "-c", probe, address, str(port)]).output.decode()
    return said.strip() == "open"


def test_students_reach_the_hub_but_not_each_other_on_one_node_or_across_nodes(
    hub: Hub, swarm: Swarm
):
    """The swarm firewall (hub/classhub_hub/swarmguard.py) as a global service on every node,
    guarding the hub's overlay: what a student's server reaches, with and without it."""
    network_id, hub_ip = _hub_network(swarm)
    image = hub.client.images.get(hub.image).id  # the class's Python, on every node
    images.spread(hub.client, swarm.members, image, lambda line: None)
    hub_image = swarm.manager.images.get(names.hub_image(swarm.hub)).id
    network = names.network(swarm.hub)
    stand_in = swarm.manager.containers.run(  # the hub, at its fixed address: API 8081, proxy 8000
        image, ["sh", "-c", "python3 -m http.server 8081 & python3 -m http.server 8000"],
        entrypoint=[], detach=True, name=f"{swarm.hub}-hub", user="1000:100", network=network,
        networking_config={network: swarm.manager.api.create_endpoint_config(ipv4_address=hub_ip)},
        labels=names.labels(swarm.hub, "hub"),
    )  # fmt: skip
    students = {"s1": WORKERS[0], "s2": WORKERS[0], "s3": WORKERS[1]}
    try:
        for name, node in students.items():
            _serve(swarm, name, image, node, network)
        for name in students:
            _wait_running(swarm.manager.services.get(name))
        # Without the firewall, students reach each other: what it must stop.
        assert _reaches(swarm, "s1", "s2", 8888) and _reaches(swarm, "s1", "s3", 8888)
        swarm.manager.services.create(
            hub_image,
            ["python3", "-m", "classhub_hub.swarmguard", "--table", f"classhub_{swarm.hub}",
             "--network-id", network_id, "--hub-ip", hub_ip, "--port", "8081"],
            name="guard", mode=docker.types.ServiceMode("global"), networks=["host"],
            cap_add=["NET_ADMIN", "SYS_ADMIN"], cap_drop=["ALL"], read_only=True,
            mounts=[docker.types.Mount("/var/run/docker/netns", "/var/run/docker/netns",
                                       type="bind", propagation="rslave")],
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not all(_guarded(swarm, node) for node in ("manager", *WORKERS)):
            assert time.monotonic() < deadline, _guard_logs(swarm)
            time.sleep(1)
        for source, target in [("s1", "s2"), ("s1", "s3"), ("s3", "s1"), ("s2", "s1")]:
            assert not _reaches(swarm, source, target, 8888), (source, target)
        for name in students:
            assert _reaches(swarm, name, hub_ip, 8081), name  # the hub's API
            assert not _reaches(swarm, name, hub_ip, 8000), name  # its proxy port: from outside
        said = stand_in.exec_run(["python3", "-c", "import urllib.request as u; "
                                  "print(u.urlopen('http://s3:8888/', timeout=5).status)"])  # fmt: skip
        assert said.output.decode().strip() == "200"  # the hub reaches every server
        # The table removed from a node's namespace (a firewall reload, say) is put back, and a
        # server that starts meanwhile on that node is cut off once it is.
        worker = swarm.nodes[WORKERS[1]].container
        before = _loads(swarm, WORKERS[1])
        where = f"/var/run/docker/netns/1-{network_id[:10]}"
        removed = worker.exec_run(["nsenter", f"--net={where}", "nft", "delete", "table", "inet",
                                   f"classhub_{swarm.hub}"])  # fmt: skip
        assert removed.exit_code == 0, removed.output
        deadline = time.monotonic() + 30
        while _loads(swarm, WORKERS[1]) == before:
            assert time.monotonic() < deadline, _guard_logs(swarm)
            time.sleep(0.5)
        assert not _reaches(swarm, "s3", "s1", 8888)
        _serve(swarm, "s4", image, WORKERS[1], network)
        _wait_running(swarm.manager.services.get("s4"))
        assert not _reaches(swarm, "s4", "s3", 8888) and _reaches(swarm, "s4", hub_ip, 8081)
    finally:
        for service in swarm.manager.services.list():
            service.remove()
        stand_in.remove(force=True)


def _loads(swarm: Swarm, node: str) -> int:
    """How often the node's firewall has said it loaded its table."""
    return sum(
        c.logs().decode(errors="replace").count("firewall: table inet")
        for c in swarm.nodes[node].engine.containers.list(filters={"name": "guard"})
    )


def _guard_logs(swarm: Swarm) -> str:
    return "\n".join(
        f"{node}: {c.logs().decode(errors='replace')}"
        for node in ("manager", *WORKERS)
        for c in swarm.nodes[node].engine.containers.list(all=True, filters={"name": "guard"})
    )


def _node_guard_state(swarm: Swarm, node: str) -> str:
    """For a failure's message: the node guard's log on `node`, its table there, and what the
    proxy and the guards wrote in the shared storage."""
    engine = swarm.nodes[node].engine
    found = engine.containers.list(filters={"name": guard.name(swarm.hub, "node")})
    said = [c.logs(tail=30).decode(errors="replace") for c in found]
    table = swarm.nodes[node].container.exec_run(
        ["nft", "list", "table", "inet", names.firewall_table(swarm.hub)]
    )
    words = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub)) / hubfile.GUARD_WORDS
    files = {p.name: p.read_text()[:600] for p in sorted(words.glob("*.json"))} if (
        words.is_dir()) else {}  # fmt: skip
    state = f"log: {said}\ntable: {table.output.decode(errors='replace')}\nfiles: {files}"
    print(f"--- the node guard on {node} ---\n{state}")  # whole, where pytest cuts the message
    return state


def _guarded(swarm: Swarm, node: str) -> bool:
    return _loads(swarm, node) > 0


SWARM_CLASS = "hub-admin admin\ns1 team-a\ns2 team-a team-b\ns3 team-b\ns4 team-b\n"


def _placed(swarm: Swarm, user: str) -> str:
    """The hostname of the node the user's server runs on."""
    service = swarm.manager.services.get(names.user_container(swarm.hub, user))
    task = _wait_running(service)
    return swarm.manager.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]


def _address(swarm: Swarm, user: str) -> str:
    """The user's server's address on the hub's network."""
    service = swarm.manager.services.get(names.user_container(swarm.hub, user))
    task = _wait_running(service)
    (attached,) = [a for a in task["NetworksAttachments"]
                   if a["Network"]["Spec"]["Name"] == names.network(swarm.hub)]  # fmt: skip
    return attached["Addresses"][0].split("/")[0]


def test_setup_on_the_swarm_runs_the_class_on_the_workers_with_files_that_follow_them(
    swarm: Swarm, outside: Outside
):
    """ENGINE=swarm: setup from the roster makes the hub on the manager and the firewall on every
    node; four students in two groups log in through the form and run code, their servers
    services on both workers; a group folder written on one node is edited from the other; what
    they send beyond the overlay meets the egress policy on every node, a group's egress= its
    members' alone."""
    manager = swarm.nodes["manager"].address
    # And s6, whose group has an image of its own: a build only the manager has, until setup.
    base, _ = image_refs.resolve_base(lambda ref: builder.find(swarm.manager, ref),
                                      "debian:bookworm-slim")  # fmt: skip
    made = swarm.manager.containers.create(base, ["true"], entrypoint=[])
    late = made.commit("classhub-late", "only-here")
    made.remove()
    roster = (SWARM_CLASS + "s6 late\ngroup: late image=classhub-late:only-here\n"
              f"group: team-a egress={outside.group_allowed}\n")  # fmt: skip
    (swarm.paths.root / "userlist").write_text(roster)
    set_env(swarm.paths, {"ENGINE": "swarm", "BIND_ADDRESS": manager,
                          "EGRESS_ALLOW": f"{outside.allowed}:{PORT}"})  # fmt: skip
    overlay = _hub_network(swarm)[0]  # (the proxy's test made it as setup does)
    done = swarm.invoke("setup")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert _hub_network(swarm)[0] == overlay  # kept: setup made the hub's bridge beside it
    words = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub)) / hubfile.GUARD_WORDS
    assert all(hubfile.guard_said(words, host) > 0 for host in ("manager", *WORKERS))
    for table in hubfile.GUARD_TABLES:  # each guard a global service: one task on every node
        firewall = swarm.manager.services.get(guard.name(swarm.hub, table))
        assert firewall.attrs["Spec"]["Mode"] == {"Global": {}}
    # Every home and group folder is in the shared storage, with its owner and mode.
    folders = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub))
    for user in ("s1", "s2", "s3", "s4"):
        home = folders / names.user_volume(swarm.hub, user)
        assert (home.stat().st_uid, home.stat().st_gid) == (1000, 100), user
    team = folders / names.group_volume(swarm.hub, "team-b")
    assert oct(team.stat().st_mode & 0o7777) == "0o2775"

    passwords = _passwords(swarm)
    url = f"http://{manager}:{swarm.port}/{swarm.hub}/"
    students = {user: Browser(url, user) for user in ("s1", "s2", "s3", "s4")}
    for user, browser in students.items():
        assert browser.login(passwords[user]).status_code == 302, user
        browser.start()
        assert browser.open_lab().status_code == 200, user  # through the hub's OAuth
        assert browser.run("print(6 * 7)").strip() == "42", user
    # A student's server's log comes from its service, on whichever worker it runs.
    said = swarm.invoke("logs", "--user", "s1")
    assert said.returncode == 0, said.stdout + said.stderr
    assert "ServerApp]" in said.stdout and f"/{swarm.hub}/user/s1/" in said.stdout, said.stdout
    # Setup gave every worker the group's image too. A worker that lost it (drift) cannot start
    # s6's server: the start fails at once, and the student reads the swarm's own reason
    # (SwarmSpawner would wait the whole start timeout, 600 s here, then say "timeout").
    for worker in WORKERS:
        assert images.has(swarm.nodes[worker].engine, late.id), worker
        swarm.nodes[worker].engine.images.remove(late.id, force=True)
    student, began = Browser(url, "s6"), time.monotonic()
    assert student.login(passwords["s6"]).status_code == 302
    with pytest.raises(StudentError, match="the swarm could not start the server: its task is "
                       r"(rejected|failed): \w"):  # fmt: skip
        student.start()
    assert time.monotonic() - began < 60
    while names.user_container(swarm.hub, "s6") in {s.name for s in swarm.manager.services.list()}:
        assert time.monotonic() - began < 90, "the hub did not remove what it could not start"
        time.sleep(0.5)
    placed = {user: _placed(swarm, user) for user in students}
    assert set(placed.values()) == set(WORKERS), placed  # both workers, never the manager
    # s2 shares a group with every other student: one of them is on the other worker.
    other = next(u for u in ("s1", "s3", "s4") if placed[u] != placed["s2"])
    group = "team-a" if other == "s1" else "team-b"
    students["s2"].run(f"open('/home/jovyan/{group}/notes.txt', 'w').write('from s2\\n')")
    edited = students[other].run(
        f"p = '/home/jovyan/{group}/notes.txt'\n"
        f"open(p, 'a').write('and {other}\\n')\nprint(open(p).read())"
    )
    assert "from s2" in edited, edited
    said = students["s2"].run(f"print(open('/home/jovyan/{group}/notes.txt').read())")
    assert said.strip() == f"from s2\nand {other}", said
    # The firewall on every node: a student reaches no other student's server, on the same
    # worker or the other one, and reaches the hub's API.
    probe = ("import socket\ntry:\n socket.create_connection(({!r}, {}), 3); print('open')\n"
             "except OSError as e:\n print('refused', e)")  # fmt: skip
    same = next((u for u in students if u != "s2" and placed[u] == placed["s2"]), None)
    for target in [other, *([same] if same else [])]:
        said = students["s2"].run(probe.format(_address(swarm, target), 8888))
        assert said.startswith("refused"), (target, said)
    said = students["s2"].run(probe.format(names.hub_container(swarm.hub), hubfile.HUB_API_PORT))
    assert said.strip() == "open", said
    # What leaves the overlay on a node (through its docker_gwbridge) meets the egress policy:
    # the internet, EGRESS_ALLOW and team-a's egress= yes; a private network (a storage
    # server's, say), the metadata endpoint, and every node's own ports no: Docker's API (2375,
    # as these nested nodes serve it), the swarm's (2377, 7946), on the student's own node, the
    # other worker and the manager.
    own, away = swarm.nodes[placed["s2"]].address, swarm.nodes[placed[other]].address
    found = reach(students["s2"], (outside.internet, PORT), (outside.allowed, PORT),
                  (outside.group_allowed, PORT), (outside.private, PORT),
                  (outside.metadata, PORT), (manager, 2375), (manager, 2377), (away, 2375),
                  (away, 7946), (own, 2375), (own, 7946))  # fmt: skip
    assert found[:3] == ["open", "open", "open"], (found, _node_guard_state(swarm, placed["s2"]))
    assert all(refused_at_once(result) for result in found[3:]), found
    # team-a's egress= is its members' alone, on either worker: s3 and s4 are in team-b only.
    for user in ("s3", "s4"):
        found = reach(students[user], (outside.internet, PORT), (outside.group_allowed, PORT))
        assert found[0] == "open" and refused_at_once(found[1]), (
            user, found, _node_guard_state(swarm, placed[user]))  # fmt: skip
    # Nothing Jupyter keeps in SQLite (IPython's history, the notebooks' trust) is on the
    # shared storage: those files are in each server's tmpfs.
    said = students["s1"].run(
        "import IPython, jupyter_core.paths as j\n"
        "print(IPython.paths.get_ipython_dir(), j.jupyter_data_dir())"
    )
    assert said.split() == ["/tmp/.ipython", "/tmp/.jupyter-data"], said
    assert not [p for p in folders.rglob("*") if p.suffix in (".sqlite", ".db")]
    # The server's container is hardened as on one server, on its worker.
    node = swarm.nodes[placed["s1"]].engine
    (container,) = node.containers.list(filters={"label": f"{names.LABEL_USER}=s1"})
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    status = swarm.invoke("status")
    assert status.returncode == 0, status.stdout + status.stderr
    servers = {line.split()[0]: int(line.split()[4]) for line in status.stdout.splitlines()
               if line.split()[:1] in (["manager"], [WORKERS[0]], [WORKERS[1]])}  # fmt: skip
    assert servers == {"manager": 0} | {w: list(placed.values()).count(w) for w in WORKERS}
    # Course materials reach a student whose server runs on a worker, through the shared
    # storage, and collect reads them back from there (docs/assignments.md).
    material = swarm.paths.root.parent / "hw"
    material.mkdir(exist_ok=True)
    (material / "task.txt").write_text("do this\n")
    given = swarm.invoke("handout", str(material), "--users", "s1,s3")
    assert given.returncode == 0, given.stdout + given.stderr
    said = students["s1"].run("p = 'hw/task.txt'\nprint(open(p).read().strip())\n"
                              "open(p, 'a').write('done\\n')")  # fmt: skip
    assert said.strip() == "do this", said
    collected = swarm.invoke("collect", "hw")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    (snapshot,) = (swarm.paths.root / "assignments" / "hw").glob("collected-*")
    assert (snapshot / "s1" / "task.txt").read_text() == "do this\ndone\n"
    rows = {r["who"]: r["handed_in"] for r in csv.DictReader((snapshot / "submissions.csv").open())}
    assert rows == {"s1": "yes", "s3": "no"}, rows
    # Stopped, the service goes (the files stay); started again, the same files are there.
    students["s1"].run("open('before.txt', 'w').write('kept')")
    students["s1"].stop()
    assert names.user_container(swarm.hub, "s1") not in {
        s.name for s in swarm.manager.services.list()
    }
    students["s1"].start()
    assert students["s1"].open_lab().status_code == 200
    assert students["s1"].run("print(open('before.txt').read())").strip() == "kept"


def test_an_exam_on_the_swarm_cuts_its_group_off_on_every_node_and_stop_gives_it_back(
    swarm: Swarm, outside: Outside
):
    """The setup test's class, its servers on both workers: team-b (s2, s3, s4) in an exam
    reaches the hub alone, whichever node its servers are on, with no restart; s1 (team-a alone)
    is untouched; a server started during the exam starts cut off; stop gives them back."""
    url = f"http://{swarm.nodes['manager'].address}:{swarm.port}/{swarm.hub}/"
    passwords = _passwords(swarm)
    students = {user: Browser(url, user) for user in ("s1", "s2", "s3", "s4")}
    for user, student in students.items():
        assert student.login(passwords[user]).status_code == 302, user
        student.start()
        assert student.open_lab().status_code == 200, user
    placed = {user: _placed(swarm, user) for user in students}
    # The swarm spreads the four over the two workers: team-b's three are on both.
    assert {placed[u] for u in ("s2", "s3", "s4")} == set(WORKERS), placed
    before = {u: swarm.manager.services.get(names.user_container(swarm.hub, u)).id for u in placed}
    kernel = students["s3"].new_kernel()
    students["s3"].run_in(kernel, "answer = 41")
    hub = (names.hub_container(swarm.hub), hubfile.HUB_API_PORT)
    try:
        said = swarm.invoke("exam", "start", "--group", "team-b")
        assert said.returncode == 0, said.stdout + said.stderr
        # Counted by the guards of both workers together.
        assert "Exam mode for group team-b until invoke exam stop: its 3 running server(s)" in (
            said.stdout), said.stdout  # fmt: skip
        for user in ("s2", "s3", "s4"):
            cut = reach(students[user], (outside.internet, PORT), (outside.allowed, PORT),
                        (outside.group_allowed, PORT), hub)  # fmt: skip
            assert all(refused_at_once(r) for r in cut[:3]) and cut[3] == "open", (user, cut)
        assert reach(students["s1"], (outside.internet, PORT), (outside.group_allowed, PORT)) == [
            "open", "open"]  # fmt: skip
        assert students["s3"].run_in(kernel, "print(answer + 1)").strip() == "42"
        status = swarm.invoke("status")
        assert "In an exam (their servers reach the hub alone): team-b until invoke exam stop" in (
            status.stdout), status.stdout  # fmt: skip
        # s2's server started again during the exam starts cut off, wherever it lands.
        students["s2"].stop()
        students["s2"].start()
        assert students["s2"].open_lab().status_code == 200
        assert refused_at_once(reach(students["s2"], (outside.internet, PORT))[0])
        before["s2"] = swarm.manager.services.get(names.user_container(swarm.hub, "s2")).id
    finally:
        stopped = swarm.invoke("exam", "stop", "--group", "team-b")
    assert stopped.returncode == 0 and "Exam over for group team-b" in stopped.stdout, (
        stopped.stdout + stopped.stderr)  # fmt: skip
    for user in ("s2", "s3", "s4"):
        assert reach(students[user], (outside.internet, PORT)) == ["open"], user
    assert reach(students["s2"], (outside.group_allowed, PORT)) == ["open"]  # team-a's again
    assert students["s3"].run_in(kernel, "print(answer)").strip() == "41"
    after = {u: swarm.manager.services.get(names.user_container(swarm.hub, u)).id for u in placed}
    assert after == before  # no server was restarted by the exam


def test_the_bundled_nginx_fronts_the_hub_on_the_swarm(swarm: Swarm):
    """PROXY=nginx on the swarm: nginx, on the manager's own network, serves HTTPS and reaches
    the hub at its port published at BIND_ADDRESS (loopback by default; here the manager's
    address, which the tests reach), as a site's own nginx would; a student logs in through it
    and runs code on a worker. PROXY=none again after, for the tests that follow."""
    manager = swarm.nodes["manager"].address
    https, http = free_port(), free_port()
    set_env(swarm.paths, {"PROXY": "nginx", "HTTPS_PORT": str(https), "HTTP_PORT": str(http)})
    try:
        done = swarm.invoke("setup")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        hub = swarm.manager.containers.get(names.hub_container(swarm.hub))
        assert hub.attrs["HostConfig"]["PortBindings"] == {
            f"{hubfile.PROXY_PORT}/tcp": [{"HostIp": manager, "HostPort": str(swarm.port)}]
        }
        conf = (swarm.paths.state_dir / "nginx.conf").read_text()
        assert f"proxy_pass http://{manager}:{swarm.port};" in conf, conf
        s3 = Browser(f"https://{manager}:{https}/{swarm.hub}/", "s3")
        assert s3.login(_passwords(swarm)["s3"]).status_code == 302
        s3.start()
        assert s3.open_lab().status_code == 200
        assert s3.run("print(6 * 7)").strip() == "42"
        assert _placed(swarm, "s3") in WORKERS
    finally:
        set_env(swarm.paths, {"PROXY": "none"})
        done = swarm.invoke("setup")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    front = {"name": names.nginx_container(swarm.hub)}
    assert swarm.manager.containers.list(all=True, filters=front) == []  # setup took it away


def _passwords(swarm: Swarm) -> dict[str, str]:
    logins = invoke(swarm.paths, "login", "--csv", env=swarm.env)
    assert logins.returncode == 0, logins.stderr
    return {row["username"]: row["password"] for row in csv.DictReader(io.StringIO(logins.stdout))}


def _backup(swarm: Swarm) -> Path:
    """Where the term's test backs the hub up, and the last test restores it from: in the
    checkout (BACKUP_DIR's default), which the manager sees at the same path (the database's
    copy is written there by a container on the manager, as on a real one)."""
    return swarm.paths.root / "backups" / "term"


def test_the_term_on_the_swarm_a_rehearsal_a_student_added_and_purged_and_a_backup(
    swarm: Swarm, tmp_path
):  # the backup is restored by the last test
    """The class of the setup test runs on."""
    folders = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub))
    rehearsal = swarm.invoke("rehearse", "--users", "2", "--ramp", "0", "--out", str(tmp_path))
    assert rehearsal.returncode == 0, rehearsal.stdout[-3000:] + rehearsal.stderr[-3000:]
    assert "Failures: 0" in rehearsal.stdout, rehearsal.stdout
    assert [p.name for p in folders.iterdir() if "_rehearse" in p.name] == []  # swept
    assert not [s.name for s in swarm.manager.services.list() if "_rehearse" in s.name]
    added = swarm.invoke("add-user", "s5", "--group", "team-a")
    assert added.returncode == 0, added.stdout + added.stderr
    home = folders / names.user_volume(swarm.hub, "s5")
    assert (home.stat().st_uid, home.stat().st_gid) == (1000, 100)
    (home / "draft.txt").write_text("s5's work\n")
    purged = swarm.invoke("remove-user", "s5", "--purge", "--yes")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not home.exists()  # its folder on the shared storage, files and all
    made = swarm.invoke("backup", "--to", str(_backup(swarm)))
    assert made.returncode == 0, made.stdout + made.stderr
    manifest = json.loads((_backup(swarm) / "manifest.json").read_text())
    home = f"volumes/{names.user_volume(swarm.hub, 's1')}.tar.gz"
    assert manifest["complete"] and home in manifest["files"], manifest["files"]
    with tarfile.open(_backup(swarm) / home) as archive:  # the folder's files, owners kept
        kept = archive.getmember("v/before.txt")
    assert (kept.uid, kept.gid) == (1000, 100)


def test_a_group_added_the_roster_synced_a_server_restarted_down_up_and_prewarm_on_the_swarm(
    swarm: Swarm,
):
    """The rest of a term's tasks on the swarm, on the setup test's class. It leaves the class's
    servers running again, prewarmed, on both workers: the next test kills one."""
    folders = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub))
    url = f"http://{swarm.nodes['manager'].address}:{swarm.port}/{swarm.hub}/"
    added = swarm.invoke("add-group", "team-c", "--members", "s1")
    assert added.returncode == 0, added.stdout + added.stderr
    team = folders / names.group_volume(swarm.hub, "team-c")
    assert (team.stat().st_uid, oct(team.stat().st_mode & 0o7777)) == (1000, "0o2775")
    # The roster edited by hand: s6 (whose image no worker has) off it, s7 on it; sync follows.
    roster = swarm.paths.root / "userlist"
    roster.write_text(roster.read_text().replace("s6 late\n", "") + "s7 team-c\n")
    synced = swarm.invoke("sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    home = folders / names.user_volume(swarm.hub, "s7")
    assert (home.stat().st_uid, home.stat().st_gid) == (1000, 100)
    assert (folders / names.user_volume(swarm.hub, "s6")).exists()  # off the roster, home kept
    # restart-server: s1's server is a new service, with its new group's folder and its files.
    s1 = Browser(url, "s1")
    assert s1.login(_passwords(swarm)["s1"]).status_code == 302
    s1.start()
    service = names.user_container(swarm.hub, "s1")
    before = swarm.manager.services.get(service).id
    restarted = swarm.invoke("restart-server", "--name", "s1")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    _wait_running(swarm.manager.services.get(service))
    assert swarm.manager.services.get(service).id != before
    assert s1.open_lab().status_code == 200
    said = s1.run("import os\nprint(os.path.isdir('team-c'), open('before.txt').read())")
    assert said.split() == ["True", "kept"], said
    # down: every student's service goes, the firewall's stay; up: the hub is back.
    down = swarm.invoke("down")
    assert down.returncode == 0, down.stdout + down.stderr
    left = {s.name for s in swarm.manager.services.list()}
    assert left == {guard.name(swarm.hub, table) for table in hubfile.GUARD_TABLES}, left
    up = swarm.invoke("up")
    assert up.returncode == 0, up.stdout + up.stderr
    # prewarm: the class's servers start, each with a kernel ready, on the workers.
    warmed = swarm.invoke("prewarm", "--users", "s1,s2,s3,s4")
    assert warmed.returncode == 0, warmed.stdout + warmed.stderr
    placed = {user: _running_on(swarm, user) for user in ("s1", "s2", "s3", "s4")}
    assert set(placed.values()) == set(WORKERS), placed


def _running_on(swarm: Swarm, user: str) -> str | None:
    found = [s for s in swarm.manager.services.list()
             if s.name == names.user_container(swarm.hub, user)]  # fmt: skip
    tasks = [t for t in found[0].tasks() if t["Status"]["State"] == "running"] if found else []
    if not tasks:
        return None
    return swarm.manager.nodes.get(tasks[0]["NodeID"]).attrs["Description"]["Hostname"]


def test_a_dead_node_reads_down_its_students_start_again_elsewhere_and_remove_node_takes_it_off(
    swarm: Swarm,
):
    """Last: it stops a worker's server for good. The class of the setup test runs on both."""
    host = WORKERS[1]
    (swarm.storage / "still-here.txt").write_text("kept\n")
    passwords = _passwords(swarm)
    url = f"http://{swarm.nodes['manager'].address}:{swarm.port}/{swarm.hub}/"
    there = {u: Browser(url, u) for u in ("s1", "s2", "s3", "s4") if _running_on(swarm, u) == host}
    assert there, "the setup test leaves servers on both workers"
    for user, browser in there.items():
        assert browser.login(passwords[user]).status_code == 302
        assert browser.open_lab().status_code == 200
        browser.run(f"open('mine.txt', 'w').write('{user} was here')")
    swarm.nodes[host].container.kill()
    killed = time.monotonic()
    deadline = killed + 90
    while True:
        (node,) = [n for n in swarm.manager.nodes.list()
                   if n.attrs["Description"]["Hostname"] == host]  # fmt: skip
        if node.attrs["Status"]["State"] == "down":
            break
        assert time.monotonic() < deadline, node.attrs["Status"]
        time.sleep(1)
    # The hub reads their servers stopped within about a minute (its poll of each server sees
    # the swarm has given the task up), and they start again on the other worker, files there.
    for user, browser in there.items():
        while browser.hub_api("GET", f"/users/{user}").json().get("servers"):
            assert time.monotonic() < killed + 120, f"{user}'s server still reads as running"
            time.sleep(1)
    print(f"servers on the dead node read as stopped {time.monotonic() - killed:.0f} s after")
    for user, browser in there.items():
        browser.start()
        assert browser.open_lab().status_code == 200
        assert browser.run("print(open('mine.txt').read())").strip() == f"{user} was here"
        assert _running_on(swarm, user) == WORKERS[0]
    status = swarm.invoke("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert plan_rows(status.stdout)[f"images on node {host}"][0] == "down: not looked at"
    assert any(line.split()[:3] == [host, "worker", "down"] for line in status.stdout.splitlines())
    removed = swarm.invoke("remove-node", host)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"{host} is no longer a node" in removed.stdout
    assert host not in {n.attrs["Description"]["Hostname"] for n in swarm.manager.nodes.list()}
    assert (swarm.storage / "still-here.txt").read_text() == "kept\n"


def test_destroy_leaves_nothing_on_any_node_and_the_backup_brings_the_class_back(swarm: Swarm):
    """After the dead node: what is left of the swarm is the manager and worker1."""
    done = swarm.invoke("destroy", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    for host in ("manager", WORKERS[0]):
        engine = swarm.nodes[host].engine
        flt = {"label": f"{names.LABEL_HUB}={swarm.hub}"}
        left = [c.name for c in engine.containers.list(all=True, filters=flt)]
        left += [v.name for v in engine.volumes.list(filters=flt)]
        left += [n.name for n in engine.networks.list(filters=flt)]
        assert left == [], (host, left)
    assert swarm.manager.services.list() == []
    folders = Path(hubfile.swarm_folders(str(swarm.storage), swarm.hub))
    assert not folders.exists()
    # The term's backup brings the hub back on the swarm, the students' files with it.
    back = swarm.invoke("restore", str(_backup(swarm)), timeout=900)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    home = folders / names.user_volume(swarm.hub, "s1")
    assert (home / "before.txt").read_text() == "kept"
    assert ((home / "before.txt").stat().st_uid, home.stat().st_uid) == (1000, 1000)
    s1 = Browser(f"http://{swarm.nodes['manager'].address}:{swarm.port}/{swarm.hub}/", "s1")
    assert s1.login(_passwords(swarm)["s1"]).status_code == 302
    s1.start()
    assert s1.open_lab().status_code == 200
    assert s1.run("print(open('before.txt').read())").strip() == "kept"
