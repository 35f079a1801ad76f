"""Bytecode for the private copy of the kit (grading process).

The warm parent imports the kit and collects the checks from a private copy (`kit.grading.integrity.KitFiles`) with
`PYTHONDONTWRITEBYTECODE=1`, so it would compile every module from source on every run (about a
tenth of a second, on the path to the first check). `Bytecode.start(root)` compiles them instead
in a thread of the grading process, which is idle while the warm parent imports its
dependencies on the other core, and writes checked-hash `.pyc` files into the copy's
`__pycache__` folders (each written whole, then renamed). The warm parent uses a `.pyc` that is
there when it imports the module, and compiles the source itself otherwise: the result is the
same either way.

Checked-hash: Python uses a `.pyc` only if the hash inside it is the hash of the source beside
it. Since a `.pyc` could still be forged, `changes` and `restore` hold the copy's `__pycache__`
folders to what this process compiled, like `KitFiles` does for the sources.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from importlib._bootstrap_external import (
    _code_to_hash_pyc,  # the format Python's own loader reads
)
from pathlib import Path

from kit.grading.integrity import GRADING_PARTS, KitFiles

#: What the warm parent imports first: compiled first.
_FIRST = ("kit/__init__.py", "kit/grading/", "kit/child/", "kit/harness/", "checks/")


class Bytecode:
    """The `.pyc` files of one `KitFiles` snapshot, compiled once, written into a copy of it."""

    def __init__(self, kit_files: KitFiles) -> None:
        self.sources = {name: data for name, data in kit_files.files.items() if name.endswith(".py")}
        self.pycs: dict[str, bytes] = {}          # relative .pyc path -> bytes
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def stop(self) -> None:
        """Write nothing more (Ctrl-C: the copy is about to be removed)."""
        self._stopped.set()

    def start(self, root: Path) -> None:
        """Compile (the first time) and write every `.pyc` under `root`, in a background thread."""
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(Path(root),), name="kit-bytecode", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _write(self, root: Path) -> None:
        order = sorted(self.sources, key=lambda n: (next((i for i, p in enumerate(_FIRST) if n.startswith(p)),
                                                            len(_FIRST)), n))
        for name in order:
            pyc = importlib.util.cache_from_source(name)
            if pyc not in self.pycs:
                data = self.sources[name]
                try:
                    code = compile(data, str(root / name), "exec", dont_inherit=True)
                except (SyntaxError, ValueError):
                    continue  # the warm parent reports it, from the source
                self.pycs[pyc] = bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data), checked=True))
            if self._stopped.is_set():
                return
            try:
                _write_whole(root / pyc, self.pycs[pyc])
            except OSError:
                return  # the copy is gone (Ctrl-C removed the grader's folder): write nothing back

    def changes(self, root: Path) -> list[str]:
        """`.pyc` files under `root` that this process did not write, or that differ."""
        self.wait()
        found = []
        for path in _pycs(Path(root)):
            rel = path.relative_to(root).as_posix()
            if rel not in self.pycs:
                found.append(f"added {rel}")
            elif _read(path) != self.pycs[rel]:
                found.append(f"changed {rel}")
        return found

    def restore(self, root: Path) -> None:
        """Make the `__pycache__` folders under `root` hold exactly what this process compiled."""
        self.wait()
        root = Path(root)
        for path in _pycs(root):
            if path.relative_to(root).as_posix() not in self.pycs:
                path.unlink(missing_ok=True)
        for rel, data in self.pycs.items():
            if _read(root / rel) != data:
                _write_whole(root / rel, data)


def _pycs(root: Path) -> list[Path]:
    return [p for part in GRADING_PARTS if (root / part).is_dir()
            for p in (root / part).rglob("__pycache__/*") if p.is_file() or p.is_symlink()]


def _read(path: Path) -> bytes | None:
    try:
        return None if path.is_symlink() else path.read_bytes()
    except OSError:
        return None


def _write_whole(path: Path, data: bytes) -> None:
    """Write `data` whole, then rename it into place. Only the `__pycache__` folder is made: a
    copy removed meanwhile is never made again."""
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
