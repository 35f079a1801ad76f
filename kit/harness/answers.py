"""Oracles as tables of their answers: what a check compares the learner's answers with, without
the logic that computes them.

An oracle module (`checks/oracles/<step>.py`) marks each of its public functions with `@oracle`:

    @oracle
    def oracle_total(spans) -> float: ...

- **In the full kit** `@oracle` returns the function itself: the checks call the real oracle.
- **Recording** (`python -m kit.harness.generated`, which grades `solution/` with every check):
  every call of an `@oracle` function is written down as `encode([args, kwargs])` ->
  `encode(answer)` (`kit.harness.generated`'s codec) into `checks/cases/answers/<module>.json`,
  one `[function, call, answer]` per line, sorted: the same file whatever order the checks ran in.
- **In the learner release** (`kit.instructor.release`) each oracle module is replaced by
  `table_module(...)`: a module whose first line is `MARK` and whose public names are `Table`
  lookups in those answers (not one line of the oracle's logic). A call nobody recorded fails
  the check with one line (`NoAnswer`); `released()` tells `kit.harness.generated` not to go
  live with Hypothesis on a failing stored case (new inputs would have no answer).
"""
from __future__ import annotations

import atexit
import functools
import json
import os
from pathlib import Path
from typing import Any, Callable

from kit import ROOT
from kit.harness.generated import CASES, RECORD_ENV, decode, encode

#: The oracle modules of the full kit.
ORACLES = ROOT / "checks" / "oracles"
#: Their recorded answers: one JSON file per oracle module.
ANSWERS = CASES / "answers"
#: The first line of an oracle module that is a table of answers (a release's).
MARK = "# kit.harness.answers: a table of recorded answers, no oracle logic"

_recorded: dict[str, dict[tuple[str, str], str]] = {}   # module -> (function, call) -> answer (recording)
_writing: set[Path] = set()                              # folders written to when the process exits


class NoAnswer(AssertionError):
    """A table was asked for an answer nobody recorded; its message is the one line a learner sees."""


def oracle(function: Callable) -> Callable:
    """Mark a public oracle function (see the module doc): itself, or a recording wrapper when
    `kit.harness.generated.RECORD_ENV` names a folder."""
    folder = os.environ.get(RECORD_ENV)
    if not folder:
        return function
    module, name = _short(function.__module__), function.__name__

    @functools.wraps(function)
    def recording(*args: Any, **kwargs: Any) -> Any:
        call = _call(args, kwargs)
        answer = function(*args, **kwargs)
        _note(Path(folder), module, name, call, _canonical(encode(answer)))
        return answer
    return recording


class Table:
    """The recorded answers of one oracle module (`checks/cases/answers/<module>.json`)."""

    def __init__(self, module: str, folder: Path = ANSWERS) -> None:
        self.module = module
        path = folder / f"{module}.json"
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rows = []
        self.answers = {(name, _canonical(call)): answer for name, call, answer in rows}

    def function(self, name: str) -> Callable:
        """A function answering as the oracle `name` did when its answers were recorded."""
        def lookup(*args: Any, **kwargs: Any) -> Any:
            try:
                call = _call(args, kwargs)
            except TypeError:
                call = None
            if call is None or (name, call) not in self.answers:
                raise NoAnswer(f"this release of the kit has no recorded answer for {name}({_preview(args, kwargs)}) "
                               f"of checks/oracles/{self.module}.py: grade with the full kit")
            return decode(self.answers[(name, call)])
        lookup.__name__ = lookup.__qualname__ = name
        lookup.__doc__ = f"The recorded answers of {name} (checks/cases/answers/{self.module}.json)."
        return lookup


@functools.cache
def released() -> bool:
    """Whether this kit's oracle modules are tables of answers (a learner release)."""
    return any(is_table(path.read_text(encoding="utf-8")) for path in sorted(ORACLES.glob("*.py")))


def is_table(text: str) -> bool:
    """Whether the text of an oracle module is a table of answers (its first line is `MARK`)."""
    return text.split("\n", 1)[0].strip() == MARK


def public_oracles(text: str) -> list[str]:
    """The public names of an oracle module's source, all of which must be `@oracle` functions
    (a ValueError names any other)."""
    import ast

    names, others = [], []
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            found = node.targets if isinstance(node, ast.Assign) else [node.target]
            targets = [n.id for t in found for n in ast.walk(t) if isinstance(n, ast.Name)]
        else:
            continue
        for target in (t for t in targets if not t.startswith("_")):
            marked = isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "oracle" for d in node.decorator_list)
            (names if marked else others).append(target)
    if others:
        raise ValueError(f"public names that are no @oracle function: {', '.join(others)} (make them private)")
    return names


def table_module(module: str, text: str) -> str:
    """The release's text of the oracle module `module` (source `text`): its public names as
    lookups in its recorded answers, and nothing of its logic."""
    names = public_oracles(text)
    lines = [MARK,
             f'"""The answers of the kit\'s oracles in checks/oracles/{module}.py, as a table: written by',
             "kit.instructor.release for the learner release, which holds no oracle logic. Each name below",
             f"looks its arguments up in checks/cases/answers/{module}.json, recorded on the reference answer",
             '(`python -m kit.harness.generated` in the full kit; see kit/harness/answers.py)."""',
             "from kit.harness.answers import Table", "",
             f"_table = Table({module!r})", ""]
    lines += [f"{name} = _table.function({name!r})" for name in names]
    return "\n".join(lines) + "\n"


# -- recording ----------------------------------------------------------------------------------

def _short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _canonical(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _call(args: tuple, kwargs: dict) -> str:
    return _canonical(encode([list(args), dict(kwargs)]))


def _preview(args: tuple, kwargs: dict) -> str:
    shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    shown = " ".join(shown.split())
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _note(folder: Path, module: str, name: str, call: str, answer: str) -> None:
    if folder not in _writing:
        _writing.add(folder)
        atexit.register(_write_all, folder)
    known = _recorded.setdefault(module, {}).setdefault((name, call), answer)
    if known != answer:
        raise RuntimeError(f"checks/oracles/{module}.py: {name} answered the same call in two ways; an oracle "
                           "must be a function of its arguments")


def _write_all(folder: Path, recorded: dict[str, dict[tuple[str, str], str]] | None = None) -> None:
    """Write the answers recorded (`_recorded` unless given) into `folder`/answers/."""
    target = folder / "answers"
    target.mkdir(parents=True, exist_ok=True)
    for module, answers in sorted((_recorded if recorded is None else recorded).items()):
        rows = [f"[{json.dumps(name)},{call},{answer}]" for (name, call), answer in sorted(answers.items())]
        (target / f"{module}.json").write_text("[\n" + ",\n".join(rows) + "\n]\n", encoding="utf-8")
