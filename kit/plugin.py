"""The pytest plugin that runs inside the grading child process and records every check.

It writes one JSON object per line to an events file, so that the parent (`kit.runner`) can
follow progress, survive a child that dies half-way, and never import learner code itself:

    {"event": "collected", "checks": [{"nodeid", "id", "title", "step", "criterion", "todo"}, ...]}
    {"event": "started", "nodeid": ..., "limit": <seconds this check may take>}
    {"event": "result", "nodeid": ..., "status": "passed" | "failed", "message": ...}
    {"event": "warning", "message": ...}      (the learner's code tampered with the grading)

Every line is signed with a key the grading process chose (`kit.integrity.sign`) and numbered
(`seq`), so the parent ignores lines that anyone else wrote into the file.

Before the first check, a `kit.integrity.ModuleGuard` remembers the kit's, the checks' and
pytest's code; after each check, anything the learner's code replaced (say, `kit.expect.fail`
made to do nothing) fails that check with the reason, is put back, and is reported as a warning.

Each check runs under a time limit (SIGALRM): a learner's endless loop fails that check with
"timed out after N s in <file> line L" and the next check runs. After a first timeout the limit
of the checks still to run drops to `AFTER_TIMEOUT_S` (a correct check takes well under a
second), so one endless loop reached by every check cannot hold a learner up for minutes.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

import pytest

from kit.course import load_course
from kit.expect import CheckFailure, CheckTimeout
from kit.integrity import ModuleGuard, sign
from kit.learner import describe_exception

MAX_MESSAGE = 4000
AFTER_TIMEOUT_S = 3.0


def check_meta(item: pytest.Item) -> dict | None:
    marker = item.get_closest_marker("check")
    if marker is None:
        return None
    doc = (getattr(item.obj, "__doc__", None) or "").strip().splitlines()
    name = item.originalname if hasattr(item, "originalname") else item.name
    check_id = name.removeprefix("test_")
    return {"nodeid": item.nodeid, "id": check_id,
            "title": doc[0].strip() if doc else check_id.replace("_", " "),
            "step": int(marker.kwargs["step"]), "criterion": marker.kwargs["criterion"],
            "todo": marker.kwargs.get("todo")}


def _message(excinfo: pytest.ExceptionInfo, timeout_s: float) -> str:
    exc = excinfo.value
    if isinstance(exc, CheckFailure):
        text = exc.learner_message()
    elif isinstance(exc, CheckTimeout):
        text = f"timed out after {timeout_s:g} s{_learner_frame(exc)}"
    elif isinstance(exc, SystemExit):
        text = f"your code called sys.exit({exc.code!r}){_learner_frame(exc)}; a service must never exit the process"
    elif isinstance(exc, AssertionError):
        text = str(exc) or "an assertion failed"
    else:
        text = f"your code raised {describe_exception(exc)}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "\n... (cut)"


def _learner_frame(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/services/" in f.filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f" in {frame.filename.rsplit('/services/', 1)[-1]} line {frame.lineno}"


class Recorder:
    """Records collection and results as JSON lines; enforces the per-check time limit."""

    def __init__(self, events: Path, timeout_s: float = 10.0, only: str | None = None,
                 key: bytes = b"") -> None:
        self._fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._key = key
        self._seq = 0
        self.timeout_s = timeout_s
        self.limit_s = timeout_s
        self.only = only
        self.failures: dict[str, str] = {}
        self.finished: set[str] = set()   # checks whose test function ran to its end
        self.course = load_course()
        self._guard: ModuleGuard | None = None

    def _emit(self, **event) -> None:
        event["seq"] = self._seq
        self._seq += 1
        line = sign(self._key, event).encode()
        while line:  # one write per line: a crash never leaves half a line behind a whole one
            line = line[os.write(self._fd, line):]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        checks, seen, keep, dropped = [], {}, [], []
        for item in items:
            meta = check_meta(item)
            if meta is None:
                raise pytest.UsageError(f"{item.nodeid} has no @check(step=..., criterion=...) tag")
            self.course.step(meta["step"])
            self.course.criterion(meta["criterion"])
            if meta["id"] in seen:
                raise pytest.UsageError(f"check id {meta['id']!r} is used by {seen[meta['id']]} and {item.nodeid}")
            seen[meta["id"]] = item.nodeid
            if self.only is None or self.only in (str(meta["step"]), meta["criterion"]):
                checks.append(meta)
                keep.append(item)
            else:
                dropped.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
        self._emit(event="collected", checks=checks)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if self._guard is None:  # before the first check, so before any learner code runs
            self._guard = ModuleGuard().take()
        self._emit(event="started", nodeid=item.nodeid, limit=self.limit_s)

        def on_alarm(signum, frame):
            raise CheckTimeout()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.limit_s)
        try:
            outcome = yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        message = self.failures.pop(item.nodeid, None)
        if message is None and outcome.excinfo is not None:
            exc = outcome.excinfo[1]
            message = (f"the check was stopped by {type(exc).__name__}"
                       f"{': ' + str(exc) if str(exc) else ''} before it finished (did your code call "
                       "pytest.exit() or raise KeyboardInterrupt?)")
        elif message is None and item.nodeid not in self.finished:
            message = "the check did not run to its end (something stopped it before its verdict)"
        replaced = self._guard.changes()
        if replaced:
            self._guard.restore()
            shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
            warning = (f"your code replaced part of the grader while {check_meta(item)['id']} ran ({shown}); "
                       "that check fails, the originals were put back")
            self._emit(event="warning", message=warning)
            message = f"not graded: {warning}"
        self._emit(event="result", nodeid=item.nodeid,
                   status="passed" if message is None else "failed", message=message or "")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.when == "call" and report.passed:
            self.finished.add(item.nodeid)
        if report.failed and item.nodeid not in self.failures:
            if call.excinfo is not None:
                self.failures[item.nodeid] = _message(call.excinfo, self.limit_s)
                if call.excinfo.errisinstance(CheckTimeout):
                    self.limit_s = min(self.limit_s, AFTER_TIMEOUT_S)
            else:
                self.failures[item.nodeid] = str(report.longrepr)[-MAX_MESSAGE:]
        elif report.skipped and item.nodeid not in self.failures:
            self.failures[item.nodeid] = "skipped: " + str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
