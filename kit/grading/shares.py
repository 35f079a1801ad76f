"""How `grade.py` shares one tree's checks among its grading children, one per core.

The children start together, so the grading ends when the slower one does: the shares should
take the same time. `split(checks, n)` gives whole check modules to the shares (a child then
collects and warms up only its own modules), the largest first, each to the share expected to
end first, and keeps the checks' order within each share. It never depends on the run: the same checks always go to the same child in
the same order, so a learner's code that behaves differently after some other check still gets
the same grade every time.

The expected times are measured on the reference answer (`check_costs.json` beside this
module, milliseconds per check): after adding checks, or changing what one does, measure
again with

    python -m kit.grading.shares        (three runs of the reference; about 10 s)

A check with no measure counts as the median one, so a stale file only costs balance, never a
verdict (`tests/grading/test_shares.py` says when it is stale).
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence, TypeVar

from kit import ROOT

COSTS = Path(__file__).with_name("check_costs.json")

T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def costs() -> dict[str, float]:
    """Milliseconds per check node id, as last measured (empty when the file is missing or bad)."""
    try:
        data = json.loads(COSTS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def split(checks: Sequence[T], n: int, measured: dict[str, float] | None = None) -> list[list[T]]:
    """`checks` (anything with a `nodeid`) in at most `n` shares of about equal expected time,
    whole check modules to a share (the largest first, each to the share expected to end
    first), each share in the checks' own order. With fewer modules than `n`, checks are shared
    one by one instead. Never an empty share; at least one."""
    measured = costs() if measured is None else measured
    default = statistics.median(measured.values()) if measured else 1.0
    cost = {check.nodeid: measured.get(check.nodeid, default) for check in checks}
    order = {check.nodeid: i for i, check in enumerate(checks)}
    groups: dict[str, list[T]] = {}
    for check in checks:
        groups.setdefault(check.nodeid.split("::")[0], []).append(check)
    units = list(groups.values()) if len(groups) >= n else [[check] for check in checks]
    shares: list[list[T]] = [[] for _ in range(max(1, min(n, len(units))))]
    load = [0.0] * len(shares)
    weighed = [(sum(cost[c.nodeid] for c in unit), unit) for unit in units]
    for took, unit in sorted(weighed, key=lambda w: -w[0]):  # stable: ties keep their order
        least = load.index(min(load))
        shares[least] += unit
        load[least] += took
    return [sorted(share, key=lambda c: order[c.nodeid]) for share in shares if share] or [[]]


# -- measuring (maintainers) -------------------------------------------------------------------

class _Timer:
    """A pytest plugin: the wall time of each check, setup and teardown included."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def pytest_runtest_logstart(self, nodeid, location):  # noqa: ARG002 - pytest's signature
        self._start = time.perf_counter()

    def pytest_runtest_logfinish(self, nodeid, location):  # noqa: ARG002
        self.times[nodeid] = round((time.perf_counter() - self._start) * 1000, 1)


def measure(target: Path = ROOT / "solution") -> dict[str, float]:
    """Grade `target` as a grading child does (warmed up, then forked, with its Recorder and
    its interpreter settings: `kit.child.main`) and time every check, in the order of a grading.
    A check that is the first to need something (a module to import, a case file to read)
    pays for it, as it does in a grading child; only what every child pays whatever its share
    (pytest's start, the learner's modules, the first mesh) is left out: the first check's
    time is that of a second run in the same child."""
    import gc
    import tempfile

    from kit.child.main import tune_interpreter
    from kit.grading.warm_parent import _warm_up

    _warm_up()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="workshop-costs-") as scratch:
        out = Path(scratch) / "times.json"
        pid = os.fork()
        if pid == 0:  # the child: copy-on-write of the warm heap costs what it costs in grading
            code = 1
            try:
                tune_interpreter()
                first = _timed(target, None, Path(scratch) / "events-first")
                opening = next(iter(first))
                again = _timed(target, [opening], Path(scratch) / "events-again")   # now warm
                out.write_text(json.dumps({**first, opening: again[opening]}), encoding="utf-8")
                code = 0
            finally:
                os._exit(int(code))
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the reference did not pass every check (exit status {os.waitstatus_to_exitcode(status)}): "
                             "nothing measured")
        return json.loads(out.read_text(encoding="utf-8"))


def _timed(target: Path, nodeids: list[str] | None, events: Path) -> dict[str, float]:
    """Run the checks (`nodeids`, or all) on `target` in this process with the Recorder on; the
    time of each. Raises SystemExit when one does not pass."""
    import pytest

    from kit.child.main import pytest_args
    from kit.child.recorder import Recorder

    timer = _Timer()
    recorder = Recorder(events, 10.0, key=os.urandom(16))
    code = pytest.main(pytest_args({"target": str(target), "nodeids": nodeids}), plugins=[recorder, timer])
    if code != 0:
        raise SystemExit(code)
    return timer.times


def main(argv: list[str]) -> int:
    """`python -m kit.grading.shares`: measure three times, each in a fresh process, and write
    the median of each check into `check_costs.json`. (`--once OUT`: one measure, into OUT.)"""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    if argv[:1] == ["--once"]:
        Path(argv[1]).write_text(json.dumps(measure()), encoding="utf-8")
        return 0
    import subprocess
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory(prefix="workshop-costs-") as scratch:
        for i in range(3):
            out = Path(scratch) / f"{i}.json"
            subprocess.run([sys.executable, "-m", "kit.grading.shares", "--once", str(out)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            runs.append(json.loads(out.read_text(encoding="utf-8")))
    times = {nodeid: statistics.median(run.get(nodeid, 0.0) for run in runs) for nodeid in runs[0]}
    COSTS.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"measured {len(times)} checks ({sum(times.values()) / 1000:.2f} s in all, the median of 3 runs) "
          f"into {COSTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
