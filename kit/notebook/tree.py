"""Which tree the notebook runs, and picking up the learner's edits.

`use_tree()` puts one tree on `sys.path`: `exercise/` unless `WORKSHOP_NOTEBOOK_TREE` says
otherwise, `"solution"` for the reference answer, or the path of a copy of `exercise/`. Every
helper of `kit.notebook` asks `current_tree()` for it.

Before each cell runs (an IPython `pre_run_cell` hook, installed by `use_tree()`), every
`services.*` module is dropped from `sys.modules` if any file of the tree's `services/` changed
since they were imported: all at once, so classes stay consistent. `reload()` forces it.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

from kit import ROOT

TREE_ENV = "WORKSHOP_NOTEBOOK_TREE"
_state: dict[str, Any] = {"tree": None, "loaded_at": 0.0, "hooked": False}


def _tree_path(tree: str | os.PathLike) -> Path:
    path = ROOT / str(tree) if str(tree) in ("exercise", "solution") else Path(tree).expanduser().resolve()
    if not (path / "services").is_dir():
        raise ValueError(f"use_tree({str(tree)!r}): {path} has no services/ folder; "
                         "use 'exercise', 'solution' or the path of a copy of exercise/")
    return path


def use_tree(tree: str | os.PathLike | None = None) -> None:
    """Work on `tree`: "exercise" (the default), "solution", or the path of a copy of exercise/.
    Without an argument, the environment variable WORKSHOP_NOTEBOOK_TREE decides."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")  # before any instrumentation
    path = _tree_path(tree or os.environ.get(TREE_ENV) or "exercise")
    known = {str(ROOT / "exercise"), str(ROOT / "solution"), str(_state["tree"] or "")}
    sys.path[:] = [p for p in sys.path if p not in known]
    sys.path.insert(0, str(path))
    _state["tree"] = path
    reload()
    _install_hook()
    shown = f"{path.relative_to(ROOT)}/" if path.is_relative_to(ROOT) else str(path)
    print(f"Working on {shown}" + ("  (your code)" if path == ROOT / "exercise" else ""))


def current_tree() -> Path:
    """The tree in use (use_tree() is called with its default if it was not yet)."""
    if _state["tree"] is None:
        with contextlib.redirect_stdout(io.StringIO()):
            use_tree()
    return _state["tree"]


def reload() -> list[str]:
    """Forget every imported `services.*` module, so the next import reads the files again."""
    dropped = [name for name in sys.modules if name == "services" or name.startswith("services.")]
    for name in dropped:
        del sys.modules[name]
    _state["loaded_at"] = time.time()
    return dropped


def _edited_files() -> list[Path]:
    tree = current_tree()
    return [p for p in (tree / "services").rglob("*.py") if p.stat().st_mtime > _state["loaded_at"]]


def _refresh_if_edited(*_: Any) -> None:
    if _state["tree"] is None or "services" not in sys.modules:
        return
    edited = _edited_files()
    if edited:
        reload()
        names = ", ".join(str(p.relative_to(_state["tree"])) for p in edited[:4])
        print(f"↻ reloaded your edited code ({names})")


def _install_hook() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and not _state["hooked"]:
        from kit.notebook.display import install_exception_handler

        shell.events.register("pre_run_cell", _refresh_if_edited)
        install_exception_handler(shell)
        _state["hooked"] = True
