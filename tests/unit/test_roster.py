"""The roster parser: what a good userlist gives, and a corpus of bad ones, each error on its line."""

from __future__ import annotations

import pytest

from classhub.inputs.parsers import Context
from classhub.inputs.roster import (
    Limits,
    User,
    closest,
    edits,
    parse_userlist,
)
from classhub.inputs.userlist import with_tokens, without_line
from tests.conftest import PROJECT


def parse(text: str, admin: str | None = "hub-admin"):
    return parse_userlist(text, admin)


def test_users_groups_and_admins():
    text = (
        "# class of 2026\n"
        "\n"
        "alice team-1 team-2   # two teams\n"
        "Bob\tadmin team-1\n"
        "carol team-2 ADMIN\n"
        "  dave\n"
    )
    roster, problems, warnings = parse(text)
    assert problems == [] and warnings == []
    assert roster.users == (
        User("hub-admin", True, (), None),
        User("alice", False, ("team-1", "team-2"), 3),
        User("bob", True, ("team-1",), 4),
        User("carol", True, ("team-2",), 5),
        User("dave", False, (), 6),
    )
    assert roster.groups() == {"team-1": ("alice", "bob"), "team-2": ("alice", "carol")}
    assert roster.get("ALICE").name == "alice"


def test_admin_user_listed_without_admin_word_is_made_admin():
    roster, _, _ = parse("alice\nhub-admin team-1\n")
    assert roster.get("hub-admin") == User("hub-admin", True, ("team-1",), 2)
    assert roster.names == ("alice", "hub-admin")


def test_group_names_are_lowercased_and_repeats_warned():
    roster, problems, warnings = parse("alice Team-1 team-1\n")
    assert problems == []
    assert roster.get("alice").groups == ("team-1",)
    assert warnings == ["userlist:1: group 'team-1' is given twice for 'alice'; once is enough"]


def test_odd_but_valid_names():
    text = "2nd.year_student-x\njane.doe\na\n" + "x" * 32 + "\n"
    roster, problems, _ = parse(text)
    assert problems == []
    assert "2nd.year_student-x" in roster.names


def test_example_userlist_is_valid():
    roster, problems, warnings = parse((PROJECT / "userlist").read_text())
    assert problems == [] and warnings == []
    assert len(roster.users) == 5 and set(roster.groups()) == {"team-1", "team-2"}


# The corpus: (userlist text, [(line, fragment of the message)]), every error found at once.
BAD_ROSTERS = {
    "duplicate": ("alice\nbob\nalice team-1\n", [(3, "'alice' is already listed on line 1")]),
    "duplicate by case": (
        "Alice\nalice\n",
        [(2, "already listed on line 1 as 'Alice'; names are case-insensitive")],
    ),
    "duplicate admin": ("hub-admin admin\nHUB-ADMIN\n", [(2, "already listed on line 1")]),
    "at sign": (
        "jane@uni.edu\n",
        [(1, "user name 'jane@uni.edu' has characters a name cannot carry ('@')")],
    ),
    "accents": ("jérôme\n", [(1, "('é' 'ô')")]),
    "slash": ("../etc\n", [(1, "('/')")]),
    "leading dot": (".hidden\n", [(1, "does not start and end with a letter or digit")]),
    "trailing hyphen": ("bob-\n", [(1, "does not start and end with a letter or digit")]),
    "too long": ("x" * 33 + "\n", [(1, "is 33 characters long")]),
    "bad group": (
        "alice team:1\n",
        [(1, "group name 'team:1' has characters a name cannot carry (':')")],
    ),
    "group too long": (
        "alice " + "g" * 40 + "\n",
        [(1, "group name '" + "g" * 40 + "' is 40 characters long")],
    ),
    "several at once": (
        "ok\nbad!\nok\nfine grp/1\n",
        [
            (2, "user name 'bad!'"),
            (3, "'ok' is already listed on line 1"),
            (4, "group name 'grp/1'"),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROSTERS))
def test_bad_roster(case: str):
    text, expected = BAD_ROSTERS[case]
    roster, problems, _ = parse(text)
    assert roster is None
    assert [p.where for p in problems] == [f"userlist:{line}" for line, _ in expected]
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in str(problem), str(problem)
        assert problem.fix


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n   # and more\n"])
def test_empty_roster(text: str):
    roster, problems, _ = parse(text)
    assert roster is None
    assert len(problems) == 1
    assert str(problems[0]).startswith("userlist: lists no users; add one user a line")


def test_roster_without_admin_user_when_setting_is_invalid():
    roster, problems, _ = parse("alice\n", admin=None)
    assert problems == [] and roster.names == ("alice",)


def test_group_lines_declare_groups_without_members():
    roster, problems, _ = parse_userlist("group: team-9 Lab\nann team-1\n", "boss")
    assert not problems
    assert roster.groups() == {"lab": (), "team-1": ("ann",), "team-9": ()}
    _, problems, _ = parse_userlist("group: bad!name\nann\n", "boss")
    assert "group name 'bad!name'" in str(problems[0])


def test_with_tokens_keeps_comments_and_adds_new_lines():
    text = "ann team-1  # the TA\nbob\n"
    assert with_tokens(text, 1, "ann", ["team-2"]) == "ann team-1 team-2  # the TA\nbob\n"
    assert with_tokens(text, None, "cy", ["admin"]) == text + "cy admin\n"
    assert with_tokens("ann", None, "bob", []) == "ann\nbob\n"


def test_without_line_drops_only_that_line():
    text = "# header\nalice team-1\nbob  # a comment\ncarol\n"
    assert without_line(text, 3) == "# header\nalice team-1\ncarol\n"
    assert without_line("alice\n", 1) == ""
    roster, problems, _ = parse(without_line(text, 2))
    assert problems == [] and roster.get("alice") is None and roster.get("bob")


def test_limits_per_user_and_group_most_specific_wins():
    text = (
        "ann team-1 mem=6G\n"
        "bob team-1 team-2\n"
        "cat team-2 cpu=0.25\n"
        "dan\n"
        "group: team-1 mem=2G\n"
        "group: team-2 mem=4G cpu=1.5\n"
    )
    roster, problems, _ = parse(text)
    assert problems == []
    default = Limits(mem=1024**3, cpu=0.5)
    gib = 1024**3
    assert roster.limits_for("ann", default) == Limits(mem=6 * gib, cpu=0.5)  # own mem
    assert roster.limits_for("bob", default) == Limits(mem=4 * gib, cpu=1.5)  # largest group
    assert roster.limits_for("cat", default) == Limits(mem=4 * gib, cpu=0.25)  # own cpu
    assert roster.limits_for("dan", default) == default
    assert roster.limits_for("hub-admin", default) == default


def test_a_users_disk_sizes_their_home_and_a_groups_its_folder_only():
    text = "ann team-1 disk=20G\nbob team-1\ngroup: team-1 disk=50G mem=2G\ngroup: team-2\n"
    roster, problems, _ = parse(text)
    assert problems == []
    gib = 1024**3
    assert roster.home_size("ann", 5 * gib) == 20 * gib  # her own
    assert roster.home_size("bob", 5 * gib) == 5 * gib  # not his group's: that is its folder's
    assert roster.group_size("team-1", 10 * gib) == 50 * gib
    assert roster.group_size("team-2", 10 * gib) == 10 * gib
    assert roster.limits_for("ann", Limits(gib, 1.0)) == Limits(mem=2 * gib, cpu=1.0)


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("ann disk=big\n", "userlist:1", "'disk=big' is not a size"),
        ("ann\ngroup: t disk=1M\n", "userlist:2", "'disk=1M' is too small"),
        ("ann mem=lots\n", "userlist:1", "'mem=lots' is not a size"),
        ("ann mem=10M\n", "userlist:1", "'mem=10M' is too small"),
        ("ann cpu=0\n", "userlist:1", "'cpu=0' is not a number of cores"),
        ("ann cpu=64\n", "userlist:1", "'cpu=64' is more than this server's 2 cores"),
        ("ann gpu=1\n", "userlist:1", "'gpu=1' is not a setting of this line"),
        ("ann image=x:1\n", "userlist:1", "(image= and egress= go on a group: line)"),
        ("ann\ngroup: gpu image=Bad Name\n", "userlist:2", "is not a Docker image name"),
        (
            "ann a b\ngroup: a image=x:1\ngroup: b image=y:1\n",
            "userlist:1",
            "ann is in groups with different images (a, b)",
        ),
        ("ann\ngroup: a image=x:1\ngroup: a image=y:1\n", "userlist:3", "has image x:1 on line 2"),
        ("ann\ngroup: t mem=1G\ngroup: t mem=2G\n", "userlist:3", "limits on line 2 already"),
        ("ann\ngroup: mem=8G\n", "userlist:2", "this group: line names no group"),
        ("ann\ngroup: image=x:1\n", "userlist:2", "this group: line names no group"),
        ("ann mem=\uff18G\n", "userlist:1", "is not a size"),  # full-width 8
        ("ann cpu=\u00b9\n", "userlist:1", "is not a number of cores"),  # superscript 1
        ("ann cpu=1_0\n", "userlist:1", "is not a number of cores"),
        ("ann\ngroup: db egress=db.campus.edu\n", "userlist:2", "a host name is not looked up"),
        ("ann\ngroup: db egress=10.1.2.3:99999\n", "userlist:2", "port is not 1 to 65535"),
        ("ann egress=10.1.2.3\n", "userlist:1", "(image= and egress= go on a group: line)"),
    ],
)
def test_bad_limits_name_the_line(text, where, fragment):
    roster, problems, _ = parse_userlist(text, "hub-admin", ctx=Context(PROJECT, cpu_count=2))
    assert roster is None
    assert [p.where for p in problems] == [where]
    assert fragment in str(problems[0]), str(problems[0])


def test_a_groups_egress_exceptions_are_kept_per_group_from_every_line():
    roster, problems, _ = parse(
        "ann db\ngroup: db egress=10.1.2.3:5432,10.20.0.0/16\ngroup: db egress=[fd00::5]:443\n"
    )
    assert problems == []
    ((group, targets),) = roster.group_egress
    assert group == "db"
    assert [(t.network, t.port) for t in targets] == [
        ("10.1.2.3/32", 5432), ("10.20.0.0/16", None), ("fd00::5/128", 443)]  # fmt: skip


def test_a_groups_image_goes_to_its_members_only():
    roster, problems, _ = parse("ann gpu\nbob\ngroup: gpu image=classhub-gpu:latest mem=8G\n")
    assert problems == []
    assert roster.image_for("ann", "classhub-notebook:latest") == "classhub-gpu:latest"
    assert roster.image_for("bob", "classhub-notebook:latest") == "classhub-notebook:latest"
    assert roster.limits_for("ann", Limits(1, 1.0)).mem == 8 * 1024**3


def test_groups_giving_the_same_image_agree():
    """README: a user's groups may not give them two different images; the same one twice is
    one image."""
    text = "ann a b\ngroup: a image=x:1\ngroup: b image=x:1\n"
    roster, problems, _ = parse_userlist(text, "hub-admin")
    assert problems == [] and roster.image_for("ann", "default") == "x:1"


def test_a_group_given_twice_on_a_group_line_is_a_warning_naming_the_line():
    roster, problems, warnings = parse("ann\n\ngroup: team-3 team-3 mem=2G\n")
    assert problems == [] and roster.groups() == {"team-3": ()}
    assert warnings == ["userlist:3: group 'team-3' is given twice on this line; once is enough"]


def test_the_first_line_naming_a_group_is_known():
    roster, _, _ = parse("ann\nbob team-2\ngroup: team-1 team-2\ncat team-1\n")
    assert (roster.group_line("team-2"), roster.group_line("team-1")) == (2, 3)


@pytest.mark.parametrize(
    "text",
    [
        "x" * 200_000 + "\n",  # a user name
        "ann " + "g" * 200_000 + "\n",  # a group
        "ann mem=" + "9" * 200_000 + "Q\n",  # a limit
        "ann " + "k" * 200_000 + "=1\n",  # a setting of the line
        "group: " + "g!" * 100_000 + "\n",
    ],
)
def test_errors_quote_a_long_value_briefly(text):
    _, problems, _ = parse(text)
    assert len(problems) == 1 and len(str(problems[0])) < 400, str(problems[0])[:500]
    assert "(200001 characters)" in str(problems[0]) or "characters)" in str(problems[0])


def test_a_token_a_letter_or_two_from_admin_is_a_warning_naming_the_line():
    roster, problems, warnings = parse("ann team-1\nbob adminn\ncat amdin team-1\n")
    assert problems == [] and not roster.get("bob").admin  # still read as a group, as before
    assert warnings == [
        "userlist:2: 'adminn' is read as a group name; did you mean admin?",
        "userlist:3: 'amdin' is read as a group name; did you mean admin?",
    ]


def test_a_group_named_once_and_a_letter_from_another_is_a_warning():
    text = "ann team-1\nbob team-1\ncat team1\ngroup: chess\ndan chess\n"
    _, problems, warnings = parse(text)
    assert problems == []
    assert warnings == [
        "userlist:3: group 'team1' is named only here; did you mean team-1 (named on 2 line(s))?"
    ]
    _, _, numbered = parse("ann team-1\nbob team-2\n")  # a numbered series, both meant
    assert numbered == []


def test_closest_names_are_within_two_edits_nearest_first():
    assert closest("studnet3", ("student1", "student3", "hub-admin")) == ["student3"]
    assert closest("student", ("student2", "student1", "student3", "student4")) == [
        "student1", "student2", "student3"]  # fmt: skip
    assert closest("zzz", ("student1",)) == []
    assert closest("bob", ("rob", "bobby", "alice")) == ["rob"]  # short names: one edit
    assert edits("team1", "team-1") == 1 and edits("amdin", "admin") == 1
