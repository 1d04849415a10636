"""The swarm's node guard: how it finds the hub's servers on its node by their addresses on
docker_gwbridge. Its table on a real node, and what it lets through, are proven end to end in
tests/e2e/test_swarm.py; the rules' syntax in test_firewall.py."""

from __future__ import annotations

from classhub_hub import swarmguard

# /proc/net/fib_trie as a process in a student's server's namespace reads it: the overlay's
# address (10.0.1.5), the one on docker_gwbridge (172.18.0.3), loopback.
FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.1.0/24 2 0 2
        +-- 10.0.1.0/29 2 0 2
           |-- 10.0.1.0
              /24 link UNICAST
           |-- 10.0.1.5
              /32 host LOCAL
        |-- 10.0.1.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        |-- 127.0.0.1
           /32 host LOCAL
     +-- 172.18.0.0/16 2 0 2
        |-- 172.18.0.3
           /32 host LOCAL
        |-- 172.18.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.0.1.5
        /32 host LOCAL
"""


def test_a_namespaces_own_addresses_are_its_local_entries_but_loopback():
    assert swarmguard.local_addresses(FIB_TRIE) == {"10.0.1.5", "172.18.0.3"}
    assert swarmguard.local_addresses("") == frozenset()


def test_the_hubs_servers_here_are_known_by_their_bridge_address_and_other_containers_apart():
    sandboxes = [
        frozenset({"10.0.1.5", "172.18.0.3"}),  # ann's server
        frozenset({"10.0.1.9", "172.18.0.4"}),  # this hub's, too new for the proxy's list
        frozenset({"10.0.2.5", "172.18.0.5"}),  # another hub's server
        frozenset({"172.17.0.2"}),  # a container on the node's docker0
    ]
    mine, others = swarmguard.on_bridge(sandboxes, {"10.0.1.5": "ann"}, "10.0.1.0/24")
    assert mine == {"172.18.0.3": "ann"}
    assert others == {"10.0.2.5", "172.18.0.5", "172.17.0.2"}  # never cut by this hub's exams


def test_a_file_that_is_no_namespace_is_entered_once_and_a_new_namespace_until_it_settles(
    tmp_path, monkeypatch
):
    """Docker leaves files of killed containers' namespaces behind, hundreds on a busy node: each
    is tried once, not twice a second. A container's namespace is read again while Docker may
    still be adding its interfaces."""
    import subprocess

    (tmp_path / "stale").touch()
    (tmp_path / "ann").touch()
    (tmp_path / "1-abcdef0123").touch()  # the overlay's own: never entered
    entered = []

    def inside(where, *command, script=None):
        entered.append(where.name)
        ok = where.name == "ann"
        return subprocess.CompletedProcess(command, 0 if ok else 1, FIB_TRIE if ok else "", "")

    monkeypatch.setattr(swarmguard, "inside", inside)
    sandboxes = swarmguard.Sandboxes(tmp_path)
    for _ in range(3):
        assert sandboxes.scan() == [frozenset({"10.0.1.5", "172.18.0.3"})]
    assert entered.count("stale") == 1 and entered.count("ann") == 3
    assert "1-abcdef0123" not in entered


def test_the_network_of_an_interface_this_namespace_has_and_none_of_one_it_lacks():
    assert swarmguard.interface_network("lo") == "127.0.0.0/8"
    assert swarmguard.interface_network("no-such-if") == ""
