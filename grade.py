"""Grade your work on the distributed tracing exercise.

    python grade.py                      grade exercise/ (your work)
    python grade.py --only 2             grade one step (or one criterion: --only context-propagates)
    python grade.py --solution           grade the reference solution
    python grade.py --target PATH        grade another copy of exercise/, or a .zip of one
    python grade.py --format json        also: junit, gradescope, exercism (--output FILE)
    python grade.py --verbose            list the passing checks too
    python grade.py --watch              re-grade every time you save a learner file

Exit codes: 0 every check passed, 1 some check failed, 2 the grader could not run.
"""
from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--only", help="grade one step (1-6) or one criterion id")
    parser.add_argument("--format", choices=["text", "json", "junit", "gradescope", "exercism"], default="text")
    parser.add_argument("--output", help="write the report there instead of printing it")
    parser.add_argument("--verbose", "-v", action="store_true", help="show passing checks too")
    parser.add_argument("--watch", action="store_true", help="re-grade whenever a learner file changes (Ctrl-C stops)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds each check may take (default 10)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from kit.app import grade_command

    return grade_command(args)


if __name__ == "__main__":
    sys.exit(main())
