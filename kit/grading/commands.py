"""What `python grade.py` does, once its arguments are parsed: resolve the target, run the
checks in a child process, and print or write the report. Every failure of the grader itself is
one line on stderr and exit code 2."""
from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path

from kit import ROOT
from kit.course import load_course
from kit.grading.runner import GradingError, run_checks
from kit.grading.submission import TargetError, prepare, resolve_target
from kit.results import GradeReport


#: One grading child per core for a single tree (the checks are independent).
CORES = max(1, min(os.cpu_count() or 1, 4))


def _valid_only(only: str | None) -> None:
    if only is None:
        return
    course = load_course()
    extensions = [e.id for e in course.extensions]
    if only not in {str(s.number) for s in course.steps} | {c.id for c in course.criteria} \
            and only.lower() not in {e.lower() for e in extensions}:
        known = ", ".join([str(s.number) for s in course.steps] + [c.id for c in course.criteria] + extensions)
        raise TargetError(f"--only {only}: not a step, criterion or extension; use one of {known}")


def grade_command(args: Namespace) -> int:
    if getattr(args, "batch", None):
        return batch_command(args)
    if getattr(args, "selftest", False):
        return selftest_command(args)
    if getattr(args, "package", None):
        return package_command(args)
    if getattr(args, "diff", False):
        return diff_command(args)
    if getattr(args, "release", None):
        return release_command(args)
    console_out = sys.stdout
    try:
        _valid_only(args.only)
        target_path = ROOT / "solution" if args.solution else Path(args.target) if args.target else ROOT / "exercise"
        label = args.target if args.target else str(target_path.relative_to(ROOT)) + "/"
        if args.format == "text" and args.output is None:
            console_out.write(f"Grading {target_path} ...\n")
            console_out.flush()
        if args.watch:
            with resolve_target(target_path, label=label) as target:
                return _watch(target.path, label, args)
        report = grade_tree(target_path, label, only=args.only, check_timeout_s=args.timeout)
    except (TargetError, GradingError) as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    except KeyboardInterrupt:
        from kit.grading.processes import remove_temporary

        remove_temporary()
        sys.stderr.write("grade.py: interrupted\n")
        return 130
    if args.format == "text":
        from rich.console import Console

        from kit.formats.scorecard import print_scorecard

        if args.output:
            import io

            handle = io.StringIO()
            print_scorecard(report, verbose=args.verbose, tree_label=label,
                            console=Console(file=handle, width=100, no_color=True))
            write_atomically(Path(args.output), handle.getvalue())
        else:
            print_scorecard(report, verbose=args.verbose, tree_label=label)
    else:
        from kit.formats import FORMATS

        text = FORMATS[args.format](report)
        if args.output:
            write_atomically(Path(args.output), text)
        else:
            console_out.write(text)
    return 0 if report.all_passed else 1


def grade_tree(source: Path, label: str, **options) -> GradeReport:
    """Grade `source` (a folder or a .zip) by the kit's one policy (`kit.grading.submission.prepare`:
    its learner files over the kit's provided code); the report is called `label` and carries
    what did not count."""
    with prepare(source, label=label) as prepared:
        report = run_checks(prepared.path, split=CORES, **options)
    return GradeReport(target=label, checks=report.checks, warnings=(*prepared.warnings, *report.warnings))


def write_atomically(path: Path, text: str) -> None:
    """Write `path` whole or not at all (a temporary file beside it, then a rename)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _watch(tree: Path, label: str, args: Namespace) -> int:
    from rich.console import Console

    from kit.formats.scorecard import print_scorecard
    from kit.grading.watch import watch

    console = Console()

    def show(report, fixed, broken):
        console.clear()
        print_scorecard(report, verbose=args.verbose, tree_label=label, console=console)
        for title in fixed:
            console.print(f"[bold green]newly passing:[/] {title}")
        for title in broken:
            console.print(f"[bold red]newly failing:[/] {title}")
        console.print("[dim]watching the learner files; save one to grade again, Ctrl-C to stop[/]")

    try:
        watch(tree, lambda: grade_tree(tree, label, only=args.only, check_timeout_s=args.timeout), show)
    except KeyboardInterrupt:
        return 0
    return 0


# -- for instructors -----------------------------------------------------------------------------

def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def batch_command(args: Namespace) -> int:
    """`--batch DIR --output OUT`: grade a class, with a progress bar, then the summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kit.instructor.batch import BatchError, grade_batch

    bar = Progress(TextColumn("[bold]grading[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.description}"), console=Console(stderr=True), transient=False)
    task = None

    def started(total: int) -> None:
        nonlocal task
        task = bar.add_task("", total=total)

    def graded(one) -> None:
        mark = {"graded": "", "flagged": " (flagged)", "invalid": " (not gradable)"}[one.status]
        bar.update(task, advance=1, description=f"{one.learner}: {one.report.score:g}{mark}")

    try:
        with bar:
            result = grade_batch(Path(args.batch), Path(args.output), jobs=args.jobs or _cores(),
                                 check_timeout_s=args.timeout, on_start=started, on_graded=graded)
    except (BatchError, GradingError) as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    except KeyboardInterrupt:  # the reports written so far stay; the grading children go with us
        from kit.grading.processes import remove_temporary
        from kit.grading.zygote import abandon_shared

        abandon_shared()
        remove_temporary()  # no temporary folder is left behind
        sys.stderr.write(f"grade.py: interrupted; the reports of the learners graded so far are in {args.output}\n")
        sys.stderr.flush()
        os._exit(130)
    from kit.formats.gradebook import summary_text

    sys.stdout.write(summary_text(result))
    return 0


def selftest_command(args: Namespace) -> int:
    """`--selftest`: grade the catalogue of broken solutions and say what each check catches."""
    from kit.instructor.selftest import CatalogueError, print_selftest, run_selftest

    try:
        outcome = run_selftest(names=args.mutant, jobs=args.jobs or _cores(), check_timeout_s=args.timeout)
    except (CatalogueError, GradingError) as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    print_selftest(outcome)
    return 0 if outcome.ok else 1


def package_command(args: Namespace) -> int:
    """`--package gradescope [--output ZIP]`: build the platform's autograder package."""
    from kit.instructor.package import PackageError, build_gradescope

    try:
        path = build_gradescope(Path(args.output) if args.output else None)
    except PackageError as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    sys.stdout.write(f"Gradescope autograder: {path}\n"
                     "Upload it as the assignment's autograder (configuration: zip file upload).\n")
    return 0


def release_command(args: Namespace) -> int:
    """`--release OUT`: the learner release of the kit (no solution/, no selftest/)."""
    from kit.instructor.release import ON_PURPOSE, ReleaseError, build_release

    try:
        out = build_release(Path(args.release))
    except (ReleaseError, OSError) as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    sys.stdout.write(f"Learner release: {out}\n"
                     "No solution/, selftest/, tests/ or benchmarks/; learners install it with "
                     "`pip install -e .` and grade with `python grade.py`.\n")
    for path, why in ON_PURPOSE.items():
        sys.stdout.write(f"Note: {path} is in it on purpose ({why}).\n")
    return 0


def diff_command(args: Namespace) -> int:
    """`--diff --target PATH`: each learner file of PATH as a unified diff against solution/."""
    from kit.instructor.review import review_diff

    try:
        with resolve_target(Path(args.target) if args.target else ROOT / "exercise") as target:
            text = review_diff(target.path, label=target.label if args.target else "exercise/")
    except TargetError as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    elif sys.stdout.isatty():
        from rich.console import Console
        from rich.syntax import Syntax

        Console().print(Syntax(text, "diff", theme="ansi_dark", word_wrap=False))
    else:
        sys.stdout.write(text)
    return 0
