"""Keeping the grading honest when the code being graded is hostile.

The learner's code runs inside the grading child, in the same process as the checks, so it
could try to change how it is graded. Three guards, each cheap enough to run around every check:

- **`KitFiles`** (grading process): a snapshot of the kit's grading files (`kit/`, `checks/`,
  `course.toml`) as bytes. The grading child runs from a private copy written from such a
  snapshot (`copy_to`), so a submission that looks up `kit.__file__` and writes there only
  changes that copy; after every child the runner compares (`changes`) and rewrites it
  (`restore`), and flags the report. The kit's own folder is compared too, but never rewritten:
  a change there during a run is flagged, since the grader cannot tell it from an instructor's
  edit.
- **`ModuleGuard`** (grading child, `kit.child.guard`): remembers, before any learner code runs, every global of
  the kit's and the checks' modules (and the contents of their UPPER_CASE constants), the
  methods of their classes, and the functions and classes of pytest, pluggy and pytest-asyncio.
  After each check it reports what was replaced (say, `kit.harness.expect.fail` monkeypatched to do
  nothing) and puts the originals back. (So a check must not rebind a module global of its
  own; a module-level cache it fills in place is fine.)
- **Signed events** (`kit.grading.protocol.sign`, `verify`): the child writes its results as lines signed with a key
  only it and the grading process know, each with a sequence number, so lines written into the
  events file by anyone else are recognised and ignored.

What this cannot do: code that runs in the grading child can, with enough effort, read the
key or undo a guard before it looks (it is the same process). These guards turn every simple or
accidental form of tampering into a flagged report; for untrusted code in high-stakes grading,
run the grader inside a container (Gradescope does).
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

#: What the grading child needs of the kit, relative to its root.
GRADING_PARTS = ("kit", "checks", "course.toml")

_SKIP_DIRS = {"__pycache__", ".pytest_cache"}


# -- files -------------------------------------------------------------------------------------

class KitFiles:
    """The bytes of the kit's grading files at one moment (`take`), to copy, compare, restore."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    @classmethod
    def take(cls, root: Path, parts: tuple[str, ...] = GRADING_PARTS) -> "KitFiles":
        return cls(_read_tree(Path(root), parts))

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return digest.hexdigest()

    def copy_to(self, root: Path) -> None:
        """Write every file under `root` (a fresh folder)."""
        for name, data in self.files.items():
            path = Path(root) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def changes(self, root: Path, parts: tuple[str, ...] = GRADING_PARTS) -> list[str]:
        """What differs under `root` from the snapshot: "changed X", "removed X", "added X"."""
        now = _read_tree(Path(root), parts)
        found = [f"added {n}" for n in sorted(now) if n not in self.files]
        found += [f"removed {n}" for n in sorted(self.files) if n not in now]
        found += [f"changed {n}" for n in sorted(self.files) if n in now and now[n] != self.files[n]]
        return found

    def restore(self, root: Path, parts: tuple[str, ...] = GRADING_PARTS) -> None:
        """Make `root` hold exactly the snapshot again (only for a private copy: it deletes)."""
        root = Path(root)
        now = _read_tree(root, parts)
        for name in now:
            if name not in self.files:
                (root / name).unlink(missing_ok=True)
        for name, data in self.files.items():
            if now.get(name) != data:
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_symlink() or path.is_dir():
                    _remove(path)
                path.write_bytes(data)


def _read_tree(root: Path, parts: tuple[str, ...]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for part in parts:
        base = root / part
        if base.is_file():
            files[part] = _read(base)
            continue
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(root)
            if _SKIP_DIRS & set(rel.parts) or path.suffix == ".pyc":
                continue
            if path.is_file() or path.is_symlink():
                files[rel.as_posix()] = _read(path)
    return files


def _read(path: Path) -> bytes:
    try:
        if path.is_symlink():
            return b"(symbolic link to " + str(path.readlink()).encode() + b")"
        return path.read_bytes()
    except OSError as exc:
        return f"(unreadable: {exc})".encode()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
