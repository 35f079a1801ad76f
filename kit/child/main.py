"""The grading child: forked by the warm parent for one grading request, it runs the kit's checks
on one tree with pytest and `kit.child.recorder.Recorder`, which writes the signed events the
grading process follows (`kit.grading.protocol`). This is the only process that imports the
learner's code.

The fork happens twice: the first child takes a new session and process group (a kill takes
whatever the learner's code started) and only waits; the grading runs in the grandchild, so the
learner's code (whose parent is that waiter) cannot reach the warm parent through `os.getppid()`.

In the sandbox (the fork message's "isolate", see `kit.grading.zygote`), the first child opens
its log and its events FIFO, then enters namespaces of its own (`kit.grading.sandbox.enter_namespaces`:
its tree read-only at `/grading/tree`, the staging and exchange folders covered, no network, a
private /tmp); the grandchild is PID 1 of the new PID namespace and confines itself
(`become_init`) before any learner code runs: when it ends, everything the learner's code
started ends with it.
"""
from __future__ import annotations

import gc
import os
import random
import resource
import signal
import sys
import traceback
from pathlib import Path

import pytest

from kit import ROOT
from kit.child.recorder import Recorder
from kit.grading import sandbox
from kit.grading.processes import leave

#: No file the learner's code writes (output included) may grow past this.
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Nor may the grading process's address space: an allocation past it is a MemoryError in the
#: learner's code (the check fails, saying so), not a machine out of memory. The warm parent
#: uses about 0.25 GiB of it; a batch runs one grading process per core.
MAX_MEMORY_BYTES = 4 * 1024 * 1024 * 1024
#: The child's exit code when it could not isolate itself (the runner says "sandbox failed").
EXIT_SANDBOX_FAILED = 71


def pytest_args(request: dict) -> list[str]:
    """The pytest command line for one grading request (always the kit's own checks)."""
    checks = ROOT / "checks"
    paths = [n if os.path.isabs(n.split("::")[0]) else str(ROOT / n)
             for n in request.get("nodeids") or []] or [str(checks)]
    args = [*paths, "-c", str(checks / "pytest.ini"), "--rootdir", str(ROOT),
            "--target", str(request["target"]), "-p", "pytest_asyncio.plugin",
            "-p", "no:terminal", "-p", "no:cacheprovider", "-p", "no:randomly", "--assert=plain",
            # These two collect garbage several times at the end of a run (seconds, for a
            # process this size) to report warnings nobody reads here.
            "-p", "no:unraisableexception", "-p", "no:threadexception", "--capture=fd"]
    for nodeid in request.get("deselect") or []:
        args += ["--deselect", nodeid]
    if request.get("collect_only"):
        args.append("--collect-only")
    return args


def run(request: dict, key: bytes, events_fd: int | None = None) -> int:
    """Grade in this process: pytest with the Recorder, events to `request["events"]` (or to the
    open `events_fd`)."""
    events = events_fd if events_fd is not None else Path(request["events"])
    recorder = Recorder(events, float(request.get("timeout", 10.0)), key=key, doomed=request.get("doomed"))
    return int(pytest.main(pytest_args(request), plugins=[recorder]))


def isolate(isolation: dict) -> int:
    """Enter namespaces of its own (see the module doc), then fork the process that grades, PID 1
    of the new PID namespace, confined. Returns 0 in that process, its pid in this one."""
    sandbox.enter_namespaces(isolation["tree"], sandbox.TREE_MOUNT, hide=isolation.get("hide") or ())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(write_end)
            sandbox.become_init(sandbox.DEFAULT_NPROC, parent_alive=read_end)
            os.close(read_end)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            leave(EXIT_SANDBOX_FAILED)
        return 0
    os.close(read_end)  # the write end stays open while this process lives (become_init's check)
    return pid


def trial_isolation(tree: str) -> None:
    """What the warm parent runs once in a forked process: raises when isolation fails here."""
    pid = isolate({"tree": tree, "hide": []})
    if pid == 0:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError(f"the grading process could not confine itself (exit status {os.waitstatus_to_exitcode(status)})")


def be_the_child(message: dict, proto_in: int, proto_out: int) -> None:
    """In the forked child: a new process group, then one more fork. The grading runs in the
    grandchild; this process only waits for it and leaves the same way, so the learner's code
    (whose parent it is) cannot reach the warm parent through `os.getppid()`."""
    events_fd = log = None
    isolation = message.get("isolate")
    try:
        os.setsid()  # its own process group: a kill takes whatever the learner's code started
        os.close(proto_in)
        os.close(proto_out)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if isolation:
            # What it must keep, opened before its exchange folder is covered (the runner holds
            # the FIFO's read end, so this does not block).
            events_fd = os.open(message["request"]["events"], os.O_WRONLY | os.O_APPEND)
            os.dup2(log, 2)
            try:
                grandchild = isolate(isolation)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                leave(EXIT_SANDBOX_FAILED)
        else:
            grandchild = os.fork()
    except BaseException:  # noqa: BLE001
        leave(70)
    if grandchild == 0:
        _grade_here(message, log, events_fd)
    for fd in (log, events_fd):
        if fd is not None:
            os.close(fd)
    while True:
        try:
            _, status = os.waitpid(grandchild, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            leave(70)
    if os.WIFSIGNALED(status):  # leave the way it left, so the warm parent reports the signal
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    leave(os.waitstatus_to_exitcode(status))


def tune_interpreter() -> None:
    """The interpreter settings every grading child runs the checks with (after the warm
    parent's `gc.freeze()`)."""
    gc.set_threshold(20_000, 20, 20)
    random.seed(0)  # Python reseeds at fork; one seed for every child makes runs repeatable
    # A thread of the learner's that never sleeps holds the GIL for a whole switch interval
    # each time the checks wait on anything; a short interval keeps the checks moving.
    sys.setswitchinterval(0.0005)


def _grade_here(message: dict, log: int, events_fd: int | None = None) -> None:
    code = 70
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a huge write fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_AS, (MAX_MEMORY_BYTES, MAX_MEMORY_BYTES))
        os.environ.clear()
        os.environ.update(message["env"])
        os.chdir(message["cwd"])
        tune_interpreter()
        code = run(message["request"], bytes.fromhex(message["key"]), events_fd)
    except BaseException:  # noqa: BLE001 - whatever happens, this child must not return
        traceback.print_exc()
    finally:
        leave(code)
