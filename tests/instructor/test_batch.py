"""Batch grading a class: every kind of submission gets a row and a report, the gradebook is
right, a re-run keeps the earlier results, and one submission graded ten times gets the same
result every time."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kit import ROOT
from kit.grading import processes as kit_processes
from kit.formats.gradebook import GRADEBOOK, SUMMARY
from kit.instructor.batch import BatchError, find_submissions, grade_batch
from kit.course import load_course
from kit.grading.runner import run_checks, shared_zygote


def _zip_tree(tree, archive, prefix):
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(tree.rglob("*.py")):
            out.write(path, f"{prefix}/{path.relative_to(tree)}")


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    shutil.copytree(ROOT / "solution", folder / "alice")
    _zip_tree(ROOT / "solution", folder / "bob.zip", "exercise")          # a zip of the tree
    shutil.copytree(ROOT / "exercise", folder / "carol")                  # nothing done yet
    shutil.copytree(ROOT / "solution", folder / "dave")                   # broken at import
    with open(folder / "dave" / "services" / "shared" / "sampling.py", "a") as handle:
        handle.write("\nraise RuntimeError('dave broke sampling')\n")
    (folder / "erin.zip").write_text("this is not a zip")                 # not gradable
    (folder / "frank").mkdir()                                            # no services/
    (folder / "frank" / "notes.md").write_text("I ran out of time")
    (folder / "README.txt").write_text("submissions of group B")          # not a submission
    return folder


@pytest.fixture(scope="module")
def first_run(class_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    seen = []
    result = grade_batch(class_folder, out, jobs=2, check_timeout_s=5, on_graded=seen.append,
                         zygote=shared_zygote())
    return result, out, seen


def _rows(out):
    with open(out / GRADEBOOK, newline="", encoding="utf-8") as handle:
        return {row["learner"]: row for row in csv.DictReader(handle)}


def test_every_submission_gets_a_row_and_a_report(first_run):
    result, out, seen = first_run
    rows = _rows(out)
    assert sorted(rows) == ["alice", "bob", "carol", "dave", "erin", "frank"]
    assert len(seen) == 6
    for learner, row in rows.items():
        report = json.loads((out / row["report"]).read_text())
        assert {"score", "max_score", "criteria", "checks", "warnings"} <= report.keys(), learner
        assert float(row["score"]) == report["score"]
        assert len(report["checks"]) == int(row["checks_total"]) > 0


def test_the_gradebook_is_right(first_run):
    rows = _rows(first_run[1])
    criteria = [c.id for c in load_course().criteria]
    extensions = [e.id for e in load_course().extensions]
    assert list(rows["alice"]) == ["learner", "score", "max_score", *criteria, "checks_passed", "checks_total",
                                   *extensions, "extensions_passed", "status", "reason", "report"]
    for full in ("alice", "bob"):
        assert (rows[full]["score"], rows[full]["status"]) == ("100", "graded"), rows[full]
    assert (rows["carol"]["score"], rows["carol"]["status"]) == ("0", "graded")
    assert 0 < float(rows["dave"]["score"]) < 100 and rows["dave"]["sampling-works"] == "0"
    for broken, why in (("erin", "not a folder and not a zip"), ("frank", "no services/")):
        assert (rows[broken]["score"], rows[broken]["status"]) == ("0", "invalid")
        assert why in rows[broken]["reason"]


def test_the_summary_shows_the_distribution_and_the_checks_most_fail(first_run):
    result, out, _ = first_run
    text = (out / SUMMARY).read_text()
    assert "Graded 6 submissions" in text and "Score distribution" in text
    assert "Checks most learners fail" in text and "Skipped README.txt" in text
    assert "erin: invalid" in text and "frank: invalid" in text


def test_a_rerun_keeps_the_earlier_results_and_says_where(first_run, class_folder):
    """The command line, with its progress bar, over the same output folder."""
    _, out, _ = first_run
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    done = subprocess.run([sys.executable, "grade.py", "--batch", str(class_folder), "--output", str(out),
                           "--jobs", "2", "--timeout", "5"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "grading" in done.stderr and "6/6" in done.stderr  # the progress bar
    archived = list((out / "previous").iterdir())
    assert len(archived) == 1
    assert {p.name: p.read_bytes() for p in archived[0].iterdir()} == before
    assert f"moved to {archived[0]}" in done.stdout
    assert _rows(out)["alice"]["score"] == "100"


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    with pytest.raises(BatchError):
        find_submissions(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    for args in (["--batch", str(tmp_path / "missing"), "--output", str(tmp_path / "out")],
                 ["--batch", str(tmp_path)],
                 ["--batch", str(tmp_path), "--output", str(tmp_path / "file")],
                 ["--batch", str(tmp_path), "--output", str(tmp_path / "out"), "--jobs", "0"]):
        done = subprocess.run([sys.executable, "grade.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)


def test_one_submission_graded_ten_times_gets_the_same_result(tmp_path):
    """Determinism, on the warm path: the same verdict for every check and the same score, every
    time (a submission with a mistake, so that failures are compared too)."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "solution", tree)
    http_client = tree / "services" / "shared" / "http_client.py"
    caller = '        headers["X-Service-Name"] = self.service_name\n'
    http_client.write_text(http_client.read_text().replace(caller, ""))
    zygote = shared_zygote()
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: run_checks(tree, check_timeout_s=10, zygote=zygote), range(10)))
    verdicts = {tuple((c.id, c.status.value) for c in r.checks) for r in reports}
    assert len(verdicts) == 1
    assert {r.score for r in reports} == {reports[0].score} and 0 < reports[0].score < 100
    assert {r.warnings for r in reports} == {()}


def test_a_rerun_moves_only_the_kits_own_outputs_and_never_grades_previous(tmp_path):
    """Graded into the class folder itself, twice: the instructor's roster stays where it is, and
    neither `previous/` nor the outputs are taken for learners."""
    folder = tmp_path / "class"
    shutil.copytree(ROOT / "exercise", folder / "carol")
    (folder / "roster.json").write_text('{"carol": "C. Example"}')
    for _ in range(2):
        result = grade_batch(folder, folder, jobs=1, check_timeout_s=5, zygote=shared_zygote())
        assert [g.learner for g in result.graded] == ["carol"]
    assert (folder / "roster.json").read_text() == '{"carol": "C. Example"}'
    (archived,) = (folder / "previous").iterdir()
    assert sorted(p.name for p in archived.iterdir()) == sorted([GRADEBOOK, SUMMARY, "carol.json"])


def test_output_is_checked_before_grading(tmp_path):
    for args in (["--output", "/proc/no-such-folder/report.json"],
                 ["--output", str(tmp_path / "missing" / "report.json")],
                 ["--batch", str(tmp_path), "--output", "/proc/sys/grades"]):
        done = subprocess.run([sys.executable, "grade.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "--output" in done.stderr, (args, done.stderr)


@pytest.mark.parametrize("mode", ["batch", "target", "target-in-memory"])
def test_ctrl_c_leaves_no_temporary_folder(tmp_path, mode, monkeypatch):
    """With TMPDIR set every temporary folder is made there; without, the kit's copy and the
    prepared tree are made in /dev/shm (kit.grading.processes.temporary_folder(fast=True)):
    either way Ctrl-C leaves none behind."""
    import os
    import signal
    import time

    in_memory = mode == "target-in-memory"
    monkeypatch.delenv("TMPDIR", raising=False)
    if in_memory and kit_processes._fast_base() is None:
        pytest.skip("no /dev/shm with room here: nothing is made in memory")
    temporary = Path("/dev/shm") if in_memory else tmp_path / "tmp"
    before = set(temporary.glob("workshop-*")) if in_memory else set()
    temporary.mkdir(exist_ok=True)
    folder = tmp_path / "class"
    for name in ("alice", "bob", "carol"):
        shutil.copytree(ROOT / "solution", folder / name)
    args = (["--batch", str(folder), "--output", str(tmp_path / "out"), "--jobs", "1"] if mode == "batch"
            else ["--target", str(folder / "alice"), "--format", "json"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "TMPDIR"}
    if not in_memory:
        env["TMPDIR"] = str(temporary)
    proc = subprocess.Popen([sys.executable, "grade.py", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(temporary.glob("workshop-graded-*")) - before:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    # The warm parent and its sandbox leave after grade.py: give them a moment on a loaded machine.
    deadline = time.monotonic() + 15
    while set(temporary.glob("workshop-*")) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(set(temporary.glob("workshop-*")) - before) == []
    if not in_memory:
        assert list(temporary.iterdir()) == []
