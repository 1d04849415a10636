"""The rehearsal's figures and picture (the e2e tests run rehearsals on the real hub)."""

from __future__ import annotations

from PIL import Image

from classhub import rehearse
from classhub.inputs.roster import parse_userlist


def test_a_sustained_rehearsal_sums_up_every_cell_and_lists_the_failed_ones():
    timings = [rehearse.Timing(f"_rehearse-{i}", 0.0, 0.1, 1.0, 1.0) for i in (1, 2)]
    assert "each cell" not in rehearse.summary(timings)  # a class start only: no cell row
    timings[0].cell_times = [0.1, 0.2, 0.3]
    timings[1].cell_times = [0.4]
    timings[1].cell_failures = ["cell 2: StudentError: no execute_reply in 60.0s"]
    text = rehearse.summary(timings)
    row = next(line for line in text.splitlines() if line.startswith("each cell"))
    assert row.split()[2:] == ["0.25s", "0.39s", "0.40s", "4/5"]
    assert "Failed cells: 1" in text
    assert "_rehearse-2: cell 2: StudentError: no execute_reply" in text
    assert "Failures: 0" in text  # every student started; a failed cell is counted on its own


def test_temporary_names_can_never_be_roster_names():
    users = rehearse.temporary_users(120)
    assert users[0] == "_rehearse-001" and users[-1] == "_rehearse-120"
    roster, problems, _ = parse_userlist("\n".join(users[:3]) + "\n", "hub-admin")
    assert roster is None and len(problems) == 3


def test_summary_gives_median_95th_max_and_each_failure():
    timings = [
        rehearse.Timing(f"_rehearse-{i:02d}", float(i), 0.1, float(i), 1.0) for i in range(1, 21)
    ]
    timings.append(
        rehearse.Timing(
            "_rehearse-21", 5.0, 0.2, failure="server: StudentError: not ready after 600s"
        )
    )
    text = rehearse.summary(timings)
    row = next(line for line in text.splitlines() if line.startswith("server ready"))
    assert row.split()[2:] == ["10.50s", "19.05s", "20.00s", "20/21"]
    assert "Failures: 1" in text and "_rehearse-21: server: StudentError: not ready" in text
    assert timings[0].total == 0.1 + 1.0 + 1.0 and timings[-1].total is None
    assert "Waited in the hub's line" not in text
    timings[0].waited = timings[4].waited = True
    assert "Waited in the hub's line for a turn to start: 2 of 21" in rehearse.summary(timings)


def test_the_hubs_line_messages_are_recognised():
    # The messages classhub_hub/spawner.py yields while a server waits for its turn.
    assert rehearse._in_line("Waiting for a turn to start: 3 ahead of you")
    assert rehearse._in_line("Next in line to start")
    assert not rehearse._in_line("Starting your server")
    assert not rehearse._in_line("Server requested")


def test_percentile_interpolates():
    assert rehearse.percentile([1.0], 0.95) == 1.0
    assert rehearse.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert round(rehearse.percentile(list(map(float, range(1, 101))), 0.95), 2) == 95.05


def test_the_timeline_has_a_line_per_student(tmp_path):
    timings = [rehearse.Timing(f"_rehearse-{i:02d}", i * 0.5, 0.2, 3.0 + i, 1.0) for i in range(8)]
    timings[3].kernel, timings[3].failure = None, "kernel: the kernel died"
    path = tmp_path / "timeline.png"
    rehearse.draw_timeline(path, timings)
    image = Image.open(path)
    assert image.size[1] == 30 + 14 * 8 + 40
    # Each student's row holds the spawn colour somewhere along it.
    pixels = image.convert("RGB")
    for index in range(8):
        y = 30 + index * 14 + 7
        assert any(pixels.getpixel((x, y)) == rehearse.COLOURS["spawn"] for x in range(110, 1030))


def test_with_user_subdomains_rehearsal_students_open_the_public_url_at_the_hubs_address():
    from classhub.inputs.parsers import Context
    from classhub.inputs.settings import load_settings
    from classhub.rehearse import student_url
    from classhub.runtime.fake import FakeEngine
    from tests.conftest import PROJECT

    def url(env: str):
        settings, problems, _ = load_settings(env, ".env", {}, Context(PROJECT, 2))
        assert not problems
        return student_url(settings, FakeEngine("hub"))  # PROXY=none: the published port

    assert url("PORT=8001\n") == ("http://127.0.0.1:8001/hub/", None)
    assert url("PORT=8001\nPUBLIC_URL=https://jupyter.uni.edu/hub/\nUSER_SUBDOMAINS=true\n") == (
        "https://jupyter.uni.edu/hub/",
        "127.0.0.1:8001",
    )
