"""Edits of userlist that tasks make: the rest of the text kept as written, nothing half done."""

from __future__ import annotations

import pytest

from classhub.errors import ConfigError, UserError
from classhub.inputs import userlist
from classhub.paths import Paths

TEXT = "# the class\nann team-1  # TA\n\nbob\n"


def test_a_group_goes_on_its_members_lines_or_on_a_group_line():
    text, added = userlist.with_group(TEXT, "hub-admin", "team-2", ["bob", "ann", "bob"])
    assert added == ["bob", "ann"]
    assert text == "# the class\nann team-1 team-2  # TA\n\nbob team-2\n"
    again, none = userlist.with_group(text, "hub-admin", "team-2", ["ann"])
    assert (again, none) == (text, [])
    declared, _ = userlist.with_group(TEXT, "hub-admin", "chess", [])
    assert declared == TEXT + "group: chess\n"


def test_a_bad_name_or_a_text_that_does_not_parse_changes_nothing(tmp_path):
    with pytest.raises(UserError, match="user name 'Bad Name'"):
        userlist.with_user(TEXT, None, "Bad Name", [])
    paths = Paths.at(tmp_path)
    paths.userlist.write_text(TEXT)
    with pytest.raises(ConfigError):
        userlist.write(paths, TEXT + "ann again\n", "hub-admin")  # ann twice
    assert paths.userlist.read_text() == TEXT
    userlist.write(paths, TEXT + "cy\n", "hub-admin")
    assert userlist.read(paths) == TEXT + "cy\n"
