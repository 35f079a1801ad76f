"""JUnit XML: one `<testsuite>` per success criterion, one `<testcase>` per check; then one
`<testsuite name="extension-E2">` per optional extension graded (classname `extension.E2`), so CI
shows the extensions apart from the criteria.

CI systems (GitHub Actions reporters, GitLab, Jenkins) read this. A failed check is a
`<failure>` whose text is the learner-facing message; an error is an `<error>`. No timings are
written, so the same report always gives the same XML.
"""
from __future__ import annotations

from xml.etree import ElementTree as ET

from kit.results import GradeReport, Status


def to_junit(report: GradeReport) -> str:
    root = ET.Element("testsuites", name=report.course.title, tests=str(len(report.checks)),
                      failures=str(sum(c.status is Status.FAILED for c in report.checks)),
                      errors=str(sum(c.status is Status.ERROR for c in report.checks)))
    for criterion in report.criteria:
        checks = [c for c in report.checks if c.criterion == criterion.id]
        if not checks:
            continue
        suite = ET.SubElement(root, "testsuite", name=criterion.id, tests=str(len(checks)),
                              failures=str(sum(c.status is Status.FAILED for c in checks)),
                              errors=str(sum(c.status is Status.ERROR for c in checks)))
        _cases(suite, checks, lambda c: f"step{c.step}.{c.criterion}")
    for extension in report.extensions:
        checks = [c for c in report.checks if c.extension == extension.id]
        suite = ET.SubElement(root, "testsuite", name=f"extension-{extension.id}", tests=str(len(checks)),
                              failures=str(sum(c.status is Status.FAILED for c in checks)),
                              errors=str(sum(c.status is Status.ERROR for c in checks)))
        _cases(suite, checks, lambda c: f"extension.{c.extension}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cases(suite: ET.Element, checks, classname) -> None:
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=classname(c), name=c.id)
        if c.status is Status.FAILED:
            ET.SubElement(case, "failure", message=c.title).text = c.message
        elif c.status is Status.ERROR:
            ET.SubElement(case, "error", message=c.title).text = c.message
