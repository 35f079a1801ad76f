"""The notebook helpers without a kernel: the TODO list of `show_step`, the `check()` report,
the "yours next to the expected" displays and the grouping of retries. Outside Jupyter the
helpers print their text form, which is what these tests read."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kit import ROOT
from kit.course import load_course
from kit.notebook import display
from kit.notebook.grading import StepReport, check_points, core_todos, step_shares
from kit.results import todo_number
from kit.notebook.orders import OrderRun
from kit.notebook.steps import _todos
from kit.results import CheckInfo, GradeReport, Status

COURSE = load_course()


@pytest.fixture
def shown(monkeypatch):
    """What the helpers displayed, as text (tags dropped, entities kept as they are)."""
    out: list[str] = []

    def collect(markup: str) -> None:
        out.append(re.sub(r"<[^>]+>", " ", markup))
    monkeypatch.setattr(display, "_display_html", collect)
    import kit.notebook.pictures as pictures
    monkeypatch.setattr(pictures, "_display_html", collect)

    def text() -> str:
        joined = re.sub(r"\s+", " ", " ".join(out))
        out.clear()
        return joined
    return text


# -- show_step's TODO list -----------------------------------------------------------------------

def test_continuation_lines_are_joined_whatever_their_indent(tmp_path):
    stub = tmp_path / "stub.py"
    stub.write_text("def f():\n"
                    "    # TODO 1 (performance-visible): index the spans by span_id, make\n"
                    "    # a node for each, and attach it.\n"
                    "    #\n"
                    "    # TODO 2 (criterion: performance-visible; see docs/learner-api.md): the\n"
                    "    #   latest end minus the earliest start.\n"
                    "    # A comment after a blank line is not part of it.\n"
                    "    # TODO 3 (traces-span-services, context-propagates; rules 4.10 to\n"
                    "    #   4.13): give every attempt\n"
                    "    #   its own headers.\n"
                    "    # TODO 4 reads this in a sentence: not a TODO of its own.\n"
                    "    return 0\n", encoding="utf-8")
    assert [(n, crit, text) for _, n, crit, text in _todos(stub)] == [
        ("1", "performance-visible", "index the spans by span_id, make a node for each, and attach it."),
        ("2", "performance-visible", "the latest end minus the earliest start. A comment after a blank "
                                     "line is not part of it."),
        ("3", "traces-span-services, context-propagates", "give every attempt its own headers."),
    ]


@pytest.mark.parametrize("step", COURSE.steps, ids=lambda s: f"step{s.number}")
def test_no_todo_of_a_stub_is_cut_off_mid_sentence(step):
    todos = _todos(ROOT / "exercise" / step.file)
    assert todos, f"{step.file} has no TODO"
    cut = [f"TODO {n}: ...{text[-50:]!r}" for _, n, _, text in todos
           if not re.search(r"[.:)`!?\]]$", text.strip())]
    assert not cut, f"{step.file}: TODO texts that stop mid-sentence:\n" + "\n".join(cut)


# -- check(): the report ---------------------------------------------------------------------------

def _info(i: int, step: int, criterion: str, todo: str) -> CheckInfo:
    return CheckInfo(nodeid=f"checks/x.py::c{i}", id=f"c{i}", title=f"check {i}", step=step,
                     criterion=criterion, todo=todo)


def test_the_report_lists_checks_by_todo_with_points_and_the_steps_share():
    infos = [_info(1, 1, "traces-span-services", "TODO 10"), _info(2, 1, "rich-attributes", "TODO 2"),
             _info(3, 1, "traces-span-services", "TODO 2"), _info(4, 2, "traces-span-services", "TODO 1")]
    results = [infos[0].result(Status.PASSED), infos[1].result(Status.FAILED, "We did X.\nExpected: Y\nSaw: Z"),
               infos[2].result(Status.PASSED)]
    report = StepReport(GradeReport(target="exercise", checks=tuple(results)), infos, "1")
    assert [c.id for c in report.ordered()] == ["c2", "c3", "c1"]    # by TODO number, then as graded
    points = check_points(infos)
    assert points == {"c1": 20 / 3, "c2": 15.0, "c3": 20 / 3, "c4": 20 / 3}
    shares = step_shares(infos)
    assert shares == pytest.approx({1: 20 / 3 * 2 + 15, 2: 20 / 3})
    assert report.earned(1) == pytest.approx(20 / 3 * 2)
    html = report._repr_html_()
    assert "2/3 checks passed" in html and "Step 1: Telemetry configuration" in html
    assert html.index("check 2") < html.index("check 3") < html.index("check 1")
    assert "services/shared/telemetry.py" in html and "Saw: Z" in html and "Hints" in html
    assert f"of this step's {round(20 / 3 * 2 + 15, 1)} points" in html
    assert report.all_passed is False                                          # the GradeReport's own


def test_todo_numbers_sort_numerically_and_core_comes_from_course_toml():
    assert sorted(["TODO 10", "TODO 2", None, "TODO 1"], key=todo_number) == ["TODO 1", "TODO 2", "TODO 10", None]
    core = core_todos()
    assert set(core) == {s.number for s in COURSE.steps} and all(core.values())


# -- yours next to the expected --------------------------------------------------------------------

def test_compare_says_as_expected_or_not_done_yet(shown):
    display.compare([{"a": 1}], [{"a": 1}], todo="Step 1, TODO 4")
    assert "as expected" in shown()
    display.compare([], [{"a": 1}], todo="Step 1, TODO 4")
    out = shown()
    assert "Not done yet: Step 1, TODO 4" in out and "Expected" in out and "Yours" in out


def test_with_no_reference_compare_shows_yours_alone_and_the_check_that_grades_it(shown):
    """The learner release's reference stubs give NO_REFERENCE: no verdict, no expected column."""
    from kit.notebook import NO_REFERENCE

    display.compare([{"service": "api-gateway"}], NO_REFERENCE, todo="Extension E1, TODO 1", title="slowest",
                    same=lambda a, b: 1 / 0)
    out = shown()
    assert 'The learner release has no reference answer here: `check("E1")` grades it' in out
    assert "Yours" in out and "api-gateway" in out
    assert "Expected" not in out and "as expected" not in out and "Not done yet" not in out
    display.compare(None, [NO_REFERENCE], todo="Extension E3, TODO 1 and TODO 2")   # rows built from it
    assert '`check("E3")` grades it' in shown()
    display.compare([], [{"a": 1}], todo="Step 5, TODO 3")
    assert "no reference" not in shown()
    assert display.graded_by("Step 5, TODO 3") == "check(5)" and display.graded_by("the services") == "check()"


def test_with_no_reference_expectations_leave_the_line_unmarked(shown):
    from kit.notebook import NO_REFERENCE

    display.expectations([("total duration (ms)", NO_REFERENCE, 12.5, "Step 5, TODO 2"),
                          ("traces", 1, 1, "Step 2, TODO 1")])
    out = shown()
    assert "12.5" in out and "Not done yet" not in out and out.count("✓") == 1
    assert out.count("The learner release has no reference answer here: `check(5)` grades it") == 1


def test_expectations_mark_each_line(shown):
    from kit.notebook.expected import at_least

    display.expectations([("spans", at_least(20), 24, "Step 1, TODO 4"), ("traces", 1, 6, "Step 2, TODO 1")])
    out = shown()
    assert "20 or more" in out and "Not done yet: Step 2, TODO 1" in out
    assert "Not done yet: Step 1, TODO 4" not in out


def test_try_it_turns_a_stub_and_a_broken_module_into_one_line(shown):
    def stub():
        raise NotImplementedError("Step 5, TODO 1: build the trace tree")
    assert display.try_it(stub) is None
    assert "Not done yet: Step 5, TODO 1" in shown()
    broken = display.BrokenModule("services.shared.telemetry", "Your code cannot be imported: SyntaxError in "
                                  "shared/telemetry.py line 3: invalid syntax")
    assert display.try_it(broken.DistributedTelemetry) is None
    out = shown()
    assert "SyntaxError in shared/telemetry.py line 3" in out and "Traceback" not in out


def test_retries_are_grouped_by_caller_and_call(shown):
    from kit.notebook.pictures import show_retries

    run = OrderRun(sleeps_by_caller=[("payment-service", 0.1), ("payment-service", 0.2), ("order-service", 0.1),
                                     ("payment-service", 0.1), ("payment-service", 0.2), ("payment-service", 0.4)])
    assert run.retries == {"payment-service": [0.1, 0.2, 0.1, 0.2, 0.4], "order-service": [0.1]}
    show_retries(run)
    out = shown()
    assert "payment-service 1 2 0.1, 0.2" in out and "payment-service 2 3 0.1, 0.2, 0.4" in out
    assert "order-service 1 1 0.1" in out


def test_the_notebooks_link_what_the_issue_asks_for():
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "notebooks" / "src").glob("*.py"))
    for link in ("https://opentelemetry.io/docs/", "https://www.w3.org/TR/trace-context/",
                 "http://127.0.0.1:8000/viewer/", "scripts/step7_trace_test.py"):
        assert link in text, link
    assert Path(ROOT / "scripts" / "step7_trace_test.py").exists()
