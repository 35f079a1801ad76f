"""notebooks/build.py's reference cells: a normal build writes them as ordinary code cells (the
full kit's notebooks, unchanged), the learner release's build (`release=True`, `--release DEST`)
writes each as a stub defining the same names, which give `kit.notebook.NO_REFERENCE`; and no
notebook source implements a learner function outside a reference cell."""
from __future__ import annotations

import ast
import importlib.util

import nbformat
import pytest

from kit import ROOT
from kit.notebook import NO_REFERENCE

NOTEBOOKS = ROOT / "notebooks"
_spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SOURCES = sorted((NOTEBOOKS / "src").glob("*.py"))
WITH_REFERENCE = [s for s in SOURCES if build.reference_cells(s.read_text(encoding="utf-8"))]

EXAMPLE = '''# the source's own comment

# %% [markdown]
# # A title

# %%
spans = [1, 2, 3]


# %% [reference]
# The kit's answer.
def expected_total(values):
    """The rule, plainly."""
    return sum(values)


LIMIT = 3


# %%
compare(total(spans), expected_total(spans), todo="Extension E1, TODO 1")
'''


def test_every_extension_notebook_has_its_reference_in_reference_cells():
    names = {s.stem for s in WITH_REFERENCE}
    assert {"09-e1-trace-analytics", "10-e2-experiments", "11-e3-slo", "12-e4-dependency-map"} <= names


#: `def expected...` in ordinary cells that only lay out the published expected rows (no rule).
FORMATTERS = {"expected_spans"}     # 03: (name, status, attribute names) -> rows


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_no_ordinary_cell_implements_what_a_reference_cell_does(source):
    """`def expected...` only in reference cells, and no ordinary cell of any notebook defines a
    name a reference cell defines (the reference stays in one place, stubbed in the release)."""
    reference_names = {n for s in SOURCES for code in build.reference_cells(s.read_text(encoding="utf-8"))
                       for n in build.defined_names(code)}
    for kind, code, tag in build.parse_cells(source.read_text(encoding="utf-8")):
        if kind != "code" or tag == build.REFERENCE:
            continue
        tree = compile(code, source.name, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert not {n for n in defined if n.startswith("expected")} - FORMATTERS, f"{source.name}: {code[:200]}"
        assert not defined & reference_names, f"{source.name} defines {defined & reference_names} in an ordinary cell"


def test_a_normal_build_writes_a_reference_cell_as_an_ordinary_code_cell(tmp_path):
    marked, plain = tmp_path / "marked.py", tmp_path / "plain.py"
    marked.write_text(EXAMPLE, encoding="utf-8")
    plain.write_text(EXAMPLE.replace("# %% [reference]", "# %%"), encoding="utf-8")
    assert build.render(marked).replace("marked", "plain") == build.render(plain)
    cells = build.parse_cells(EXAMPLE)
    assert [tag for _, _, tag in cells] == ["markdown", None, "reference", None]
    assert build.parse_percent(EXAMPLE) == [(kind, code) for kind, code, _ in cells]


def test_the_release_build_turns_each_reference_cell_into_a_stub(tmp_path):
    source = tmp_path / "09-example.py"
    source.write_text(EXAMPLE, encoding="utf-8")
    full, released = build.build_notebook(source), build.build_notebook(source, release=True)
    assert [c.id for c in full.cells] == [c.id for c in released.cells]
    assert [c.source for c in full.cells[:2] + full.cells[3:]] == [c.source for c in released.cells[:2] + released.cells[3:]]
    stub = released.cells[2].source
    assert stub == build.stub(full.cells[2].source)
    assert "sum(values)" not in stub and "The rule, plainly" not in stub and "The kit's answer" not in stub
    names: dict = {}
    exec(stub, names)
    assert names["expected_total"]([1, 2]) is NO_REFERENCE and names["LIMIT"] is NO_REFERENCE
    assert build.defined_names(full.cells[2].source) == ["expected_total", "LIMIT"]
    # The released source: the stub in an ordinary cell, which a normal build writes as it is.
    released_source = build.release_source(EXAMPLE)
    assert "[reference]" not in released_source and "sum(values)" not in released_source
    assert released_source.replace(stub, "STUB") == EXAMPLE.replace(
        '''# %% [reference]
# The kit's answer.
def expected_total(values):
    """The rule, plainly."""
    return sum(values)


LIMIT = 3
''', "# %%\nSTUB\n")
    assert build.release_source(released_source) == released_source
    again = tmp_path / "again.py"
    again.write_text(released_source, encoding="utf-8")
    assert [c.source for c in build.build_notebook(again).cells] == [c.source for c in released.cells]


def test_a_reference_cell_holds_only_definitions():
    with pytest.raises(ValueError, match="only definitions"):
        build.defined_names("def f():\n    return 1\n\n\nprint(f())\n")


@pytest.mark.parametrize("source", WITH_REFERENCE, ids=[s.stem for s in WITH_REFERENCE])
def test_the_released_notebooks_hold_stubs_and_nothing_else_changes(source):
    text = source.read_text(encoding="utf-8")
    full, released = build.build_notebook(source), build.build_notebook(source, release=True)
    references = build.reference_cells(text)
    changed = [(a.source, b.source) for a, b in zip(full.cells, released.cells) if a.source != b.source]
    assert len(full.cells) == len(released.cells) and [a for a, _ in changed] == references
    for reference, stub in changed:
        assert stub == build.stub(reference)
        assert not {line.strip() for line in reference.splitlines() if len(line.strip()) >= 16} \
            & {line.strip() for line in stub.splitlines()}
    nbformat.validate(released)


def test_build_all_in_release_mode_writes_the_notebooks_and_their_sources(tmp_path):
    written = build.build_all(tmp_path / "out", release=True)
    assert len(written) == 2 * len(SOURCES)
    for source in SOURCES:
        notebook = tmp_path / "out" / f"{source.stem}.ipynb"
        assert notebook.read_text(encoding="utf-8") == build.render(source, release=True)
        released_source = tmp_path / "out" / "src" / source.name
        assert build.render(released_source) == notebook.read_text(encoding="utf-8")
        if source not in WITH_REFERENCE:
            assert released_source.read_text(encoding="utf-8") == source.read_text(encoding="utf-8")
            assert build.render(source, release=True) == build.render(source)


def test_the_command_line(tmp_path, capsys):
    assert build.main(["--check"]) == 0, "the committed notebooks match their sources"
    assert build.main(["--release", str(tmp_path / "release")]) == 0
    assert sorted(p.name for p in (tmp_path / "release").glob("*.ipynb")) == sorted(f"{s.stem}.ipynb" for s in SOURCES)
    with pytest.raises(SystemExit):
        build.main(["--release", str(NOTEBOOKS)])
