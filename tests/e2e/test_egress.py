"""What students' servers reach (issue "Egress"): the internet yes; this server, its private
networks and the cloud metadata endpoint no; exceptions by setting and by group; exam mode.

Every address a test connects to is one it made on this machine (outside.py). The hub is one of
its own, beside the shared one, with EGRESS_ALLOW and a group's egress= set.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest

from classhub import exams, names
from tests.conftest import invoke

from .conftest import Hub, engine_environ, hub_beside
from .outside import DNS_PORT, PORT, Outside, reach, refused_at_once
from .test_hub import running_server

ROSTER = "hub-admin admin\nann team-a\nbob team-b\ncid team-a\n"


@pytest.fixture(scope="module")
def walled(hub: Hub, tmp_path_factory, outside: Outside):
    settings = {"EGRESS_ALLOW": f"{outside.allowed}:{PORT}"}
    roster = ROSTER + f"group: team-a egress={outside.group_allowed}\n"
    root = tmp_path_factory.mktemp("egress")
    with hub_beside(hub, root, f"{hub.name}e", roster, settings) as walled:
        yield walled


def test_students_reach_the_internet_and_their_exceptions_but_not_this_servers_networks(
    walled: Hub, outside: Outside
):
    ann = running_server(walled, "ann")
    host_port = socket.create_server(("0.0.0.0", 0))  # a service of this server's own
    try:
        port = host_port.getsockname()[1]
        gateway = _gateway(walled)
        found = reach(ann, (outside.internet, PORT), (outside.allowed, PORT),
                      (outside.group_allowed, PORT), (outside.metadata, PORT),
                      (outside.private, PORT), (outside.allowed, PORT + 1),
                      (outside.this_server, port), (gateway, port))  # fmt: skip
    finally:
        host_port.close()
    assert found[:3] == ["open", "open", "open"], found
    # The metadata stand-in, a private address, an exception's other port, this server on two of
    # its addresses: refused at once, not timed out.
    assert all(refused_at_once(r) for r in found[3:]), found
    # Name resolution keeps working: the hub's name resolves, through Docker's own resolver.
    hub_address = ann.run(
        f"import socket; print(socket.gethostbyname({names.hub_container(walled.name)!r}))"
    )
    assert hub_address.strip().startswith(gateway.rsplit(".", 2)[0]), hub_address


def test_a_groups_exception_is_its_members_alone(walled: Hub, outside: Outside):
    bob = running_server(walled, "bob")  # team-b: EGRESS_ALLOW yes, team-a's egress= no
    found = reach(bob, (outside.allowed, PORT), (outside.group_allowed, PORT))
    assert found[0] == "open" and refused_at_once(found[1]), found


def exam(walled: Hub, *args: str):
    result = invoke(walled.paths, "exam", *args, env=engine_environ(), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_an_exam_cuts_a_group_off_at_once_without_a_restart_and_stop_gives_it_back(
    walled: Hub, outside: Outside
):
    ann, bob = running_server(walled, "ann"), running_server(walled, "bob")
    container = walled.client.containers.get(names.user_container(walled.name, "ann"))
    started = container.attrs["State"]["StartedAt"]
    kernel = ann.new_kernel()
    ann.run_in(kernel, "answer = 41\nopen('essay.txt', 'w').write('draft')")
    try:
        said = exam(walled, "start", "--group", "team-a")
        assert "Exam mode for group team-a until invoke exam stop: its 1 running server(s)" in said
        cut = reach(ann, (outside.internet, PORT), (outside.allowed, PORT),
                    (outside.group_allowed, PORT))  # fmt: skip
        assert all(refused_at_once(r) for r in cut), cut
        # The kernel, its variables and the files are as they were; the server was not restarted.
        assert ann.run_in(kernel, "print(answer + 1, open('essay.txt').read())").split() == [
            "42", "draft"]  # fmt: skip
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started
        assert reach(bob, (outside.internet, PORT)) == ["open"]  # another group: untouched
        status = invoke(walled.paths, "status", env=engine_environ()).stdout
        assert (
            "In an exam (their servers reach the hub alone): team-a until invoke exam stop"
            in status
        )
        # A server started during the exam starts cut off.
        cid = running_server(walled, "cid")
        assert refused_at_once(reach(cid, (outside.internet, PORT))[0])
    finally:
        said = exam(walled, "stop", "--group", "team-a")
    assert "Exam over for group team-a" in said
    assert reach(ann, (outside.internet, PORT), (outside.group_allowed, PORT)) == ["open", "open"]
    assert ann.run_in(kernel, "print(answer)").strip() == "41"


def test_students_reach_the_name_servers_this_server_uses_on_port_53_alone(
    walled: Hub, outside: Outside
):
    """Docker's DNS in a student's container forwards a name it does not know from inside the
    container, to the name servers the firewall's resolv.conf lists (Docker gives it this
    server's): on a cloud those are private addresses, which the egress policy refuses. Here the
    stand-in name server is added to the firewall container's resolv.conf (the file Docker
    binds there), as if this server used it: the test reaches nothing beyond this machine."""
    ann = running_server(walled, "ann")
    assert refused_at_once(reach(ann, (outside.resolver, DNS_PORT))[0])  # not a resolver yet
    firewall = walled.client.containers.get(names.firewall_container(walled.name))
    conf = Path(firewall.attrs["ResolvConfPath"])
    before = conf.read_text()
    try:
        conf.write_text(before + f"nameserver {outside.resolver}\n")
        deadline = time.monotonic() + 10
        while reach(ann, (outside.resolver, DNS_PORT)) != ["open"]:
            assert time.monotonic() < deadline, firewall.logs(tail=20).decode()
            time.sleep(0.5)
        assert refused_at_once(reach(ann, (outside.resolver, PORT))[0])  # port 53 alone
    finally:
        conf.write_text(before)


def test_an_exam_ends_by_itself_at_its_until(walled: Hub, outside: Outside):
    ann = running_server(walled, "ann")
    now = dt.datetime.now()
    end = (now + dt.timedelta(minutes=1 if now.second < 45 else 2)).replace(second=0, microsecond=0)
    try:
        said = exam(walled, "start", "--group", "team-a", "--until", f"{end:%H:%M}")
        assert f"until {end:%H:%M}" in said
        assert refused_at_once(reach(ann, (outside.internet, PORT))[0])
        while dt.datetime.now() < end + dt.timedelta(seconds=2):
            time.sleep(1)
        # Nobody ran anything meanwhile: the firewall ended it on its own.
        assert reach(ann, (outside.internet, PORT)) == ["open"]
        status = invoke(walled.paths, "status", env=engine_environ()).stdout
        assert "In an exam" not in status
    finally:
        exam(walled, "stop", "--group", "team-a")


def test_exam_refuses_a_group_that_is_not_on_the_roster_and_a_time_that_has_passed(walled: Hub):
    result = invoke(walled.paths, "exam", "start", "--group", "team-c", env=engine_environ())
    assert result.returncode == 1 and "--group team-c: no such group in userlist" in result.stderr
    assert "did you mean team-a or team-b?" in result.stderr, result.stderr
    past = (dt.datetime.now() - dt.timedelta(minutes=2)).strftime("%H:%M")
    result = invoke(walled.paths, "exam", "start", "--group", "team-a", "--until", past,
                    env=engine_environ())  # fmt: skip
    assert result.returncode == 1 and "that time has passed today" in result.stderr
    assert "team-a" not in exams.in_progress(walled.paths)  # nothing was started


def _gateway(hub: Hub) -> str:
    network = hub.client.networks.get(names.network(hub.name))
    return network.attrs["IPAM"]["Config"][0]["Gateway"]
