"""The firewall on each node of a swarm (issue "Docker Swarm mode", under way): students reach the
hub, never each other, on the same node or across nodes.

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
egress policy of one server (the internet yes; private, link-local and reserved ranges, other
Docker networks and the node itself no), opened only by EGRESS_ALLOW (--allow) and, on port 53,
the node's name servers (its resolv.conf: Docker's DNS forwards to them from inside each
container). It runs then as a second global service, on the host's network, with NET_ADMIN
alone. It tells no server from another: a group's egress= and exams are not there yet on a
swarm, and the whole bridge (other overlays' containers on the node too) meets the policy.

With --word, each guard says so: while its table is loaded it writes its word
(`hubfile.guard_word`: `<word>/<node's hostname>.<overlay|node>.json`, {"loaded": epoch seconds,
"boot_id"}), again every --say-every seconds. The socket proxy starts no student's server while
a ready node's words are missing or stale (dockerproxy.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from classhub import hubfile

from . import firewall

NETNS = Path("/var/run/docker/netns")
WORD_EVERY = 5.0  # seconds between its words; the proxy takes a word as fresh for WORD_FRESH
WORD_FRESH = 20.0
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


def listed(where: Path | None, table: str, terse: bool = True) -> str:
    """The table as the kernel lists it (`terse`: without set elements)."""
    done = inside(where, "nft", *(["-t"] if terse else []), "list", "table", "inet", table)
    return done.stdout if done.returncode == 0 else ""


def load(where: Path | None, table: str, script: str, terse: bool = True) -> str:
    """The table, in the namespace, once bridged traffic there goes through netfilter; the table
    as listed. Raises RuntimeError with what failed."""
    on = inside(where, "cat", BRIDGE_NF)
    if on.stdout.strip() != "1":
        raise RuntimeError(f"bridged traffic bypasses netfilter there ({BRIDGE_NF}: "
                           f"{on.stdout.strip() or on.stderr.strip()})")  # fmt: skip
    done = inside(where, "nft", "-f", "-", script=script)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return listed(where, table, terse)


def say(folder: Path, node: str, table: str) -> None:
    """The word that the guard's table (hubfile.GUARD_TABLES) is loaded on this node now
    (written whole, then renamed)."""
    word = hubfile.guard_word(folder, node, table)
    partial = folder / f".{word.name}.partial"
    partial.write_text(json.dumps({"loaded": time.time(), "boot_id": hubfile.boot_id()}))
    os.replace(partial, word)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    firewall.table_arguments(parser, required=False)
    parser.add_argument("--network-id", help="the overlay's: guard between its containers")
    parser.add_argument("--node", action="store_true",
                        help=f"guard what leaves the overlays through {GATEWAY}")  # fmt: skip
    parser.add_argument("--allow", type=json.loads, default=[],
                        help="with --node: what EGRESS_ALLOW opens, as the hub file lists it")  # fmt: skip
    parser.add_argument("--every", type=float, default=0.5, help="seconds between checks")
    parser.add_argument("--word", type=Path, help="the folder it writes its word to")
    parser.add_argument("--say-every", type=float, default=WORD_EVERY,
                        help="seconds between words while loaded")  # fmt: skip
    args = parser.parse_args(argv)
    if args.node == bool(args.network_id) or not (args.node or (args.hub_ip and args.port)):
        parser.error("give --node, or --network-id with --hub-ip and --port")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    node = os.environ.get(hubfile.GUARD_NODE_ENV) or os.uname().nodename
    where: Path | None
    if args.node:  # the table with its sets' elements, listed whole: both are checked
        kind, where, terse, shown = "node", None, False, f"this node's {GATEWAY}"
        resolvers = firewall.resolvers(firewall.RESOLV_CONF.read_text())  # the node's own
        script = (firewall.node_ruleset(args.table, GATEWAY)
                  + firewall.allowed(args.allow, resolvers).script(args.table))  # fmt: skip
    else:
        where = namespace(args.network_id)
        kind, terse, shown = "overlay", True, f"{BRIDGE} in {where.name}"
        script = firewall.ruleset(args.table, BRIDGE, args.hub_ip, args.port,
                                  args.max_connections)  # fmt: skip
    print(f"swarm firewall on {node}: guarding {shown} (table inet {args.table})", flush=True)
    loaded, seen, failed, said = "", None, "", 0.0
    while True:
        try:  # a namespace made anew is another file
            made = (where or Path("/proc/self/ns/net")).stat().st_ino
        except OSError:
            made = None
        if made is None:
            if seen is not None:
                print(f"swarm firewall on {node}: {shown} is gone (no container of the "
                      "network here); waiting for it", flush=True)  # fmt: skip
            seen = None
        elif made != seen or listed(where, args.table, terse) != loaded:
            try:
                loaded = load(where, args.table, script, terse)
                seen, failed = made, ""
                print(f"firewall: table inet {args.table} loaded for {shown} on {node}",
                      flush=True)  # fmt: skip
            except RuntimeError as exc:
                if str(exc) != failed:
                    print(f"swarm firewall on {node}: error: {exc}", flush=True)
                failed = str(exc)
                seen = None
        if args.word and seen is not None and time.monotonic() - said >= args.say_every:
            try:
                say(args.word, node, kind)
                said = time.monotonic()
            except OSError as exc:
                print(f"swarm firewall on {node}: error: its word to {args.word}: {exc}",
                      flush=True)  # fmt: skip
        time.sleep(args.every)


if __name__ == "__main__":
    main()
