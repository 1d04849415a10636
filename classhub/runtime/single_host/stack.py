"""The hub's Docker objects: its networks, its volumes and its containers, made and checked.

The hub's containers (`services`): the firewall (classhub_hub/firewall.py: on the host's network
with only NET_ADMIN, it keeps the nftables rules that stop user containers from reaching each
other), the Docker socket proxy (classhub_hub/dockerproxy.py: the only holder of the Docker socket,
on `<hub>-socket`, an internal network only the hub joins) and the hub itself, at a fixed address
on `<hub>-net`, with the proxy as its DOCKER_HOST. All three drop every capability they do not need
and run with `no-new-privileges`.

Rules that hold here:
- Every object carries the labels `classhub.hub=<HUB_NAME>` and `classhub.kind`, so one hub's
  objects are found without touching another hub's.
- Volumes are created, never removed: user homes and group folders are students' data. New user
  and group volumes are prepared in one short container: owned 1000:100 (jovyan:users), group
  folders setgid 2775 so every member can edit what another made. A volume whose preparation
  fails is removed again (it is new and empty), so nothing is left half made.
- Each of the hub's containers carries `classhub.spec`, a hash of everything it is made from
  (image, mounts, ports, addresses; for the hub also the hub file's settings and
  jupyterhub_config.d). It is replaced only when that changes.
  User containers are not touched by a hub restart: the hub is configured to leave them running.
- A container, network or volume classhub did not make is never changed or removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from ... import acme, components, hubfile, names, neighbours, render, tls, wait
from ...components import Component, Part
from ...console import Echo
from ...errors import UserError
from ...files import ensure_private_dir, write_atomic
from ...inputs.roster import Roster
from ...inputs.settings import Settings
from ...paths import Paths
from .. import Service, spec_hash
from . import disks
from .builder import find as find_image

DOCKER_SOCKET = "/var/run/docker.sock"


# --- the networks and the hub's data volume ---------------------------------------------------


def _network(client: docker.DockerClient, name: str):
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    return client.networks.get(str(found[0].id)) if found else None


def _pool(network) -> dict:
    config = (network.attrs.get("IPAM") or {}).get("Config") or []
    return config[0] if config else {}


def _allocated_pool(network, timeout: float = 30) -> dict:
    """The network's address pool, once it has one: a swarm's allocator gives an overlay its
    subnet after the create has returned (a bridge has it at once)."""
    deadline = time.monotonic() + timeout
    while not _pool(network).get("Subnet"):
        if time.monotonic() > deadline:
            raise UserError(f"Docker gave the network {network.name} no subnet within "
                            f"{timeout:.0f} s; run invoke setup again")  # fmt: skip
        time.sleep(0.2)
        network.reload()
    return _pool(network)


# The hub's network: on one server a bridge; on a swarm an overlay, attachable so that the hub's
# container (on the manager) joins it beside the students' services.
DRIVERS: dict[bool, dict[str, Any]] = {
    False: {"driver": "bridge"},
    True: {"driver": "overlay", "attachable": True},
}


def network_state(client: docker.DockerClient, hub: str, overlay: bool = False) -> str:
    """'missing', 'present', 'without a fixed hub address' (made before the firewall was), or
    made for the other engine ('made as bridge, not overlay' once ENGINE changed)."""
    network = _network(client, names.network(hub))
    if network is None:
        return "missing"
    driver, wanted = network.attrs.get("Driver"), DRIVERS[overlay]["driver"]
    if driver != wanted:
        return f"made as {driver}, not {wanted}"
    pool = _allocated_pool(network)
    return "present" if pool.get("IPRange") else "without a fixed hub address"


def ensure_network(
    client: docker.DockerClient, hub: str, echo: Echo, owner: dict[str, str] | None = None,
    overlay: bool = False,
) -> None:  # fmt: skip
    """Make the hub's network with a subnet the engine picks and a fixed address for the hub.

    The engine chooses the subnet (honouring its default-address-pools) for a short-lived probe
    network; the real one reuses it with containers given addresses from its lower half only, so
    the hub's address at the top (`hub_address`) is never handed to a user container.
    """
    state = network_state(client, hub, overlay)
    if state == "present":
        return
    name = names.network(hub)
    if state != "missing":
        echo(f"   {name} is replaced: stopping this hub's containers first (volumes are kept)")
        stop_all(client, hub, echo)
        _network(client, name).remove()
    kind = DRIVERS[overlay]
    probe = client.networks.create(f"{name}-probe", labels=names.labels(hub, "probe"), **kind)
    try:
        subnet = ipaddress.ip_network(_allocated_pool(client.networks.get(str(probe.id)))["Subnet"])
    finally:
        probe.remove()
    lower = next(subnet.subnets(prefixlen_diff=1))
    pool = docker.types.IPAMPool(subnet=str(subnet), iprange=str(lower), gateway=str(subnet[1]))
    client.networks.create(
        name, ipam=docker.types.IPAMConfig(pool_configs=[pool]),
        labels={**names.labels(hub, "net"), **(owner or {})}, **kind,
    )  # fmt: skip


def hub_address(client: docker.DockerClient, hub: str) -> str | None:
    """The hub container's fixed address on its network (None while the network is missing)."""
    network = _network(client, names.network(hub))
    if network is None or not _allocated_pool(network).get("IPRange"):
        return None
    return str(ipaddress.ip_network(_pool(network)["Subnet"])[-2])


def bridge_name(client: docker.DockerClient, hub: str) -> str | None:
    network = _network(client, names.network(hub))
    if network is None:
        return None
    options = network.attrs.get("Options") or {}
    return options.get("com.docker.network.bridge.name") or f"br-{network.id[:12]}"


def network_exists(client: docker.DockerClient, name: str) -> bool:
    return _network(client, name) is not None


def ensure_internal_network(client: docker.DockerClient, hub: str, name: str, kind: str) -> None:
    if not network_exists(client, name):
        client.networks.create(name, driver="bridge", internal=True, labels=names.labels(hub, kind))


def volume_names(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list()}


def ensure_volume(client: docker.DockerClient, hub: str, name: str, kind: str) -> None:
    if name not in volume_names(client):
        client.volumes.create(name, labels=names.labels(hub, kind))


# --- user and group volumes --------------------------------------------------------------------


def missing_group_images(client: docker.DockerClient, roster: Roster) -> list[str]:
    """`userlist:LINE: ...` for each group image the engine does not have (never pulled here)."""
    return [
        f"userlist:{line}: group {group}'s image {image} is not on this Docker engine; build or "
        "load it first (docker build -t NAME ..., docker load)"
        for group, image, line in roster.group_images
        if find_image(client, image) is None
    ]


def detached_volumes(client: docker.DockerClient, hub: str, roster: Roster) -> list[str]:
    """This hub's user and group volumes that no roster user or group uses any more (kept)."""
    wanted = roster.volumes(hub)
    found = []
    for kind in ("user", "group"):
        flt = {"label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}={kind}"]}
        found += [v.name for v in client.volumes.list(filters=flt) if v.name not in wanted]
    return sorted(found)


def stale_servers(client: docker.DockerClient, hub: str, hub_file) -> dict[str, str]:
    """Running servers whose folders, limits or image differ from what the roster and the images
    now give their user (user -> what changed); they pick it up at their next start."""
    users = hub_file.get("users")
    stale = {}
    for container in hub_objects(client, hub, "user"):
        user = container.labels.get(names.LABEL_USER, "")
        if container.status != "running" or user not in users:
            continue
        have = {m.get("Name") or m["Source"]: m["Destination"] for m in container.attrs["Mounts"]}
        want = {source: spec["bind"] for source, spec in hubfile.mounts(hub_file, user).items()}
        image = find_image(client, users[user]["image"])
        limits = users[user]["limits"]
        host = container.attrs["HostConfig"]
        quota = round(float(limits["cpu_limit"]) * (host.get("CpuPeriod") or 100_000))
        changed = what_changed(
            have, want, image is None or container.attrs["Image"] != image.id,
            host.get("Memory") != limits["mem_limit"] or host.get("CpuQuota") != quota,
        )  # fmt: skip
        if changed:
            stale[user] = changed
    return stale


def what_changed(have: Mapping[str, str], want: Mapping[str, str], image: bool, limits: bool):
    """What a running server lacks of what its user is given now, '' when nothing: folders
    (mount source -> where in the server) to add (+) or to drop (-), a new image, new limits."""
    home = hubfile.HOME + "/"
    changes = [f"+{p.removeprefix(home)}" for v, p in sorted(want.items()) if have.get(v) != p]
    changes += [f"-{p.removeprefix(home)}" for v, p in sorted(have.items()) if want.get(v) != p]
    changes += ["new image"] * image + ["new limits"] * limits
    return ", ".join(changes)


PREPARE = "prepare-volumes"  # the kind of the one-off container that gives new volumes an owner


def create_volumes(
    client: docker.DockerClient,
    hub: str,
    volumes: dict[str, str],
    image: str,
    echo: Echo,
    store: str = "",
    sizes: Mapping[str, int] | None = None,
) -> None:
    """Create `volumes` (name -> kind), owned by jovyan with their kind's mode: those `sizes`
    gives a size as size-limited folders in DISK_STORE (`store`), the rest (and all, without a
    store) in Docker's own storage, given their owner and mode in one container. First finishes
    the volumes a killed run left without their owner (unfinished_volumes)."""
    finish_volumes(client, hub, echo)
    todo = {n: k for n, k in volumes.items() if n not in volume_names(client)}
    limited = {n: (k, sizes[n]) for n, k in todo.items() if store and sizes and n in sizes}
    if limited:
        disks.make(client, hub, store, limited)
        each = ", each with its size limit," if any(size for _, size in limited.values()) else ""
        echo(f"   created {len(limited)} volume(s) in {store}{each} owned by jovyan (1000:100)")
    todo = {n: k for n, k in todo.items() if n not in limited}
    if not todo:
        return
    mounts, commands = [], []
    for index, (name, kind) in enumerate(todo.items()):
        where = f"/v/{index}"
        mounts.append(
            docker.types.Mount(where, name, type="volume", labels=names.labels(hub, kind))
        )
        uid, gid = hubfile.FOLDER_OWNER
        commands.append(
            f"chown {uid}:{gid} {where} && chmod {hubfile.FOLDER_MODES[kind]:o} {where}"
        )
    # One call makes the container and its volumes (labelled, from the mounts): until it has run
    # and is removed, it is the record that those volumes still lack their owner, which a run
    # killed in between leaves for the next (finish_volumes) and for status.
    try:
        container = client.containers.create(
            image, entrypoint=["sh", "-c"], command=[" && ".join(commands)], user="0",
            mounts=mounts, network_disabled=True, labels=names.labels(hub, PREPARE),
        )  # fmt: skip
        _prepare(container)
    except (docker.errors.DockerException, UserError) as exc:
        for leftover in hub_objects(client, hub, PREPARE):
            leftover.remove(force=True)
        for name in todo:  # new and empty: removing them loses nothing
            with contextlib.suppress(docker.errors.NotFound):
                client.volumes.get(name).remove(force=True)
        raise UserError(f"preparing {len(todo)} new volume(s) failed: {exc}") from None
    echo(f"   created {len(todo)} volume(s), owned by jovyan (1000:100)")


def unfinished_volumes(client: docker.DockerClient, hub: str) -> dict[str, str]:
    """Volumes (name -> kind) a killed run made but did not give their owner and mode: those its
    prepare-volumes container, left behind, mounts."""
    found = {}
    for container in hub_objects(client, hub, PREPARE):
        for mount in container.attrs["HostConfig"].get("Mounts") or []:
            labels = (mount.get("VolumeOptions") or {}).get("Labels") or {}
            found[mount["Source"]] = labels.get(names.LABEL_KIND, "user")
    return found


def finish_volumes(client: docker.DockerClient, hub: str, echo: Echo) -> None:
    """Give the volumes a killed run left unfinished their owner and mode: its prepare-volumes
    container runs (again: chown and chmod do the same twice) and goes."""
    for container in hub_objects(client, hub, PREPARE):
        count = len(container.attrs["HostConfig"].get("Mounts") or [])
        try:
            _prepare(container)
        except (docker.errors.DockerException, UserError) as exc:
            raise UserError(f"giving {count} volume(s) an interrupted run made their owner "
                            f"failed: {exc}") from None  # fmt: skip
        echo(f"   gave {count} volume(s) an interrupted run had made their owner (1000:100)")


def _prepare(container) -> None:
    """Run a prepare-volumes container to its end, then remove it. When it fails, a UserError,
    and the container stays: the record that its volumes still lack their owner."""
    try:
        container.start()
        status = container.wait(timeout=300)["StatusCode"]
        said = container.logs().decode("utf-8", "replace").strip()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        status, said = -1, str(exc)
    if status != 0:
        raise UserError(f"chown and chmod said: {said[-500:]}")
    container.remove(force=True)


# --- the hub's containers: firewall, Docker socket proxy, hub ------------------------------------


def config_d(paths: Paths) -> Path:
    return paths.root / "hub" / "jupyterhub_config.d"


Filters = dict[str, str | list[str] | bool]  # docker-py's filters of a listing
# The checkout's state/ (the hub file and what nginx reads) in the hub and its socket proxy.
STATE_IN_HUB = str(Path(hubfile.HUB_FILE_IN_HUB).parent)
ALWAYS = {"restart_policy": {"Name": "unless-stopped"}}
# What every student waits on (socket proxy, database, hub and its proxy, nginx) gets the CPU
# before the students' servers (Docker's default weight is 1024): with a class starting at once,
# the hub otherwise stalled for seconds and logins took 3 to 6 s instead of 0.2 s.
FIRST = {"cpu_shares": 4096}


def services(
    client: docker.DockerClient, paths: Paths, settings: Settings,
    makers: Mapping[Part, Maker] | None = None,
) -> list[Service]:  # fmt: skip
    """The hub's containers in start order (components.of), each made as its part asks (or as
    `makers` makes that part instead: a swarm's runtime). Needs the hub's network."""
    hub = settings.hub_name
    address, bridge = hub_address(client, hub), bridge_name(client, hub)
    network = _network(client, names.network(hub))
    if address is None or bridge is None or network is None:
        raise UserError(f"the network {names.network(hub)} is missing; run invoke setup")
    where = Where(address, bridge, _pool(network)["IPRange"], str(network.id))
    made = []
    for component in components.of(settings):
        make = {**MAKERS, **(makers or {})}[component.part]
        made.append(make(client, paths, settings, component, where))
    return made


def service(client: docker.DockerClient, paths: Paths, settings: Settings, part: Part) -> Service:
    """The component of that part as `services` makes it (the hub must have one)."""
    (found,) = [s for s in services(client, paths, settings) if s.component.part is part]
    return found


@dataclass(frozen=True)
class Where:
    """Where the hub's containers find each other: the hub's fixed address, its bridge, the
    range its servers' addresses come from, and the network's ID."""

    address: str
    bridge: str
    servers: str
    network_id: str


# How a part's component is made: (client, paths, settings, component, where) -> its Service.
Maker = Callable[[docker.DockerClient, Paths, Settings, Component, Where], Service]


def _kwargs(hub: str, component: Component, **more: Any) -> dict[str, Any]:
    """What every one of the hub's containers is made with: its name, image, labels and the
    shared hardening; `more` adds to it (capabilities added back by name)."""
    return {
        "image": component.image.tag,
        "name": component.container,
        **hubfile.HARDENING,
        **ALWAYS,
        "labels": names.labels(hub, component.part.value),
        **more,
    }


def _firewall_service(client, paths: Paths, settings: Settings, component: Component,
                      where: Where) -> Service:  # fmt: skip
    hub = settings.hub_name
    command = ["python3", "-m", "classhub_hub.firewall", "--table", names.firewall_table(hub),
               "--bridge", where.bridge, "--hub-ip", where.address, "--servers", where.servers,
               "--port", str(hubfile.HUB_API_PORT)]  # fmt: skip
    # It reads the exceptions (the hub file), the exams and the proxy's list of servers, and tells
    # the proxy, beside that list, once its table is loaded in this kernel.
    proxy = components.find(settings, Part.SOCKET_PROXY)
    assert proxy is not None, "every hub has its socket proxy"
    (listed,) = proxy.volumes
    volumes = {str(paths.state_dir): {"bind": STATE_IN_HUB, "mode": "ro"},
               listed.name: {"bind": hubfile.ADDRESSES_IN_HUB, "mode": "rw"}}  # fmt: skip
    kwargs = _kwargs(hub, component, command=command, network_mode="host", cap_add=["NET_ADMIN"],
                     read_only=True, volumes=volumes)  # fmt: skip
    return Service(component, kwargs, inputs=_image_id(client, component.image.tag))


def _socket_proxy_service(client, paths: Paths, settings: Settings, component: Component,
                          where: Where) -> Service:  # fmt: skip
    hub, store = settings.hub_name, settings.disk_store
    (network,), (listed,) = component.networks, component.volumes
    kwargs = _kwargs(
        hub, component,
        # What it allows, it reads from the hub file (re-read when it changes).
        command=["python3", "-m", "classhub_hub.dockerproxy"],
        network=network.name,
        volumes={DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "rw"},
                 str(paths.state_dir): {"bind": STATE_IN_HUB, "mode": "ro"},
                 listed.name: {"bind": hubfile.ADDRESSES_IN_HUB, "mode": "rw"},
                 **({store: {"bind": store, "mode": "rw"}} if store else {})},
        **({"cap_add": disks.STORE_CAPS} if store else {}),  # a newcomer's home there
        read_only=True,
        **FIRST,
    )  # fmt: skip
    return Service(component, kwargs, inputs=_image_id(client, component.image.tag))


DB_SECRET_IN_DB = "/run/classhub/postgres_password"


def _db_service(client, paths: Paths, settings: Settings, component: Component,
                where: Where) -> Service:  # fmt: skip
    """PostgreSQL on the hub's database network only; it runs as root just long enough to read
    the password file (root's, 0600) and then becomes postgres (db/start-postgres)."""
    (network,), (volume,), (secret,) = component.networks, component.volumes, component.secrets
    kwargs = _kwargs(
        settings.hub_name, component,
        network=network.name,
        volumes={volume.name: {"bind": "/var/lib/postgresql/data", "mode": "rw"},
                 str(paths.secrets_dir / secret): {"bind": DB_SECRET_IN_DB, "mode": "ro"}},
        cap_add=["SETUID", "SETGID"],
        shm_size="128m",
        **FIRST,
    )  # fmt: skip
    return Service(component, kwargs, inputs=_image_id(client, component.image.tag))


def _nginx_service(client, paths: Paths, settings: Settings, component: Component,
                   where: Where) -> Service:  # fmt: skip
    """The bundled front door (PROXY=nginx), reaching the hub at its fixed address; the hub's
    port is then not published at all."""
    upstream = f"{where.address}:{hubfile.PROXY_PORT}"
    return nginx_service(client, paths, settings, component, upstream)


def nginx_service(client, paths: Paths, settings: Settings, component: Component,
                  upstream: str) -> Service:  # fmt: skip
    """The bundled front door: nginx on the host's network, so it sees each student's own
    address (for the login rate limit), reaching the hub at `upstream` (HOST:PORT). Its master
    starts as root to bind the ports and read the key, its workers run as www-data."""
    hub = settings.hub_name
    conf_path = paths.state_dir / "nginx.conf"
    conf = render.nginx_bundled(paths, settings, upstream)
    volumes = {str(conf_path): {"bind": "/etc/nginx/nginx.conf", "mode": "ro"}}
    pair = hashlib.sha256()
    if settings.acme:
        # The renewer replaces the pair in this folder and nginx reloads it by itself: a new
        # pair is no reason to replace the container (and drop every open connection).
        volumes.update(acme.nginx_mounts(paths))
    else:
        cert, key = tls.cert_paths(paths, settings)
        for path in (cert, key):
            with contextlib.suppress(OSError):  # made by an earlier step when missing at planning
                pair.update(path.read_bytes())
        volumes[str(cert)] = {"bind": render.NGINX_CERT_IN_CONTAINER, "mode": "ro"}
        volumes[str(key)] = {"bind": render.NGINX_KEY_IN_CONTAINER, "mode": "ro"}
    kwargs = _kwargs(
        hub,
        component,
        network_mode="host",
        volumes=volumes,
        cap_add=["NET_BIND_SERVICE", "SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE"],
        **FIRST,
    )
    kwargs["labels"][neighbours.LABEL_FRONT_PORTS] = f"{settings.https_port},{settings.http_port}"
    return Service(
        component, kwargs,
        inputs=_image_id(client, component.image.tag) + pair.hexdigest() + conf,
        files=((conf_path, conf),),
    )  # fmt: skip


def _acme_service(client, paths: Paths, settings: Settings, component: Component,
                  where: Where) -> Service:  # fmt: skip
    """The certificate renewer (ACME=true): certbot on the host's network, as nginx is, so the CA
    and the DNS server are reached as this server reaches them. It runs as root (certbot's state
    in secrets/acme/ is root's) with no capability at all, on a read-only root."""
    kwargs = _kwargs(
        settings.hub_name,
        component,
        network_mode="host",
        environment=acme.environment(paths, settings),
        volumes=acme.mounts(paths, settings),
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
    )
    return Service(component, kwargs, inputs=_image_id(client, component.image.tag))


def wait_for_nginx(client: docker.DockerClient, hub: str, timeout: float = 30) -> None:
    """Return once the bundled nginx runs (it stops at once on a bad certificate or a taken port)."""
    container = client.containers.get(names.nginx_container(hub))

    def running() -> bool:
        container.reload()
        if container.status in ("exited", "dead") or container.attrs["RestartCount"]:
            raise UserError(
                f"the front door {container.name} (nginx) stopped. Its log:\n"
                + container.logs(tail=15).decode("utf-8", "replace")
            )
        result = container.exec_run(["sh", "-c", "test -s /run/nginx.pid"])
        return result.exit_code == 0

    wait.until(f"the front door {container.name}", running, timeout)


def wait_for_db(client: docker.DockerClient, hub: str, timeout: float = 60) -> None:
    """Return once PostgreSQL takes connections; its log's tail when it does not."""
    container = client.containers.get(names.db_container(hub))

    def ready() -> bool:
        container.reload()
        if container.status != "running":
            raise UserError(
                f"the database {container.name} stopped. Its log:\n"
                + container.logs(tail=15).decode("utf-8", "replace")
            )
        probe = [
            "pg_isready",
            "-q",
            "-h",
            "/var/run/postgresql",
            "-d",
            "jupyterhub",
            "-U",
            "jupyterhub",
        ]
        return container.exec_run(probe, user="postgres").exit_code == 0

    wait.until(f"the database {container.name}", ready, timeout,
               on_timeout=lambda: container.logs(tail=15).decode("utf-8", "replace"))  # fmt: skip


def _hub_service(client, paths: Paths, settings: Settings, component: Component,
                 where: Where) -> Service:  # fmt: skip
    hub = settings.hub_name
    (data,) = component.volumes
    volumes = {
        data.name: {"bind": hubfile.DATA_IN_HUB, "mode": "rw"},
        str(paths.state_dir): {"bind": STATE_IN_HUB, "mode": "ro"},
        str(config_d(paths)): {"bind": hubfile.CONFIG_D_IN_HUB, "mode": "ro"},
    }
    for secret in component.secrets:
        source = str(paths.secrets_dir / secret)
        volumes[source] = {"bind": f"{hubfile.SECRETS_IN_HUB}/{secret}", "mode": "ro"}
    proxy = f"tcp://{names.socket_proxy_container(hub)}:{hubfile.SOCKET_PROXY_PORT}"
    network = names.network(hub)
    kwargs = _kwargs(
        hub,
        component,
        environment={"DOCKER_HOST": proxy},
        network=network,
        networking_config={network: client.api.create_endpoint_config(ipv4_address=where.address)},
        # Behind the bundled nginx the hub is reached at its own address only.
        ports={f"{hubfile.PROXY_PORT}/tcp": (settings.bind_address, settings.port)}
        if not components.has(settings, Part.FRONT_DOOR)
        else {},
        volumes=volumes,
        **FIRST,
    )
    kwargs["labels"].update(neighbours.checkout_labels(paths.root))
    kwargs["labels"].update(neighbours.origin_labels(settings))
    # What the hub reads only at start; users and groups it re-reads without a restart.
    inputs = [
        _image_id(client, component.image.tag),
        json.dumps(render.hub_settings(settings), sort_keys=True),
    ]
    folder = config_d(paths)
    for extra in sorted(folder.glob("*.py")) if folder.is_dir() else ():
        inputs.append(extra.name + "\0" + extra.read_text(encoding="utf-8", errors="replace"))
    # The internal networks the other components bring, which the hub joins.
    join = tuple(network.name for network in components.networks(settings))
    return Service(component, kwargs, join=join, inputs="\0".join(inputs))


MAKERS: dict[Part, Maker] = {
    Part.FIREWALL: _firewall_service,
    Part.SOCKET_PROXY: _socket_proxy_service,
    Part.DATABASE: _db_service,
    Part.HUB: _hub_service,
    Part.FRONT_DOOR: _nginx_service,
    Part.CERTIFICATES: _acme_service,
}


FIREWALL_LOADED = "firewall: table inet"  # the line the firewall prints once its rules are in


def wait_for_firewall(
    client: docker.DockerClient, hub: str, since: int, timeout: float = 30
) -> None:
    """Return once the firewall (started at `since`, epoch seconds) has loaded its rules; stop
    setup before the hub starts if it cannot, since students would then reach each other."""
    container = client.containers.get(names.firewall_container(hub))

    def loaded() -> bool:
        container.reload()
        log = container.logs(since=since).decode("utf-8", "replace")
        if FIREWALL_LOADED in log:
            return True
        if container.status != "running" or "error" in log.lower():
            raise UserError(
                f"the firewall {container.name} could not load its rules, so students would "
                "reach each other's servers; the hub is not started. Its log:\n"
                + "\n".join("   " + line for line in log.strip().splitlines()[-15:])
            )
        return False

    wait.until(f"the firewall {container.name}", loaded, timeout,
               on_timeout=lambda: container.logs(tail=15).decode("utf-8", "replace"))  # fmt: skip


def _image_id(client: docker.DockerClient, ref: str) -> str:
    image = find_image(client, ref)
    return image.id if image is not None else "missing"


def find_container(client: docker.DockerClient, name: str):
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def service_state(client: docker.DockerClient, hub: str, service: Service) -> tuple[str, str]:
    """(state, action) of one of the hub's containers; action is '' when nothing is to be done."""
    container = find_container(client, service.name)
    if container is None:
        return "missing", "create and start"
    _owned(container, hub)
    if container.labels.get(names.LABEL_SPEC) != spec_hash(service):
        return f"{container.status}, made from other settings or image", "replace"
    for path, text in service.files:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            return f"{container.status}, {path.name} out of date", "replace"
    if container.status != "running":
        return container.status, "start"
    return "running", ""


def ensure_service(client: docker.DockerClient, hub: str, service: Service, echo: Echo) -> bool:
    """Start, make or replace the container as its state now asks (which may no longer be what
    the plan saw: an image rebuilt meanwhile can be the one it runs); whether it did anything."""
    _, action = service_state(client, hub, service)
    if not action:
        return False
    container = find_container(client, service.name)
    if action == "start":
        container.start()
        return True
    if container is not None:
        echo(f"   removing the old {service.component.row}")
        container.stop(timeout=20)
        container.remove()
    for path, text in service.files:
        ensure_private_dir(path.parent)
        write_atomic(path, text, mode=0o644)
    kwargs = dict(service.kwargs)
    kwargs["labels"] = {**kwargs["labels"], names.LABEL_SPEC: spec_hash(service)}
    try:
        container = client.containers.create(**kwargs)
        fixed = dict(service.addresses)
        for network in service.join:
            client.networks.get(network).connect(container, ipv4_address=fixed.get(network))
        container.start()
    except docker.errors.APIError as exc:
        leftover = find_container(client, service.name)
        if leftover is not None:
            leftover.remove(force=True)
        explanation = str(exc.explanation or exc)
        if "address already in use" in explanation or "port is already allocated" in explanation:
            address, port = next(iter(service.kwargs["ports"].values()))
            raise UserError(
                f"the hub cannot listen on {address}:{port}: another program uses that port. "
                "Set PORT in .env to a free port and run invoke setup"
            ) from None
        raise UserError(f"starting the {service.component.row} failed: "
                        f"{explanation}") from None  # fmt: skip
    return True


def _owned(container, hub: str) -> None:
    if container.labels.get(names.LABEL_HUB) != hub:
        raise UserError(
            f"a container named {container.name!r} exists that classhub did not make for this "
            "hub; choose another HUB_NAME in .env, or remove that container yourself"
        )


# --- what runs ---------------------------------------------------------------------------------


def hub_objects(client: docker.DockerClient, hub: str, kind: str) -> list:
    """This hub's containers of one kind ('hub', 'user'), running or not."""
    flt: Filters = {"label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}={kind}"]}
    return client.containers.list(all=True, filters=flt)


def stop_all(client: docker.DockerClient, hub: str, echo: Echo) -> int:
    """Stop the front door (PROXY=nginx) and the hub, every user container (removed: their data
    lives in volumes), then the hub's other components in the reverse of their start order: the
    database, the socket proxy and the firewall (whose rules stay in the kernel, so nothing opens
    up meanwhile)."""
    count = 0
    for kind, what in (
        (Part.FRONT_DOOR.value, "the front door "),
        (Part.HUB.value, "the hub container "),
    ):
        for container in hub_objects(client, hub, kind):
            if container.status == "running":
                echo(f"-> stopping {what}{container.name}")
                container.stop(timeout=20)
                count += 1
    for container in hub_objects(client, hub, "user"):
        echo(f"-> stopping and removing {container.name} (the home volume stays)")
        container.stop(timeout=20)
        # DockerSpawner's remove=True makes containers that Docker removes itself once stopped.
        if not container.attrs["HostConfig"].get("AutoRemove"):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        count += 1
    rest = [part for part in reversed(Part) if part not in (Part.FRONT_DOOR, Part.HUB)]
    for kind in (part.value for part in rest):
        for container in hub_objects(client, hub, kind):
            if container.status == "running":
                echo(f"-> stopping {container.name}")
                container.stop(timeout=20)
                count += 1
    return count


def remove_containers(client: docker.DockerClient, hub: str, echo: Echo) -> int:
    """Stop and remove every container of this hub and take its firewall rules out of the kernel
    (nothing is left to protect); networks and volumes stay."""
    stop_all(client, hub, echo)
    removed = 0
    for container in client.containers.list(
        all=True, filters={"label": f"{names.LABEL_HUB}={hub}"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed += 1
    remove_firewall_rules(client, hub)
    return removed


def hub_inventory(client: docker.DockerClient, hub: str) -> dict[str, list]:
    """Every Docker object of this hub, by kind of object: containers, networks, volumes."""
    flt: Filters = {"label": f"{names.LABEL_HUB}={hub}"}
    return {
        "containers": client.containers.list(all=True, filters=flt),
        "networks": client.networks.list(filters=flt),
        "volumes": client.volumes.list(filters=flt),
    }


def destroy(client: docker.DockerClient, hub: str, echo: Echo) -> int:
    """Remove every Docker object of this hub (the caller has confirmed) and its firewall rules.
    Images stay: they hold no hub's data and other hubs share them."""
    found = hub_inventory(client, hub)
    for container in found["containers"]:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    for network in found["networks"]:
        network.remove()
    for volume in found["volumes"]:
        disks.remove(client, volume)
    remove_firewall_rules(client, hub)
    count = sum(len(objects) for objects in found.values())
    echo(f"Removed {count} Docker object(s) of hub {hub}.")
    return count


def remove_firewall_rules(client: docker.DockerClient, hub: str) -> None:
    """Take the hub's firewall table out of the host's kernel (its firewall container is gone).
    Without the hub's image (never built here, or removed by hand) nothing here can run nft: a
    table left behind is replaced by the hub's next setup."""
    if find_image(client, names.hub_image(hub)) is None:
        return
    client.containers.run(
        names.hub_image(hub),
        ["sh", "-c", f"nft list table inet {names.firewall_table(hub)} >/dev/null 2>&1 && "
                     f"nft delete table inet {names.firewall_table(hub)}; true"],
        network_mode="host", cap_drop=["ALL"], cap_add=["NET_ADMIN"], remove=True,
        labels=names.labels(hub, "firewall-removal"),
    )  # fmt: skip


# --- users made for a while (a rehearsal's temporary students) ---------------------------------


def user_containers(client: docker.DockerClient, hub: str, prefix: str) -> list[tuple[str, str]]:
    """(name, id) of the containers of the users whose names start with `prefix`. Read in one call: containers come and
    go meanwhile (the hub removes stopped ones), and one looked up after it went would fail."""
    mine = names.user_container(hub, prefix)
    found = []
    for entry in client.api.containers(all=True, filters={"name": mine}):
        name = (entry.get("Names") or ["/"])[0].lstrip("/")
        if name.startswith(mine):
            found.append((name, entry["Id"]))
    return found


def sweep_users(client: docker.DockerClient, hub: str, prefix: str) -> int:
    """Remove the containers, then the volumes, of the users whose names start with `prefix`;
    returns how many."""
    removed = 0
    for _, container_id in user_containers(client, hub, prefix):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True)
            removed += 1
    for volume in client.volumes.list(filters={"label": f"{names.LABEL_HUB}={hub}"}):
        if volume.name.startswith(names.user_volume(hub, prefix)):
            _remove_volume(client, volume)
            removed += 1
    return removed


def _remove_volume(client: docker.DockerClient, volume, timeout: float = 30) -> None:
    """A volume is busy until its container is gone (Docker removes stopped servers itself)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            disks.remove(client, volume)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
