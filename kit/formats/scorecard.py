"""The terminal scorecard: criteria with points, steps with progress, then what to fix.

`render(report, verbose=False)` returns rich renderables for a `GradeReport`; `print_scorecard`
prints them. Failing checks are grouped by step, each with what the check did, expected and
saw, the learner's trace, and the file and TODO to look at; a step's hints come once, under its
failures. When many checks fail (a fresh exercise), only the first failing step is shown in full
and the others as one line per check, so a learner knows where to start.

The optional extensions come apart, after the steps: their own table (no points) and, under
"What to fix", their failures after the steps' (one line per extension while a step still
fails, so the steps come first; in full once every step passes). The total line ends with
"extensions: N of M".
"""
from __future__ import annotations

from itertools import groupby
from pathlib import Path

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from kit.results import GradeReport, todo_number

FULL_DETAIL_LIMIT = 8


def _bar(passed: int, total: int, width: int = 12) -> Text:
    filled = round(width * passed / total) if total else 0
    return Text("█" * filled, style="green") + Text("░" * (width - filled), style="dim")


def _mark(passed: bool) -> Text:
    return Text("✓", style="bold green") if passed else Text("✗", style="bold red")


def render(report: GradeReport, *, verbose: bool = False, tree_label: str | None = None) -> Group:
    course = report.course
    label = tree_label or report.target
    parts: list = [Text(f"{course.title} | grading {label}", style="bold")]

    criteria = Table(title="Success criteria", title_justify="left", box=None, pad_edge=False)
    criteria.add_column("", no_wrap=True)
    criteria.add_column("criterion", no_wrap=True)
    criteria.add_column("points", justify="right", no_wrap=True)
    criteria.add_column("checks", justify="right", no_wrap=True)
    for c in report.criteria:
        if c.total:
            criteria.add_row(_mark(c.passed == c.total), c.title, f"{c.score:g}/{c.max_score}", f"{c.passed}/{c.total}")
    if report.step_checks or not report.extension_checks:
        parts += [Text(""), criteria]

    if any(s.total for s in report.steps):
        steps = Table(title="Steps", title_justify="left", box=None, pad_edge=False)
        steps.add_column("step", no_wrap=True)
        steps.add_column("progress", no_wrap=True)
        steps.add_column("checks", justify="right", no_wrap=True)
        for s in report.steps:
            if s.total:
                steps.add_row(f"{s.number}. {s.title}", _bar(s.passed, s.total), f"{s.passed}/{s.total}")
        parts += [Text(""), steps]

    if report.extensions:
        extensions = Table(title="Extensions (optional, no points)", title_justify="left", box=None, pad_edge=False)
        extensions.add_column("", no_wrap=True)
        extensions.add_column("extension", no_wrap=True)
        extensions.add_column("progress", no_wrap=True)
        extensions.add_column("checks", justify="right", no_wrap=True)
        for e in report.extensions:
            extensions.add_row(_mark(e.complete), f"{e.id}. {e.title}", _bar(e.passed, e.total), f"{e.passed}/{e.total}")
        parts += [Text(""), extensions]

    failed = tuple(c for c in report.failed if c.extension is None)
    if report.failed:
        parts += [Text(""), Text("What to fix", style="bold")]
    if failed:
        full_steps = {c.step for c in failed} if (verbose or len(failed) <= FULL_DETAIL_LIMIT) \
            else {min(c.step for c in failed)}
        for step_number, checks in groupby(sorted(failed, key=lambda c: c.step), key=lambda c: c.step):
            step = course.step(step_number)
            parts += _failures(f"Step {step.number}: {step.title} ({Path(label).name}/{step.file})",
                               list(checks), lambda c: c.criterion, step.hints, step_number in full_steps,
                               step_number)
    parts += _extension_failures(report, label, verbose=verbose, steps_failing=bool(failed))
    if verbose:
        passed = [c for c in report.checks if c.passed]
        if passed:
            parts += [Text(""), Text("Passing checks", style="bold")]
            parts += [_mark(True) + Text(f" {c.title}") + Text(f"  [{c.label}]", style="dim")
                      for c in passed]
    for warning in report.warnings:
        parts.append(Text(f"warning: {warning}", style="bold magenta"))
    total_style = "bold green" if report.all_passed else "bold"
    parts += [Text(""), Text(f"Total: {report.summary()}", style=total_style)]
    return Group(*parts)


def _extension_failures(report: GradeReport, label: str, *, verbose: bool, steps_failing: bool) -> list:
    """The extensions' failing checks: one line per extension while a step still fails; else the
    first failing extension in full (every one when verbose or few fail), the others one line per check."""
    course = report.course
    failed = [c for c in report.failed if c.extension is not None]
    if not failed:
        return []
    parts: list = []
    order = [e.id for e in report.extensions]
    failing = [e for e in order if any(c.extension == e for c in failed)]
    if steps_failing and not verbose:
        for e in failing:
            extension = course.extension(e)
            n = sum(c.extension == e for c in failed)
            parts.append(Text(f"\nExtension {e}: {extension.title} (optional)", style="bold yellow"))
            parts.append(Text(f"  {n} check{'s' if n != 1 else ''} to pass "
                              f"(details: python grade.py --only {e})", style="dim"))
        return parts
    full = set(failing) if (verbose or len(failed) <= FULL_DETAIL_LIMIT) else {failing[0]}
    for e in failing:
        extension = course.extension(e)
        files = ", ".join(f"{Path(label).name}/{f}" for f in extension.files)
        parts += _failures(f"Extension {e}: {extension.title} ({files}; optional)",
                           [c for c in failed if c.extension == e], lambda c: e, extension.hints, e in full, e)
    return parts


def _failures(heading: str, checks: list, tag, hints, full: bool, only) -> list:
    """One step's (or extension's) failing checks, in TODO order as `check(N)` lists them: each
    with its tag and TODO, the message and hints when shown in full, else a pointer to --only."""
    parts: list = [Text(f"\n{heading}", style="bold yellow")]
    for c in sorted(checks, key=lambda c: todo_number(c.todo)):
        where = f"  [{tag(c)}{', ' + c.todo if c.todo else ''}]"
        parts.append(_mark(False) + Text(f" {c.title}") + Text(where, style="dim"))
        if full:
            parts.append(Padding(Text(c.message), (0, 0, 0, 4)))
    if full:
        parts.append(Text("  Hints:", style="cyan"))
        parts += [Padding(Text(f"- {hint}", style="cyan"), (0, 0, 0, 4)) for hint in hints]
    else:
        parts.append(Text(f"  (details: python grade.py --only {only})", style="dim"))
    return parts


def print_scorecard(report: GradeReport, *, verbose: bool = False, console: Console | None = None,
                    tree_label: str | None = None) -> None:
    (console or Console()).print(render(report, verbose=verbose, tree_label=tree_label))
