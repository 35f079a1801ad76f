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
