"""The one result model: what grading found, independent of how it is shown.

`CheckResult` is one check's verdict; `GradeReport` holds them all with the course, and derives
the score of every criterion (its points shared evenly by its checks) and of every step. Every
output format (`kit.formats`) and the terminal scorecard are pure functions of a `GradeReport`.
"""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from enum import Enum

from kit.course import Course, load_course


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"   # the learner's code did not do what the check expects (or crashed)
    ERROR = "error"     # the check could not run: the grader's own trouble (timeout, crash)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    step: int
    criterion: str
    status: Status
    message: str = ""
    todo: str | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "CheckResult":
        return cls(**{**data, "status": Status(data["status"])})


@dataclass(frozen=True)
class CriterionResult:
    id: str
    title: str
    score: float
    max_score: int
    passed: int
    total: int


@dataclass(frozen=True)
class StepResult:
    number: int
    title: str
    file: str
    passed: int
    total: int


@dataclass(frozen=True)
class GradeReport:
    """Everything one grading run found about one target."""

    target: str
    checks: tuple[CheckResult, ...]
    course: Course = field(default_factory=load_course, compare=False, repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def criteria(self) -> tuple[CriterionResult, ...]:
        results = []
        for criterion in self.course.criteria:
            mine = [c for c in self.checks if c.criterion == criterion.id]
            passed = sum(c.passed for c in mine)
            score = round(criterion.points * passed / len(mine), 2) if mine else 0.0
            results.append(CriterionResult(criterion.id, criterion.title, score, criterion.points, passed, len(mine)))
        return tuple(results)

    @property
    def steps(self) -> tuple[StepResult, ...]:
        return tuple(StepResult(s.number, s.title, s.file,
                                sum(c.passed for c in self.checks if c.step == s.number),
                                sum(1 for c in self.checks if c.step == s.number))
                     for s in self.course.steps)

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.criteria if c.total), 2)

    @property
    def max_score(self) -> int:
        return sum(c.max_score for c in self.criteria if c.total)

    @property
    def all_passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict:
        """The documented JSON schema (see kit.formats.json_format)."""
        return {
            "target": self.target,
            "score": self.score,
            "max_score": self.max_score,
            "criteria": [{"id": c.id, "title": c.title, "score": c.score, "max_score": c.max_score,
                          "passed": c.passed, "total": c.total} for c in self.criteria],
            "steps": [asdict(s) for s in self.steps],
            "checks": [c.to_dict() for c in self.checks],
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """One line: the total and how many checks passed."""
        passed = sum(c.passed for c in self.checks)
        return f"{_points(self.score)}/{self.max_score} points, {passed}/{len(self.checks)} checks passed"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(c.title)}</td><td style='text-align:right'>{_points(c.score)}/{c.max_score}</td>"
            f"<td>{c.passed}/{c.total} checks</td></tr>" for c in self.criteria if c.total)
        failures = "".join(
            f"<details><summary>✗ {html.escape(c.title)} <small>(step {c.step}, {c.criterion})</small></summary>"
            f"<pre>{html.escape(c.message)}</pre></details>" for c in self.failed)
        passes = "".join(f"<div>✓ {html.escape(c.title)}</div>" for c in self.checks if c.passed)
        return (f"<div><b>{html.escape(self.summary())}</b><table>{rows}</table>{failures}"
                f"<details><summary>passing checks</summary>{passes}</details></div>")


def _points(value: float) -> str:
    return f"{value:g}"
