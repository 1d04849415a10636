"""Secrets: made once, 0600 in a 0700 folder, never overwritten, a bad file named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classhub import secrets
from classhub.errors import UserError
from classhub.files import ensure_private_dir
from classhub.inputs.parsers import Context
from classhub.inputs.settings import load_settings
from classhub.paths import Paths


def settings(text: str = ""):
    value, problems, _ = load_settings(text, ".env", {}, Context(root=Path("/"), cpu_count=2))
    assert not problems
    return value


SPEC = {spec.filename: spec for spec in secrets.SPECS}


def test_needed_secrets_depend_on_database():
    assert [s.filename for s in secrets.needed(settings())] == [
        "cookie_secret",
        "proxy_auth_token",
        "classhub_api_token",
    ]
    assert "postgres_password" in [s.filename for s in secrets.needed(settings("HUB_DB=postgres"))]


def test_created_once_with_private_modes(checkout: Paths):
    ensure_private_dir(checkout.secrets_dir)
    spec = SPEC["cookie_secret"]
    assert secrets.state(checkout, spec) == "missing"
    secrets.ensure(checkout, spec)
    path = spec.path(checkout)
    value = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert path.stat().st_mode & 0o777 == 0o600
    assert checkout.secrets_dir.stat().st_mode & 0o777 == 0o700
    assert secrets.state(checkout, spec) == "present"
    secrets.ensure(checkout, spec)
    assert path.read_text().strip() == value  # never overwritten


def test_loose_mode_is_reported_and_tightened_without_changing_the_value(checkout: Paths):
    ensure_private_dir(checkout.secrets_dir)
    spec = SPEC["proxy_auth_token"]
    path = spec.path(checkout)
    path.write_text("t" * 40 + "\n")
    path.chmod(0o644)
    assert secrets.state(checkout, spec) == "present, mode 0644"
    secrets.ensure(checkout, spec)
    assert path.stat().st_mode & 0o777 == 0o600
    assert secrets.read(checkout, spec) == "t" * 40


@pytest.mark.parametrize("content", ["", "short\n", "zz" * 32, "with spaces " * 4])
def test_malformed_secret_is_an_error_naming_the_file(checkout: Paths, content: str):
    ensure_private_dir(checkout.secrets_dir)
    spec = SPEC["cookie_secret"]
    spec.path(checkout).write_text(content)
    with pytest.raises(UserError) as err:
        secrets.state(checkout, spec)
    message = str(err.value)
    assert message.startswith(
        "secrets/cookie_secret: does not hold a valid JupyterHub cookie secret"
    )
    assert "restore it from a backup, or delete it and run invoke setup" in message
    assert spec.path(checkout).read_text() == content  # left alone


def test_new_values_differ():
    assert len({secrets.new_value() for _ in range(20)}) == 20
