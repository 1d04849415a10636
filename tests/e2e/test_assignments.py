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

from classhub import names
from classhub.runtime.single_host import sandbox
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
    """student1 and student2 edit what was handed out (one file each, while their servers run);
    the material changes; a second handout keeps both edits and updates the rest; student3
    comes late and gets everything, then works after the due time."""
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
    student2 = signed_in(hub, "student2")
    model = {"type": "file", "format": "text", "content": "x,y\n1,2\n3,4  # student2's point\n"}
    assert student2.server_api("PUT", "/contents/lab-e2e/data/points.csv", json=model).ok
    (material / "lab.ipynb").write_text(notebook("answer = None  # fixed typo"))
    (material / "data" / "points.csv").write_text("x,y\n1,2\n5,6\n")
    (material / "extra.ipynb").write_text(notebook("bonus = True"))
    dry = hub.invoke("handout", str(material), "--to", "team-1", "--as", "lab-e2e", "--dry-run")
    assert dry.returncode == 0 and "Dry run: nothing was written" in dry.stdout
    assert "extra.ipynb" not in listing(student1, "lab-e2e")

    second = hub.invoke("handout", str(material), "--to", "team-1", "--as", "lab-e2e")
    assert second.returncode == 0, second.stdout + second.stderr
    # Each student's edit is kept, the new version beside it; what they left alone is updated.
    assert "student1: 1 new, 1 updated, 1 kept yours" in second.stdout
    assert "student2: 1 new, 1 updated, 1 kept yours" in second.stdout
    assert cell_of(student1, "lab-e2e/lab.ipynb") == "answer = 42  # student1's work"
    assert cell_of(student2, "lab-e2e/lab.ipynb") == "answer = None  # fixed typo"
    got = student2.server_api("GET", "/contents/lab-e2e/data/points.csv").json()
    assert got["content"] == "x,y\n1,2\n3,4  # student2's point\n"
    points = [f for f in listing(student2, "lab-e2e/data") if f.startswith("points.updated-")]
    assert len(points) == 1 and points[0].endswith(".csv"), points
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
    got = student3.server_api("GET", "/contents/lab-e2e/data/points.csv").json()
    assert got["content"] == "x,y\n1,2\n5,6\n"  # the late student has the newest version
    save(student3, "lab-e2e/lab.ipynb", "answer = 41  # after the due time")
    collected = hub.invoke("collect", "lab-e2e", "--due", f"{due:%Y-%m-%d %H:%M:%S}")
    assert collected.returncode == 0, collected.stdout + collected.stderr
    folder = hub.paths.root / "assignments" / "lab-e2e"
    (snapshot,) = folder.glob("collected-*")
    assert snapshot.stat().st_mode & 0o777 == 0o700
    rows = {r["who"]: r for r in csv.DictReader((snapshot / "submissions.csv").open())}
    assert set(rows) == {"student1", "student2", "student3"}
    assert (rows["student1"]["handed_in"], rows["student1"]["late"]) == ("yes", "no")
    assert (rows["student2"]["handed_in"], rows["student2"]["late"]) == ("yes", "no")
    assert (rows["student3"]["handed_in"], rows["student3"]["late"]) == ("yes", "yes")
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


def nbgrader_notebook(answer: str) -> dict:
    """The assignment as nbgrader's Create Assignment toolbar marks it: an answer cell, two
    tests worth 2 and 1 points. `answer` is the body of add(a, b)."""

    def cell(cell_id: str, source: str, **nbgrader) -> dict:
        meta = {"grade": False, "locked": False, "schema_version": 3, "solution": False,
                "task": False, "grade_id": cell_id, **nbgrader}  # fmt: skip
        return {"cell_type": "code", "execution_count": None, "id": cell_id,
                "metadata": {"nbgrader": meta}, "outputs": [], "source": source}  # fmt: skip

    cells = [
        cell("answer", answer, solution=True),
        cell("test_small", "assert add(1, 2) == 3", grade=True, locked=True, points=2),
        cell("test_negative", "assert add(-1, 1) == 0", grade=True, locked=True, points=1),
    ]
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4,
            "nbformat_minor": 5}  # fmt: skip


SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n"
HANDED_OUT = "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
# What each student hands in. hub-admin's is the malicious one: it looks for the other
# submissions wherever data lives, tries the network, and forks as often as it can; add()
# then fails with what it found, which the grade's reason shows.
ANSWERS = {
    "student1": "def add(a, b):\n    return a + b\n",
    "student2": "def add(a, b):\n    return abs(a) + b\n",
    "student3": "def add(a, b):\n    while True:\n        pass\n",
    "student4": "hoard = bytearray(4 * 1024**3)\ndef add(a, b):\n    return a + b\n",
    "hub-admin": (
        "import os, socket\n"
        "leaked = []\n"
        "places = ['/grading', '/tmp', '/home', '/root', '/srv', '/mnt', '/media', '/var', '/run']\n"
        "for top, _, files in (found for place in places for found in os.walk(place)):\n"
        "    for name in files:\n"
        "        try:\n"
        "            if name.endswith('.ipynb'):\n"
        "                text = open(os.path.join(top, name), errors='replace').read()\n"
        "                if 'ab' + 's(a)' in text:  # in student2's alone\n"
        "                    leaked.append(os.path.join(top, name))\n"
        "        except OSError:\n"
        "            pass\n"
        "try:\n"
        "    socket.create_connection(('172.17.0.1', 2375), timeout=3)\n"
        "    network = 'reached the Docker engine'\n"
        "except OSError as exc:\n"
        "    network = str(exc)\n"
        "forks = 0\n"
        "try:\n"
        "    for _ in range(2000):\n"
        "        if os.fork() == 0:\n"
        "            os.execv('/bin/sleep', ['sleep', '30'])\n"
        "        forks += 1\n"
        "except OSError as exc:\n"
        "    forks = f'{forks} then {exc}'\n"
        "def add(a, b):\n"
        "    raise RuntimeError(f'leaked={leaked} network={network} forks={forks}')\n"
    ),
}


# The convention for a class without nbgrader (docs/assignments.md): grade.py runs in a copy of
# the submission, and its last line of output is the score.
GRADE_PY = """\
import json
cells = json.load(open("sums.ipynb"))["cells"]
space = {}
exec("".join(cells[0]["source"]), space)
score = int(space["add"](1, 2) == 3) + int(space["add"](-1, 1) == 0)
print("checked add")
print(json.dumps({"score": score, "max_score": 2}))
"""


def test_autograde_grades_each_submission_in_its_own_sandbox(hub: Hub, tmp_path: Path):
    key = tmp_path / "key"
    key.mkdir()
    (key / "sums.ipynb").write_text(json.dumps(nbgrader_notebook(SOLUTION)))
    release = tmp_path / "sums"
    release.mkdir()
    (release / "sums.ipynb").write_text(json.dumps(nbgrader_notebook(HANDED_OUT)))
    given = hub.invoke("handout", str(release), "--users", ",".join(ANSWERS))
    assert given.returncode == 0, given.stdout + given.stderr
    for user, answer in ANSWERS.items():
        student = signed_in(hub, user)
        model = {"type": "notebook", "format": "json", "content": nbgrader_notebook(answer)}
        saved = student.server_api("PUT", "/contents/sums/sums.ipynb", json=model)
        assert saved.status_code == 200, saved.text
    collected = hub.invoke("collect", "sums")
    assert collected.returncode == 0, collected.stdout + collected.stderr

    # What an autograde killed half way would leave: a sandbox's volume and container.
    left = names.sandbox(hub.name, "killed")
    labels = names.labels(hub.name, sandbox.KIND)
    hub.client.volumes.create(left, labels=labels)
    hub.client.containers.create(hub.image, ["true"], name=left, labels=labels,
                                 volumes={left: {"bind": "/grading", "mode": "rw"}})  # fmt: skip

    graded = hub.invoke("autograde", "sums", "--key", str(key), "--timeout", "5",
                        "--memory", "300M", timeout=1800)  # fmt: skip
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    assert "Removed 2 container(s) and volume(s) of sandboxes an earlier autograde" in graded.stdout
    assert not hub.client.volumes.list(filters={"name": left})
    (folder,) = (hub.paths.root / "assignments" / "sums").glob("autograded-*")
    rows = {r["who"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert set(rows) == set(ANSWERS), rows
    scores = {who: (r["score"], r["max_score"]) for who, r in rows.items()}
    assert scores["student1"] == ("3", "3"), rows["student1"]
    assert scores["student2"] == ("2", "3"), rows["student2"]
    assert "test_negative: AssertionError" in rows["student2"]["reasons"]
    assert scores["student3"] == ("0", "3") and "CellTimeoutError" in rows["student3"]["reasons"]
    assert rows["student4"]["score"] == "0" and "memory" in rows["student4"]["reasons"]
    bad = rows["hub-admin"]
    assert bad["score"] == "0" and "leaked=[]" in bad["reasons"], bad
    assert "network=[Errno 101] Network is unreachable" in bad["reasons"], bad
    assert "then [Errno 11] Resource temporarily unavailable" in bad["reasons"], bad
    assert (folder / "feedback" / "student1" / "sums.html").exists()

    # The same submissions, graded by a grade.py of the instructor's instead of nbgrader.
    script = tmp_path / "script-key"
    script.mkdir()
    (script / "grade.py").write_text(GRADE_PY)
    graded = hub.invoke("autograde", "sums", "--key", str(script), "--timeout", "5",
                        "--memory", "300M", timeout=1800)  # fmt: skip
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    newest = sorted((hub.paths.root / "assignments" / "sums").glob("autograded-*"))[-1]
    rows = {r["who"]: r for r in csv.DictReader((newest / "grades.csv").open())}
    scores = {who: (r["score"], r["max_score"]) for who, r in rows.items()}
    assert scores["student1"] == ("2", "2") and scores["student2"] == ("1", "2"), rows
    assert "grade.py ran longer than 5s" in rows["student3"]["reasons"], rows["student3"]
    assert rows["student4"]["score"] == rows["hub-admin"]["score"] == "0", rows
    assert "checked add" in (newest / "feedback" / "student1" / "feedback.txt").read_text()

    returned = hub.invoke("return", "sums", str(folder / "feedback"))
    assert returned.returncode == 0, returned.stdout + returned.stderr
    student1 = signed_in(hub, "student1")
    got = student1.server_api("GET", "/contents/sums/feedback/sums.html")
    assert got.status_code == 200 and "test_small" in got.json()["content"]
    assert not hub.client.containers.list(all=True, filters={"name": f"{hub.name}-sandbox-"})
