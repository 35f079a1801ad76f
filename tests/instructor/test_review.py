"""`python grade.py --diff`: a learner's six files beside the reference, as unified diffs."""
from __future__ import annotations

import shutil
import subprocess
import sys

from kit import ROOT
from kit.course import load_course
from kit.instructor.review import review_diff


def test_the_exercise_differs_from_the_solution_in_every_learner_file():
    text = review_diff(ROOT / "exercise", label="exercise")
    for step in load_course().steps:
        assert f"=== Step {step.number}: {step.title} ({step.file}) ===" in text
        assert f"--- solution/{step.file}" in text and f"+++ exercise/{step.file}" in text
    assert "identical to the reference" not in text


def test_a_copy_of_the_solution_is_identical_and_a_missing_file_is_named(tmp_path):
    tree = tmp_path / "alice"
    shutil.copytree(ROOT / "solution", tree)
    (tree / "services" / "shared" / "sampling.py").unlink()
    workflows = tree / "services" / "order_service" / "workflows.py"
    workflows.write_text(workflows.read_text().replace("DELIVERY_DAYS = 5", "DELIVERY_DAYS = 7"))
    text = review_diff(tree, label="alice")
    assert text.count("identical to the reference") == len(load_course().steps) - 2
    assert "not in the submission (alice/services/shared/sampling.py is missing)" in text
    assert "-DELIVERY_DAYS = 5\n+DELIVERY_DAYS = 7\n" in text
    assert "1 line(s) of the learner's, 1 of the reference's" in text


def test_the_command_line_shows_the_diff_and_fails_in_one_line_on_a_bad_target(tmp_path):
    shutil.copytree(ROOT / "exercise", tmp_path / "bob")
    done = subprocess.run([sys.executable, "grade.py", "--diff", "--target", str(tmp_path / "bob")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "+++ " in done.stdout and "=== Step 6" in done.stdout
    bad = subprocess.run([sys.executable, "grade.py", "--diff", "--target", str(tmp_path / "nobody")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
