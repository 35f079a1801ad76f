"""The notebooks: built from their sources, and runnable headless on both trees.

(a) Every committed notebook is exactly what `notebooks/build.py` makes from its source in
    `notebooks/src/` (no outputs, stable ids), and the notebooks take the course's texts from
    course.toml instead of restating them.
(b) Every notebook runs headless (nbclient + ipykernel) against `solution/`: no cell error, and
    every in-place `check(...)` passes; and against the unmodified `exercise/`: no cell raises,
    and the checks report failures (a scorecard, not a traceback).

The runs (every notebook, the extensions' too, on both trees) share two kernels' worth of cores: they run two at a time, once per session.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from kit import ROOT
from kit.course import load_course

NOTEBOOKS = ROOT / "notebooks"
_spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
build = importlib.util.module_from_spec(_spec)     # notebooks/build.py ("build" is a PyPI name too)
_spec.loader.exec_module(build)

SOURCES = sorted((NOTEBOOKS / "src").glob("*.py"))
NAMES = [s.stem for s in SOURCES]
HISTORY_MARK = "WORKSHOP_GRADING_HISTORY="


# -- (a) the committed notebooks match their sources -------------------------------------------

#: The optional extensions' notebooks (`09-e1-trace-analytics`, ...): one per extension, after the rest.
EXTENSION_NAMES = [n for n in NAMES if re.match(r"\d\d-e\d-", n)]


def test_there_is_a_welcome_a_notebook_per_step_and_the_analysis():
    steps = [s.number for s in load_course().steps]
    main = [n for n in NAMES if n not in EXTENSION_NAMES]
    # After the steps: Step 7-10's analysis in the notebook, then Steps 8-10 in the trace viewer.
    after = [f"{len(steps) + 1:02d}-analyse-traces", f"{len(steps) + 2:02d}-viewing-traces"]
    assert main[0].startswith("00-") and main[-2:] == after
    assert [int(n[:2]) for n in main[1:-2]] == steps


def test_a_notebook_per_extension_that_ends_with_its_check():
    extensions = [e.id for e in load_course().extensions]
    assert [n.split("-")[1].upper() for n in EXTENSION_NAMES] == extensions
    for name, extension in zip(EXTENSION_NAMES, extensions):
        code = [t for k, t in build.parse_percent((NOTEBOOKS / "src" / f"{name}.py").read_text(encoding="utf-8"))
                if k == "code"]
        assert code[-1].strip() == f'check("{extension}")', f"{name}: the last cell grades {extension}"


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_committed_notebook_matches_its_source(source):
    notebook = build.targets()[source]
    assert notebook.exists(), f"{notebook.name} is missing: run python notebooks/build.py"
    assert notebook.read_text(encoding="utf-8") == build.render(source), \
        f"{notebook.name} is out of date with src/{source.name}: run python notebooks/build.py"


def test_every_notebook_has_a_source_and_no_outputs():
    assert set(NOTEBOOKS.glob("*.ipynb")) == set(build.targets().values())
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(notebook, as_version=4)
        for cell in nb.cells:
            assert cell.cell_type != "code" or (not cell.outputs and cell.execution_count is None), notebook.name


@pytest.mark.parametrize("step", load_course().steps, ids=lambda s: f"step{s.number}")
def test_step_notebooks_read_the_course_and_end_with_the_check(step):
    source = SOURCES[step.number]
    cells = build.parse_percent(source.read_text(encoding="utf-8"))
    code = [text for kind, text in cells if kind == "code"]
    assert f"show_step({step.number})" in code[0], "the first code cell shows the step from course.toml"
    assert code[-1].strip() == f"check({step.number})", "the last cell grades the step"
    text = "\n".join(t for _, t in cells)
    for restated in (step.goal, *step.hints):
        assert restated not in text, f"src/{source.name} restates course.toml: {restated[:60]!r}"


# -- (b) they run headless on both trees -------------------------------------------------------

def _execute(name: str, tree: str) -> tuple[nbformat.NotebookNode, list[dict]]:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, kit.notebook\n"
        f"print({HISTORY_MARK!r} + json.dumps(kit.notebook.grading_history))"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["WORKSHOP_NOTEBOOK_TREE"] = tree
    client = NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    history: list[dict] = []
    for output in nb.cells[-1].outputs:
        for line in output.get("text", "").splitlines():
            if line.startswith(HISTORY_MARK):
                history = json.loads(line[len(HISTORY_MARK):])
    return nb, history


@pytest.fixture(scope="session")
def executed():
    """(tree, notebook name) -> (executed notebook, grading history), all run once."""
    runs = [(name, tree) for tree in ("solution", "exercise") for name in NAMES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda run: _execute(*run), runs))
    return {(tree, name): result for (name, tree), result in zip(runs, results)}


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"cell {i}: {out.ename}: {out.evalue}\n{''.join(cell.source)[:300]}"
            for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.outputs if out.output_type == "error"]


def _graded_steps(name: str) -> list[str | None]:
    """What the notebook grades, read from its source: check(N) -> "N", check() -> None."""
    cells = build.parse_percent((NOTEBOOKS / "src" / f"{name}.py").read_text(encoding="utf-8"))
    found = []
    for kind, text in cells:
        if kind == "code" and text.strip().startswith("check("):
            inner = text.strip()[len("check("):-1].strip("\"'")    # check(5) -> "5", check("E2") -> "E2"
            found.append(inner or None)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_solution_and_its_checks_pass(executed, name):
    nb, history = executed[("solution", name)]
    assert not _errors(nb), "\n\n".join(_errors(nb))
    assert [h["step"] for h in history] == _graded_steps(name)
    for entry in history:
        assert entry["error"] is None, entry
        assert entry["total"] > 0 and entry["all_passed"], entry


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_exercise_and_shows_failures(executed, name):
    nb, history = executed[("exercise", name)]
    assert not _errors(nb), "\n\n".join(_errors(nb))
    assert [h["step"] for h in history] == _graded_steps(name)
    for entry in history:
        assert entry["error"] is None, entry            # a scorecard, not a grading crash
        assert entry["total"] > 0 and not entry["all_passed"], entry
    shown = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
             if "text/html" in out.get("data", {}) and "checks passed" in out["data"]["text/html"]]
    assert len(shown) == len(history), "every check() cell shows its scorecard"


def test_a_trace_picture_is_drawn_on_the_solution(executed):
    nb, _ = executed[("solution", "03-order-workflow")]
    pictures = [out["data"]["text/html"] for cell in nb.cells if cell.cell_type == "code"
                for out in cell.outputs if '<svg' in out.get("data", {}).get("text/html", "")]
    assert any('class="span critical' in p and 'class="span error' not in p for p in pictures)
    assert any('class="exception"' in p for p in pictures), "the failed payment's exception is drawn"


def _html(nb: nbformat.NotebookNode) -> str:
    return "\n".join(out["data"]["text/html"] for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if "text/html" in out.get("data", {}))


def _tracebacks(nb: nbformat.NotebookNode) -> list[str]:
    """Raw tracebacks a learner would see: in a stream, or in HTML outside a folded <details>."""
    found = [out.get("text", "")[:300] for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
             if out.output_type == "stream" and "Traceback (most recent call last)" in out.get("text", "")]
    unfolded = re.sub(r"<details>.*?</details>", "", _html(nb), flags=re.S)
    return found + (["(in HTML)"] if "Traceback (most recent call last)" in unfolded else [])


@pytest.mark.parametrize("step", load_course().steps, ids=lambda s: f"step{s.number}")
def test_every_try_it_on_the_stubs_says_what_is_not_done(executed, step):
    nb, _ = executed[("exercise", NAMES[step.number])]
    html = _html(nb)
    assert f"Step {step.number}, TODO" in html and "Not done yet" in html
    assert ">Expected<" in html or ">expected<" in html, "the expected result is shown next to the learner's"
    assert not _tracebacks(nb), _tracebacks(nb)


def test_a_syntax_error_is_one_readable_message_and_run_all_reaches_the_check(tmp_path):
    tree = tmp_path / "exercise"
    shutil.copytree(ROOT / "exercise", tree, ignore=shutil.ignore_patterns("__pycache__"))
    telemetry = tree / "services" / "shared" / "telemetry.py"
    telemetry.write_text(telemetry.read_text(encoding="utf-8") + "\ndef broken(:\n", encoding="utf-8")
    nb, history = _execute(NAMES[1], str(tree))
    assert not _errors(nb), "\n\n".join(_errors(nb))
    assert [h["step"] for h in history] == ["1"] and history[0]["error"] is None
    assert not _tracebacks(nb), _tracebacks(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and "learner(" in cell.source:
            text = "".join(out.get("data", {}).get("text/html", "") for out in cell.outputs)
            assert text.count("cannot be imported") == 1, cell.source[:200]
            assert "SyntaxError in shared/telemetry.py" in text
