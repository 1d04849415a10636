"""The Docker socket proxy's policy: what the hub may ask of Docker (the e2e tests run it for real).

Container definitions are built with docker-py's own `create_host_config` and
`create_container_config`, the code DockerSpawner's requests go through, so the JSON checked here
is the JSON the proxy sees.
"""

from __future__ import annotations

import json

import docker
import pytest

from classhub_hub.config import HARDENING
from classhub_hub.dockerproxy import Policy

HUB = "math"
IMAGE = "classhub-notebook:latest"
POLICY = Policy(HUB, "math-net", frozenset({IMAGE}))
API = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
OURS = {"classhub.hub": HUB, "classhub.kind": "user"}


def spec(image: str = IMAGE, labels: dict | None = None, **host) -> dict:
    """A user container's definition as DockerSpawner makes it; `host` overrides host config."""
    host_kwargs = {
        "auto_remove": True,
        "binds": ["math-user-ann:/home/jovyan:rw", "math-group-team-1:/home/jovyan/team-1:rw"],
        "mem_limit": 1024**3,
        "cpu_period": 100_000,
        "cpu_quota": 100_000,
        "network_mode": "math-net",
        "pids_limit": 1024,
        **HARDENING,
    }
    host_kwargs.update(host)
    host_kwargs = {k: v for k, v in host_kwargs.items() if v is not None}
    config = API.create_container_config(
        image=image,
        command=["start-notebook"],
        ports={"8888/tcp": None},
        labels=OURS if labels is None else labels,
        host_config=API.create_host_config(**host_kwargs),
    )
    return json.loads(json.dumps(config))


def create(body: dict, name: str = "math-user-ann") -> str | None:
    return POLICY.refusal(
        "POST", f"/v1.41/containers/create?name={name}", json.dumps(body).encode(), _no_lookup
    )


def _no_lookup(_: str):
    raise AssertionError("creating a container looks nothing up")


def test_dockerspawners_container_passes():
    assert create(spec()) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (spec(privileged=True), "privileged"),
        (spec(cap_add=["SYS_ADMIN"]), "added capabilities"),
        (spec(cap_drop=["NET_RAW"]), "drop all capabilities"),
        (spec(security_opt=[]), "no-new-privileges"),
        (spec(security_opt=["no-new-privileges:true", "seccomp=unconfined"]), "security options"),
        (spec(pids_limit=None), "pids limit"),
        (spec(mem_limit=None), "memory limit"),
        (spec(network_mode="host"), "joins math-net"),
        (spec(network_mode="other-net"), "joins math-net"),
        (spec(pid_mode="host"), "PidMode"),
        (spec(ipc_mode="host"), "IpcMode"),
        (spec(binds=["/:/host:rw"]), "mounting '/'"),
        (spec(binds=["/var/run/docker.sock:/var/run/docker.sock"]), "docker.sock"),
        (spec(binds=["other-user-ann:/home/jovyan"]), "other-user-ann"),
        (spec(devices=["/dev/sda:/dev/sda:rwm"]), "Devices"),
        (spec(port_bindings={8888: ("0.0.0.0", 9999)}), "PortBindings"),
        (spec(image="classhub-hub:latest"), "not an image of this hub"),
        (spec(labels={}), "labels"),
        (spec(labels={"classhub.hub": "other", "classhub.kind": "user"}), "labels"),
        ({**spec(), "User": "root"}, "jovyan"),
        ({**spec(), "User": "0"}, "jovyan"),
    ],
)
def test_a_container_made_otherwise_is_refused(body, expected):
    reason = create(body)
    assert reason is not None and expected in reason


@pytest.mark.parametrize("name", ["other-user-ann", "math-ann", "math-user-", "math"])
def test_only_this_hubs_user_container_names(name):
    assert "name must start with 'math-user-'" in create(spec(), name=name)


def test_a_body_that_is_not_json_is_refused():
    reason = POLICY.refusal("POST", "/containers/create?name=math-user-a", b"{", _no_lookup)
    assert "not JSON" in reason


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/containers/json"),
        ("GET", "/info"),
        ("POST", "/containers/math-user-ann/exec"),
        ("POST", "/containers/math-user-ann/kill"),
        ("GET", "/containers/math-user-ann/logs"),
        ("POST", "/containers/math-user-ann/attach"),
        ("POST", "/images/create"),
        ("POST", "/build"),
        ("GET", "/volumes"),
        ("DELETE", "/volumes/math-user-ann"),
        ("POST", "/networks/create"),
        ("POST", "/networks/math-net/connect"),
        ("GET", "/events"),
        ("POST", "/swarm/init"),
        ("PUT", "/containers/math-user-ann/archive"),
        ("GET", "/containers/math-user-ann/json/../../info"),
    ],
)
def test_calls_the_hub_does_not_need_are_refused(method, path):
    reason = POLICY.refusal(method, f"/v1.41{path}", b"", lambda _: OURS)
    assert reason is not None and "not a call the hub needs" in reason


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("GET", "/version"),
        ("GET", "/v1.41/version"),
        ("GET", "/v1.41/containers/math-user-ann/json"),
        ("POST", "/v1.41/containers/0123abcd/start"),
        ("POST", "/v1.41/containers/0123abcd/stop?t=10"),
        ("DELETE", "/v1.41/containers/0123abcd?v=True"),
        ("GET", "/v1.41/images/classhub-notebook:latest/json"),
        ("GET", "/v1.41/images/classhub-notebook%3Alatest/json"),
    ],
)
def test_dockerspawners_calls_on_its_own_containers_pass(method, path):
    assert POLICY.refusal(method, path, b"", lambda _: OURS) is None


@pytest.mark.parametrize(
    "labels",
    [
        {},
        {"classhub.hub": "other", "classhub.kind": "user"},
        {"classhub.hub": HUB, "classhub.kind": "hub"},
    ],
)
def test_containers_that_are_not_this_hubs_user_containers_are_untouchable(labels):
    for method, path in [
        ("GET", "/containers/x/json"),
        ("POST", "/containers/x/stop"),
        ("DELETE", "/containers/x"),
    ]:
        assert "is not a user container of hub math" in POLICY.refusal(
            method, path, b"", lambda _, found=labels: found
        )


def test_a_missing_container_passes_through_so_docker_says_404():
    assert POLICY.refusal("GET", "/containers/math-user-zed/json", b"", lambda _: None) is None


def test_other_images_cannot_be_inspected():
    reason = POLICY.refusal("GET", "/images/classhub-hub:latest/json", b"", _no_lookup)
    assert "not an image of this hub" in reason


def test_shared_host_paths_only_when_named():
    body = spec(binds=["math-user-ann:/home/jovyan:rw", "/srv/course:/home/jovyan/course:ro"])
    assert "mounting '/srv/course'" in create(body)
    shared = Policy(HUB, "math-net", frozenset({IMAGE}), frozenset({"/srv/course"}))
    raw = json.dumps(body).encode()
    assert shared.refusal("POST", "/containers/create?name=math-user-ann", raw, _no_lookup) is None


def volume_body(**kwargs) -> bytes:
    """The body docker-py sends for `create_volume(**kwargs)`, as DockerSpawner's call makes it."""
    sent = {}

    class Capture(docker.APIClient):
        def _post_json(self, url, data, **_):
            sent.update(data)

            class Answer:
                status_code = 201

                def json(self):
                    return {}

                def raise_for_status(self):
                    pass

            return Answer()

    Capture(base_url="unix:///nonexistent.sock", version="1.41").create_volume(**kwargs)
    return json.dumps(sent).encode()


def test_a_newcomers_home_volume_may_be_made():
    body = volume_body(name="math-user-jane.doe", labels=OURS)
    assert POLICY.refusal("POST", "/v1.41/volumes/create", body, lambda _: None) is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "math-group-team-1", "labels": OURS}, "a volume's name must be"),
        ({"name": "other-user-ann", "labels": OURS}, "a volume's name must be"),
        ({"name": "math-user-", "labels": OURS}, "a volume's name must be"),
        ({"name": "math-user-Ann", "labels": OURS}, "a volume's name must be"),
        ({"name": "math-user-ann"}, "this hub's user labels"),
        ({"name": "math-user-ann", "labels": {**OURS, "x": "1"}}, "this hub's user labels"),
        ({"name": "math-user-ann", "labels": OURS, "driver": "nfs"}, "driver 'nfs'"),
        (
            {"name": "math-user-ann", "labels": OURS,
             "driver_opts": {"type": "none", "o": "bind", "device": "/etc"}},
            "driver options",
        ),
    ],
)  # fmt: skip
def test_any_other_volume_is_refused(kwargs, expected):
    reason = POLICY.refusal("POST", "/v1.41/volumes/create", volume_body(**kwargs), lambda _: None)
    assert reason is not None and expected in reason
