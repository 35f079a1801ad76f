"""Generated cases drawn once and replayed (kit/harness/generated.py): the codec keeps every type,
a passing run replays without drawing, a failure is shrunk by Hypothesis, and the stored cases are
exactly what the strategies draw today."""
from __future__ import annotations

import enum
import filecmp
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import strategies as st

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


def test_the_stored_cases_are_what_the_strategies_draw_today(tmp_path):
    """Re-recording on the reference gives the committed files byte for byte: after changing a
    strategy or a generated check's body, run `python -m kit.harness.generated`."""
    assert g.record(tmp_path / "cases") == 0
    committed = sorted(p.name for p in g.CASES.glob("*.json"))
    assert sorted(p.name for p in (tmp_path / "cases").glob("*.json")) == committed
    match, mismatch, errors = filecmp.cmpfiles(g.CASES, tmp_path / "cases", committed, shallow=False)
    assert not mismatch and not errors, f"stale: {mismatch + errors}: run python -m kit.harness.generated"
