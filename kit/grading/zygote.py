"""The warm parent, seen from the grading process: `Zygote` starts `python -m
kit.grading.warm_parent --serve` (from a private copy of the kit's files), asks it to fork
grading children, kills them, and learns how they exited (`kit.grading.protocol`).

One warm parent is shared by every grading in a process (`shared_zygote`), and replaced when the
kit's grading files change; `kit.instructor.batch` runs several gradings on one at once.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kit import ROOT
from kit.grading import protocol
from kit.grading.errors import GradingError, listed as _listed
from kit.grading.integrity import KitFiles
from kit.grading.errors import log_tail as _tail
from kit.grading.processes import kill_group, kill_group_only
from kit.results import CheckInfo

#: The exit code reported for a child whose warm parent died (its real code is unknown).
LOST = 1000


class Zygote:
    """The grading process's end of a warm parent: forks grading children on request.

    Thread-safe: `kit.instructor.batch` grades several submissions at once through one instance. If the
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
        self.checks: list[CheckInfo] = []
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
        self._proc = subprocess.Popen([sys.executable, "-m", "kit.grading.warm_parent", "--serve"], stdin=subprocess.PIPE,
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
                if protocol.READY in message:
                    self.checks = [CheckInfo.from_dict(c) for c in message["checks"]]
                    self.files = message.get("files", [])
                    state["ready"] = True
                elif protocol.ERROR in message:
                    state["error"] = message[protocol.ERROR]
                elif "id" in message:
                    state["replies"][message["id"]] = message["pid"]
                elif protocol.EXITED in message:
                    state["exited"][message[protocol.EXITED]] = message["rc"]
                self._cond.notify_all()
        with self._cond:  # the warm parent is gone: its children are orphans, stop them
            for pid in state["spawned"] - set(state["exited"]):
                kill_group(pid)
                state["exited"][pid] = LOST
            state["error"] = state["error"] or "the warm parent exited"
            state["ready"] = False
            self._cond.notify_all()

    def spawn(self, request: dict, *, cwd: Path, log: Path, key: bytes) -> "ForkedChild":
        """Fork a grading child for `request` (see `kit.grading.warm_parent.run`)."""
        with self._lock:
            if not self.alive:
                self._stop(self._proc)
                self._start()
            state = self._state
            self._next_id += 1
            ident = self._next_id
            message = {"op": protocol.OP_FORK, "id": ident, "request": request, "env": _child_env(self.kit_root),
                       "cwd": str(cwd), "log": str(log), "key": key.hex()}
            try:
                self._proc.stdin.write(protocol.encode(message))
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
                    self._proc.stdin.write(protocol.encode({"op": protocol.OP_KILL, "pid": pid}))
                    self._proc.stdin.flush()
                    return
                except OSError:
                    pass
        with self._cond:
            if pid not in state["exited"]:
                kill_group(pid)

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
            kill_group_only(self.pid)

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


def _child_env(kit_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WORKSHOP_TARGET"))}
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = str(kit_root)
    return env
