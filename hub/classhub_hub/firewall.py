"""The hub network's firewall: students reach the hub's API, never each other.

Docker lets every container on a network talk to every other one. For a hub's network that would
let a student reach another student's server, or a port another student opens. This keeps one
nftables table in the host's kernel, `inet classhub_<hub>` (IPv4 and IPv6), that allows on the
hub's bridge only:

- anything the hub container (fixed address) sends, and the replies to it (the proxy and the hub
  reach every server);
- new connections from a user container to the hub's API port (`--port`: the server's OAuth and
  activity reports), at most `--max-connections` open at once from one address, so that one
  student cannot take every connection the hub can hold;
and refuses every other connection between two containers of the hub's network (TCP reset, so a
probe fails at once): another student's server, and the hub's proxy port, which students reach
from outside like everyone else (through nginx's login limit, when there is one). It also refuses the Docker daemon's TCP ports (2375, 2376) to anything that
comes in from the hub's bridge.

Bridged traffic reaches these rules through br_netfilter (`bridge-nf-call-iptables`), the same path
Docker's own inter-container rules take. The table is replaced atomically, checked every few
seconds and put back if anything removed or changed it (a firewall reload, say). It is left in
place when this program stops: a stopped guard keeps its last rules rather than opening the
network. Run as `python3 -m classhub_hub.firewall` in a container on the host's network with
only CAP_NET_ADMIN.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

DOCKER_PORTS = (2375, 2376)
MAX_CONNECTIONS = 64  # open connections from one student's server to the hub at once
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


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


def ruleset(
    table: str, bridge: str, hub_ip: str, ports: list[int], limit: int = MAX_CONNECTIONS
) -> str:
    """The nft script that replaces `table` in one transaction."""
    allowed = ", ".join(str(p) for p in ports)
    docker = ", ".join(str(p) for p in DOCKER_PORTS)
    return f"""\
add table inet {table}
delete table inet {table}
table inet {table} {{
  set clients {{
    type ipv4_addr; flags dynamic; size 65535;
  }}
  chain forward {{
    type filter hook forward priority filter - 1; policy accept;
    iifname "{bridge}" oifname "{bridge}" jump between_containers
  }}
  chain between_containers {{
    ct state established,related accept
    ip saddr {hub_ip} accept
    ip daddr {hub_ip} tcp dport {{ {allowed} }} ct state new add @clients {{ ip saddr ct count over {limit} }} reject with tcp reset
    ip daddr {hub_ip} tcp dport {{ {allowed} }} accept
    meta l4proto tcp reject with tcp reset
    reject
  }}
  chain input {{
    type filter hook input priority filter - 1; policy accept;
    iifname "{bridge}" tcp dport {{ {docker} }} reject with tcp reset
  }}
}}
"""


def nft(*args: str, script: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], input=script, capture_output=True, text=True)


def apply(table: str, script: str) -> str:
    """Load `script`; return `table` as the kernel lists it. Raises on failure."""
    done = nft("-f", "-", script=script)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return current(table)


def current(table: str) -> str:
    """The table as the kernel lists it, without the set of clients (whose counts change)."""
    listed = nft("-t", "list", "table", "inet", table)
    return listed.stdout if listed.returncode == 0 else ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--hub-ip", required=True)
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    problem = bridge_filtering_problem()
    if problem:
        print(f"error: {problem}", flush=True)
        sys.exit(1)
    script = ruleset(args.table, args.bridge, args.hub_ip, args.port, args.max_connections)
    try:
        loaded = apply(args.table, script)
    except RuntimeError as exc:
        print(f"error: nft could not load table inet {args.table}: {exc}", flush=True)
        sys.exit(1)
    print(f"firewall: table inet {args.table} loaded for bridge {args.bridge}", flush=True)
    while True:
        time.sleep(args.every)
        if current(args.table) != loaded:
            print(f"firewall: table inet {args.table} was changed or removed; loading it again",
                  flush=True)  # fmt: skip
            loaded = apply(args.table, script)


if __name__ == "__main__":
    main()
