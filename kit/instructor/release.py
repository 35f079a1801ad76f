"""The learner release of the kit: `python grade.py --release OUT` (like otter's `assign` or
nbgrader's `release`).

It copies into the new folder `OUT` what a learner needs and nothing that gives the answer away:

- kept (`RELEASED`): `grade.py`, `pyproject.toml`, `README.md`, `course.toml`, `kit/`,
  `checks/`, `exercise/`, `notebooks/`, the learner reference `docs/learner-api.md` and
  `docs/architecture.md`;
- left out: `solution/` (the answer), `selftest/` (its patches quote the answer), `tests/` and
  `benchmarks/` (they grade and run the reference), `scripts/`, `packaging/`, `.ci/`, `.git/`,
  caches and build output.

Then it proves the copy is safe to hand out (`reveals`): no released file holds lines of the
reference's learner files that the exercise does not hold too (three or more distinct lines of
at least `MIN_REVEALING` characters, imports aside), except `ON_PURPOSE`: the kit's own trace
analysis (`kit/traces/analysis.py`), which the trace viewer and the Step 5 notebook draw with, is
an independent implementation of Step 5's definitions; a learner who reads it reads an answer
to Step 5. Leave the viewer and notebook 05 out of a release to avoid it. The release still installs
(`pip install OUT`), grades `exercise/` (`python grade.py`) and runs its notebooks; `--solution`
and `use_tree("solution")` say there is no solution in it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from kit import ROOT
from kit.course import load_course

#: What goes into the release, relative to the kit's root (folders recursively).
RELEASED = ("grade.py", "pyproject.toml", "README.md", "course.toml", "kit", "checks", "exercise", "notebooks",
            "docs/learner-api.md", "docs/architecture.md")
#: Never copied, wherever they are.
_SKIP = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".hypothesis", ".ruff_cache", "*.egg-info"}
#: A line of the reference shorter than this is too common to count as revealing it.
MIN_REVEALING = 30
#: A file revealing fewer distinct lines than this shares idioms, not the answer.
MIN_LINES = 3
#: Released on purpose although they share the answer's lines (see the module doc).
ON_PURPOSE = {"kit/traces/analysis.py": "the kit's own Step 5 analysis, drawn by the viewer and notebook 05"}


class ReleaseError(ValueError):
    """The release cannot be built; the message says why."""


def build_release(out: Path, root: Path = ROOT) -> Path:
    """Build the learner release into `out` (a new or empty folder); returns it."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"--release {out}: exists and is not an empty folder; give a new folder")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise ReleaseError(f"--release {out}: inside the kit; give a folder outside it")
    missing = [p for p in RELEASED if not (root / p).exists()]
    if missing:
        raise ReleaseError(f"the kit is incomplete, missing: {', '.join(missing)}")
    temporary = out.with_name(f".{out.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        for part in RELEASED:
            source, dest = root / part, temporary / part
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, symlinks=False, ignore=shutil.ignore_patterns(*_SKIP, "*.pyc"))
            else:
                shutil.copy2(source, dest)
        found = reveals(temporary, root)
        if found:
            raise ReleaseError(f"the release would reveal the answer: {', '.join(found[:5])}")
        if out.exists():
            out.rmdir()
        os.replace(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return out


def reveals(release: Path, root: Path = ROOT) -> list[str]:
    """Released files that hold a line of the reference's learner files which the exercise's
    own files do not hold (`file: "line"`); empty when the release gives nothing away."""
    if (release / "solution").exists() or (release / "selftest").exists():
        return ["solution/ or selftest/ is in it"]
    exercise_lines: set[str] = set()
    for path in (root / "exercise").rglob("*.py"):
        exercise_lines.update(line.strip() for line in _lines(path))
    answer: set[str] = set()
    for learner_file in load_course().learner_files:
        for line in _lines(root / "solution" / learner_file):
            line = line.strip()
            if (len(line) >= MIN_REVEALING and line not in exercise_lines
                    and not line.startswith(("#", "from ", "import ", "except"))):
                answer.add(line)
    found = []
    for path in sorted(release.rglob("*")):
        rel = path.relative_to(release).as_posix()
        if not path.is_file() or rel in ON_PURPOSE:
            continue
        hits = sorted(answer & {line.strip() for line in _lines(path)})
        if len(hits) >= MIN_LINES:
            found.append(f"{rel}: {hits[0]!r} (and {len(hits) - 1} more)")
    return found


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
