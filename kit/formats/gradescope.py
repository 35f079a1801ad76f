"""Gradescope's autograder `results.json`.

One test per check, each worth its share of its criterion's points, so the tests add up to the
report's score. `output` is the learner-facing message; `visibility` is "visible".

The optional extensions' checks follow as extra tests worth nothing (`score` and `max_score` 0,
named "[E2] ...", tagged "extension" and "E2", numbered "E2.k"), so they never change the score;
the top-level `output` ends with "extensions: N of M".
"""
from __future__ import annotations

import json

from kit.results import GradeReport


def to_gradescope(report: GradeReport) -> str:
    shares = {c.id: (c.max_score / c.total if c.total else 0.0) for c in report.criteria}
    tests = [{
        "name": c.title,
        "number": f"{c.step}.{i}",
        "score": round(shares[c.criterion] if c.passed else 0.0, 4),
        "max_score": round(shares[c.criterion], 4),
        "status": "passed" if c.passed else "failed",
        "output": c.message,
        "tags": [c.criterion, f"step-{c.step}"],
        "visibility": "visible",
    } for i, c in enumerate(report.step_checks, start=1)]
    for extension in report.extensions:
        mine = [c for c in report.checks if c.extension == extension.id]
        tests += [{
            "name": f"[{extension.id}] {c.title}",
            "number": f"{extension.id}.{i}",
            "score": 0.0,
            "max_score": 0.0,
            "status": "passed" if c.passed else "failed",
            "output": c.message,
            "tags": ["extension", extension.id],
            "visibility": "visible",
        } for i, c in enumerate(mine, start=1)]
    return json.dumps({"score": report.score, "output": report.summary(), "visibility": "visible",
                       "stdout_visibility": "hidden", "tests": tests}, indent=2, sort_keys=True) + "\n"
