"""Run the kit's checks on a target tree in a child process, with time limits.

`run_checks(target)` grades one tree and returns a `GradeReport`; the grading process never
imports learner code. The checks run in a child forked from a **warm parent** (`Zygote`, the
other end of `python -m kit.grading.warm_parent --serve`), which has imported the dependencies and the kit's
checks once. The runner follows the events the child writes (`kit.child.recorder`), and:

- **time limits**: each check has `check_timeout_s` (enforced inside the child with SIGALRM; a
  child stuck past it anyway is killed from outside), the whole run `total_timeout_s`;
- **crashes**: if the child dies half-way (the learner's code called `os._exit`, crashed the
  interpreter, or hung in C code), a fresh child runs the checks not yet done, that one first:
  the check fails with the reason (and a module whose import ended the child is refused from
  then on) only when the crash reproduces. A child lost because its warm parent or the grading
  process was killed from outside costs nothing: its checks are graded again in fresh
  processes. Every check gets a result, whatever happens;
- **honest events**: only lines signed with this run's key count, in sequence; a result for a
  check that was not running, a second result for one check, or lines written by anyone else
  are ignored and flagged in `GradeReport.warnings`;
- **pristine checks**: the child runs the checks from a private copy of the kit (written from a
  snapshot the runner keeps in memory). After every child, a change to that copy is flagged and
  undone before the next child starts; a change to the kit's own files during the run is
  flagged (not undone: it could be an instructor's edit). See `kit.grading.integrity`.

One warm parent is shared by every `run_checks` in a process (`shared_zygote`), and replaced
when the kit's grading files change; `kit.instructor.batch` runs several gradings on one at once.
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kit import ROOT
from kit.grading.errors import GradingError, listed as _listed, log_tail as _tail
from kit.grading.integrity import KitFiles
from kit.grading.protocol import EVENT, verify
from kit.grading.shares import split as shares_of
from kit.grading.zygote import LOST, ForkedChild, Zygote, shared_zygote
from kit.results import Cause, CheckInfo, CheckResult, GradeReport, Status

__all__ = ["GradingError", "Zygote", "shared_zygote", "run_checks", "select_checks", "DEFAULT_CHECK_TIMEOUT_S"]

DEFAULT_CHECK_TIMEOUT_S = 10.0
DEFAULT_TOTAL_TIMEOUT_S = 300.0
#: How long a check may run past its limit before the child is killed from outside (the
#: child normally stops it itself, at the limit, and says where).
KILL_GRACE_S = 2.0
#: A check still running after this long gets a lower CPU priority, so that a submission stuck
#: in a loop only uses what the others leave (a correct check takes well under a second).
RENICE_AFTER_S = 2.0
#: How often one check may lose its process to something outside (its warm parent killed)
#: before it fails for it.
LOST_RETRIES = 3
#: The grading child's exit code when it could not isolate itself (kit.child.main).
EXIT_SANDBOX_FAILED = 71


# -- one grading run ---------------------------------------------------------------------------

@dataclass
class _Progress:
    checks: dict[str, CheckInfo]        # nodeid -> check, in collection order (the pristine list)
    results: dict[str, CheckResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    running: str | None = None
    started_at: float = 0.0
    limit_s: float = DEFAULT_CHECK_TIMEOUT_S
    started_any: bool = False
    ignored: int = 0
    importing: list[str] = field(default_factory=list)   # learner modules being imported now
    doomed: dict[str, str] = field(default_factory=dict)  # modules whose import ended a child, twice
    crashes: dict[str, list[str]] = field(default_factory=dict)  # nodeid -> how its children ended

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


class _EventReader:
    """Follows one child's events: signed lines only, in sequence, each result valid.

    The events travel through a named pipe (a FIFO) that the runner created and holds open:
    nobody can truncate or rewrite what is already in it, and lines written into it by anyone
    but the child's Recorder fail their signature.
    """

    def __init__(self, path: Path, key: bytes, progress: _Progress, expected: set[str],
                 check_timeout_s: float) -> None:
        self.key, self.progress = key, progress
        self.expected, self.check_timeout_s = expected, check_timeout_s
        self.seq, self.partial = 0, ""
        os.mkfifo(path, 0o600)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def read(self) -> None:
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return
        lines = (self.partial + b"".join(chunks).decode("utf-8", "replace")).split("\n")
        self.partial = lines.pop()
        for line in lines:
            if line.strip():
                self._line(line)

    def close(self) -> None:
        os.close(self.fd)

    def _line(self, line: str) -> None:
        progress = self.progress
        event = verify(self.key, line)
        if event is None:
            progress.warn("lines the grader did not write were found in its events file and ignored (tampering?)")
            return
        if event.get("seq") != self.seq:
            progress.warn("grading events were repeated or reordered; the copies were ignored (tampering?)")
            if not isinstance(event.get("seq"), int) or event["seq"] < self.seq:
                return
        self.seq = event["seq"] + 1
        kind, nodeid = event.get("event"), event.get("nodeid")
        if kind == EVENT.COLLECTED:
            listed = {m.get("nodeid") for m in event.get("checks", [])}
            if not listed <= self.expected:
                progress.warn("the grading child collected checks the kit does not have (tampering?)")
        elif kind == EVENT.STARTED:
            if nodeid not in self.expected or nodeid in progress.results:
                progress.ignored += 1
                return
            progress.running, progress.started_at, progress.started_any = nodeid, time.monotonic(), True
            limit = event.get("limit")
            progress.limit_s = min(float(limit), self.check_timeout_s) if isinstance(limit, (int, float)) \
                else self.check_timeout_s
        elif kind == EVENT.RESULT:
            if nodeid != progress.running:
                progress.ignored += 1
                return
            status, cause = event.get("status"), event.get("cause")
            if status not in (Status.PASSED.value, Status.FAILED.value):
                status, message = Status.FAILED.value, f"the grader got an unknown status {status!r}"
            else:
                message = str(event.get("message", ""))
            cause = Cause(cause) if cause in {c.value for c in Cause} and status != Status.PASSED.value else None
            progress.results[nodeid] = progress.checks[nodeid].result(Status(status), message, cause)
            progress.running = None
        elif kind == EVENT.WARNING:
            progress.warn(str(event.get("message", "")))
        elif kind == EVENT.IMPORTING:
            progress.importing.append(str(event.get("module")))
        elif kind == EVENT.IMPORTED and progress.importing and progress.importing[-1] == event.get("module"):
            progress.importing.pop()


def select_checks(checks: list[CheckInfo], only: str | None = None,
                  nodeids: list[str] | None = None) -> list[CheckInfo]:
    """The checks `--only` (a step number or a criterion id) or `nodeids` pick, in order."""
    picked = [c for c in checks if c.selected_by(only)]
    if nodeids:  # whole nodeids, or files ("checks/test_x.py")
        picked = [c for c in picked if c.nodeid in nodeids or c.nodeid.split("::")[0] in nodeids]
    return picked


def run_checks(target: Path, *, only: str | None = None, nodeids: list[str] | None = None,
               check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
               total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
               zygote: Zygote | None = None, on_stuck: Callable[[], None] | None = None,
               split: int = 1) -> GradeReport:
    """Grade `target` (a tree laid out like exercise/) and return the report. `on_stuck` is
    called (once) when a check has run for `RENICE_AFTER_S` and its child was given a lower
    CPU priority: `kit.instructor.batch` then starts another submission alongside. `split` > 1 shares the
    checks among that many children forked at once (one per core, shares of about equal time:
    `kit.grading.shares`; `grade.py` grades one tree this way, `kit.instructor.batch` keeps 1
    and runs several submissions at once instead)."""
    target = Path(target).resolve()
    if not (target / "services").is_dir():
        raise GradingError(f"{target} has no services/ folder: point --target at a copy of exercise/")
    kit_now = KitFiles.take(ROOT)
    zygote = zygote or shared_zygote(kit_now, wait=False)
    grading = zygote.begin()
    staged = None
    try:
        staged = zygote.stage_tree(target)   # while the warm parent may still be starting
        zygote.wait_ready()
        guarded = ("checks", "course.toml", *zygote.files)  # what grading runs, in the kit's own folder
        kit_before = KitFiles({n: b for n, b in kit_now.files.items()
                               if n in guarded or n.startswith("checks/")})
        metas = select_checks(zygote.checks, only, nodeids)
        progress = _Progress(checks={c.nodeid: c for c in metas})
        shares = shares_of(metas, split)
        parts = [progress] if len(shares) == 1 else [_Progress(checks={c.nodeid: c for c in share})
                                                     for share in shares]
        workers = [threading.Thread(target=_run, daemon=True,
                                    args=(zygote, grading, staged, part, check_timeout_s, total_timeout_s, on_stuck))
                   for part in parts[1:]]
        for worker in workers:
            worker.start()
        _run(zygote, grading, staged, parts[0], check_timeout_s, total_timeout_s, on_stuck)
        for worker in workers:
            worker.join()
    finally:
        ended = zygote.end(grading)
        if staged is not None:
            zygote.unstage(staged)
    for warning in [*ended, *zygote.warnings]:
        progress.warn(warning)
    if len(parts) > 1:  # one report, in the checks' own order, whatever child ran each
        for part in parts:
            progress.results.update(part.results)
            progress.ignored += part.ignored
            for warning in part.warnings:
                progress.warn(warning)
    changed = kit_before.changes(ROOT, guarded)
    if changed:
        progress.warn(f"the kit's own files changed while this was graded ({_listed(changed)}): "
                      "if no one edited them, the code graded wrote there")
    if progress.ignored:
        progress.warn(f"{progress.ignored} reported result(s) for checks that were not running were ignored "
                      "(tampering?)")
    ordered = tuple(progress.results[n] for n in progress.checks)
    return GradeReport(target=str(target), checks=ordered, warnings=tuple(progress.warnings))


def _run(zygote: Zygote, grading: int, staged: Path, progress: _Progress, check_timeout_s: float,
         total_timeout_s: float, on_stuck: Callable[[], None] | None) -> None:
    """Fork children until every check has a result (or the whole run is out of time)."""
    deadline = time.monotonic() + total_timeout_s
    with tempfile.TemporaryDirectory(prefix="workshop-grade-", dir=zygote.io) as scratch_dir:
        scratch = Path(scratch_dir)
        attempts = idle = 0
        while True:
            missing = [n for n in progress.checks if n not in progress.results]
            if not missing:
                break
            if time.monotonic() >= deadline or attempts > 2 * len(progress.checks) + LOST_RETRIES + 1:
                for nodeid in missing:
                    progress.results[nodeid] = progress.checks[nodeid].result(
                        Status.ERROR, f"not run: the whole grading run passed its limit of {total_timeout_s:g} s",
                        Cause.NOT_RUN)
                break
            attempts += 1
            key = os.urandom(16)
            events = scratch / f"events-{attempts}"
            reader = _EventReader(events, key, progress, set(missing), check_timeout_s)
            request = {"target": str(staged), "events": str(events), "timeout": check_timeout_s,
                       "nodeids": missing, "doomed": progress.doomed}
            progress.started_any, progress.importing = False, []
            child = zygote.spawn(request, cwd=scratch, log=scratch / f"child-{attempts}.log", key=key, staged=staged)
            try:
                if _follow(child, reader, progress, deadline, on_stuck):
                    on_stuck = None  # told once per grading
                reader.read()
            finally:
                reader.close()
                child.kill_group()  # whatever the learner's code left running goes too
            for warning in zygote.copy_warnings(grading):
                progress.warn(warning)
            if child.poll() == EXIT_SANDBOX_FAILED and not progress.started_any and zygote.sandboxed:
                raise GradingError("the grading child could not enter the sandbox: "
                                   f"{_tail(scratch / f'child-{attempts}.log')}")
            crashed = progress.running
            if crashed is not None and crashed not in progress.results:
                _crashed(child, progress, crashed)
                progress.running = None
            if not progress.started_any and any(n not in progress.results for n in progress.checks):
                idle += 1
                if idle >= 2:
                    raise GradingError("the grading child stopped before running any check: "
                                       f"{_tail(scratch / f'child-{attempts}.log')}")
            else:
                idle = 0


def _crashed(child: ForkedChild, progress: _Progress, crashed: str) -> None:
    """The child running `crashed` ended before its verdict. A check stopped from outside for
    its time limit fails; otherwise the check runs again in a fresh child first, and fails (its
    module refused from then on, if it died importing one) only when the crash reproduces. A
    child lost because its warm parent died counts nothing, up to `LOST_RETRIES` times."""
    reason = _crash_reason(child, progress.limit_s)
    module = progress.importing[-1] if progress.importing and not child.killed else None
    seen = progress.crashes.setdefault(crashed, [])
    seen.append(reason)
    if child.killed:
        progress.results[crashed] = progress.checks[crashed].result(Status.FAILED, reason, Cause.TIMEOUT)
        return
    if child.poll() == LOST:
        if seen.count(reason) <= LOST_RETRIES:
            return  # not the learner's doing: graded again
    elif seen.count(reason) < 2:
        return  # once may be bad luck from outside (a signal, the OOM killer): graded again
    if module is not None:
        reason += f" (while importing {module})"
        progress.doomed[module] = f"importing {module} ended the grading process in an earlier check ({reason})"
    progress.results[crashed] = progress.checks[crashed].result(Status.FAILED, reason, Cause.CRASH)


def _follow(child: ForkedChild, reader: _EventReader, progress: _Progress, deadline: float,
            on_stuck: Callable[[], None] | None = None) -> bool:
    """Read events while the child runs; kill it if a check or the whole run is past its limit.
    A check running long gets a lower CPU priority (and `on_stuck` is called); returns whether
    that happened."""
    reniced = False
    while True:
        finished = child.poll() is not None
        reader.read()
        if finished:
            return reniced
        now = time.monotonic()
        if not reniced and progress.running is not None and now - progress.started_at > RENICE_AFTER_S:
            reniced = child.renice(19)
            if on_stuck is not None:
                on_stuck()
        stuck = progress.running is not None and now - progress.started_at > progress.limit_s + KILL_GRACE_S
        if stuck or now > deadline:
            child.kill()
            child.wait()
            return reniced
        child.wait(0.05)  # returns at once when the child ends; events are read in batches


def _crash_reason(child: ForkedChild, limit_s: float) -> str:
    returncode = child.poll()
    if child.killed:
        return f"timed out after {limit_s:g} s (the check had to be stopped from outside)"
    if returncode == LOST:
        return ("the grading process running this check was lost again and again (its warm parent was killed "
                "each time: did your code kill a process it did not start?)")
    if returncode is not None and returncode < 0:
        return f"the check's process was killed by signal {-returncode} ({_signal_name(-returncode)})"
    return (f"the check's process exited with code {returncode} in the middle of the check: "
            "your code probably called os._exit() or crashed the interpreter")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


