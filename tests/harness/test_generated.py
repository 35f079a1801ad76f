"""Generated cases drawn once and replayed (kit/harness/generated.py): the codec keeps every type,
a passing run replays without drawing, a failure is shrunk by Hypothesis (in a learner release,
reported as it is), and the stored cases are exactly what the strategies draw today. The oracles'
answers as tables (kit/harness/answers.py): recorded, looked up, a miss one line, and the same
recorded answers whatever order the checks run in."""
from __future__ import annotations

import ast
import enum
import filecmp
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import strategies as st

from kit.harness import answers as a
from kit.harness import generated as g


class Colour(enum.Enum):
    RED = 1


@dataclass(frozen=True)
class Point:
    x: int
    y: tuple


def test_the_codec_keeps_every_type_it_stores():
    value = [None, True, 3, 2.5, float("inf"), -0.0, 1 << 127, "s", (1, [2, (3,)]), {"a": (1,)}, {(1, 2): "t", 3: None},
             {1, 2}, frozenset({"x"}), Colour.RED, Point(1, (2, 3)), httpx.ConnectError]
    back = g.decode(g.encode(value))
    assert back == value
    assert [type(v) for v in back] == [type(v) for v in value]
    assert type(back[8][1][1]) is tuple and type(back[14].y) is tuple


def test_a_type_it_cannot_store_is_refused_by_name():
    with pytest.raises(TypeError, match="holds a object"):
        g.encode(object())


def _stored(monkeypatch, test, cases):
    monkeypatch.setitem(g._stored, test.__module__, {test.__qualname__.replace(".<locals>", ""): [g.encode([c]) for c in cases]})


def test_a_passing_run_replays_the_stored_cases_in_order_without_drawing(monkeypatch):
    seen = []

    def body(x):
        seen.append(x)
    _stored(monkeypatch, body, [5, 7, 9])
    run = g.generated(st.integers(), examples=[1])(body)
    run()
    assert seen == [1, 5, 7, 9]


def test_a_failing_case_is_shrunk_by_hypothesis(monkeypatch):
    def body(x):
        assert x < 10, f"too big: {x}"
    _stored(monkeypatch, body, [3, 15])
    run = g.generated(st.integers(0, 1000), max_examples=200)(body)
    with pytest.raises(AssertionError, match="too big: 10\n"):
        run()


def test_a_failure_hypothesis_does_not_reproduce_is_still_a_failure(monkeypatch):
    calls = {"n": 0}

    def body(x):
        calls["n"] += 1
        assert calls["n"] != 2, "failed on the second call only"
    _stored(monkeypatch, body, [4, 5, 6])
    run = g.generated(st.integers(0, 3), max_examples=5)(body)
    calls_before = calls["n"]
    with pytest.raises(AssertionError, match="second call only"):
        run()
    assert calls["n"] > calls_before + 2


def test_a_rejected_case_is_skipped(monkeypatch):
    seen = []

    def body(x):
        if x == 2:
            raise g.Rejected
        seen.append(x)
    _stored(monkeypatch, body, [1, 2, 3])
    g.generated(st.integers())(body)()
    assert seen == [1, 3]


def test_without_stored_cases_hypothesis_runs_live():
    seen = []

    def body(x):
        seen.append(x)
    g.generated(st.integers(0, 5), max_examples=10)(body)()
    assert seen and set(seen) <= set(range(6))


def test_in_a_release_a_failing_stored_case_is_reported_as_it_is(monkeypatch):
    """A release has answers only for the stored cases: Hypothesis never goes live there."""
    seen = []

    def body(x):
        seen.append(x)
        assert x < 10, f"too big: {x}"
    _stored(monkeypatch, body, [3, 15, 40])
    monkeypatch.setattr(g, "_released", lambda: True)
    run = g.generated(st.integers(0, 1000), max_examples=200)(body)
    with pytest.raises(AssertionError, match="too big: 15\n"):
        run()
    assert seen == [3, 15]


# -- the oracles' answers as tables (kit/harness/answers.py) -------------------------------------

def _recorded_oracle(monkeypatch, tmp_path, function):
    """`function` marked @oracle while recording into tmp_path (nothing written at exit)."""
    monkeypatch.setenv(g.RECORD_ENV, str(tmp_path))
    monkeypatch.setattr(a, "_recorded", {})
    monkeypatch.setattr(a, "_writing", {tmp_path})
    return a.oracle(function)


def oracle_pairs(spans, top=2):
    return [(s, len(s)) for s in spans][:top]


def test_an_oracle_is_itself_unless_recording(monkeypatch):
    monkeypatch.delenv(g.RECORD_ENV, raising=False)
    assert a.oracle(oracle_pairs) is oracle_pairs


def test_recorded_answers_are_looked_up_with_their_types(monkeypatch, tmp_path):
    pairs = _recorded_oracle(monkeypatch, tmp_path, oracle_pairs)
    assert pairs(["ab", "c", "def"], top=2) == [("ab", 2), ("c", 1)]
    pairs(["x"])
    pairs(["x"])                                         # the same call twice: one entry
    a._write_all(tmp_path, a._recorded)
    text = (tmp_path / "answers" / "test_generated.json").read_text()
    assert len(text.splitlines()) == 4 and text == "\n".join(["["] + sorted(text.splitlines()[1:-1]) + ["]"]) + "\n"
    table = a.Table("test_generated", tmp_path / "answers")
    lookup = table.function("oracle_pairs")
    assert lookup(["ab", "c", "def"], top=2) == [("ab", 2), ("c", 1)] and lookup(["x"]) == [("x", 1)]
    assert type(lookup(["x"])[0]) is tuple
    with pytest.raises(a.NoAnswer) as missed:
        lookup(["x"], top=1)                             # another call: not recorded
    message = str(missed.value)
    assert "\n" not in message and message.startswith("this release of the kit has no recorded answer for "
                                                      "oracle_pairs(") and message.endswith("grade with the full kit")


def test_an_oracle_answering_one_call_two_ways_is_refused(monkeypatch, tmp_path):
    answers = iter([1, 2])
    flaky = _recorded_oracle(monkeypatch, tmp_path, lambda: next(answers))
    flaky()
    with pytest.raises(RuntimeError, match="two ways"):
        flaky()


def test_a_table_module_is_only_lookups_and_holds_no_logic():
    source = (g.ROOT / "checks" / "oracles" / "step5.py").read_text()
    text = a.table_module("step5", source)
    assert a.is_table(text) and not a.is_table(source)
    names = a.public_oracles(source)
    assert "oracle_tree" in names and "oracle_critical_path" in names
    logic = {line.strip() for line in source.splitlines() if line.startswith("    ") and len(line.strip()) > 12}
    assert not logic & {line.strip() for line in text.splitlines()}
    namespace: dict = {}
    exec(compile(text, "step5.py", "exec"), namespace)   # noqa: S102 - the text written for the release
    assert sorted(n for n in namespace if not n.startswith("_")) == sorted(["Table", *names])
    with pytest.raises(ValueError, match="no @oracle function: helper"):
        a.public_oracles("from kit.harness.answers import oracle\n\ndef helper():\n    pass\n")


def test_the_full_kit_is_no_release():
    assert not a.released()


def test_the_stored_cases_are_what_the_strategies_draw_today(tmp_path):
    """Re-recording on the reference gives the committed files byte for byte, the oracles'
    answers included: after changing a strategy, a generated check's body or an oracle, run
    `python -m kit.harness.generated`."""
    assert g.record(tmp_path / "cases") == 0
    for committed_folder, recorded in ((g.CASES, tmp_path / "cases"), (a.ANSWERS, tmp_path / "cases" / "answers")):
        committed = sorted(p.name for p in committed_folder.glob("*.json"))
        assert sorted(p.name for p in recorded.glob("*.json")) == committed
        match, mismatch, errors = filecmp.cmpfiles(committed_folder, recorded, committed, shallow=False)
        assert not mismatch and not errors, f"stale: {mismatch + errors}: run python -m kit.harness.generated"
    assert {p.stem for p in a.ANSWERS.glob("*.json")} >= {"step2", "step4", "step5", "e1", "e2", "e3", "e4"}


def test_the_answers_do_not_depend_on_the_order_the_checks_run_in(tmp_path):
    """The extensions' checks number span ids themselves (checks/ext_helpers.py); run in reverse
    order, in one process, they record the same answers."""
    modules = sorted((g.ROOT / "checks").glob("test_ext_e*.py"))
    ids = [f"{path}::{node.name}" for path in modules for node in ast.parse(path.read_text()).body
           if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")]
    assert len(ids) > 20
    assert g.record(tmp_path / "cases", checks=ids[::-1]) == 0
    names = [f"e{k}.json" for k in range(1, 5)]
    match, mismatch, errors = filecmp.cmpfiles(a.ANSWERS, tmp_path / "cases" / "answers", names, shallow=False)
    assert match == names, f"answers that depend on the order: {mismatch + errors}"
