"""The one result model: what grading found, independent of how it is shown.

`CheckResult` is one check's verdict; `GradeReport` holds them all with the course, and derives
the score of every criterion (its points shared evenly by its checks) and of every step. Every
output format (`kit.formats`) and the terminal scorecard are pure functions of a `GradeReport`.

A check belongs either to a step and a success criterion (it earns points) or to one of the
optional extensions (`extension="E2"`: its step and criterion are None). Extension checks never
change the 100-point score; `GradeReport.extensions` shows them apart, one `ExtensionResult`
per extension ("extensions: 2 of 4": an extension is passed when all its checks pass).
"""
from __future__ import annotations

import html
import re
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
    step: int | None                # None for an extension's check
    criterion: str | None           # None for an extension's check
    todo: str | None = None
    rules: tuple[str, ...] = ()     # the rules of docs/learner-api.md it verifies
    extension: str | None = None    # "E1".."E4": an optional extension's check (no points)

    def selected_by(self, only: str | None) -> bool:
        """Whether `--only ONLY` (a step number, a criterion id or an extension id such as
        "E2", in any case; None: everything) picks it."""
        if only is None:
            return True
        if self.extension is not None:
            return str(only).lower() == self.extension.lower()
        return str(only) in (str(self.step), self.criterion)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rules"] = list(self.rules)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "CheckInfo":
        return cls(**{k: data.get(k) for k in ("nodeid", "id", "title", "step", "criterion", "todo", "extension")},
                   rules=tuple(data.get("rules") or ()))

    def result(self, status: "Status", message: str = "", cause: "Cause | None" = None) -> "CheckResult":
        """This check's verdict."""
        if status is not Status.PASSED and cause is None:
            cause = Cause.NOT_RUN if status is Status.ERROR else Cause.FAILED
        return CheckResult(id=self.id, title=self.title, step=self.step, criterion=self.criterion,
                           status=status, message=message, todo=self.todo, cause=cause, extension=self.extension)


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    step: int | None             # None for an extension's check
    criterion: str | None        # None for an extension's check
    status: Status
    message: str = ""
    todo: str | None = None
    cause: Cause | None = None   # None when it passed
    extension: str | None = None  # "E1".."E4": an optional extension's check (no points)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def label(self) -> str:
        """Where the check belongs, for people: "step 2, context-propagates" or "extension E2"."""
        return f"extension {self.extension}" if self.extension else f"step {self.step}, {self.criterion}"

    def to_dict(self) -> dict:
        """The documented JSON shape. `cause` is written only when it says more than the status
        (a timeout, a crash, ...), so reports of plain passes and failures stay as they were;
        `extension` only for an extension's check (whose step and criterion are null)."""
        data = asdict(self)
        data["status"] = self.status.value
        cause = data.pop("cause")
        if cause not in (None, Cause.FAILED, Cause.NOT_RUN):
            data["cause"] = str(cause)
        if data["extension"] is None:
            del data["extension"]
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
class ExtensionResult:
    """One optional extension: passed when every one of its checks passed (no points)."""

    id: str
    title: str
    passed: int         # checks passed
    total: int          # checks run

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.passed == self.total


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
    def extensions(self) -> tuple[ExtensionResult, ...]:
        """One entry per extension that has checks in this report, in course order."""
        results = []
        for extension in self.course.extensions:
            mine = [c for c in self.checks if c.extension == extension.id]
            if mine:
                results.append(ExtensionResult(extension.id, extension.title, sum(c.passed for c in mine), len(mine)))
        return tuple(results)

    @property
    def step_checks(self) -> tuple[CheckResult, ...]:
        """The checks that earn points (those of the six steps' criteria)."""
        return tuple(c for c in self.checks if c.extension is None)

    @property
    def extension_checks(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.extension is not None)

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.criteria if c.total), 2)

    @property
    def max_score(self) -> int:
        return sum(c.max_score for c in self.criteria if c.total)

    @property
    def all_passed(self) -> bool:
        """Every check that counts passed: those of the steps (the extensions are optional), or
        the extensions' when the report holds nothing else (`--only E2`)."""
        counted = self.step_checks or self.checks
        return bool(counted) and all(c.passed for c in counted)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict:
        """The documented JSON schema (see kit.formats.json_format). The extensions' checks are
        in their own section, never in "checks" (which holds the checks that earn points)."""
        data = {
            "target": self.target,
            "score": self.score,
            "max_score": self.max_score,
            "criteria": [{"id": c.id, "title": c.title, "score": c.score, "max_score": c.max_score,
                          "passed": c.passed, "total": c.total} for c in self.criteria],
            "steps": [asdict(s) for s in self.steps],
            "checks": [c.to_dict() for c in self.step_checks],
            "warnings": list(self.warnings),
        }
        if self.extension_checks:
            data["extensions"] = {
                "passed": sum(e.complete for e in self.extensions),
                "total": len(self.extensions),
                "results": [{"id": e.id, "title": e.title, "passed": e.passed, "total": e.total,
                             "complete": e.complete,
                             "checks": [c.to_dict() for c in self.checks if c.extension == e.id]}
                            for e in self.extensions],
            }
        return data

    def extensions_summary(self) -> str:
        """"extensions: 2 of 4" (passed of those graded), or "" when none was graded."""
        graded = self.extensions
        return f"extensions: {sum(e.complete for e in graded)} of {len(graded)}" if graded else ""

    def summary(self) -> str:
        """One line: the total and how many checks passed, then the extensions apart."""
        main = self.step_checks
        parts = []
        if main or not self.extension_checks:
            passed = sum(c.passed for c in main)
            parts.append(f"{_points(self.score)}/{self.max_score} points, {passed}/{len(main)} checks passed")
        if self.extension_checks:
            extra = self.extension_checks
            parts.append(f"{self.extensions_summary()} ({sum(c.passed for c in extra)}/{len(extra)} checks)")
        return "; ".join(parts)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(c.title)}</td><td style='text-align:right'>{_points(c.score)}/{c.max_score}</td>"
            f"<td>{c.passed}/{c.total} checks</td></tr>" for c in self.criteria if c.total)
        rows += "".join(
            f"<tr><td>{html.escape(e.id)}. {html.escape(e.title)} <small>(extension)</small></td>"
            f"<td style='text-align:right'>{'passed' if e.complete else 'not yet'}</td>"
            f"<td>{e.passed}/{e.total} checks</td></tr>" for e in self.extensions)
        failures = "".join(
            f"<details><summary>✗ {html.escape(c.title)} <small>({html.escape(c.label)})</small></summary>"
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


def todo_number(todo: str | None) -> int:
    """`"TODO 7"` -> 7 (no TODO sorts last): the order the scorecard and `check(N)` list checks in."""
    match = re.search(r"\d+", todo or "")
    return int(match[0]) if match else 10**6


def _points(value: float) -> str:
    return f"{value:g}"
