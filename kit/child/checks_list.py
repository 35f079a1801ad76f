"""The checks' descriptions (`kit.results.CheckInfo`), one way for both processes that need them.

- The warm parent reads them straight from the check modules (`read_checks`): it imports them
  as pytest does (`checks.test_*`, in file name order, `checks.conftest` first) and takes every
  module-level `test_*` function in the order it is defined. A pytest session would give the
  same list (`tests/child/test_checks_list.py` holds them to it) at several times the cost, on
  the way to the first check.
- The grading child reads them from pytest's items (`kit.child.recorder`), to tell the runner
  what it collected.

Either way `validate` refuses a list the kit cannot grade with: a check without its `@check` tag,
a step, criterion or extension that course.toml does not have, two checks with one id.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

from kit.results import CheckInfo


class ChecksError(ValueError):
    """The kit's own checks are broken (one line, naming the check)."""


def info(nodeid: str, function: Callable[..., Any], tag: dict[str, Any] | None) -> CheckInfo | None:
    """The description of the check `function` at `nodeid`, from its `@check(...)` tag's keyword
    arguments and its docstring (None: no tag). An extension's check has no step and no criterion."""
    if tag is None:
        return None
    doc = (getattr(function, "__doc__", None) or "").strip().splitlines()
    check_id = getattr(function, "__name__", nodeid.rsplit("::", 1)[-1]).removeprefix("test_")
    extension = tag.get("extension")
    return CheckInfo(nodeid=nodeid, id=check_id, title=doc[0].strip() if doc else check_id.replace("_", " "),
                     step=None if extension else int(tag["step"]), criterion=None if extension else tag["criterion"],
                     todo=tag.get("todo"), rules=tuple(tag.get("rules") or ()), extension=extension)


def validate(found: list[tuple[str, CheckInfo | None]], course) -> list[CheckInfo]:
    """The descriptions of `found` ((nodeid, info or None) in order), or ChecksError."""
    checks, seen = [], {}
    for nodeid, check in found:
        if check is None:
            raise ChecksError(f"{nodeid} has no @check(step=..., criterion=...) tag")
        try:
            if check.extension is not None:
                extension = course.extension(check.extension)
                if check.extension != extension.id:
                    raise ChecksError(f"{nodeid}: write the extension's id as course.toml does ({extension.id!r})")
            else:
                course.step(check.step)
                course.criterion(check.criterion)
        except KeyError as exc:
            raise ChecksError(f"{nodeid}: {exc.args[0] if exc.args else exc}") from None
        if check.id in seen:
            raise ChecksError(f"check id {check.id!r} is used by {seen[check.id]} and {nodeid}")
        seen[check.id] = nodeid
        checks.append(check)
    return checks


def read_checks(root: Path, course) -> list[CheckInfo]:
    """Every check of `root`/checks, as a pytest session would collect them (see the module doc)."""
    folder = Path(root) / "checks"
    importlib.import_module("checks.conftest")
    found: list[tuple[str, CheckInfo | None]] = []
    for path in sorted(folder.glob("test_*.py")):
        module = importlib.import_module(f"checks.{path.stem}")
        for name, function in vars(module).items():
            if not name.startswith("test") or not inspect.isfunction(function):
                continue
            nodeid = f"checks/{path.name}::{name}"
            tags = [mark.kwargs for mark in getattr(function, "pytestmark", []) if mark.name == "check"]
            found.append((nodeid, info(nodeid, function, tags[0] if tags else None)))
    return validate(found, course)
