"""Process helpers the grading process and the warm parent share."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

_temporary: set[str] = set()
_temporary_lock = threading.Lock()


def temporary_folder(prefix: str) -> Path:
    """A new temporary folder, remembered until `forget_folder`, so that an interrupted run can
    remove every one (`remove_temporary`) even when it cannot unwind."""
    path = tempfile.mkdtemp(prefix=prefix)
    with _temporary_lock:
        _temporary.add(path)
    return Path(path)


def forget_folder(path: Path, *, remove: bool = True) -> None:
    with _temporary_lock:
        _temporary.discard(str(path))
    if remove:
        shutil.rmtree(path, ignore_errors=True)


def remove_temporary() -> None:
    """Remove every temporary folder still remembered (Ctrl-C, on the way out)."""
    with _temporary_lock:
        paths = list(_temporary)
        _temporary.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid`, and `pid` itself (in case it left the group)."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_group_only(pgid: int) -> None:
    """SIGKILL the process group `pgid` (its leader may be gone already)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (as this process's /proc shows them), new sessions included."""
    parents: dict[int, list[int]] = {}
    for stat in os.listdir("/proc"):
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(stat))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, ()))
    return found


def renice_tree(pid: int, niceness: int) -> None:
    """Give `pid`, everything below it and all their threads the CPU priority `niceness`."""
    for process in descendants(pid):
        try:
            threads = [int(t) for t in os.listdir(f"/proc/{process}/task")]
        except OSError:
            threads = [process]
        for thread in threads:
            try:
                os.setpriority(os.PRIO_PROCESS, thread, niceness)
            except OSError:
                pass


def leave(code: int) -> None:
    """Leave now, whatever the learner's code left running (threads, atexit handlers)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)
