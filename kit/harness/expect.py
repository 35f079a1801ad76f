"""How a check speaks to the learner.

A check is a plain pytest function tagged with `@check(step=..., criterion=...)` (or, for an
optional extension, `@check(extension="E2")`). When it fails
it raises `CheckFailure` (through `expect(...)` or `fail(...)`), which carries four things the
scorecard shows: what the check did, what it expected, what it saw, and the learner's actual
trace as a small tree. Plain `assert`s work too; their message is shown as it is.
"""
from __future__ import annotations

from typing import Any, Iterable

import pytest

from kit.traces.text import render_tree


def check(*, step: int | None = None, criterion: str | None = None, extension: str | None = None,
          todo: str | None = None, rules: tuple[str, ...] | list[str] = ()):
    """Tag a check with the step whose file it grades, the success criterion it serves, the TODO
    in that file a learner should look at (e.g. "TODO 3") and the rules of `docs/learner-api.md`
    it verifies (e.g. `rules=("4.14", "4.16")`; `tests/test_contract.py` holds them to the page).

    An optional extension's check names its extension instead of a step and a criterion:
    `@check(extension="E2", todo="TODO 1", rules=("E2.1",))`. It earns no points; the reports
    show it apart."""
    if extension is not None:
        if step is not None or criterion is not None:
            raise TypeError("an extension's check names no step or criterion (it earns no points)")
        return pytest.mark.check(extension=extension, todo=todo, rules=tuple(rules))
    if step is None or criterion is None:
        raise TypeError("a check names its step and criterion, or an extension")
    return pytest.mark.check(step=step, criterion=criterion, todo=todo, rules=tuple(rules))


class CheckTimeout(BaseException):
    """Raised in the main thread when a check runs past its time limit. A BaseException so that
    learner code catching `Exception` cannot swallow it."""


class CheckFailure(AssertionError):
    """A check's verdict, written for the learner."""

    def __init__(self, *, did: str, expected: str, saw: str, spans: Iterable[Any] | None = None) -> None:
        self.did, self.expected, self.saw = did, expected, saw
        self.trace = render_tree(spans) if spans is not None else None
        super().__init__(self.learner_message())

    def learner_message(self) -> str:
        parts = [f"We {self.did}.", f"Expected: {self.expected}", f"Saw: {self.saw}"]
        if self.trace is not None:
            parts.append("Your trace:\n" + self.trace)
        return "\n".join(parts)


def fail(*, did: str, expected: str, saw: str, spans: Iterable[Any] | None = None):
    """Fail the running check with a learner-facing message."""
    raise CheckFailure(did=did, expected=expected, saw=saw, spans=spans)


def expect(condition: Any, *, did: str, expected: str, saw: str | Any,
           spans: Iterable[Any] | None = None) -> None:
    """Fail with the message unless `condition` holds. `saw` may be a callable, evaluated only
    on failure (for descriptions that are expensive or only valid when the check fails)."""
    if not condition:
        fail(did=did, expected=expected, saw=saw() if callable(saw) else str(saw), spans=spans)
