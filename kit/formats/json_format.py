"""The kit's JSON report.

Schema: `{"target", "score", "max_score", "criteria": [{"id", "title", "score", "max_score",
"passed", "total"}], "steps": [{"number", "title", "file", "passed", "total"}], "checks":
[{"id", "title", "step", "criterion", "status", "message", "todo"}], "warnings": [...]}`.
`status` is `passed`, `failed` or `error`. Keys are sorted; the same report always gives the
same text.

The optional extensions come apart, only when the report graded some: `"extensions": {"passed",
"total", "results": [{"id", "title", "passed", "total", "complete", "checks": [...]}]}`, where
`passed`/`total` at the top count extensions ("extensions: 2 of 4"), those of a result count its
checks, and each of its checks has `"extension": "E2"` with `step` and `criterion` null. They
never appear in "checks" and never change "score".
"""
from __future__ import annotations

import json

from kit.results import GradeReport


def to_json(report: GradeReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
