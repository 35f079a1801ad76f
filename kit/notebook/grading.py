"""Grading in the notebook: `check(step)` runs exactly what `python grade.py --only N` runs, in a
child process, on the tree's files as saved on disk, and shows what the scorecard shows: each
check with its TODO, its file and its criterion, in TODO order, what failed and why, the step's
hints, and the step's share of the course's 100 points. It returns a `StepReport` (the
`GradeReport` with that drawing; every attribute of the report is reachable on it), or a
`GradingProblem` when grading could not run at all.

Which checks exist comes from the kit's one check description: the checks the warm parent
collected (`kit.grading.zygote.shared_zygote().checks`, each a `kit.results.CheckInfo`), picked
as `--only` picks them (`CheckInfo.selected_by`). `show_step` lists them from here too.

**Points.** A criterion's points are shared evenly by its checks; a step's share of the course
is the points of its checks (`step_shares()`: the six shares add up to 100).

**The core path.** course.toml marks, per step, the TODOs of the core path (`core = [1, 2]`):
done in order they earn every criterion's essentials in the workshop's 45-60 minutes; the other
TODOs are the deeper part. `core_todos()` reads them; checks pointing at a core TODO are core.

`grading_history` keeps one entry per `check()` of the session (the notebook tests read it).
"""
from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kit.course import load_course
from kit.notebook.tree import current_tree
from kit.results import CheckInfo, todo_number

#: One entry per `check()` in this session: {"step", "passed", "total", "all_passed", "error"}.
grading_history: list[dict] = []


def checks(only: str | int | None = None) -> list[CheckInfo]:
    """The kit's checks that `--only ONLY` picks (a step number or a criterion id; None: all),
    in the order grading runs them. Raises `kit.grading.errors.GradingError` if the kit's own checks
    cannot be collected."""
    from kit.grading.zygote import shared_zygote

    return [c for c in shared_zygote().checks if c.selected_by(None if only is None else str(only))]


def core_todos() -> dict[int, tuple[int, ...]]:
    """Step number -> the TODO numbers of its core path (course.toml's `core = [...]`)."""
    return {step.number: step.core for step in load_course().steps}


def is_core(step: int, todo: str | None, core: dict[int, tuple[int, ...]] | None = None) -> bool:
    """Whether a check of `step` pointing at `todo` is on the core path."""
    return todo_number(todo) in (core if core is not None else core_todos()).get(step, ())


def check_points(all_checks: list[CheckInfo] | None = None) -> dict[str, float]:
    """Check id -> its points: its criterion's points shared evenly by the criterion's checks."""
    from kit.course import load_course

    all_checks = [c for c in (all_checks if all_checks is not None else checks()) if c.step is not None]
    points = {c.id: c.points for c in load_course().criteria}
    per_criterion = Counter(c.criterion for c in all_checks)
    return {c.id: points.get(c.criterion, 0) / per_criterion[c.criterion] for c in all_checks}


def step_shares(all_checks: list[CheckInfo] | None = None) -> dict[int, float]:
    """Step number -> its share of the course's points (the points of its checks; the
    extensions' checks earn none)."""
    all_checks = [c for c in (all_checks if all_checks is not None else checks()) if c.step is not None]
    worth = check_points(all_checks)
    shares: dict[int, float] = {}
    for c in all_checks:
        shares[c.step] = shares.get(c.step, 0.0) + worth[c.id]
    return shares


def _pts(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class GradingProblem:
    """Grading could not run (not a failed check): what happened and what to do."""

    message: str

    def _repr_html_(self) -> str:
        return f"<b style='color:#d62728'>Grading could not run:</b> {html.escape(self.message)}"

    def __repr__(self) -> str:
        return f"Grading could not run: {self.message}"


class StepReport:
    """A `GradeReport` drawn as the scorecard draws it, step by step: every check in TODO order
    with its TODO (core or deeper), file, criterion and points, the failures with what the check
    did, expected and saw, the step's hints, and each step's share of the course's points.
    Every attribute of the `GradeReport` (`checks`, `score`, `all_passed`, ...) is reachable."""

    def __init__(self, report: Any, all_checks: list[CheckInfo], only: str | None):
        self.report, self.only = report, only
        self._worth = check_points(all_checks)
        self._shares = step_shares(all_checks)
        self._core = core_todos()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.report, name)

    def ordered(self) -> list:
        """The checks by step, then TODO number (the order of the stub), then as graded."""
        position = {c.id: i for i, c in enumerate(self.report.checks)}
        return sorted(self.report.checks, key=lambda c: (c.step is None, c.step or 0, getattr(c, "extension", None) or "",
                                                         todo_number(c.todo), position[c.id]))

    def earned(self, step: int | None = None) -> float:
        return sum(self._worth.get(c.id, 0.0) for c in self.report.checks
                   if c.passed and (step is None or c.step == step))

    def summary(self) -> str:
        passed = sum(c.passed for c in self.report.checks)
        return f"{passed}/{len(self.report.checks)} checks passed"

    def __repr__(self) -> str:
        lines = []
        for step in sorted({c.step for c in self.report.checks if c.step is not None}):
            lines.append(f"Step {step}: {_pts(self.earned(step))} of its {_pts(self._shares.get(step, 0))} "
                         f"course points")
            for c in self.ordered():
                if c.step == step:
                    core = "core" if is_core(c.step, c.todo, self._core) else "deeper"
                    lines.append(f"  {'✓' if c.passed else '✗'} {c.todo or '-'} ({core}) {c.title}")
        return "\n".join(lines + [self.summary()])

    def _repr_html_(self) -> str:
        from kit.course import load_course

        course, e = load_course(), html.escape
        tree = current_tree()
        parts = [f"<div class='workshop-report'><b>{e(self.summary())}</b>"]
        if self.only is None:
            parts.append(f" · {_pts(self.earned())}/{course.max_score} course points")
        for step_number in sorted({c.step for c in self.report.checks if c.step is not None}):
            step = course.step(step_number)
            mine = [c for c in self.ordered() if c.step == step_number]
            passed = sum(c.passed for c in mine)
            share = self._shares.get(step_number, 0.0)
            core = [c for c in mine if is_core(c.step, c.todo, self._core)]
            parts.append(
                f"<h4 style='margin:10px 0 4px'>Step {step.number}: {e(step.title)} "
                f"<small>({e(tree.name)}/{e(step.file)})</small></h4>"
                f"<p style='margin:2px 0'><b>{_pts(self.earned(step_number))} of this step's {_pts(share)} "
                f"points</b> (its share of the course's {course.max_score}) · {passed}/{len(mine)} checks · "
                f"core path {sum(c.passed for c in core)}/{len(core)}</p>")
            rows = []
            for c in mine:
                tag = "core" if c in core else "deeper"
                colour = "#1a7f37" if c.passed else "#d62728"
                title = e(c.title)
                if not c.passed:
                    title = (f"<details><summary>{title}</summary><pre style='white-space:pre-wrap'>"
                             f"{e(c.message)}</pre></details>")
                rows.append(f"<tr><td style='color:{colour};font-weight:bold'>{'✓' if c.passed else '✗'}</td>"
                            f"<td style='white-space:nowrap'>{e(c.todo or '-')}</td>"
                            f"<td><small>{tag}</small></td><td style='text-align:left'>{title}</td>"
                            f"<td style='white-space:nowrap'><small>{e(c.criterion)}</small></td>"
                            f"<td style='text-align:right'>{_pts(self._worth.get(c.id, 0))}</td></tr>")
            parts.append("<table><tr><th></th><th>TODO</th><th>path</th><th style='text-align:left'>check "
                         "(click a ✗ for what it did, expected and saw)</th><th>criterion</th><th>points</th></tr>"
                         + "".join(rows) + "</table>")
            if passed < len(mine) and step.hints:
                parts.append("<details><summary><b>Hints</b></summary><ul>"
                             + "".join(f"<li>{e(h)}</li>" for h in step.hints) + "</ul></details>")
        extras = [c for c in self.ordered() if c.step is None]
        if extras:
            parts.append(f"<h4 style='margin:10px 0 4px'>Extensions <small>(outside the {course.max_score} "
                         f"points)</small></h4><table>" + "".join(
                             f"<tr><td style='color:{'#1a7f37' if c.passed else '#d62728'};font-weight:bold'>"
                             f"{'✓' if c.passed else '✗'}</td><td>{e(getattr(c, 'extension', None) or '')}</td>"
                             f"<td>{e(c.todo or '-')}</td><td style='text-align:left'>"
                             + (e(c.title) if c.passed else f"<details><summary>{e(c.title)}</summary><pre "
                                f"style='white-space:pre-wrap'>{e(c.message)}</pre></details>")
                             + "</td></tr>" for c in extras) + "</table>")
        for warning in getattr(self.report, "warnings", ()):
            parts.append(f"<p style='color:#a0522d'>warning: {e(warning)}</p>")
        parts.append("</div>")
        return "".join(parts)


def check(step: int | str | None = None, *, timeout_s: float = 10.0):
    """Grade one step (or a criterion id, or everything) of the tree in use, in a child process,
    exactly as `python grade.py --only N` does; returns a `StepReport` (it draws itself)."""
    from kit.grading.runner import GradingError, run_checks

    only = None if step is None else str(step)
    try:
        if only is not None and only.isdigit() and not checks(only):
            grading_history.append({"step": only, "error": "no checks"})
            return GradingProblem(f"no check grades Step {only} yet (the kit has none for it)")
        report = run_checks(current_tree(), only=only, check_timeout_s=timeout_s, split=2)
        every = checks()
    except GradingError as exc:
        grading_history.append({"step": only, "error": str(exc)})
        return GradingProblem(str(exc))
    grading_history.append({"step": only, "passed": sum(c.passed for c in report.checks),
                            "total": len(report.checks), "all_passed": report.all_passed, "error": None})
    return StepReport(report, every, only)
