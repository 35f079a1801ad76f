"""kit.grading.shares: one tree's checks shared among the grading children, in shares of about
equal time, the same way every time."""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from kit.grading import shares
from kit.grading.zygote import shared_zygote


@dataclass(frozen=True)
class Check:
    nodeid: str


@settings(derandomize=True, database=None, max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.1, max_value=100), max_size=40), st.integers(1, 4))
def test_every_check_once_in_order_and_the_shares_about_even(times, n):
    checks = [Check(f"checks/test_x.py::test_{i}") for i in range(len(times))]
    measured = {c.nodeid: t for c, t in zip(checks, times)}
    parts = shares.split(checks, n, measured)
    assert sorted(c.nodeid for part in parts for c in part) == sorted(c.nodeid for c in checks)
    for part in parts:  # each share keeps the checks' own order
        assert [checks.index(c) for c in part] == sorted(checks.index(c) for c in part)
    assert 1 <= len(parts) <= max(1, min(n, len(checks)))
    loads = [sum(measured[c.nodeid] for c in part) for part in parts]
    if len(parts) > 1:  # greedy: no share ends more than one check behind another
        assert max(loads) - min(loads) <= max(times) + 1e-9
    assert shares.split(checks, n, measured) == parts  # the same every time


def test_a_check_never_measured_counts_as_the_median():
    checks = [Check("a"), Check("b"), Check("new")]
    # a: 10, b: 30 -> the median is 20: b goes first, then new (20) and a (10) to the other share
    assert shares.split(checks, 2, {"a": 10.0, "b": 30.0}) == [[Check("b")], [Check("a"), Check("new")]]
    assert shares.split([], 2, {}) == [[]]


def test_whole_modules_go_to_one_share_when_there_are_enough():
    checks = [Check(f"checks/test_{m}.py::test_{i}") for m in "abc" for i in range(3)]
    measured = {c.nodeid: {"a": 5.0, "b": 9.0, "c": 4.0}[c.nodeid[12]] for c in checks}
    parts = shares.split(checks, 2, measured)
    assert [{c.nodeid.split("::")[0] for c in part} for part in parts] == [{"checks/test_b.py"},
                                                                          {"checks/test_a.py", "checks/test_c.py"}]
    one_module = [c for c in checks if "test_a" in c.nodeid]
    assert len(shares.split(one_module, 2, measured)) == 2  # fewer modules than shares: check by check


def test_every_check_of_the_kit_has_a_measure():
    """Fails when checks were added or renamed since the last `python -m kit.grading.shares`."""
    nodeids = {c.nodeid for c in shared_zygote().checks}
    measured = shares.costs()
    missing, stale = sorted(nodeids - set(measured)), sorted(set(measured) - nodeids)
    assert not missing and not stale, (f"kit/grading/check_costs.json is stale (no measure for {missing[:3]}, "
                                       f"measures for checks that are gone: {stale[:3]}): run "
                                       "python -m kit.grading.shares")
