"""The firewall on each node of a swarm: students reach the hub, never each other, on the same
node or across nodes; what they send beyond the overlay meets the egress policy and the exams.

On a swarm the hub's network is an overlay. On every node where a container of it runs, Docker
keeps a network namespace for it (`/var/run/docker/netns/1-<first 10 characters of the network's
ID>`) holding a bridge, `br0`, to which the node's containers and the tunnel to the other nodes
(VXLAN) are attached: everything between two containers of the network crosses that bridge, on
one node or between two. This agent loads the one firewall's table (`firewall.ruleset`, the same
rules as on one host: only the hub may open connections to servers, servers reach only the hub's
API port, at most --max-connections at once) into that namespace, for `br0`, and puts it back
whenever the namespace is made anew (Docker removes it when the node's last container of the
network goes, and after a restart) or the table is changed or gone. A namespace whose bridge
bypasses netfilter (`bridge-nf-call-iptables` off) would bypass the table: the agent then loads
nothing there and says so.

It runs as a global service (one task on every node, this node's too), with NET_ADMIN and
SYS_ADMIN alone (to enter the namespace), and `/var/run/docker/netns` bound with `rslave`
propagation, so that namespaces Docker makes later appear in it. It is itself attached to the
hub's network: so every node holds the network's namespace, guarded, before a student's server
lands there, and no server is ever the first container of the network on its node.

With --node, it guards instead what leaves the overlay on its node. Every container on an overlay
that has no bridge of its own (a student's server) reaches anything beyond the overlay through
the node's `docker_gwbridge`, in the node's own namespace: the internet, but also the node's own
ports (the swarm's 2377, 7946 and 4789, Docker's API if it listens on TCP, SSH), the storage
server and every private network the node reaches. There it loads `firewall.node_ruleset`: the
egress policy and the exams of one server (the internet yes; private, link-local and reserved
ranges, other Docker networks and the node itself no; a group in an exam nothing), with the same
sets (`firewall.egress`): EGRESS_ALLOW, each group's egress=, the exams, and on port 53 the
node's name servers (its resolv.conf: Docker's DNS forwards to them from inside each
container). It reads the hub file, the exams and the socket proxy's list of servers (each by
its address on the overlay) from the words folder, where the proxy keeps them
(`hubfile.guard_inputs`). What a server sends there comes from its address on docker_gwbridge,
so the guard enters each container's namespace on the node once (`Sandboxes`) to pair the two.
It runs as a second global service, on the host's network, with NET_ADMIN and SYS_ADMIN (to
enter those namespaces) alone, and Docker's namespaces bound as above.

With --word, each guard says so: while its table is loaded it writes its word
(`hubfile.guard_word`: `<word>/<node's hostname>.<overlay|node>.json`, {"loaded": epoch seconds,
"boot_id"}; the node's guard adds "exams", what it enforces, as the one firewall's log line
`hubfile.EXAMS_APPLIED` says it), again every --say-every seconds, and at once when its exams
change (`invoke exam` waits for that). The socket proxy starts no student's server while a ready
node's words are missing or stale (dockerproxy.py).
"""

from __future__ import annotations

import argparse
import fcntl
import ipaddress
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from classhub import hubfile

from . import firewall

NETNS = Path("/var/run/docker/netns")
WORD_EVERY = 5.0  # seconds between its words (they are fresh for hubfile.GUARD_WORD_FRESH)
BRIDGE = "br0"  # in the overlay's namespace
GATEWAY = "docker_gwbridge"  # in the node's own
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def namespace(network_id: str, folder: Path = NETNS) -> Path:
    """Where Docker keeps the network's namespace on this node (while it has a container of it)."""
    return folder / f"1-{network_id[:10]}"


def inside(where: Path | None, *command: str, script: str | None = None):
    """`command` run in the network namespace at `where` (None: this program's own)."""
    enter = [] if where is None else ["nsenter", f"--net={where}"]
    return subprocess.run([*enter, *command], input=script, capture_output=True, text=True)


def listed(where: Path | None, table: str) -> str:
    """The table as the kernel lists it, without its sets' elements."""
    done = inside(where, "nft", "-t", "list", "table", "inet", table)
    return done.stdout if done.returncode == 0 else ""


def load(where: Path | None, table: str, script: str) -> str:
    """The table, in the namespace, once bridged traffic there goes through netfilter; the table
    as listed. Raises RuntimeError with what failed."""
    on = inside(where, "cat", BRIDGE_NF)
    if on.stdout.strip() != "1":
        raise RuntimeError(f"bridged traffic bypasses netfilter there ({BRIDGE_NF}: "
                           f"{on.stdout.strip() or on.stderr.strip()})")  # fmt: skip
    done = inside(where, "nft", "-f", "-", script=script)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return listed(where, table)


def say(folder: Path, node: str, table: str, more: dict | None = None) -> None:
    """The word that the guard's table (hubfile.GUARD_TABLES) is loaded on this node now, with
    `more` (written whole, then renamed)."""
    said = {"loaded": time.time(), "boot_id": hubfile.boot_id(), **(more or {})}
    hubfile.replace_whole(hubfile.guard_word(folder, node, table), json.dumps(said))


def local_addresses(fib_trie: str) -> frozenset[str]:
    """A namespace's own IPv4 addresses but loopback: the `host LOCAL` entries of its
    /proc/net/fib_trie (what a process in the namespace reads there)."""
    found, last = set(), ""
    for line in fib_trie.splitlines():
        words = line.split()
        if words[:1] == ["|--"] and len(words) > 1:
            last = words[1]
        elif words[:3] == ["/32", "host", "LOCAL"] and last and not last.startswith("127."):
            found.add(last)
    return frozenset(found)


# Namespaces in NETNS that are no container's: the overlays' own, their load balancers', the
# ingress network's.
NOT_CONTAINERS = ("1-", "lb_", "ingress_sbox")
SETTLING = 30.0  # seconds a container's namespace is read again: Docker adds its interfaces


class Sandboxes:
    """The containers on this node (Docker's sandboxes, one namespace each in NETNS) and their
    IPv4 addresses, each namespace read (entered) while new, then remembered while it lasts. A
    file that is no namespace (yet: Docker makes the file, then mounts the namespace on it,
    which gives it another inode; or left by a killed Docker, which may leave hundreds) is
    tried once, then again only once its inode changes. A namespace Docker mounts later reaches this guard only where
    the node's root is a shared mount (systemd's default; docs/swarm.md)."""

    def __init__(self, folder: Path = NETNS):
        self.folder = folder
        # name: inode, first seen, its addresses (None: no namespace there)
        self.known: dict[str, tuple[int, float, frozenset[str] | None]] = {}

    def scan(self) -> list[frozenset[str]]:
        now: dict[str, tuple[int, float, frozenset[str] | None]] = {}
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            entries = []
        for entry in entries:
            if entry.name.startswith(NOT_CONTAINERS):
                continue
            try:
                inode = entry.stat().st_ino
            except OSError:
                continue
            old = self.known.get(entry.name)
            if old is not None and old[0] != inode:
                old = None  # another file by that name now: new
            if old is not None and (old[2] is None or time.monotonic() - old[1] > SETTLING):
                now[entry.name] = old
                continue
            seen = old[1] if old is not None else time.monotonic()
            done = inside(Path(entry.path), "cat", "/proc/net/fib_trie")
            found = local_addresses(done.stdout) if done.returncode == 0 else None
            now[entry.name] = (inode, seen, found)
        self.known = now
        return [found for _, _, found in now.values() if found is not None]


def on_bridge(
    sandboxes: list[frozenset[str]], servers: dict[str, str], server_range: str
) -> tuple[dict[str, str], frozenset[str]]:
    """The hub's servers on this node by their other addresses (on docker_gwbridge, the source of
    what they send beyond the overlay), from `servers` (the proxy's list, by address on the
    overlay); and the addresses of the containers here that are not the hub's (no address in
    `server_range`): another hub's, say, which this hub's exams leave alone."""
    overlay = ipaddress.ip_network(server_range, strict=False)
    mine: dict[str, str] = {}
    others: set[str] = set()
    for found in sandboxes:
        ours = {a for a in found if ipaddress.ip_address(a) in overlay}
        rest = found - ours
        if not ours:
            others.update(rest)
            continue
        user = next((servers[a] for a in sorted(ours) if a in servers), None)
        if user is not None:
            mine.update(dict.fromkeys(rest, user))
    return mine, frozenset(others)


SIOCGIFADDR, SIOCGIFNETMASK = 0x8915, 0x891B


def interface_network(name: str) -> str:
    """The IPv4 network of this namespace's interface `name` ('' while it has none)."""
    request = struct.pack("256s", name.encode()[:15])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            address = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)[20:24]
            mask = fcntl.ioctl(probe.fileno(), SIOCGIFNETMASK, request)[20:24]
    except OSError:
        return ""
    network = f"{socket.inet_ntoa(address)}/{socket.inet_ntoa(mask)}"
    return str(ipaddress.ip_network(network, strict=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    firewall.table_arguments(parser, required=False)
    parser.add_argument("--network-id", help="the overlay's: guard between its containers")
    parser.add_argument("--node", action="store_true",
                        help=f"guard what leaves the overlays through {GATEWAY}")  # fmt: skip
    parser.add_argument("--servers", help="with --node: the range of the servers' addresses on "
                        "the overlay")  # fmt: skip
    parser.add_argument("--every", type=float, default=0.5,
                        help="seconds between checks of the inputs and namespaces")  # fmt: skip
    parser.add_argument("--check-every", type=float, default=5.0,
                        help="seconds between checks of the table itself")  # fmt: skip
    parser.add_argument("--word", type=Path, help="the folder it writes its word to")
    parser.add_argument("--say-every", type=float, default=WORD_EVERY,
                        help="seconds between words while loaded")  # fmt: skip
    args = parser.parse_args(argv)
    if args.node:
        if not (args.servers and args.word):
            parser.error("--node needs --servers and --word")
    elif not (args.network_id and args.hub_ip and args.port):
        parser.error("give --node, or --network-id with --hub-ip and --port")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    node = os.environ.get(hubfile.GUARD_NODE_ENV) or os.uname().nodename
    if args.node:
        guard_node(args, node)
    else:
        guard_overlay(args, node)


def guard_overlay(args: argparse.Namespace, node: str) -> None:
    """Keep the table between the hub's servers loaded in the overlay's namespace here."""
    where = namespace(args.network_id)
    shown = f"{BRIDGE} in {where.name}"
    script = firewall.ruleset(args.table, BRIDGE, args.hub_ip, args.port, args.max_connections)
    print(f"swarm firewall on {node}: guarding {shown} (table inet {args.table})", flush=True)
    loaded, seen, failed, said, checked = "", None, "", 0.0, 0.0
    while True:
        try:  # a namespace made anew is another file
            made: int | None = where.stat().st_ino
        except OSError:
            made = None
        due = time.monotonic() - checked >= args.check_every  # the table itself, less often
        if made is None:
            if seen is not None:
                print(f"swarm firewall on {node}: {shown} is gone (no container of the "
                      "network here); waiting for it", flush=True)  # fmt: skip
            seen = None
        elif made != seen or (due and listed(where, args.table) != loaded):
            try:
                loaded = load(where, args.table, script)
                seen, failed = made, ""
                print(f"firewall: table inet {args.table} loaded for {shown} on {node}",
                      flush=True)  # fmt: skip
            except RuntimeError as exc:
                if str(exc) != failed:
                    print(f"swarm firewall on {node}: error: {exc}", flush=True)
                failed = str(exc)
                seen = None
        if due:
            checked = time.monotonic()
        if args.word and seen is not None and time.monotonic() - said >= args.say_every:
            said = _say(args.word, node, "overlay", {}) or said
        time.sleep(args.every)


def guard_node(args: argparse.Namespace, node: str) -> None:
    """Keep the node's table loaded in its own namespace, its sets as the hub file, the exams and
    the servers here say: `firewall.egress` with each server by its address on GATEWAY. The
    socket proxy keeps those three in the words folder (`hubfile.guard_inputs`)."""
    hub_file, exams_file, addresses_file = hubfile.guard_inputs(args.word)
    inputs = firewall.Inputs(hub_file, exams_file, addresses_file)
    sandboxes = Sandboxes()
    script = firewall.node_ruleset(args.table, GATEWAY)
    print(f"swarm firewall on {node}: guarding this node's {GATEWAY} (table inet {args.table})",
          flush=True)  # fmt: skip
    loaded, sets, wanted = "", "", firewall.Egress()
    failed, said, checked = "", 0.0, 0.0
    while True:
        try:
            if not loaded or time.monotonic() - checked >= args.check_every:
                checked = time.monotonic()
                if (
                    not loaded
                    or listed(None, args.table) != loaded
                    or firewall.current_sets(args.table) != sets
                ):
                    loaded, sets = load(None, args.table, script), ""
                    print(f"firewall: table inet {args.table} loaded for this node's {GATEWAY} "
                          f"on {node}", flush=True)  # fmt: skip
            mine, others = on_bridge(sandboxes.scan(), inputs.servers(), args.servers)
            now = firewall.egress(inputs.hub(), inputs.exams(), mine, interface_network(GATEWAY),
                                  time.time(), inputs.resolvers(), others)  # fmt: skip
            if now != wanted or not sets:
                firewall.apply(args.table, now.script(args.table))
                sets = firewall.current_sets(args.table)
                if now.exams != wanted.exams or not wanted.sets:
                    print(f"{hubfile.EXAMS_APPLIED}{'; '.join(now.exams) or 'none'}", flush=True)
                    said = 0.0  # say it at once: invoke exam waits for it
                wanted, failed = now, ""
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            # The table, or a value nft or this code cannot take: it says so once, keeps what is
            # loaded and tries again.
            if str(exc) != failed:
                print(f"swarm firewall on {node}: error: {exc}", flush=True)
            failed = str(exc)
        if loaded and sets and time.monotonic() - said >= args.say_every:
            exams = "; ".join(wanted.exams) or "none"
            said = _say(args.word, node, "node", {"exams": exams}) or said
        time.sleep(args.every)


def _say(folder: Path, node: str, kind: str, more: dict) -> float:
    """Its word (`say`); when it said it, or 0 when it could not."""
    try:
        say(folder, node, kind, more)
        return time.monotonic()
    except OSError as exc:
        print(f"swarm firewall on {node}: error: its word to {folder}: {exc}", flush=True)
        return 0.0


if __name__ == "__main__":
    main()
