"""`python grade.py --watch`: re-grade whenever a learner file is saved, like rustlings' watch.

It polls the six learner files' modification times (no extra dependency, works on every file
system), re-grades the target when one changes, prints the scorecard, then what changed since the
previous run: checks newly passing and newly failing. Ctrl-C stops it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from kit.course import load_course
from kit.results import GradeReport


def snapshot(tree: Path) -> dict[str, float]:
    """Modification time of each learner file (0 when it is missing)."""
    stamps = {}
    for learner_file in load_course().learner_files:
        try:
            stamps[learner_file] = (tree / learner_file).stat().st_mtime_ns
        except OSError:
            stamps[learner_file] = 0
    return stamps


def changes(before: GradeReport | None, after: GradeReport) -> tuple[list[str], list[str]]:
    """Titles of the checks newly passing and newly failing between two reports."""
    if before is None:
        return [], []
    was = {c.id: c.passed for c in before.checks}
    fixed = [c.title for c in after.checks if c.passed and was.get(c.id) is False]
    broken = [c.title for c in after.checks if not c.passed and was.get(c.id) is True]
    return fixed, broken


def watch(tree: Path, grade: Callable[[], GradeReport], show: Callable[[GradeReport, list[str], list[str]], None],
          *, interval_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
          rounds: int | None = None) -> None:
    """Grade now, then again after every change to a learner file. `rounds` limits the number
    of gradings (for tests); None means until Ctrl-C."""
    previous: GradeReport | None = None
    stamps: dict[str, float] | None = None
    graded = 0
    while rounds is None or graded < rounds:
        current = snapshot(tree)
        if current != stamps:
            stamps = current
            report = grade()
            show(report, *changes(previous, report))
            previous = report
            graded += 1
            continue
        sleep(interval_s)
