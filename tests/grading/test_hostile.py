"""Hostile submissions: whatever the learner's code does, every check gets a verdict within its
time limit, no check it did not earn passes, and the kit's files are untouched afterwards (or,
where the grader cannot prevent a change, the report says so).

Everything runs against a copy of the kit in a temporary folder (one grading process for all
the cases, small time limits), so a submission that attacks "the kit" attacks that copy, which
is hashed before and after.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kit import ROOT
from kit.grading import sandbox

TIMEOUT_S = 2
#: With the sandbox (kit.grading.sandbox), several attacks cannot even find their target; the
#: tests below say what each gets in both worlds.
SANDBOXED = sandbox.available()[0] and os.environ.get("WORKSHOP_SANDBOX") != "off"

SYNTAX_ERROR = "def broken(:\n    pass\n"
RAISES_AT_IMPORT = "raise RuntimeError('boom at import')\n"
LOOPS_AT_IMPORT = "while True:\n    pass\n"
LOOPS_IN_A_FUNCTION = """
def calculate_total_duration(spans):
    while True:
        pass
"""
ALLOCATES_5_GIB = """
def calculate_total_duration(spans):
    return float(len(bytearray(5 * 1024 ** 3)))
"""
SYS_EXIT_AT_IMPORT = "import sys as _sys\n_sys.exit(3)\n"
OS_EXIT_IN_A_FUNCTION = """
def build_timeline(spans):
    import os
    os._exit(7)
"""
PRINTS_50_MB = "import sys as _sys\n_sys.stdout.write('x' * (50 * 1024 * 1024))\n_sys.stdout.flush()\n"
BACKGROUND_THREAD = """
import threading as _threading

def _spin():
    while True:
        sum(range(1000))

_threading.Thread(target=_spin, name="learner-spinner").start()
"""
KILLS_ITS_PARENT = "import os as _os, signal as _signal\n_os.kill(_os.getppid(), _signal.SIGKILL)\n"
LEAVES_A_PROCESS_BEHIND = "import subprocess as _subprocess\n_subprocess.Popen(['sleep', '613'])\n"
MONKEYPATCHES = """
import _pytest.reports, kit.harness.expect, kit.child.recorder, kit.results, pytest
kit.harness.expect.fail = lambda **kwargs: None
kit.harness.expect.expect = lambda *args, **kwargs: None
pytest.fail = lambda *args, **kwargs: None
_pytest.reports.BaseReport.failed = property(lambda self: False)
_pytest.reports.BaseReport.passed = property(lambda self: True)
kit.results.CheckResult.passed = property(lambda self: True)
kit.child.recorder.Recorder._finish = lambda self, item, message: kit.child.recorder.Recorder._emit(
    self, event="result", nodeid=item.nodeid, status="passed", message="")
"""
WRITES_INTO_THE_KIT = """
import json as _json, os as _os, pathlib as _pathlib
import checks as _checks
_root = _pathlib.Path(_checks.__file__).parent
for _check in _root.glob("test_*.py"):
    _check.write_text("# emptied by the learner\\n")
(_root / "test_zz_free_points.py").write_text("def test_free():\\n    pass\\n")
(_root.parent / "kit" / "harness" / "expect.py").write_text("def expect(*args, **kwargs):\\n    pass\\n")
for _fd in _os.listdir("/proc/self/fd"):  # and over the grader's own report (its events)
    try:
        _target = _os.readlink(f"/proc/self/fd/{_fd}")
    except OSError:
        continue
    if "events" in _target:
        with open(_target, "w") as _events:
            _events.write(_json.dumps({"event": "result", "nodeid": "x", "status": "passed"}) + "\\n")
            _events.write("0" * 32 + " " + _json.dumps({"event": "result", "status": "passed", "seq": 3}) + "\\n")
"""
WRITES_INTO_THE_GRADERS_FOLDER = """
import os as _os, pathlib as _pathlib
_pid = _os.getppid()  # walk up to the first ancestor that is not a grading child: the grader
while b"kit.grading.warm_parent" in open(f"/proc/{_pid}/cmdline", "rb").read():
    _pid = int(open(f"/proc/{_pid}/stat").read().rsplit(")", 1)[1].split()[1])
_kit = _pathlib.Path(_os.readlink(f"/proc/{_pid}/cwd"))
(_kit / "checks" / "test_zz_hostile.py").write_text("def test_free():\\n    pass\\n")
with open(_kit / "checks" / "conftest.py", "a") as _conftest:
    _conftest.write("\\n# the learner was here\\n")
"""
WRITES_OVER_THE_GRADEBOOK = """
import os as _os, pathlib as _pathlib
for _cmdline in _pathlib.Path("/proc").glob("*/cmdline"):
    try:
        _args = _cmdline.read_bytes().split(b"\\0")
    except OSError:
        continue
    if b"--output" in _args and b"--batch" in _args:
        _out = _pathlib.Path(_args[_args.index(b"--output") + 1].decode())
        for _report in _out.glob("*.json"):
            _report.write_text('{"score": 100}')
"""

#: name -> (tree it starts from, learner file, code appended to it)
CASES = {
    "syntax-error": ("solution", "services/shared/sampling.py", SYNTAX_ERROR),
    "raises-at-import": ("solution", "services/shared/sampling.py", RAISES_AT_IMPORT),
    "loops-at-import": ("solution", "services/shared/trace_context.py", LOOPS_AT_IMPORT),
    "loops-in-a-function": ("solution", "services/api_gateway/monitoring.py", LOOPS_IN_A_FUNCTION),
    "allocates-5-gib": ("solution", "services/api_gateway/monitoring.py", ALLOCATES_5_GIB),
    "sys-exit-at-import": ("exercise", "services/shared/sampling.py", SYS_EXIT_AT_IMPORT),
    "os-exit-in-a-function": ("solution", "services/api_gateway/monitoring.py", OS_EXIT_IN_A_FUNCTION),
    "prints-50-mb": ("exercise", "services/shared/trace_context.py", PRINTS_50_MB),
    "background-thread": ("exercise", "services/shared/trace_context.py", BACKGROUND_THREAD),
    "kills-its-parent": ("exercise", "services/shared/trace_context.py", KILLS_ITS_PARENT),
    "leaves-a-process-behind": ("exercise", "services/order_service/workflows.py", LEAVES_A_PROCESS_BEHIND),
    "monkeypatches-the-grader": ("exercise", "services/shared/trace_context.py", MONKEYPATCHES),
}
#: Graded one at a time, after the others: what they do would spill onto whatever runs alongside.
ALONE = {
    "writes-into-the-kit": ("exercise", "services/shared/trace_context.py", WRITES_INTO_THE_KIT),
    "writes-into-the-graders-folder": ("exercise", "services/shared/trace_context.py", WRITES_INTO_THE_GRADERS_FOLDER),
}

DRIVER = textwrap.dedent("""
    import hashlib, json, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    from kit import ROOT
    from kit.grading.runner import run_checks, shared_zygote

    def digest():
        h = hashlib.sha256()
        for path in sorted([*ROOT.glob("kit/**/*"), *ROOT.glob("checks/**/*")]):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
        return h.hexdigest()

    def grade(tree):
        start = time.monotonic()
        report = run_checks(Path(tree), check_timeout_s=float(sys.argv[1]), total_timeout_s=120)
        return Path(tree).name, {"report": report.to_dict(), "seconds": time.monotonic() - start}

    groups = json.loads(sys.argv[2])
    shared_zygote()
    out = {"before": digest()}
    with ThreadPoolExecutor(2) as pool:
        out.update(pool.map(grade, groups["together"]))
    for tree in groups["alone"][:-1]:
        out.update([grade(tree)])
    out["after"] = digest()
    out.update([grade(groups["alone"][-1])])
    print(json.dumps(out))
""")


def _copy_kit(dest: Path) -> None:
    dest.mkdir()
    for part in ("kit", "checks", "exercise"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("course.toml", "grade.py"):
        shutil.copyfile(ROOT / part, dest / part)


def _hostile_tree(folder: Path, name: str, case: tuple[str, str, str]) -> Path:
    base, learner_file, code = case
    tree = folder / name
    shutil.copytree(ROOT / base, tree, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tree / learner_file, "a", encoding="utf-8") as handle:
        handle.write("\n" + code)
    return tree


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every case graded by one grading process running from a copy of the kit."""
    scratch = tmp_path_factory.mktemp("hostile")
    kit = scratch / "kit-copy"
    _copy_kit(kit)
    together = [str(_hostile_tree(scratch, n, c)) for n, c in CASES.items()]
    alone = [str(_hostile_tree(scratch, n, c)) for n, c in ALONE.items()]
    env = {**os.environ, "PYTHONPATH": str(kit), "OTEL_SEMCONV_STABILITY_OPT_IN": "http"}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(TIMEOUT_S), json.dumps({"together": together,
                                                                                    "alone": alone})],
                          cwd=kit, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _checks(graded, name):
    return graded[name]["report"]["checks"]


def _passed(graded, name):
    return {c["id"] for c in _checks(graded, name) if c["status"] == "passed"}


def _failed(graded, name):
    return {c["id"]: c["message"] for c in _checks(graded, name) if c["status"] != "passed"}


@pytest.fixture(scope="module")
def all_checks(graded):
    return {c["id"]: c for c in _checks(graded, "syntax-error")}


@pytest.mark.parametrize("name", [*CASES, *ALONE])
def test_every_case_gets_a_complete_report_in_time(graded, all_checks, name):
    checks = _checks(graded, name)
    assert [c["id"] for c in checks] == list(all_checks)
    assert all(c["status"] in ("passed", "failed") and (c["status"] == "passed" or c["message"]) for c in checks)
    assert graded[name]["seconds"] < 60, graded[name]["seconds"]


@pytest.mark.parametrize("name", [n for n, c in {**CASES, **ALONE}.items() if c[0] == "exercise"])
def test_nothing_is_earned_on_top_of_the_exercise(graded, name):
    assert graded[name]["report"]["score"] == 0
    assert not _passed(graded, name)


def test_a_syntax_error_names_the_file_and_line_and_the_rest_is_graded(graded):
    failed = _failed(graded, "syntax-error")
    assert failed and all("SyntaxError" in m and "sampling.py line" in m for m in failed.values()), failed
    assert _passed(graded, "syntax-error")  # checks that never import sampling.py still count


def test_an_exception_at_import_names_it(graded):
    failed = _failed(graded, "raises-at-import")
    assert failed and all("RuntimeError" in m and "boom at import" in m for m in failed.values()), failed


def test_an_endless_loop_at_import_fails_fast_after_the_first_timeout(graded):
    failed = _failed(graded, "loops-at-import")
    assert any("timed out" in m or "never finished" in m for m in failed.values())
    assert graded["loops-at-import"]["seconds"] < 30


def test_an_endless_loop_in_a_function_fails_only_its_callers(graded, all_checks):
    failed = _failed(graded, "loops-in-a-function")
    assert failed and all("timed out" in m for m in failed.values()), failed
    assert {all_checks[c]["criterion"] for c in failed} == {"performance-visible"}
    assert "total_duration_runs_from_earliest_start_to_latest_end" in failed


def test_memory_past_the_limit_fails_only_the_checks_that_asked_for_it(graded, all_checks):
    failed = _failed(graded, "allocates-5-gib")
    assert "total_duration_runs_from_earliest_start_to_latest_end" in failed
    assert all("MemoryError" in m for m in failed.values()), failed
    assert {all_checks[c]["criterion"] for c in failed} == {"performance-visible"}


def test_sys_exit_is_reported(graded):
    failed = _failed(graded, "sys-exit-at-import")
    assert any("sys.exit(3)" in m for m in failed.values()), failed


def test_os_exit_fails_its_check_and_the_others_run_in_a_new_process(graded, all_checks):
    failed = _failed(graded, "os-exit-in-a-function")
    assert "timeline_gives_offsets_depths_and_status" in failed
    assert all("exited with code 7" in m for m in failed.values()), failed
    assert {all_checks[c]["criterion"] for c in failed} == {"performance-visible"}


def test_fifty_megabytes_of_output_change_nothing(graded):
    assert graded["prints-50-mb"]["report"]["warnings"] == []


def test_a_background_thread_does_not_hold_up_the_grading(graded):
    assert graded["background-thread"]["seconds"] < 40


def test_killing_its_parent_process_only_loses_its_own_checks(graded):
    failed = _failed(graded, "kills-its-parent")
    if SANDBOXED:  # its parent is outside its PID namespace: os.getppid() is 0, and PID 1 ignores the kill
        assert not any("killed by signal" in m for m in failed.values()), failed
    else:
        assert any("killed by signal 9" in m for m in failed.values()), failed


def test_processes_the_learners_code_starts_do_not_outlive_the_grading(graded):
    leftovers = [p for p in Path("/proc").glob("[0-9]*/cmdline")
                 if _read(p) == b"sleep\x00613\x00"]
    assert not leftovers, leftovers


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_monkeypatching_the_grader_is_flagged_and_undone(graded):
    warnings = graded["monkeypatches-the-grader"]["report"]["warnings"]
    assert any("replaced part of the grader" in w and "kit.harness.expect.fail" in w for w in warnings), warnings


def test_writing_into_the_kit_or_its_events_is_flagged_and_undone(graded):
    warnings = " ".join(graded["writes-into-the-kit"]["report"]["warnings"])
    if SANDBOXED:  # the kit's copy is read-only and the events FIFO's folder is hidden: nothing happened
        assert graded["writes-into-the-kit"]["report"]["score"] == 0
        return
    assert "changed the kit's files" in warnings and "checks/test_zz_free_points.py" in warnings, warnings
    assert "lines the grader did not write" in warnings, warnings


def test_the_kits_files_are_untouched(graded):
    """The copy the grading process ran from hashes the same before and after (the private copy
    each grading child used was the one written over, and it was restored)."""
    assert graded["before"] == graded["after"]


def test_a_write_into_the_graders_own_folder_is_flagged(graded):
    """The limit: code that finds the grading process's folder on its own can write there. The
    grader cannot undo that (it could be an instructor's edit), but the report says so."""
    warnings = " ".join(graded["writes-into-the-graders-folder"]["report"]["warnings"])
    if SANDBOXED:  # /proc shows only its own PID namespace: the grader cannot be found, nothing is written
        assert graded["writes-into-the-graders-folder"]["report"]["score"] == 0
        return
    assert "the kit's own files changed while this was graded" in warnings, warnings
    assert "checks/test_zz_hostile.py" in warnings and "checks/conftest.py" in warnings, warnings


def test_a_submission_that_writes_over_the_gradebook_cannot_change_it(tmp_path):
    """Batch mode: a report written over by a later submission is detected and written again."""
    kit = tmp_path / "kit-copy"
    _copy_kit(kit)
    folder = tmp_path / "class"
    shutil.copytree(ROOT / "solution", folder / "alice", ignore=shutil.ignore_patterns("__pycache__"))
    _hostile_tree(folder, "mallory", ("exercise", "services/shared/trace_context.py", WRITES_OVER_THE_GRADEBOOK))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(kit)}
    done = subprocess.run([sys.executable, str(kit / "grade.py"), "--batch", str(folder), "--output", str(out),
                           "--jobs", "1", "--timeout", str(TIMEOUT_S)], cwd=kit, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "alice.json").read_text())["score"] == 100
    if not SANDBOXED:  # in the sandbox the output folder cannot even be seen
        assert "written again: alice.json" in done.stdout, done.stdout


def test_the_kit_this_suite_runs_from_was_never_the_target():
    """The attacks above reached only the copies of the kit they were graded with."""
    assert not (ROOT / "checks" / "test_zz_free_points.py").exists()
    assert not (ROOT / "checks" / "test_zz_hostile.py").exists()
    assert "the learner was here" not in (ROOT / "checks" / "conftest.py").read_text()
