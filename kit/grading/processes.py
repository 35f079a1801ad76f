"""Process helpers the grading process and the warm parent share."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from kit.grading.errors import GradingError

_temporary: set[str] = set()
_temporary_lock = threading.Lock()
_closing = threading.Event()        # set once an interrupted run starts removing its folders
#: How long a copy under way when an interrupted run cleans up may take to end (it may put its
#: folder back: the folders are swept again after this).
_SETTLE_S = 0.3


#: A memory-backed folder (`fast=True`) is used only when it has at least this much room.
FAST_MIN_FREE_BYTES = 1 << 30


def temporary_folder(prefix: str, *, fast: bool = False) -> Path:
    """A new temporary folder, remembered until `forget_folder`, so that an interrupted run can
    remove every one (`remove_temporary`) even when it cannot unwind. `fast`: in memory
    (`/dev/shm`) when the machine has one with room to spare, where creating a file costs a
    fraction of what it costs on a disk; only for what is small and bounded (the kit's copy,
    the learner files), never for what the learner's code writes. A TMPDIR set in the
    environment wins."""
    with _temporary_lock:
        if _closing.is_set():      # the run is being interrupted: start nothing new
            raise GradingError("interrupted")
        path = tempfile.mkdtemp(prefix=prefix, dir=_fast_base() if fast else None)
        _temporary.add(path)
    return Path(path)


def _fast_base() -> str | None:
    if os.environ.get("TMPDIR"):  # asked for a place of its own: every temporary folder goes there
        return None
    base = "/dev/shm"
    try:
        room = os.statvfs(base)
    except OSError:
        return None
    if room.f_bavail * room.f_frsize < FAST_MIN_FREE_BYTES or not os.access(base, os.W_OK | os.X_OK):
        return None
    return base


def forget_folder(path: Path, *, remove: bool = True) -> None:
    with _temporary_lock:
        _temporary.discard(str(path))
    if remove:
        _remove(path)


def remove_temporary() -> None:
    """Remove every temporary folder still remembered (Ctrl-C, on the way out). No new one is made
    after this starts; a copy another thread had under way when it began may put a folder back,
    so the folders are swept once more after such copies have had time to end."""
    with _temporary_lock:
        _closing.set()
        paths = list(_temporary)
        _temporary.clear()
    for sweep in range(2):
        if sweep:
            time.sleep(_SETTLE_S)
        for path in paths:
            _remove(path)


def _remove(path: str | Path, *, tries: int = 30) -> None:
    """Remove a folder, again while a process that is being killed (a sandbox ending) still
    writes into it and so makes a pass fail half-way; gives up after about three seconds."""
    for attempt in range(tries):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.1)


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
