"""Docker object names: one per (kind, name), never shared, short enough for DNS."""

from __future__ import annotations

import ast
import itertools
import re

import pytest

from classhub import names
from tests.conftest import PROJECT

HUBS = ["hub", "a", "math-101", "h" * names.HUB_NAME_MAX]
USERS = [
    "alice",
    "a",
    "2nd.year",
    "x_y",
    "x-y",
    "x.y",
    "user-bob",
    "group-a",
    "db",
    "net",
    "n" * names.NAME_MAX,
]


def objects(hub: str) -> dict[tuple[str, str], str]:
    """Every Docker object a hub with USERS as users and as groups would have."""
    made = {
        ("hub", ""): names.hub_container(hub),
        ("network", ""): names.network(hub),
        ("hub-data", ""): names.hub_data_volume(hub),
        ("socket-proxy", ""): names.socket_proxy_container(hub),
        ("firewall", ""): names.firewall_container(hub),
        ("db", ""): names.db_container(hub),
        ("nginx", ""): names.nginx_container(hub),
        ("db-network", ""): names.db_network(hub),
        ("db-data", ""): names.db_volume(hub),
        ("addresses-volume", ""): names.addresses_volume(hub),
    }
    for name in USERS:
        made[("user-container", name)] = names.user_container(hub, name)
        made[("user-volume", name)] = names.user_volume(hub, name)
        made[("group-volume", name)] = names.group_volume(hub, name)
    return made


def test_no_two_volumes_or_containers_of_a_hub_share_a_name():
    for hub in HUBS:
        made = objects(hub)
        volumes = [v for (kind, _), v in made.items() if "volume" in kind or "data" in kind]
        containers = [
            v
            for (kind, _), v in made.items()
            if kind in ("hub", "user-container", "socket-proxy", "firewall", "db", "nginx")
        ]
        assert len(set(volumes)) == len(volumes), hub
        assert len(set(containers)) == len(containers), hub


def test_every_object_starts_with_the_hub_name_and_fits_a_dns_label():
    for hub in HUBS:
        for name in objects(hub).values():
            assert name == hub or name.startswith(hub + "-")
            assert len(name) <= 63, name


def test_valid_names_pass_and_invalid_ones_say_why():
    for name in USERS:
        assert names.name_problem(name) is None, name
    assert names.name_problem("a" * (names.NAME_MAX + 1)) == "is 33 characters long"
    assert names.name_problem("-x") == "does not start and end with a letter or digit"
    assert names.name_problem("a b") == "has characters a name cannot carry (' ')"
    for good, bad in itertools.product(["hub", "math-101"], ["Hub", "1hub", "hub-", "hub_1", ""]):
        assert names.hub_name_problem(good) is None
        assert names.hub_name_problem(bad) is not None


@pytest.mark.parametrize(
    ("claim", "domains", "expected"),
    [
        ("Jane.Doe@uni.edu", ("uni.edu",), "jane.doe"),
        ("jane.doe@UNI.EDU", ("uni.edu",), "jane.doe"),
        ("o'brien@uni.edu", (), "o-brien"),
        ("Ana María_Ruiz", (), "ana-mar-a_ruiz"),
        ("octocat", (), "octocat"),
        (" -dash- ", (), "dash"),
    ],
)
def test_a_claim_becomes_a_name(claim, domains, expected):
    assert names.from_account(claim, domains) == (expected, None)


@pytest.mark.parametrize(
    ("claim", "domains", "why"),
    [
        ("bob@elsewhere.org", ("uni.edu",), "takes addresses of uni.edu only"),
        ("bob@uni.edu.evil.org", ("uni.edu",), "takes addresses of uni.edu only"),
        ("octocat", ("uni.edu",), "not an e-mail address"),
        ("@uni.edu", (), "it is empty"),
        ("x" * 40 + "@uni.edu", (), "is 40 characters long"),
    ],
)
def test_a_claim_that_gives_no_name_is_refused_with_the_reason(claim, domains, why):
    name, refusal = names.from_account(claim, domains)
    assert name == "" and why in refusal


def test_made_for_knows_every_volume_classhub_makes_for_a_hub():
    hub = "math"
    made = {
        names.hub_data_volume(hub): "the hub's database",
        names.db_volume(hub): "PostgreSQL's data",
        names.user_volume(hub, "ann"): "a user's home",
        names.group_volume(hub, "team-1"): "a group's folder",
    }
    for volume, what in made.items():
        assert names.made_for(hub, volume) == what
    for volume in ("course-data", "math-shared", "physics-data", "math", "mathdata"):
        assert names.made_for(hub, volume) is None, volume


# Docker names and labels as literals: each is made by a function or constant of names.py, so
# that the rules of its docstring hold by construction.
NAME_LITERAL = re.compile(
    r"-user-|-group-|-socket-proxy|-firewall$|-db-net|-db-data|-addresses$"
    r"|^-(net|socket|data|nginx|db)$"
    r"|^classhub\.(hub|kind|spec|user|inputs|base)$|^classhub_$"
    r"|classhub-(hub|db|nginx|notebook|base)(:|$)"
)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def test_docker_names_and_labels_are_spelled_only_in_names_py():
    sources = [
        *(PROJECT / "classhub").rglob("*.py"),
        *(PROJECT / "hub" / "classhub_hub").glob("*.py"),
    ]
    found = []
    for path in sources:
        if path.name == "names.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        found += [
            f"{path.relative_to(PROJECT)}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip and NAME_LITERAL.search(node.value)
        ]  # fmt: skip
    assert found == [], "use classhub.names instead:\n" + "\n".join(found)
    # The test can fail: the spelling it looks for is the one names.py uses.
    assert NAME_LITERAL.search(names.user_container("math", "ann").removeprefix("math"))
    assert NAME_LITERAL.search(names.LABEL_HUB) and NAME_LITERAL.search(names.hub_image("math"))
