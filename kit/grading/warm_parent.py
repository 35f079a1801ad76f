"""The warm parent ("zygote"): `python -m kit.grading.warm_parent --serve`.

It imports the dependencies the services and checks use (FastAPI, OpenTelemetry, httpx, respx,
pytest, ...) and collects the kit's checks, once, but never any learner code; then, for every
request from the grading process, it `fork()`s a fresh grading child (`kit.child.main`) that
puts that request's target on `sys.path` and runs the checks. Each child starts from the same
clean state (a copy of the warm parent) and costs a fraction of a new interpreter; the warm
parent waits for it and reports its exit code. For one tree, a crashed check's restart is a
fork, not a new interpreter; for a whole class (`kit.instructor.batch`), every submission is.

It speaks the protocol in `kit.grading.protocol` on stdin/stdout (`kit.grading.zygote.Zygote` is
the other end). When stdin closes, it kills every child still running and exits.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import select
import signal
import sys
import tempfile
import traceback
from pathlib import Path

os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"


from kit import ROOT  # noqa: E402
from kit.child.checks_list import read_checks  # noqa: E402
from kit.child.main import be_the_child  # noqa: E402
from kit.course import load_course  # noqa: E402
from kit.grading import fastapi_caches, protocol  # noqa: E402
from kit.grading.processes import kill_group, renice_tree  # noqa: E402

#: What the warm parent imports once, so that no child pays for it. Never learner code. What only
#: a few checks need (the OTLP exporters: about 50 ms) is left to the child that runs them, in
#: parallel with the other: here it would delay every child.
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
    "pytest_asyncio.plugin", "pydantic.v1",
    "kit.harness.mesh", "kit.harness.spans", "kit.traces.text", "kit.harness.expect", "kit.harness.learner",
)

#: Optional modules that the warm modules import only if they are installed, and that nothing
#: graded needs: fakeredis's vector sets (numpy), httpcore's trio backend, httpx's command line
#: (click), structlog's pretty tracebacks in its console renderer (rich: the checks read log
#: events, never how a console would show them). They are hidden while the warm parent
#: imports, so it starts as fast as on an installation without them (about 0.17 s less where
#: they are all installed), and visible again afterwards: a learner's code that imports one of
#: them gets it, in its own grading child.
OPTIONAL_UNUSED = ("numpy", "trio", "httpx._main", "rich")


# -- the warm parent ---------------------------------------------------------------------------

def _warm_up() -> list[dict]:
    """Import the dependencies and the checks once (`kit.child.checks_list.read_checks`); return
    the checks' metadata."""
    import kit.grading.integrity  # noqa: F401 - used by every child
    fastapi_caches.install()
    with _hidden(OPTIONAL_UNUSED):
        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - an optional module missing only costs speed
                pass
    for name in _pytest_plugins():  # what every grading child's pytest session loads first
        importlib.import_module(name)
    try:
        checks = read_checks(ROOT, load_course())
    except Exception as exc:  # noqa: BLE001 - a check module that does not import, a bad tag
        where = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
        raise RuntimeError(f"the checks could not be collected: {where[-1] if where else exc}") from None
    if any(name == "services" or name.startswith("services.") for name in sys.modules):
        raise RuntimeError("collecting the checks imported learner code (services.*): "
                           "a check imports it at module level")
    return [check.to_dict() for check in checks]


def _pytest_plugins() -> list[str]:
    """pytest's own plugin modules, which its first session in a process imports."""
    try:
        from _pytest.config import default_plugins
    except ImportError:
        return []
    return [f"_pytest.{name}" for name in default_plugins if importlib.util.find_spec(f"_pytest.{name}")]


@contextlib.contextmanager
def _hidden(names: tuple[str, ...]):
    """While inside, `import name` raises ImportError for each of `names` not yet imported (as
    if it were not installed); afterwards they import as usual."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # the import system's "not importable" mark
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


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
        data = protocol.encode(message)
        while data:
            data = data[os.write(proto_out, data):]

    # The trial of the sandbox runs in a process of its own while this one imports.
    trial = _start_trial() if os.environ.get("WORKSHOP_SANDBOXED") == "1" else None
    try:
        checks = _warm_up()
    except Exception as exc:  # noqa: BLE001 - told to the grading process, which explains it
        traceback.print_exc()
        say({protocol.ERROR: f"{exc}"})
        return 1
    sys.stdout.flush(), sys.stderr.flush()
    sandbox_error = _trial_outcome(*trial) if trial is not None else None
    gc.freeze()  # what the warm-up built is never collected again, in any child (nor copied by it)
    say({protocol.READY: True, "checks": checks, "files": _kit_files_in_use(), "sandbox_error": sandbox_error})

    children: set[int] = set()
    pending = b""
    # A child's exit wakes the loop at once (SIGCHLD writes a byte into `woken`), so the grading
    # process learns of it without waiting for the next round of polling.
    woken, wake = os.pipe()
    os.set_blocking(woken, False), os.set_blocking(wake, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    try:
        while True:
            _reap(children, say)
            ready, _, _ = select.select([proto_in, woken], [], [], 0.5)
            if woken in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(woken, 4096)
            if proto_in not in ready:
                continue
            chunk = os.read(proto_in, 65536)
            if not chunk:
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                message = json.loads(line)
                if message["op"] == protocol.OP_FORK:
                    pid = os.fork()
                    if pid == 0:
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        os.close(woken), os.close(wake)
                        be_the_child(message, proto_in, proto_out)  # never returns
                    children.add(pid)
                    say({"id": message["id"], "pid": pid})
                elif message["op"] == protocol.OP_KILL and message["pid"] in children:
                    kill_group(message["pid"])
                elif message["op"] == protocol.OP_RENICE and message["pid"] in children:
                    renice_tree(message["pid"], int(message.get("niceness", 19)))
    finally:
        for pid in children:
            kill_group(pid)


def _start_trial() -> tuple[int, int, tempfile.TemporaryDirectory]:
    """Fork once as a grading child would isolate itself (kit.child.main); `_trial_outcome`
    says how it went."""
    from kit.child.main import trial_isolation

    scratch = tempfile.TemporaryDirectory(prefix="workshop-trial-")
    (Path(scratch.name) / "services").mkdir()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            trial_isolation(scratch.name)
            code = 0
        except BaseException as exc:  # noqa: BLE001
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end, scratch


def _trial_outcome(pid: int, read_end: int, scratch: tempfile.TemporaryDirectory) -> str | None:
    """None when the trial isolation worked, else why not (the grading process then grades
    unsandboxed and says so)."""
    said = b""
    while chunk := os.read(read_end, 4096):
        said += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    scratch.cleanup()
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return said.decode("utf-8", "replace") or f"exit status {os.waitstatus_to_exitcode(status)}"


def _reap(children: set[int], say) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.discard(pid)
            say({protocol.EXITED: pid, "rc": os.waitstatus_to_exitcode(status)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit.grading.warm_parent")
    parser.add_argument("--serve", action="store_true", required=True, help="be the warm parent (see the module doc)")
    parser.parse_args(argv)
    return serve()


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(exit_code)  # no teardown of a heap this size: the grading process is waiting for us
