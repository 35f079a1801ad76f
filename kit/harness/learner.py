"""Importing the learner's modules inside a check, with failures turned into plain reasons.

`load("services.shared.sampling")` imports a module of the target tree. A syntax error, an
exception at import or a missing name becomes a `CheckFailure` that says which file and line,
instead of a traceback through the kit.
"""
from __future__ import annotations

import importlib
import sys
import traceback
from types import ModuleType
from typing import Any

from kit.harness.expect import CheckTimeout, fail

#: Set when an import of learner code ran past a check's time limit: importing again would hang
#: again, so every later import in this process fails at once with the same reason.
_hung_import: str | None = None


def learner_frame(exc: BaseException, word: str = "in") -> str:
    """f" {word} <learner file> line L" for the innermost frame of the learner's code in the
    exception's traceback, or "" when the exception did not pass through it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/services/" in f.filename]
    if not frames:
        return ""
    return f" {word} {frames[-1].filename.rsplit('/services/', 1)[-1]} line {frames[-1].lineno}"


def _where(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__} in {exc.filename.rsplit('/services/', 1)[-1] if exc.filename else '?'} line {exc.lineno}: {exc.msg}"
    if isinstance(exc, MemoryError) and not str(exc):
        return f"MemoryError{learner_frame(exc, 'at')}: more memory than a grading process may use (4 GiB)"
    return f"{type(exc).__name__}{learner_frame(exc, 'at')}: {exc}"


def load(module: str) -> ModuleType:
    """Import `module` from the target tree, or fail the check with the reason it would not."""
    global _hung_import
    loaded = sys.modules.get(module)
    if loaded is not None and getattr(getattr(loaded, "__spec__", None), "_initializing", False) is False:
        return loaded   # imported already: what import_module would return, without its locks
    if _hung_import is not None:
        fail(did=f"imported {module}", expected="the module to import cleanly", saw=_hung_import)
    try:
        return importlib.import_module(module)
    except CheckTimeout as exc:
        _hung_import = f"importing the services never finished (an endless loop at import{learner_frame(exc)}?)"
        raise
    except Exception as exc:  # the learner's file is broken: say where, not how the kit noticed
        fail(did=f"imported {module}", expected="the module to import cleanly",
             saw=_where(exc))


def attr(module: str, name: str) -> Any:
    """`load(module).name`, failing the check with a plain reason if the name is missing."""
    mod = load(module)
    if not hasattr(mod, name):
        fail(did=f"looked for {name} in {module}", expected=f"{module} to define {name} (see the contract)",
             saw=f"no attribute {name!r}")
    return getattr(mod, name)


def describe_exception(exc: BaseException) -> str:
    """One line: the exception and the learner file and line it came from, if any."""
    return _where(exc)
