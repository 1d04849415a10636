"""Docker Swarm mode as classhub's engine (issue "Docker Swarm mode"; docs/swarm.md).

- `runtime`: ENGINE=swarm, the `Runtime` of a hub whose students' servers are services on the
  swarm's nodes (`servers`), guarded by the firewall's global services (`guard`), with their
  folders in the shared storage;
- `nodes`: this server's engine as the swarm's manager, other servers checked and joined over
  SSH (`ssh`), drained and removed, and listed with this hub's servers on each (add-node,
  drain-node, remove-node, status);
- `images`: every node runs the same build without a registry: an image is loaded into each
  node by its ID, streamed from the engine that built it (`docker save | docker load`), and a
  node that lacks it is named.
On the hub's side (hub/classhub_hub): `services` (a student's server as a hardened service, and
the socket proxy's allowlist for it), `swarmspawner` (the spawner that starts them) and
`swarmguard` (on every node: the firewall's table in the namespace of the hub's overlay
network, and the egress policy, groups' egress= and exams in the node's own).

The functions below are what the node tasks call: each reaches the manager (DOCKER_HOST, else
the local socket) and the node named over SSH.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...console import Echo
from ...inputs.settings import Settings
from ...paths import Paths
from ..single_host import engine
from . import nodes, ssh


def add_node(
    environ: Mapping[str, str], paths: Paths, settings: Settings, raw: str, echo: Echo,
    group_images: tuple[str, ...] = (),
) -> str:  # fmt: skip
    """`invoke add-node HOST`: the node's hostname once it is checked, joined and has the images
    (the roster's `group_images` among them)."""
    target = ssh.parse(raw)
    manager = engine.connect(environ)
    echo(f"-> reaching {target}'s Docker engine over SSH")
    with ssh.engine(target, paths.known_hosts, settings.node_ssh_key) as node:
        return nodes.add(manager, node, target, settings, echo, group_images)


def drain_node(environ: Mapping[str, str], raw: str, echo: Echo) -> tuple[str, str]:
    return nodes.drain(engine.connect(environ), raw, echo)


def remove_node(
    environ: Mapping[str, str], paths: Paths, settings: Settings, raw: str, echo: Echo
) -> str:
    return nodes.remove(
        engine.connect(environ), raw, paths.known_hosts, settings.node_ssh_key, echo
    )
