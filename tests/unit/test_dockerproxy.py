"""The Docker socket proxy's policy: what the hub may ask of Docker (the e2e tests run it for real).

Container definitions are built with docker-py's own `create_host_config` and
`create_container_config`, the code DockerSpawner's requests go through, so the JSON checked here
is the JSON the proxy sees.
"""

from __future__ import annotations

import json

import docker
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from classhub_hub.config import HARDENING
from classhub_hub.dockerproxy import CONFIG_KEYS, HOST_KEYS, MOUNT_KEYS, Policy

HUB = "math"
IMAGE = "classhub-notebook:latest"
POLICY = Policy(HUB, "math-net", frozenset({IMAGE}))
API = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
OURS = {"classhub.hub": HUB, "classhub.kind": "user"}


def spec(image: str = IMAGE, labels: dict | None = None, **host) -> dict:
    """A user container's definition as DockerSpawner makes it; `host` overrides host config."""
    host_kwargs = {
        "auto_remove": True,
        "links": {},  # DockerSpawner's own links and mounts: none
        "mounts": [],
        "binds": ["math-user-ann:/home/jovyan:rw", "math-group-team-1:/home/jovyan/team-1:rw"],
        "mem_limit": 1024**3,
        "cpu_period": 100_000,
        "cpu_quota": 100_000,
        "network_mode": "math-net",
        "pids_limit": 1024,
        "memswap_limit": 1024**3,  # no swap beyond the memory limit, as config.py sets it
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
        (spec(privileged=True), "HostConfig.Privileged is not allowed"),
        (spec(cap_add=["SYS_ADMIN"]), "HostConfig.CapAdd is not allowed"),
        (spec(cap_drop=["NET_RAW"]), "drop all capabilities"),
        (spec(security_opt=[]), "no-new-privileges"),
        (spec(security_opt=["no-new-privileges:true", "seccomp=unconfined"]), "nothing else"),
        (spec(security_opt=["no-new-privileges:false"]), "nothing else"),
        (spec(pids_limit=None), "limit PidsLimit"),
        (spec(mem_limit=None, memswap_limit=None), "limit Memory"),
        (spec(cpu_quota=None), "limit CpuQuota"),
        (spec(memswap_limit=-1), "no swap"),
        (spec(read_only=False), "root filesystem is read-only"),
        (spec(tmpfs={"/tmp": "rw,exec,size=1g"}), "exactly this tmpfs"),
        (
            spec(tmpfs={"/tmp": "rw,nosuid,nodev,size=1g,mode=1777", "/etc": ""}),
            "exactly this tmpfs",
        ),
        (spec(network_mode="host"), "joins math-net"),
        (spec(network_mode="other-net"), "joins math-net"),
        (spec(pid_mode="host"), "PidMode"),
        (spec(ipc_mode="host"), "IpcMode"),
        (spec(binds=["/:/host:rw"]), "'/:/host:rw' is not allowed"),
        (spec(binds=["/var/run/docker.sock:/var/run/docker.sock"]), "docker.sock"),
        (spec(binds=["other-user-ann:/home/jovyan"]), "other-user-ann"),
        (spec(binds=["math-user-ann:/opt/notebook:rw"]), "/opt/notebook"),
        (spec(binds=["math-user-ann:/home/jovyan/../../etc:rw"]), "/etc"),
        (spec(binds=["math-user-ann:/home/jovyan:rw,rshared"]), "rshared"),
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
    assert "'/srv/course:/home/jovyan/course:ro' is not allowed" in create(body)
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


# Issue "Security" 3: a hub taken over made a user container whose volume's driver options bound
# a host folder; the proxy had looked at a mount's Type and Source only. Each of these reaches the
# host or changes what a mount means.
HOST_FOLDER = {"DriverConfig": {"Name": "local",
                                "Options": {"type": "none", "o": "bind", "device": "/"}}}  # fmt: skip
MOUNT = {"Type": "volume", "Source": "math-user-ann", "Target": "/home/jovyan/x", "ReadOnly": False}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"Mounts": [{**MOUNT, "VolumeOptions": HOST_FOLDER}]}, "VolumeOptions"),
        ({"Mounts": [{**MOUNT, "VolumeOptions": {}}]}, "VolumeOptions"),
        ({"Mounts": [{**MOUNT, "Type": "bind", "BindOptions": {"Propagation": "rshared"}}]},
         "BindOptions"),
        ({"Mounts": [{**MOUNT, "Type": "tmpfs", "TmpfsOptions": {"Mode": 0o777}}]},
         "TmpfsOptions"),
        ({"Mounts": [{**MOUNT, "Type": "tmpfs"}]}, "not allowed"),
        ({"Mounts": [{**MOUNT, "Target": "/etc"}]}, "'/etc' is not allowed"),
        ({"Mounts": [{**MOUNT, "Consistency": "delegated"}]}, "Consistency"),
        ({"MaskedPaths": []}, "HostConfig.MaskedPaths"),
        ({"ReadonlyPaths": []}, "HostConfig.ReadonlyPaths"),
        ({"CgroupParent": "/"}, "HostConfig.CgroupParent"),
        ({"Cgroup": "host"}, "HostConfig.Cgroup"),
        ({"VolumeDriver": "local"}, "HostConfig.VolumeDriver"),
        ({"Tmpfs": {"/home/jovyan": "exec"}}, "exactly this tmpfs"),
        ({"Runtime": "runc"}, "HostConfig.Runtime"),
        ({"Isolation": "hyperv"}, "HostConfig.Isolation"),
        ({"OomKillDisable": True}, "HostConfig.OomKillDisable"),
        ({"Ulimits": [{"Name": "nofile", "Soft": 10**7, "Hard": 10**7}]}, "HostConfig.Ulimits"),
        ({"DeviceCgroupRules": ["a *:* rwm"]}, "HostConfig.DeviceCgroupRules"),
        ({"SomethingDockerAddsNext": None}, "HostConfig.SomethingDockerAddsNext"),
        ({"Links": ["math-db:db"]}, "HostConfig.Links"),
    ],
)  # fmt: skip
def test_host_config_reaching_past_a_plain_mount_is_refused(extra, expected):
    body = spec()
    body["HostConfig"].update(extra)
    reason = create(body)
    assert reason is not None and expected in reason, reason


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"Runtime": "runsc"}, "Runtime"),
        ({"MacAddress": "02:42:ac:11:00:02"}, "MacAddress"),
        ({"NetworkingConfig": {"EndpointsConfig": {"math-socket": {}}}}, "NetworkingConfig"),
        ({"Entrypoint": ["sh", "-c", "id"]}, "Entrypoint"),
        ({"Volumes": {"/opt/notebook": {}}}, "/opt/notebook"),
        ({"Platform": "linux"}, "Platform"),
        ({"HostConfig": None}, "HostConfig"),
    ],
)
def test_container_config_past_dockerspawners_is_refused(extra, expected):
    reason = create({**spec(), **extra})
    assert reason is not None and expected in reason, reason


def test_a_named_mount_of_this_hubs_volume_in_the_home_passes():
    body = spec()
    body["HostConfig"]["Mounts"] = [MOUNT]
    assert create(body) is None


# Property: whatever key the definition gains beyond what DockerSpawner sends, at any level and
# with any value (empty ones too), the proxy refuses it.
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(key=st.text(min_size=1, max_size=30), value=_values)
def test_any_unknown_host_config_key_is_refused(key, value):
    assume(key not in HOST_KEYS)
    body = spec()
    body["HostConfig"][key] = value
    assert create(body) is not None


@given(key=st.text(min_size=1, max_size=30), value=_values)
def test_any_unknown_container_key_is_refused(key, value):
    assume(key not in CONFIG_KEYS)
    assert create({**spec(), key: value}) is not None


@given(key=st.text(min_size=1, max_size=30), value=_values)
def test_any_unknown_mount_key_is_refused(key, value):
    assume(key not in MOUNT_KEYS)
    body = spec()
    body["HostConfig"]["Mounts"] = [{**MOUNT, key: value}]
    assert create(body) is not None


@given(
    binds=st.lists(st.text(alphabet="/:.abcdehjmnorstuvwxyz-", min_size=1, max_size=40), max_size=3)
)
def test_a_bind_passes_only_as_this_hubs_volume_in_the_home(binds):
    """Binds made of the characters that matter: one passes only if each is VOLUME:PATH[:MODE]
    with this hub's volume, a path in the home without '..', and mode rw or ro."""
    body = spec(binds=binds)
    ok = all(
        (source := b.split(":")[0]).startswith(("math-user-", "math-group-"))
        and len(parts := b.split(":")) in (2, 3)
        and (parts[1] == "/home/jovyan" or parts[1].startswith("/home/jovyan/"))
        and ".." not in parts[1].split("/")
        and (len(parts) == 2 or parts[2] in ("", "rw", "ro"))
        and source
        for b in binds
    )
    assert (create(body) is None) == ok, (binds, create(body))


def test_a_newcomers_home_passes_unchanged_without_a_disk_store():
    body = json.dumps({"Name": f"{HUB}-user-jane", "Labels": {**OURS}}).encode()
    assert POLICY.prepared("/v1.41/volumes/create", body) == body
    # With a store the proxy adds the options itself; the hub may never send any.
    asked = {"Name": f"{HUB}-user-jane", "Labels": OURS, "DriverOpts": {"o": "bind"}}
    assert "driver options are not allowed" in POLICY.volume_refusal(asked)


def test_a_volumes_store_is_read_back_from_its_own_options():
    from classhub import hubfile

    options = hubfile.store_volume_options("/srv/disks/", "math-user-ann")
    assert options == {"type": "none", "o": "bind", "device": "/srv/disks/math-user-ann"}
    assert hubfile.volume_store("math-user-ann", options) == "/srv/disks"
    assert hubfile.volume_store("math-user-bob", options) is None  # another volume's folder
    assert hubfile.volume_store("math-user-ann", {}) is None  # Docker's own storage


def test_the_policy_is_what_the_rendered_hub_file_allows():
    """The proxy reads its allowances from the hub file the host renders (one channel)."""
    from pathlib import Path

    from classhub import hubfile

    hub = hubfile.load(Path(__file__).parent / "golden" / "hub.json")
    policy = Policy.of(hub)
    assert (policy.hub, policy.network) == ("math101", "math101-net")
    assert policy.images == {"classhub-gpu:latest", "classhub-notebook:math101"}
    assert (policy.shared, policy.disk_store) == (frozenset(), "")


def test_with_the_hub_file_a_container_is_a_users_own_with_their_image():
    """The hub file's per-user container name and image: the proxy reads both."""
    from pathlib import Path

    from classhub import hubfile

    hub = hubfile.load(Path(__file__).parent / "golden" / "hub.json")
    policy = Policy.of(hub)
    alice = hub.get("users")["alice"]
    labels = {"classhub.hub": "math101", "classhub.kind": "user"}
    host = {"network_mode": "math101-net", "binds": [f"{alice['volume']}:/home/jovyan:rw"]}

    def make(name: str, image: str) -> str | None:
        body = json.dumps(spec(image=image, labels=labels, **host)).encode()
        return policy.refusal("POST", f"/v1.41/containers/create?name={name}", body, _no_lookup)

    assert make(alice["container"], alice["image"]) is None
    assert "is not a user of hub math101" in make("math101-user-mallory", alice["image"])
    other = next(i for i in policy.images if i != alice["image"])
    assert f"alice's server runs {alice['image']}" in make(alice["container"], other)


# --- the list of servers for the firewall ---------------------------------------------------------


def test_the_proxy_lists_this_hubs_running_servers_and_their_addresses_for_the_firewall(tmp_path):
    from urllib.parse import parse_qs, urlsplit

    from classhub_hub.dockerproxy import Addresses

    asked = []
    listing = [
        {"Labels": {"classhub.user": "ann"},
         "NetworkSettings": {"Networks": {"math-net": {"IPAddress": "172.30.0.5"}}}},
        {"Labels": {"classhub.user": "bob"},  # starting: no address yet
         "NetworkSettings": {"Networks": {"math-net": {"IPAddress": ""}}}},
        {"Labels": {"classhub.user": "cid"},  # on another network only
         "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.9"}}}},
    ]  # fmt: skip

    def docker_call(method, target, body, headers):
        asked.append((method, target))
        return 200, [], json.dumps(listing).encode()

    addresses = Addresses(docker_call, lambda: POLICY, str(tmp_path))
    addresses.refresh()
    written = tmp_path / "addresses.json"
    assert json.loads(written.read_text())["servers"] == {"172.30.0.5": "ann"}
    method, target = asked[0]
    filters = json.loads(parse_qs(urlsplit(target).query)["filters"][0])
    assert method == "GET" and urlsplit(target).path == "/containers/json"
    assert filters == {"label": [f"classhub.hub={HUB}", "classhub.kind=user"]}  # this hub's only
    stamp = written.stat().st_mtime_ns
    addresses.refresh()  # nothing changed: not written again
    assert written.stat().st_mtime_ns == stamp
    listing[1]["NetworkSettings"]["Networks"]["math-net"]["IPAddress"] = "172.30.0.6"
    addresses.refresh()
    assert json.loads(written.read_text())["servers"] == {"172.30.0.5": "ann", "172.30.0.6": "bob"}


def test_on_a_swarm_the_proxy_lists_its_students_tasks_by_address_on_the_overlay(tmp_path):
    """Every node's guard pairs these with the servers' addresses on its docker_gwbridge."""
    from classhub import names
    from classhub_hub.dockerproxy import Addresses

    def task(labels, network, *addresses):
        attached = [{"Network": {"Spec": {"Name": network}}, "Addresses": list(addresses)}]
        return {"Spec": {"ContainerSpec": {"Labels": labels}}, "NetworksAttachments": attached}

    listing = [
        task(names.user_labels(HUB, "ann"), "math-net", "10.0.1.5/24"),
        task(names.user_labels(HUB, "bob"), "math-net"),  # placed: no address yet
        task(names.user_labels("other", "cid"), "other-net", "10.0.2.5/24"),  # another hub's
        task(names.labels(HUB, "firewall"), "math-net", "10.0.1.3/24"),  # not a server
        task(names.user_labels(HUB, "dan"), "math-net", "10.0.1.7/24"),
    ]
    asked = []

    def docker_call(method, target, body, headers):
        asked.append((method, target))
        return 200, [], json.dumps(listing).encode()

    addresses = Addresses(docker_call, lambda: POLICY, str(tmp_path), swarm=True)
    addresses.refresh()
    written = json.loads((tmp_path / "addresses.json").read_text())["servers"]
    assert written == {"10.0.1.5": "ann", "10.0.1.7": "dan"}
    assert asked[0][1].startswith("/tasks?filters=")  # the running tasks, on every node
    # A folder it cannot write to (the storage gone): said, and the proxy goes on serving.
    Addresses(docker_call, lambda: POLICY, str(tmp_path / "gone"), swarm=True).refresh()


def test_on_a_swarm_the_hub_file_and_the_exams_are_copied_for_every_nodes_guard(tmp_path):
    """A copy follows its source whenever it changes, and goes when it goes (no exams: none)."""
    from classhub_hub.dockerproxy import Copies

    state, words = tmp_path / "state", tmp_path / "words"
    state.mkdir()
    words.mkdir()
    (state / "hub.json").write_text('{"hub_name": "math"}')
    copies = Copies({state / "hub.json": words / "hub.json", state / "exams.json": words / "x"})
    copies.refresh()
    assert (words / "hub.json").read_text() == '{"hub_name": "math"}'
    assert not (words / "x").exists() and oct((words / "hub.json").stat().st_mode)[-3:] == "600"
    (state / "exams.json").write_text('{"groups": {"team-1": {}}}')
    copies.refresh()
    assert (words / "x").read_text() == '{"groups": {"team-1": {}}}'
    (state / "exams.json").unlink()
    copies.refresh()
    assert not (words / "x").exists()
    assert sorted(p.name for p in words.iterdir()) == ["hub.json"]  # no partial file left


# Property (issue "Faults" 6): any request at all, whatever its method, path, query and body, gets
# a reason or passes; it never crashes the proxy, and what passes is one of DockerSpawner's calls.
_METHODS = st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD", "PATCH", "get", ""])
_PATHS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "/containers/create",
            "/volumes/create",
            "/containers/x/start",
            "/images/x/json",
            "/v1.41/containers/create",
            "/_ping",
        ]
    ),
).map(lambda p: p if p.startswith("/") else "/" + p)
_BODIES = st.one_of(st.binary(max_size=80), _values.map(lambda v: json.dumps(v).encode()))


@given(method=_METHODS, path=_PATHS, query=st.text(max_size=30), body=_BODIES,
       ours=st.sampled_from([OURS, {}, None, {"classhub.hub": "other"}]))  # fmt: skip
def test_any_request_gets_a_reason_or_passes_as_one_of_dockerspawners_calls(
    method, path, query, body, ours
):
    from urllib.parse import quote

    from classhub_hub.dockerproxy import ROUTES

    target = f"{quote(path, safe='/')}?{quote(query, safe='=&')}"
    reason = POLICY.refusal(method, target, body, lambda _: ours)
    assert reason is None or isinstance(reason, str)
    if reason is None:
        bare = urlsplit_path(target)
        assert any(method == m and pattern.fullmatch(bare) for m, pattern in ROUTES), target


def urlsplit_path(target: str) -> str:
    import re
    from urllib.parse import unquote, urlsplit

    return re.sub(r"^/v\d+(?:\.\d+)?(?=/)", "", unquote(urlsplit(target).path), count=1)


def test_on_a_swarm_no_server_starts_until_every_ready_node_said_lately_its_rules_are_in(tmp_path):
    """The nodes' list is what GET /nodes answers (trimmed); the words are swarmguard's own."""
    import time

    from classhub import hubfile
    from classhub_hub import swarmguard
    from classhub_hub.dockerproxy import guards_loaded

    def node(host: str, state: str = "ready", availability: str = "active") -> dict:
        return {"Description": {"Hostname": host}, "Status": {"State": state},
                "Spec": {"Availability": availability}}  # fmt: skip

    listed = [node("manager"), node("w1"), node("w2"), node("dead", "down"),
              node("drained", availability="drain")]  # fmt: skip

    def docker(method, target, body, headers):
        assert (method, target) == ("GET", "/nodes")
        return 200, [], json.dumps(listed).encode()

    problem = guards_loaded(str(tmp_path), docker, fresh=20)
    assert "on manager, w1, w2," in problem()  # nothing said yet; down and drained nodes aside
    for host in ("manager", "w1"):
        for table in hubfile.GUARD_TABLES:
            swarmguard.say(tmp_path, host, table)
    swarmguard.say(tmp_path, "w2", "overlay")
    assert "lately that its rules are loaded on w2, so" in problem()  # its node guard: not yet
    swarmguard.say(tmp_path, "w2", "node")
    assert problem() is None
    word = hubfile.guard_word(tmp_path, "w2", "node")
    word.write_text(json.dumps({"loaded": time.time() - 60}))
    assert "on w2," in problem()  # said, but not lately: its guard may be gone
    word.write_text("not json")
    assert "on w2," in problem()
    swarmguard.say(tmp_path, "w2", "node")
    assert problem() is None
    assert not list(tmp_path.glob(".*partial"))  # each word written whole, then renamed
    refusing = guards_loaded(str(tmp_path), lambda *_: (500, [], b"{}"), fresh=20)
    assert "nodes could not be listed" in refusing()


def test_no_server_starts_until_the_firewall_says_its_rules_are_in_this_kernel(tmp_path):
    from classhub import hubfile
    from classhub_hub.dockerproxy import _starts, firewall_loaded

    problem = firewall_loaded(str(tmp_path))
    assert "has not loaded its rules" in problem()  # nothing said yet
    said = tmp_path / hubfile.FIREWALL_FILE
    said.write_text(json.dumps({"boot_id": "an-earlier-boot"}))
    assert "has not loaded its rules" in problem()  # said before a reboot
    said.write_text("null")
    assert "has not loaded its rules" in problem()
    said.write_text(json.dumps({"boot_id": hubfile.boot_id()}))
    assert problem() is None
    # What counts as a start is read as the policy reads a path: an encoded one is a start too.
    assert _starts("POST", "/v1.41/containers/abc/start")
    assert _starts("POST", "/v1.41/containers/abc%2Fstart")
    assert _starts("POST", "/containers/abc/start?x=1")
    assert not _starts("GET", "/v1.41/containers/abc/start")
    assert not _starts("POST", "/v1.41/containers/abc/stop")
