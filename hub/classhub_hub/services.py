"""A student's server on a swarm: the service it runs as, and what the socket proxy lets through.

On Docker Swarm (issue "Docker Swarm mode", under way) each student's server is a service of one
task. `user_service` is its definition, the JSON body of `POST /services/create`, hardened as a
user container is on one host, as far as Docker 20.10's services allow:
- every capability dropped (`CapabilityDrop: ALL`), a read-only root filesystem with only
  classhub's tmpfs at /tmp, uid 1000:100, the pids, memory and CPU limits; `no-new-privileges`
  comes from each node's engine, which add-node checks (services cannot ask for it here);
- this hub's labels on the service and on its container;
- the image by its ID, so every node runs the same build;
- on a worker, never the manager, which keeps its CPU for the hub;
- one replica, never restarted by the swarm (`RestartPolicy: none`: a server that stops, or
  whose node dies, reads as stopped and its student starts it again), on the hub's network with
  DNS round-robin (no virtual IP: this kernel has no IPVS, and IPVS drops idle websockets);
- its folders bound from the shared storage, at the same path on every node:
  `<storage>/<hub>/<volume name>` (`folder`), and Jupyter's SQLite files kept off it.

`service_refusal` is the socket proxy's allowlist for such a definition: every key must be one
`user_service` writes, each holding what it writes for that user (its name, labels, network and
mode exactly; the image the hub file gives them, by its current ID; limits above 0; mounts only of
this hub's folders, in the home), so anything else is refused, known to Docker or not: published
ports, added capabilities, secrets, configs, privileges, another network, more replicas,
another placement, a restart policy that retries.

Standard library only: the hub image runs it (the proxy and, later, the spawner).
"""

from __future__ import annotations

from typing import Any

from classhub import hubfile, names

TMP = "/tmp"
TMPFS = {"SizeBytes": 1024**3, "Mode": 0o1777}  # hubfile.USER_TMPFS: size=1g, mode=1777
USER = "1000:100"
SERVICE_KEYS = frozenset({"Name", "Labels", "TaskTemplate", "Mode", "EndpointSpec"})
TASK_KEYS = frozenset({"ContainerSpec", "Resources", "RestartPolicy", "Networks", "Placement"})
# Students' servers run on the workers: the manager keeps its CPU for the hub, which every
# student waits on when a class starts at once.
ON_WORKERS = {"Constraints": ["node.role==worker"]}
CONTAINER_KEYS = frozenset({
    "Image", "Labels", "Args", "Env", "User", "Mounts", "ReadOnly", "CapabilityDrop",
})  # fmt: skip
LIMIT_KEYS = frozenset({"NanoCPUs", "MemoryBytes", "Pids"})
# Jupyter's SQLite files go to the server's tmpfs, off the shared storage (SQLite on NFS locks
# and breaks): IPython's history (in the kernel's profile folder) and the notebooks' trust (in
# Jupyter's data folder, with the kernels' connection files). Both last one session; a notebook
# opened again is trusted again once its student runs it.
OFF_STORAGE_ENV = {"IPYTHONDIR": f"{TMP}/.ipython", "JUPYTER_DATA_DIR": f"{TMP}/.jupyter-data"}
MOUNT_KEYS = frozenset({"Type", "Source", "Target", "ReadOnly"})
TMPFS_MOUNT_KEYS = frozenset({"Type", "Target", "TmpfsOptions"})


def folder(storage: str, hub: str, volume: str) -> str:
    """Where a home or group folder (named as its volume on one host) is on the shared storage."""
    return f"{hubfile.swarm_folders(storage, hub)}/{volume}"


def user_service(
    hub: hubfile.HubFile,
    user: str,
    image_id: str,
    storage: str,
    env: dict[str, str],
    args: list[str],
    pids_limit: int,
    extra_groups: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The definition of `user`'s server as a service: `POST /services/create`'s body."""
    entry = hubfile.user_entry(hub, user)
    if entry is None:
        raise hubfile.HubFileError(f"{user!r} is not a user of this hub")
    name = hub.get("hub_name")
    mounts: list[dict[str, Any]] = []
    for source, spec in hubfile.mounts(hub, user, extra_groups).items():
        where = hubfile.swarm_source(storage, name, source)
        mounts.append({"Type": "bind", "Source": where, "Target": spec["bind"],
                       "ReadOnly": spec["mode"] == "ro"})  # fmt: skip
    mounts.append({"Type": "tmpfs", "Target": TMP, "TmpfsOptions": dict(TMPFS)})
    labels = names.user_labels(name, user)
    limits = entry["limits"]
    return {
        "Name": entry["container"],
        "Labels": dict(labels),
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image_id,
                "Labels": dict(labels),
                "Args": list(args),
                "Env": [f"{k}={v}" for k, v in sorted({**env, **OFF_STORAGE_ENV}.items())],
                "User": USER,
                "Mounts": mounts,
                "ReadOnly": True,
                "CapabilityDrop": ["ALL"],
            },
            "Resources": {
                "Limits": {
                    "NanoCPUs": round(float(limits["cpu_limit"]) * 1e9),
                    "MemoryBytes": int(limits["mem_limit"]),
                    "Pids": pids_limit,
                }
            },
            "RestartPolicy": {"Condition": "none"},
            "Networks": [{"Target": hub.get("network")}],
            "Placement": {"Constraints": list(ON_WORKERS["Constraints"])},
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }


def service_refusal(hub: hubfile.HubFile, storage: str, spec: Any, image_id_of) -> str | None:
    """Why the hub may not create this service, or None. `image_id_of(ref)`: the ID of the image
    Docker has under that reference now, or None."""
    if not isinstance(spec, dict):
        return "the service's definition is not a JSON object"
    unknown = _unknown(spec, SERVICE_KEYS, "")
    if unknown:
        return unknown
    name = hub.get("hub_name")
    prefix = names.user_container(name, "")
    service = spec.get("Name")
    if not isinstance(service, str) or not service.startswith(prefix):
        return f"a service's name must start with {prefix!r} (got {service!r})"
    user = service[len(prefix) :]
    entry = hubfile.user_entry(hub, user)
    if entry is None or entry["container"] != service:
        return f"{user!r} is not a user of hub {name}"
    labels = names.user_labels(name, user)
    if spec.get("Labels") != labels:
        return f"a service must carry exactly {user}'s labels: {labels}"
    if spec.get("Mode") != {"Replicated": {"Replicas": 1}}:
        return "a student's server is one replica (Mode: Replicated, Replicas: 1)"
    if spec.get("EndpointSpec") != {"Mode": "dnsrr"}:
        return "a student's server publishes no port and has no virtual IP (EndpointSpec: dnsrr)"
    task = spec.get("TaskTemplate")
    if not isinstance(task, dict):
        return "a service needs its TaskTemplate"
    unknown = _unknown(task, TASK_KEYS, "TaskTemplate.")
    if unknown:
        return unknown
    if task.get("Networks") != [{"Target": hub.get("network")}]:
        return f"a student's server joins {hub.get('network')} alone"
    if task.get("Placement") != ON_WORKERS:
        return f"a student's server runs on a worker, nowhere else (Placement: {ON_WORKERS})"
    if task.get("RestartPolicy") != {"Condition": "none"}:
        return "a student's server is never restarted by the swarm (RestartPolicy: none)"
    resources = task.get("Resources")
    if not isinstance(resources, dict) or set(resources) != {"Limits"}:
        return "a service's Resources hold its Limits and nothing else"
    limits = resources["Limits"]
    if not isinstance(limits, dict) or set(limits) != LIMIT_KEYS:
        return f"a service's limits are exactly {sorted(LIMIT_KEYS)}"
    for key in sorted(LIMIT_KEYS):
        if not _positive(limits[key]):
            return f"a student's server must have a limit {key} above 0"
    allowed, read_only = _mountable(hub, entry, storage)
    return _container_refusal(task.get("ContainerSpec"), entry, labels, allowed, read_only,
                              image_id_of)  # fmt: skip


def _container_refusal(container, entry, labels, allowed, read_only, image_id_of) -> str | None:
    if not isinstance(container, dict):
        return "a service needs its ContainerSpec"
    unknown = _unknown(container, CONTAINER_KEYS, "ContainerSpec.")
    if unknown:
        return unknown
    want = image_id_of(entry["image"])
    if want is None or container.get("Image") != want:
        return (
            f"the server runs {entry['image']} by its ID ({want}), not {container.get('Image')!r}"
        )
    if container.get("Labels") != labels:
        return "a service's container must carry exactly the service's labels"
    if container.get("User") != USER:
        return f"a student's server runs as {USER}, not {container.get('User')!r}"
    if container.get("ReadOnly") is not True:
        return "a student's server has a read-only root filesystem (ReadOnly: true)"
    if container.get("CapabilityDrop") != ["ALL"]:
        return "a student's server drops every capability (CapabilityDrop: [ALL])"
    for key in ("Args", "Env"):
        value = container.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"ContainerSpec.{key} is a list of strings"
    mounts = container.get("Mounts")
    if not isinstance(mounts, list):
        return "a student's server has its mounts (at least its tmpfs at /tmp)"
    tmpfs = [m for m in mounts if isinstance(m, dict) and m.get("Type") == "tmpfs"]
    if tmpfs != [{"Type": "tmpfs", "Target": TMP, "TmpfsOptions": TMPFS}]:
        return f"a student's server has exactly one tmpfs, at {TMP}: {TMPFS}"
    for mount in mounts:
        if mount in tmpfs:
            continue
        if not isinstance(mount, dict):
            return "a mount must be an object"
        unknown = _unknown(mount, MOUNT_KEYS, "a mount's ")
        if unknown:
            return unknown
        if mount.get("Type") != "bind" or mount.get("Source") not in allowed:
            return f"mounting {mount.get('Source')!r} is not allowed"
        if not _in_home(mount.get("Target")) or not isinstance(mount.get("ReadOnly", False), bool):
            return f"a mount at {mount.get('Target')!r} is not allowed"
        if mount["Source"] in read_only and mount.get("ReadOnly") is not True:
            return f"{mount['Source']} is read-only but for admins"
    return None


def _mountable(hub: hubfile.HubFile, entry: dict, storage: str) -> tuple[set[str], set[str]]:
    """The folders this user's server may bind: their home, the hub's group folders (the sign-in
    provider may give more groups than the roster), SHARED_DATA, and for an admin who sees
    users' homes, those; and of them, those it may bind read-only only (SHARED_DATA but for
    admins)."""
    name = hub.get("hub_name")
    found = {folder(storage, name, entry["volume"])}
    found |= {folder(storage, name, group["volume"]) for group in hub.get("groups").values()}
    read_only = set()
    shared = hub.get("shared_data")
    if shared:
        where = hubfile.swarm_source(storage, name, shared)
        found.add(where)
        read_only = set() if entry["admin"] else {where}
    if entry["admin"] and hub.get("admin_sees_users"):
        found |= {folder(storage, name, other["volume"]) for other in hub.get("users").values()}
    return found, read_only


# The allowlist's helpers, which the socket proxy's container rules use too.


def _unknown(found: dict, allowed: frozenset[str], where: str) -> str | None:
    extra = sorted(str(key) for key in found if key not in allowed)
    return f"{where}{', '.join(extra)} is not allowed" if extra else None


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _in_home(path) -> bool:
    """A path in the user's home (where every folder of a student's server goes), without `..`."""
    if not isinstance(path, str):
        return False
    inside = path == hubfile.HOME or path.startswith(hubfile.HOME + "/")
    return inside and ".." not in path.split("/")
