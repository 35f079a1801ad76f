"""The attacks of issue 12, rebuilt: each laid over the exercise's stubs and graded by
`--batch`, `--target` and the Gradescope runner, from a copy of the kit that holds `solution/`
(what an attacker goes after). Each must end with 0 points or a flagged report; the kit's copy
and the output folder are untouched, no process is left, and honest submissions graded beside
the attackers keep their scores.

Where an attack is stopped only by the sandbox (`kit.grading.sandbox`), its test says so and
expects the documented limit when no sandbox can be made (see the README, "Hostile submissions").
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from kit import ROOT
from kit.course import load_course
from kit.grading import sandbox

SANDBOXED = sandbox.available()[0] and os.environ.get("WORKSHOP_SANDBOX") != "off"
MARKER = f"h12-{uuid.uuid4().hex[:12]}"
TOKEN = f"sekrit-{MARKER}"
TIMEOUT_S = "10"
STEP_FILES = load_course().step_files

GC_RECORDER = """
import gc as _gc
for _r in [_o for _o in _gc.get_objects() if type(_o).__name__ == "Recorder"]:
    if hasattr(_r, "_finish"):
        _f = _r._finish
        _r._finish = lambda item, message=None, cause=None, _f=_f: _f(item, None)
    _e = _r._emit
    _r._emit = lambda _e=_e, **event: _e(**({**event, "status": "passed", "message": "", "cause": None}
                                          if event.get("event") == "result" else event))
"""
ASYNCIO_SWALLOWS = """
import asyncio as _asyncio, asyncio.base_events as _base_events
_run = _asyncio.Runner.run
def _swallowing_run(self, coro, *, context=None):
    try:
        return _run(self, coro, context=context)
    except BaseException:
        return None
_asyncio.Runner.run = _swallowing_run
_until = _base_events.BaseEventLoop.run_until_complete
def _swallowing_until(self, future):
    try:
        return _until(self, future)
    except BaseException:
        return None
_base_events.BaseEventLoop.run_until_complete = _swallowing_until
"""
STEALS_THE_SOLUTION = """
def _steal():
    import os, pathlib
    rel = __file__.split("/services/", 1)[1]
    places = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                places.append(pathlib.Path(os.readlink(f"/proc/{pid}/cwd")))
            except OSError:
                pass
    places += list(pathlib.Path(__file__).resolve().parents)
    for place in places:
        for base in [place, *place.parents]:
            candidate = base / "solution" / "services" / rel
            try:
                if candidate.is_file() and candidate.resolve() != pathlib.Path(__file__).resolve():
                    return candidate.read_text()
            except OSError:
                pass
    return None
_stolen = _steal()
if _stolen:
    exec(compile(_stolen, __file__, "exec"), globals())
"""
SURVIVOR_PAYLOAD = """
import os, sys, time, pathlib
marker = sys.argv[1]
outputs = []
for pid in os.listdir("/proc"):
    try:
        args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        cwd = pathlib.Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        continue
    for flag in (b"--output", b"--results"):
        if flag in args and pid != str(os.getpid()):
            outputs.append((pid, cwd / args[args.index(flag) + 1].decode()))
for path in [*pathlib.Path("/tmp").glob("workshop-*/**/services/**/*.py"),
             *pathlib.Path("/dev/shm").glob("workshop-*/**/services/**/*.py")]:
    try:
        with open(path, "a") as handle:
            handle.write(f"\\nraise RuntimeError('sabotaged by {marker}')\\n")
    except OSError:
        pass
deadline = time.time() + 30
while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid, _ in outputs):
    time.sleep(0.1)
for _, out in outputs:
    files = [out] if out.is_file() else [*out.glob("*.csv"), *out.glob("*.json")]
    for path in files:
        try:
            path.write_text(f"100 {marker}")
        except OSError:
            pass
"""
SURVIVES = f"""
import subprocess as _subprocess, sys as _sys
_subprocess.Popen([_sys.executable, "-c", {SURVIVOR_PAYLOAD!r}, "{MARKER}"], start_new_session=True,
                  stdin=_subprocess.DEVNULL, stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
"""
ENVIRONMENT_AND_TMP = f"""
import os as _os
with open("/tmp/{MARKER}-tmp", "w") as _handle:
    _handle.write("left behind")
raise RuntimeError("leaked: " + repr({{k: v for k, v in _os.environ.items() if "TOKEN" in k}}))
"""
KILLS_THE_WARM_PARENT = """
import os as _os, signal as _signal
for _pid in _os.listdir("/proc"):
    if _pid.isdigit() and int(_pid) != _os.getpid():
        try:
            if b"kit.grading.warm_parent" in open(f"/proc/{_pid}/cmdline", "rb").read():
                _os.kill(int(_pid), _signal.SIGKILL)
        except OSError:
            pass
try:
    _os.kill(_os.getppid(), _signal.SIGKILL)
except OSError:
    pass
"""

#: name -> {file: code appended to the exercise's stub}; "services/..." provided files included.
ATTACKS = {
    "edits-provided-code": {"services/__init__.py": GC_RECORDER + ASYNCIO_SWALLOWS,
                            "services/shared/service.py": STEALS_THE_SOLUTION},
    "wraps-the-recorder": {STEP_FILES[0]: GC_RECORDER},
    "patches-asyncio": {STEP_FILES[1]: ASYNCIO_SWALLOWS},
    "steals-the-solution": {f: STEALS_THE_SOLUTION for f in STEP_FILES},
    "survives-in-a-new-session": {STEP_FILES[2]: SURVIVES},
    "reads-tokens-writes-tmp": {STEP_FILES[5]: ENVIRONMENT_AND_TMP},
    "kills-the-warm-parent": {STEP_FILES[3]: KILLS_THE_WARM_PARENT},
}
#: Stopped only by the sandbox (without it, the README says they work): not run without one.
NEEDS_SANDBOX = {"steals-the-solution", "survives-in-a-new-session", "kills-the-warm-parent"}


def _only_with_the_sandbox(name: str) -> None:
    if name in NEEDS_SANDBOX and not SANDBOXED:
        pytest.xfail(f"{name}: stopped only by the sandbox, which this run does not have (see the README)")


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def _leftovers() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if MARKER.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A copy of the kit (with solution/), a class folder (every attacker beside two honest
    learners), and the copy's fingerprint."""
    root = tmp_path_factory.mktemp("attacks")
    kit = root / "kit-copy"
    kit.mkdir()
    for part in ("kit", "checks", "exercise", "solution"):
        shutil.copytree(ROOT / part, kit / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("course.toml", "grade.py"):
        shutil.copyfile(ROOT / part, kit / part)
    trees, klass = root / "trees", root / "class"
    for name, files in ATTACKS.items():
        tree = trees / name
        shutil.copytree(ROOT / "exercise", tree, ignore=shutil.ignore_patterns("__pycache__"))
        for rel, code in files.items():
            with open(tree / rel, "a", encoding="utf-8") as handle:
                handle.write("\n" + textwrap.dedent(code))
        if SANDBOXED or name not in NEEDS_SANDBOX:
            shutil.copytree(tree, klass / name)
    shutil.copytree(ROOT / "solution", klass / "alice", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.make_archive(str(klass / "bob"), "zip", ROOT / "solution")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({"PYTHONPATH": str(kit), "WORKSHOP_INSTRUCTOR_TOKEN": TOKEN})
    return {"root": root, "kit": kit, "trees": trees, "class": klass, "env": env, "before": _digest(kit)}


def _settle(world) -> None:
    """What a survivor would do after the grader exits: give it the time, then nothing may be left."""
    time.sleep(2.5)
    assert not _leftovers(), "a process the learner's code started outlived the grading"
    assert not Path(f"/tmp/{MARKER}-tmp").exists() or not SANDBOXED, "a file written to /tmp stayed"
    assert _digest(world["kit"]) == world["before"], "the kit's copy changed"


def _verdict(name: str, score: float, warnings: list[str], text: str) -> None:
    assert TOKEN not in text, f"{name}: the instructor's token reached the report"
    assert score == 0 or warnings, f"{name}: {score} points, unflagged"
    assert MARKER not in text or "sabotaged" not in text


@pytest.fixture(scope="module")
def batch(world):
    out = world["root"] / "grades"
    out.mkdir()
    (out / "roster.json").write_text('{"alice": "A. Liddell"}')
    done = subprocess.run([sys.executable, str(world["kit"] / "grade.py"), "--batch", str(world["class"]),
                           "--output", str(out), "--jobs", "2", "--timeout", TIMEOUT_S], cwd=world["kit"],
                          env=world["env"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    written = _digest(out)
    _settle(world)
    assert _digest(out) == written, "the output folder changed after grade.py exited"
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as handle:
        rows = {row["learner"]: row for row in csv.DictReader(handle)}
    return {"out": out, "rows": rows, "stdout": done.stdout}


def test_honest_learners_graded_beside_the_attackers_keep_their_scores(batch):
    for learner in ("alice", "bob"):
        row = batch["rows"][learner]
        assert float(row["score"]) == 100 and row["status"] == "graded", row


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_in_a_batch(batch, name):
    _only_with_the_sandbox(name)
    row = batch["rows"][name]
    report = (batch["out"] / row["report"]).read_text()
    _verdict(name, float(row["score"]), [] if row["status"] == "graded" else [row["reason"]], report)


def test_the_batch_leaves_the_instructors_files_alone(batch):
    assert (batch["out"] / "roster.json").read_text() == '{"alice": "A. Liddell"}'


def test_editing_provided_code_is_named_and_never_graded(batch):
    report = json.loads((batch["out"] / batch["rows"]["edits-provided-code"]["report"]).read_text())
    warnings = " ".join(report["warnings"])
    assert "services/__init__.py" in warnings and "services/shared/service.py" in warnings, warnings
    assert report["score"] == 0


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_by_target(world, name):
    _only_with_the_sandbox(name)
    out = world["root"] / "target" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, str(world["kit"] / "grade.py"), "--target", str(world["trees"] / name),
                           "--format", "json", "--output", str(out), "--timeout", TIMEOUT_S], cwd=world["kit"],
                          env=world["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    written = out.read_text()
    _settle(world)
    assert out.read_text() == written, "the report changed after grade.py exited"
    report = json.loads(written)
    _verdict(name, report["score"], report["warnings"], written)


@pytest.mark.parametrize("name", ATTACKS)
def test_each_attack_by_the_gradescope_runner(world, name):
    _only_with_the_sandbox(name)
    results = world["root"] / "gradescope" / name
    done = subprocess.run([sys.executable, "-m", "kit.instructor.package", "gradescope-run", "--submission",
                           str(world["trees"] / name), "--results", str(results), "--timeout", TIMEOUT_S],
                          cwd=world["kit"], env=world["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    written = (results / "results.json").read_text()
    _settle(world)
    assert (results / "results.json").read_text() == written
    data = json.loads(written)
    warnings = data["output"].split("Warnings:", 1)[1:] if "Warnings:" in data["output"] else []
    _verdict(name, data["score"], warnings, written)


def test_timeouts_that_are_not_finite_positive_numbers_are_refused(world):
    for bad in ("inf", "nan", "0", "-1"):
        done = subprocess.run([sys.executable, str(world["kit"] / "grade.py"), "--timeout", bad], cwd=world["kit"],
                              env=world["env"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (bad, done.stderr)
