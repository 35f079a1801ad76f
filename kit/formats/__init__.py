"""Output formats: each a pure function `GradeReport -> str`.

| name | what it is |
| --- | --- |
| `json` | the kit's documented schema (`GradeReport.to_dict()`) |
| `junit` | JUnit XML, one testcase per check, grouped by criterion |
| `gradescope` | Gradescope's autograder `results.json` |
| `exercism` | exercism test-runner results, version 3 (`task_id` = step) |
"""
from __future__ import annotations

from typing import Callable

from kit.formats.exercism import to_exercism
from kit.formats.gradescope import to_gradescope
from kit.formats.json_format import to_json
from kit.formats.junit import to_junit
from kit.results import GradeReport

FORMATS: dict[str, Callable[[GradeReport], str]] = {
    "json": to_json,
    "junit": to_junit,
    "gradescope": to_gradescope,
    "exercism": to_exercism,
}
