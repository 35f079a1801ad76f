"""The one result model: what grading found, independent of how it is shown.

`CheckResult` is one check's verdict; `GradeReport` holds them all with the course, and derives
the score of every criterion (its points shared evenly by its checks) and of every step. Every
output format (`kit.formats`) and the terminal scorecard are pure functions of a `GradeReport`.
"""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from kit.course import Course, load_course


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"   # the check ran and did not pass: see the result's `cause` for why
    ERROR = "error"     # the check never ran: the whole run's time limit was spent first

    def __str__(self) -> str:
        return self.value


class Cause(str, Enum):
    """Why a check did not pass. The runner sets it; the gradebook and formats read it (never the
    message text)."""

    FAILED = "failed"           # the learner's code did not do what the check expects
    TIMEOUT = "timeout"         # the check ran past its time limit (or an import never ended)
    CRASH = "crash"             # the grading child died while the check ran
    NOT_RUN = "not_run"         # the whole run's time limit was spent before it could run
    NOT_GRADED = "not_graded"   # the submission could not be graded at all
    TAMPERED = "tampered"       # the learner's code replaced part of the grader while it ran

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CheckInfo:
    """One check's description: what the grading child collects and everything downstream reads
    (the runner, the reports, the notebooks). Built from the check's `@check(...)` tag."""

    nodeid: str
    id: str
    title: str
    step: int
    criterion: str
    todo: str | None = None
    rules: tuple[str, ...] = ()     # the rules of docs/learner-api.md it verifies

    def selected_by(self, only: str | None) -> bool:
        """Whether `--only ONLY` (a step number or a criterion id; None: everything) picks it."""
        return only is None or str(only) in (str(self.step), self.criterion)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rules"] = list(self.rules)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "CheckInfo":
        return cls(**{k: data.get(k) for k in ("nodeid", "id", "title", "step", "criterion", "todo")},
                   rules=tuple(data.get("rules") or ()))

    def result(self, status: "Status", message: str = "", cause: "Cause | None" = None) -> "CheckResult":
        """This check's verdict."""
        if status is not Status.PASSED and cause is None:
            cause = Cause.NOT_RUN if status is Status.ERROR else Cause.FAILED
        return CheckResult(id=self.id, title=self.title, step=self.step, criterion=self.criterion,
                           status=status, message=message, todo=self.todo, cause=cause)


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    step: int
    criterion: str
    status: Status
    message: str = ""
    todo: str | None = None
    cause: Cause | None = None   # None when it passed

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    def to_dict(self) -> dict:
        """The documented JSON shape. `cause` is written only when it says more than the status
        (a timeout, a crash, ...), so reports of plain passes and failures stay as they were."""
        data = asdict(self)
        data["status"] = self.status.value
        cause = data.pop("cause")
        if cause not in (None, Cause.FAILED, Cause.NOT_RUN):
            data["cause"] = str(cause)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "CheckResult":
        status = Status(data["status"])
        cause = Cause(data["cause"]) if data.get("cause") else (
            None if status is Status.PASSED else Cause.NOT_RUN if status is Status.ERROR else Cause.FAILED)
        return cls(**{**data, "status": status, "cause": cause})


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


# -- a whole class (--batch) --------------------------------------------------------------------

@dataclass
class Graded:
    """One learner's outcome."""

    learner: str
    source: str
    report: GradeReport
    status: str          # graded | flagged | invalid
    reason: str
    seconds: float
    report_file: str = ""


@dataclass
class BatchResult:
    graded: list[Graded]
    output: Path
    seconds: float
    jobs: int
    skipped: list[str] = field(default_factory=list)   # entries of DIR that are not submissions
    archived: Path | None = None                       # where earlier results were moved
    rewritten: list[str] = field(default_factory=list)  # report files a submission wrote over


def _points(value: float) -> str:
    return f"{value:g}"
