"""The warm parent, seen from the grading process: `Zygote` starts `python -m
kit.grading.warm_parent --serve` (from a private copy of the kit's files), asks it to fork
grading children, kills them, and learns how they exited (`kit.grading.protocol`).

One warm parent is shared by every grading in a process (`shared_zygote`), and replaced when the
kit's grading files change; `kit.instructor.batch` runs several gradings on one at once.

**The sandbox** (`kit.grading.sandbox`, design (b) of docs/sandbox.md): when `sandbox.available()`,
the warm parent runs inside bubblewrap, seeing only the Python installation, the kit's private
copy (at `/grading/kit`), the staging folder (one copy of each graded tree's `services/`) and
the exchange folder (events FIFOs, child logs); every child it forks enters namespaces of its own
(its tree read-only at `/grading/tree`, no network, a private size-limited `/tmp`, its own PID
namespace whose PID 1 is the grading process: whatever the learner's code starts dies with it)
and drops every capability. PIDs the warm parent reports are PIDs of its sandbox: the grading
process never signals them itself (kills and renices go through the warm parent). When no
sandbox can be made, grading runs as before and every report says so (`UNSANDBOXED`). Either
way the children get an environment built from an allow-list (no instructor's token).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kit import ROOT
from kit.grading import protocol, sandbox
from kit.grading.bytecode import Bytecode
from kit.grading.errors import GradingError, listed as _listed
from kit.grading.integrity import KitFiles
from kit.grading.errors import log_tail as _tail
from kit.grading.processes import forget_folder, kill_group, kill_group_only, temporary_folder
from kit.results import CheckInfo

#: The exit code reported for a child whose warm parent died (its real code is unknown).
LOST = 1000
#: Every report of an unsandboxed run carries a warning that starts so (not a sign of tampering).
UNSANDBOXED = "grading unsandboxed"
#: Environment every grading child (and the warm parent) gets on top of the allow-list.
GRADING_ENV = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}


def is_unsandboxed_note(warning: str) -> bool:
    return warning.startswith(UNSANDBOXED)


_said: set[str] = set()


def _say_once(note: str | None) -> None:
    """The one warning line an unsandboxed run prints (once per process)."""
    if note and note not in _said:
        _said.add(note)
        sys.stderr.write(f"grade.py: warning: {note}\n")
        sys.stderr.flush()


class Zygote:
    """The grading process's end of a warm parent: forks grading children on request.

    Thread-safe: `kit.instructor.batch` grades several submissions at once through one instance. If the
    warm parent dies (a submission killed it), the next `spawn` starts a new one.
    """

    def __init__(self, *, startup_timeout_s: float = 120.0, sandboxed: bool | None = None,
                 kit_files: KitFiles | None = None, wait: bool = True) -> None:
        """Start a warm parent (from a private copy of `kit_files`, a snapshot of the kit taken
        now when None). `wait=False`: return as soon as it is started; `wait_ready()` then waits
        for it to be ready (the grading process stages the tree meanwhile)."""
        self.kit_files = kit_files or KitFiles.take(ROOT)
        self._abandoned = False
        self.scratch = temporary_folder("workshop-zygote-")   # on disk: what the code graded writes
        try:
            self.fast = temporary_folder("workshop-kit-", fast=True)  # the kit's copy, the staged trees
        except BaseException:
            forget_folder(self.scratch)
            raise
        try:
            self._prepare(startup_timeout_s, sandboxed)
            if wait:
                self.wait_ready()
        except BaseException:
            forget_folder(self.scratch)
            forget_folder(self.fast)
            raise

    def _prepare(self, startup_timeout_s: float, sandboxed: bool | None) -> None:
        self.kit_root = self.fast / "kit"
        # Whether the sandbox works here (a tiny sandbox started once per process) is found out
        # while the kit is copied: both are on the way to the warm parent's start.
        switched_off = sandboxed is False or os.environ.get("WORKSHOP_SANDBOX") == "off"
        probe = threading.Thread(target=None if switched_off else sandbox.available, name="sandbox-probe",
                                 daemon=True)
        probe.start()
        self.kit_files.copy_to(self.kit_root)
        self._copied = True   # the first start needs no restore
        self.bytecode = Bytecode(self.kit_files)
        self.stage = self.fast / "stage"         # one copy of each graded tree's services/
        self.io = self.scratch / "io"            # the runner's events FIFOs and child logs
        self.home = self.scratch / "home"        # HOME and TMPDIR of unsandboxed children
        for folder in (self.stage, self.io, self.home):
            folder.mkdir()
        probe.join()
        ok, why = (False, "") if switched_off else sandbox.available()
        if switched_off:
            ok, why = False, ("switched off (WORKSHOP_SANDBOX=off)" if sandboxed is None else "switched off by the caller")
        self.sandboxed = ok
        self.sandbox_note = why.split(": grading runs unsandboxed")[0]
        self._staged = 0
        _say_once(f"{UNSANDBOXED}: {self.sandbox_note}" if not ok else None)
        self.startup_timeout_s = startup_timeout_s
        self.checks: list[CheckInfo] = []
        self.files: list[str] = []               # the kit's files the grading children import
        self._lock = threading.Lock()          # one request on the pipe at a time
        self._cond = threading.Condition()
        self._inflight: dict[int, list[str]] = {}   # gradings in progress -> their warnings
        self._gradings = 0
        self._exits = 0                          # grading children ended so far
        self._compared_at = -1                   # ... when the copy was last compared
        self._proc: subprocess.Popen | None = None
        self._launch()

    @property
    def fingerprint(self) -> str:
        return self.kit_files.fingerprint

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._state.get("ready", False)

    @property
    def warnings(self) -> list[str]:
        """What every report graded by this warm parent must say (the run was not sandboxed)."""
        return [] if self.sandboxed else [f"{UNSANDBOXED} ({self.sandbox_note}): the learner's code ran without "
                                          "the sandbox's limits (see the README, Hostile submissions)"]

    def child_env(self) -> dict[str, str]:
        """The whole environment of a grading child: an allow-list, never the caller's tokens."""
        if self.sandboxed:
            return sandbox.environment(sandbox.SandboxSpec(kit=self.kit_root, python=(), env=GRADING_ENV))
        env = sandbox.environment(sandbox.SandboxSpec(python=(), env=GRADING_ENV))
        env.update({"PYTHONPATH": str(self.kit_root), "HOME": str(self.home), "TMPDIR": str(self.home)})
        return env

    def _popen(self, log) -> subprocess.Popen:
        argv = [sys.executable, "-m", "kit.grading.warm_parent", "--serve"]
        if self.sandboxed:
            spec = sandbox.SandboxSpec(kit=self.kit_root, ro_binds=(self.stage,), rw_binds=(self.io,),
                                       env={**GRADING_ENV, "WORKSHOP_SANDBOXED": "1"}, confined=False,
                                       mount_points=(sandbox.TREE_MOUNT,), cwd=str(self.io))
            return sandbox.popen(spec, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=self.io,
                                env=self.child_env(), start_new_session=True)

    def _start(self) -> None:
        self._launch()
        self._wait_ready()

    def wait_ready(self) -> None:
        """Return once the warm parent has been ready (at once if it was); raises GradingError
        when it could not start. (A warm parent that died after being ready is started again
        by the next `spawn`.)"""
        with self._lock:
            if not self._state.get("was_ready"):
                self._wait_ready()

    def _launch(self) -> None:
        if self._abandoned:   # Ctrl-C: a grading still under way in another thread starts nothing
            raise GradingError("interrupted")
        self._state: dict = {"replies": {}, "exited": {}, "spawned": set(), "ready": False, "error": None}
        if not self._copied:  # a restart: the code graded may have changed the copy
            self.kit_files.restore(self.kit_root)
        self._copied = False
        if self._abandoned:  # Ctrl-C came while the copy was rewritten: remove it again
            forget_folder(self.scratch)
            forget_folder(self.fast)
            raise GradingError("interrupted")
        self.bytecode.start(self.kit_root)   # while the warm parent imports its dependencies
        log = open(self.scratch / "zygote.log", "ab")
        try:
            self._proc = self._popen(log)
        except (OSError, sandbox.SandboxError) as exc:
            if not self.sandboxed:
                raise
            self.sandboxed, self.sandbox_note = False, f"the sandbox could not start ({exc})"
            self._proc = self._popen(log)
        finally:
            log.close()
        self._next_id = 0
        state, proc = self._state, self._proc
        threading.Thread(target=self._read, args=(proc, state), name="zygote-reader", daemon=True).start()
        self._deadline = time.monotonic() + self.startup_timeout_s

    def _wait_ready(self) -> None:
        state, proc, deadline = self._state, self._proc, self._deadline
        with self._cond:
            while not state["ready"] and state["error"] is None and time.monotonic() < deadline:
                self._cond.wait(0.1)
        if state["ready"] and state.get("sandbox_error") and self.sandboxed:
            # The sandbox starts, but a child cannot isolate itself: grade unsandboxed, and say why.
            self._stop(proc)
            self.sandboxed = False
            self.sandbox_note = f"a grading child could not enter its own namespaces ({state['sandbox_error']})"
            return self._start()
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
                    state["sandbox_error"] = message.get("sandbox_error")
                    state["ready"] = True
                    state["was_ready"] = not (self.sandboxed and state["sandbox_error"])
                elif protocol.ERROR in message:
                    state["error"] = message[protocol.ERROR]
                elif "id" in message:
                    state["replies"][message["id"]] = message["pid"]
                elif protocol.EXITED in message:
                    state["exited"][message[protocol.EXITED]] = message["rc"]
                    self._exits += 1
                self._cond.notify_all()
        if self.sandboxed:  # its sandbox, and every child in it, ended with it
            sandbox.kill(proc, timeout_s=2.0)
        with self._cond:  # the warm parent is gone: its children are orphans, stop them
            for pid in state["spawned"] - set(state["exited"]):
                if not self.sandboxed:  # a sandboxed pid means another process out here: never signal it
                    kill_group(pid)
                state["exited"][pid] = LOST
                self._exits += 1
            state["error"] = state["error"] or "the warm parent exited"
            state["ready"] = False
            self._cond.notify_all()

    def stage_tree(self, target: Path) -> Path:
        """A copy of `target`'s services/ in the staging folder (links stay links: never followed);
        remove it with `unstage`. The child sees it, read-only, at `sandbox.TREE_MOUNT`."""
        with self._cond:
            self._staged += 1
            staged = self.stage / str(self._staged)
        staged.mkdir()
        shutil.copytree(Path(target) / "services", staged / "services", symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return staged

    def unstage(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)

    def spawn(self, request: dict, *, cwd: Path, log: Path, key: bytes, staged: Path | None = None) -> "ForkedChild":
        """Fork a grading child for `request` (see `kit.grading.warm_parent.run`). With the
        sandbox, `staged` (from `stage_tree`) is the tree it isolates itself with."""
        with self._lock:
            if not self._state.get("was_ready"):  # still starting (Zygote(wait=False))
                self._wait_ready()
            if not self.alive:
                self._stop(self._proc)
                self._start()
            state = self._state
            self._next_id += 1
            ident = self._next_id
            request = dict(request)
            if self.sandboxed and staged is not None:
                request["target"] = sandbox.TREE_MOUNT
                isolate = {"tree": str(staged), "hide": [str(self.stage), str(self.io)]}
                cwd_now = sandbox.WORK
            else:
                if staged is not None:
                    request["target"] = str(staged)
                isolate, cwd_now = None, str(cwd)
            message = {"op": protocol.OP_FORK, "id": ident, "request": request, "env": self.child_env(),
                       "cwd": cwd_now, "log": str(log), "key": key.hex(), "isolate": isolate}
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
        if self._tell(state, {"op": protocol.OP_KILL, "pid": pid}):
            return
        with self._cond:
            if pid not in state["exited"] and not self.sandboxed:
                kill_group(pid)

    def renice(self, state: dict, pid: int, niceness: int) -> None:
        self._tell(state, {"op": protocol.OP_RENICE, "pid": pid, "niceness": niceness})

    def _tell(self, state: dict, message: dict) -> bool:
        with self._lock:
            if state is self._state and self.alive:
                try:
                    self._proc.stdin.write(protocol.encode(message))
                    self._proc.stdin.flush()
                    return True
                except OSError:
                    pass
        return False

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
            if self._abandoned:  # Ctrl-C removed the copy: nothing to compare, nothing to write back
                return []
            # Only the code graded can change the copy; in the sandbox all of it ends with its
            # child, so the copy is compared again only after a child ended. (Unsandboxed, a
            # process it left behind may still write: compared every time.)
            changed = []
            if self._compared_at != self._exits or not self.sandboxed:
                self._compared_at = self._exits
                changed = self.kit_files.changes(self.kit_root) + self.bytecode.changes(self.kit_root)
            if changed:
                self.kit_files.restore(self.kit_root)
                self.bytecode.restore(self.kit_root)
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
        if self.sandboxed or proc.args[:1] != [sys.executable]:
            sandbox.kill(proc, timeout_s=2.0)  # bwrap's group: whatever is left inside goes too

    def close(self, *, wait: bool = True) -> None:
        """Stop the warm parent and remove the scratch folders. `wait=False` (the process is
        leaving): kill it instead of waiting for it to finish, since nothing is running in it."""
        with self._lock:
            if wait:
                self._stop(self._proc)
            elif self._proc is not None:
                _kill_now(self._proc, timeout_s=0)
            self._proc = None
        forget_folder(self.scratch)
        forget_folder(self.fast)

    def abandon(self) -> None:
        """On Ctrl-C, without waiting for anything: kill the warm parent (its sandbox, and every
        child with it) and remove the scratch folders. No warm parent is started again after this."""
        self._abandoned = True
        self.bytecode.stop()
        if self._proc is not None:
            _kill_now(self._proc, timeout_s=1.0)
        forget_folder(self.scratch)
        forget_folder(self.fast)


def _kill_now(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGKILL a warm parent: its sandbox and everything in it (waiting up to `timeout_s` for
    bwrap), or its process group when it runs unsandboxed."""
    if proc.args[:1] != [sys.executable]:
        sandbox.kill(proc, timeout_s=timeout_s)
    else:
        kill_group(proc.pid)


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
        """Kill what is left of this child's process group (the child itself has exited). In the
        sandbox there is nothing to do (its PID namespace ended with it) and its pid means
        another process out here."""
        if self.pid is not None and not self.zygote.sandboxed:
            kill_group_only(self.pid)

    def renice(self, niceness: int) -> bool:
        """Lower the CPU priority of the child and whatever it started (the warm parent does it)."""
        if self.pid is not None and self.poll() is None:
            self.zygote.renice(self.state, self.pid, niceness)
        return True


_shared: Zygote | None = None
_shared_lock = threading.Lock()


def shared_zygote(kit_now: KitFiles | None = None, *, wait: bool = True) -> Zygote:
    """The warm parent of this process, started (or restarted, when the kit changed) on demand;
    `wait=False`: perhaps not ready yet (see `Zygote.wait_ready`)."""
    global _shared
    kit_now = kit_now or KitFiles.take(ROOT)
    fingerprint = kit_now.fingerprint
    with _shared_lock:
        if _shared is None or _shared.fingerprint != fingerprint:
            if _shared is not None:
                _shared.close()
            _shared = Zygote(kit_files=kit_now, wait=wait)
        return _shared


@atexit.register
def _close_shared() -> None:
    if _shared is not None:
        _shared.close(wait=False)


def abandon_shared() -> None:
    """Ctrl-C: end this process's warm parent at once (see `Zygote.abandon`)."""
    if _shared is not None:
        _shared.abandon()

