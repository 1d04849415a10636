"""Rendered output: the hub file (golden), its stdlib reader, and the nginx block (golden)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from classhub import hubfile, images, render
from classhub.credentials import Credential
from classhub.inputs.parsers import Context
from classhub.inputs.roster import parse_userlist
from classhub.inputs.settings import load_settings
from classhub.paths import Paths
from tests.conftest import PROJECT

GOLDEN = Path(__file__).parent / "golden"


def settings(text: str):
    value, problems, _ = load_settings(text, ".env", {}, Context(root=PROJECT, cpu_count=2))
    assert not problems, problems
    return value


def golden(name: str, actual: str) -> None:
    """Compare with tests/unit/golden/NAME; CLASSHUB_UPDATE_GOLDEN=1 rewrites it (review the diff)."""
    path = GOLDEN / name
    if os.environ.get("CLASSHUB_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert actual == path.read_text()


ENV = "HUB_NAME=math101\nPORT=8001\nMEM_LIMIT=1G\nCPU_LIMIT=0.5\nCULL_IDLE_TIMEOUT=30m\n"
ROSTER = (
    "teacher admin\nAlice team-1\nbob team-1 team-2 cpu=1\n"
    "group: team-2 mem=3G image=classhub-gpu:latest\n"
)


def fixed_creds(names):
    return {n: Credential(f"pw-{n}", f"$2b$10$fixedhashfor{n}") for n in names}


def test_hub_file_golden():
    s = settings(ENV)
    roster, problems, _ = parse_userlist(ROSTER, s.admin_user)
    assert not problems
    text = render.hub_file(s, roster, fixed_creds(roster.names))
    golden("hub.json", text)
    assert "pw-" not in text  # plaintext passwords never reach the hub


def test_hub_file_reader_round_trip_and_missing_keys(tmp_path: Path):
    s = settings(ENV)
    roster, _, _ = parse_userlist(ROSTER, s.admin_user)
    path = tmp_path / "hub.json"
    path.write_text(render.hub_file(s, roster, fixed_creds(roster.names)))
    hub = hubfile.load(path)
    assert hub.get("base_url") == "/math101/"
    assert hub.get("limits.mem_limit") == 1024**3
    assert hub.get("users.alice.groups") == ["team-1"]
    assert hub.get("users.hub-admin.admin") is True
    assert hub.get("groups.team-1.volume") == "math101-group-team-1"
    with pytest.raises(hubfile.HubFileError, match=re.escape("no key 'limits.gpu'")):
        hub.get("limits.gpu")
    with pytest.raises(hubfile.HubFileError, match="format 2, this hub reads format 1"):
        hubfile.HubFile({"format": 2}, "hub.json")
    path.write_text("{broken")
    with pytest.raises(hubfile.HubFileError, match="cannot be read"):
        hubfile.load(path)


def test_hub_file_is_deterministic():
    s = settings(ENV)
    roster, _, _ = parse_userlist(ROSTER, s.admin_user)
    creds = fixed_creds(roster.names)
    assert render.hub_file(s, roster, creds) == render.hub_file(
        s, roster, dict(reversed(creds.items()))
    )
    json.loads(render.hub_file(s, roster, creds))


def test_the_hub_images_copy_of_the_package_imports_with_the_standard_library_alone(tmp_path):
    """The hub image copies only these modules of the package (images.hub_spec): they must
    import with no third-party package and none of the package's other modules."""
    copied = [target for target, _ in images.hub_spec(Paths.at(PROJECT), "math").files
              if target.startswith("classhub/")]  # fmt: skip
    assert "classhub/hubfile.py" in copied and "classhub/names.py" in copied
    for target in copied:
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / target).write_bytes((PROJECT / target).read_bytes())
    # -S: no site-packages (no third party); -I: neither the checkout nor PYTHONPATH.
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import classhub.hubfile, classhub.names; print('ok')"
    result = subprocess.run([sys.executable, "-S", "-I", "-c", code],
                            capture_output=True, text=True)  # fmt: skip
    assert result.stdout.strip() == "ok", result.stderr


def test_nginx_location_golden():
    paths = Paths.at(PROJECT)
    golden("nginx-location.conf", render.nginx_location(paths, settings(ENV)))


def test_printed_nginx_blocks_say_what_user_subdomains_need():
    paths = Paths.at(PROJECT)
    assert "USER_SUBDOMAINS" not in render.nginx_location(paths, settings(ENV))
    own = settings(ENV + "PUBLIC_URL=https://jupyter.uni.edu/math101/\nUSER_SUBDOMAINS=true\n")
    location = render.nginx_location(paths, own)
    site = render.nginx_site(paths, own, own.upstream, "/c.pem", "/k.pem")
    for text in (location, site):
        assert "server_name jupyter.uni.edu *.jupyter.uni.edu;" in text
        assert "a DNS record *.jupyter.uni.edu points at this server" in text
    assert location.endswith(render.location_block(paths, "math101", own.upstream))
