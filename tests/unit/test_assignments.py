"""Hand out, collect and return against the in-memory engine: what each student gets, what is
kept, what a collect copies and lists, and that bad input changes nothing.

tests/e2e/test_assignments.py proves the same tasks on a real engine, with real students' servers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from classhub import assignments, commands, grading, names
from classhub.console import Output
from classhub.errors import UserError
from classhub.paths import Paths
from classhub.runtime import SandboxRun
from classhub.runtime.fake import FakeEngine
from tests.conftest import PROJECT, clean_environ, make_checkout

HUB = "math"


@pytest.fixture
def clone(tmp_path: Path) -> Paths:
    paths = make_checkout(tmp_path / "clone")
    shutil.copytree(PROJECT / "grading", paths.root / "grading")  # what autograde builds
    (paths.root / "userlist").write_text("ann teamA\nbob teamA\ncy\nteach admin\n")
    return paths


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, clone: Paths) -> FakeEngine:
    fake = FakeEngine(HUB)
    for user in ("ann", "bob", "cy", "teach"):
        fake.ensure_volume(names.user_volume(HUB, user), "user")
    fake.ensure_volume(names.group_volume(HUB, "teama"), "group")
    monkeypatch.setattr(commands, "runtime", lambda environ, settings: fake)
    return fake


@pytest.fixture
def material(tmp_path: Path) -> Path:
    folder = tmp_path / "week1"
    (folder / "data").mkdir(parents=True)
    (folder / "lab.ipynb").write_text("v1")
    (folder / "data" / "points.csv").write_text("x,y\n")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "lab-checkpoint.ipynb").write_text("not material")
    return folder


def run(task, paths: Paths, *args, **kwargs) -> str:
    printed = io.StringIO()
    task(paths, clean_environ(HUB_NAME=HUB), Output(printed, io.StringIO()), *args, **kwargs)
    return printed.getvalue()


def home(engine: FakeEngine, user: str) -> dict[str, bytes]:
    return engine.volumes[names.user_volume(HUB, user)].files


def test_a_handout_reaches_every_student_but_admins_and_a_second_keeps_their_edits(
    clone: Paths, engine: FakeEngine, material: Path
):
    said = run(commands.handout, clone, str(material))
    for user in ("ann", "bob", "cy"):
        assert home(engine, user) == {"week1/lab.ipynb": b"v1", "week1/data/points.csv": b"x,y\n"}
    assert home(engine, "teach") == {}
    assert "ann: 2 new" in said

    home(engine, "ann")["week1/lab.ipynb"] = b"ann's answers"
    (material / "lab.ipynb").write_text("v2")
    (material / "extra.ipynb").write_text("bonus")
    said = run(commands.handout, clone, str(material))

    ann = home(engine, "ann")
    assert ann["week1/lab.ipynb"] == b"ann's answers"  # never overwritten
    beside = [p for p in ann if p.startswith("week1/lab.updated-")]
    assert len(beside) == 1 and beside[0].endswith(".ipynb") and ann[beside[0]] == b"v2"
    assert ann["week1/extra.ipynb"] == b"bonus"
    assert home(engine, "bob")["week1/lab.ipynb"] == b"v2"  # untouched: updated
    assert "ann: 1 new, 1 kept yours, 1 unchanged" in said
    assert f"the new version is beside it as {beside[0].removeprefix('week1/')}" in said
    assert "bob: 1 new, 1 updated, 1 unchanged" in said

    before = list(engine.events)
    said = run(commands.handout, clone, str(material))  # nothing new: nothing written
    assert engine.events == before
    assert "ann: 3 unchanged" in said


def test_a_deleted_file_comes_back_and_a_late_student_gets_everything(
    clone: Paths, engine: FakeEngine, material: Path
):
    run(commands.handout, clone, str(material), users="ann")
    del home(engine, "ann")["week1/data/points.csv"]
    said = run(commands.handout, clone, str(material), users="ann,cy")
    assert home(engine, "ann")["week1/data/points.csv"] == b"x,y\n"
    assert "week1/data/points.csv: restored" in said
    assert set(home(engine, "cy")) == {"week1/lab.ipynb", "week1/data/points.csv"}


def test_dry_run_writes_nothing_and_no_record(clone: Paths, engine: FakeEngine, material: Path):
    said = run(commands.handout, clone, str(material), dry_run=True)
    assert home(engine, "ann") == {}
    assert not (clone.root / "assignments").exists()
    assert "ann: 2 new" in said and "nothing was written" in said


def test_a_file_of_theirs_named_like_the_folder_stops_them_alone(
    clone: Paths, engine: FakeEngine, material: Path
):
    home(engine, "bob")["week1"] = b"bob's own file"
    with pytest.raises(UserError, match="nothing was handed to bob"):
        run(commands.handout, clone, str(material))
    assert home(engine, "bob") == {"week1": b"bob's own file"}
    assert home(engine, "ann")["week1/lab.ipynb"] == b"v1"


def test_group_folders_get_it_once_for_the_group(clone: Paths, engine: FakeEngine, material: Path):
    run(commands.handout, clone, str(material), to="teamA", group_folder=True)
    team = engine.volumes[names.group_volume(HUB, "teama")].files
    assert team["week1/lab.ipynb"] == b"v1"
    assert home(engine, "ann") == {}


def test_a_git_repository_is_handed_out_at_its_newest_commit(
    clone: Paths, engine: FakeEngine, tmp_path: Path
):
    repo = tmp_path / "course"
    repo.mkdir()
    (repo / "intro.ipynb").write_text("from git")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    bare = tmp_path / "course.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    run(commands.handout, clone, str(bare), users="cy")
    assert home(engine, "cy") == {"course/intro.ipynb": b"from git"}


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"source": "no/such/folder"}, "SOURCE no/such/folder: no such folder on this server"),
        ({"source": "file:///no/such/repo.git"}, "git could not clone it"),
        ({"to": "nosuch"}, "--to nosuch: no such group in userlist (groups: teama)"),
        ({"users": "ann,zed"}, "--users: zed not on the roster"),
        ({"name": "../up"}, "--as '../up': not a folder name"),
        ({"users": "ann", "group_folder": True}, "takes --to GROUP, not --users"),
    ],
)
def test_bad_input_is_one_clear_message_and_changes_nothing(
    clone: Paths, engine: FakeEngine, material: Path, kwargs: dict, says: str
):
    kwargs.setdefault("source", str(material))
    source = kwargs.pop("source")
    before = list(engine.events)
    with pytest.raises(UserError) as raised:
        run(commands.handout, clone, source, **kwargs)
    assert says in str(raised.value)
    assert engine.events == before
    assert not (clone.root / "assignments").exists()


def test_a_home_not_made_yet_is_named_before_anything_is_written(
    clone: Paths, engine: FakeEngine, material: Path
):
    del engine.volumes[names.user_volume(HUB, "cy")]
    before = list(engine.events)
    with pytest.raises(UserError, match="no home or group folder yet for cy: run invoke sync"):
        run(commands.handout, clone, str(material))
    assert engine.events == before


def test_collect_copies_each_folder_lists_who_is_late_and_changes_nothing(
    clone: Paths, engine: FakeEngine, material: Path
):
    run(commands.handout, clone, str(material), users="ann,bob,cy")
    due = dt.datetime(2026, 12, 1, 17, 0).astimezone()
    volume = engine.volumes[names.user_volume(HUB, "ann")]
    volume.files["week1/lab.ipynb"] = b"ann's"
    volume.times["week1/lab.ipynb"] = due.timestamp() - 60
    volume.times["week1/data/points.csv"] = due.timestamp() - 120
    bob = engine.volumes[names.user_volume(HUB, "bob")]
    bob.files["week1/lab.ipynb"] = b"bob's, late"
    bob.times["week1/lab.ipynb"] = due.timestamp() + 60
    bob.times["week1/data/points.csv"] = due.timestamp() + 90  # as handed out: not late
    bob.files["week1/big.bin"] = b"x" * 2048
    bob.files["week1/feedback/old.html"] = b"ours"
    bob.files["week1/.ipynb_checkpoints/lab-checkpoint.ipynb"] = b"JupyterLab's"
    engine.volumes[names.user_volume(HUB, "cy")].files.clear()
    before = {n: dict(v.files) for n, v in engine.volumes.items()}

    folder = commands.collect(
        clone, clean_environ(HUB_NAME=HUB), Output(io.StringIO(), io.StringIO()), "week1",
        due="2026-12-01 17:00", max_size="1K",
    )  # fmt: skip
    assert {n: v.files for n, v in engine.volumes.items()} == before
    assert (folder / "ann" / "lab.ipynb").read_bytes() == b"ann's"
    assert not (folder / "bob" / "big.bin").exists()
    assert not (folder / "bob" / "feedback").exists()
    assert not (folder / "bob" / ".ipynb_checkpoints").exists()
    assert folder.stat().st_mode & 0o777 == 0o700
    rows = {r["who"]: r for r in csv.DictReader((folder / "submissions.csv").open())}
    assert (rows["ann"]["late"], rows["bob"]["late"]) == ("no", "yes")
    assert rows["cy"]["handed_in"] == "no" and "nothing handed in" in rows["cy"]["note"]
    assert (rows["ann"]["files_changed"], rows["bob"]["files_changed"]) == ("1", "1")
    assert "big.bin: larger than 1.0 KB (2.0 KB)" in rows["bob"]["note"]
    files = list(csv.DictReader((folder / "files.csv").open()))
    points = next(r for r in files if (r["who"], r["file"]) == ("bob", "data/points.csv"))
    assert (points["changed"], points["late"]) == ("no (as handed out)", "")
    assert {(r["who"], r["file"]) for r in files if r["collected"] == "yes"} == {
        ("ann", "lab.ipynb"), ("ann", "data/points.csv"),
        ("bob", "lab.ipynb"), ("bob", "data/points.csv"),
    }  # fmt: skip


def test_collect_before_any_handout_names_the_fix_and_makes_nothing(
    clone: Paths, engine: FakeEngine
):
    with pytest.raises(
        UserError, match=r"no handout named week9 .*invoke handout SOURCE --as week9"
    ):
        run(commands.collect, clone, "week9")
    assert not (clone.root / "assignments").exists()


def test_return_puts_feedback_in_each_named_home_and_refuses_unknown_names_first(
    clone: Paths, engine: FakeEngine, material: Path, tmp_path: Path
):
    run(commands.handout, clone, str(material), users="ann,bob")
    feedback = tmp_path / "feedback"
    (feedback / "ann").mkdir(parents=True)
    (feedback / "ann" / "lab.html").write_text("well done")
    (feedback / "zed").mkdir()
    (feedback / "zed" / "lab.html").write_text("?")
    with pytest.raises(UserError, match=r"no handout named week2 .handed out so far: week1."):
        run(commands.return_feedback, clone, "week2", str(feedback))
    before = list(engine.events)
    with pytest.raises(UserError, match="zed not users on the roster"):
        run(commands.return_feedback, clone, "week1", str(feedback))
    assert engine.events == before
    (feedback / "zed" / "lab.html").unlink()
    (feedback / "zed").rmdir()
    run(commands.return_feedback, clone, "week1", str(feedback))
    assert home(engine, "ann")["week1/feedback/lab.html"] == b"well done"
    assert "week1/feedback/lab.html" not in home(engine, "bob")


def test_the_archive_gives_new_files_to_the_students_user_and_leaves_their_folders_alone():
    tar = assignments.archive("week1", "user", ("", "data"), {"data/a.csv": b"1"})
    with tarfile.open(fileobj=io.BytesIO(tar)) as opened:
        members = {m.name: m for m in opened}
    assert set(members) == {"week1", "week1/data", "week1/data/a.csv"}
    assert all((m.uid, m.gid) == (1000, 100) for m in members.values())
    assert members["week1/data/a.csv"].mode == 0o644
    again = assignments.archive("week1", "group", (), {"b.ipynb": b"2"})
    with tarfile.open(fileobj=io.BytesIO(again)) as opened:
        (only,) = opened.getmembers()
    assert (only.name, only.mode) == ("week1/b.ipynb", 0o664)


# --- autograde's host side (the sandboxes themselves: tests/e2e/test_assignments.py) ----------


def result_tar(result: dict | None, feedback: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        files = {f"out/feedback/{p}": d for p, d in (feedback or {}).items()}
        if result is not None:
            files["out/result.json"] = json.dumps(result).encode()
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


BOX = grading.limits(5, 256 * 1024**2, 1.0)


def test_a_sandboxs_end_becomes_a_grade_with_its_reasons():
    done = SandboxRun(False, 0, False, result_tar(
        {"score": 2, "max_score": 3, "reasons": ["lab/test_b: AssertionError"]},
        {"lab.html": b"<p>"}), "")  # fmt: skip
    grade = grading.read_run("ann", done, BOX, 5)
    assert (grade.score, grade.max_score, grade.reasons) == (2, 3, ("lab/test_b: AssertionError",))
    assert grade.feedback == {"lab.html": b"<p>"}

    killed = grading.read_run("bob", SandboxRun(True, None, False, b"", ""), BOX, 5)
    assert killed.score == 0 and "stopped after 75s" in killed.reasons[0]
    hungry = grading.read_run("cy", SandboxRun(False, 137, True, b"", "Killed"), BOX, 5)
    assert hungry.score == 0 and "used more than 256.0 MB of memory" in hungry.reasons[0]
    silent = grading.read_run("dee", SandboxRun(False, 1, False, b"", "boom\n"), BOX, 5)
    assert silent.reasons == ("the grader left no result (exit code 1): boom",)


def test_autograde_grades_every_submission_of_the_newest_collect_once(
    clone: Paths, engine: FakeEngine, material: Path, tmp_path: Path, monkeypatch
):
    key = tmp_path / "key"
    key.mkdir()
    (key / "grade.py").write_text('print(\'{"score": 1, "max_score": 1}\')')
    with pytest.raises(UserError, match="nothing collected for week1 yet: run invoke collect"):
        run(commands.autograde, clone, "week1", str(key))
    run(commands.handout, clone, str(material), users="ann,bob")
    home(engine, "ann")["week1/lab.ipynb"] = b"ann's"
    run(commands.collect, clone, "week1")
    seen: list[bytes] = []

    def graded(files: bytes) -> SandboxRun:
        seen.append(files)
        return SandboxRun(False, 0, False, result_tar({"score": 1, "max_score": 1}), "")

    engine.sandbox_result = graded
    engine.images[names.notebook_image(HUB)] = engine.images["debian:bookworm-slim"]
    with pytest.raises(
        UserError, match=r"holds neither nbgrader source notebooks .* nor a grade.py"
    ):
        run(commands.autograde, clone, "week1", str(material))
    said = run(commands.autograde, clone, "week1", str(key), timeout=5)
    assert len(seen) == 2 and "ann: 1/1" in said
    with tarfile.open(fileobj=io.BytesIO(seen[0])) as sent:
        members = {m.name: m for m in sent}
    assert {"job.json", "key/grade.py", "submission/lab.ipynb", "out"} <= set(members)
    assert members["submission/lab.ipynb"].uid == 0  # the submission's code cannot change it
    assert (members["out"].uid, members["out"].gid) == (1000, 100)
    (folder,) = (clone.root / "assignments" / "week1").glob("autograded-*")
    rows = {r["who"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert set(rows) == {"ann", "bob"} and rows["ann"]["score"] == "1"


def test_bad_sizes_and_limits_name_the_option_and_change_nothing(
    clone: Paths, engine: FakeEngine, material: Path, tmp_path: Path
):
    run(commands.handout, clone, str(material), users="ann")
    with pytest.raises(UserError, match=r"--max-size lots is not a size; .* e.g. --max-size 200M"):
        run(commands.collect, clone, "week1", max_size="lots")
    with pytest.raises(UserError, match="--due tomorrow: not a time"):
        run(commands.collect, clone, "week1", due="tomorrow")
    assert not list((clone.root / "assignments" / "week1").glob("collected-*"))
    run(commands.collect, clone, "week1")
    for kwargs, says in [({"memory": "much"}, "--memory much is not a size"),
                         ({"timeout": 0}, "--timeout 0: give the seconds"),
                         ({"cpus": 99.0}, "--cpus 99.0: give between 0.1 and"),
                         ({"parallel": -1}, "--parallel -1: give how many")]:  # fmt: skip
        with pytest.raises(UserError, match=says):
            run(commands.autograde, clone, "week1", str(tmp_path), **kwargs)
    assert not list((clone.root / "assignments" / "week1").glob("autograded-*"))


def test_a_damaged_record_is_named_with_the_way_out(clone: Paths, engine: FakeEngine, material):
    run(commands.handout, clone, str(material), users="ann")
    (clone.root / "assignments" / "week1" / "handout.json").write_text("{half")
    with pytest.raises(UserError, match=r"handout.json is damaged .not JSON.; move it away"):
        run(commands.handout, clone, str(material), users="ann")


def test_group_folders_are_collected_and_given_feedback_as_one_submission_each(
    clone: Paths, engine: FakeEngine, material: Path, tmp_path: Path
):
    run(commands.handout, clone, str(material), group_folder=True)  # every group's folder
    team = engine.volumes[names.group_volume(HUB, "teama")]
    team.files["week1/lab.ipynb"] = b"the team's answers"
    folder = commands.collect(clone, clean_environ(HUB_NAME=HUB),
                              Output(io.StringIO(), io.StringIO()), "week1", groups=True)  # fmt: skip
    assert (folder / "teama" / "lab.ipynb").read_bytes() == b"the team's answers"
    with pytest.raises(UserError, match="was not handed into any homes still on the roster"):
        run(commands.collect, clone, "week1")
    feedback = tmp_path / "feedback"
    (feedback / "teamA").mkdir(parents=True)
    (feedback / "teamA" / "lab.html").write_text("good teamwork")
    with pytest.raises(UserError, match="teamA not users on the roster"):
        run(commands.return_feedback, clone, "week1", str(feedback))
    run(commands.return_feedback, clone, "week1", str(feedback), groups=True)
    assert team.files["week1/feedback/lab.html"] == b"good teamwork"
    assert home(engine, "ann") == {}


def test_an_autograde_stopped_starts_no_other_sandbox(
    clone: Paths, engine: FakeEngine, material: Path, tmp_path: Path
):
    run(commands.handout, clone, str(material), users="ann,bob,cy")
    run(commands.collect, clone, "week1")
    key = tmp_path / "key"
    key.mkdir()
    (key / "grade.py").write_text('print(\'{"score": 1, "max_score": 1}\')')
    engine.images[names.notebook_image(HUB)] = engine.images["debian:bookworm-slim"]
    calls: list[int] = []

    def interrupted(files: bytes) -> SandboxRun:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C, as the first sandbox ends
        time.sleep(0.3)  # one more may have started meanwhile; it finishes
        return SandboxRun(False, 0, False, result_tar({"score": 1, "max_score": 1}), "")

    engine.sandbox_result = interrupted
    with pytest.raises(KeyboardInterrupt):
        run(commands.autograde, clone, "week1", str(key), parallel=1)
    assert len(calls) <= 2  # of three submissions
    assert not list((clone.root / "assignments" / "week1").glob("autograded-*"))


def test_feedback_that_cannot_be_read_whole_stops_return_before_anything_is_written(
    clone: Paths, engine: FakeEngine, material: Path, tmp_path: Path, monkeypatch
):
    run(commands.handout, clone, str(material), users="ann,bob")
    feedback = tmp_path / "feedback"
    for user, text in (("ann", "a long report"), ("bob", "ok"), ("cy", "")):
        (feedback / user).mkdir(parents=True)
        if text:
            (feedback / user / "lab.html").write_text(text)
    monkeypatch.setattr(assignments, "MAX_SOURCE", 5)  # ann's is too large
    before = list(engine.events)
    with pytest.raises(UserError, match=r"feedback/ann: more than 5 B of files"):
        run(commands.return_feedback, clone, "week1", str(feedback))
    assert engine.events == before
    monkeypatch.setattr(assignments, "MAX_SOURCE", 500 * 1024**2)
    run(commands.return_feedback, clone, "week1", str(feedback))  # cy's empty folder: skipped
    assert home(engine, "bob")["week1/feedback/lab.html"] == b"ok"
