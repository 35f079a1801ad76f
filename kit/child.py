"""The grading child process: runs the kit's own checks on one tree and writes events.

Two ways to run it:

    python -m kit.child --target T --events FILE [--timeout S] [--only X] [--deselect ID ...]

runs the checks once (the events key comes in `WORKSHOP_EVENTS_KEY`, hex); and

    python -m kit.child --serve

starts a **warm parent** (a "zygote"): it imports the dependencies the services and checks use
(FastAPI, OpenTelemetry, httpx, respx, pytest, ...) and the kit's checks, once, but never any
learner code; then, for every request on stdin, it `fork()`s a fresh child that puts that
request's target on `sys.path` and runs the checks with `kit.plugin.Recorder`. Each child starts
from the same clean state (a copy of the warm parent), costs a fraction of a new interpreter,
and is waited for by the zygote, which reports its exit code. This is what `kit.runner` uses:
for one tree, a crashed check's restart is a fork, not a new interpreter; for a whole class
(`kit.batch`), every submission is.

The zygote speaks JSON lines on stdin/stdout (`kit.runner.Zygote` is the other end):

    <- {"ready": true, "checks": [check meta, ...], "files": [...]}   once warm (or {"error": ...})
    -> {"op": "fork", "id": n, "request": {...}, "env": {...}, "cwd": dir, "log": file, "key": hex}
    <- {"id": n, "pid": pid}
    <- {"exited": pid, "rc": code}                            (negative: killed by that signal)
    -> {"op": "kill", "pid": pid}                             kills the child's process group

When stdin closes, it kills every child still running and exits.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import importlib
import json
import os
import random
import resource
import select
import signal
import sys
import tempfile
import traceback
from pathlib import Path

os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import pytest  # noqa: E402

from kit import ROOT  # noqa: E402
from kit.integrity import verify  # noqa: E402
from kit.plugin import Recorder  # noqa: E402

#: What the warm parent imports once, so that no child pays for it. Never learner code.
WARM_MODULES = (
    "asyncio", "sqlite3", "json", "logging", "uuid", "hashlib", "decimal",
    "fastapi", "fastapi.responses", "pydantic", "pydantic_settings",
    "anyio._backends._asyncio", "anyio.streams.memory", "anyio.streams.stapled", "anyio.streams.tls",
    "httpx", "respx", "structlog", "structlog.testing", "redis", "redis.asyncio", "fakeredis",
    "opentelemetry.trace", "opentelemetry.baggage", "opentelemetry.baggage.propagation",
    "opentelemetry.context", "opentelemetry.propagate", "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.sdk.resources", "opentelemetry.sdk.trace", "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.trace.sampling", "opentelemetry.sdk.trace.id_generator",
    "opentelemetry.sdk.trace.export.in_memory_span_exporter", "opentelemetry.util.http",
    "opentelemetry.propagators.b3", "opentelemetry.instrumentation.fastapi",
    "opentelemetry.instrumentation.httpx", "opentelemetry.instrumentation.sqlite3",
    "opentelemetry.instrumentation.redis",
    "pytest_asyncio.plugin", "kit.mesh", "kit.spans", "kit.traceview", "kit.expect", "kit.learner",
)

#: No file the learner's code writes (output included) may grow past this.
MAX_FILE_BYTES = 512 * 1024 * 1024


def pytest_args(request: dict) -> list[str]:
    """The pytest command line for one grading request (always the kit's own checks)."""
    checks = ROOT / "checks"
    paths = [n if os.path.isabs(n.split("::")[0]) else str(ROOT / n)
             for n in request.get("nodeids") or []] or [str(checks)]
    args = [*paths, "-c", str(checks / "pytest.ini"), "--rootdir", str(ROOT),
            "--target", str(request["target"]), "-p", "pytest_asyncio.plugin",
            "-p", "no:terminal", "-p", "no:cacheprovider", "-p", "no:randomly",
            # These two collect garbage several times at the end of a run (seconds, for a
            # process this size) to report warnings nobody reads here.
            "-p", "no:unraisableexception", "-p", "no:threadexception", "--capture=fd"]
    for nodeid in request.get("deselect") or []:
        args += ["--deselect", nodeid]
    if request.get("collect_only"):
        args.append("--collect-only")
    return args


def run(request: dict, key: bytes) -> int:
    """Grade in this process: pytest with the Recorder, events to `request["events"]`."""
    recorder = Recorder(Path(request["events"]), float(request.get("timeout", 10.0)),
                        request.get("only"), key=key, doomed=request.get("doomed"))
    return int(pytest.main(pytest_args(request), plugins=[recorder]))


# -- the warm parent ---------------------------------------------------------------------------

def _warm_up() -> list[dict]:
    """Import the dependencies and collect the checks once; return the checks' metadata."""
    import kit.integrity  # noqa: F401 - used by every child
    _cache_fastapi_endpoint_context()
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module missing only costs speed
            pass
    saved_path = list(sys.path)
    with tempfile.TemporaryDirectory(prefix="workshop-warm-") as scratch:
        (Path(scratch) / "tree" / "services").mkdir(parents=True)
        events = Path(scratch) / "events.jsonl"
        key = os.urandom(16)
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            code = run({"target": str(Path(scratch) / "tree"), "events": str(events), "collect_only": True}, key)
        lines = [verify(key, line) for line in events.read_text(encoding="utf-8").splitlines()]
    sys.path[:] = saved_path
    collected = [e for e in lines if e and e.get("event") == "collected"]
    if code not in (0, 5) or not collected:
        why = " ".join(line.strip() for line in said.getvalue().splitlines() if line.strip())
        raise RuntimeError(f"the checks could not be collected: {why or f'pytest exit code {code}'}")
    if any(name == "services" or name.startswith("services.") for name in sys.modules):
        raise RuntimeError("collecting the checks imported learner code (services.*): "
                           "a check imports it at module level")
    return collected[0]["checks"]


def _cache_fastapi_endpoint_context() -> None:
    """FastAPI reads the source of every endpoint function when a route is built (for its error
    messages), cached by the function object's id; the checks build ~200 apps per grading from
    the same functions, each a new closure, so it tokenises the same source again every time
    (about a tenth of a grading). Cache it by code location instead: the same file, line and
    name give the same answer. Does nothing if FastAPI no longer has this private function."""
    try:
        import fastapi.routing as routing
    except ImportError:
        return
    original = getattr(routing, "_extract_endpoint_context", None)
    if original is None:
        return
    cache: dict = {}

    def by_code_location(func):
        code = getattr(func, "__code__", None)
        if code is None:
            return original(func)
        key = (code.co_filename, code.co_firstlineno, getattr(func, "__name__", ""))
        if key not in cache:
            cache[key] = original(func)
        return cache[key]

    routing._extract_endpoint_context = by_code_location


def _kit_files_in_use() -> list[str]:
    """The kit's source files this process has imported, relative to the kit's root."""
    files = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "kit" or name.startswith("kit.")) and path:
            try:
                files.add(Path(path).resolve().relative_to(ROOT.resolve()).as_posix())
            except ValueError:
                pass
    return sorted(files)


def serve() -> int:
    """Be the warm parent: fork a fresh grading child for every request (see the module doc)."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray output of the warm-up goes to the log, never into the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grading process decides when we stop

    def say(message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(proto_out, data):]

    try:
        checks = _warm_up()
    except Exception as exc:  # noqa: BLE001 - told to the grading process, which explains it
        traceback.print_exc()
        say({"error": f"{exc}"})
        return 1
    sys.stdout.flush(), sys.stderr.flush()
    gc.collect()
    gc.freeze()  # what the warm-up built is never collected again, in any child
    say({"ready": True, "checks": checks, "files": _kit_files_in_use()})

    children: set[int] = set()
    pending = b""
    try:
        while True:
            _reap(children, say)
            ready, _, _ = select.select([proto_in], [], [], 0.02)
            if not ready:
                continue
            chunk = os.read(proto_in, 65536)
            if not chunk:
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == "fork":
                    pid = os.fork()
                    if pid == 0:
                        _be_the_child(message, proto_in, proto_out)  # never returns
                    children.add(pid)
                    say({"id": message["id"], "pid": pid})
                elif message["op"] == "kill" and message["pid"] in children:
                    _kill_group(message["pid"])
    finally:
        for pid in children:
            _kill_group(pid)


def _reap(children: set[int], say) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.discard(pid)
            say({"exited": pid, "rc": os.waitstatus_to_exitcode(status)})


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _be_the_child(message: dict, proto_in: int, proto_out: int) -> None:
    """In the forked child: a new process group, then one more fork. The grading runs in the
    grandchild; this process only waits for it and leaves the same way, so the learner's code
    (whose parent it is) cannot reach the warm parent through `os.getppid()`."""
    try:
        os.setsid()  # its own process group: a kill takes whatever the learner's code started
        os.close(proto_in)
        os.close(proto_out)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        grandchild = os.fork()
    except BaseException:  # noqa: BLE001
        _exit(70)
    if grandchild == 0:
        _grade_here(message)
    while True:
        try:
            _, status = os.waitpid(grandchild, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            _exit(70)
    if os.WIFSIGNALED(status):  # leave the way it left, so the warm parent reports the signal
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    _exit(os.waitstatus_to_exitcode(status))


def _grade_here(message: dict) -> None:
    code = 70
    try:
        log = os.open(message["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a huge write fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        os.environ.clear()
        os.environ.update(message["env"])
        os.chdir(message["cwd"])
        gc.set_threshold(20_000, 20, 20)
        random.seed(0)  # Python reseeds at fork; one seed for every child makes runs repeatable
        # A thread of the learner's that never sleeps holds the GIL for a whole switch interval
        # each time the checks wait on anything; a short interval keeps the checks moving.
        sys.setswitchinterval(0.0005)
        code = run(message["request"], bytes.fromhex(message["key"]))
    except BaseException:  # noqa: BLE001 - whatever happens, this child must not return
        traceback.print_exc()
    finally:
        _exit(code)


def _exit(code: int) -> None:
    """Leave now, whatever the learner's code left running (threads, atexit handlers)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit.child")
    parser.add_argument("--serve", action="store_true", help="be the warm parent (see the module doc)")
    parser.add_argument("--target")
    parser.add_argument("--events")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--deselect", action="append", default=[])
    parser.add_argument("--only", default=None, help="a step number or a criterion id")
    parser.add_argument("--only-nodeids", nargs="*", default=None)
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    if not args.target or not args.events:
        parser.error("--target and --events are required (or --serve)")
    key = bytes.fromhex(os.environ.pop("WORKSHOP_EVENTS_KEY", ""))
    request = {"target": args.target, "events": args.events, "timeout": args.timeout, "only": args.only,
               "deselect": args.deselect, "nodeids": args.only_nodeids}
    code = 70
    try:
        code = run(request, key)
    finally:
        _exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
