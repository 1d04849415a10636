"""The firewall's egress sets, from a hub file rendered as setup renders it, and its rules' syntax.

The rules themselves are proven on the real kernel in tests/e2e/test_egress.py; here: which server
gets which exception, who an exam cuts off and until when, and that nft accepts what is loaded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from classhub import hubfile, render
from classhub.credentials import Credential
from classhub.inputs.parsers import Context
from classhub.inputs.roster import parse_userlist
from classhub.inputs.settings import load_settings
from classhub_hub import firewall

CTX = Context(root=Path("/"), cpu_count=4)
ROSTER = """\
ann team-1
bob team-2
cid
group: team-1 egress=10.5.0.0/16,10.6.0.1:5432
group: team-2 egress=10.5.7.0/24,10.5.0.0/16
"""
SERVERS = {"172.30.0.5": "ann", "172.30.0.6": "bob", "172.30.0.7": "cid"}
RANGE = "172.30.0.0/17"


def hub_file(env: str = "", roster: str = ROSTER) -> hubfile.HubFile:
    settings, problems, _ = load_settings("HUB_NAME=math\n" + env, ".env", {}, CTX)
    assert not problems, problems
    users, problems, _ = parse_userlist(roster, settings.admin_user, ctx=CTX)
    assert users is not None, problems
    creds = {u.name: Credential("pw", "hash") for u in users.users}
    return hubfile.HubFile(json.loads(render.hub_file(settings, users, creds)), "hub.json")


def sets(hub, exams=None, servers=SERVERS, now=1000.0) -> dict[str, frozenset[str]]:
    return firewall.egress(hub, exams or {}, servers, RANGE, now).sets


def test_every_server_is_known_and_no_exception_is_open_by_default():
    found = sets(hub_file(roster="ann\nbob\n"))
    assert found["known4"] == set(SERVERS)
    assert all(not found[name] for name in firewall.SETS if name != "known4")


def test_egress_allow_opens_for_every_server_by_port_or_whole():
    found = sets(hub_file("EGRESS_ALLOW=10.1.2.3:5432, 10.20.0.0/16, [fd00::5]:443, fd01::/16\n"))
    assert found["allow4_port"] == {"10.1.2.3/32 . 5432"}
    assert found["allow4"] == {"10.20.0.0/16"}
    assert found["allow6_port"] == {"fd00::5/128 . 443"}
    assert found["allow6"] == {"fd01::/16"}


def test_a_groups_exceptions_are_its_members_servers_alone_overlaps_merged():
    found = sets(hub_file())
    assert found["group4"] == {"172.30.0.5 . 10.5.0.0/16", "172.30.0.6 . 10.5.0.0/16"}
    assert found["group4_port"] == {"172.30.0.5 . 10.6.0.1/32 . 5432"}
    assert not any("172.30.0.7" in element for element in found["group4"] | found["group4_port"])


def test_an_exam_cuts_off_its_groups_servers_and_guards_new_ones_until_it_ends():
    exams = {"groups": {"team-1": {"until": 2000}}}
    during = firewall.egress(hub_file(), exams, SERVERS, RANGE, 1999)
    assert during.sets["exam4"] == {"172.30.0.5"}
    assert during.sets["guard4"] == {RANGE}  # a server too new to be listed is cut off too
    assert during.exams == ("team-1 until 00:33 UTC (1 server(s))",)
    after = firewall.egress(hub_file(), exams, SERVERS, RANGE, 2000)
    assert not after.sets["exam4"] and not after.sets["guard4"] and after.exams == ()


def test_an_exam_without_an_end_lasts_until_stopped_and_other_groups_are_untouched():
    found = sets(hub_file(), {"groups": {"team-2": {"until": None}}}, now=10**10)
    assert found["exam4"] == {"172.30.0.6"}


def test_a_newcomer_let_in_with_default_groups_is_in_their_exams():
    env = "OPEN_TO_ALL=true\nAUTHENTICATOR=native\nDEFAULT_GROUPS=team-1\n"
    found = sets(hub_file(env), {"groups": {"team-1": {"until": None}}},
                 servers={"172.30.0.9": "walk-in"})  # fmt: skip
    assert found["exam4"] == {"172.30.0.9"}


def nft_accepts(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`nft -c`: the host's nft (nftables, as the hub image's) and kernel check it (as root)."""
    path = tmp_path / "rules.nft"
    path.write_text(script)
    return subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)


def test_the_blocked_ranges_cover_the_metadata_endpoints_and_private_networks():
    import ipaddress

    blocked = [ipaddress.ip_network(n) for family in firewall.BLOCKED.values() for n in family]
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "10.1.2.3",
                    "172.17.0.1", "192.168.1.1", "100.64.0.1", "224.0.0.251", "127.0.0.1"):  # fmt: skip
        assert any(ipaddress.ip_address(address) in n for n in blocked), address
    for address in ("203.0.113.7", "198.51.100.1", "1.1.1.1", "2001:db8::1"):
        assert not any(ipaddress.ip_address(address) in n for n in blocked), address


def test_nft_accepts_the_table_and_its_sets(tmp_path: Path):
    exams = {"groups": {"team-1": {"until": None}}}
    hub = hub_file("EGRESS_ALLOW=10.1.2.3:5432,10.0.0.0/8,10.1.0.0/16,[fd00::5]:443,fd01::/16\n")
    script = firewall.ruleset("classhub_check", "br-check", "172.30.127.254", [8081])
    script += firewall.egress(hub, exams, SERVERS, RANGE, 0).script("classhub_check")
    checked = nft_accepts(script, tmp_path)  # nft -c: checked by the kernel, loaded nowhere
    assert checked.returncode == 0, checked.stderr


def test_a_swarm_nodes_table_takes_the_same_sets_by_bridge_address_and_nft_accepts_it(
    tmp_path: Path,
):
    """On a swarm's node (swarmguard --node): what leaves docker_gwbridge meets the egress
    policy and the exams, its servers known by their addresses on that bridge; the containers
    there that are not this hub's are known too, so that an exam cuts off only this hub's."""
    hub = hub_file("EGRESS_ALLOW=10.1.2.3:5432,10.0.0.0/8,10.1.0.0/16,[fd00::5]:443\n")
    exams = {"groups": {"team-1": {"until": None}}}
    on_bridge = {"172.18.0.3": "ann", "172.18.0.4": "bob"}
    found = firewall.egress(hub, exams, on_bridge, "172.18.0.0/16", 0,
                            others=frozenset({"172.18.0.9"}))  # fmt: skip
    assert found.sets["allow4_port"] == {"10.1.2.3/32 . 5432"}
    assert found.sets["allow4"] == {"10.0.0.0/8"}  # merged
    assert found.sets["exam4"] == {"172.18.0.3"}
    assert found.sets["known4"] == {"172.18.0.3", "172.18.0.4", "172.18.0.9"}
    assert found.sets["guard4"] == {"172.18.0.0/16"}
    script = firewall.node_ruleset("classhub_check", "docker_gwbridge")
    assert 'iifname "docker_gwbridge" jump egress' in script
    assert 'iifname "docker_gwbridge" jump to_this_server' in script
    assert script.count("jump exam") == 2  # leaving the node, and to the node itself
    checked = nft_accepts(script + found.script("classhub_check"), tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_the_name_servers_docker_forwards_to_are_open_on_port_53_alone(tmp_path: Path):
    """Docker's DNS in a container forwards from inside it, so a resolver on a private network
    (a cloud's, this machine's) would be refused with the rest: students could resolve no name."""
    conf = (
        "# made by a cloud\nnameserver 10.255.255.53\nnameserver 127.0.0.53\n"
        "nameserver fd00::53%eth0 # a comment\nnameserver not-an-address\n"
        "nameserver 10.255.255.53\nsearch example.org\noptions edns0\n"
    )
    found = firewall.resolvers(conf)
    assert found == ("10.255.255.53", "fd00::53")  # loopback: Docker asks from the host's side
    egress = firewall.egress(hub_file(), {}, SERVERS, RANGE, 0, found)
    assert (egress.sets["dns4"], egress.sets["dns6"]) == ({"10.255.255.53"}, {"fd00::53"})
    script = firewall.ruleset("classhub_check", "br-check", "172.30.127.254", [8081])
    assert "th dport 53 ip daddr @dns4 accept" in script
    checked = nft_accepts(script + egress.script("classhub_check"), tmp_path)
    assert checked.returncode == 0, checked.stderr
    inputs = firewall.Inputs(tmp_path / "h", tmp_path / "e", tmp_path / "a", tmp_path / "r")
    assert inputs.resolvers() == ()  # no file: none
    (tmp_path / "r").write_text(conf)
    assert inputs.resolvers() == found
