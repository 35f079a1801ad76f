"""kit.child.checks_list: the warm parent's reading of the checks is exactly what a pytest session
collects (same checks, same order, same descriptions), and a broken list is refused in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kit import ROOT
from kit.child.checks_list import ChecksError, info, validate
from kit.course import load_course

BOTH = textwrap.dedent("""
    import json, os, sys, tempfile
    from pathlib import Path
    from kit import ROOT
    from kit.child.checks_list import read_checks
    from kit.child.main import run
    from kit.course import load_course
    from kit.grading.protocol import verify

    direct = [c.to_dict() for c in read_checks(ROOT, load_course())]
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "tree" / "services").mkdir(parents=True)
        key = os.urandom(16)
        run({"target": str(Path(scratch) / "tree"), "events": str(Path(scratch) / "events"), "collect_only": True}, key)
        events = [verify(key, line) for line in (Path(scratch) / "events").read_text().splitlines()]
    collected = next(e["checks"] for e in events if e and e.get("event") == "collected")
    print(json.dumps({"direct": direct, "pytest": collected}))
""")


def test_reading_the_modules_gives_what_pytest_collects():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    out = subprocess.run([sys.executable, "-c", BOTH], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    both = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(both["pytest"]) > 150
    assert both["direct"] == both["pytest"]


def _check(name: str, **tag):
    def test():
        """A title"""
    test.__name__ = name
    return f"checks/test_x.py::{name}", info(f"checks/test_x.py::{name}", test, tag or None)


@pytest.mark.parametrize("found, message", [
    ([_check("test_a")], "checks/test_x.py::test_a has no @check(step=..., criterion=...) tag"),
    ([_check("test_a", step=9, criterion="sampling-works")], "checks/test_x.py::test_a: unknown step 9"),
    ([_check("test_a", step=1, criterion="no-such")], "checks/test_x.py::test_a: unknown criterion 'no-such'"),
    ([_check("test_a", extension="E9")], "checks/test_x.py::test_a: unknown extension 'E9'"),
    ([_check("test_a", extension="e1")], "checks/test_x.py::test_a: write the extension's id as course.toml does ('E1')"),
    ([_check("test_a", step=1, criterion="sampling-works"), _check("test_a", step=1, criterion="sampling-works")],
     "check id 'a' is used by checks/test_x.py::test_a and checks/test_x.py::test_a"),
])
def test_a_list_the_kit_cannot_grade_with_is_refused_in_one_line(found, message):
    with pytest.raises(ChecksError) as raised:
        validate(found, load_course())
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_good_list_keeps_its_order_and_descriptions():
    found = [_check("test_b", step=2, criterion="context-propagates", todo="TODO 3", rules=("2.1",)),
             _check("test_a", extension="E1")]
    checks = validate(found, load_course())
    assert [c.id for c in checks] == ["b", "a"]
    assert checks[0].title == "A title" and checks[0].todo == "TODO 3" and checks[0].rules == ("2.1",)
    assert checks[1].step is None and checks[1].criterion is None and checks[1].extension == "E1"
