"""Build the workshop notebooks (`notebooks/*.ipynb`) from their sources (`notebooks/src/*.py`).

    python notebooks/build.py            write every notebook from its source
    python notebooks/build.py --check    exit 1 if a committed notebook differs from its source
    python notebooks/build.py --release DEST   the learner release's notebooks, written into DEST

The sources are Python files in the "percent" format that jupytext also reads (so an editor
with jupytext can open them as notebooks too), but nothing beyond nbformat is needed here:

    # %% [markdown]
    # # A heading
    # Markdown text, each line commented with "# ".

    # %%
    code_cell = "runs as written"

    # %% [reference]
    def expected_total(values):     # the kit's own answer, compared with the learner's
        return sum(values)

Everything before the first `# %%` line is the source file's own comment and is left out.

**Reference cells.** A cell marked `# %% [reference]` holds a reference implementation of a
learner function (and only definitions: `def`, `class`, assignments); the data and the
`compare(...)` calls that use it stay in ordinary cells. A normal build writes it as an ordinary
code cell. The learner release (`build_all(dest, release=True)`, `--release DEST`, called by
`kit/instructor/release.py`) has no reference: each reference cell becomes a stub defining the
same names, every one returning `kit.notebook.NO_REFERENCE`, which `compare` and
`expectations` show as "no reference answer here" next to the learner's result
(`release_source` gives the released source, the stub in an ordinary cell).
A notebook is never edited as JSON: edit its source and run this script. The notebooks are
written without outputs, with stable cell ids, so the same source always gives the same file
(`tests/notebook/test_notebooks.py` checks that the committed notebooks match their sources).
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
_MARKER = re.compile(r"^# %%(?:\s+\[(\w+)\])?\s*$")
#: The tag of a reference cell: `# %% [reference]`.
REFERENCE = "reference"


def parse_percent(text: str) -> list[tuple[str, str]]:
    """The cells of a percent-format source: (`"markdown"` or `"code"`, source) in order (a
    reference cell is a code cell)."""
    return [(kind, source) for kind, source, _ in parse_cells(text)]


def parse_cells(text: str) -> list[tuple[str, str, str | None]]:
    """The cells of a percent-format source: (`"markdown"` or `"code"`, source, tag) in order,
    the tag being the marker's `[...]` (`"reference"` for a reference cell) or None."""
    cells: list[tuple[str, list[str], str | None]] = []
    for line in text.splitlines():
        marker = _MARKER.match(line)
        if marker:
            cells.append(("markdown" if marker[1] == "markdown" else "code", [], marker[1]))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines, tag in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            lines = [re.sub(r"^# ?", "", line) if line.startswith("#") else line for line in lines]
        if lines:
            out.append((kind, "\n".join(lines), tag))
    return out


def reference_cells(text: str) -> list[str]:
    """The code of the reference cells of a percent-format source."""
    return [source for _, source, tag in parse_cells(text) if tag == REFERENCE]


def defined_names(code: str) -> list[str]:
    """The names a reference cell defines, in order; a ValueError if it holds anything else
    than definitions (a docstring or a comment aside)."""
    names: list[str] = []
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        else:
            raise ValueError(f"a reference cell holds only definitions, not line {node.lineno}: "
                             f"{ast.get_source_segment(code, node)!r}")
        names += [n for n in found if n not in names]
    return names


def stub(code: str) -> str:
    """The learner release's form of a reference cell: the same names, each returning
    `kit.notebook.NO_REFERENCE` (a function or class) or bound to it (a value)."""
    tree = ast.parse(code).body
    callables = {n.name for n in tree if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    lines = ["# The kit's reference answer is not in the learner release: these give NO_REFERENCE, and",
             "# compare() shows yours alone (the check at the end grades it).",
             "from kit.notebook import NO_REFERENCE"]
    for name in defined_names(code):
        if name in callables:
            lines += ["", "", f"def {name}(*args, **kwargs):", "    return NO_REFERENCE"]
        else:
            lines += ["", f"{name} = NO_REFERENCE"]
    return "\n".join(lines)


def release_source(text: str) -> str:
    """A percent-format source as the learner release holds it: each reference cell replaced
    by its stub, in an ordinary code cell; the rest as it is."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        marker = _MARKER.match(lines[i].rstrip("\n"))
        if not (marker and marker[1] == REFERENCE):
            out.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not _MARKER.match(lines[end].rstrip("\n")):
            end += 1
        body = lines[i + 1:end]
        blank = 0                  # the blank lines after the cell, kept as they are
        while blank < len(body) and not body[len(body) - 1 - blank].strip():
            blank += 1
        out += ["# %%\n", stub("".join(body)) + "\n", *body[len(body) - blank:]]
        i = end
    return "".join(out)


def build_notebook(source: Path, release: bool = False) -> nbformat.NotebookNode:
    """The notebook of one source file (no outputs, stable cell ids); with `release`, the
    learner release's (each reference cell a stub: `release_source`)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "workshop": {"source": f"src/{source.name}", "generated_by": "notebooks/build.py"},
    }
    whole = source.read_text(encoding="utf-8")
    for i, (kind, text) in enumerate(parse_percent(release_source(whole) if release else whole)):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        cell.id = f"{source.stem[:40]}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(source: Path, release: bool = False) -> str:
    """The text of the notebook file built from `source` (with `release`, the learner release's)."""
    return nbformat.writes(build_notebook(source, release)) + "\n"


def targets() -> dict[Path, Path]:
    """Each source and the notebook it builds (`src/01-telemetry.py` -> `01-telemetry.ipynb`)."""
    return {src: HERE / f"{src.stem}.ipynb" for src in sorted(SOURCES.glob("*.py"))}


def build_all(dest: Path, release: bool = False, sources: Path = SOURCES) -> list[Path]:
    """Write every notebook of `sources` into the folder `dest` (made if missing); with
    `release`, the learner release's notebooks and their sources (`dest/src/`, each reference
    cell a stub). Returns the files written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sorted(Path(sources).glob("*.py")):
        notebook = dest / f"{src.stem}.ipynb"
        notebook.write_text(render(src, release), encoding="utf-8")
        written.append(notebook)
        if release:
            (dest / "src").mkdir(exist_ok=True)
            (dest / "src" / src.name).write_text(release_source(src.read_text(encoding="utf-8")), encoding="utf-8")
            written.append(dest / "src" / src.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    parser.add_argument("--release", metavar="DEST", type=Path,
                        help="write the learner release's notebooks (reference cells as stubs) and sources into DEST")
    args = parser.parse_args(argv)
    if args.release is not None:
        if args.release.resolve() == HERE:
            parser.error("--release: give another folder than notebooks/ (the full kit's notebooks stay as they are)")
        for path in build_all(args.release, release=True):
            print(f"wrote {path}")
        return 0
    stale = []
    for src, notebook in targets().items():
        text = render(src)
        if notebook.exists() and notebook.read_text(encoding="utf-8") == text:
            continue
        stale.append(notebook)
        if not args.check:
            notebook.write_text(text, encoding="utf-8")
            print(f"wrote {notebook.relative_to(HERE.parent)}")
    orphans = sorted(set(HERE.glob("*.ipynb")) - set(targets().values()))
    for notebook in orphans:
        print(f"{notebook.relative_to(HERE.parent)} has no source in notebooks/src/", file=sys.stderr)
    if args.check and stale:
        for notebook in stale:
            print(f"{notebook.relative_to(HERE.parent)} is out of date: run python notebooks/build.py",
                  file=sys.stderr)
    return 1 if (args.check and stale) or orphans else 0


if __name__ == "__main__":
    sys.exit(main())
