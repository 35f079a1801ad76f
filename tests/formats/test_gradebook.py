"""What `--batch` writes besides the reports (kit/formats/gradebook.py): the gradebook and the
summary, pure functions of a `BatchResult`, checked byte for byte against golden files.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 python -m pytest
tests/formats/test_gradebook.py`, then read the diff.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from kit.course import load_course
from kit.formats.gradebook import GRADEBOOK, SUMMARY, distribution, gradebook_csv, most_failed, summary_text
from kit.results import BatchResult, Cause, CheckInfo, GradeReport, Graded, Status

GOLDEN = Path(__file__).parent / "golden"

#: Two checks per criterion, the steps spread over them (hand-made: the real checks may change).
CHECKS = tuple(
    CheckInfo(nodeid=f"checks/test_{criterion.id.replace('-', '_')}.py::test_{n}", id=f"{criterion.id}-{n}",
              title=f"{criterion.title}, check {n}", step=1 + (i + n) % 6, criterion=criterion.id)
    for i, criterion in enumerate(load_course().criteria) for n in (1, 2)) + tuple(
    # and one check for each of three extensions (E4 not graded: its column stays blank)
    CheckInfo(nodeid=f"checks/test_ext_{e.lower()}.py::test_{e.lower()}", id=f"{e.lower()}-1",
              title=f"Extension {e}, check 1", step=None, criterion=None, extension=e)
    for e in ("E1", "E2", "E3"))


def report(target: str, failing: dict[str, Cause] = {}, warnings: tuple[str, ...] = ()) -> GradeReport:
    """A report in which the checks named in `failing` failed for that cause, the others passed."""
    results = []
    for info in CHECKS:
        cause = failing.get(info.id)
        if cause is None:
            results.append(info.result(Status.PASSED))
        elif cause is Cause.NOT_RUN:
            results.append(info.result(Status.ERROR, "the run's time limit was spent first", cause))
        else:
            results.append(info.result(Status.FAILED, f"it {cause.value}", cause))
    return GradeReport(target=target, checks=tuple(results), warnings=warnings)


def sample_batch() -> BatchResult:
    everything = {c.id: Cause.NOT_GRADED for c in CHECKS}
    graded = [
        Graded("alice", "submissions/alice", report("submissions/alice"), "graded", "", 3.25, "grades/alice.json"),
        Graded("bob", "submissions/bob.zip",
               report("submissions/bob.zip", {"context-propagates-1": Cause.FAILED, "sampling-works-2": Cause.TIMEOUT,
                                              "errors-traced-1": Cause.FAILED, "e2-1": Cause.FAILED,
                                              "e3-1": Cause.FAILED}),
               "graded", "1 check(s) timed out", 4.5, "grades/bob.json"),
        Graded("carol", "submissions/carol.zip",
               report("submissions/carol.zip", everything, ("not graded: the zip holds no services/ folder",)),
               "invalid", "submissions/carol.zip: the zip holds no services/ folder; zip the exercise folder itself",
               0.1, "grades/carol.json"),
        Graded("dave", "submissions/dave",
               report("submissions/dave", {"context-propagates-1": Cause.TAMPERED, "errors-traced-2": Cause.NOT_RUN},
                      ("the learner's code replaced part of the grader while it ran: kit.harness.expect.fail",)),
               "flagged", 'the learner\'s code replaced part of the grader, "kit.harness.expect.fail"; see the report',
               5.0, "grades/dave.json"),
        Graded("erin", "submissions/erin",
               report("submissions/erin", {c.id: Cause.FAILED for c in CHECKS if c.criterion != "traces-span-services"}),
               "graded", "", 2.0, "grades/erin.json"),
    ]
    return BatchResult(graded=graded, output=Path("grades"), seconds=14.85, jobs=2,
                       skipped=["notes.txt (not a folder or a .zip)"],
                       archived=Path("grades/previous/2025-01-31T09-30-00"), rewritten=["alice.json"])


@pytest.mark.parametrize("name, render", [(GRADEBOOK, lambda b: gradebook_csv(b.graded)),
                                          (SUMMARY, summary_text)])
def test_matches_its_golden_file(name, render):
    text = render(sample_batch())
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8", newline="")
    assert text == golden.read_bytes().decode("utf-8")


def test_the_gradebook_reads_back_with_a_column_per_criterion():
    batch = sample_batch()
    rows = list(csv.DictReader(io.StringIO(gradebook_csv(batch.graded))))
    criteria = [c.id for c in load_course().criteria]
    assert list(rows[0]) == ["learner", "score", "max_score", *criteria, "checks_passed", "checks_total",
                             "E1", "E2", "E3", "E4", "extensions_passed", "status", "reason", "report"]
    assert [r["learner"] for r in rows] == [g.learner for g in batch.graded]
    for row, graded in zip(rows, batch.graded):
        assert float(row["score"]) == graded.report.score
        assert sum(float(row[c]) for c in criteria) == pytest.approx(graded.report.score)
        assert row["reason"] == graded.reason and row["status"] == graded.status
    assert rows[0]["score"] == "100" and rows[2]["score"] == "0"


def test_the_extensions_are_extra_columns_that_never_change_the_score():
    rows = {r["learner"]: r for r in csv.DictReader(io.StringIO(gradebook_csv(sample_batch().graded)))}
    assert [rows["alice"][e] for e in ("E1", "E2", "E3", "E4")] == ["passed", "passed", "passed", ""]
    assert [rows["bob"][e] for e in ("E1", "E2", "E3", "E4")] == ["passed", "failed", "failed", ""]
    assert (rows["alice"]["extensions_passed"], rows["bob"]["extensions_passed"]) == ("3", "1")
    assert rows["alice"]["score"] == "100" and rows["alice"]["checks_total"] == str(2 * len(load_course().criteria))
    assert "Extensions passed (optional, no points): E1 3/4, E2 2/4, E3 2/4" in summary_text(sample_batch())


def test_a_criterion_without_checks_is_left_blank():
    only_one = GradeReport(target="t", checks=tuple(c.result(Status.PASSED) for c in CHECKS
                                                    if c.criterion == "traces-span-services"))
    row = list(csv.DictReader(io.StringIO(gradebook_csv([Graded("x", "x", only_one, "graded", "", 1.0)]))))[0]
    assert row["traces-span-services"] == "20" and row["context-propagates"] == ""
    assert (row["score"], row["max_score"]) == ("20", "20")


def test_the_distribution_puts_the_maximum_in_the_top_band():
    bands = distribution([0, 9.99, 10, 55, 100, 100], 100)
    assert bands[0] == ("0-10", 2) and bands[1] == ("10-20", 1) and bands[5] == ("50-60", 1)
    assert bands[-1] == ("90-100", 2) and sum(n for _, n in bands) == 6


def test_most_failed_ignores_submissions_that_could_not_be_graded():
    ranked = most_failed(sample_batch().graded)
    counts = {check.id: n for n, check in ranked}
    assert counts["context-propagates-1"] == 3        # bob, dave and erin; never carol (invalid)
    assert all(n <= 3 for n in counts.values())
    assert not [c for _, c in ranked if c.extension], "the optional extensions are not what most learners fail"
    assert [n for n, _ in ranked] == sorted((n for n, _ in ranked), reverse=True)


def test_a_summary_of_nothing_is_short():
    text = summary_text(BatchResult(graded=[], output=Path("out"), seconds=0.0, jobs=1))
    assert text == ("Graded 0 submissions in 0.0 s (1 at a time): 0 graded, 0 flagged, 0 not gradable\n\n"
                    "Gradebook: out/gradebook.csv; one JSON report per learner in out/\n")
