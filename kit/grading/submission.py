"""What counts in a submission, for every way of grading one (`--target`, `--batch`, the GitHub
Classroom workflow, Gradescope, `--solution` and `exercise/` itself): **only the learner files**
(`kit.course.load_course().learner_files`: the six step files and the extensions' files), laid
over the kit's own copy of the provided code (its `exercise/` tree). Everything else a
submission holds is ignored; a provided file that differs from the kit's, a file added under
`services/` and a symbolic link are named in the report as a warning (they were not graded).

    with prepare(path) as prepared:          # a folder or a .zip (--target, --batch, Classroom)
        report = run_checks(prepared.path)   # prepared.warnings, prepared.notes for the report
    with prepare(folder, upload=True) as p:  # loose files of an upload (Gradescope)

Rules, the same for all: a zip is unpacked safely (no absolute path, no `..`, a size limit) and
its links are skipped (and reported); links on disk are never followed; a zip or folder holding
two trees is refused with the reason (never graded by alphabetical luck); a zip member whose
name is not valid UTF-8 is an error (`--target`; `invalid` in a batch), but only an ignored
extra file in an upload. Every problem is a `TargetError` with a one-line message.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kit import ROOT
from kit.course import load_course
from kit.grading.processes import forget_folder, temporary_folder

MAX_UNPACKED_BYTES = 200 * 1024 * 1024
#: The provided code every learner file is laid over.
EXERCISE = ROOT / "exercise"


class TargetError(ValueError):
    """The target cannot be graded; the message says why and what to do."""


#: What is never looked at in a submission: caches, version control, environments.
_SKIP = {"__pycache__", ".git", ".pytest_cache", ".ipynb_checkpoints", "node_modules", ".venv", "venv",
         "__MACOSX", "previous"}


# -- finding the tree ------------------------------------------------------------------------------

@dataclass
class Target:
    """A submission resolved to the folder that holds `services/` (a zip: unpacked into a
    temporary folder, removed on exit). Only for reading: `prepare` is what grading uses."""

    path: Path               # the folder that holds services/
    label: str               # what to call it in reports
    _scratch: Path | None = field(default=None, repr=False)
    skipped_links: list[str] = field(default_factory=list)

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        if self._scratch is not None:
            forget_folder(self._scratch)


def _is_tree(folder: Path) -> bool:
    services = folder / "services"
    return services.is_dir() and not services.is_symlink()


def _find_tree(root: Path) -> Path:
    """The one folder under `root` that holds `services/` (root itself first). Two trees side by
    side (`alice/services` and `copy/services`) are an error that names both."""
    if _is_tree(root):
        return root
    found: list[Path] = []
    for folder, dirs, _ in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not (here / d).is_symlink())
        if "services" in dirs and (here / "services" / "shared").is_dir():
            found.append(here)
            dirs[:] = []  # a tree inside a tree is part of it, not a second one
    if not found:
        raise TargetError(f"{root}: no services/ folder inside; give a copy of exercise/ or a .zip of one")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(root)) + "/" for p in found[:4])
        raise TargetError(f"it holds {len(found)} trees ({names}): submit exactly one copy of exercise/")
    return found[0]


def resolve_target(path: str | Path, *, label: str | None = None) -> Target:
    """`path` (a folder or a .zip) resolved to the folder that holds services/."""
    path = Path(path)
    shown = label or str(path)
    if not path.exists():
        raise TargetError(f"{shown}: no such file or folder; give a copy of exercise/ or a .zip of one")
    if path.is_dir():
        try:
            tree = _find_tree(path)
        except TargetError as exc:
            raise TargetError(str(exc).replace(str(path), shown, 1) if str(exc).startswith(str(path))
                              else f"{shown}: {exc}") from None
        return Target(tree.resolve(), shown)
    if not zipfile.is_zipfile(path):
        raise TargetError(f"{shown}: not a folder and not a zip file; give a copy of exercise/ or a .zip of one")
    scratch = temporary_folder("workshop-target-")
    try:
        links = _extract(path, scratch)
        tree = _find_tree(scratch)
    except TargetError as exc:
        forget_folder(scratch)
        message = str(exc)
        if message.startswith(str(scratch)):
            message = "the zip holds no services/ folder; zip the exercise folder itself"
        raise TargetError(f"{shown}: {message}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        forget_folder(scratch)
        raise TargetError(f"{shown}: cannot unpack ({exc}); zip the exercise folder again") from None
    except BaseException:
        forget_folder(scratch)
        raise
    return Target(tree, shown, scratch, links)


def _member_name(info: zipfile.ZipInfo) -> str | None:
    """The member's real name, or None when it is not valid UTF-8 (zipfile decodes names that
    do not say they are UTF-8 as cp437, which never fails: undo that and try UTF-8)."""
    name = info.filename
    if info.flag_bits & 0x800 or name.isascii():
        return name
    try:
        return name.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _extract(archive: Path, into: Path, *, bad_names_ok: bool = False) -> list[str]:
    """Unpack safely: no absolute paths, no `..`, no links (skipped; returned), a size limit.
    A name that is not UTF-8 is an error, or skipped with `bad_names_ok`."""
    total = 0
    links: list[str] = []
    try:
        zf = zipfile.ZipFile(archive)
    except UnicodeDecodeError:
        raise TargetError("the names of its files are not valid UTF-8; zip it again with a tool that "
                          "writes UTF-8 names (python -m zipfile -c, or zip on Linux/macOS)") from None
    with zf:
        for info in zf.infolist():
            name = _member_name(info)
            if name is None:
                if bad_names_ok:
                    continue
                raise TargetError(f"the name of a file in it is not valid UTF-8 ({info.filename!r}); zip it "
                                  "again with a tool that writes UTF-8 names")
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if PurePosixPath(name).is_absolute() or ".." in parts or (parts and ":" in parts[0]):
                raise TargetError(f"unsafe path {name!r} in the archive")
            kind = (info.external_attr >> 16) & 0o170000
            if kind == 0o120000:
                links.append(name)
                continue  # a symbolic link: never made
            if info.is_dir() or not parts:
                (into.joinpath(*parts)).mkdir(parents=True, exist_ok=True)
                continue
            total += info.file_size
            if total > MAX_UNPACKED_BYTES:
                raise TargetError("the archive unpacks to more than 200 MB")
            dest = into.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out)
    return links


# -- what counts ---------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A tree ready to grade: the kit's provided code with the submission's learner files."""

    path: Path                                        # the tree to grade (holds services/)
    label: str                                        # what the submission is called in reports
    notes: list[str] = field(default_factory=list)    # which file was graded from where
    warnings: list[str] = field(default_factory=list)  # for the report: what did not count
    _scratch: Path | None = field(default=None, repr=False)

    def __enter__(self) -> "Prepared":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._scratch is not None:
            forget_folder(self._scratch)
            self._scratch = None


def prepare(source: str | Path, *, upload: bool = False, label: str | None = None,
            exercise: Path | None = None) -> Prepared:
    """The one policy (see the module doc): a temporary copy of the kit's `exercise/` with the
    learner files of `source` laid over it. `source` is a folder or a .zip holding one tree
    (`--target`, `--batch`, Classroom, `--solution`), or with `upload` a folder of loose files
    (Gradescope: each learner file at its path, or anywhere by its name; zips inside are
    unpacked). Raises `TargetError` when nothing can be graded."""
    exercise = Path(exercise) if exercise is not None else EXERCISE
    source = Path(source)
    label = label or str(source)
    # In memory when it is small (exercise/ and the learner files); an upload may unpack archives.
    scratch = temporary_folder("workshop-graded-", fast=not upload)
    try:
        dest = scratch / "tree"
        shutil.copytree(exercise, dest, symlinks=True, ignore=shutil.ignore_patterns(*_SKIP, "*.pyc"))
        prepared = Prepared(dest, label, _scratch=scratch)
        if upload:
            _lay_upload(source, dest, prepared, scratch)
        else:
            with resolve_target(source, label=label) as target:
                _lay_tree(target, dest, exercise, prepared)
        return prepared
    except BaseException:
        forget_folder(scratch)
        raise


def _lay_tree(target: Target, dest: Path, exercise: Path, prepared: Prepared) -> None:
    tree = target.path
    learner = load_course().learner_files
    links = [f"{n} (in the zip)" for n in target.skipped_links]
    for learner_file in learner:
        path = tree / learner_file
        if _linked(tree, learner_file):
            links.append(learner_file)
            prepared.notes.append(f"{learner_file}: a symbolic link, not followed (the exercise's stub was graded)")
        elif path.is_file():
            shutil.copyfile(path, dest / learner_file)
            prepared.notes.append(f"{learner_file}: graded")
        else:
            prepared.notes.append(f"{learner_file}: not in the submission (the unchanged exercise file was graded)")
    changed, added = [], []
    services = tree / "services"
    for folder, dirs, files in os.walk(services, followlinks=False):
        here = Path(folder)
        for name in sorted([*dirs, *files]):
            path = here / name
            rel = path.relative_to(tree).as_posix()
            if name in _SKIP:
                if name in dirs:
                    dirs.remove(name)
                continue
            if path.is_symlink():
                if name in dirs:
                    dirs.remove(name)
                if rel not in learner:
                    links.append(rel)
                continue
            if name in dirs or rel in learner or name.endswith(".pyc"):
                continue
            kit_copy = exercise / rel
            if not kit_copy.is_file():
                added.append(rel)
            elif not _same_file(path, kit_copy):
                changed.append(rel)
    if changed:
        prepared.warnings.append(f"provided files differ from the kit's and were not graded (the kit's own were): "
                                 f"{_names(changed)}")
    if added:
        prepared.warnings.append(f"files added to services/ were not graded (only the learner files count): "
                                 f"{_names(added)}")
    if links:
        prepared.warnings.append(f"symbolic links are never followed; these were not graded: {_names(links)}")


def _linked(tree: Path, rel: str) -> bool:
    """Whether `rel` or a folder on its way is a symbolic link."""
    path = tree
    for part in PurePosixPath(rel).parts:
        path = path / part
        if path.is_symlink():
            return True
    return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _names(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def copy_tree(source: Path, dest: Path) -> None:
    """Copy a tree: regular files only (no links), no caches, at most 200 MB."""
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

def _lay_upload(submission: Path, dest: Path, prepared: Prepared, scratch: Path) -> None:
    if not submission.is_dir():
        raise TargetError(f"{submission}: no submission folder")
    unpacked = scratch / "unpacked"
    candidates = _files(submission)
    for archive in [f for f in candidates if f.suffix.lower() == ".zip"]:
        try:
            _extract(archive, unpacked / archive.stem, bad_names_ok=True)
        except (zipfile.BadZipFile, OSError, EOFError, TargetError) as exc:
            prepared.notes.append(f"{archive.name}: not used ({exc})")
    if unpacked.is_dir():
        candidates += _files(unpacked)
    for learner_file in load_course().learner_files:
        found = _pick(candidates, learner_file)
        if found is None:
            prepared.notes.append(f"{learner_file}: not in the submission (the unchanged exercise file was graded)")
            continue
        shutil.copyfile(found, dest / learner_file)
        source = found.name if found.is_relative_to(unpacked) else found.relative_to(submission)
        prepared.notes.append(f"{learner_file}: graded from {_printable(str(source))}")


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not (here / d).is_symlink())
        for name in files:
            path = here / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found)


def _pick(candidates: list[Path], learner_file: str) -> Path | None:
    """The submitted file for `learner_file`: one at that path (the shortest such path), else the
    only file with that name."""
    suffix = PurePosixPath(learner_file).parts
    at_path = [p for p in candidates if p.parts[-len(suffix):] == suffix]
    if at_path:
        return min(at_path, key=lambda p: len(p.parts))
    named = [p for p in candidates if p.name == suffix[-1]]
    return named[0] if len(named) == 1 else None


def assemble_submission(submission: Path, dest: Path, exercise: Path = EXERCISE) -> list[str]:
    """The upload policy into `dest` (kept for callers of the old name): notes for the learner."""
    with prepare(submission, upload=True, exercise=exercise) as prepared:
        shutil.copytree(prepared.path, dest)
        return prepared.notes + prepared.warnings
