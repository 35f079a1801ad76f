"""Shared fixtures for the kit's own tests.

Grading a whole tree takes a few seconds, so each tree is graded once per test session and the
report shared (`graded`). Tests that need the learner's code in process run it in a child
process: the test process never imports `services` (both trees define it).
"""
from __future__ import annotations

import os

import pytest

from kit import ROOT
from kit.grading.runner import run_checks

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

_reports: dict[str, object] = {}


@pytest.fixture(scope="session")
def graded():
    """graded("solution") / graded("exercise"): the GradeReport of that tree (cached)."""
    def grade(tree: str):
        if tree not in _reports:
            _reports[tree] = run_checks(ROOT / tree)
        return _reports[tree]
    return grade


@pytest.fixture
def run_with_solution():
    """run_with_solution(code): run the Python `code` in a child process, solution/ as its first
    argument and the kit on its path (the test process never imports `services`); returns what
    its last line of output says, as JSON."""
    import json
    import subprocess
    import sys

    def run(code: str):
        out = subprocess.run([sys.executable, "-c", code, str(ROOT / "solution")], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])
    return run
