"""The learner release of the kit: `python grade.py --release OUT` (like otter's `assign` or
nbgrader's `release`).

It copies into the new folder `OUT` what a learner needs and nothing that gives the answer away:

- kept (`RELEASED`): `grade.py`, `pyproject.toml`, `README.md`, `course.toml`, `kit/`,
  `checks/`, `exercise/`, `notebooks/`, the learner reference `docs/learner-api.md` and
  `docs/architecture.md`;
- left out: `solution/` (the answer), `selftest/` (its patches quote the answer), `tests/` and
  `benchmarks/` (they grade and run the reference), `scripts/`, `packaging/`, `.ci/`, `.git/`,
  caches and build output.

Some files are released in another form (`REPLACED`: the released path -> a function writing
its text, or the kit's file released in its place):

- each oracle module `checks/oracles/<name>.py` (the small correct implementations the checks
  compare the learner's answers with: answers too) becomes a table of its answers
  (`kit.harness.answers.table_module`): the same public names, each a lookup in
  `checks/cases/answers/<name>.json`, recorded on the reference by `python -m
  kit.harness.generated`. The release grades exactly as the full kit does on every recorded
  case; a failing generated case is reported as it is, not shrunk by Hypothesis (new inputs would
  have no answer), and a call nobody recorded fails its check with one line;
- `kit/traces/analysis.py`, the kit's own trace analysis that the viewer and notebook 05 draw with
  (an independent implementation of Step 5's definitions), is written from
  `kit/traces/learners_analysis.py` when the kit has that file;
- each notebook `notebooks/<name>.ipynb` and its source `notebooks/src/<name>.py` are written
  in release mode (`notebooks/build.py`): every reference cell (`# %% [reference]`, the kit's
  own implementation of a learner function that the notebook compares the learner's result
  with) becomes a stub defining the same names, which give `kit.notebook.NO_REFERENCE`;
  `compare` shows the learner's result alone there, and the check grades it. The released
  sources hold the stubs in ordinary cells, so the release's `python notebooks/build.py`
  rebuilds exactly its notebooks.

Then it proves the copy is safe to hand out (`reveals`): no released file holds lines of the
reference's learner files that the exercise does not hold too (three or more distinct lines of
at least `MIN_REVEALING` characters, imports aside), no released check holds three lines of the
oracles, every released oracle module is only lookups holding no line of the original, and no
released notebook or notebook source holds a reference cell or a line of one (`notebook_reference`);
except `ON_PURPOSE`: without `kit/traces/learners_analysis.py`, `kit/traces/analysis.py` is
released as it is, and a learner who reads it reads an answer to Step 5 (the command says so).
The release still installs (`pip install OUT`), grades `exercise/` (`python grade.py`) and runs
its notebooks; `--solution` and `use_tree("solution")` say there is no solution in it.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from kit import ROOT
from kit.course import load_course
from kit.harness.answers import is_table, table_module

#: What goes into the release, relative to the kit's root (folders recursively).
RELEASED = ("grade.py", "pyproject.toml", "README.md", "course.toml", "kit", "checks", "exercise", "notebooks",
            "docs/learner-api.md", "docs/architecture.md")
#: Never copied, wherever they are.
_SKIP = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".hypothesis", ".ruff_cache", "*.egg-info"}
#: A line of the reference shorter than this is too common to count as revealing it.
MIN_REVEALING = 30
#: A file revealing fewer distinct lines than this shares idioms, not the answer.
MIN_LINES = 3
#: The oracle modules, relative to the kit's root (each released as a table of its answers).
ORACLES = "checks/oracles"
#: The notebooks and their sources, relative to the kit's root (released in release mode).
NOTEBOOKS = "notebooks"
#: A line of a notebook's reference cell shorter than this is too common to count.
MIN_REFERENCE = 16


def tabled(root: Path, released: str) -> str:
    """The released text of the oracle module `released`: its answers as a table."""
    return table_module(Path(released).stem, (root / released).read_text(encoding="utf-8"))


def _oracle_modules(root: Path) -> list[str]:
    return [f"{ORACLES}/{p.name}" for p in sorted((root / ORACLES).glob("*.py")) if p.name != "__init__.py"]


@functools.cache
def notebook_build() -> ModuleType:
    """The kit's `notebooks/build.py` (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("notebooks_build", ROOT / NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def released_notebook(root: Path, released: str) -> str:
    """The released text of the notebook `released`: built from its source in release mode."""
    source = root / NOTEBOOKS / "src" / f"{Path(released).stem}.py"
    if not source.is_file():
        raise ValueError(f"{released} has no source in {NOTEBOOKS}/src/ (run python notebooks/build.py)")
    return notebook_build().render(source, release=True)


def released_notebook_source(root: Path, released: str) -> str:
    """The released text of the notebook source `released`: each reference cell a stub."""
    return notebook_build().release_source((root / released).read_text(encoding="utf-8"))


def _notebooks(root: Path) -> dict[str, Callable[[Path, str], str]]:
    """The notebooks and notebook sources of `root`, each with the function releasing it."""
    notebooks = root / NOTEBOOKS
    return {**{f"{NOTEBOOKS}/{p.name}": released_notebook for p in sorted(notebooks.glob("*.ipynb"))},
            **{f"{NOTEBOOKS}/src/{p.name}": released_notebook_source for p in sorted((notebooks / "src").glob("*.py"))}}


def notebook_reference(root: Path = ROOT) -> set[str]:
    """The lines (stripped) of the notebook sources' reference cells that give something away:
    at least `MIN_REFERENCE` characters, comments aside, and held by no ordinary cell of any
    notebook source and no file of the exercise."""
    build = notebook_build()
    reference: set[str] = set()
    ordinary: set[str] = set()
    for source in sorted((root / NOTEBOOKS / "src").glob("*.py")):
        for _, code, tag in build.parse_cells(source.read_text(encoding="utf-8")):
            (reference if tag == build.REFERENCE else ordinary).update(line.strip() for line in code.splitlines())
    for path in (root / "exercise").rglob("*.py"):
        ordinary.update(line.strip() for line in _lines(path))
    return {line for line in reference - ordinary if len(line) >= MIN_REFERENCE and not line.startswith("#")}


#: Files released in another form: the released path -> a function (the kit's root, the released
#: path) -> its text, or the path (from the kit's root) of the file released in its place, used
#: when the kit has it.
REPLACED: dict[str, Callable[[Path, str], str] | str] = {
    **{path: tabled for path in _oracle_modules(ROOT)},
    "kit/traces/analysis.py": "kit/traces/learners_analysis.py",
    **_notebooks(ROOT),
}


def on_purpose(root: Path = ROOT) -> dict[str, str]:
    """Files released although they share the answer's lines, and why (see the module doc)."""
    if (root / "kit" / "traces" / "learners_analysis.py").exists():
        return {}
    return {"kit/traces/analysis.py": "the kit's own Step 5 analysis, drawn by the viewer and notebook 05"}


#: Released on purpose although they share the answer's lines (empty once the kit has
#: kit/traces/learners_analysis.py).
ON_PURPOSE = on_purpose()


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
        for released, replacement in _replaced(root).items():
            dest = temporary / released
            if callable(replacement):
                if not (root / released).is_file():
                    continue
                try:
                    dest.write_text(replacement(root, released), encoding="utf-8")
                except (ValueError, SyntaxError) as exc:
                    raise ReleaseError(f"cannot release {released} in another form: {exc}") from exc
            elif (root / replacement).is_file():
                shutil.copyfile(root / replacement, dest)
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
    own files do not hold, released checks holding lines of the oracles (`file: "line"`),
    released oracle modules that are not tables of answers or hold a line of the original's
    logic, and released notebooks or notebook sources holding a reference cell or a line of one
    (`notebook_reference`; a notebook is read cell by cell); empty when the release gives
    nothing away."""
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
    oracles: dict[str, set[str]] = {}   # an oracle module -> its lines of logic
    for rel in _oracle_modules(root):
        oracles[rel] = _logic(root / rel)
    oracle_lines = {line for lines in oracles.values() for line in lines
                    if len(line) >= MIN_REVEALING and line not in exercise_lines}
    reference = notebook_reference(root)
    marker = notebook_build()._MARKER
    found = []
    skipped = on_purpose(root)
    for path in sorted(release.rglob("*")):
        rel = path.relative_to(release).as_posix()
        if not path.is_file() or rel in skipped:
            continue
        lines = {line.strip() for line in _lines(path)}
        if rel.startswith(ORACLES + "/") and rel.endswith(".py") and rel != f"{ORACLES}/__init__.py":
            held = sorted(oracles.get(rel, set()) & lines)
            if held or not _only_lookups(path):
                found.append(f"{rel}: not a table of answers" + (f", holds {held[0]!r}" if held else ""))
                continue
        if rel.startswith(NOTEBOOKS + "/"):
            cells = [m[1] for m in map(marker.match, _lines(path)) if m] if rel.endswith(".py") else []
            held = sorted(reference & lines)
            if notebook_build().REFERENCE in cells or held:
                found.append(f"{rel}: " + (f"holds a line of a notebook's reference cell, {held[0]!r}" if held
                                           else "holds a reference cell (# %% [reference])"))
                continue
        hits = sorted(answer & lines | (oracle_lines & lines if rel.startswith("checks/") else set()))
        if len(hits) >= MIN_LINES:
            found.append(f"{rel}: {hits[0]!r} (and {len(hits) - 1} more)")
    return found


def _replaced(root: Path) -> dict[str, Callable[[Path, str], str] | str]:
    """`REPLACED`, with every oracle module of `root` (another kit's root in the tests)."""
    return {**REPLACED, **{path: tabled for path in _oracle_modules(root)}, **_notebooks(root)}


def _logic(path: Path) -> set[str]:
    """The lines of an oracle module's functions and classes (docstrings aside)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    logic: set[str] = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            docs = {n.body[0].value.lineno for n in ast.walk(node)
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
                    and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
            for number in range(node.body[0].lineno, node.end_lineno + 1):
                line = lines[number - 1].strip()
                if number not in docs and len(line) >= 12 and not line.startswith(("#", '"', "'")):
                    logic.add(line)
    return logic


def _only_lookups(path: Path) -> bool:
    """Whether a released oracle module is a table: `MARK` first line, then a docstring, imports of
    kit.harness.answers, `_table = Table(...)` and `name = _table.function("name")` only."""
    text = "\n".join(_lines(path))
    try:
        body = ast.parse(text).body if is_table(text) else None
    except SyntaxError:
        body = None
    if body is None:
        return False
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.ImportFrom) and node.module in ("__future__", "kit.harness.answers"):
            continue
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and not node.value.keywords
                and all(isinstance(a, ast.Constant) for a in node.value.args)):
            func = node.value.func
            if isinstance(func, ast.Name) and func.id == "Table" and node.targets[0].id == "_table":
                continue
            if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "_table"
                    and func.attr == "function" and [a.value for a in node.value.args] == [node.targets[0].id]):
                continue
        return False
    return True


def _lines(path: Path) -> list[str]:
    """A file's lines; a notebook's are its cells' (its JSON quotes and escapes them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text).get("cells", [])
            return [line for cell in cells for source in [cell.get("source", "")]
                    for line in ("".join(source) if isinstance(source, list) else str(source)).splitlines()]
        except (ValueError, AttributeError, TypeError):
            pass
    return text.splitlines()
