"""Whom invoke prewarm starts, and when (the e2e tests start and hold real servers)."""

from __future__ import annotations

import datetime as dt

import pytest

from classhub import prewarm
from classhub.errors import UserError
from classhub.inputs.roster import parse_userlist

ROSTER, _, _ = parse_userlist("ann team-1\nbob team-1\ncat team-2\ndan\n", "boss")


def test_a_group_and_named_users_on_the_roster():
    assert prewarm.targets(ROSTER, "team-1", []) == ["ann", "bob"]
    assert prewarm.targets(ROSTER, "Team-1", ["Dan", "ann"]) == ["ann", "bob", "dan"]


def test_unknown_groups_and_users_and_nobody_are_errors():
    with pytest.raises(UserError, match="no such group in userlist"):
        prewarm.targets(ROSTER, "team-9", [])
    with pytest.raises(UserError, match="eve not on the roster"):
        prewarm.targets(ROSTER, "", ["eve"])
    with pytest.raises(UserError, match="--group NAME or --users"):
        prewarm.targets(ROSTER, "", [])


def test_at_is_a_later_time_today():
    now = dt.datetime(2026, 11, 23, 8, 30, 12)
    assert prewarm.parse_at("08:50", now) == dt.datetime(2026, 11, 23, 8, 50)
    with pytest.raises(UserError, match="has passed today"):
        prewarm.parse_at("08:00", now)
    with pytest.raises(UserError, match="HH:MM"):
        prewarm.parse_at("ten to nine", now)
