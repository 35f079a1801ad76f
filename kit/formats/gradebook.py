"""What `--batch` writes besides one JSON report per learner: the gradebook (`gradebook.csv`) and
the summary (`summary.txt`), each a pure function of the batch's results (`kit.results`).

The optional extensions are extra columns after the criteria's (one per extension of the course:
"passed", "failed" or blank when it was not graded, then `extensions_passed`) and one summary line
("Extensions passed: E1 2/5, ..."); they never change `score`."""
from __future__ import annotations

import csv
import io
import statistics

from kit.course import load_course
from kit.results import BatchResult, CheckResult, Graded

GRADEBOOK = "gradebook.csv"
SUMMARY = "summary.txt"


def gradebook_csv(results: list[Graded]) -> str:
    """The gradebook as CSV text (one row per learner, sorted by name)."""
    course = load_course()
    criteria = [c.id for c in course.criteria]
    extensions = [e.id for e in course.extensions]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["learner", "score", "max_score", *criteria, "checks_passed", "checks_total",
                     *extensions, *(["extensions_passed"] if extensions else []), "status", "reason", "report"])
    for g in results:
        by_id = {c.id: c for c in g.report.criteria}
        graded = {e.id: e for e in g.report.extensions}
        verdicts = [("passed" if graded[e].complete else "failed") if e in graded else "" for e in extensions]
        writer.writerow([g.learner, f"{g.report.score:g}", g.report.max_score,
                         *[f"{by_id[c].score:g}" if by_id[c].total else "" for c in criteria],
                         sum(c.passed for c in g.report.step_checks), len(g.report.step_checks),
                         *verdicts, *([sum(v == "passed" for v in verdicts)] if extensions else []),
                         g.status, g.reason, g.report_file])
    return out.getvalue()


def distribution(scores: list[float], max_score: float, buckets: int = 10) -> list[tuple[str, int]]:
    """Scores counted in `buckets` equal bands of the maximum (the top band includes it)."""
    width = max_score / buckets if max_score else 1
    counts = [0] * buckets
    for score in scores:
        counts[min(int(score // width), buckets - 1)] += 1
    return [(f"{i * width:g}-{(i + 1) * width:g}", n) for i, n in enumerate(counts)]


def most_failed(results: list[Graded], top: int = 8) -> list[tuple[int, CheckResult]]:
    """The checks most learners fail (ignoring submissions that could not be graded, and the
    optional extensions' checks)."""
    graded = [g for g in results if g.status != "invalid"]
    counts: dict[str, int] = {}
    sample: dict[str, CheckResult] = {}
    for g in graded:
        for c in g.report.step_checks:
            sample.setdefault(c.id, c)
            if not c.passed:
                counts[c.id] = counts.get(c.id, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [(n, sample[check_id]) for check_id, n in ranked]


def extensions_passed(results: list[Graded]) -> list[tuple[str, int]]:
    """(extension id, how many learners passed it) for each extension graded in the batch
    (ignoring submissions that could not be graded)."""
    graded = [g for g in results if g.status != "invalid"]
    seen = {e.id for g in graded for e in g.report.extensions}
    return [(e.id, sum(any(x.id == e.id and x.complete for x in g.report.extensions) for g in graded))
            for e in load_course().extensions if e.id in seen]


def summary_text(batch: BatchResult) -> str:
    """The end-of-batch summary, as plain text."""
    results = batch.graded
    lines = []
    counts = {s: sum(g.status == s for g in results) for s in ("graded", "flagged", "invalid")}
    lines.append(f"Graded {len(results)} submission{'s' if len(results) != 1 else ''} in {batch.seconds:.1f} s "
                 f"({batch.jobs} at a time): "
                 f"{counts['graded']} graded, {counts['flagged']} flagged, {counts['invalid']} not gradable")
    scores = [g.report.score for g in results]
    max_score = max((g.report.max_score for g in results), default=0)
    if scores:
        lines.append(f"Scores out of {max_score}: mean {statistics.mean(scores):.1f}, "
                     f"median {statistics.median(scores):g}, lowest {min(scores):g}, highest {max(scores):g}")
        lines.append("")
        lines.append("Score distribution")
        bands = distribution(scores, max_score)
        widest = max(n for _, n in bands) or 1
        for band, n in reversed(bands):
            bar = "#" * max(0, round(30 * n / widest))
            lines.append(f"  {band:>9}  {bar:<30} {n}")
    extensions = extensions_passed(results)
    if extensions:
        total = sum(g.status != "invalid" for g in results)
        lines.append("")
        lines.append("Extensions passed (optional, no points): "
                     + ", ".join(f"{e} {n}/{total}" for e, n in extensions))
    failed = most_failed(results)
    if failed:
        total = sum(g.status != "invalid" for g in results)
        lines.append("")
        lines.append("Checks most learners fail")
        for n, check in failed:
            lines.append(f"  {n:>3}/{total}  {check.title}  [step {check.step}, {check.criterion}]")
    trouble = [g for g in results if g.status != "graded" or g.reason]
    if trouble:
        lines.append("")
        lines.append("Worth a look")
        for g in trouble:
            lines.append(f"  {g.learner}: {g.status}; {g.reason or 'see the report'}")
    notes = []
    if batch.archived is not None:
        notes.append(f"The results of the earlier run were moved to {batch.archived}.")
    if batch.rewritten:
        notes.append(f"These report files were changed during the batch (by a submission?) and written again: "
                     f"{', '.join(batch.rewritten)}.")
    for entry in batch.skipped:
        notes.append(f"Skipped {entry}.")
    if notes:
        lines.append("")
        lines += notes
    lines.append("")
    lines.append(f"Gradebook: {batch.output / GRADEBOOK}; one JSON report per learner in {batch.output}/")
    return "\n".join(lines) + "\n"
