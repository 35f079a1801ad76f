"""What `--batch` writes besides one JSON report per learner: the gradebook (`gradebook.csv`) and
the summary (`summary.txt`), each a pure function of the batch's results (`kit.results`)."""
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
    criteria = [c.id for c in load_course().criteria]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["learner", "score", "max_score", *criteria, "checks_passed", "checks_total",
                     "status", "reason", "report"])
    for g in results:
        by_id = {c.id: c for c in g.report.criteria}
        writer.writerow([g.learner, f"{g.report.score:g}", g.report.max_score,
                         *[f"{by_id[c].score:g}" if by_id[c].total else "" for c in criteria],
                         sum(c.passed for c in g.report.checks), len(g.report.checks),
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
    """The checks most learners fail (ignoring submissions that could not be graded)."""
    graded = [g for g in results if g.status != "invalid"]
    counts: dict[str, int] = {}
    sample: dict[str, CheckResult] = {}
    for g in graded:
        for c in g.report.checks:
            sample.setdefault(c.id, c)
            if not c.passed:
                counts[c.id] = counts.get(c.id, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [(n, sample[check_id]) for check_id, n in ranked]


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
