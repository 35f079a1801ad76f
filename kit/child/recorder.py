"""The pytest plugin that runs inside the grading child process and records every check.

It writes one JSON object per line to an events file, so that the parent (`kit.grading.runner`) can
follow progress, survive a child that dies half-way, and never import learner code itself:

    {"event": "collected", "checks": [{"nodeid", "id", "title", "step", "criterion", "todo"}, ...]}
    {"event": "started", "nodeid": ..., "limit": <seconds this check may take>}
    {"event": "result", "nodeid": ..., "status": "passed" | "failed", "message": ...}
    {"event": "warning", "message": ...}      (the learner's code tampered with the grading)
    {"event": "importing" | "imported", "module": ...}   (a learner module's code starts, ends)

Every line is signed with a key the grading process chose (`kit.grading.integrity.sign`) and numbered
(`seq`), so the parent ignores lines that anyone else wrote into the file.

Before the first check, a `kit.grading.integrity.ModuleGuard` remembers the kit's, the checks' and
pytest's code; after each check, anything the learner's code replaced (say, `kit.harness.expect.fail`
made to do nothing) fails that check with the reason, is put back, and is reported as a warning.

Each check runs under a time limit (SIGALRM): a learner's endless loop fails that check with
"timed out after N s in <file> line L" and the next check runs. After a first timeout the limit
of the checks still to run drops to `AFTER_TIMEOUT_S` (a correct check takes well under a
second), so one endless loop reached by every check cannot hold a learner up for minutes.

A check still stuck `STUCK_GRACE_S` after its timeout (the loop swallowed the timeout, or the
check's teardown waits for a thread that never returns) is reported then and there, and the
child exits; so does a child in which learner code still runs in another thread after a
timeout. `kit.grading.runner` then runs the checks left in a fresh child: no check ever inherits a
spinning thread from an earlier one.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from kit.child.checks_list import ChecksError, info, validate
from kit.course import load_course
from kit.harness.expect import CheckFailure, CheckTimeout
from kit.child.guard import ModuleGuard
from kit.grading.processes import leave as _leave
from kit.grading.protocol import EVENT, sign
from kit.results import Cause, CheckInfo
from kit.harness.learner import describe_exception, learner_frame

MAX_MESSAGE = 4000
AFTER_TIMEOUT_S = 3.0
STUCK_GRACE_S = 1.0
#: The most a learner module's own code may take to import, inside a check's limit.
IMPORT_LIMIT_S = 5.0
#: The child's exit code when it leaves after a stuck check (the runner starts a fresh one).
EXIT_STUCK = 75


def check_info(item: pytest.Item) -> CheckInfo | None:
    """The check's description, from its `@check(...)` tag and docstring (None: not a check);
    see `kit.child.checks_list.info`."""
    marker = item.get_closest_marker("check")
    return None if marker is None else info(item.nodeid, item.obj, marker.kwargs)


def _message(excinfo: pytest.ExceptionInfo, timeout_s: float, import_hung: str | None = None) -> str:
    exc = excinfo.value
    if isinstance(exc, CheckFailure):
        text = exc.learner_message()
    elif isinstance(exc, CheckTimeout) and import_hung:
        text = (f"timed out: importing {import_hung} took more than {IMPORT_LIMIT_S:g} s"
                f"{learner_frame(exc)} (an endless loop at import?)")
    elif isinstance(exc, CheckTimeout):
        text = f"timed out after {timeout_s:g} s{learner_frame(exc)}"
    elif isinstance(exc, SystemExit):
        text = f"your code called sys.exit({exc.code!r}){learner_frame(exc)}; a service must never exit the process"
    elif isinstance(exc, AssertionError):
        text = str(exc) or "an assertion failed"
    else:
        text = f"your code raised {describe_exception(exc)}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "\n... (cut)"


def _where(frame) -> str:
    """" in <learner file> line L" for the innermost learner frame of a live stack, or ""."""
    while frame is not None:
        if "/services/" in frame.f_code.co_filename:
            return f" in {frame.f_code.co_filename.rsplit('/services/', 1)[-1]} line {frame.f_lineno}"
        frame = frame.f_back
    return ""


def _learner_code_running_elsewhere(target: str | None) -> bool:
    """True when a thread other than this one is executing the learner's code right now."""
    if not target:
        return False
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        while ident != me and frame is not None:
            if frame.f_code.co_filename.startswith(target):
                return True
            frame = frame.f_back
    return False


class _WatchedLoader:
    """A learner module's loader that says when the module's code starts and ends running,
    and gives it at most `IMPORT_LIMIT_S` to run (an import takes milliseconds)."""

    def __init__(self, loader, name: str, recorder: "Recorder") -> None:
        self._loader, self._name, self._recorder = loader, name, recorder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._recorder._emit(event=EVENT.IMPORTING, module=self._name)
        token = self._recorder._import_started(self._name)
        try:
            self._loader.exec_module(module)
        finally:
            self._recorder._import_ended(token)
        self._recorder._emit(event=EVENT.IMPORTED, module=self._name)

    def __getattr__(self, name):  # get_source, get_filename, ... as the real loader
        return getattr(self._loader, name)


class _ImportWatcher:
    """On `sys.meta_path`, for the learner's `services.*` modules only: reports each import's
    start and end (so that a process that dies while importing names the module), and refuses
    at once the modules that ended a grading process before (`doomed`), instead of dying again
    for every check."""

    def __init__(self, recorder: "Recorder", doomed: dict[str, str]) -> None:
        self._recorder, self._doomed = recorder, doomed

    def find_spec(self, name, path, target=None):
        if not (name == "services" or name.startswith("services.")):
            return None
        if name in self._doomed:
            raise ImportError(self._doomed[name])
        for finder in sys.meta_path:
            if isinstance(finder, _ImportWatcher) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _WatchedLoader(spec.loader, name, self._recorder)
                return spec
        return None


class Recorder:
    """Records collection and results as JSON lines; enforces the per-check time limit."""

    def __init__(self, events: Path | int, timeout_s: float = 10.0, *,
                 key: bytes = b"", doomed: dict[str, str] | None = None) -> None:
        fd = events if isinstance(events, int) else os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.timeout_s = timeout_s
        self.limit_s = timeout_s
        self.course = load_course()
        self._timed_out: str | None = None    # the check that ran past its limit, if any
        self._importing: list[str] = []       # learner modules whose code is running now
        self._import_hung: str | None = None  # the module whose import ran past its limit
        self._result_path(fd, key)
        self._watcher = _ImportWatcher(self, dict(doomed or {}))
        sys.meta_path.insert(0, self._watcher)

    def pytest_configure(self, config) -> None:
        # Learners see each check's own message, never pytest's traceback; pytest would build a
        # long one (source, locals) for every failure, which costs more than the checks.
        config.option.tbstyle = "line"

    def pytest_unconfigure(self, config) -> None:
        if self._watcher in sys.meta_path:
            sys.meta_path.remove(self._watcher)

    def pytest_collectreport(self, report) -> None:
        if report.failed:  # a check module that does not even import: the kit itself is broken
            text = str(report.longrepr).strip().splitlines()
            raise pytest.UsageError(f"{report.nodeid}: {text[-1] if text else 'could not be collected'}")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items) -> None:
        try:
            checks = validate([(item.nodeid, check_info(item)) for item in items], self.course)
        except ChecksError as exc:
            raise pytest.UsageError(str(exc)) from None
        self._emit(event=EVENT.COLLECTED, checks=[check.to_dict() for check in checks])

    def _result_path(self, fd: int, key: bytes) -> None:
        """Build the path a verdict takes, before any learner code runs, as closures: the
        events file, its key, the checks' outcomes and the guard live in these functions' own
        variables, never in attributes of this instance, so code that finds the Recorder (say,
        through `gc`) cannot wrap or rewrite how results are reported. pytest registers the two
        hooks below when the Recorder is registered; replacing them on the instance afterwards
        changes nothing. Only progress events (`_emit`: collected, importing, imported) can be
        written through the instance."""
        write, signed, guard_class, leave, where = os.write, sign, ModuleGuard, _leave, _where
        describe, running_elsewhere, info_of = _message, _learner_code_running_elsewhere, check_info
        timeout_class, failed_cause, timeout_cause, tampered = CheckTimeout, Cause.FAILED, Cause.TIMEOUT, Cause.TAMPERED
        seq = [0]
        failures: dict[str, str] = {}
        finished: set[str] = set()            # checks whose test function ran to its end
        guard: list = []                      # [changes, restore] of the ModuleGuard, once taken
        recorder = self

        def emit(**event) -> None:
            event["seq"] = seq[0]
            seq[0] += 1
            line = signed(key, event).encode()
            while line:  # one write per line: a crash never leaves half a line behind a whole one
                line = line[write(fd, line):]

        def finish(item, message: str | None, cause: Cause = failed_cause) -> None:
            """Emit the check's result (after undoing and reporting any tampering)."""
            replaced = guard[0]() if guard else []
            if replaced:
                guard[1]()
                shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
                warning = (f"your code replaced part of the grader while {info_of(item).id} ran ({shown}); "
                           "that check fails, the originals were put back")
                emit(event=EVENT.WARNING, message=warning)
                message, cause = f"not graded: {warning}", tampered
            emit(event=EVENT.RESULT, nodeid=item.nodeid, status="passed" if message is None else "failed",
                 message=message or "", cause=None if message is None else cause.value)

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(item, nextitem):
            if not guard:  # before the first check, so before any learner code runs
                taken = guard_class().take()
                guard[:] = [taken.changes, taken.restore]
            recorder._timed_out = recorder._import_hung = None
            timed_out = [False]
            limit_s = recorder.limit_s
            emit(event=EVENT.STARTED, nodeid=item.nodeid, limit=limit_s)

            def on_alarm(signum, frame):
                if not timed_out[0]:
                    timed_out[0] = True
                    recorder._timed_out = item.nodeid
                    if recorder._importing:
                        recorder._import_hung = recorder._importing[-1]
                    signal.setitimer(signal.ITIMER_REAL, STUCK_GRACE_S)
                    raise timeout_class()
                # Still stuck after the timeout: report it now and leave (the runner goes on).
                finish(item, failures.pop(item.nodeid, None)
                       or f"timed out after {limit_s:g} s{where(frame)}", timeout_cause)
                leave(EXIT_STUCK)

            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, limit_s)
            try:
                outcome = yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            message = failures.pop(item.nodeid, None)
            if message is None and outcome.excinfo is not None:
                exc = outcome.excinfo[1]
                message = (f"the check was stopped by {type(exc).__name__}"
                           f"{': ' + str(exc) if str(exc) else ''} before it finished (did your code call "
                           "pytest.exit() or raise KeyboardInterrupt?)")
            elif message is None and item.nodeid not in finished:
                message = "the check did not run to its end (something stopped it before its verdict)"
            finish(item, message, timeout_cause if timed_out[0] else failed_cause)
            if timed_out[0] and running_elsewhere(getattr(item.config, "workshop_target", None)
                                                  and str(item.config.workshop_target)):
                leave(EXIT_STUCK)  # a thread still runs the learner's code: the next check starts afresh

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            report = outcome.get_result()
            # The outcome itself, not the report's passed/failed properties: a property can be
            # replaced on the class by the code being graded.
            if call.when == "call" and report.outcome == "passed":
                finished.add(item.nodeid)
            if report.outcome == "failed" and item.nodeid not in failures:
                if call.excinfo is not None:
                    failures[item.nodeid] = describe(call.excinfo, recorder.limit_s, recorder._import_hung)
                    if call.excinfo.errisinstance(timeout_class):
                        recorder.limit_s = min(recorder.limit_s, AFTER_TIMEOUT_S)
                else:
                    failures[item.nodeid] = str(report.longrepr)[-MAX_MESSAGE:]
            elif report.outcome == "skipped" and item.nodeid not in failures:
                failures[item.nodeid] = "skipped: " + str(report.longrepr[-1] if isinstance(report.longrepr, tuple)
                                                          else report.longrepr)

        progress = (EVENT.COLLECTED, EVENT.IMPORTING, EVENT.IMPORTED)

        def progress_only(**event) -> None:
            if event.get("event") in progress:
                emit(**event)

        self._emit = progress_only
        self.pytest_runtest_protocol = pytest_runtest_protocol
        self.pytest_runtest_makereport = pytest_runtest_makereport

    def _import_started(self, module: str):
        """Shorten the check's alarm to `IMPORT_LIMIT_S` while `module`'s code runs."""
        self._importing.append(module)
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        if remaining <= 0 or self._timed_out is not None or remaining <= IMPORT_LIMIT_S:
            return None
        signal.setitimer(signal.ITIMER_REAL, IMPORT_LIMIT_S)
        return remaining, time.monotonic()

    def _import_ended(self, token) -> None:
        self._importing.pop()
        if token is None or self._timed_out is not None:
            return
        remaining, started = token
        signal.setitimer(signal.ITIMER_REAL, max(remaining - (time.monotonic() - started), 0.001))
