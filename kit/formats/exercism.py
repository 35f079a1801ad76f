"""exercism test-runner results, version 3.

`status` is "pass" when every check passed, "fail" otherwise ("error" when no check could
run); each test has `name`, `status`, `message` (failures only) and `task_id` = the step.
"""
from __future__ import annotations

import json

from kit.results import GradeReport, Status


def to_exercism(report: GradeReport) -> str:
    tests = []
    for c in report.checks:
        test = {"name": c.title, "status": {Status.PASSED: "pass", Status.FAILED: "fail",
                                             Status.ERROR: "error"}[c.status], "task_id": c.step,
                "test_code": f"{c.criterion}::{c.id}"}
        if not c.passed:
            test["message"] = c.message
        tests.append(test)
    status = "pass" if report.all_passed else ("error" if not report.checks else "fail")
    return json.dumps({"version": 3, "status": status, "tests": tests}, indent=2, sort_keys=True) + "\n"
