"""The learner release (kit/instructor/release.py, `python grade.py --release OUT`): no answer in
it (no oracle logic either: the oracles are tables of their recorded answers), and it still
installs, grades exercise/ as the full kit does (the reference answer 100/100 and every extension,
a broken answer the same checks failed) and runs its notebooks, whose reference cells are stubs (no
notebook implements a learner function: an extension's notebook shows the learner's result alone)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit import ROOT
from kit.course import load_course
from kit.harness.answers import is_table, public_oracles
from kit.instructor.release import (ON_PURPOSE, REPLACED, ReleaseError, build_release, notebook_build,
                                    notebook_reference, on_purpose, reveals)


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "kit"
    done = subprocess.run([sys.executable, str(ROOT / "grade.py"), "--release", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def _env(release: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(release)
    return env


def test_nothing_that_gives_the_answer_away_is_in_it(release):
    names = {p.name for p in release.iterdir()}
    assert {"grade.py", "kit", "checks", "exercise", "notebooks", "course.toml", "pyproject.toml"} <= names
    assert not {"solution", "selftest", "tests", "benchmarks", ".git", "scripts"} & names
    assert not list(release.rglob("*.patch")) and not list(release.rglob("__pycache__"))
    assert reveals(release) == []


def test_a_file_holding_the_answer_is_caught(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    monitoring = "services/api_gateway/monitoring.py"
    (copy / "kit" / "leaked.py").write_text((ROOT / "solution" / monitoring).read_text())
    assert any(found.startswith("kit/leaked.py") for found in reveals(copy))
    assert set(ON_PURPOSE) <= {p.relative_to(release).as_posix() for p in release.rglob("*.py")}


def test_its_oracles_are_tables_of_answers(release):
    """Each checks/oracles/*.py is released as lookups with the same public names, and its answers
    are released with it."""
    originals = sorted(p for p in (ROOT / "checks" / "oracles").glob("*.py") if p.name != "__init__.py")
    assert {"step2.py", "step4.py", "step5.py", "e1.py", "e2.py", "e3.py", "e4.py"} <= {p.name for p in originals}
    for original in originals:
        released = (release / "checks" / "oracles" / original.name).read_text()
        assert is_table(released), original.name
        names = public_oracles(original.read_text())
        assert [line.split(" = ")[0] for line in released.splitlines() if "_table.function(" in line] == names
        assert "def " not in released and "return" not in released
        assert f"checks/oracles/{original.name}" in REPLACED
    assert sorted(p.name for p in (release / "checks" / "cases" / "answers").glob("*.json")) == \
        sorted(p.name for p in (ROOT / "checks" / "cases" / "answers").glob("*.json"))


def test_an_oracle_released_as_it_is_is_caught(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    shutil.copy(ROOT / "checks" / "oracles" / "step5.py", copy / "checks" / "oracles" / "step5.py")
    lookups = (copy / "checks" / "oracles" / "e4.py").read_text()
    (copy / "checks" / "oracles" / "e4.py").write_text(lookups + "\nimport os\n")   # not only lookups
    found = reveals(copy)
    assert any(f.startswith("checks/oracles/step5.py: not a table of answers, holds") for f in found), found
    assert any(f.startswith("checks/oracles/e4.py: not a table of answers") for f in found), found


def test_its_notebooks_hold_no_reference(release):
    """Each notebook and source is released in release mode: its reference cells are stubs, and
    no released notebook file holds a line of the full kit's reference cells."""
    build = notebook_build()
    reference = notebook_reference()
    assert any("def expected_slowest(" in line for line in reference) and len(reference) > 20
    sources = sorted((ROOT / "notebooks" / "src").glob("*.py"))
    for source in sources:
        assert (release / "notebooks" / f"{source.stem}.ipynb").read_text() == build.render(source, release=True)
        released = (release / "notebooks" / "src" / source.name).read_text()
        assert released == build.release_source(source.read_text())
        assert "# %% [reference]" not in released
        assert f"notebooks/{source.stem}.ipynb" in REPLACED and f"notebooks/src/{source.name}" in REPLACED
    for path in (release / "notebooks").rglob("*"):
        if path.is_file():
            text = path.read_text()
            if path.suffix == ".ipynb":     # the cells' text, not their JSON quoting
                text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
            assert not [line for line in reference if line in text], path
    stubbed = (release / "notebooks" / "09-e1-trace-analytics.ipynb").read_text()
    assert "def expected_slowest(*args, **kwargs)" in stubbed and "return NO_REFERENCE" in stubbed
    assert "The rules written as plainly as possible" not in stubbed


def test_a_reference_cell_pasted_back_into_a_released_notebook_is_caught(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    assert reveals(copy) == []
    name = "09-e1-trace-analytics"
    shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", copy / "notebooks" / f"{name}.ipynb")   # the full kit's
    source = (ROOT / "notebooks" / "src" / "12-e4-dependency-map.py").read_text()
    (copy / "notebooks" / "src" / "12-e4-dependency-map.py").write_text(source)
    (copy / "notebooks" / "src" / "11-e3-slo.py").write_text(     # one line of a reference, in a stub's place
        (copy / "notebooks" / "src" / "11-e3-slo.py").read_text().replace(
            "def expected(*args, **kwargs):\n    return NO_REFERENCE",
            "def expected(*args, **kwargs):\n    burn = (1 - sli) / (1 - objective)\n    return NO_REFERENCE"))
    found = reveals(copy)
    assert any(f.startswith(f"notebooks/{name}.ipynb: holds a line of a notebook's reference cell") for f in found), found
    assert any(f.startswith("notebooks/src/12-e4-dependency-map.py: holds") for f in found), found
    assert "notebooks/src/11-e3-slo.py: holds a line of a notebook's reference cell, " \
           "'burn = (1 - sli) / (1 - objective)'" in found, found
    marked = copy / "notebooks" / "src" / "10-e2-experiments.py"    # a marker alone is caught too
    marked.write_text(marked.read_text().replace("# %%\n# The kit's reference answer is not", "# %% [reference]\n"
                                                                                            "# The kit's reference answer is not", 1))
    assert "notebooks/src/10-e2-experiments.py: holds a reference cell (# %% [reference])" in reveals(copy)


def test_the_kits_analysis_is_released_from_the_learners_version_when_there_is_one(release):
    assert REPLACED["kit/traces/analysis.py"] == "kit/traces/learners_analysis.py"
    released = (release / "kit" / "traces" / "analysis.py").read_text()
    learners = ROOT / "kit" / "traces" / "learners_analysis.py"
    if learners.exists():
        assert released == learners.read_text() and on_purpose() == {} == ON_PURPOSE
    else:
        assert released == (ROOT / "kit" / "traces" / "analysis.py").read_text()
        assert set(on_purpose()) == {"kit/traces/analysis.py"}


def _graded_by(kit: Path, tree: Path) -> dict:
    """`python grade.py --target tree --format json` of the kit at `kit` (run from there)."""
    done = subprocess.run([sys.executable, "grade.py", "--target", str(tree), "--format", "json"], cwd=kit,
                          env=_env(kit), capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)


def _answer_tree(release: Path, tmp_path: Path, mutant: str | None = None) -> Path:
    """The reference's learner files (extensions included) over a copy of the release's exercise/,
    with a selftest mutant applied when named."""
    tree = tmp_path / "tree"
    shutil.copytree(release / "exercise", tree)
    for learner_file in load_course().learner_files:
        shutil.copy(ROOT / "solution" / learner_file, tree / learner_file)
    if mutant:
        from kit.instructor.selftest import apply_patch, parse_mutant
        apply_patch(parse_mutant(ROOT / "selftest" / f"{mutant}.patch").patch, tree, name=mutant)
    return tree


def _failed(report: dict) -> dict[str, str]:
    checks = report["checks"] + [c for e in report["extensions"]["results"] for c in e["checks"]]
    return {c["id"]: c["message"] for c in checks if c["status"] != "passed"}


def test_it_grades_the_reference_answer_fully_from_its_tables(release, tmp_path):
    """Every answer the checks need on the reference is recorded: 100/100 and all four extensions."""
    kit = tmp_path / "kit"
    shutil.copytree(release, kit)
    report = _graded_by(kit, _answer_tree(kit, tmp_path))
    assert _failed(report) == {}
    assert report["score"] == 100 and report["extensions"]["passed"] == 4 == report["extensions"]["total"]


def test_a_broken_answer_fails_the_same_checks_as_in_the_full_kit(release, tmp_path):
    """A Step 5 tree with its roots in input order: the release fails exactly the checks the full
    kit fails (reported on the stored case, not shrunk), each with its message."""
    kit = tmp_path / "kit"
    shutil.copytree(release, kit)
    tree = _answer_tree(kit, tmp_path, "tree-roots-in-input-order")
    report = _graded_by(kit, tree)
    released, full = _failed(report), _failed(_graded_by(ROOT, tree))
    assert set(released) == set(full) and "generated_trees_match_the_oracle" in released
    assert {c["criterion"] for c in report["checks"] if c["id"] in released} == {"performance-visible"}
    assert all("roots and each node's children in start order" in message for message in released.values())
    assert not any("no recorded answer" in m or "Traceback" in m for m in released.values())


def test_a_call_with_no_recorded_answer_fails_its_check_in_one_line(release, tmp_path):
    kit = tmp_path / "kit"
    shutil.copytree(release, kit)
    (kit / "checks" / "cases" / "answers" / "e4.json").write_text("[\n]\n")
    failed = _failed(_graded_by(kit, _answer_tree(kit, tmp_path)))
    assert failed and all(name.startswith("e4_") for name in failed), failed
    for message in failed.values():
        assert message.startswith("this release of the kit has no recorded answer for oracle_dependency_map(")
        assert message.endswith("grade with the full kit") and "\n" not in message


def test_an_existing_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine\n")
    with pytest.raises(ReleaseError):
        build_release(tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine\n"


def test_it_grades_its_exercise_and_has_no_solution_to_grade(release):
    done = subprocess.run([sys.executable, "grade.py", "--format", "json"], cwd=release, env=_env(release),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["score"] == 0 and report["checks"]
    assert all(c["status"] == "failed" and c["message"] for c in report["checks"])
    solution = subprocess.run([sys.executable, "grade.py", "--solution"], cwd=release, env=_env(release),
                              capture_output=True, text=True, timeout=120)
    assert solution.returncode == 2 and "no such file or folder" in solution.stderr


def test_it_installs(release, tmp_path):
    """What `pip install` builds from it (setuptools' build step, with its pyproject.toml; a copy,
    so that the release stays clean): grade.py and the whole kit package."""
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                           "--build-lib", str(tmp_path / "lib")], cwd=copy, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    built = {p.relative_to(tmp_path / "lib").as_posix() for p in (tmp_path / "lib").rglob("*.py")}
    assert "grade.py" in built and "kit/grading/runner.py" in built and "kit/instructor/release.py" in built


def _run_on_the_exercise(release: Path, notebook: str):
    """The release's notebook, executed on its exercise/ (cell errors fail the test)."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.read(release / "notebooks" / notebook, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(release / "notebooks")}})
    client.execute(env={**_env(release), "WORKSHOP_NOTEBOOK_TREE": "exercise"})
    errors = [f"{out.ename}: {out.evalue}" for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    return nb


def test_its_notebook_runs_on_its_exercise(release):
    nb = _run_on_the_exercise(release, "01-telemetry.ipynb")
    shown = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
             if "text/html" in out.get("data", {}) and "checks passed" in out["data"]["text/html"]]
    assert shown, "the notebook's check() cell shows its scorecard"


def test_an_extension_notebook_runs_on_its_exercise_with_no_reference(release):
    """Notebook 09 (E1) in the release, on the exercise's stubs: no cell error, each comparison
    shows the learner's result alone with the line naming the check, and the check still grades."""
    nb = _run_on_the_exercise(release, "09-e1-trace-analytics.ipynb")
    html = "\n".join(out["data"]["text/html"] for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.outputs if "text/html" in out.get("data", {}))
    assert html.count('The learner release has no reference answer here: `check("E1")` grades it') == 4
    assert "Not done yet:</b> Extension E1, TODO 1" in html and ">Expected<" not in html
    assert "checks passed" in html, "the check() cell shows its scorecard"
