"""What to grade: a tree on disk, or a `.zip` of one, resolved to a folder holding `services/`.

`resolve_target(path)` returns a `Target` (a context manager): a folder is graded where it is
(read-only use); a zip is extracted into a temporary folder that is removed afterwards. Every
problem is a `TargetError` with a one-line message that says what to do.
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_UNPACKED_BYTES = 200 * 1024 * 1024


class TargetError(ValueError):
    """The target cannot be graded; the message says why and what to do."""


@dataclass
class Target:
    path: Path               # the folder that holds services/
    label: str               # what to call it in reports
    _scratch: Path | None = field(default=None, repr=False)

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _find_tree(root: Path) -> Path | None:
    if (root / "services").is_dir():
        return root
    candidates = sorted(p.parent for p in root.glob("**/services") if p.is_dir() and (p / "shared").is_dir())
    return min(candidates, key=lambda p: len(p.parts)) if candidates else None


def resolve_target(path: str | Path) -> Target:
    path = Path(path)
    if not path.exists():
        raise TargetError(f"{path}: no such file or folder; give a copy of exercise/ or a .zip of one")
    if path.is_dir():
        tree = _find_tree(path)
        if tree is None:
            raise TargetError(f"{path}: no services/ folder inside; give a copy of exercise/ or a .zip of one")
        return Target(tree.resolve(), str(path))
    if not zipfile.is_zipfile(path):
        raise TargetError(f"{path}: not a folder and not a zip file; give a copy of exercise/ or a .zip of one")
    scratch = Path(tempfile.mkdtemp(prefix="workshop-target-"))
    try:
        _extract(path, scratch)
    except (zipfile.BadZipFile, OSError, TargetError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise TargetError(f"{path}: cannot unpack ({exc}); zip the exercise folder again") from None
    tree = _find_tree(scratch)
    if tree is None:
        shutil.rmtree(scratch, ignore_errors=True)
        raise TargetError(f"{path}: the zip holds no services/ folder; zip the exercise folder itself")
    return Target(tree, str(path), scratch)


def _extract(archive: Path, into: Path) -> None:
    """Unpack safely: no absolute paths, no `..`, no links, a size limit."""
    total = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts:
                raise TargetError(f"unsafe path {info.filename!r} in the archive")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                continue  # a symbolic link: skipped
            total += info.file_size
            if total > MAX_UNPACKED_BYTES:
                raise TargetError("the archive unpacks to more than 200 MB")
            zf.extract(info, into)
