"""The hub network's firewall: students reach the hub and the internet, never each other, never
this server's own network; a group in an exam reaches the hub alone.

One nftables table in the host's kernel, `inet classhub_<hub>`, holds every rule; this module is
the only place they are written. On the hub's bridge it allows:

- anything the hub container (fixed address) sends, and the replies to it (the proxy and the hub
  reach every server);
- new connections from a user container to the hub's API port (`--port`: the server's OAuth and
  activity reports), at most `--max-connections` open at once from one address, so that one
  student cannot take every connection the hub can hold;
and refuses every other connection between two containers of the hub's network: another
student's server, and the hub's proxy port, which students reach from outside like everyone else.

What a student's server sends out of the bridge (the egress policy) goes to the internet, except:
- the cloud metadata endpoints and every other link-local address (169.254.169.254,
  169.254.170.2 and fd00:ec2::254 among them), private and shared ranges (10/8, 172.16/12,
  192.168/16, 100.64/10 and IPv6's fc00::/7), loopback, multicast and reserved ranges: `BLOCKED`;
- this server itself on every address it has (the input hook), the Docker daemon's TCP ports
  (2375, 2376) above all, and every other Docker network (`br-*`, `docker0`);
unless EGRESS_ALLOW (the hub file's `firewall.egress`) or the user's group (`egress=` on a
`group:` line) lists the address, network or port. The Docker daemon's ports stay refused whatever
those say. Name resolution is Docker's, inside each container: it forwards what it does not
know from inside the container to the name servers this server uses, which may well be on a
private network (a cloud's resolver), so those, on port 53 alone, are open (`resolvers`).

Exams (state/exams.json, written by `invoke exam`): a server of a user in a group in an exam
reaches the hub alone, exceptions included, until the exam's end. Which server is whose comes
from the socket proxy (`addresses.json`, the hub's user containers and their addresses); while an
exam runs, a server too new to be listed there is cut off as well, until it is.

Refusals are immediate: a TCP reset, else ICMP "administratively prohibited". Bridged traffic
reaches these rules through br_netfilter (`bridge-nf-call-iptables`), the path Docker's own rules
take. The table is replaced atomically, its sets updated in one transaction when an input changes,
and both are checked every few seconds and put back if anything removed or changed them (a
firewall reload, say). The table is left in place when this program stops: a stopped guard keeps
its last rules rather than opening the network. Run as `python3 -m classhub_hub.firewall` in a
container on the host's network with only CAP_NET_ADMIN.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from classhub import hubfile

DOCKER_PORTS = (2375, 2376)
MAX_CONNECTIONS = 64  # open connections from one student's server to the hub at once
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# What students' servers may not reach (EGRESS_ALLOW may open parts of it). The documentation
# ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) are not here: no network routes
# them, and the tests stand them in for the internet.
BLOCKED = {
    "ip": (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier NAT, some clouds' internal services)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local: the cloud metadata endpoints (169.254.169.254, .170.2)
        "172.16.0.0/12",  # private, and Docker's default networks
        "192.0.0.0/24",  # IETF protocol assignments
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    ),
    "ip6": (
        "::/127",  # unspecified and loopback
        "::ffff:0:0/96",  # IPv4-mapped: private IPv4 by another name
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
        "100::/64",  # discard
        "fc00::/7",  # unique local: private, and fd00:ec2::254 (a cloud's metadata endpoint)
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    ),
}


def bridge_filtering_problem() -> str | None:
    """Why traffic between two containers would bypass these rules, or None."""
    try:
        with open(BRIDGE_NF) as flag:
            if flag.read().strip() == "1":
                return None
    except OSError:
        pass
    return (
        f"{BRIDGE_NF} is not 1, so traffic between containers bypasses the firewall; "
        "on the host run: modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1"
    )


# The sets `Egress` fills, with their nftables types.
SETS = {
    "known4": "type ipv4_addr;",  # every server the socket proxy lists
    "exam4": "type ipv4_addr;",  # the servers of users in a group in an exam
    "guard4": "type ipv4_addr; flags interval;",  # during exams: the servers' range
    "allow4": "type ipv4_addr; flags interval;",  # EGRESS_ALLOW without a port
    "allow4_port": "type ipv4_addr . inet_service; flags interval;",
    "allow6": "type ipv6_addr; flags interval;",
    "allow6_port": "type ipv6_addr . inet_service; flags interval;",
    "group4": "type ipv4_addr . ipv4_addr; flags interval;",  # a server . what its group opens
    "group4_port": "type ipv4_addr . ipv4_addr . inet_service; flags interval;",
    "dns4": "type ipv4_addr;",  # the resolvers Docker's DNS in each container forwards to
    "dns6": "type ipv6_addr;",
}


def ruleset(
    table: str, bridge: str, hub_ip: str, ports: list[int], limit: int = MAX_CONNECTIONS
) -> str:
    """The nft script that replaces `table` in one transaction, its egress sets empty."""
    allowed = ", ".join(str(p) for p in ports)
    hub_first = f"    ip saddr {hub_ip} accept\n    jump exam\n"  # the hub, then exams
    return f"""\
add table inet {table}
delete table inet {table}
table inet {table} {{
  set clients {{
    type ipv4_addr; flags dynamic; size 65535;
  }}
{_sets()}
  chain forward {{
    type filter hook forward priority filter - 1; policy accept;
    iifname "{bridge}" oifname "{bridge}" jump between_containers
    iifname "{bridge}" jump egress
  }}
  chain between_containers {{
    ct state established,related accept
    ip saddr {hub_ip} accept
    ip daddr {hub_ip} tcp dport {{ {allowed} }} ct state new add @clients {{ ip saddr ct count over {limit} }} reject with tcp reset
    ip daddr {hub_ip} tcp dport {{ {allowed} }} accept
    jump refuse
  }}
  chain egress {{
    ct state established,related accept
    ip saddr {hub_ip} accept
    jump exam
{_EGRESS_POLICY}
  }}
{_input(bridge, hub_first)}
{_EXAM}
{_EXCEPTIONS_AND_REFUSE}
}}
"""


def node_ruleset(table: str, bridge: str) -> str:
    """On a swarm's node, the nft script that replaces `table` in the node's own namespace: what
    leaves an overlay through `bridge` (Docker's docker_gwbridge, through which every container
    on an overlay that has no bridge of its own reaches anything beyond it) meets the egress
    policy and the exams, and reaches nothing on the node itself. A server there is known by its
    address on that bridge (swarmguard.py finds it), not on the overlay: its sets hold those."""
    exam_first = "    jump exam\n"
    return f"""\
add table inet {table}
delete table inet {table}
table inet {table} {{
{_sets()}
  chain forward {{
    type filter hook forward priority filter - 1; policy accept;
    iifname "{bridge}" jump egress
  }}
  chain egress {{
    ct state established,related accept
    oifname "{bridge}" jump refuse
    jump exam
{_EGRESS_POLICY}
  }}
{_input(bridge, exam_first)}
{_EXAM}
{_EXCEPTIONS_AND_REFUSE}
}}
"""


def _input(bridge: str, first: str = "") -> str:
    """The chains for what `bridge` sends to this server itself: replies, what `first` accepts
    (the hub's own), the exceptions; never Docker's TCP ports, nothing else."""
    docker = ", ".join(str(p) for p in DOCKER_PORTS)
    return f"""\
  chain input {{
    type filter hook input priority filter - 1; policy accept;
    iifname "{bridge}" jump to_this_server
  }}
  chain to_this_server {{
    ct state established,related accept
    tcp dport {{ {docker} }} jump refuse
{first}    jump exceptions
    jump refuse
  }}"""


def _sets() -> str:
    return "\n".join(f"  set {name} {{ {kind} }}" for name, kind in SETS.items())


# What a student's server sends beyond its network: the exceptions, else never another Docker
# network or a blocked range (the end of each `egress` chain).
_EGRESS_POLICY = f"""\
    jump exceptions
    oifname "br-*" jump refuse
    oifname "docker0" jump refuse
    ip daddr {{ {", ".join(BLOCKED["ip"])} }} jump refuse
    ip6 daddr {{ {", ".join(BLOCKED["ip6"])} }} jump refuse"""

# A server of a group in an exam, or one too new to be known while an exam runs (in `guard4`,
# not in `known4`), reaches nothing but the hub (what comes before the jump to it).
_EXAM = """\
  chain exam {
    ip saddr @exam4 jump refuse
    ip saddr @guard4 ip saddr != @known4 jump refuse
  }"""

_EXCEPTIONS_AND_REFUSE = """\
  chain exceptions {
    meta l4proto { tcp, udp } th dport 53 ip daddr @dns4 accept
    meta l4proto { tcp, udp } th dport 53 ip6 daddr @dns6 accept
    ip daddr @allow4 accept
    ip6 daddr @allow6 accept
    ip saddr . ip daddr @group4 accept
    meta l4proto { tcp, udp } ip daddr . th dport @allow4_port accept
    meta l4proto { tcp, udp } ip6 daddr . th dport @allow6_port accept
    meta l4proto { tcp, udp } ip saddr . ip daddr . th dport @group4_port accept
  }
  chain refuse {
    meta l4proto tcp reject with tcp reset
    reject with icmpx type admin-prohibited
  }"""


@dataclass(frozen=True)
class Egress:
    """What the egress sets hold: the elements of each, as nft writes them."""

    sets: dict[str, frozenset[str]] = field(default_factory=dict)
    exams: tuple[str, ...] = ()  # "team-1 until 11:30 (2 servers)", for the log

    def script(self, table: str) -> str:
        """The nft script that gives every set exactly these elements, in one transaction."""
        lines = [f"flush set inet {table} {name}" for name in SETS]
        for name in SETS:
            elements = sorted(self.sets.get(name, ()))
            if elements:
                lines.append(f"add element inet {table} {name} {{ {', '.join(elements)} }}")
        return "\n".join(lines) + "\n"


def egress(
    hub: hubfile.HubFile | None,
    exams: dict,
    servers: dict[str, str],
    server_range: str,
    now: float,
    resolvers: tuple[str, ...] = (),
    others: frozenset[str] = frozenset(),
) -> Egress:
    """The sets from the hub file's exceptions, the exams in progress at `now`, which server
    (address) is whose (`servers`, from the socket proxy) and the name servers (`resolvers`).
    While an exam runs, an address in `server_range` that is neither a server nor one of
    `others` (on a swarm's node: the containers there that are not this hub's) is cut off."""
    found: dict[str, set[str]] = {name: set() for name in SETS}
    found["known4"].update(others)
    _resolvers(resolvers, found)
    users = hub.get("users") if hub is not None else {}
    groups = hub.get("groups") if hub is not None else {}
    newcomers = hub.get("newcomers.groups") if hub is not None else []

    def groups_of(user: str) -> list[str]:
        entry = users.get(user)
        return list(entry["groups"]) if entry is not None else list(newcomers)

    # (server or None: every server, port or None: every port and protocol) -> networks
    opened: dict[tuple[str | None, int | None], list] = {}
    for target in hub.get("firewall.egress") if hub is not None else []:
        _open(opened, target, source=None)
    for address in servers:
        found["known4"].add(address)
        for group in groups_of(servers[address]):
            for target in (groups.get(group) or {}).get("egress", []):
                _open(opened, target, source=address)
    _elements(opened, found)
    running = {g: e for g, e in (exams.get("groups") or {}).items() if _in_progress(e, now)}
    said = []
    for group, exam in sorted(running.items()):
        cut = [a for a, user in servers.items() if group in groups_of(user)]
        found["exam4"].update(cut)
        said.append(f"{hubfile.exam_label(group, exam.get('until'))} ({len(cut)} server(s))")
    if running and server_range:
        found["guard4"].add(server_range)
    return Egress({k: frozenset(v) for k, v in found.items()}, tuple(said))


RESOLV_CONF = Path("/etc/resolv.conf")


def resolvers(text: str) -> tuple[str, ...]:
    """The name servers a resolv.conf lists, but loopback ones. A container's own DNS (Docker's,
    at 127.0.0.11) forwards a name it does not know to these from inside the container, so its
    queries meet the egress policy; a resolver on loopback Docker reaches from the host's side.
    The firewall, on the host's network, reads the file Docker gives it: the one Docker's DNS
    uses (systemd-resolved's upstream list where the host runs it)."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                address = ipaddress.ip_address(words[1].split("%", 1)[0])
            except ValueError:
                continue
            if not address.is_loopback and str(address) not in found:
                found.append(str(address))
    return tuple(found)


def _resolvers(addresses: tuple[str, ...], found: dict[str, set[str]]) -> None:
    for address in addresses:
        found[f"dns{ipaddress.ip_address(address).version}"].add(address)


def _elements(opened: dict, found: dict[str, set[str]]) -> None:
    """Add to `found` the sets' elements for what `opened` opens."""
    for (source, port), networks in opened.items():
        for version in (4, 6):
            # One element a network: overlapping ones merged, as nft refuses them in one set.
            merged = ipaddress.collapse_addresses(n for n in networks if n.version == version)
            for network in merged:
                if source is not None:
                    name, element = "group4", f"{source} . {network}"
                else:
                    name, element = f"allow{version}", str(network)
                if port is not None:
                    name, element = f"{name}_port", f"{element} . {port}"
                found[name].add(element)


def _in_progress(exam: dict, now: float) -> bool:
    until = exam.get("until")
    return until is None or now < float(until)


def _open(opened: dict, target: dict, source: str | None) -> None:
    """One exception (`network`, `port` or None), for every server or for `source` alone (the
    hub's network gives its servers IPv4 addresses only: a group's IPv6 exceptions reach none)."""
    network = ipaddress.ip_network(target["network"], strict=False)
    if source is not None and network.version != 4:
        return
    opened.setdefault((source, target.get("port")), []).append(network)


def nft(*args: str, script: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], input=script, capture_output=True, text=True)


def apply(table: str, script: str) -> str:
    """Load `script`; return `table` as the kernel lists it. Raises on failure."""
    done = nft("-f", "-", script=script)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return current(table)


def current(table: str) -> str:
    """The table as the kernel lists it, without set elements (`-t`: the clients set's change)."""
    listed = nft("-t", "list", "table", "inet", table)
    return listed.stdout if listed.returncode == 0 else ""


def current_sets(table: str) -> str:
    """The egress sets with their elements, as the kernel lists them."""
    listed = [nft("list", "set", "inet", table, name) for name in SETS]
    return "".join(done.stdout for done in listed)


@dataclass
class Inputs:
    """The files the egress sets come from, each re-read when it changes."""

    hub_file: Path
    exams_file: Path
    addresses_file: Path
    resolv_conf: Path = RESOLV_CONF
    seen: dict[Path, float] = field(default_factory=dict)
    values: dict[Path, object] = field(default_factory=dict)

    def _read(self, path: Path, load):
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = -1
        if self.seen.get(path) != stamp:
            self.seen[path] = stamp
            try:
                self.values[path] = load(path) if stamp != -1 else None
            except (OSError, ValueError, hubfile.HubFileError) as exc:
                print(f"firewall: {path} cannot be read ({exc}); keeping what it said", flush=True)
        return self.values.get(path)

    def hub(self) -> hubfile.HubFile | None:
        return self._read(self.hub_file, hubfile.load)

    def exams(self) -> dict:
        return self._read(self.exams_file, _json) or {}

    def resolvers(self) -> tuple[str, ...]:
        return self._read(self.resolv_conf, lambda p: resolvers(p.read_text())) or ()

    def servers(self) -> dict[str, str]:
        data = self._read(self.addresses_file, _json) or {}
        return dict(data.get("servers") or {})


def loaded_here(table: str) -> None:
    """Say, for the socket proxy, that the table is in this kernel (this boot): it starts no
    student's server until then (hubfile.FIREWALL_FILE)."""
    path = Path(hubfile.ADDRESSES_IN_HUB) / hubfile.FIREWALL_FILE
    text = json.dumps({"boot_id": hubfile.boot_id(), "table": table, "loaded": time.time()})
    try:
        hubfile.replace_whole(path, text)
    except OSError as exc:  # the proxy then refuses to start servers: it says so, and so do we
        print(f"firewall: error: {path} cannot be written ({exc})", flush=True)


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def table_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """What `ruleset` is made from, as the firewall and the swarm's firewall take it."""
    parser.add_argument("--table", required=True)
    parser.add_argument("--hub-ip", required=required)
    parser.add_argument("--port", type=int, action="append", required=required)
    parser.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    table_arguments(parser)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--servers", required=True, help="the range the servers' addresses are in")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between input checks")
    parser.add_argument("--check-every", type=float, default=5.0, help="seconds between checks")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    problem = bridge_filtering_problem()
    if problem:
        print(f"error: {problem}", flush=True)
        sys.exit(1)
    state = Path(hubfile.HUB_FILE_IN_HUB).parent
    inputs = Inputs(
        Path(hubfile.HUB_FILE_IN_HUB),
        state / hubfile.EXAMS_FILE,
        Path(hubfile.ADDRESSES_IN_HUB) / hubfile.ADDRESSES_FILE,
    )
    script = ruleset(args.table, args.bridge, args.hub_ip, args.port, args.max_connections)
    try:
        loaded = apply(args.table, script)
    except RuntimeError as exc:
        print(f"error: nft could not load table inet {args.table}: {exc}", flush=True)
        sys.exit(1)
    loaded_here(args.table)
    print(f"firewall: table inet {args.table} loaded for bridge {args.bridge}", flush=True)
    wanted, listed, checked, failed = Egress(), "", time.monotonic(), ""
    while True:
        try:
            now = egress(inputs.hub(), inputs.exams(), inputs.servers(), args.servers, time.time(),
                         inputs.resolvers())  # fmt: skip
            if now != wanted:
                apply(args.table, now.script(args.table))
                listed = current_sets(args.table)
                if now.exams != wanted.exams:
                    print(f"{hubfile.EXAMS_APPLIED}{'; '.join(now.exams) or 'none'}", flush=True)
                wanted = now
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            # A value nft or this code cannot take: the sets stay as they were, and it says so
            # (once, not every half second).
            if str(exc) != failed:
                print(f"firewall: error: the egress sets were not updated: {exc}", flush=True)
            failed = str(exc)
        if time.monotonic() - checked >= args.check_every:
            checked = time.monotonic()
            if current(args.table) != loaded or current_sets(args.table) != listed:
                print(f"firewall: table inet {args.table} was changed or removed; loading it "
                      "again", flush=True)  # fmt: skip
                loaded = apply(args.table, script)
                apply(args.table, wanted.script(args.table))
                listed = current_sets(args.table)
                loaded_here(args.table)
        time.sleep(args.every)


if __name__ == "__main__":
    main()
