"""The swarm's nodes: checked and joined (add-node), drained, removed, and listed for status.

This server's engine is the swarm's manager: the first add-node makes it one (`docker swarm
init`, at SWARM_ADDRESS when set). Another server becomes a worker only once every check holds,
all of them reported at once, before anything changes:
- it is not this server, and not in another swarm;
- its Docker engine is the manager's version (major.minor) on the same architecture, without
  `live-restore` (which swarm mode refuses);
- it sees the same files at SWARM_STORAGE: a token this server writes there once
  (`.classhub-storage`) is read on the node through its engine, the way a student's server will
  see the folder, from an empty image's container that never runs (imported there and removed).
Those are reported together, and nothing has changed. Then the images nodes run that this server
holds are loaded into it by ID (`images.spread`): once the first is there, one short container of
it shows whether its engine gives containers `no-new-privileges` and whether the node has swap
(a service can neither ask for the one nor refuse the other on Docker 20.10, and the API does not
say), and a node without the one or with the other is refused before the others are loaded. Only
then does it join. The node carries the label `classhub.address` (how add-node reached it), by
which drain-node and remove-node reach it again. With SWARM_REGISTRY the images go through the
site's registry instead (`images`).

Draining and removing never delete a file: a node's servers stop, and students' files live on
the shared storage.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import tarfile
import time
from pathlib import Path

import docker
import docker.errors
import docker.types

from ... import components, names
from ...console import Echo
from ...errors import UserError, quoted
from ...files import write_atomic
from ...inputs.settings import Settings
from .. import NodeAccess, NodeInfo
from . import images, ssh

STORAGE_MARK = ".classhub-storage"
LABEL_ADDRESS = "classhub.address"  # on a node: how add-node reached it (ssh's form)
PROBE_IMAGE = "classhub-probe:empty"  # an image with no files, imported on a node for a moment
SWARM_PORTS = "TCP 2377 to this server, and TCP and UDP 7946 and UDP 4789 between all servers"


# --- checks -----------------------------------------------------------------------------------


def storage_mark(storage: str) -> str:
    """The token in SWARM_STORAGE/.classhub-storage, written the first time: a node that reads
    the same token at the same path sees the same filesystem."""
    path = Path(storage) / STORAGE_MARK
    if not path.is_file():
        write_atomic(path, secrets.token_hex(16) + "\n", mode=0o644)
    return path.read_text(encoding="utf-8").strip()


def _major_minor(version: str) -> str:
    found = re.match(r"(\d+)\.(\d+)", version)
    return f"{found[1]}.{found[2]}" if found else version


def engine_problems(manager: dict, node: dict, ours: set[str]) -> list[str]:
    """What keeps a node (its engine's `docker info`) from joining this manager's swarm; `ours`
    holds the IDs of the swarm's nodes."""
    problems = []
    if node.get("ID") == manager.get("ID"):
        return ["it is this server itself (the manager): add-node joins other servers to it"]
    have, want = node.get("ServerVersion", "?"), manager.get("ServerVersion", "?")
    if _major_minor(have) != _major_minor(want):
        problems.append(
            f"its Docker engine is {have}, this server's {want}: install the same version "
            f"({_major_minor(want)}) there, e.g. Debian's or Ubuntu's docker.io on both"
        )
    if node.get("Architecture") != manager.get("Architecture"):
        problems.append(
            f"it is a {node.get('Architecture')} server, this one {manager.get('Architecture')}: "
            "the images built here would not run there; add servers of the same kind"
        )
    if node.get("LiveRestoreEnabled"):
        problems.append(
            "its Docker engine has live-restore on, which swarm mode refuses: remove "
            '"live-restore" from /etc/docker/daemon.json there and restart Docker'
        )
    swarm = node.get("Swarm") or {}
    if (
        swarm.get("LocalNodeState") not in ("inactive", "", None)
        and swarm.get("NodeID") not in ours
    ):
        problems.append(
            f"it is already in another swarm (its state: {swarm.get('LocalNodeState')}): run "
            "docker swarm leave there first, if nothing else runs on that swarm"
        )
    return problems


def storage_problem(node: docker.DockerClient, storage: str, mark: str) -> str | None:
    """Whether the node's engine sees the token at SWARM_STORAGE; what is wrong when it does not.
    Nothing runs on the node: a container of an empty image is made, read from and removed."""
    made_image = not _image_exists(node, PROBE_IMAGE)
    if made_image:
        empty = io.BytesIO()
        tarfile.open(fileobj=empty, mode="w").close()
        repository, tag = PROBE_IMAGE.split(":")
        node.api.import_image_from_data(
            empty.getvalue(), repository=repository, tag=tag,
            changes=[f"LABEL {names.LABEL_KIND}=probe"],
        )  # fmt: skip
    try:
        try:
            container = node.containers.create(
                PROBE_IMAGE, ["never-run"], network_disabled=True,
                mounts=[docker.types.Mount("/storage", storage, type="bind", read_only=True)],
            )  # fmt: skip
        except docker.errors.APIError as exc:
            if "does not exist" in str(exc.explanation or exc):
                return (
                    f"it has no folder {storage} (SWARM_STORAGE): mount the shared filesystem "
                    "there, at the same path as on this server (docs/swarm.md)"
                )
            raise
        try:
            stream, _ = container.get_archive(f"/storage/{STORAGE_MARK}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.extractfile(STORAGE_MARK)
                seen = member.read().decode(errors="replace").strip() if member else ""
        except docker.errors.NotFound:
            seen = ""
        finally:
            container.remove(force=True)
    finally:
        if made_image:
            with contextlib.suppress(docker.errors.APIError):
                node.images.remove(PROBE_IMAGE, force=True)
    if seen != mark:
        return (
            f"its folder {storage} is not the shared filesystem this server has there (it lacks "
            f"the file {STORAGE_MARK} this server wrote, or holds another): mount the same "
            "export at the same path (docs/swarm.md)"
        )
    return None


# Run once on a node, as a student's server runs: whether its engine gives containers
# no-new-privileges, and the kernel's swap areas (/proc/swaps is the kernel's, in a container too);
# then, seen from the node's own first process (the probe shares the node's process IDs), its mounts.
MOUNTS = "--- mounts"
PROBE = f"grep NoNewPrivs /proc/self/status; tail -n +2 /proc/swaps; echo '{MOUNTS}'; " + (
    "cat /proc/1/mountinfo"
)
# Where Docker keeps its containers' network namespaces on a node (/var/run is /run).
NETNS_PATHS = ("/run/docker/netns", "/var/run/docker/netns")


def hardening_problems(node: docker.DockerClient, image_id: str) -> list[str]:
    """What keeps a node from running students' servers hardened as on one server, which a
    service cannot ask for on this Docker version, or its firewall from seeing them; each with
    what to do. Runs the image's shell once, as a student's server runs (uid 1000, no network,
    no capabilities, read-only), but beside the node's own processes, to read their mounts."""
    said = node.containers.run(
        image_id, ["sh", "-c", PROBE], entrypoint=[], user="1000:100", pid_mode="host",
        network_disabled=True, cap_drop=["ALL"], read_only=True, remove=True,
        labels={names.LABEL_KIND: "probe"},
    )  # fmt: skip
    return probe_problems(said.decode("utf-8", "replace"))


def probe_problems(said: str) -> list[str]:
    """What PROBE's output says is missing on the node."""
    said, _, mounts = said.partition(MOUNTS + "\n")
    lines = said.splitlines()
    problems = []
    if not lines or lines[0].split() != ["NoNewPrivs:", "1"]:
        problems.append(
            'its Docker engine runs without no-new-privileges: add "no-new-privileges": true to '
            "/etc/docker/daemon.json there and restart Docker (systemctl restart docker)"
        )
    swaps = [line.split()[0] for line in lines[1:] if line.strip()]
    if swaps:
        problems.append(
            f"it has swap on ({', '.join(swaps)}): a swarm service cannot keep a student's "
            "server off swap on this Docker version, so each could use twice its memory "
            "limit; turn swap off there (swapoff -a, and take it out of /etc/fstab)"
        )
    if not shared_netns(mounts):
        problems.append(
            "its mounts are not shared (findmnt -o PROPAGATION / does not say shared), so the "
            "firewall there would not see the students' servers Docker starts after it; run "
            "mount --make-rshared / there at boot, before Docker (systemd does it itself)"
        )
    return problems


def shared_netns(mountinfo: str) -> bool:
    """Whether the mount that holds Docker's folder of network namespaces (the longest mount
    point above it, in /proc/1/mountinfo's lines) is shared: a mount Docker makes there then
    reaches the firewall's tasks, which bind that folder."""
    best: tuple[int, bool] = (-1, False)
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 7:
            continue
        point, optional = fields[4], fields[6 : fields.index("-")]
        above = any(p == point or p.startswith(point.rstrip("/") + "/") for p in NETNS_PATHS)
        if above and len(point) > best[0]:
            best = (len(point), any(f.startswith("shared:") for f in optional))
    return best[1]


def _refused(target: ssh.Target, info: dict, problems: list[str], changed: str) -> UserError:
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return UserError(f"{target} ({info.get('Name', '?')}) cannot join this hub's swarm; "
                     f"{changed}:\n{listed}")  # fmt: skip


def _image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


# --- the swarm --------------------------------------------------------------------------------


def ensure_swarm(manager: docker.DockerClient, address: str, echo: Echo) -> list[str]:
    """Make this server's engine a swarm manager unless it is one; the managers' addresses."""
    state = manager.info().get("Swarm") or {}
    if state.get("LocalNodeState") == "active" and not state.get("ControlAvailable"):
        raise UserError(
            "this server's Docker engine is a worker in another swarm; classhub runs on the "
            "swarm's manager: run docker swarm leave here first, or run classhub on that manager"
        )
    if state.get("LocalNodeState") != "active":
        try:
            manager.swarm.init(advertise_addr=address or None)
        except docker.errors.APIError as exc:
            said = str(exc.explanation or exc)
            if "advertise" in said:
                raise UserError(
                    f"Docker cannot tell which address the other servers reach this one at "
                    f"({said}): set SWARM_ADDRESS in .env to that address, e.g. SWARM_ADDRESS="
                    "10.0.0.5"
                ) from None
            raise UserError(f"making this server a swarm manager failed: {said}") from None
        echo("-> this server's Docker engine is now the swarm's manager (docker swarm init)")
        state = manager.info().get("Swarm") or {}
    return [entry["Addr"] for entry in state.get("RemoteManagers") or []]


def _node_ids(manager: docker.DockerClient) -> set[str]:
    state = manager.info().get("Swarm") or {}
    if state.get("LocalNodeState") != "active" or not state.get("ControlAvailable"):
        return set()
    return {str(node.id) for node in manager.nodes.list()}


def _wait_ready(manager: docker.DockerClient, node_id: str, target: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(docker.errors.NotFound):
            node = manager.nodes.get(node_id)
            if node.attrs["Status"]["State"] == "ready":
                return node
        if time.monotonic() > deadline:
            raise UserError(f"{target} joined the swarm but is not ready after {timeout:.0f}s; "
                            f"check that {SWARM_PORTS} are open")  # fmt: skip
        time.sleep(0.5)


def _label(node, key: str, value: str) -> None:
    node.reload()
    spec = dict(node.attrs["Spec"])
    spec["Labels"] = {**(spec.get("Labels") or {}), key: value}
    node.update(spec)


def add(
    manager: docker.DockerClient,
    node: docker.DockerClient,
    target: ssh.Target,
    settings: Settings,
    echo: Echo,
    group_images: tuple[str, ...] = (),
) -> str:
    """Check `node` and join it as a worker (once: a node of this swarm is checked again and
    gets the images it lacks); its hostname."""
    if not settings.swarm_storage:
        raise UserError(
            "SWARM_STORAGE is not set in .env: nodes keep students' files on a filesystem shared "
            "with this server; mount it at the same path on every server and name that folder, "
            "e.g. SWARM_STORAGE=/srv/classhub-shared (docs/swarm.md)"
        )
    mine, theirs = manager.info(), node.info()
    ours = _node_ids(manager)
    problems = engine_problems(mine, theirs, ours)
    if theirs.get("ID") != mine.get("ID"):
        echo(f"-> checking that {target} sees the shared storage at {settings.swarm_storage}")
        wrong = storage_problem(node, settings.swarm_storage, storage_mark(settings.swarm_storage))
        problems += [wrong] if wrong else []
    if problems:
        raise _refused(target, theirs, problems, "nothing was changed")
    builds = _builds(manager, components.node_images(settings, group_images))
    if not builds:
        raise UserError("this server holds none of the images nodes run (the class's and the "
                        "hub's): run invoke setup first, then add-node")  # fmt: skip
    for index, (ref, image_id) in enumerate(builds.items()):
        if images.spread(manager, {str(target): node}, image_id, echo,
                         settings.swarm_registry, ref):  # fmt: skip
            echo(f"   ({ref})")
        unhardened = hardening_problems(node, image_id) if index == 0 else []
        if unhardened:  # seen with the first image: the others are not loaded for nothing
            raise _refused(target, theirs, unhardened, "it was not joined (the image loaded there "
                           "stays, for the next try)")  # fmt: skip
    node_id = (theirs.get("Swarm") or {}).get("NodeID") or ""
    if node_id in ours:
        echo(f"   {target} ({theirs.get('Name')}) is already a node of this swarm")
    else:
        managers = ensure_swarm(manager, settings.swarm_address, echo)
        token = manager.swarm.attrs["JoinTokens"]["Worker"]
        echo(f"-> {target} joins the swarm (manager at {', '.join(managers)})")
        try:
            node.swarm.join(managers, token, advertise_addr=_advertise(target))
        except docker.errors.APIError as exc:
            raise UserError(f"{target} could not join the swarm: {exc.explanation or exc}; check "
                            f"that {SWARM_PORTS} are open") from None  # fmt: skip
        node_id = (node.info().get("Swarm") or {}).get("NodeID") or ""
    made = _wait_ready(manager, node_id, str(target))
    _label(made, LABEL_ADDRESS, str(target))
    hostname = str(made.attrs["Description"]["Hostname"])
    made.reload()
    if made.attrs["Spec"].get("Availability") != "active":
        made.update(dict(made.attrs["Spec"], Availability="active"))
        echo(f"-> {hostname} takes servers again (it was drained)")
    return hostname


def _advertise(target: ssh.Target) -> str | None:
    """The node's own address when add-node was given one (a server with several interfaces
    would otherwise make Docker ask); else Docker picks."""
    return target.host if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+", target.host) else None


# --- finding, draining and removing nodes -----------------------------------------------------


def find(manager: docker.DockerClient, raw: str):
    """The node `raw` names: its hostname, its ID, or the address add-node was given."""
    if not _node_ids(manager):
        raise UserError("this server's Docker engine is not a swarm manager: there are no "
                        "nodes yet (invoke add-node HOST adds one)")  # fmt: skip
    nodes = manager.nodes.list()
    try:
        address = str(ssh.parse(raw))
    except UserError:
        address = None
    for node in nodes:
        spec, description = node.attrs["Spec"], node.attrs["Description"]
        if raw in (description.get("Hostname"), node.id) or (
            address and (spec.get("Labels") or {}).get(LABEL_ADDRESS) == address
        ):
            return node
    known = ", ".join(sorted(n.attrs["Description"]["Hostname"] for n in nodes))
    raise UserError(f"no node {quoted(raw)} in this swarm; its nodes: {known} (invoke status "
                    "lists them)")  # fmt: skip


LIVE = ("new", "pending", "assigned", "accepted", "preparing", "starting", "running")


def running_tasks(manager: docker.DockerClient, node_id: str) -> list[dict]:
    """The tasks on a node whose containers are not yet stopped (a drained node's tasks are
    told to shut down at once, and take a while to do it)."""
    return [t for t in manager.api.tasks(filters={"node": node_id}) if t["Status"]["State"] in LIVE]


def drain(
    manager: docker.DockerClient, raw: str, echo: Echo, timeout: float = 120
) -> tuple[str, str]:
    """Stop new placements on a node and wait until what ran there has stopped; its hostname and
    the address add-node reached it at."""
    node = find(manager, raw)
    hostname = node.attrs["Description"]["Hostname"]
    address = (node.attrs["Spec"].get("Labels") or {}).get(LABEL_ADDRESS, hostname)
    if node.attrs["Spec"].get("Availability") != "drain":
        spec = dict(node.attrs["Spec"], Availability="drain")
        node.update(spec)
        echo(f"-> {hostname} takes no new servers (drained)")
    else:
        echo(f"   {hostname} is already drained")
    deadline = time.monotonic() + timeout
    left = running_tasks(manager, str(node.id))
    if left:
        echo(f"   waiting for the {len(left)} task(s) there to stop (files stay)")
    while left:
        if time.monotonic() > deadline:
            raise UserError(f"{len(left)} task(s) still run on {hostname} after {timeout:.0f}s; "
                            "run invoke drain-node again")  # fmt: skip
        time.sleep(1)
        left = running_tasks(manager, str(node.id))
    return hostname, address


def remove(
    manager: docker.DockerClient,
    raw: str,
    known_hosts: Path,
    key: Path | None,
    echo: Echo,
) -> str:
    """Drain a node, make it leave the swarm (over SSH) and take it off the list; its hostname.
    A node that no longer answers (a dead server) is taken off the list all the same."""
    node = find(manager, raw)
    hostname = node.attrs["Description"]["Hostname"]
    if node.attrs["Spec"].get("Role") == "manager":
        raise UserError(f"{hostname} is a manager (this server, or one made by hand); remove-node "
                        "takes out workers only")  # fmt: skip
    if node.attrs["Status"]["State"] == "ready":
        drain(manager, raw, echo)
        address = (node.attrs["Spec"].get("Labels") or {}).get(LABEL_ADDRESS)
        if address:
            try:
                with ssh.engine(ssh.parse(address), known_hosts, key) as there:
                    there.swarm.leave()
                echo(f"-> {hostname} left the swarm")
            except UserError as exc:
                echo(f"   {hostname} did not answer ({exc}); taking it off the list anyway")
    node.reload()
    force = node.attrs["Status"]["State"] != "down"
    manager.api.remove_node(str(node.id), force=force)
    echo(f"-> {hostname} is no longer a node (its files on the shared storage stay)")
    return hostname


def table(manager: docker.DockerClient, hub: str) -> list[NodeInfo]:
    """The swarm's nodes with this hub's servers on each; [] when the engine is no manager."""
    if not _node_ids(manager):
        return []
    servers: dict[str, int] = {}
    flt = {"label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}=user"]}
    wanted = {str(s.id) for s in manager.services.list(filters=flt)}
    for task in manager.api.tasks(filters={"desired-state": "running"}):
        if task["ServiceID"] in wanted and task["Status"]["State"] == "running":
            servers[task["NodeID"]] = servers.get(task["NodeID"], 0) + 1
    rows = []
    for node in manager.nodes.list():
        attrs = node.attrs
        rows.append(
            NodeInfo(
                hostname=attrs["Description"]["Hostname"],
                role=attrs["Spec"].get("Role", "?"),
                state=attrs["Status"].get("State", "?"),
                availability=attrs["Spec"].get("Availability", "?"),
                address=(attrs["Spec"].get("Labels") or {}).get(LABEL_ADDRESS, ""),
                engine=(attrs["Description"].get("Engine") or {}).get("EngineVersion", "?"),
                servers=servers.get(str(node.id), 0),
            )
        )
    return sorted(rows, key=lambda row: (row.role != "manager", row.hostname))


# --- the images on each node (setup, build and status) ----------------------------------------


def workers(manager: docker.DockerClient) -> list:
    """The swarm's nodes other than this server, by hostname; [] without a swarm."""
    if not _node_ids(manager):
        return []
    mine = (manager.info().get("Swarm") or {}).get("NodeID")
    found = [node for node in manager.nodes.list() if node.id != mine]
    return sorted(found, key=lambda node: node.attrs["Description"]["Hostname"])


def _builds(manager: docker.DockerClient, refs: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for ref in refs:
        with contextlib.suppress(docker.errors.ImageNotFound):
            found[ref] = str(manager.images.get(ref).id)
    return found


def image_state(
    manager: docker.DockerClient, refs: tuple[str, ...], known_hosts: Path, key: Path | None
) -> dict[str, tuple[str, ...] | str]:
    """Each node (hostname) and the images of `refs` it lacks as this server has them now (the
    same build, by ID), or why it could not be looked at."""
    builds = _builds(manager, refs)
    found: dict[str, tuple[str, ...] | str] = {}
    for node in workers(manager):
        hostname = node.attrs["Description"]["Hostname"]
        address = (node.attrs["Spec"].get("Labels") or {}).get(LABEL_ADDRESS)
        if node.attrs["Status"]["State"] != "ready":
            found[hostname] = f"{node.attrs['Status']['State']}: not looked at"
        elif not address:
            found[hostname] = "not added by classhub: not looked at"
        else:
            try:
                with ssh.engine(ssh.parse(address), known_hosts, key) as there:
                    found[hostname] = tuple(
                        ref for ref, image_id in builds.items() if not images.has(there, image_id)
                    )
            except UserError as exc:
                found[hostname] = f"unreachable ({exc})"
    return found


def load_images(
    manager: docker.DockerClient,
    hostname: str,
    refs: tuple[str, ...],
    access: NodeAccess,
    echo: Echo,
) -> None:
    """Give the node the builds of `refs` it lacks, as this server has them now (loaded, or
    through the site's registry)."""
    (node,) = [n for n in workers(manager) if n.attrs["Description"]["Hostname"] == hostname]
    address = (node.attrs["Spec"].get("Labels") or {}).get(LABEL_ADDRESS)
    if not address:
        raise UserError(f"node {hostname} was not added by classhub (invoke add-node adds it)")
    with ssh.engine(ssh.parse(address), access.known_hosts, access.key) as there:
        for ref, image_id in _builds(manager, refs).items():
            if images.spread(manager, {hostname: there}, image_id, echo, access.registry, ref):
                echo(f"   ({ref})")
