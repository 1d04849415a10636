"""The hub file's reader at a trust boundary, fuzzed (issue "Faults" 6): whatever the file holds,
the hub, its proxy and its firewall get a HubFile whose parts they read have their shape, or a
HubFileError naming what is wrong; never another exception. The roster the hub re-reads keeps its
last good version when a bad one replaces it, and says why in the log.

CI runs 100 cases a property; `nox -s fuzz` runs 10,000 (tests/conftest.py's profiles).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classhub import hubfile
from classhub_hub.roster import LiveRoster
from tests.conftest import PROJECT

GOOD = json.loads((PROJECT / "tests" / "unit" / "golden" / "hub.json").read_text())
NAMES = st.sampled_from([*GOOD["users"], "walk-in", "Alice", "x" * 40, "", "../etc"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def read_as_the_hub_does(hub: hubfile.HubFile, name: str) -> None:
    """What the hub and its helpers read of a file they took: a user, their mounts, the policy."""
    entry = hubfile.user_entry(hub, name)
    if entry is not None:
        hubfile.mounts(hub, name)
    hub.get("socket_proxy.images")
    hub.get("firewall.egress")


def paths_of(node, here=()):
    """Every place in a JSON tree: the tuple of keys and indexes that leads there."""
    yield here
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths_of(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths_of(value, (*here, index))


PLACES = list(paths_of(GOOD))


def replaced(data, place, value):
    if not place:
        return value
    changed = copy.deepcopy(data)
    node = changed
    for step in place[:-1]:
        node = node[step]
    node[place[-1]] = value
    return changed


@FUZZ
@given(text=st.binary(max_size=400))
def test_any_bytes_are_read_or_refused_by_name(tmp_path_factory, text: bytes):
    path = tmp_path_factory.mktemp("hub") / "hub.json"
    path.write_bytes(text)
    try:
        hubfile.load(path)
    except hubfile.HubFileError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(data=JSON)
def test_any_json_value_is_read_or_refused_by_name(data):
    try:
        hubfile.HubFile(data, "hub.json")
    except hubfile.HubFileError as exc:
        assert str(exc).startswith("hub.json: ")


@FUZZ
@given(place=st.sampled_from(PLACES), value=JSON, name=NAMES)
def test_a_good_file_with_one_part_changed_is_read_whole_or_refused_naming_the_part(
    place, value, name
):
    data = replaced(GOOD, place, value)
    try:
        hub = hubfile.HubFile(data, "hub.json")
    except hubfile.HubFileError as exc:
        assert str(exc).startswith("hub.json: ") and "invoke setup" in str(exc)
        return
    # A name the roster does not have, on a hub not open to all, is a HubFileError naming it.
    with contextlib.suppress(hubfile.HubFileError):
        read_as_the_hub_does(hub, name)


@FUZZ
@given(place=st.sampled_from(PLACES), value=JSON)
def test_the_hub_keeps_the_last_good_roster_when_a_bad_one_replaces_it(
    tmp_path_factory, caplog, place, value
):
    path = tmp_path_factory.mktemp("live") / "hub.json"
    path.write_text(json.dumps(GOOD))
    live = LiveRoster(str(path))
    good = live.hub()
    bad = replaced(GOOD, place, value)
    partial = path.with_name("hub.json.new")
    partial.write_text(json.dumps(bad))
    os.replace(partial, path)  # as setup replaces it: a new inode
    with caplog.at_level(logging.ERROR, logger="classhub"):
        now = live.hub()
    try:
        hubfile.HubFile(bad, str(path))
    except hubfile.HubFileError as exc:
        assert now is good, "a bad file replaced the last good roster"
        assert any("keeping the last roster" in r.message and str(exc) in r.message
                   for r in caplog.records)  # fmt: skip
    else:
        assert now is not good and now.get("users") == bad["users"]


def test_the_rendered_files_pass_their_own_shape():
    hubfile.HubFile(GOOD, "golden hub.json")
    assert hubfile.shape_problem(GOOD["users"]["alice"], hubfile.SHAPE["users"].shape) is None


def test_a_refusal_says_where_and_what():
    bad = replaced(GOOD, ("users", "alice", "groups", 0), 3)
    try:
        hubfile.HubFile(bad, "hub.json")
    except hubfile.HubFileError as exc:
        assert str(exc) == (
            "hub.json: users.alice.groups[0] is a number, not a string; re-run invoke setup"
        )
    else:
        raise AssertionError("a roster with a number for a group was taken")
    assert "holds a list, not the hub file's object" in _refusal([1, 2])


def _refusal(data) -> str:
    try:
        hubfile.HubFile(data, "hub.json")
    except hubfile.HubFileError as exc:
        return str(exc)
    return ""


def test_a_file_path_that_is_a_folder_is_refused_by_name(tmp_path: Path):
    try:
        hubfile.load(tmp_path)
    except hubfile.HubFileError as exc:
        assert str(tmp_path) in str(exc)
    else:
        raise AssertionError("a folder was read as the hub file")
