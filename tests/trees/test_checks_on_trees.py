"""The checks are right about the two trees: every check passes on solution/ and fails on the
unmodified exercise/, each for the reason it names (never an import error, a timeout or a crash
of the harness); and the same tree always gets the same result."""
from __future__ import annotations

from kit import ROOT
from kit.course import load_course
from kit.results import Status
from kit.grading.runner import run_checks


def test_every_check_passes_on_the_solution(graded):
    report = graded("solution")
    failing = {c.id: c.message for c in report.checks if not c.passed}
    assert not failing, failing
    assert report.score == report.max_score == load_course().max_score


def test_every_criterion_and_step_has_checks(graded):
    report = graded("solution")
    assert all(c.total > 0 for c in report.criteria), [c.id for c in report.criteria if not c.total]
    assert all(s.total > 0 for s in report.steps), [s.number for s in report.steps if not s.total]


def test_every_check_fails_on_the_exercise_for_its_own_reason(graded):
    report = graded("exercise")
    assert report.score == 0
    for check in report.checks:
        assert check.status is Status.FAILED, (check.id, check.status, check.message)
        message = check.message
        assert message.strip(), check.id
        assert "Traceback" not in message, (check.id, message)
        assert not message.startswith("We imported services."), (check.id, message)
        assert "timed out" not in message, (check.id, message)


def test_only_grades_one_step_or_one_criterion():
    step = run_checks(ROOT / "solution", only="4")
    assert step.checks and {c.step for c in step.checks} == {4}
    criterion = run_checks(ROOT / "solution", only="context-propagates")
    assert criterion.checks and {c.criterion for c in criterion.checks} == {"context-propagates"}
