"""Hypothesis's strategies for the generated checks, built only when Hypothesis runs.

A grading that passes replays the stored cases (`kit.harness.generated`) and never needs
Hypothesis, whose import costs about a tenth of a second in the warm parent, on the way to the
first check. So the check modules take their strategies from here:

    from kit.harness.strategies import Phase, st

    @st.composite
    def traces(draw, duplicates=False):
        n = draw(st.integers(1, 9))
        ...

    @generated(traces(), st.integers(0, 6), phases=(Phase.generate, Phase.shrink))

`st.<name>(...)`, a composite called, a strategy's own methods (`.map(f)`, `.filter(f)`) and
`Phase.<name>` are `Deferred`: a recipe that `real()` turns into Hypothesis's own object, importing
Hypothesis then, when a check runs it live (recording the cases, shrinking a failing case, a check
with no stored cases). Inside a composite, `draw` takes recipes as well. The strategies built are
exactly those `hypothesis.strategies` would build, so the cases drawn are the same.
"""
from __future__ import annotations

import functools
from typing import Any, Callable


class Deferred:
    """A Hypothesis object not built yet: `real()` builds it (once)."""

    __slots__ = ("_build", "_built", "_label")

    def __init__(self, build: Callable[[], Any], label: str) -> None:
        self._build, self._built, self._label = build, None, label

    def real(self) -> Any:
        if self._built is None:
            self._built = self._build()
        return self._built

    def __getattr__(self, name: str) -> Callable[..., "Deferred"]:
        if name.startswith("__"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Deferred:
            return Deferred(lambda: getattr(self.real(), name)(*real(args), **real(kwargs)),
                            f"{self._label}.{name}(...)")
        return method

    def __repr__(self) -> str:
        return f"<deferred {self._label}>"


def real(value: Any) -> Any:
    """`value` with every `Deferred` in it (also inside tuples, lists and dicts) built."""
    if isinstance(value, Deferred):
        return value.real()
    if isinstance(value, (tuple, list)):
        return type(value)(real(v) for v in value)
    if isinstance(value, dict):
        return {k: real(v) for k, v in value.items()}
    return value


def _hypothesis_strategies():
    from hypothesis import strategies
    return strategies


class _Strategies:
    """`hypothesis.strategies`, deferred (see the module doc)."""

    def composite(self, function: Callable[..., Any]) -> Callable[..., Deferred]:
        made: list = []   # Hypothesis's composite, made once (as `@st.composite` at import would)

        def composite() -> Callable[..., Any]:
            if not made:
                @_hypothesis_strategies().composite
                @functools.wraps(function)
                def drawn(draw: Callable[..., Any], *a: Any, **k: Any) -> Any:
                    return function(lambda strategy, *rest: draw(real(strategy), *rest), *a, **k)
                made.append(drawn)
            return made[0]

        @functools.wraps(function)
        def deferred(*args: Any, **kwargs: Any) -> Deferred:
            return Deferred(lambda: composite()(*real(args), **real(kwargs)), f"{function.__name__}(...)")
        return deferred

    def __getattr__(self, name: str) -> Callable[..., Deferred]:
        if name.startswith("__"):
            raise AttributeError(name)

        def strategy(*args: Any, **kwargs: Any) -> Deferred:
            return Deferred(lambda: getattr(_hypothesis_strategies(), name)(*real(args), **real(kwargs)),
                            f"st.{name}(...)")
        return strategy


class _Phases:
    """`hypothesis.Phase`, deferred: `Phase.generate` is a recipe for `hypothesis.Phase.generate`."""

    def __getattr__(self, name: str) -> Deferred:
        if name.startswith("__"):
            raise AttributeError(name)

        def build() -> Any:
            from hypothesis import Phase as phases
            return getattr(phases, name)
        return Deferred(build, f"Phase.{name}")


st = _Strategies()
Phase = _Phases()
