"""The grading child process: `python -m kit.child --target T --events FILE [...]`.

Runs the kit's own checks (never a target's) on tree T with `kit.plugin.Recorder`, writing
events to FILE. The parent (`kit.runner`) starts it, follows the events, and restarts it without
the checks already done if it dies.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"

import pytest  # noqa: E402

from kit import ROOT  # noqa: E402
from kit.plugin import Recorder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit.child")
    parser.add_argument("--target", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--deselect", action="append", default=[])
    parser.add_argument("--only", default=None, help="a step number or a criterion id")
    parser.add_argument("--only-nodeids", nargs="*", default=None)
    args = parser.parse_args(argv)

    checks = ROOT / "checks"
    paths = args.only_nodeids if args.only_nodeids else [str(checks)]
    pytest_args = [*[p if os.path.isabs(p.split("::")[0]) else str(ROOT / p) for p in paths],
                   "-c", str(checks / "pytest.ini"), "--rootdir", str(ROOT),
                   "--target", args.target, "-p", "no:terminal", "-p", "no:cacheprovider",
                   "-p", "no:randomly", "--capture=fd"]
    for nodeid in args.deselect:
        pytest_args += ["--deselect", nodeid]
    return pytest.main(pytest_args, plugins=[Recorder(Path(args.events), args.timeout, args.only)])


if __name__ == "__main__":
    sys.exit(main())
