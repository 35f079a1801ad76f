"""The platforms: the Gradescope autograder zip runs, and the GitHub Classroom workflow gives each
criterion its points."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from kit import ROOT
from kit.course import load_course
from kit.instructor.package import PackageError, build_gradescope, gradescope_run


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build_gradescope(tmp_path_factory.mktemp("dist") / "autograder.zip")


def test_the_zip_holds_the_grader_and_never_the_solution(package):
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
    for script in ("setup.sh", "run_autograder"):
        assert script in names and modes[script] & stat.S_IXUSR, script
    for required in ("grade.py", "pyproject.toml", "course.toml", "kit/grading/runner.py", "checks/conftest.py",
                     *[f"exercise/{f}" for f in load_course().learner_files]):
        assert required in names, required
    assert not [n for n in names if n.startswith(("solution/", "selftest/", "tests/")) or "__pycache__" in n]
    assert build_gradescope(package.with_name("again.zip")).read_bytes() == package.read_bytes(), "not reproducible"


def test_setup_installs_the_kit_from_the_zip_with_pip(package, tmp_path):
    with zipfile.ZipFile(package) as archive:
        setup = archive.read("setup.sh").decode()
    (tmp_path / "setup.sh").write_text(setup)
    assert subprocess.run(["bash", "-n", str(tmp_path / "setup.sh")]).returncode == 0
    assert 'pip install "$SOURCE"' in setup and "venv" in setup


def test_run_autograder_grades_a_sample_submission(package, tmp_path):
    """The generated run_autograder, run locally with the /autograder paths moved to a temp dir."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root / "source")
    os.chmod(root / "source" / "run_autograder", 0o755)
    submission = root / "submission"
    submission.mkdir()
    files = load_course().learner_files
    for learner_file in files[:3]:  # three uploaded flat, by name ...
        shutil.copyfile(ROOT / "solution" / learner_file, submission / learner_file.rsplit("/", 1)[-1])
    with zipfile.ZipFile(submission / "rest.zip", "w") as archive:  # ... three in a zip of the tree
        for learner_file in files[3:]:
            archive.write(ROOT / "solution" / learner_file, f"my-work/{learner_file}")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    done = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 100, results["output"]
    assert abs(sum(t["max_score"] for t in results["tests"]) - 100) < 0.01
    assert all({"name", "score", "max_score", "status", "output"} <= t.keys() for t in results["tests"])
    assert all(f"{f}: graded from" in results["output"] for f in files), results["output"]


def test_an_empty_or_missing_submission_still_gets_a_results_json(tmp_path):
    (tmp_path / "empty").mkdir()
    data = gradescope_run(tmp_path / "empty", tmp_path / "results-empty", check_timeout_s=5)
    assert data["score"] == 0 and "not in the submission" in data["output"]
    assert json.loads((tmp_path / "results-empty" / "results.json").read_text()) == data
    data = gradescope_run(tmp_path / "nowhere", tmp_path / "results-missing")
    assert data["score"] == 0 and data["tests"] == [] and "could not be graded" in data["output"]


def test_a_package_is_a_zip():
    with pytest.raises(PackageError):
        build_gradescope(ROOT / "dist" / "autograder.tar")


def test_the_github_classroom_workflow_gives_each_criterion_its_points():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / "packaging" / "github-classroom.yml").read_text())
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    graders = {s["id"]: s for s in steps if "autograding-command-grader" in s.get("uses", "")}
    course = {c.id: c.points for c in load_course().criteria}
    assert set(graders) == set(course)
    for criterion, points in course.items():
        assert graders[criterion]["with"]["max-score"] == points
        assert f"--only {criterion}" in graders[criterion]["with"]["command"]
    reporter = next(s for s in steps if "autograding-grading-reporter" in s.get("uses", ""))
    assert reporter["with"]["runners"].split(",") == list(course)
    assert set(reporter["env"]) == {f"{c.upper()}_RESULTS" for c in course}
