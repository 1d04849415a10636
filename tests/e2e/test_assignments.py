"""Course materials on a real hub: hand out while servers run, edit through JupyterLab's contents
API, hand out again, collect against a due time, return feedback (docs/assignments.md).

Uses the shared hub's team-1 (student1, student2) and student3, under assignment names no other
test uses.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from pathlib import Path

from classhub.student import Browser

from .conftest import Hub


def notebook(source: str) -> str:
    cell = {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
            "outputs": [], "source": source}  # fmt: skip
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def signed_in(hub: Hub, user: str) -> Browser:
    student = Browser(hub.url, user)
    assert student.login(hub.passwords[user]).status_code == 302
    student.start()
    assert student.open_lab().status_code == 200  # the server's own sign-in, through the hub
    return student


def cell_of(student: Browser, path: str) -> str:
    got = student.server_api("GET", f"/contents/{path}")
    assert got.status_code == 200, got.text
    return "".join(got.json()["content"]["cells"][0]["source"])


def save(student: Browser, path: str, source: str) -> None:
    model = {"type": "notebook", "format": "json", "content": json.loads(notebook(source))}
    saved = student.server_api("PUT", f"/contents/{path}", json=model)
    assert saved.status_code in (200, 201), saved.text


def listing(student: Browser, path: str) -> set[str]:
    got = student.server_api("GET", f"/contents/{path}")
    assert got.status_code == 200, got.text
    return {item["name"] for item in got.json()["content"]}


def test_handout_edit_handout_again_collect_late_and_return_feedback(hub: Hub, tmp_path: Path):
    material = tmp_path / "lab1"
    (material / "data").mkdir(parents=True)
    (material / "lab.ipynb").write_text(notebook("answer = None"))
    (material / "data" / "points.csv").write_text("x,y\n1,2\n")

    student1 = signed_in(hub, "student1")  # a running server: the files arrive while it runs
    first = hub.invoke("handout", str(material), "--to", "team-1", "--as", "lab-e2e")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "student1: 2 new" in first.stdout and "student2: 2 new" in first.stdout
    assert cell_of(student1, "lab-e2e/lab.ipynb") == "answer = None"
    got = student1.server_api("GET", "/contents/lab-e2e/data/points.csv").json()
    assert got["writable"] and got["content"] == "x,y\n1,2\n"

    save(student1, "lab-e2e/lab.ipynb", "answer = 42  # student1's work")
    (material / "lab.ipynb").write_text(notebook("answer = None  # fixed typo"))
    (material / "extra.ipynb").write_text(notebook("bonus = True"))
    dry = hub.invoke("handout", str(material), "--to", "team-1", "--as", "lab-e2e", "--dry-run")
    assert dry.returncode == 0 and "Dry run: nothing was written" in dry.stdout
    assert "extra.ipynb" not in listing(student1, "lab-e2e")

    second = hub.invoke("handout", str(material), "--to", "team-1", "--as", "lab-e2e")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "student1: 1 new, 1 kept yours, 1 unchanged" in second.stdout
    assert "student2: 1 new, 1 updated, 1 unchanged" in second.stdout
    assert cell_of(student1, "lab-e2e/lab.ipynb") == "answer = 42  # student1's work"
    files = listing(student1, "lab-e2e")
    beside = [f for f in files if f.startswith("lab.updated-") and f.endswith(".ipynb")]
    assert len(beside) == 1 and "extra.ipynb" in files, files
    assert cell_of(student1, f"lab-e2e/{beside[0]}") == "answer = None  # fixed typo"

    late = hub.invoke("handout", str(material), "--users", "student3", "--as", "lab-e2e")
    assert late.returncode == 0 and "student3: 3 new" in late.stdout, late.stdout + late.stderr

    time.sleep(1.1)  # file times have whole seconds in the archive
    due = dt.datetime.now()
    time.sleep(1.1)
    student3 = signed_in(hub, "student3")
    save(student3, "lab-e2e/lab.ipynb", "answer = 41  # after the due time")
    collected = hub.invoke("collect", "lab-e2e", "--due", f"{due:%Y-%m-%d %H:%M:%S}")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    folder = hub.paths.root / "assignments" / "lab-e2e"
    (snapshot,) = folder.glob("collected-*")
    assert snapshot.stat().st_mode & 0o777 == 0o700
    rows = {r["who"]: r for r in csv.DictReader((snapshot / "submissions.csv").open())}
    assert set(rows) == {"student1", "student2", "student3"}
    assert (rows["student1"]["handed_in"], rows["student1"]["late"]) == ("yes", "no")
    assert (rows["student3"]["handed_in"], rows["student3"]["late"]) == ("yes", "yes")
    assert rows["student2"]["handed_in"] == "no"
    assert "answer = 42" in (snapshot / "student1" / "lab.ipynb").read_text()
    assert (snapshot / "student2" / "extra.ipynb").exists()  # the whole folder, for a grader
    assert cell_of(student1, "lab-e2e/lab.ipynb") == "answer = 42  # student1's work"

    feedback = tmp_path / "feedback"
    (feedback / "student1").mkdir(parents=True)
    (feedback / "student1" / "lab.html").write_text("<p>42 is right</p>")
    returned = hub.invoke("return", "lab-e2e", str(feedback))
    assert returned.returncode == 0, returned.stdout + returned.stderr
    got = student1.server_api("GET", "/contents/lab-e2e/feedback/lab.html")
    assert got.status_code == 200 and got.json()["content"] == "<p>42 is right</p>"


def test_group_folders_and_bad_input(hub: Hub, tmp_path: Path):
    material = tmp_path / "project"
    material.mkdir()
    (material / "plan.ipynb").write_text(notebook("plan = []"))
    given = hub.invoke("handout", str(material), "--to", "team-2", "--to-group-folder")
    assert given.returncode == 0, given.stdout + given.stderr
    student4 = signed_in(hub, "student4")
    assert cell_of(student4, "team-2/project/plan.ipynb") == "plan = []"
    save(student4, "team-2/project/plan.ipynb", "plan = ['build it']")
    collected = hub.invoke("collect", "project", "--groups")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    (snapshot,) = (hub.paths.root / "assignments" / "project").glob("collected-*")
    rows = {r["who"]: r for r in csv.DictReader((snapshot / "submissions.csv").open())}
    assert set(rows) == {"team-2"} and rows["team-2"]["handed_in"] == "yes"

    for args, says in [
        (("collect", "never-handed"), "no handout named never-handed"),
        (("handout", str(tmp_path / "nothing-here")), "no such folder on this server"),
        (("handout", str(material), "--to", "team-9"), "--to team-9: no such group"),
        (("handout", str(material), "--users", "nobody"), "--users: nobody not on the roster"),
        (("handout", "https://127.0.0.1:9/none.git"), "git could not clone it"),
    ]:
        refused = hub.invoke(*args)
        assert refused.returncode == 1, refused.stdout
        assert says in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert not (hub.paths.root / "assignments" / "never-handed").exists()
    assert not (hub.paths.root / "assignments" / "nothing-here").exists()
