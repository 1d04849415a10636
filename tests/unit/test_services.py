"""A student's server as a swarm service (hub/classhub_hub/services.py), and the socket proxy's
allowlist for it: the definition `user_service` writes passes, and anything else a taken-over hub
could ask for is refused with its reason. tests/e2e/test_swarm.py sends them through the real
proxy to a real swarm, and inspects what runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classhub import hubfile
from classhub_hub.dockerproxy import Policy
from classhub_hub.services import TMPFS, folder, service_refusal, user_service

GOLDEN = json.loads((Path(__file__).parent / "golden" / "hub.json").read_text())
HUB = hubfile.HubFile(GOLDEN, "hub.json")  # hub math101
STORAGE = "/srv/classhub-shared"
IMAGE_ID = "sha256:" + "ab" * 32
IMAGES = {"classhub-notebook:math101": IMAGE_ID}


def image_id_of(ref: str) -> str | None:
    return IMAGES.get(ref)


def good(user: str = "alice") -> dict:
    env = {"JUPYTERHUB_API_TOKEN": "t0ken", "JUPYTERHUB_USER": user}
    return user_service(HUB, user, IMAGE_ID, STORAGE, env, ["jupyterhub-singleuser"], 1024)


def refused(spec) -> str | None:
    return service_refusal(HUB, STORAGE, spec, image_id_of)


def test_the_definition_the_spawner_sends_passes_and_is_hardened():
    spec = good()
    assert refused(spec) is None
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert container["CapabilityDrop"] == ["ALL"] and container["ReadOnly"] is True
    assert container["User"] == "1000:100" and container["Image"] == IMAGE_ID
    assert container["Labels"] == spec["Labels"] == {
        "classhub.hub": "math101", "classhub.kind": "user", "classhub.user": "alice"}  # fmt: skip
    assert spec["TaskTemplate"]["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000, "MemoryBytes": 1024**3, "Pids": 1024}  # fmt: skip
    assert spec["EndpointSpec"] == {"Mode": "dnsrr"}
    assert spec["TaskTemplate"]["RestartPolicy"] == {"Condition": "none"}
    mounts = {m["Target"]: m for m in container["Mounts"]}
    assert mounts["/home/jovyan"]["Source"] == folder(STORAGE, "math101", "math101-user-alice")
    assert mounts["/home/jovyan/team-1"]["Source"] == f"{STORAGE}/math101/math101-group-team-1"
    assert mounts["/tmp"] == {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": TMPFS}
    assert refused(good("teacher")) is None  # an admin, with every group


def _set(spec: dict, dotted: str, value) -> dict:
    spec = copy.deepcopy(spec)
    *path, last = dotted.split(".")
    place = spec
    for key in path:
        place = place[int(key)] if isinstance(place, list) else place[key]
    if value is _DROP:
        del place[last]
    else:
        place[last] = value
    return spec


_DROP = object()
_HOME = {"Type": "bind", "Source": f"{STORAGE}/math101/math101-user-alice",
         "Target": "/home/jovyan", "ReadOnly": False}  # fmt: skip
_TMP = {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": TMPFS}


@pytest.mark.parametrize(
    ("dotted", "value", "reason"),
    [
        ("Name", "math101-user-mallory", "'mallory' is not a user of hub math101"),
        ("Name", "other-user-alice", "a service's name must start with 'math101-user-'"),
        ("Labels", {"classhub.hub": "math101"}, "exactly alice's labels"),
        ("Mode", {"Replicated": {"Replicas": 50}}, "one replica"),
        ("Mode", {"Global": {}}, "one replica"),
        ("EndpointSpec", {"Mode": "dnsrr", "Ports": [{"TargetPort": 8888,
                                                     "PublishedPort": 80}]}, "publishes no port"),
        ("EndpointSpec", {"Mode": "vip"}, "EndpointSpec: dnsrr"),
        ("UpdateConfig", {}, "UpdateConfig is not allowed"),
        ("TaskTemplate.Networks", [{"Target": "math101-net"}, {"Target": "ingress"}], "alone"),
        ("TaskTemplate.Networks", [{"Target": "math101-socket"}], "joins math101-net alone"),
        ("TaskTemplate.Placement", {"Constraints": ["node.role==manager"]},
         "runs on a worker, nowhere else"),
        ("TaskTemplate.Placement", {"Constraints": ["node.role==worker", "node.hostname==w1"]},
         "runs on a worker, nowhere else"),
        ("TaskTemplate.LogDriver", {"Name": "syslog"}, "TaskTemplate.LogDriver is not allowed"),
        ("TaskTemplate.RestartPolicy", {"Condition": "any"}, "never restarted by the swarm"),
        ("TaskTemplate.Resources.Limits.Pids", 0, "limit Pids above 0"),
        ("TaskTemplate.Resources.Limits.MemoryBytes", _DROP, "limits are exactly"),
        ("TaskTemplate.Resources.Reservations", {"MemoryBytes": 1}, "Limits and nothing else"),
        ("TaskTemplate.ContainerSpec.CapabilityAdd", ["SYS_ADMIN"],
         "ContainerSpec.CapabilityAdd is not allowed"),
        ("TaskTemplate.ContainerSpec.CapabilityDrop", ["NET_RAW"], "drops every capability"),
        ("TaskTemplate.ContainerSpec.Privileges", {"SELinuxContext": {"Disable": True}},
         "ContainerSpec.Privileges is not allowed"),
        ("TaskTemplate.ContainerSpec.Secrets", [{"SecretName": "x"}], "Secrets is not allowed"),
        ("TaskTemplate.ContainerSpec.Configs", [{"ConfigName": "x"}], "Configs is not allowed"),
        ("TaskTemplate.ContainerSpec.Sysctls", {"net.ipv4.ip_forward": "1"}, "not allowed"),
        ("TaskTemplate.ContainerSpec.Hosts", ["1.2.3.4 math101"], "Hosts is not allowed"),
        ("TaskTemplate.ContainerSpec.Command", ["sh"], "Command is not allowed"),
        ("TaskTemplate.ContainerSpec.User", "0", "runs as 1000:100, not '0'"),
        ("TaskTemplate.ContainerSpec.ReadOnly", False, "read-only root filesystem"),
        ("TaskTemplate.ContainerSpec.Image", "sha256:" + "cd" * 32, "by its ID"),
        ("TaskTemplate.ContainerSpec.Image", "classhub-notebook:math101", "by its ID"),
        ("TaskTemplate.ContainerSpec.Labels", {}, "exactly the service's labels"),
        ("TaskTemplate.ContainerSpec.Env", "A=1", "Env is a list of strings"),
        ("TaskTemplate.ContainerSpec.Mounts", [_HOME], "exactly one tmpfs"),
        ("TaskTemplate.ContainerSpec.Mounts", [_HOME, _TMP, dict(_TMP, Target="/dev/shm")],
         "exactly one tmpfs"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, Source="/")], "mounting '/' is not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, Source="/var/run/docker.sock")], "is not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, Source=f"{STORAGE}/math101/math101-user-bob")], "not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, Source=f"{STORAGE}/math101/math101-user-alice/../x")], "not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, Type="volume", Source="math101-user-alice")], "not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, Target="/etc")], "a mount at '/etc' is not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_TMP, dict(_HOME, BindOptions={"Propagation": "rshared"})], "BindOptions is not allowed"),
        ("TaskTemplate.ContainerSpec.Mounts",
         [_HOME, dict(_TMP, TmpfsOptions={"SizeBytes": 1 << 40, "Mode": 0o1777})],
         "exactly one tmpfs"),
    ],
)  # fmt: skip
def test_every_other_definition_is_refused_with_its_reason(dotted: str, value, reason: str):
    said = refused(_set(good(), dotted, value))
    assert said is not None and reason in said, said


def test_an_admin_who_sees_users_may_bind_their_homes_and_a_student_may_not():
    seeing = hubfile.HubFile({**GOLDEN, "admin_sees_users": True}, "hub.json")
    other = dict(
        _HOME, Source=f"{STORAGE}/math101/math101-user-bob", Target="/home/jovyan/users/bob"
    )
    admin = good("teacher")
    admin["TaskTemplate"]["ContainerSpec"]["Mounts"].append(other)
    assert service_refusal(seeing, STORAGE, admin, image_id_of) is None
    student = good("alice")
    student["TaskTemplate"]["ContainerSpec"]["Mounts"].append(other)
    assert "not allowed" in service_refusal(seeing, STORAGE, student, image_id_of)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
_PLACES = ["", "TaskTemplate", "TaskTemplate.ContainerSpec", "TaskTemplate.Resources",
           "TaskTemplate.Resources.Limits", "TaskTemplate.ContainerSpec.Mounts.0",
           "TaskTemplate.ContainerSpec.Mounts.2", "EndpointSpec", "Mode", "Mode.Replicated"]  # fmt: skip


@given(st.sampled_from(_PLACES), st.text(min_size=1, max_size=12), _JSON)
def test_a_key_added_anywhere_or_a_value_changed_is_refused(place: str, key: str, value):
    """Whatever a taken-over hub adds to the definition, at any level, or puts in place of a
    value, never passes unless it is what user_service writes."""
    spec = good()
    target = spec
    for part in place.split(".") if place else []:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if key in target and target[key] == value:
        return
    if (
        key in ("Args", "Env")
        and isinstance(value, list)
        and all(isinstance(v, str) for v in value)
    ):
        return  # the spawner's command and environment: any strings
    if key == "ReadOnly" and value is True and place.endswith("Mounts.0"):
        return  # a home mounted read-only takes nothing from anyone
    changed = key in target
    target[key] = value
    said = refused(spec)
    assert said is not None, (place, key, value, changed)


def test_the_proxy_allows_services_only_on_a_swarm_and_only_this_hubs():
    body = json.dumps(good()).encode()
    on_one_host = Policy.of(HUB)
    swarm = Policy.of(HUB, STORAGE)
    labels = {"classhub.hub": "math101", "classhub.kind": "user", "classhub.user": "alice"}

    def ask(policy, method, target, data=b"", service_labels=labels):
        return policy.refusal(method, target, data, lambda c: None,
                              lambda s: service_labels, image_id_of)  # fmt: skip

    assert "not a call the hub needs" in ask(on_one_host, "POST", "/v1.41/services/create", body)
    assert ask(swarm, "POST", "/v1.41/services/create", body) is None
    assert ask(swarm, "GET", "/v1.41/services/math101-user-alice") is None
    assert ask(swarm, "DELETE", "/v1.41/services/abc123") is None
    assert ask(swarm, "GET", "/v1.41/services/x", service_labels=None) is None  # Docker's 404
    other = {"classhub.hub": "physics", "classhub.kind": "user"}
    assert "not a student's server of hub math101" in ask(
        swarm, "DELETE", "/v1.41/services/x", service_labels=other)  # fmt: skip
    tasks = {"service": ["math101-user-alice"], "desired-state": ["running"]}
    assert ask(swarm, "GET", "/v1.41/tasks?filters=" + quote(json.dumps(tasks))) is None
    for filters in ({}, {"service": ["physics-user-bob"]}, {"node": ["x"]},
                    {"service": ["math101-user-alice", "math101-user-bob"]},
                    {"service": ["math101-user-alice"], "label": ["x"]}):  # fmt: skip
        said = ask(swarm, "GET", "/v1.41/tasks?filters=" + quote(json.dumps(filters)))
        assert said is not None and "tasks are listed only of one service" in said, filters
    assert "tasks are listed only" in ask(swarm, "GET", "/v1.41/tasks")
    for method, path in [
        ("POST", "/v1.41/services/math101-user-alice/update"),
        ("GET", "/v1.41/services"),
        ("GET", "/v1.41/nodes"),
        ("POST", "/v1.41/nodes/abc/update"),
        ("GET", "/v1.41/swarm"),
        ("POST", "/v1.41/swarm/leave"),
        ("GET", "/v1.41/secrets"),
        ("POST", "/v1.41/secrets/create"),
        ("POST", "/v1.41/configs/create"),
        ("GET", "/v1.41/tasks/abc"),
        ("GET", "/v1.41/services/math101-user-alice/logs"),
    ]:
        said = ask(swarm, method, path)
        assert said is not None and "is not a call the hub needs" in said, path
    bad = json.dumps(_set(good(), "TaskTemplate.ContainerSpec.CapabilityAdd", ["ALL"])).encode()
    assert "CapabilityAdd" in ask(swarm, "POST", "/v1.41/services/create", bad)


def test_shared_data_is_read_only_but_for_admins():
    shared = hubfile.HubFile({**GOLDEN, "shared_data": "/srv/course-data"}, "hub.json")
    student = user_service(shared, "alice", IMAGE_ID, STORAGE, {}, [], 1024)
    (mount,) = [m for m in student["TaskTemplate"]["ContainerSpec"]["Mounts"]
                if m.get("Source") == "/srv/course-data"]  # fmt: skip
    assert mount["ReadOnly"] is True
    assert service_refusal(shared, STORAGE, student, image_id_of) is None
    mount["ReadOnly"] = False
    said = service_refusal(shared, STORAGE, student, image_id_of)
    assert said == "/srv/course-data is read-only but for admins"
    admin = user_service(shared, "teacher", IMAGE_ID, STORAGE, {}, [], 1024)
    assert service_refusal(shared, STORAGE, admin, image_id_of) is None
