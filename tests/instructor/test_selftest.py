"""The catalogue of broken solutions (selftest/): every mutant costs exactly the criteria its
manifest names, and every check is made to fail by at least one mutant."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from kit import ROOT
from kit.instructor.selftest import CATALOGUE, CatalogueError, apply_patch, load_catalogue, parse_mutant, run_selftest
from kit.grading.runner import shared_zygote

MUTANTS = sorted(p.stem for p in CATALOGUE.glob("*.patch"))


@pytest.fixture(scope="module")
def selftest():
    return run_selftest(jobs=2, check_timeout_s=10, zygote=shared_zygote())


def test_the_solution_passes_so_the_rest_means_something(selftest):
    assert selftest.baseline.all_passed, [c.id for c in selftest.baseline.failed]


@pytest.mark.parametrize("name", MUTANTS)
def test_each_mutant_costs_exactly_its_criteria(selftest, name):
    outcome = next(o for o in selftest.outcomes if o.mutant.name == name)
    assert not outcome.problem, outcome.problem
    assert not outcome.unexpected_loss, (
        f"{name} also cost {outcome.unexpected_loss}: "
        f"{[c.id for c in outcome.report.failed if c.criterion in outcome.unexpected_loss]}")
    assert not outcome.missed_loss, f"{name} was not caught by any check of {outcome.missed_loss}"
    assert not outcome.missed_checks, f"{name}: these checks should fail and passed: {outcome.missed_checks}"


def test_every_check_is_killed_by_some_mutant(selftest):
    assert not selftest.survivors
    assert selftest.check_kill_rate == 1.0 and selftest.mutant_kill_rate == 1.0
    assert selftest.size >= len(selftest.checks) * 0.9


def test_every_mutant_names_checks_that_exist(selftest):
    known = set(selftest.checks)
    for mutant in load_catalogue():
        assert mutant.checks, f"{mutant.name}: name the checks it targets (checks = [...])"
        assert set(mutant.checks) <= known, (mutant.name, set(mutant.checks) - known)
        assert mutant.description, mutant.name


def test_a_stale_mutant_says_which_hunk_no_longer_applies(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "solution", tree)
    mutant = load_catalogue(names=["tracestate-dropped"])[0]
    (tree / "services" / "shared" / "trace_context.py").write_text("# rewritten\n")
    with pytest.raises(CatalogueError, match="hunk 1 of services/shared/trace_context.py no longer applies"):
        apply_patch(mutant.patch, tree, name="tracestate-dropped.patch")


def test_the_manifest_is_checked(tmp_path):
    bad = tmp_path / "bad.patch"
    bad.write_text('lose = ["speed"]\n\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n')
    with pytest.raises(CatalogueError, match="unknown criteria"):
        parse_mutant(bad)
    bad.write_text("# no manifest at all\n")
    with pytest.raises(CatalogueError, match="no diff"):
        parse_mutant(bad)
    with pytest.raises(CatalogueError, match="no mutant called nope"):
        load_catalogue(names=["nope"])


def test_the_command_line_prints_the_size_and_kill_rate():
    done = subprocess.run([sys.executable, "grade.py", "--selftest", "--mutant", "b3-single-not-accepted",
                           "--mutant", "tail-drops-errors", "--jobs", "2"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Catalogue: 2 mutants; 2/2 detected (100%)" in done.stdout, done.stdout
    assert "checks killed by at least one mutant" in done.stdout
