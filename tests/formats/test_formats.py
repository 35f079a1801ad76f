"""Every output format is a pure function of the result model, checked against golden files.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 python -m pytest
tests/formats/test_formats.py`, then read the diff.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from rich.console import Console

from kit.formats import FORMATS
from kit.results import CheckResult, GradeReport, Status
from kit.formats.scorecard import print_scorecard

GOLDEN = Path(__file__).parent / "golden"


def sample_report(extensions: bool = True) -> GradeReport:
    def result(check_id, step, criterion, status, message=""):
        return CheckResult(id=check_id, title=check_id.replace("_", " ").capitalize(), step=step,
                           criterion=criterion, status=status, message=message, todo=f"TODO {step}")

    def extra(check_id, extension, status, message=""):
        return CheckResult(id=check_id, title=check_id.replace("_", " ").capitalize(), step=None, criterion=None,
                           status=status, message=message, todo="TODO 1", extension=extension)
    checks = (
        result("one_trace", 1, "traces-span-services", Status.PASSED),
        result("no_orphans", 2, "traces-span-services", Status.FAILED,
               "We sent one order.\nExpected: one root span\nSaw: 2 root spans\nYour trace:\ntrace 00ab\n  └─ api-gateway: POST /api/orders [SERVER]"),
        result("b3_single", 2, "context-propagates", Status.PASSED),
        result("business_spans", 3, "rich-attributes", Status.FAILED, "Expected: <process_order> & friends"),
        result("critical_path", 5, "performance-visible", Status.ERROR, "timed out after 10 s"),
        result("ratio", 6, "sampling-works", Status.PASSED),
        result("error_spans", 3, "errors-traced", Status.PASSED),
    )
    if extensions:  # E1 passed, E3 not yet (one check failed); E2 and E4 not graded
        checks += (extra("e1_percentiles", "E1", Status.PASSED), extra("e1_error_rates", "E1", Status.PASSED),
                   extra("e3_window", "E3", Status.FAILED, "We evaluated an SLO.\nExpected: total = 3\nSaw: total = 4"),
                   extra("e3_figures", "E3", Status.PASSED))
    return GradeReport(target="exercise", checks=checks)


def scorecard_text(report: GradeReport) -> str:
    console = Console(record=True, width=100, no_color=True, file=open(os.devnull, "w"))
    print_scorecard(report, verbose=True, console=console, tree_label="exercise/")
    return console.export_text()


RENDERERS = {**{name: fn for name, fn in FORMATS.items()}, "scorecard": scorecard_text}
SUFFIX = {"json": "json", "junit": "xml", "gradescope": "json", "exercism": "json", "scorecard": "txt"}


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_format_matches_its_golden_file(name):
    text = RENDERERS[name](sample_report())
    golden = GOLDEN / f"report.{name}.{SUFFIX[name]}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_scores_add_up():
    report = sample_report()
    by_id = {c.id: c for c in report.criteria}
    assert by_id["traces-span-services"].score == 10.0
    assert by_id["performance-visible"].score == 0.0
    assert report.score == 10 + 20 + 0 + 0 + 15 + 15
    gradescope = json.loads(FORMATS["gradescope"](report))
    assert round(sum(t["score"] for t in gradescope["tests"]), 2) == report.score
    assert round(sum(t["max_score"] for t in gradescope["tests"]), 2) == report.max_score == 100


def test_json_has_the_documented_schema():
    data = json.loads(FORMATS["json"](sample_report()))
    assert {"score", "max_score", "criteria", "checks"} <= data.keys()
    assert all({"id", "title", "score", "max_score"} <= c.keys() for c in data["criteria"])
    assert all({"id", "criterion", "step", "status", "message"} <= c.keys() for c in data["checks"])
    assert {c["status"] for c in data["checks"]} == {"passed", "failed", "error"}


def test_junit_is_well_formed_and_counts_failures():
    root = ET.fromstring(FORMATS["junit"](sample_report(extensions=False)))
    assert root.tag == "testsuites"
    assert root.get("tests") == "7" and root.get("failures") == "2" and root.get("errors") == "1"
    assert len(root.findall("testsuite/testcase")) == 7
    assert len(root.findall("testsuite/testcase/failure")) == 2


def test_exercism_is_version_3_with_task_ids():
    data = json.loads(FORMATS["exercism"](sample_report()))
    assert data["version"] == 3 and data["status"] == "fail"
    assert all(t["status"] in ("pass", "fail", "error") for t in data["tests"])
    assert all(isinstance(t["task_id"], int) for t in data["tests"] if not t["name"].startswith("[E"))
    assert all(("message" in t) == (t["status"] != "pass") for t in data["tests"])


# -- the optional extensions: shown apart, never in the score -------------------------------------

def test_extensions_never_change_the_score():
    with_them, without = sample_report(), sample_report(extensions=False)
    assert (with_them.score, with_them.max_score) == (without.score, without.max_score)
    assert [c.id for c in with_them.criteria] == [c.id for c in without.criteria]
    assert [(c.passed, c.total) for c in with_them.criteria] == [(c.passed, c.total) for c in without.criteria]
    assert [(e.id, e.passed, e.total, e.complete) for e in with_them.extensions] == \
        [("E1", 2, 2, True), ("E3", 1, 2, False)]
    assert with_them.summary().endswith("; extensions: 1 of 2 (3/4 checks)")
    assert without.summary() == "60/100 points, 4/7 checks passed" and not without.extensions


def test_a_report_of_one_extension_alone():
    only = GradeReport(target="t", checks=tuple(c for c in sample_report().checks if c.extension == "E1"))
    assert only.summary() == "extensions: 1 of 1 (2/2 checks)" and only.all_passed
    assert only.score == 0 and only.max_score == 0
    assert "Success criteria" not in scorecard_text(only) and "E1. Trace analytics" in scorecard_text(only)


def test_every_format_shows_the_extensions_apart():
    report = sample_report()
    data = json.loads(FORMATS["json"](report))
    assert [c["id"] for c in data["checks"]] == [c.id for c in report.step_checks]
    assert (data["extensions"]["passed"], data["extensions"]["total"]) == (1, 2)
    assert [(r["id"], r["passed"], r["total"], r["complete"]) for r in data["extensions"]["results"]] == \
        [("E1", 2, 2, True), ("E3", 1, 2, False)]
    assert all(c["extension"] == "E3" and c["step"] is None for c in data["extensions"]["results"][1]["checks"])
    assert "extensions" not in json.loads(FORMATS["json"](sample_report(extensions=False)))

    root = ET.fromstring(FORMATS["junit"](report))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert suites["extension-E3"].get("tests") == "2" and suites["extension-E3"].get("failures") == "1"
    assert {c.get("classname") for c in suites["extension-E1"]} == {"extension.E1"}

    gradescope = json.loads(FORMATS["gradescope"](report))
    extra = [t for t in gradescope["tests"] if "extension" in t["tags"]]
    assert len(extra) == 4 and all(t["score"] == t["max_score"] == 0 for t in extra)
    assert gradescope["score"] == report.score and "extensions: 1 of 2" in gradescope["output"]

    exercism = json.loads(FORMATS["exercism"](report))
    extra = [t for t in exercism["tests"] if t["name"].startswith("[E")]
    assert len(extra) == 4 and all("task_id" not in t for t in extra)
    assert [t["test_code"] for t in extra][0] == "E1::e1_percentiles"

    text = scorecard_text(report)
    assert "Extensions (optional, no points)" in text and "extensions: 1 of 2" in text
    assert text.index("Steps") < text.index("Extensions (optional")


def test_html_rendering_escapes_learner_text():
    html = sample_report()._repr_html_()
    assert "&lt;process_order&gt; &amp; friends" in html and "<process_order>" not in html


def test_only_picks_an_extension_by_its_id_and_a_step_never_picks_it():
    from kit.results import CheckInfo

    extra = CheckInfo(nodeid="checks/test_ext_e2.py::test_x", id="x", title="X", step=None, criterion=None,
                      extension="E2")
    step = CheckInfo(nodeid="checks/test_a.py::test_y", id="y", title="Y", step=2, criterion="context-propagates")
    assert extra.selected_by(None) and extra.selected_by("E2") and extra.selected_by("e2")
    assert not extra.selected_by("E1") and not extra.selected_by("2") and not extra.selected_by("None")
    assert step.selected_by("2") and step.selected_by("context-propagates") and not step.selected_by("E2")
    assert CheckInfo.from_dict(extra.to_dict()) == extra and extra.result(Status.PASSED).extension == "E2"
