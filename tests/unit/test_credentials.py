"""Passwords: easy to type, strong enough, stored once, hashed with passlib's bcrypt."""

from __future__ import annotations

import json
import math

import pytest
from passlib.hash import bcrypt

from classhub import credentials
from classhub.errors import UserError
from classhub.files import ensure_private_dir
from classhub.paths import Paths


def test_password_shape_and_entropy():
    seen = set()
    for _ in range(200):
        password = credentials.new_password()
        groups = password.split("-")
        assert [len(g) for g in groups] == [credentials.GROUP_LEN] * credentials.GROUPS
        assert set("".join(groups)) <= set(credentials.ALPHABET)
        assert len(password.encode()) <= 72  # bcrypt's limit
        seen.add(password)
    assert len(seen) == 200
    assert not set("01ilo") & set(credentials.ALPHABET)  # no look-alikes
    bits = credentials.GROUPS * credentials.GROUP_LEN * math.log2(len(credentials.ALPHABET))
    assert bits >= 64


def test_hash_is_bcrypt_and_verifies():
    hashed = credentials.hash_password("abcde-fghjk-mnpqr")
    assert hashed.startswith(f"$2b${credentials.BCRYPT_ROUNDS:02d}$")
    assert bcrypt.verify("abcde-fghjk-mnpqr", hashed)
    assert not credentials.verify("abcde-fghjk-mnpqs", hashed)


def test_ensure_makes_only_missing_ones_and_keeps_the_rest(checkout: Paths):
    ensure_private_dir(checkout.secrets_dir)
    calls = []
    made = credentials.ensure(checkout, ["alice", "bob"], lambda *call: calls.append(call))
    assert made == ["alice", "bob"]
    assert calls == [("hashing passwords", 1, 2), ("hashing passwords", 2, 2)]
    before = credentials.load(checkout)
    assert credentials.ensure(checkout, ["alice", "bob", "carol"]) == ["carol"]
    after = credentials.load(checkout)
    assert after["alice"] == before["alice"] and after["bob"] == before["bob"]
    assert credentials.verify(after["carol"].password, after["carol"].hash)
    assert checkout.credentials_file.stat().st_mode & 0o777 == 0o600
    # people dropped from the roster keep their entry
    assert credentials.ensure(checkout, ["alice"]) == []
    assert set(credentials.load(checkout)) == {"alice", "bob", "carol"}


def test_reset_replaces_one_password(checkout: Paths):
    ensure_private_dir(checkout.secrets_dir)
    credentials.ensure(checkout, ["alice", "bob"])
    before = credentials.load(checkout)
    new = credentials.reset(checkout, "alice")
    after = credentials.load(checkout)
    assert new.password != before["alice"].password
    assert after["alice"] == new and after["bob"] == before["bob"]
    assert not credentials.verify(before["alice"].password, after["alice"].hash)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"format": 99, "users": {}}),
        json.dumps({"format": 1, "users": {"alice": {"password": "x"}}}),
        json.dumps({"format": 1, "users": {"alice": {"password": "x", "hash": "plain"}}}),
    ],
)
def test_damaged_store_is_an_error_naming_the_file(checkout: Paths, content: str):
    ensure_private_dir(checkout.secrets_dir)
    checkout.credentials_file.write_text(content)
    with pytest.raises(UserError) as err:
        credentials.load(checkout)
    assert str(err.value).startswith("secrets/credentials.json: ")
    assert "restore it from a backup" in str(err.value)
