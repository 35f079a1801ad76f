"""What to grade: a tree on disk, or a `.zip` of one, resolved to a folder holding `services/`.

`resolve_target(path)` returns a `Target` (a context manager): a folder is graded where it is
(read-only use); a zip is extracted into a temporary folder that is removed afterwards. Every
problem is a `TargetError` with a one-line message that says what to do.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kit import ROOT
from kit.course import load_course

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


#: What is never copied from a submission: caches, version control, environments.
_SKIP = {"__pycache__", ".git", ".pytest_cache", ".ipynb_checkpoints", "node_modules", ".venv", "venv"}


def copy_tree(source: Path, dest: Path) -> None:
    """Copy a submission: regular files only (no links), no caches, at most 200 MB."""
    total = 0
    for root, dirs, files in os.walk(source, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not (Path(root) / d).is_symlink())
        rel = Path(root).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or not path.is_file() or name.endswith(".pyc"):
                continue
            total += path.stat().st_size
            if total > MAX_UNPACKED_BYTES:
                raise TargetError("the submission is larger than 200 MB")
            shutil.copyfile(path, dest / rel / name)


# -- an upload of learner files (Gradescope) ------------------------------------------------------

#: What is never taken from an upload.
_SKIP_UPLOAD = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}


def assemble_submission(submission: Path, dest: Path, exercise: Path = ROOT / "exercise") -> list[str]:
    """Copy `exercise` to `dest` and the learner files found in `submission` over it.

    Returns notes for the learner: which files were taken and which were not submitted."""
    submission = Path(submission)
    if not submission.is_dir():
        raise TargetError(f"{submission}: no submission folder")
    shutil.copytree(exercise, dest, ignore=shutil.ignore_patterns(*_SKIP_UPLOAD, "*.pyc"))
    unpacked = Path(tempfile.mkdtemp(prefix="workshop-submission-"))
    try:
        candidates = _files(submission)
        for archive in [f for f in candidates if f.suffix.lower() == ".zip"]:
            _unzip(archive, unpacked / archive.stem)
        candidates += _files(unpacked)
        notes = []
        for learner_file in load_course().learner_files:
            found = _pick(candidates, learner_file)
            if found is None:
                notes.append(f"{learner_file}: not in the submission (the unchanged exercise file was graded)")
                continue
            shutil.copyfile(found, dest / learner_file)
            source = found.name if found.is_relative_to(unpacked) else found.relative_to(submission)
            notes.append(f"{learner_file}: graded from {source}")
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    return notes


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                  and not (_SKIP_UPLOAD & set(p.relative_to(folder).parts)) and "__MACOSX" not in p.parts)


def _pick(candidates: list[Path], learner_file: str) -> Path | None:
    """The submitted file for `learner_file`: one at that path (the shortest such path), else the
    only file with that name."""
    suffix = PurePosixPath(learner_file).parts
    at_path = [p for p in candidates if p.parts[-len(suffix):] == suffix]
    if at_path:
        return min(at_path, key=lambda p: len(p.parts))
    named = [p for p in candidates if p.name == suffix[-1]]
    return named[0] if len(named) == 1 else None


def _unzip(archive: Path, into: Path) -> None:
    try:
        into.mkdir(parents=True)
        _extract(archive, into)
    except (zipfile.BadZipFile, OSError, TargetError):
        pass  # not a usable zip: its files are simply not found
