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

With --word, it says so: while its table is loaded it writes `<word>/<node's hostname>.json`
({"loaded": epoch seconds, "boot_id"}), again every --say-every seconds. The socket proxy
starts no student's server while a ready node's word is missing or stale (dockerproxy.py).

Not yet here: what students send out of the overlay (the internet, and the nodes' own ports),
which leaves through each node's `docker_gwbridge`.
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
BRIDGE = "br0"
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def namespace(network_id: str, folder: Path = NETNS) -> Path:
    """Where Docker keeps the network's namespace on this node (while it has a container of it)."""
    return folder / f"1-{network_id[:10]}"


def inside(where: Path, *command: str, script: str | None = None) -> subprocess.CompletedProcess:
    """`command` run in the network namespace at `where`."""
    return subprocess.run(["nsenter", f"--net={where}", *command], input=script,
                          capture_output=True, text=True)  # fmt: skip


def listed(where: Path, table: str) -> str:
    done = inside(where, "nft", "-t", "list", "table", "inet", table)
    return done.stdout if done.returncode == 0 else ""


def load(where: Path, table: str, script: str) -> str:
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


def say(folder: Path, node: str) -> None:
    """The word that the table is loaded on this node now (written whole, then renamed)."""
    word = folder / f"{node}.json"
    partial = folder / f".{node}.json.partial"
    partial.write_text(json.dumps({"loaded": time.time(), "boot_id": hubfile.boot_id()}))
    os.replace(partial, word)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    firewall.table_arguments(parser)
    parser.add_argument("--network-id", required=True)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between checks")
    parser.add_argument("--word", type=Path, help="the folder it writes its word to")
    parser.add_argument("--say-every", type=float, default=WORD_EVERY,
                        help="seconds between words while loaded")  # fmt: skip
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    script = firewall.ruleset(args.table, BRIDGE, args.hub_ip, args.port, args.max_connections)
    where = namespace(args.network_id)
    node = os.uname().nodename
    print(f"swarm firewall on {node}: guarding {where.name} (table inet {args.table})", flush=True)
    loaded, seen, failed, said = "", None, "", 0.0
    while True:
        try:
            made = where.stat().st_ino  # a namespace made anew is another file
        except OSError:
            made = None
        if made is None:
            if seen is not None:
                print(f"swarm firewall on {node}: {where.name} is gone (no container of the "
                      "network here); waiting for it", flush=True)  # fmt: skip
            seen = None
        elif made != seen or listed(where, args.table) != loaded:
            try:
                loaded = load(where, args.table, script)
                seen, failed = made, ""
                print(f"firewall: table inet {args.table} loaded in {where.name} for {BRIDGE} "
                      f"on {node}", flush=True)  # fmt: skip
            except RuntimeError as exc:
                if str(exc) != failed:
                    print(f"swarm firewall on {node}: error: {exc}", flush=True)
                failed = str(exc)
                seen = None
        if args.word and seen is not None and time.monotonic() - said >= args.say_every:
            try:
                say(args.word, node)
                said = time.monotonic()
            except OSError as exc:
                print(f"swarm firewall on {node}: error: its word to {args.word}: {exc}",
                      flush=True)  # fmt: skip
        time.sleep(args.every)


if __name__ == "__main__":
    main()
