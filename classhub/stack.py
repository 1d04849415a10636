"""The hub's Docker objects: its network, its volumes and the hub container, made and checked.

Rules that hold here:
- Every object carries the labels `classhub.hub=<HUB_NAME>` and `classhub.kind`, so one hub's
  objects are found without touching another hub's.
- Volumes are created, never removed: user homes and group folders are students' data. New user
  and group volumes are prepared in one short container: owned 1000:100 (jovyan:users), group
  folders setgid 2775 so every member can edit what another made. A volume whose preparation
  fails is removed again (it is new and empty), so nothing is left half made.
- The hub container carries `classhub.spec`, a hash of everything it is made from (image, mounts,
  ports, the hub file's settings, jupyterhub_config.d). It is replaced only when that changes.
  User containers are not touched by a hub restart: the hub is configured to leave them running.
- A container, network or volume classhub did not make is never changed or removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

from . import hubfile, names, render
from .errors import UserError
from .images import find as find_image
from .paths import Paths
from .roster import Roster
from .settings import Settings

Echo = Callable[[str], None]
JOVYAN = "1000:100"
DOCKER_SOCKET = "/var/run/docker.sock"


# --- the network and the hub's data volume ----------------------------------------------------


def network_state(client: docker.DockerClient, hub: str) -> str:
    found = client.networks.list(names=[names.network(hub)])
    return "present" if any(n.name == names.network(hub) for n in found) else "missing"


def ensure_network(client: docker.DockerClient, hub: str) -> None:
    if network_state(client, hub) == "missing":
        client.networks.create(names.network(hub), driver="bridge", labels=names.labels(hub, "net"))


def volume_names(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list()}


def ensure_data_volume(client: docker.DockerClient, hub: str) -> None:
    if names.hub_data_volume(hub) not in volume_names(client):
        client.volumes.create(names.hub_data_volume(hub), labels=names.labels(hub, "data"))


# --- user and group volumes --------------------------------------------------------------------


def wanted_volumes(hub: str, roster: Roster) -> dict[str, str]:
    """Every volume the roster needs: name -> 'user' or 'group'."""
    wanted = {names.user_volume(hub, n): "user" for n in roster.names}
    wanted.update({names.group_volume(hub, g): "group" for g in roster.groups()})
    return wanted


def missing_volumes(client: docker.DockerClient, hub: str, roster: Roster) -> dict[str, str]:
    have = volume_names(client)
    return {name: kind for name, kind in wanted_volumes(hub, roster).items() if name not in have}


def create_volumes(
    client: docker.DockerClient, hub: str, volumes: dict[str, str], image: str, echo: Echo
) -> None:
    """Create `volumes` (name -> kind) and give them their owner and mode in one container."""
    todo = {n: k for n, k in volumes.items() if n not in volume_names(client)}
    if not todo:
        return
    made = [client.volumes.create(n, labels=names.labels(hub, k)) for n, k in todo.items()]
    mounts, commands = {}, []
    for index, (name, kind) in enumerate(todo.items()):
        where = f"/v/{index}"
        mounts[name] = {"bind": where, "mode": "rw"}
        mode = "2775" if kind == "group" else "0755"
        commands.append(f"chown {JOVYAN} {where} && chmod {mode} {where}")
    try:
        client.containers.run(
            image,
            entrypoint=["sh", "-c"],
            command=[" && ".join(commands)],
            user="0",
            volumes=mounts,
            network_disabled=True,
            remove=True,
            labels=names.labels(hub, "prepare-volumes"),
        )
    except docker.errors.DockerException as exc:
        for volume in made:  # new and empty: removing them loses nothing
            volume.remove(force=True)
        raise UserError(f"preparing {len(made)} new volume(s) failed: {exc}") from None
    echo(f"   created {len(made)} volume(s), owned by jovyan (1000:100)")


# --- the hub container -------------------------------------------------------------------------


def config_d(paths: Paths) -> Path:
    return paths.root / "hub" / "jupyterhub_config.d"


def hub_container_kwargs(paths: Paths, settings: Settings) -> dict[str, Any]:
    """How the hub container is made (without its spec label), for docker's containers.create."""
    hub = settings.hub_name
    state_in_hub = str(Path(hubfile.HUB_FILE_IN_HUB).parent)
    volumes = {
        DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "rw"},
        names.hub_data_volume(hub): {"bind": hubfile.DATA_IN_HUB, "mode": "rw"},
        str(paths.state_dir): {"bind": state_in_hub, "mode": "ro"},
        str(config_d(paths)): {"bind": hubfile.CONFIG_D_IN_HUB, "mode": "ro"},
    }
    for secret in hubfile.HUB_SECRETS:
        source = str(paths.secrets_dir / secret)
        volumes[source] = {"bind": f"{hubfile.SECRETS_IN_HUB}/{secret}", "mode": "ro"}
    return {
        "image": names.HUB_IMAGE,
        "name": names.hub_container(hub),
        "detach": True,
        "network": names.network(hub),
        "ports": {f"{hubfile.PROXY_PORT}/tcp": (settings.bind_address, settings.port)},
        "restart_policy": {"Name": "unless-stopped"},
        "volumes": volumes,
        "labels": names.labels(hub, "hub"),
    }


def hub_spec_hash(client: docker.DockerClient, paths: Paths, settings: Settings) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(hub_container_kwargs(paths, settings), sort_keys=True).encode())
    image = _image_id(client, names.HUB_IMAGE)
    digest.update(f"\0{image}\0".encode())
    # What the hub reads only at start; users and groups it re-reads without a restart.
    digest.update(json.dumps(render.hub_settings(settings), sort_keys=True).encode())
    folder = config_d(paths)
    for extra in sorted(folder.glob("*.py")) if folder.is_dir() else ():
        digest.update(b"\0" + extra.name.encode() + b"\0" + extra.read_bytes())
    return digest.hexdigest()[:32]


def _image_id(client: docker.DockerClient, ref: str) -> str:
    image = find_image(client, ref)
    return image.id if image is not None else "missing"


def find_container(client: docker.DockerClient, name: str):
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def hub_state(client: docker.DockerClient, paths: Paths, settings: Settings) -> tuple[str, str]:
    """(state, action) of the hub container; action is '' when nothing is to be done."""
    container = find_container(client, names.hub_container(settings.hub_name))
    if container is None:
        return "missing", "create and start"
    _owned(container, settings.hub_name)
    if container.labels.get(names.LABEL_SPEC) != hub_spec_hash(client, paths, settings):
        return (
            f"{container.status}, made from other settings or image",
            "replace (user servers keep running)",
        )
    if container.status != "running":
        return container.status, "start"
    return "running", ""


def ensure_hub(client: docker.DockerClient, paths: Paths, settings: Settings, echo: Echo) -> None:
    _, action = hub_state(client, paths, settings)
    if not action:
        return
    name = names.hub_container(settings.hub_name)
    container = find_container(client, name)
    if action == "start":
        container.start()
        return
    if container is not None:
        echo(f"   removing the old hub container {name} (its data is in a volume)")
        container.stop(timeout=20)
        container.remove()
    kwargs = hub_container_kwargs(paths, settings)
    kwargs["labels"] = {
        **kwargs["labels"],
        names.LABEL_SPEC: hub_spec_hash(client, paths, settings),
    }
    try:
        client.containers.run(**kwargs)
    except docker.errors.APIError as exc:
        leftover = find_container(client, name)
        if leftover is not None:
            leftover.remove(force=True)
        explanation = str(exc.explanation or exc)
        if "address already in use" in explanation or "port is already allocated" in explanation:
            raise UserError(
                f"the hub cannot listen on {settings.bind_address}:{settings.port}: another "
                "program uses that port. Set PORT in .env to a free port and run invoke setup"
            ) from None
        raise UserError(f"starting the hub container {name} failed: {explanation}") from None


def _owned(container, hub: str) -> None:
    if container.labels.get(names.LABEL_HUB) != hub:
        raise UserError(
            f"a container named {container.name!r} exists that classhub did not make for this "
            "hub; choose another HUB_NAME in .env, or remove that container yourself"
        )


# --- what runs ---------------------------------------------------------------------------------


def hub_objects(client: docker.DockerClient, hub: str, kind: str) -> list:
    """This hub's containers of one kind ('hub', 'user'), running or not."""
    flt = {"label": [f"{names.LABEL_HUB}={hub}", f"{names.LABEL_KIND}={kind}"]}
    return client.containers.list(all=True, filters=flt)


def stop_all(client: docker.DockerClient, hub: str, echo: Echo) -> int:
    """Stop the hub, then every user container (removed: their data lives in volumes)."""
    count = 0
    for container in hub_objects(client, hub, "hub"):
        if container.status == "running":
            echo(f"-> stopping the hub container {container.name}")
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
    return count


def hub_logs(client: docker.DockerClient, hub: str, tail: int = 60) -> str:
    container = find_container(client, names.hub_container(hub))
    if container is None:
        return f"(no container named {names.hub_container(hub)})"
    return container.logs(tail=tail).decode("utf-8", "replace")
