"""Benchmark: hand out to, collect from and autograde a class, on the real engine.

Run from the checkout with the engine up (invoke engine) and the dev tools installed:
    .venv/bin/python -m bench.assignments [--users 50] [--grade 10]
It sets up a throwaway hub with N students (images are built first if missing; nobody logs in,
so no server runs), then times: the first `invoke handout` of a folder of three notebooks (one
marked for nbgrader) and 1 MB of data; the same handout again (nothing to do); one after the
material changed; `invoke collect`; and `invoke autograde` of the first `--grade` submissions,
with a grade.py key and with nbgrader (the grading image is built first, and timed apart). It prints the figures, writes them to
bench/results/assignments.json, and removes the hub's objects.
Target: hand out to and collect from a class of 50 in well under a minute each.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import docker

from bench.backup import timed
from tests.e2e.conftest import engine_environ, free_port, new_checkout, sweep

RESULTS = Path(__file__).parent / "results" / "assignments.json"
GRADE_PY = """\
import json, pathlib
text = pathlib.Path("lab2.ipynb").read_text()
print(json.dumps({"score": 1 if "cells" in text else 0, "max_score": 1}))
"""
SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n"
HANDED_OUT = "def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"


def nbgrader_lab(answer: str) -> str:
    """lab1.ipynb as nbgrader marks it: an answer cell and a test worth a point."""

    def cell(cell_id: str, source: str, **marks) -> dict:
        meta = {"grade": False, "locked": False, "schema_version": 3, "solution": False,
                "task": False, "grade_id": cell_id, **marks}  # fmt: skip
        return {"cell_type": "code", "execution_count": None, "id": cell_id,
                "metadata": {"nbgrader": meta}, "outputs": [], "source": source}  # fmt: skip

    cells = [cell("answer", answer, solution=True),
             cell("test", "assert add(1, 2) == 3", grade=True, locked=True, points=1)]  # fmt: skip
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return json.dumps({"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4,
                       "nbformat_minor": 5})  # fmt: skip


def notebook(text: str) -> str:
    cell = {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": text}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--grade", type=int, default=10, help="submissions autograded")
    args = parser.parse_args()
    client = docker.from_env(environment=engine_environ())
    name = f"bench{secrets.token_hex(3)}"
    roster = "hub-admin admin\n" + "".join(f"s{i:02d} team-1\n" for i in range(args.users))
    figures: dict[str, object] = {"hub": name, "students": args.users}
    with tempfile.TemporaryDirectory() as tmp:
        paths = new_checkout(Path(tmp) / "clone", name, free_port(), roster)
        material = Path(tmp) / "week1"
        (material / "data").mkdir(parents=True)
        (material / "lab1.ipynb").write_text(nbgrader_lab(HANDED_OUT))
        for n in (2, 3):
            (material / f"lab{n}.ipynb").write_text(notebook(f"lab {n} " * 2000))
        (material / "data" / "points.csv").write_text("x,y\n" + "1.5,2.5\n" * 130_000)
        figures["material (files, MB)"] = [
            4, round(sum(p.stat().st_size for p in material.rglob("*") if p.is_file()) / 1e6, 2)
        ]  # fmt: skip
        try:
            timed(paths, "setup")
            figures["handout, first (s)"] = timed(paths, "handout", str(material))
            figures["handout, nothing new (s)"] = timed(paths, "handout", str(material))
            (material / "lab2.ipynb").write_text(notebook("lab 2, fixed " * 2000))
            figures["handout, one file changed (s)"] = timed(paths, "handout", str(material))
            figures["collect (s)"] = timed(paths, "collect", "week1")
            (collected,) = (paths.root / "assignments" / "week1").glob("collected-*")
            for extra in sorted(p for p in collected.iterdir() if p.is_dir())[args.grade :]:
                shutil.rmtree(extra)  # grade only the first --grade submissions
            script, source = Path(tmp) / "script", Path(tmp) / "source"
            script.mkdir()
            (script / "grade.py").write_text(GRADE_PY)
            source.mkdir()
            (source / "lab1.ipynb").write_text(nbgrader_lab(SOLUTION))
            started = time.monotonic()
            timed(paths, "autograde", "week1", "--key", str(script), "--timeout", "5")
            figures["first autograde, building the grading image unless cached (s)"] = round(
                time.monotonic() - started, 2
            )
            for what, key in (("grade.py", script), ("nbgrader", source)):
                seconds = timed(paths, "autograde", "week1", "--key", str(key), "--timeout", "5")
                figures[f"autograde of {args.grade}, {what} (s)"] = seconds
                figures[f"autograde per submission, {what} (s)"] = round(seconds / args.grade, 2)
                figures[f"autograde of {args.users}, {what}, at that rate (s)"] = round(
                    seconds / args.grade * args.users, 1
                )
        finally:
            sweep(client, name)
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
