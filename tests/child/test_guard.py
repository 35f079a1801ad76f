"""kit.child.guard: what the learner's code replaced in the modules grading relies on is named
after the check, and put back."""
from __future__ import annotations

import builtins
import sys
import types

import pytest

from kit.child.guard import ModuleGuard


@pytest.fixture
def probe():
    """A module of the kit's own (so watched) with a function, a class and a constant."""
    module = types.ModuleType("kit._guard_probe")
    exec("def helper():\n    return 1\n\nclass Tool:\n    def use(self):\n        return 2\n\nNAMES = ['a', 'b']\n",
         module.__dict__)
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


class _ClaimsEquality:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


def test_nothing_changed_is_nothing_named(probe):
    assert ModuleGuard().take().changes() == []


def test_a_replaced_function_is_named_and_put_back(probe):
    guard = ModuleGuard().take()
    original = probe.helper
    probe.helper = lambda: 99
    assert guard.changes() == ["kit._guard_probe.helper"]
    guard.restore()
    assert probe.helper is original and guard.changes() == []


def test_a_replacement_that_claims_to_equal_the_original_is_still_named(probe):
    guard = ModuleGuard().take()
    probe.helper = _ClaimsEquality()
    probe.Tool.use = _ClaimsEquality()
    assert sorted(guard.changes()) == ["kit._guard_probe.Tool.use", "kit._guard_probe.helper"]


def test_a_removed_name_and_a_constant_emptied_in_place_are_named(probe):
    guard = ModuleGuard().take()
    del probe.helper
    probe.NAMES.clear()
    assert sorted(guard.changes()) == ["kit._guard_probe.NAMES", "kit._guard_probe.helper"]
    guard.restore()
    assert probe.NAMES == ["a", "b"] and probe.helper() == 1


def test_replacing_the_builtins_it_uses_does_not_blind_it(probe, monkeypatch):
    guard = ModuleGuard().take()
    probe.helper = lambda: 99
    monkeypatch.setattr(builtins, "all", lambda values: True)
    monkeypatch.setattr(builtins, "map", lambda *args: iter(()))
    monkeypatch.setattr(sys.modules["kit.child.guard"], "is_", lambda a, b: True)
    assert "kit._guard_probe.helper" in guard.changes()
