"""The learner release (kit/instructor/release.py, `python grade.py --release OUT`): no answer in
it, and it still installs, grades exercise/ and runs its notebooks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit import ROOT
from kit.instructor.release import ON_PURPOSE, ReleaseError, build_release, reveals


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
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    monitoring = "services/api_gateway/monitoring.py"
    (copy / "kit" / "leaked.py").write_text((ROOT / "solution" / monitoring).read_text())
    assert any(found.startswith("kit/leaked.py") for found in reveals(copy))
    assert set(ON_PURPOSE) <= {p.relative_to(release).as_posix() for p in release.rglob("*.py")}


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
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    done = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                           "--build-lib", str(tmp_path / "lib")], cwd=copy, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    built = {p.relative_to(tmp_path / "lib").as_posix() for p in (tmp_path / "lib").rglob("*.py")}
    assert "grade.py" in built and "kit/grading/runner.py" in built and "kit/instructor/release.py" in built


def test_its_notebook_runs_on_its_exercise(release):
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.read(release / "notebooks" / "01-telemetry.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(release / "notebooks")}})
    client.execute(env={**_env(release), "WORKSHOP_NOTEBOOK_TREE": "exercise"})
    errors = [f"{out.ename}: {out.evalue}" for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors
    shown = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
             if "text/html" in out.get("data", {}) and "checks passed" in out["data"]["text/html"]]
    assert shown, "the notebook's check() cell shows its scorecard"
