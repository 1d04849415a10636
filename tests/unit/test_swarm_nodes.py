"""The pure parts of the swarm's node tasks: how a node is named, the ssh command that reaches it
(nothing of the name reaches a shell or becomes an option), the checks of its engine, and status's
table of nodes. tests/e2e/test_swarm.py runs them all on real servers reached over SSH."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from classhub import commands
from classhub.console import Output
from classhub.errors import UserError
from classhub.paths import Paths
from classhub.runtime import NodeInfo
from classhub.runtime.fake import FakeEngine
from classhub.runtime.swarm import images, nodes, ssh
from tests.conftest import PROJECT, clean_environ, make_checkout


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("node2", ssh.Target("node2")),
        ("root@node2.example.edu", ssh.Target("node2.example.edu", "root")),
        ("admin@10.0.0.6:2222", ssh.Target("10.0.0.6", "admin", 2222)),
        ("ssh://admin@10.0.0.6:2222", ssh.Target("10.0.0.6", "admin", 2222)),
        ("root@[fd00::6]:22", ssh.Target("fd00::6", "root", 22)),
    ],
)
def test_a_node_is_named_as_ssh_names_a_server(raw: str, target: ssh.Target):
    assert ssh.parse(raw) == target
    assert ssh.parse(str(target)) == target  # as the node's label keeps it


@pytest.mark.parametrize(
    "raw",
    ["", "-oProxyCommand=sh", "root@-oProxyCommand=sh", "two words", "root@node2:0",
     "root@node2:70000", "a@b@c", "node2;reboot", "node2 -p 22", "root@"],
)  # fmt: skip
def test_anything_else_is_refused_with_the_accepted_forms(raw: str):
    with pytest.raises(UserError, match="write HOST, USER@HOST or USER@HOST:PORT"):
        ssh.parse(raw)


def test_the_ssh_command_forwards_the_docker_socket_and_never_asks(tmp_path: Path):
    line = ssh.command(ssh.Target("node2", "admin", 2222), tmp_path / "s", tmp_path / "kh",
                       tmp_path / "key")  # fmt: skip
    assert line[0] == "ssh" and line[-2:] == ["--", "node2"]  # the host cannot be an option
    assert line[line.index("BatchMode=yes") - 1] == "-o"
    assert f"UserKnownHostsFile={tmp_path / 'kh'}" in line
    assert "StrictHostKeyChecking=accept-new" in line
    assert line[line.index("-i") + 1] == str(tmp_path / "key")
    assert line[line.index("-p") + 1] == "2222" and line[line.index("-l") + 1] == "admin"
    assert line[line.index("-L") + 1] == f"{tmp_path / 's'}:/var/run/docker.sock"
    plain = ssh.command(ssh.Target("node2"), tmp_path / "s", tmp_path / "kh", None)
    assert "-i" not in plain and "-p" not in plain and "-l" not in plain


def test_an_unreachable_node_says_how_to_check_it(tmp_path: Path):
    with (
        pytest.raises(
            UserError,
            match=r"cannot reach 127.0.0.1:1 over SSH: .*`ssh -p 1 127.0.0.1 docker version`",
        ),
        ssh.engine(ssh.Target("127.0.0.1", port=1), tmp_path / "known_hosts"),
    ):
        pass


MANAGER = {"ID": "M", "ServerVersion": "20.10.24+dfsg1", "Architecture": "x86_64",
           "Swarm": {"LocalNodeState": "active", "NodeID": "m1"}}  # fmt: skip
GOOD = {"ID": "N", "ServerVersion": "20.10.5", "Architecture": "x86_64", "LiveRestoreEnabled": False,
        "Swarm": {"LocalNodeState": "inactive", "NodeID": ""}}  # fmt: skip


def test_a_node_like_the_manager_passes_the_engine_checks():
    assert nodes.engine_problems(MANAGER, GOOD, {"m1"}) == []
    member = dict(GOOD, Swarm={"LocalNodeState": "active", "NodeID": "n1"})
    assert nodes.engine_problems(MANAGER, member, {"m1", "n1"}) == []  # already ours: checked again


def test_every_engine_problem_is_named_at_once_with_its_fix():
    odd = {"ID": "N", "ServerVersion": "24.0.7", "Architecture": "aarch64",
           "LiveRestoreEnabled": True, "Swarm": {"LocalNodeState": "active", "NodeID": "x9"}}  # fmt: skip
    found = nodes.engine_problems(MANAGER, odd, {"m1"})
    assert len(found) == 4
    assert "its Docker engine is 24.0.7, this server's 20.10.24+dfsg1" in found[0]
    assert "install the same version (20.10)" in found[0]
    assert "aarch64 server, this one x86_64" in found[1]
    assert "live-restore" in found[2] and "daemon.json" in found[2]
    assert "already in another swarm" in found[3] and "docker swarm leave" in found[3]
    assert nodes.engine_problems(MANAGER, dict(GOOD, ID="M"), {"m1"}) == [
        "it is this server itself (the manager): add-node joins other servers to it"
    ]


# The node's mounts as /proc/1/mountinfo lists them: systemd's (every mount shared), and a node
# whose root is a slave alone (a container's, or a system without systemd) with /run apart.
SHARED = "--- mounts\n27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
SLAVE = (
    "--- mounts\n27 1 254:0 / / rw,relatime shared:1 master:1 - ext4 /dev/vda rw\n"
    "30 27 0:25 / /run rw,nosuid master:7 - tmpfs tmpfs rw\n"
    "41 30 0:4 net:[4026532184] /run/docker/netns/7e032390b829 rw shared:9 - nsfs nsfs rw\n"
)


def test_the_hardening_probe_refuses_a_node_without_no_new_privileges_or_with_swap():
    """What nodes.PROBE prints on a node (its engine's no-new-privileges, then /proc/swaps
    without its header, then the node's mounts). The end-to-end tests run it on real nodes: with
    no-new-privileges and without, mounts shared and not (refused); this machine has no swap,
    so a node with swap is this output alone."""
    assert nodes.probe_problems("NoNewPrivs:\t1\n" + SHARED) == []
    (found,) = nodes.probe_problems("NoNewPrivs:\t0\n" + SHARED)
    assert "no-new-privileges" in found and "daemon.json" in found
    swap = "/swapfile  file  2097148  0  -2\n/dev/sda3  partition  1000  0  -3\n"
    (found,) = nodes.probe_problems("NoNewPrivs:\t1\n" + swap + SHARED)
    assert "it has swap on (/swapfile, /dev/sda3)" in found and "swapoff -a" in found
    assert len(nodes.probe_problems("")) == 2  # nothing said: not shown to be hardened


def test_a_node_whose_docker_namespaces_would_not_reach_its_firewall_is_refused():
    """The mount that holds /run/docker/netns must be shared: the closest one above it, here
    /run (a slave alone), not / (shared) nor a namespace's own mount below it."""
    (found,) = nodes.probe_problems("NoNewPrivs:\t1\n" + SLAVE)
    assert "mount --make-rshared /" in found and "not shared" in found
    assert nodes.shared_netns(SHARED.split("\n", 1)[1])
    assert not nodes.shared_netns(SLAVE.split("\n", 1)[1])
    assert not nodes.shared_netns("")  # nothing read: not shown to be shared


def test_status_lists_the_swarm_nodes_with_this_hubs_servers_on_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    paths: Paths = make_checkout(tmp_path / "clone")
    for folder in ("hub", "singleuser", "db"):
        shutil.copytree(PROJECT / folder, paths.root / folder)
    (paths.root / "userlist").write_text("ann\n")
    fake = FakeEngine("math")
    monkeypatch.setattr(commands, "runtime", lambda environ, hub: fake)
    environ = clean_environ(HUB_NAME="math", BUILD_CA_BUNDLE="none")
    printed = io.StringIO()
    commands.status(paths, environ, Output(printed, io.StringIO()))
    assert "Nodes of" not in printed.getvalue()  # no swarm: nothing about nodes
    fake.swarm_nodes = [
        NodeInfo("lab1", "manager", "ready", "active", "", "20.10.24", 0),
        NodeInfo("lab2", "worker", "down", "drain", "root@10.0.0.6", "20.10.24", 3),
    ]
    printed = io.StringIO()
    commands.status(paths, environ, Output(printed, io.StringIO()))
    listed = printed.getvalue().split("Nodes of this server's swarm (2):\n", 1)[1].splitlines()
    assert listed[0].split()[:5] == ["node", "role", "state", "takes", "servers"]
    assert listed[1].split() == ["lab1", "manager", "ready", "active", "0", "20.10.24",
                                 "(this", "server)"]  # fmt: skip
    assert listed[2].split() == [
        "lab2",
        "worker",
        "down",
        "drain",
        "3",
        "20.10.24",
        "root@10.0.0.6",
    ]


@pytest.mark.parametrize(
    ("ref", "there"),
    [
        ("classhub-notebook:e2e1", ("reg.uni.edu:5000/classhub-notebook", "e2e1")),
        ("classhub-base:bookworm", ("reg.uni.edu:5000/classhub-base", "bookworm")),
        ("quay.io/jupyter/scipy:2024", ("reg.uni.edu:5000/jupyter/scipy", "2024")),
        ("other:5000/ds", ("reg.uni.edu:5000/ds", "latest")),
        ("team/ds", ("reg.uni.edu:5000/team/ds", "latest")),
    ],
)
def test_a_build_is_named_in_the_sites_registry_without_a_registry_of_its_own(ref, there):
    assert images.in_registry("reg.uni.edu:5000", ref) == there
