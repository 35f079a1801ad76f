"""exercism test-runner results, version 3.

`status` is "pass" when every check of the steps passed, "fail" otherwise ("error" when no check
could run); each test has `name`, `status`, `message` (failures only) and `task_id` = the step.
The optional extensions' checks follow, named "[E2] ..." with `test_code` "E2::<check id>" and no
`task_id` (an extension is no task of the exercise); they never change `status`.
"""
from __future__ import annotations

import json

from kit.results import GradeReport, Status

_STATUS = {Status.PASSED: "pass", Status.FAILED: "fail", Status.ERROR: "error"}


def to_exercism(report: GradeReport) -> str:
    tests = []
    for c in report.step_checks:
        test = {"name": c.title, "status": _STATUS[c.status], "task_id": c.step,
                "test_code": f"{c.criterion}::{c.id}"}
        if not c.passed:
            test["message"] = c.message
        tests.append(test)
    for c in report.extension_checks:
        test = {"name": f"[{c.extension}] {c.title}", "status": _STATUS[c.status], "test_code": f"{c.extension}::{c.id}"}
        if not c.passed:
            test["message"] = c.message
        tests.append(test)
    status = "pass" if report.all_passed else ("error" if not report.checks else "fail")
    return json.dumps({"version": 3, "status": status, "tests": tests}, indent=2, sort_keys=True) + "\n"
