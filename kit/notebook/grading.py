"""Grading in the notebook: `check(step)` runs exactly what `python grade.py --only N` runs, in a
child process, on the tree's files as saved on disk, and returns the `GradeReport` (which draws
itself), or a `GradingProblem` when grading could not run at all.

Which checks exist comes from the kit's one check description: the checks the warm parent
collected (`kit.grading.zygote.shared_zygote().checks`, each a `kit.results.CheckInfo`), picked
as `--only` picks them (`CheckInfo.selected_by`). `show_step` lists them from here too.

`grading_history` keeps one entry per `check()` of the session (the notebook tests read it).
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from kit.notebook.tree import current_tree
from kit.results import CheckInfo

#: One entry per `check()` in this session: {"step", "passed", "total", "all_passed", "error"}.
grading_history: list[dict] = []


def checks(only: str | int | None = None) -> list[CheckInfo]:
    """The kit's checks that `--only ONLY` picks (a step number or a criterion id; None: all),
    in the order grading runs them. Raises `kit.grading.errors.GradingError` if the kit's own checks
    cannot be collected."""
    from kit.grading.zygote import shared_zygote

    return [c for c in shared_zygote().checks if c.selected_by(None if only is None else str(only))]


@dataclass(frozen=True)
class GradingProblem:
    """Grading could not run (not a failed check): what happened and what to do."""

    message: str

    def _repr_html_(self) -> str:
        return f"<b style='color:#d62728'>Grading could not run:</b> {html.escape(self.message)}"


def check(step: int | str | None = None, *, timeout_s: float = 10.0):
    """Grade one step (or a criterion id, or everything) of the tree in use, in a child process,
    exactly as `python grade.py --only N` does; returns the GradeReport (it draws itself)."""
    from kit.grading.runner import GradingError, run_checks

    only = None if step is None else str(step)
    try:
        if only is not None and only.isdigit() and not checks(only):
            grading_history.append({"step": only, "error": "no checks"})
            return GradingProblem(f"no check grades Step {only} yet (the kit has none for it)")
        report = run_checks(current_tree(), only=only, check_timeout_s=timeout_s, split=2)
    except GradingError as exc:
        grading_history.append({"step": only, "error": str(exc)})
        return GradingProblem(str(exc))
    grading_history.append({"step": only, "passed": sum(c.passed for c in report.checks),
                            "total": len(report.checks), "all_passed": report.all_passed, "error": None})
    return report
