"""A backup's manifest and its checks, and putting its checkout files back (the e2e tests take
and restore real backups on the real engine)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from classhub import backup
from classhub.errors import UserError
from classhub.paths import Paths


def make_backup(folder: Path) -> backup.Manifest:
    files = {
        "checkout/.env": ("HUB_NAME=math\n", 0o600),
        "checkout/userlist": ("ann\n", 0o644),
        "checkout/secrets/cookie_secret": ("ab" * 32 + "\n", 0o600),
        "database/jupyterhub.sqlite": ("SQLite format 3\0...", 0o600),
        "volumes/math-user-ann.tar.gz": ("not really a tarball", 0o600),
    }
    for name, (text, mode) in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    manifest = backup.Manifest(
        hub="math", created="2026-11-21T09:00:00+00:00", database="sqlite", users=["ann"],
        complete=True, volumes={"math-user-ann": "user"}, files=backup.describe(folder),
    )  # fmt: skip
    backup.seal(folder, manifest)
    return manifest


def test_a_whole_backup_verifies(tmp_path):
    made = make_backup(tmp_path)
    assert backup.verify(tmp_path) == made
    assert made.files["checkout/userlist"]["mode"] == "0644"


def test_one_flipped_byte_is_refused_naming_the_file(tmp_path):
    make_backup(tmp_path)
    tarball = tmp_path / "volumes" / "math-user-ann.tar.gz"
    data = bytearray(tarball.read_bytes())
    data[3] ^= 0x01
    tarball.write_bytes(bytes(data))
    with pytest.raises(UserError, match=re.escape(f"{tarball}: damaged")):
        backup.verify(tmp_path)


def test_a_missing_file_or_a_damaged_manifest_is_refused(tmp_path):
    make_backup(tmp_path)
    (tmp_path / "database" / "jupyterhub.sqlite").unlink()
    with pytest.raises(UserError, match=r"jupyterhub\.sqlite: missing"):
        backup.verify(tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"ann"', '"bob"'))
    with pytest.raises(UserError, match=r"manifest\.json: damaged"):
        backup.verify(tmp_path)
    (tmp_path / "manifest.sha256").unlink()
    with pytest.raises(UserError, match=r"manifest\.sha256: missing"):
        backup.verify(tmp_path)


def test_a_manifest_naming_a_file_outside_the_backup_is_refused(tmp_path):
    folder = tmp_path / "bk"
    made = make_backup(folder)
    (tmp_path / "outside").write_text("x")
    files = {**made.files, "../outside": backup.describe(tmp_path)["outside"]}
    backup.seal(folder, backup.Manifest(**{**made.__dict__, "files": files}))
    with pytest.raises(UserError, match="missing from the backup"):
        backup.verify(folder)


def test_restore_keeps_differing_checkout_files_and_sets_modes(tmp_path):
    folder = tmp_path / "bk"
    manifest = make_backup(folder)
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "userlist").write_text("the example\n")
    (root / ".env").write_text("HUB_NAME=math\n")  # the same: left as it is
    said = []
    backup.restore_checkout(folder, manifest, Paths.at(root), said.append)
    assert (root / "userlist").read_text() == "ann\n"
    assert (root / "userlist.before-restore").read_text() == "the example\n"
    assert not (root / ".env.before-restore").exists()
    assert stat.S_IMODE((root / "userlist").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "secrets" / "cookie_secret").stat().st_mode) == 0o600
    assert said == ["   userlist: differed from the backup's, kept as userlist.before-restore"]


def test_manifest_is_json_with_its_format(tmp_path):
    make_backup(tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["format"] == backup.FORMAT and data["hub"] == "math"
    assert os.access(tmp_path / "manifest.sha256", os.R_OK)
