"""`grade.py --watch` (kit/grading/watch.py): the learner files' time stamps, what changed between
two reports, and the loop that grades again after a save (driven here without waiting)."""
from __future__ import annotations

import os

from kit.course import load_course
from kit.grading.watch import changes, snapshot, watch
from kit.results import CheckResult, GradeReport, Status

LEARNER_FILES = load_course().learner_files


def _report(**statuses: str) -> GradeReport:
    return GradeReport(target="t", checks=tuple(
        CheckResult(id=check_id, title=f"Title {check_id}", step=1, criterion="traces-span-services",
                    status=Status(status)) for check_id, status in statuses.items()))


def test_snapshot_stamps_every_learner_file_and_zero_when_missing(tmp_path):
    present = LEARNER_FILES[0]
    (tmp_path / present).parent.mkdir(parents=True)
    (tmp_path / present).write_text("# mine\n")
    stamps = snapshot(tmp_path)
    assert list(stamps) == list(LEARNER_FILES)
    assert stamps[present] == (tmp_path / present).stat().st_mtime_ns > 0
    assert all(stamps[f] == 0 for f in LEARNER_FILES[1:])


def test_snapshot_changes_when_a_file_is_saved(tmp_path):
    path = tmp_path / LEARNER_FILES[1]
    path.parent.mkdir(parents=True)
    path.write_text("v1\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(tmp_path)
    assert snapshot(tmp_path) == before
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    after = snapshot(tmp_path)
    assert after != before and after[LEARNER_FILES[1]] == 2_000_000_000


def test_changes_lists_checks_newly_passing_and_newly_failing():
    before = _report(a="failed", b="passed", c="passed", d="error", e="failed")
    after = _report(a="passed", b="failed", c="passed", d="passed", e="failed", new="passed")
    fixed, broken = changes(before, after)
    # `d` did not pass before (it never ran) and passes now; `new` was not there before
    assert fixed == ["Title a", "Title d"]
    assert broken == ["Title b"]


def test_changes_after_the_first_grading_is_empty():
    assert changes(None, _report(a="passed", b="failed")) == ([], [])


def test_watch_grades_once_then_again_after_each_save(tmp_path):
    path = tmp_path / LEARNER_FILES[0]
    path.parent.mkdir(parents=True)
    path.write_text("v1\n")
    reports = iter([_report(a="failed"), _report(a="passed"), _report(a="failed")])
    shown, sleeps = [], []
    stamp = [1_000_000_000]

    def grade():
        return next(reports)

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) % 2 == 0:   # every second poll, the learner saves the file
            stamp[0] += 1_000_000_000
            os.utime(path, ns=(stamp[0], stamp[0]))

    def show(report, fixed, broken):
        shown.append((report.checks[0].status.value, fixed, broken))

    os.utime(path, ns=(stamp[0], stamp[0]))
    watch(tmp_path, grade, show, interval_s=0.25, sleep=sleep, rounds=3)
    assert shown == [("failed", [], []), ("passed", ["Title a"], []), ("failed", [], ["Title a"])]
    assert sleeps == [0.25] * 4   # two polls with nothing new before each of the two saves
