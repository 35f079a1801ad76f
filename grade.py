"""Grade your work on the distributed tracing exercise.

    python grade.py                      grade exercise/ (your work)
    python grade.py --only 2             grade one step (or one criterion: --only context-propagates)
    python grade.py --only E2            grade one optional extension (E1-E4), outside the points
    python grade.py --solution           grade the reference solution
    python grade.py --target PATH        grade another copy of exercise/, or a .zip of one
    python grade.py --format json        also: junit, gradescope, exercism (--output FILE)
    python grade.py --verbose            list the passing checks too
    python grade.py --watch              re-grade every time you save a learner file

For instructors (see the README's "For instructors"):
    python grade.py --batch DIR --output OUT [--jobs N]   grade a class: a gradebook and one report each
    python grade.py --selftest [--mutant NAME]             prove the checks catch the catalogue of mistakes
    python grade.py --package gradescope [--output ZIP]    build a Gradescope autograder
    python grade.py --diff --target PATH                   a learner's files beside the reference
    python grade.py --release OUT                          the learner release of the kit (no answers)

Exit codes: 0 every check passed, 1 some check failed, 2 the grader could not run.
(--batch: 0 when the batch was graded; --selftest: 0 when every mutant behaves as its manifest says.)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        sys.stderr.write(f"grade.py: {message} (see python grade.py --help)\n")
        raise SystemExit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python grade.py", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--target", help="the tree to grade: a folder laid out like exercise/, or a .zip of one")
    which.add_argument("--solution", action="store_true", help="grade solution/ (the reference answer)")
    parser.add_argument("--only", help="grade one step (1-6), one criterion id or one extension (E1-E4)")
    parser.add_argument("--format", choices=["text", "json", "junit", "gradescope", "exercism"], default="text")
    parser.add_argument("--output", help="write the report there instead of printing it "
                                         "(--batch: the folder for the gradebook; --package: the zip)")
    parser.add_argument("--verbose", "-v", action="store_true", help="show passing checks too")
    parser.add_argument("--watch", action="store_true", help="re-grade whenever a learner file changes (Ctrl-C stops)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds each check may take (default 10)")
    instructor = parser.add_argument_group("for instructors")
    mode = instructor.add_mutually_exclusive_group()
    mode.add_argument("--batch", metavar="DIR", help="grade every submission in DIR (folders or .zip files, "
                                                      "one per learner) into --output OUT")
    mode.add_argument("--selftest", action="store_true", help="grade the catalogue of broken solutions in selftest/")
    mode.add_argument("--package", choices=["gradescope"], help="build an autograder package for that platform")
    mode.add_argument("--diff", action="store_true", help="show each learner file of --target as a diff against solution/")
    mode.add_argument("--release", metavar="OUT", help="build the learner release of the kit into the new folder OUT "
                                                       "(no solution/, no selftest/, nothing that reveals the answer)")
    instructor.add_argument("--jobs", type=int, help="--batch/--selftest: submissions graded at a time (default: cores)")
    instructor.add_argument("--mutant", action="append", help="--selftest: only this mutant (repeatable)")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        parser.error(f"--timeout {args.timeout:g}: give a finite, positive number of seconds")
    if args.batch and not args.output:
        parser.error("--batch needs --output OUT (the folder for the gradebook and the reports)")
    if (args.batch or args.selftest or args.package or args.release) and (args.target or args.solution or args.watch
                                                                           or args.only):
        parser.error("--batch, --selftest, --package and --release take no --target/--solution/--watch/--only")
    if args.release:
        _check_new_folder(parser, Path(args.release))
    elif args.output:
        _check_output(parser, Path(args.output), folder=bool(args.batch))
    if args.diff and (args.solution or args.watch):
        parser.error("--diff shows --target PATH (default exercise/) against solution/")
    return args


def _writable(folder: Path) -> str | None:
    """Why files cannot be made in `folder` (None: they can). Tried for real: permissions say
    nothing about a read-only file system, or to root."""
    if not folder.is_dir():
        return "no such folder" if not folder.exists() else "not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".grade-probe-", dir=folder)
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


def _check_output(parser: _Parser, output: Path, *, folder: bool) -> None:
    """--output is checked before any grading: a folder (--batch) or a file in a folder that exists
    and can be written."""
    if folder:
        if output.exists() and not output.is_dir():
            parser.error(f"--output {output}: exists and is not a folder; --batch writes a folder")
        where = output if output.is_dir() else output.parent
    else:
        if output.is_dir():
            parser.error(f"--output {output}: is a folder; give a file name")
        where = output.parent
    why = _writable(where)
    if why is not None:
        parser.error(f"--output {output}: {where or '.'}: {why}")


def _check_new_folder(parser: _Parser, out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--release {out}: exists and is not an empty folder; give a new folder")
    why = _writable(out.parent)
    if why is not None:
        parser.error(f"--release {out}: {out.parent}: {why}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from kit.grading.commands import grade_command

    return grade_command(args)


if __name__ == "__main__":
    sys.exit(main())
