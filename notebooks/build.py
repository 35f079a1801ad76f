"""Build the workshop notebooks (`notebooks/*.ipynb`) from their sources (`notebooks/src/*.py`).

    python notebooks/build.py            write every notebook from its source
    python notebooks/build.py --check    exit 1 if a committed notebook differs from its source

The sources are Python files in the "percent" format that jupytext also reads (so an editor
with jupytext can open them as notebooks too), but nothing beyond nbformat is needed here:

    # %% [markdown]
    # # A heading
    # Markdown text, each line commented with "# ".

    # %%
    code_cell = "runs as written"

Everything before the first `# %%` line is the source file's own comment and is left out.
A notebook is never edited as JSON: edit its source and run this script. The notebooks are
written without outputs, with stable cell ids, so the same source always gives the same file
(`tests/notebook/test_notebooks.py` checks that the committed notebooks match their sources).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
_MARKER = re.compile(r"^# %%(?:\s+\[(\w+)\])?\s*$")


def parse_percent(text: str) -> list[tuple[str, str]]:
    """The cells of a percent-format source: (`"markdown"` or `"code"`, source) in order."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        marker = _MARKER.match(line)
        if marker:
            cells.append(("markdown" if marker[1] == "markdown" else "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            lines = [re.sub(r"^# ?", "", line) if line.startswith("#") else line for line in lines]
        if lines:
            out.append((kind, "\n".join(lines)))
    return out


def build_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook of one source file (no outputs, stable cell ids)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "workshop": {"source": f"src/{source.name}", "generated_by": "notebooks/build.py"},
    }
    for i, (kind, text) in enumerate(parse_percent(source.read_text(encoding="utf-8"))):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text)
        cell.id = f"{source.stem[:40]}-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(source: Path) -> str:
    """The text of the notebook file built from `source`."""
    return nbformat.writes(build_notebook(source)) + "\n"


def targets() -> dict[Path, Path]:
    """Each source and the notebook it builds (`src/01-telemetry.py` -> `01-telemetry.ipynb`)."""
    return {src: HERE / f"{src.stem}.ipynb" for src in sorted(SOURCES.glob("*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = parser.parse_args(argv)
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
