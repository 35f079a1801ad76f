"""The kit's JSON report.

Schema: `{"target", "score", "max_score", "criteria": [{"id", "title", "score", "max_score",
"passed", "total"}], "steps": [{"number", "title", "file", "passed", "total"}], "checks":
[{"id", "title", "step", "criterion", "status", "message", "todo"}], "warnings": [...]}`.
`status` is `passed`, `failed` or `error`. Keys are sorted; the same report always gives the
same text.
"""
from __future__ import annotations

import json

from kit.results import GradeReport


def to_json(report: GradeReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
