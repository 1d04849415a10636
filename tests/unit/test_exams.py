"""state/exams.json, as `invoke exam` writes it and the firewall and `invoke status` read it."""

from __future__ import annotations

import json
import time

from classhub import exams
from classhub.paths import Paths


def test_start_stop_and_what_is_in_progress(checkout: Paths):
    assert exams.in_progress(checkout) == {}
    assert exams.start(checkout, "team-1", None)
    assert not exams.start(checkout, "team-1", None), "the same exam again changes nothing"
    later = time.time() + 3600
    assert exams.start(checkout, "team-2", later)
    assert exams.in_progress(checkout) == {"team-1": None, "team-2": int(later)}
    assert exams.stop(checkout, "team-1")
    assert not exams.stop(checkout, "team-1"), "no exam to stop"
    assert list(exams.in_progress(checkout)) == ["team-2"]
    assert exams.path(checkout).stat().st_mode & 0o777 == 0o600


def test_an_ended_exam_is_no_longer_in_progress_and_goes_at_the_next_write(checkout: Paths):
    exams.start(checkout, "team-1", time.time() + 1)
    assert exams.in_progress(checkout, now=time.time() + 2) == {}
    assert exams.in_progress(checkout, now=time.time()) != {}
    time.sleep(1.1)
    exams.start(checkout, "team-2", None)
    written = json.loads(exams.path(checkout).read_text())
    assert list(written["groups"]) == ["team-2"]


def test_moving_an_exams_end_keeps_when_it_started(checkout: Paths):
    exams.start(checkout, "team-1", time.time() + 60)
    started = exams.read(checkout)["team-1"]["started"]
    assert exams.start(checkout, "team-1", time.time() + 120)
    assert exams.read(checkout)["team-1"]["started"] == started


def test_describe_says_when_it_ends_on_this_servers_clock():
    assert exams.describe(None) == "until invoke exam stop"
    noon = time.mktime((2026, 11, 30, 11, 30, 0, 0, 0, -1))
    assert exams.describe(noon) == "until 11:30"
