"""Grading a whole class: `python grade.py --batch DIR --output OUT [--jobs N]`.

`DIR` holds one submission per learner, each a folder or a `.zip` (as `--target` takes them),
named after the learner (`alice/`, `bob.zip`). Only each submission's learner files count: they
are laid over the kit's own provided code (`kit.grading.submission.prepare`, the policy of every
way of grading), and a provided file that differs is named in the report. Every submission is
graded in its own temporary copy and its own grading child, forked from one warm parent (`kit.grading.runner.Zygote`), so no
submission pays the interpreter's start-up and none can see another's state; `--jobs` of them at
a time (default: the number of cores), in name order. A submission stuck in a loop gets the
lowest CPU priority after a couple of seconds and stops counting against `--jobs`, so it never
holds the others up. The checks are always the kit's own.

Into `OUT` go:

- `gradebook.csv`: one row per learner: `learner`, `score`, `max_score`, one column per success
  criterion (its points), `checks_passed`, `checks_total`, `status` and `reason`, `report`;
- `<learner>.json`: that learner's full report (the kit's JSON format, `kit.formats.json_format`);
- `summary.txt`: what is printed at the end: the score distribution, the checks most learners
  fail, and every submission that was flagged or could not be graded.

`status` is `graded`; `flagged` when the report carries warnings (the code graded tampered with
the grading, see `kit.grading.integrity`); or `invalid` when the submission could not be graded at all
(not a zip, no `services/` folder, ...): it then gets 0 points and the reason. A submission that
crashes, hangs or times out is still graded: the checks it broke fail with the reason, the others
count, and it never stops or holds up the rest of the batch.

**Earlier results are never lost.** When `OUT` already holds results of an earlier run (its
`gradebook.csv`, `summary.txt` and the reports that gradebook names), they are moved into
`OUT/previous/<date-time>/` before grading starts, and the summary says so; anything else in
`OUT` (an instructor's `roster.json`) stays where it is, and `previous/` is never taken for a
learner.

Each report file is written (atomically) once every process of its submission is gone; after
the last submission the warm parent and everything it started are ended, every report is
compared with what was written (one that changed is written again and listed in the summary),
and only then are the gradebook and the summary written. In the sandbox no submission can see
`OUT` at all.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from kit.formats.gradebook import GRADEBOOK, SUMMARY, gradebook_csv, summary_text
from kit.formats.json_format import to_json
from kit.grading.runner import DEFAULT_CHECK_TIMEOUT_S, GradingError, Zygote, run_checks
from kit.grading.submission import TargetError, prepare
from kit.grading.zygote import is_unsandboxed_note
from kit.results import BatchResult, Cause, CheckInfo, GradeReport, Graded, Status

#: The kit's own outputs in `OUT` (with the reports its gradebook names): what a new run archives.
OUTPUTS = (GRADEBOOK, SUMMARY)

#: A whole submission may take at most this long, however many checks time out.
DEFAULT_SUBMISSION_TIMEOUT_S = 180.0


class BatchError(ValueError):
    """The batch cannot start (bad folder, bad output folder); the message says what to do."""


@dataclass(frozen=True)
class Submission:
    learner: str
    path: Path


# -- finding the submissions -------------------------------------------------------------------

def find_submissions(folder: Path, *, exclude: Path | None = None) -> tuple[list[Submission], list[str]]:
    """The submissions in `folder` (sorted by learner) and the entries that are not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchError(f"{folder}: no such folder; --batch takes a folder of submissions (folders or .zip files)")
    found: dict[str, Submission] = {}
    skipped = []
    same = exclude is not None and folder.resolve() == Path(exclude).resolve()
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or (exclude is not None and entry.resolve() == Path(exclude).resolve()):
            continue
        if same and (entry.name == "previous" or entry.name in OUTPUTS):
            continue  # the kit's own outputs, graded into the class folder itself
        if entry.is_dir():
            name = entry.name
        elif entry.suffix.lower() == ".zip":
            name = entry.stem
        else:
            skipped.append(f"{entry.name}: not a folder or a .zip")
            continue
        if name in found:  # alice/ and alice.zip: keep both, told apart by their file name
            name = entry.name
        found[name] = Submission(name, entry)
    return sorted(found.values(), key=lambda s: s.learner.lower()), skipped


def safe_name(learner: str) -> str:
    """A file name for a learner's report: letters, digits, `.`, `-`, `_` only."""
    name = re.sub(r"[^\w.-]+", "_", learner).strip("._") or "learner"
    return name[:100]


# -- grading one ---------------------------------------------------------------------------------

def grade_submission(submission: Submission, zygote: Zygote, *, check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
                     total_timeout_s: float = DEFAULT_SUBMISSION_TIMEOUT_S,
                     on_stuck: Callable[[], None] | None = None) -> Graded:
    """Grade one submission in a private copy; never raises for the submission's faults."""
    started = time.monotonic()
    try:
        with prepare(submission.path) as prepared:
            report = run_checks(prepared.path, check_timeout_s=check_timeout_s, total_timeout_s=total_timeout_s,
                                zygote=zygote, on_stuck=on_stuck)
        report = GradeReport(target=str(submission.path), checks=report.checks,
                             warnings=(*prepared.warnings, *report.warnings))
        status = "flagged" if _flags(report) else "graded"
        reason = _reason(report)
    except (TargetError, GradingError) as exc:
        report = not_graded(zygote.checks, str(submission.path), str(exc))
        status, reason = "invalid", str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd submission must not stop the class
        reason = f"the grader failed on this submission ({type(exc).__name__}: {exc}); grade it alone with --target"
        report = not_graded(zygote.checks, str(submission.path), reason)
        status = "invalid"
    return Graded(submission.learner, str(submission.path), report, status, reason, time.monotonic() - started)


def not_graded(checks: list[CheckInfo], target: str, reason: str) -> GradeReport:
    """A report in which every check failed because the submission could not be graded."""
    results = tuple(c.result(Status.FAILED, f"not graded: {reason}", Cause.NOT_GRADED) for c in checks)
    return GradeReport(target=target, checks=results, warnings=(f"not graded: {reason}",))


def _flags(report: GradeReport) -> list[str]:
    """The warnings worth an instructor's look (not the note that the run was unsandboxed)."""
    return [w for w in report.warnings if not is_unsandboxed_note(w)]


def _reason(report: GradeReport) -> str:
    """A short line for the gradebook: what went wrong beyond failed checks."""
    parts = []
    causes = [c.cause for c in report.checks if not c.passed]
    timed_out, crashed, not_run = (causes.count(Cause.TIMEOUT), causes.count(Cause.CRASH),
                                   causes.count(Cause.NOT_RUN))
    if timed_out:
        parts.append(f"{timed_out} check(s) timed out")
    if crashed:
        parts.append(f"{crashed} check(s) crashed the process")
    if not_run:
        parts.append(f"{not_run} check(s) not run (time limit)")
    flags = _flags(report)
    if flags:
        first = flags[0]
        first = first if len(first) <= 160 else first[:157] + "..."
        more = f" (and {len(flags) - 1} more warning(s))" if len(flags) > 1 else ""
        parts.append(f"{first}{more}; see the report")
    return "; ".join(parts)


# -- the whole class ---------------------------------------------------------------------------

def grade_batch(folder: Path, output: Path, *, jobs: int | None = None,
                check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
                total_timeout_s: float = DEFAULT_SUBMISSION_TIMEOUT_S,
                on_start: Callable[[int], None] | None = None,
                on_graded: Callable[[Graded], None] | None = None,
                zygote: Zygote | None = None) -> BatchResult:
    """Grade every submission in `folder` into `output` (see the module doc). `zygote`: a warm
    parent to use (default: a fresh one for this batch, closed at the end)."""
    started = time.monotonic()
    folder, output = Path(folder), Path(output)
    if output.exists() and not output.is_dir():
        raise BatchError(f"--output {output}: exists and is not a folder; give a folder for the gradebook")
    submissions, skipped = find_submissions(folder, exclude=output)
    if not submissions:
        raise BatchError(f"{folder}: no submissions inside (one folder or .zip per learner)")
    jobs = max(1, jobs or os.cpu_count() or 1)
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / f".grade-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BatchError(f"--output {output}: cannot write there ({exc.strerror or exc})") from None
    archived = _archive_earlier_results(output)
    written: dict[Path, bytes] = {}
    own = zygote is None
    zygote = zygote or Zygote()
    results: list[Graded] = []
    if on_start:
        on_start(len(submissions))
    try:
        for graded in _schedule(submissions, jobs, lambda sub, stuck: grade_submission(
                sub, zygote, check_timeout_s=check_timeout_s, total_timeout_s=total_timeout_s, on_stuck=stuck)):
            graded.report_file = _report_name(graded.learner, results)
            results.append(graded)
            _write(output / graded.report_file, to_json(graded.report).encode(), written)
            if on_graded:
                on_graded(graded)
    except KeyboardInterrupt:
        if own:
            zygote.abandon()
        raise
    finally:
        if own:
            zygote.close()  # every process any submission started is gone after this
    results.sort(key=lambda g: g.learner.lower())
    batch = BatchResult(results, output, time.monotonic() - started, jobs, skipped, archived)
    _write(output / GRADEBOOK, gradebook_csv(results).encode(), written)
    batch.rewritten = [str(p.name) for p, data in written.items() if _read(p) != data]
    for path in batch.rewritten:
        (output / path).write_bytes(written[output / path])
    _write(output / SUMMARY, summary_text(batch).encode(), written)
    return batch


def _schedule(submissions: list[Submission], jobs: int,
              grade: Callable[[Submission, Callable[[], None]], Graded]) -> Iterator[Graded]:
    """Grade the submissions in order, `jobs` at a time, yielding each result as it comes.

    A submission stuck in a loop (its child was given the lowest CPU priority, see
    `kit.grading.runner.RENICE_AFTER_S`) stops counting against `jobs`: the next one starts, and the
    stuck one only uses the CPU the others leave."""
    pending = deque(submissions)
    done: deque[Graded] = deque()
    cond = threading.Condition()
    counted: dict[int, bool] = {}
    active = running = 0

    def work(number: int, submission: Submission) -> None:
        nonlocal active, running

        def stuck() -> None:
            nonlocal active
            with cond:
                if counted[number]:
                    counted[number] = False
                    active -= 1
                    cond.notify_all()

        try:
            graded = grade(submission, stuck)
        finally:
            with cond:
                if counted[number]:
                    active -= 1
                running -= 1
                cond.notify_all()
        with cond:
            done.append(graded)
            cond.notify_all()

    threads = []
    number = 0
    with cond:
        while pending or running or done:
            while pending and active < jobs:
                counted[number] = True
                active, running = active + 1, running + 1
                thread = threading.Thread(target=work, args=(number, pending.popleft()), name=f"grade-{number}")
                thread.start()
                threads.append(thread)
                number += 1
            while done:
                graded = done.popleft()
                cond.release()
                try:
                    yield graded
                finally:
                    cond.acquire()
            if pending or running:
                cond.wait(0.5)
    for thread in threads:
        thread.join()


def _report_name(learner: str, done: list[Graded]) -> str:
    taken = {g.report_file for g in done}
    name, n = f"{safe_name(learner)}.json", 2
    while name in taken or name in (GRADEBOOK, SUMMARY):
        name, n = f"{safe_name(learner)}-{n}.json", n + 1
    return name


def _write(path: Path, data: bytes, written: dict[Path, bytes]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    written[path] = data


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _archive_earlier_results(output: Path) -> Path | None:
    """Move the results of an earlier run out of the way (never delete them): its gradebook, its
    summary and the reports that gradebook names; nothing else."""
    earlier = [output / name for name in (GRADEBOOK, SUMMARY) + tuple(_reports_named(output / GRADEBOOK))]
    earlier = [p for p in dict.fromkeys(earlier) if p.is_file() and not p.is_symlink()]
    if not earlier:
        return None
    archive = output / "previous" / datetime.now().strftime("%Y%m%d-%H%M%S")
    n = 2
    while archive.exists():
        archive = archive.with_name(f"{archive.name.split('~')[0]}~{n}")
        n += 1
    archive.mkdir(parents=True)
    for path in earlier:
        shutil.move(str(path), archive / path.name)
    return archive


def _reports_named(gradebook: Path) -> list[str]:
    """The report files an earlier gradebook lists (plain file names only)."""
    import csv

    try:
        with open(gradebook, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    names = [(row.get("report") or "").strip() for row in rows]
    return [n for n in names if n and n == Path(n).name and n.endswith(".json") and n not in OUTPUTS]


