"""`invoke autograde`: grade a collect's submissions, each in its own throwaway sandbox.

The key (the instructor's version) is either nbgrader source notebooks (with their solution and
test cells), graded by nbgrader's autograder, or a folder with `grade.py`, the convention for a
class without nbgrader (docs/assignments.md). The grading image is the class's image with
nbgrader (grading/), built here when missing, so students' servers stay as they are.

Rules that hold here:
- Each submission is graded alone: its sandbox (`Runtime.run_sandbox`) holds that submission
  and the key, nothing else, and has no network and limits on memory, CPU, processes and time.
  Several sandboxes may run at once (--parallel), each with its own limits.
- Whatever a submission does (loop, eat memory, fork, reach for files or the network) ends as
  its grade with a reason; it never stops the grading of the others.
- Output goes to `assignments/NAME/autograded-<time>/` (0700): grades.csv, feedback/<who>/ (the
  layout `invoke return NAME FOLDER` takes) and logs/<who>.log (nbgrader's, for the instructor).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from . import assignments, hubfile, images
from .console import Echo, Progress, human_size
from .errors import UserError
from .files import ensure_private_dir, write_atomic
from .inputs.settings import Settings
from .paths import Paths
from .runtime import Runtime, SandboxLimits, SandboxRun

TIMEOUT = 60  # seconds a cell (or grade.py) may run; the whole sandbox gets SLACK more
SLACK = 3
SLACK_PLUS = 60
MEMORY = 512 * 1024**2
CPUS = 1.0
PIDS = 128
TMP = 256 * 1024**2
RESULT = "out/result.json"
LOG = "out/nbgrader.log"
FEEDBACK = "out/feedback/"


@dataclass(frozen=True)
class Grade:
    who: str
    score: float | None
    max_score: float | None
    reasons: tuple[str, ...]
    feedback: dict[str, bytes]
    log: bytes = b""  # nbgrader's log of this submission, for the instructor


def limits(timeout: int, memory: int, cpus: float) -> SandboxLimits:
    return SandboxLimits(memory, cpus, PIDS, timeout * SLACK + SLACK_PLUS, TMP)


def latest_collect(paths: Paths, name: str) -> Path:
    """The newest `collected-*` folder of `name`: what autograde grades."""
    found = sorted(assignments.folder_of(paths, name).glob("collected-*"))
    if not found:
        raise UserError(f"nothing collected for {name} yet: run invoke collect {name} first")
    return found[-1]


def read_key(text: str, cwd: Path) -> assignments.Source:
    """--key: a folder of nbgrader source notebooks, or one with grade.py."""
    key = assignments.read_source(text, cwd)
    notebooks = [p for p in key.files if p.endswith(".ipynb") and "/" not in p]
    if (
        not any(_has_nbgrader_cells(key.files[p]) for p in notebooks)
        and "grade.py" not in key.files
    ):
        raise UserError(
            f"--key {text}: holds neither nbgrader source notebooks (cells marked with "
            "nbgrader's metadata, as its Create Assignment toolbar makes them) nor a grade.py; "
            "see docs/assignments.md"
        )
    return key


def _has_nbgrader_cells(data: bytes) -> bool:
    try:
        cells = json.loads(data).get("cells", [])
    except ValueError:
        return False
    return any("nbgrader" in cell.get("metadata", {}) for cell in cells)


def ensure_image(paths: Paths, settings: Settings, rt: Runtime, echo: Echo) -> str:
    """The grading image, built from the class's image when missing or out of date."""
    if rt.image(settings.notebook_image) is None:
        raise UserError(f"the class's image {settings.notebook_image} is not on this engine; "
                        "run invoke setup (or invoke build) first")  # fmt: skip
    spec = images.grading_spec(paths, settings.hub_name)
    rt.build(spec, images.ca_bundle(settings), settings.notebook_image, paths.state_dir / "logs",
             echo)  # fmt: skip
    return spec.tag


def job(name: str, timeout: int, key: assignments.Source, submission: Path) -> bytes:
    """What goes into a sandbox's /grading: job.json, key/, submission/ (read-only to the
    submission's code: root's) and out/ (the students' user's, for the results)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _file(tar, "job.json", json.dumps({"assignment": name, "timeout": timeout}).encode())
        _folder(tar, "key")
        for inside, data in sorted(key.files.items()):
            _file(tar, f"key/{inside}", data)
        _folder(tar, "submission")
        for path in sorted(submission.rglob("*")):
            if path.is_symlink():
                continue
            where = f"submission/{path.relative_to(submission).as_posix()}"
            if path.is_dir():
                _folder(tar, where)
            elif path.is_file():
                _file(tar, where, path.read_bytes())
        out = tarfile.TarInfo("out")
        out.type, out.mode, (out.uid, out.gid) = tarfile.DIRTYPE, 0o755, hubfile.FOLDER_OWNER
        tar.addfile(out)
    return buffer.getvalue()


def _folder(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def read_run(who: str, run: SandboxRun, box: SandboxLimits, timeout: int) -> Grade:
    """A sandbox's end as a grade: its result.json, with what the engine saw added to the
    reasons (killed at the time limit, out of memory)."""
    files: dict[str, bytes] = {}
    if run.out:
        with tarfile.open(fileobj=io.BytesIO(run.out)) as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.isreg() else None
                if handle is not None and ".." not in member.name.split("/"):
                    files[member.name] = handle.read()
    feedback = {p.removeprefix(FEEDBACK): d for p, d in files.items() if p.startswith(FEEDBACK)}
    reasons: list[str] = []
    if run.timed_out:
        reasons.append(f"stopped after {box.seconds:.0f}s: the grading took longer than its "
                       f"time limit (a cell may run {timeout}s)")  # fmt: skip
    if run.out_of_memory:
        reasons.append(f"used more than {human_size(box.memory)} of memory, the sandbox's limit: "
                       "the code that did was stopped")  # fmt: skip
    try:
        said = json.loads(files[RESULT])
    except (KeyError, ValueError):
        if not reasons:
            reasons.append(f"the grader left no result (exit code {run.exit_code}): "
                           + (run.log.strip().splitlines() or ["no output"])[-1][:300])  # fmt: skip
        return Grade(who, 0.0, None, tuple(reasons), feedback, files.get(LOG, b""))
    reasons += [str(r) for r in said.get("reasons", [])]
    if said.get("error"):
        reasons.append(str(said["error"]))
    score = said.get("score")
    return Grade(who, float(score) if score is not None else 0.0,
                 float(said["max_score"]) if said.get("max_score") is not None else None,
                 tuple(reasons), feedback, files.get(LOG, b""))  # fmt: skip


def grade_all(rt: Runtime, image: str, name: str, key: assignments.Source, collected: Path,
              timeout: int, box: SandboxLimits, parallel: int,
              progress: Progress) -> list[Grade]:  # fmt: skip
    """Every submission of `collected`, `parallel` sandboxes at a time. Stopped (Ctrl-C), it
    lets the sandboxes running finish, and so remove themselves, and starts no other."""
    whos = sorted(p.name for p in collected.iterdir() if p.is_dir())
    stopping = threading.Event()

    def one(who: str) -> Grade | None:
        if stopping.is_set():
            return None
        run = rt.run_sandbox(image, job(name, timeout, key, collected / who), box)
        return read_run(who, run, box, timeout)

    grades: dict[str, Grade] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        for future in as_completed([pool.submit(one, who) for who in whos]):
            grade = future.result()
            if grade is not None:
                grades[grade.who] = grade
                progress("grading", len(grades), len(whos))
    except BaseException:
        stopping.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return [grades[who] for who in whos]


def parallel_default(cpus: float) -> int:
    """As many sandboxes at once as this server's cores hold at `cpus` each."""
    return max(1, int((os.cpu_count() or 1) // cpus))


def write_results(folder: Path, grades: list[Grade], nobody: list[str]) -> None:
    """grades.csv (one row a submission, and one for each who handed in nothing),
    feedback/<who>/ for each, and logs/<who>.log where nbgrader left one."""
    ensure_private_dir(folder)
    table = io.StringIO()
    rows = csv.writer(table, lineterminator="\n")
    rows.writerow(["who", "score", "max_score", "reasons"])
    for g in grades:
        rows.writerow([g.who, _number(g.score), _number(g.max_score), " | ".join(g.reasons)])
        for path, data in g.feedback.items():
            target = folder / "feedback" / g.who / path
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            target.write_bytes(data)
        if g.log:
            ensure_private_dir(folder / "logs")
            (folder / "logs" / f"{g.who}.log").write_bytes(g.log)
    for who in nobody:
        rows.writerow([who, "", "", "nothing handed in"])
    write_atomic(folder / "grades.csv", table.getvalue(), 0o600)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def stamp() -> str:
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}"
