"""Components: which parts a hub has is decided in one place, and everything reads it there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classhub import components, images, names, secrets
from classhub.components import Part
from classhub.inputs.parsers import Context
from classhub.inputs.settings import load_settings
from classhub.paths import Paths
from tests.conftest import PROJECT

SSO = "AUTHENTICATOR=github\nOAUTH_CLIENT_ID=x\nPUBLIC_URL=https://hub.example.edu/math/\n"
VARIANTS = {
    "default": "",
    "postgres": "HUB_DB=postgres\n",
    "nginx": "PROXY=nginx\nPUBLIC_URL=https://hub.example.edu/math/\n",
    "all": "HUB_DB=postgres\nPROXY=nginx\n" + SSO,
}


def settings(text: str):
    value, problems, _ = load_settings(
        "HUB_NAME=math\n" + text, ".env", {}, Context(root=Path("/"), cpu_count=2)
    )
    assert not problems, problems
    return value


def parts(text: str) -> list[Part]:
    return [c.part for c in components.of(settings(text))]


def test_a_hub_has_its_firewall_socket_proxy_and_hub_and_what_its_settings_add_in_start_order():
    assert parts("") == [Part.FIREWALL, Part.SOCKET_PROXY, Part.HUB]
    assert parts(VARIANTS["postgres"]) == [
        Part.FIREWALL,
        Part.SOCKET_PROXY,
        Part.DATABASE,
        Part.HUB,
    ]
    assert parts(VARIANTS["all"]) == [
        Part.FIREWALL,
        Part.SOCKET_PROXY,
        Part.DATABASE,
        Part.HUB,
        Part.FRONT_DOOR,
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_secret_a_component_reads_is_one_setup_makes_or_asks_for(variant: str):
    wanted = components.secrets(settings(VARIANTS[variant]))
    assert {s.filename for s in secrets.needed(settings(VARIANTS[variant]))} == wanted
    assert wanted <= {s.filename for s in secrets.SPECS}


def test_the_database_brings_its_network_volume_and_password_and_only_with_postgres():
    plain, postgres = settings(""), settings(VARIANTS["postgres"])
    assert [n.name for n in components.networks(plain)] == [names.socket_network("math")]
    assert names.db_network("math") in [n.name for n in components.networks(postgres)]
    assert names.hub_data_volume("math") in [v.name for v in components.volumes(plain)]
    assert names.db_volume("math") not in [v.name for v in components.volumes(plain)]
    assert names.db_volume("math") in [v.name for v in components.volumes(postgres)]
    assert "postgres_password" not in components.secrets(plain)
    assert "postgres_password" in components.secrets(postgres)


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_image_a_component_runs_is_built_once_from_its_own_folder(variant: str):
    found = components.images(settings(VARIANTS[variant]))
    assert len({i.tag for i in found}) == len(found)
    for image in found:
        spec = images.component_spec(Paths.at(PROJECT), image)
        assert spec.dockerfile == f"{image.folder}/Dockerfile"
        assert all(source.is_file() for _, source in spec.files)


# Where a setting decides which components a hub has: only here, and in the settings' own checks.
DECIDES = re.compile(r"\.(hub_db|proxy)\s*[!=]=|\[\"(hub_db|proxy)\"\]\s*[!=]=")


def test_only_components_decides_from_the_settings_which_parts_a_hub_has():
    found = []
    for path in sorted((PROJECT / "classhub").rglob("*.py")):
        if path.name in ("components.py", "settings.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DECIDES.search(line):
                found.append(f"{path.relative_to(PROJECT)}:{number}: {line.strip()}")
    assert not found, "decide it in classhub/components.py instead:\n" + "\n".join(found)


DOCKER_PY = re.compile(r"^\s*(import docker\b|from docker\b)", re.M)


def test_only_the_docker_runtimes_import_docker_py():
    """The plans speak to runtime.Runtime; docker-py stays behind it, in runtime/single_host/
    and runtime/swarm/."""
    engines = [PROJECT / "classhub" / "runtime" / name for name in ("single_host", "swarm")]
    found = [
        str(path.relative_to(PROJECT))
        for path in sorted((PROJECT / "classhub").rglob("*.py"))
        if not any(engine in path.parents for engine in engines)
        and DOCKER_PY.search(path.read_text())
    ]
    assert not found, "these import docker-py outside classhub/runtime/: " + ", ".join(found)
