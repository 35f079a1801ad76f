"""Generated cases for the checks: Hypothesis's examples, drawn once and replayed.

    @generated(traces(), examples=[hand_written])
    def run(spans):
        expect(learner(spans) == oracle(spans), ...)
    run()

`generated(*strategies)` is `@given(*strategies)` with the kit's settings (derandomized, no
example database, a fixed number of examples, no deadline: the same cases on every run). Drawing
them is most of what a generated check costs, and the draws never change, so they are drawn
once, by the kit's maintainers, and stored in `checks/cases/<check module>.json`:

- **a passing run** replays the hand-written `examples`, then the stored cases, in the order
  Hypothesis drew them: the same calls a live Hypothesis run would make, without drawing;
- **a failing case** hands over to Hypothesis itself, which draws the same sequence up to the
  failure and then shrinks it: the learner sees the smallest case found. (If Hypothesis does not
  reproduce it, code whose answers change between calls, the stored case's own failure is shown.)
- **no stored cases** (a new check, or cases not yet recorded): Hypothesis runs live.
- **in a learner release** (`kit.harness.answers.released()`: the oracles are tables of recorded
  answers) a failing stored case is reported as it is, never handed to Hypothesis: the inputs
  it would draw have no recorded answer. The cases come small ones first, in draw order.

The stored cases are plain JSON (`encode`/`decode`): tuples, dicts with any keys, sets, classes,
enums and dataclasses are written with their type, and a type from the target tree (`services.*`, e.g. the
provided `SpanRecord`) is rebuilt through the contract's names (`kit.harness.learner.attr`).

Recording: `python -m kit.harness.generated` grades `solution/` with every generated check in
recording mode (the draws of a passing run are exactly what a live run executes) and rewrites
`checks/cases/`, the oracles' answers in `checks/cases/answers/` included (`kit.harness.answers`);
`tests/harness/test_generated.py` fails when the stored cases are not what the strategies draw
today. Re-record after changing a generated check's body or a strategy (the derandomized seed
depends on the function's source) or an oracle.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit import ROOT
from kit.harness.strategies import real

#: Where the stored cases live: one JSON file per check module.
CASES = ROOT / "checks" / "cases"
#: When set (a folder), generated checks run live and write the cases they drew there.
RECORD_ENV = "WORKSHOP_RECORD_CASES"
#: The settings every generated check runs with (`max_examples` and a few more per check), and
#: every health check suppressed.
SETTINGS = {"derandomize": True, "database": None, "max_examples": 30, "deadline": None, "print_blob": False}

_recorded: dict[str, dict[str, list]] = {}   # module -> key -> encoded cases (recording mode)
_stored: dict[str, dict[str, list]] = {}     # module -> key -> encoded cases (loaded once)


def generated(*strategies: Any, examples: Any = (), **overrides: Any) -> Callable[[Callable], Callable[[], None]]:
    """Decorate a test body taking one argument per strategy; returns a function of no arguments
    that runs it on the hand-written `examples` (each a tuple of arguments, or a single value
    for one strategy) and on the generated cases (see the module doc). `overrides` change the
    Hypothesis settings (`max_examples=50`, `phases=...`, ...). The strategies may be those of
    `kit.harness.strategies`: Hypothesis is imported only when it runs (a passing replay never
    needs it)."""

    def wrap(test: Callable) -> Callable[[], None]:
        module, key = test.__module__, test.__qualname__.replace(".<locals>", "")
        fixed = [case if isinstance(case, tuple) and len(strategies) > 1 else (case,) for case in examples]
        drawn: list | None = None

        names = list(inspect.signature(test).parameters)

        @functools.wraps(test)
        def spy(*args: Any, **kwargs: Any) -> Any:
            args = (*args, *(kwargs[name] for name in names[len(args):]))   # Hypothesis passes names
            if drawn is not None:
                drawn.append(encode(list(args)))
            try:
                return test(*args)
            except Rejected:
                from hypothesis import assume
                assume(False)

        def live() -> None:
            """Run Hypothesis itself (built on first use: importing it is not free)."""
            from hypothesis import HealthCheck, example, given, settings

            if not built:
                runner = given(*real(strategies))(spy)
                for case in reversed(fixed):
                    runner = example(*case)(runner)
                built.append(settings(**{**SETTINGS, "suppress_health_check": list(HealthCheck),
                                         **real(overrides)})(runner))
            built[0]()

        built: list = []

        def run() -> None:
            nonlocal drawn
            folder = os.environ.get(RECORD_ENV)
            if folder:
                drawn = []
                try:
                    live()
                finally:
                    _save(Path(folder), module, key, drawn[len(fixed):])
                    drawn = None
                return
            cases = _cases(module, key)
            if cases is None:
                live()
                return
            def args_of(case) -> tuple:  # decoded afresh each time: the learner's code may change them
                return case if isinstance(case, tuple) else tuple(decode(case))

            for case in [*fixed, *cases]:
                try:
                    test(*args_of(case))
                except Rejected:  # a case the check cannot judge, skipped as Hypothesis does
                    continue
                except Exception:
                    if _released():   # new inputs would have no recorded answer: this case's own failure
                        raise
                    live()
                    test(*args_of(case))
                    raise
        return run
    return wrap


class Rejected(Exception):
    """Raised by a generated check's body for a case it cannot judge (Hypothesis's `assume`)."""


# -- the stored cases --------------------------------------------------------------------------

def _file(folder: Path, module: str) -> Path:
    return folder / f"{module.rsplit('.', 1)[-1]}.json"


def _cases(module: str, key: str) -> list | None:
    if module not in _stored:
        path = _file(CASES, module)
        try:
            _stored[module] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            _stored[module] = {}
    return _stored[module].get(key)


def _save(folder: Path, module: str, key: str, cases: list) -> None:
    _recorded.setdefault(module, {})[key] = cases
    folder.mkdir(parents=True, exist_ok=True)
    path = _file(folder, module)
    blocks = []   # one case per line: a change of strategy shows as a readable diff
    for name, found in sorted(_recorded[module].items()):
        lines = ",\n".join(json.dumps(case, separators=(",", ":")) for case in found)
        blocks.append(f"{json.dumps(name)}: [\n{lines}\n]")
    path.write_text("{\n" + ",\n".join(blocks) + "\n}\n", encoding="utf-8")


# -- the codec: plain JSON that keeps Python's types -----------------------------------------

def encode(value: Any) -> Any:
    """`value` as JSON data that `decode` turns back into an equal value of the same types."""
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"dict": {k: encode(v) for k, v in value.items()}}
        return {"pairs": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {type(value).__name__: sorted((encode(v) for v in value), key=repr)}
    if isinstance(value, type):
        return {"class": _name(value)}
    if isinstance(value, enum.Enum):
        return {"enum": _name(type(value)), "name": value.name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": _name(type(value)),
                "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}}
    raise TypeError(f"a generated case holds a {type(value).__name__}, which kit.harness.generated cannot store")


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "dict" in data:
        return {k: decode(v) for k, v in data["dict"].items()}
    if "pairs" in data:
        return {decode(k): decode(v) for k, v in data["pairs"]}
    if "set" in data:
        return {decode(v) for v in data["set"]}
    if "frozenset" in data:
        return frozenset(decode(v) for v in data["frozenset"])
    if "class" in data:
        return _type(data["class"])
    if "enum" in data:
        return getattr(_type(data["enum"]), data["name"])
    if "dataclass" in data:
        return _type(data["dataclass"])(**{k: decode(v) for k, v in data["fields"].items()})
    raise ValueError(f"a stored case holds {sorted(data)!r}, which kit.harness.generated does not know")


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _type(name: str) -> Any:
    module, qualname = name.split(":")
    first, *rest = qualname.split(".")
    if module == "services" or module.startswith("services."):
        # The target tree's types, through the contract's names.
        from kit.harness.learner import attr
        found = attr(module, first)
    else:
        found = getattr(importlib.import_module(module), first)
    for part in rest:
        found = getattr(found, part)
    return found


# -- recording ----------------------------------------------------------------------------------

def _released() -> bool:
    from kit.harness.answers import released
    return released()


def record(folder: Path = CASES, target: Path = ROOT / "solution", checks: list[str] | None = None) -> int:
    """Grade `target` with every check (or the pytest node ids `checks`, in that order) in recording
    mode, writing the cases drawn and the oracles' answers (`kit.harness.answers`) into `folder`
    (replaced whole). Returns pytest's exit code (0 when every check passed)."""
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="workshop-cases-") as scratch:
        env = {**os.environ, RECORD_ENV: scratch, "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        done = subprocess.run([sys.executable, "-m", "pytest", *(checks or [str(ROOT / "checks")]), "-c", str(ROOT / "checks" / "pytest.ini"),
                               "--rootdir", str(ROOT), "--target", str(target), "-q", "-p", "pytest_asyncio.plugin",
                               "-p", "no:randomly", "-x"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-2000:])
            return done.returncode
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(scratch, folder)
    return 0


if __name__ == "__main__":
    code = record()
    print("recorded the generated cases and the oracles' answers into checks/cases/" if code == 0 else
          f"recording failed (pytest exit code {code}): the reference must pass every check", file=sys.stderr)
    sys.exit(code)
