"""Who holds a port on this host (classhub/neighbours.py); the hub-name checks run in the e2e tests."""

from __future__ import annotations

import os
import socket

from classhub.neighbours import port_holder


def test_a_free_port_has_no_holder_and_a_listening_one_names_its_program():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        holder = port_holder("127.0.0.1", port)
        assert holder is not None and holder.startswith("the program ")
        assert f"pid {os.getpid()}" in holder
    assert port_holder("127.0.0.1", port) is None


def test_a_hub_with_user_subdomains_needs_its_host_and_the_hosts_under_it_to_itself():
    from classhub.inputs.parsers import Context
    from classhub.inputs.settings import load_settings
    from classhub.neighbours import HubInfo, _origin_problems
    from tests.conftest import PROJECT

    def settings(url: str, subdomains: bool):
        env = f"HUB_NAME=physics\nPUBLIC_URL={url}\nUSER_SUBDOMAINS={str(subdomains).lower()}\n"
        loaded, problems, _ = load_settings(env, ".env", {}, Context(PROJECT, 2))
        assert not problems, problems
        return loaded

    def other(host: str, subdomains: bool) -> HubInfo:
        return HubInfo("maths", "/srv/maths", "running", "", 3, frozenset(), host, subdomains)

    uni = "https://uni.edu/physics/"
    assert _origin_problems(settings(uni, False), [other("uni.edu", False)]) == []  # as before
    assert (
        "is also the hub maths's"
        in _origin_problems(settings(uni, True), [other("uni.edu", False)])[0]
    )
    assert (
        "is also the hub maths's"
        in _origin_problems(settings(uni, False), [other("uni.edu", True)])[0]
    )
    under = _origin_problems(
        settings("https://ann.uni.edu/physics/", False), [other("uni.edu", True)]
    )
    assert "lies among the hub maths's students' hosts (NAME.uni.edu)" in under[0]
    over = _origin_problems(settings(uni, True), [other("maths.uni.edu", False)])
    assert "has under it the hub maths's host maths.uni.edu" in over[0]
    apart = settings("https://physics.uni.edu/physics/", True)
    assert _origin_problems(apart, [other("maths.uni.edu", True), other("", False)]) == []
