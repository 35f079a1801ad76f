"""Run the kit's checks on a target tree in a child process, with time limits.

`run_checks(target)` starts `python -m kit.child` on the target and follows the events it
writes (see `kit.plugin`). The grading process never imports learner code. If the child dies
half-way (the learner's code called `os._exit`, crashed the interpreter or hung in C code past
the limit), the check it was running fails with the reason and a new child runs the checks not
yet done. Whatever happens, every collected check gets a result.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kit import ROOT
from kit.results import CheckResult, GradeReport, Status

DEFAULT_CHECK_TIMEOUT_S = 10.0
DEFAULT_TOTAL_TIMEOUT_S = 300.0


class GradingError(RuntimeError):
    """The grader itself could not run (not the learner's fault); the message says what to do."""


@dataclass
class _Progress:
    checks: dict[str, dict]            # nodeid -> meta, in collection order
    results: dict[str, CheckResult]
    running: str | None = None
    started_at: float = 0.0


def _read_events(path: Path, offset: int, progress: _Progress) -> int:
    with open(path, encoding="utf-8") as handle:
        handle.seek(offset)
        while True:
            line = handle.readline()
            if not line.endswith("\n"):
                return offset
            offset += len(line.encode("utf-8"))
            event = json.loads(line)
            if event["event"] == "collected":
                for meta in event["checks"]:
                    progress.checks.setdefault(meta["nodeid"], meta)
            elif event["event"] == "started":
                progress.running, progress.started_at = event["nodeid"], time.monotonic()
            elif event["event"] == "result":
                meta = progress.checks[event["nodeid"]]
                progress.results[event["nodeid"]] = _result(meta, Status(event["status"]), event["message"])
                progress.running = None


def _result(meta: dict, status: Status, message: str) -> CheckResult:
    return CheckResult(id=meta["id"], title=meta["title"], step=meta["step"], criterion=meta["criterion"],
                       status=status, message=message, todo=meta.get("todo"))


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WORKSHOP_TARGET"))}
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_checks(target: Path, *, only: str | None = None, nodeids: list[str] | None = None,
               check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
               total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S) -> GradeReport:
    """Grade `target` (a tree laid out like exercise/) and return the report."""
    target = Path(target).resolve()
    if not (target / "services").is_dir():
        raise GradingError(f"{target} has no services/ folder: point --target at a copy of exercise/")
    progress = _Progress(checks={}, results={})
    deadline = time.monotonic() + total_timeout_s
    with tempfile.TemporaryDirectory(prefix="workshop-grade-") as scratch:
        events = Path(scratch) / "events.jsonl"
        events.touch()
        attempts = 0
        while True:
            attempts += 1
            done = [n for n in progress.results]
            command = [sys.executable, "-m", "kit.child", "--target", str(target), "--events", str(events),
                       "--timeout", str(check_timeout_s)]
            if only:
                command += ["--only", only]
            if nodeids:
                command += ["--only-nodeids", *nodeids]
            for nodeid in done:
                command += ["--deselect", nodeid]
            log = open(Path(scratch) / f"child-{attempts}.log", "wb")
            child = subprocess.Popen(command, cwd=scratch, env=_child_env(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
            offset = 0 if attempts == 1 else events.stat().st_size
            offset = _follow(child, events, offset, progress, check_timeout_s, deadline)
            log.close()
            _read_events(events, offset, progress)
            if not progress.checks:
                tail = _tail(Path(scratch) / f"child-{attempts}.log")
                raise GradingError(f"the checks could not be collected (the kit's install may be broken): {tail}")
            crashed = progress.running
            if crashed is not None and crashed not in progress.results:
                progress.results[crashed] = _result(progress.checks[crashed], Status.FAILED,
                                                    _crash_reason(child.returncode, check_timeout_s))
                progress.running = None
            missing = [n for n in progress.checks if n not in progress.results]
            if not missing:
                break
            if time.monotonic() >= deadline or attempts > len(progress.checks) + 1:
                for nodeid in missing:
                    progress.results[nodeid] = _result(progress.checks[nodeid], Status.ERROR,
                                                       f"not run: the whole grading run passed its limit of {total_timeout_s:g} s")
                break
    ordered = tuple(progress.results[n] for n in progress.checks)
    return GradeReport(target=str(target), checks=ordered)


def _follow(child: subprocess.Popen, events: Path, offset: int, progress: _Progress,
            check_timeout_s: float, deadline: float) -> int:
    """Read events while the child runs; kill it if a check or the whole run is past its limit."""
    while True:
        finished = child.poll() is not None
        offset = _read_events(events, offset, progress)
        if finished:
            return offset
        now = time.monotonic()
        stuck = progress.running is not None and now - progress.started_at > check_timeout_s + 5
        if stuck or now > deadline:
            child.kill()
            child.wait()
            return _read_events(events, offset, progress)
        time.sleep(0.02)


def _crash_reason(returncode: int | None, check_timeout_s: float) -> str:
    if returncode is not None and returncode < 0:
        return f"timed out after {check_timeout_s:g} s (the check had to be stopped from outside)" \
            if returncode == -9 else f"the check's process was killed by signal {-returncode}"
    return (f"the check's process exited with code {returncode} in the middle of the check: "
            "your code probably called os._exit() or crashed the interpreter")


def _tail(path: Path, limit: int = 600) -> str:
    try:
        text = path.read_bytes()[-limit:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no output)"
    return text.splitlines()[-1] if text else "(no output)"
