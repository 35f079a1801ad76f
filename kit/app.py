"""What `python grade.py` does, once its arguments are parsed: resolve the target, run the
checks in a child process, and print or write the report. Every failure of the grader itself is
one line on stderr and exit code 2."""
from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from kit import ROOT
from kit.course import load_course
from kit.runner import GradingError, run_checks
from kit.targets import TargetError, resolve_target


def _valid_only(only: str | None) -> None:
    if only is None:
        return
    course = load_course()
    if only not in {str(s.number) for s in course.steps} | {c.id for c in course.criteria}:
        known = ", ".join([str(s.number) for s in course.steps] + [c.id for c in course.criteria])
        raise TargetError(f"--only {only}: not a step or criterion; use one of {known}")


def grade_command(args: Namespace) -> int:
    console_out = sys.stdout
    try:
        _valid_only(args.only)
        target_path = ROOT / "solution" if args.solution else Path(args.target) if args.target else ROOT / "exercise"
        if args.format == "text" and args.output is None:
            console_out.write(f"Grading {target_path} ...\n")
            console_out.flush()
        with resolve_target(target_path) as target:
            label = target.label if args.target else str(target_path.relative_to(ROOT)) + "/"
            if args.watch:
                return _watch(target.path, label, args)
            report = run_checks(target.path, only=args.only, check_timeout_s=args.timeout)
    except (TargetError, GradingError) as exc:
        sys.stderr.write(f"grade.py: {exc}\n")
        return 2
    if args.format == "text":
        from rich.console import Console

        from kit.scorecard import print_scorecard

        if args.output:
            with open(args.output, "w", encoding="utf-8") as handle:
                print_scorecard(report, verbose=args.verbose, tree_label=label,
                                console=Console(file=handle, width=100, no_color=True))
        else:
            print_scorecard(report, verbose=args.verbose, tree_label=label)
    else:
        from kit.formats import FORMATS

        text = FORMATS[args.format](report)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            console_out.write(text)
    return 0 if report.all_passed else 1


def _watch(tree: Path, label: str, args: Namespace) -> int:
    from rich.console import Console

    from kit.scorecard import print_scorecard
    from kit.watch import watch

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
        watch(tree, lambda: run_checks(tree, only=args.only, check_timeout_s=args.timeout), show)
    except KeyboardInterrupt:
        return 0
    return 0
