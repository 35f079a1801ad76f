"""Run the kit's checks on a target tree in a child process, with time limits.

`run_checks(target)` grades one tree and returns a `GradeReport`; the grading process never
imports learner code. The checks run in a child forked from a **warm parent** (`Zygote`, the
other end of `python -m kit.child --serve`), which has imported the dependencies and the kit's
checks once. The runner follows the events the child writes (`kit.plugin`), and:

- **time limits**: each check has `check_timeout_s` (enforced inside the child with SIGALRM; a
  child stuck past it anyway is killed from outside), the whole run `total_timeout_s`;
- **crashes**: if the child dies half-way (the learner's code called `os._exit`, crashed the
  interpreter, or hung in C code), the check it was running fails with the reason and a fresh
  child runs the checks not yet done. Every check gets a result, whatever happens;
- **honest events**: only lines signed with this run's key count, in sequence; a result for a
  check that was not running, a second result for one check, or lines written by anyone else
  are ignored and flagged in `GradeReport.warnings`;
- **pristine checks**: the child runs the checks from a private copy of the kit (written from a
  snapshot the runner keeps in memory). After every child, a change to that copy is flagged and
  undone before the next child starts; a change to the kit's own files during the run is
  flagged (not undone: it could be an instructor's edit). See `kit.integrity`.

One warm parent is shared by every `run_checks` in a process (`shared_zygote`), and replaced
when the kit's grading files change; `kit.batch` runs several gradings on one at once.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from kit import ROOT
from kit.integrity import KitFiles, verify
from kit.results import CheckResult, GradeReport, Status

DEFAULT_CHECK_TIMEOUT_S = 10.0
DEFAULT_TOTAL_TIMEOUT_S = 300.0
#: How long a check may run past its limit before the child is killed from outside (the
#: child normally stops it itself, at the limit, and says where).
KILL_GRACE_S = 2.0
#: The exit code reported for a child whose warm parent died (its real code is unknown).
LOST = 1000
#: A check still running after this long gets a lower CPU priority, so that a submission stuck
#: in a loop only uses what the others leave (a correct check takes well under a second).
RENICE_AFTER_S = 2.0


class GradingError(RuntimeError):
    """The grader itself could not run (not the learner's fault); the message says what to do."""


# -- the warm parent ---------------------------------------------------------------------------

class Zygote:
    """The grading process's end of a warm parent: forks grading children on request.

    Thread-safe: `kit.batch` grades several submissions at once through one instance. If the
    warm parent dies (a submission killed it), the next `spawn` starts a new one.
    """

    def __init__(self, *, startup_timeout_s: float = 120.0) -> None:
        self.kit_files = KitFiles.take(ROOT)
        self.scratch = Path(tempfile.mkdtemp(prefix="workshop-zygote-"))
        try:
            self._prepare(startup_timeout_s)
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise

    def _prepare(self, startup_timeout_s: float) -> None:
        self.kit_root = self.scratch / "kit"
        self.kit_files.copy_to(self.kit_root)
        self.startup_timeout_s = startup_timeout_s
        self.checks: list[dict] = []
        self.files: list[str] = []               # the kit's files the grading children import
        self._lock = threading.Lock()          # one request on the pipe at a time
        self._cond = threading.Condition()
        self._inflight: dict[int, list[str]] = {}   # gradings in progress -> their warnings
        self._gradings = 0
        self._proc: subprocess.Popen | None = None
        self._start()

    @property
    def fingerprint(self) -> str:
        return self.kit_files.fingerprint

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._state.get("ready", False)

    def _start(self) -> None:
        self._state: dict = {"replies": {}, "exited": {}, "spawned": set(), "ready": False, "error": None}
        self.kit_files.restore(self.kit_root)
        log = open(self.scratch / "zygote.log", "ab")
        self._proc = subprocess.Popen([sys.executable, "-m", "kit.child", "--serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=log, cwd=self.scratch,
                                      env=_child_env(self.kit_root), start_new_session=True)
        log.close()
        self._next_id = 0
        state, proc = self._state, self._proc
        threading.Thread(target=self._read, args=(proc, state), name="zygote-reader", daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        with self._cond:
            while not state["ready"] and state["error"] is None and time.monotonic() < deadline:
                self._cond.wait(0.1)
        if not state["ready"]:
            self._stop(proc)
            if state["error"]:
                raise GradingError(f"{state['error']} (the kit's own checks: fix them, or reinstall the kit)")
            raise GradingError(f"the grading process did not start in {self.startup_timeout_s:g} s: "
                               f"{_tail(self.scratch / 'zygote.log')}")

    def _read(self, proc: subprocess.Popen, state: dict) -> None:
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                if "ready" in message:
                    self.checks, self.files = message["checks"], message.get("files", [])
                    state["ready"] = True
                elif "error" in message:
                    state["error"] = message["error"]
                elif "id" in message:
                    state["replies"][message["id"]] = message["pid"]
                elif "exited" in message:
                    state["exited"][message["exited"]] = message["rc"]
                self._cond.notify_all()
        with self._cond:  # the warm parent is gone: its children are orphans, stop them
            for pid in state["spawned"] - set(state["exited"]):
                _kill_group(pid)
                state["exited"][pid] = LOST
            state["error"] = state["error"] or "the warm parent exited"
            state["ready"] = False
            self._cond.notify_all()

    def spawn(self, request: dict, *, cwd: Path, log: Path, key: bytes) -> "ForkedChild":
        """Fork a grading child for `request` (see `kit.child.run`)."""
        with self._lock:
            if not self.alive:
                self._stop(self._proc)
                self._start()
            state = self._state
            self._next_id += 1
            ident = self._next_id
            message = {"op": "fork", "id": ident, "request": request, "env": _child_env(self.kit_root),
                       "cwd": str(cwd), "log": str(log), "key": key.hex()}
            try:
                self._proc.stdin.write((json.dumps(message) + "\n").encode())
                self._proc.stdin.flush()
            except OSError:
                state["error"] = "the warm parent stopped listening"
            with self._cond:
                while ident not in state["replies"] and state["ready"]:
                    self._cond.wait(0.1)
                pid = state["replies"].pop(ident, None)
                if pid is not None:
                    state["spawned"].add(pid)
        return ForkedChild(self, state, pid)

    def kill(self, state: dict, pid: int) -> None:
        with self._lock:
            if state is self._state and self.alive:
                try:
                    self._proc.stdin.write((json.dumps({"op": "kill", "pid": pid}) + "\n").encode())
                    self._proc.stdin.flush()
                    return
                except OSError:
                    pass
        with self._cond:
            if pid not in state["exited"]:
                _kill_group(pid)

    def wait_exit(self, state: dict, pid: int, timeout_s: float | None = None) -> int | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while pid not in state["exited"]:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                self._cond.wait(0.05)
            return state["exited"][pid]

    def begin(self) -> int:
        """Register a grading in progress (see `copy_warnings`); returns its id."""
        with self._cond:
            self._gradings += 1
            self._inflight[self._gradings] = []
            return self._gradings

    def end(self, grading: int) -> list[str]:
        warnings = self.copy_warnings(grading)
        with self._cond:
            self._inflight.pop(grading, None)
        return warnings

    def copy_warnings(self, grading: int) -> list[str]:
        """Warnings for `grading` about changes to the private copy of the kit, which are undone
        at once. Several gradings may run at the same time on one warm parent and the grader
        cannot tell whose code wrote there, so every grading in progress gets the warning."""
        with self._cond:
            changed = self.kit_files.changes(self.kit_root)
            if changed:
                self.kit_files.restore(self.kit_root)
                others = len(self._inflight) - 1
                shared = (f" (graded at the same time as {others} other submission(s): the grader cannot "
                          "tell which one did it; grade them one at a time to know)") if others > 0 else ""
                message = (f"the code graded changed the kit's files ({_listed(changed)}); the changes were "
                           f"undone and did not count{shared}")
                for pending in self._inflight.values():
                    pending.append(message)
            found, self._inflight[grading] = self._inflight.get(grading, []), []
            return found

    def _stop(self, proc: subprocess.Popen | None) -> None:
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        with self._lock:
            self._stop(self._proc)
            self._proc = None
        shutil.rmtree(self.scratch, ignore_errors=True)


@dataclass
class ForkedChild:
    """One grading child, as far as the runner needs: poll, kill, wait."""

    zygote: Zygote
    state: dict
    pid: int | None
    killed: bool = False

    def poll(self) -> int | None:
        if self.pid is None:
            return LOST
        with self.zygote._cond:
            return self.state["exited"].get(self.pid)

    def kill(self) -> None:
        if self.pid is not None:
            self.killed = True
            self.zygote.kill(self.state, self.pid)

    def wait(self, timeout_s: float = 10.0) -> int | None:
        return LOST if self.pid is None else self.zygote.wait_exit(self.state, self.pid, timeout_s)

    def kill_group(self) -> None:
        """Kill what is left of this child's process group (the child itself has exited)."""
        if self.pid is not None:
            _kill_group_only(self.pid)

    def renice(self, niceness: int) -> bool:
        """Lower the CPU priority of the child and whatever it started."""
        try:
            if self.pid is not None and self.poll() is None:
                os.setpriority(os.PRIO_PGRP, self.pid, niceness)
        except OSError:
            pass
        return True


_shared: Zygote | None = None
_shared_lock = threading.Lock()


def shared_zygote(kit_now: KitFiles | None = None) -> Zygote:
    """The warm parent of this process, started (or restarted, when the kit changed) on demand."""
    global _shared
    fingerprint = (kit_now or KitFiles.take(ROOT)).fingerprint
    with _shared_lock:
        if _shared is None or _shared.fingerprint != fingerprint:
            if _shared is not None:
                _shared.close()
            _shared = Zygote()
        return _shared


@atexit.register
def _close_shared() -> None:
    if _shared is not None:
        _shared.close()


def _listed(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _child_env(kit_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WORKSHOP_TARGET"))}
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = str(kit_root)
    return env


def _kill_group_only(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# -- one grading run ---------------------------------------------------------------------------

@dataclass
class _Progress:
    checks: dict[str, dict]             # nodeid -> meta, in collection order (the pristine list)
    results: dict[str, CheckResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    running: str | None = None
    started_at: float = 0.0
    limit_s: float = DEFAULT_CHECK_TIMEOUT_S
    started_any: bool = False
    ignored: int = 0
    importing: list[str] = field(default_factory=list)   # learner modules being imported now
    doomed: dict[str, str] = field(default_factory=dict)  # modules whose import ended a child

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
        if kind == "collected":
            listed = {m.get("nodeid") for m in event.get("checks", [])}
            if not listed <= self.expected:
                progress.warn("the grading child collected checks the kit does not have (tampering?)")
        elif kind == "started":
            if nodeid not in self.expected or nodeid in progress.results:
                progress.ignored += 1
                return
            progress.running, progress.started_at, progress.started_any = nodeid, time.monotonic(), True
            limit = event.get("limit")
            progress.limit_s = min(float(limit), self.check_timeout_s) if isinstance(limit, (int, float)) \
                else self.check_timeout_s
        elif kind == "result":
            if nodeid != progress.running:
                progress.ignored += 1
                return
            status = event.get("status")
            if status not in (Status.PASSED.value, Status.FAILED.value):
                status, message = Status.FAILED.value, f"the grader got an unknown status {status!r}"
            else:
                message = str(event.get("message", ""))
            progress.results[nodeid] = _result(progress.checks[nodeid], Status(status), message)
            progress.running = None
        elif kind == "warning":
            progress.warn(str(event.get("message", "")))
        elif kind == "importing":
            progress.importing.append(str(event.get("module")))
        elif kind == "imported" and progress.importing and progress.importing[-1] == event.get("module"):
            progress.importing.pop()


def _result(meta: dict, status: Status, message: str) -> CheckResult:
    return CheckResult(id=meta["id"], title=meta["title"], step=meta["step"], criterion=meta["criterion"],
                       status=status, message=message, todo=meta.get("todo"))


def select_checks(checks: list[dict], only: str | None = None, nodeids: list[str] | None = None) -> list[dict]:
    """The checks `--only` (a step number or a criterion id) or `nodeids` pick, in order."""
    picked = [m for m in checks if only is None or only in (str(m["step"]), m["criterion"])]
    if nodeids:  # whole nodeids, or files ("checks/test_x.py")
        picked = [m for m in picked if m["nodeid"] in nodeids or m["nodeid"].split("::")[0] in nodeids]
    return picked


def run_checks(target: Path, *, only: str | None = None, nodeids: list[str] | None = None,
               check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
               total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S,
               zygote: Zygote | None = None, on_stuck: Callable[[], None] | None = None,
               split: int = 1) -> GradeReport:
    """Grade `target` (a tree laid out like exercise/) and return the report. `on_stuck` is
    called (once) when a check has run for `RENICE_AFTER_S` and its child was given a lower
    CPU priority: `kit.batch` then starts another submission alongside. `split` > 1 shares the
    checks among that many children forked at once (one per core: `grade.py` grades one tree
    this way; `kit.batch` keeps 1 and runs several submissions at once instead)."""
    target = Path(target).resolve()
    if not (target / "services").is_dir():
        raise GradingError(f"{target} has no services/ folder: point --target at a copy of exercise/")
    kit_now = KitFiles.take(ROOT)
    zygote = zygote or shared_zygote(kit_now)
    guarded = ("checks", "course.toml", *zygote.files)  # what grading runs, in the kit's own folder
    kit_before = KitFiles({n: b for n, b in kit_now.files.items()
                           if n in guarded or n.startswith("checks/")})
    metas = select_checks(zygote.checks, only, nodeids)
    progress = _Progress(checks={m["nodeid"]: m for m in metas})
    shares = [metas[i::split] for i in range(max(1, min(split, len(metas))))]
    parts = [progress] if len(shares) == 1 else [_Progress(checks={m["nodeid"]: m for m in share}) for share in shares]
    grading = zygote.begin()
    try:
        workers = [threading.Thread(target=_run, daemon=True,
                                    args=(zygote, grading, target, part, check_timeout_s, total_timeout_s, on_stuck))
                   for part in parts[1:]]
        for worker in workers:
            worker.start()
        _run(zygote, grading, target, parts[0], check_timeout_s, total_timeout_s, on_stuck)
        for worker in workers:
            worker.join()
    finally:
        for warning in zygote.end(grading):
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


def _run(zygote: Zygote, grading: int, target: Path, progress: _Progress, check_timeout_s: float,
         total_timeout_s: float, on_stuck: Callable[[], None] | None) -> None:
    """Fork children until every check has a result (or the whole run is out of time)."""
    deadline = time.monotonic() + total_timeout_s
    with tempfile.TemporaryDirectory(prefix="workshop-grade-") as scratch_dir:
        scratch = Path(scratch_dir)
        attempts = idle = 0
        while True:
            missing = [n for n in progress.checks if n not in progress.results]
            if not missing:
                break
            if time.monotonic() >= deadline or attempts > len(progress.checks) + 1:
                for nodeid in missing:
                    progress.results[nodeid] = _result(
                        progress.checks[nodeid], Status.ERROR,
                        f"not run: the whole grading run passed its limit of {total_timeout_s:g} s")
                break
            attempts += 1
            key = os.urandom(16)
            events = scratch / f"events-{attempts}"
            reader = _EventReader(events, key, progress, set(missing), check_timeout_s)
            request = {"target": str(target), "events": str(events), "timeout": check_timeout_s,
                       "nodeids": missing, "doomed": progress.doomed}
            progress.started_any, progress.importing = False, []
            child = zygote.spawn(request, cwd=scratch, log=scratch / f"child-{attempts}.log", key=key)
            try:
                if _follow(child, reader, progress, deadline, on_stuck):
                    on_stuck = None  # told once per grading
                reader.read()
            finally:
                reader.close()
                child.kill_group()  # whatever the learner's code left running goes too
            for warning in zygote.copy_warnings(grading):
                progress.warn(warning)
            crashed = progress.running
            if crashed is not None and crashed not in progress.results:
                reason = _crash_reason(child, progress.limit_s)
                if progress.importing and not child.killed:
                    # It died importing this module: the next children refuse it at once.
                    module = progress.importing[-1]
                    reason += f" (while importing {module})"
                    progress.doomed[module] = (f"importing {module} ended the grading process in an earlier "
                                               f"check ({_crash_reason(child, progress.limit_s)})")
                progress.results[crashed] = _result(progress.checks[crashed], Status.FAILED, reason)
                progress.running = None
            if not progress.started_any and any(n not in progress.results for n in progress.checks):
                idle += 1
                if idle >= 2:
                    raise GradingError("the grading child stopped before running any check: "
                                       f"{_tail(scratch / f'child-{attempts}.log')}")
            else:
                idle = 0


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
        return "the grading process running this check was killed (did your code kill its parent process?)"
    if returncode is not None and returncode < 0:
        return f"the check's process was killed by signal {-returncode} ({_signal_name(-returncode)})"
    return (f"the check's process exited with code {returncode} in the middle of the check: "
            "your code probably called os._exit() or crashed the interpreter")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _tail(path: Path, limit: int = 4000) -> str:
    """The last lines of a log that say what went wrong, on one line."""
    try:
        lines = [line.strip() for line in path.read_bytes()[-limit:].decode("utf-8", "replace").splitlines()]
    except OSError:
        return "(no output)"
    lines = [line for line in lines if line and not line.startswith(("Traceback", "File ", "^", "~"))]
    telling = [line for line in lines if line.startswith(("ERROR", "E ")) or "Error" in line]
    return " | ".join((telling or lines)[-2:]) or "(no output)"
