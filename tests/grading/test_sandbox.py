"""The grading sandbox (kit.grading.sandbox): each promise, proved by running bwrap for real.

Every test starts one or two tiny sandboxes (~50 ms each); all of them skip, with the reason,
where `available()` says no sandbox can be made here.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from kit import ROOT
from kit.grading import sandbox
from kit.grading.sandbox import SandboxError, SandboxSpec

OK, WHY = sandbox.available()
pytestmark = pytest.mark.skipif(not OK, reason=WHY)

PYTHON = os.path.realpath(sys.executable)


def inside(spec: SandboxSpec, code: str, *, pass_fds: tuple[int, ...] = (), timeout: float = 20) -> dict:
    """Run `code` with Python in the sandbox; its last line of output, as JSON."""
    done = subprocess.run(sandbox.command(spec, [PYTHON, "-c", textwrap.dedent(code)]), check=False, capture_output=True,
                          text=True, timeout=timeout, pass_fds=pass_fds)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"exit {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return json.loads(lines[-1])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small graded tree (not under /tmp's top level names the tests look at)."""
    folder = tmp_path / "submission"
    (folder / "services" / "shared").mkdir(parents=True)
    (folder / "services" / "shared" / "telemetry.py").write_text("X = 1\n")
    return folder


def _eof_within(fd: int, seconds: float) -> bool:
    """Whether every writer of the pipe `fd` is gone within `seconds` (reads what comes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready and os.read(fd, 4096) == b"":
            return True
    return False


# A process that leaves a grandchild behind: setsid, then a double fork; the grandchild holds
# the write end of a pipe (fd W) open and sleeps ten minutes.
LEAVE_BEHIND = """
import os, time
W = {fd}
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(W, b"started\\n")
        time.sleep(600)
    os._exit(0)
os.wait()
"""


def test_available_says_yes_or_why_in_one_line():
    assert isinstance(OK, bool) and WHY and "\n" not in WHY
    assert "bwrap" in WHY


def test_available_without_bwrap_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on this PATH
    ok, why = sandbox.available.__wrapped__()
    assert not ok and "not installed" in why and "unsandboxed" in why and "\n" not in why


def test_a_setsid_double_forked_grandchild_dies_with_the_sandbox(tree):
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(sandbox.command(SandboxSpec(tree=tree), [PYTHON, "-c", LEAVE_BEHIND.format(fd=write)]),
                                pass_fds=(write,))
        os.close(write)
        assert proc.wait(20) == 0
        assert os.read(read, 100) == b"started\n"   # the grandchild ran...
        assert _eof_within(read, 5), "a process started inside outlived the sandbox"   # ...and is gone
    finally:
        os.close(read)


def test_kill_ends_the_sandbox_and_everything_inside(tree):
    read, write = os.pipe()
    try:
        code = LEAVE_BEHIND.format(fd=write) + "\ntime.sleep(600)\n"   # the command itself hangs too
        proc = sandbox.popen(SandboxSpec(tree=tree), [PYTHON, "-c", code], pass_fds=(write,))
        os.close(write)
        assert os.read(read, 100) == b"started\n"
        started = time.monotonic()
        assert sandbox.kill(proc) is not None
        assert _eof_within(read, 5), "kill() left a process of the sandbox running"
        assert time.monotonic() - started < 5
    finally:
        os.close(read)


def test_no_network(tree):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # reachable from outside
        seen = inside(SandboxSpec(tree=tree), f"""
            import json, socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
                said = "connected"
            except OSError as exc:
                said = type(exc).__name__
            print(json.dumps({{"said": said, "interfaces": [n for _, n in socket.if_nameindex()]}}))
        """)
    assert seen["said"] != "connected"
    assert seen["interfaces"] == ["lo"]


def test_tmp_is_private_and_starts_empty():
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="outside-") as outside:
        spec = SandboxSpec()  # (tmp_path is under /tmp: a tree bound there would show in /tmp)
        first = inside(spec, """
            import json, os
            open("/tmp/left-by-the-first", "w").write("x")
            print(json.dumps({"tmp": sorted(os.listdir("/tmp")), "home": os.environ["HOME"], "cwd": os.getcwd()}))
        """)
        assert Path(outside.name).name not in first["tmp"]
        assert first["tmp"] == ["home", "left-by-the-first", "work"]
        assert first["home"] == "/tmp/home" and first["cwd"] == "/tmp/work"
        assert not Path("/tmp/left-by-the-first").exists()
        second = inside(spec, 'import json, os; print(json.dumps(sorted(os.listdir("/tmp"))))')
        assert second == ["home", "work"]


def test_only_what_grading_needs_is_visible(tree, tmp_path):
    kit_copy = tmp_path / "kit-copy"
    (kit_copy / "kit").mkdir(parents=True)
    (kit_copy / "kit" / "__init__.py").write_text("")
    secret_solution = next((ROOT / "solution").rglob("*.py"))
    home = Path.home()
    with tempfile.NamedTemporaryFile(dir=home, prefix=".sandbox-test-secret-") as secret:
        seen = inside(SandboxSpec(tree=tree, kit=kit_copy), f"""
            import json, os
            paths = {{"solution": {str(secret_solution)!r}, "kit_root": {str(ROOT / "course.toml")!r},
                     "selftest": {str(ROOT / "selftest")!r}, "home_secret": {secret.name!r},
                     "tree": {str(tree / "services" / "shared" / "telemetry.py")!r},
                     "kit_copy": "/grading/kit/kit/__init__.py", "kit_copy_outside": {str(kit_copy)!r},
                     "etc_passwd": "/etc/passwd"}}
            print(json.dumps({{name: os.path.exists(path) for name, path in paths.items()}}))
        """)
    assert seen == {"solution": False, "kit_root": False, "selftest": False, "home_secret": False,
                    "tree": True, "kit_copy": True, "kit_copy_outside": False, "etc_passwd": False}


def test_grading_solution_shows_solution_and_nothing_else_of_the_kit():
    seen = inside(SandboxSpec(tree=ROOT / "solution"), f"""
        import json, os
        print(json.dumps([os.path.isdir({str(ROOT / "solution" / "services")!r}),
                          os.path.exists({str(ROOT / "exercise")!r}), sorted(os.listdir({str(ROOT)!r}))]))
    """)
    assert seen == [True, False, ["solution"]]


def test_binds_that_would_show_hidden_folders_are_refused(tree, tmp_path):
    for spec in (SandboxSpec(tree=ROOT), SandboxSpec(tree=ROOT.parent), SandboxSpec(tree=Path.home()),
                 SandboxSpec(tree=tree, kit=ROOT), SandboxSpec(tree=tree, ro_binds=(ROOT / "selftest",)),
                 SandboxSpec(tree=tree, ro_binds=(ROOT / "solution",)), SandboxSpec(tree=tree, ro_binds=(ROOT / "kit",)),
                 SandboxSpec(tree=tree, ro_binds=(tmp_path,), hidden=(tree,)),
                 SandboxSpec(tree=tree, ro_binds=(Path("/"),))):
        with pytest.raises(SandboxError):
            sandbox.command(spec, ["true"])


def test_environment_is_built_from_the_allow_list(tree, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("REDIS_URL", "redis://example:6379")
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    seen = inside(SandboxSpec(tree=tree, env={"PYTHONPATH": "/nowhere"}),
                  "import json, os; print(json.dumps(dict(os.environ)))")
    assert "GITHUB_TOKEN" not in seen and "REDIS_URL" not in seen
    assert "ghp_secret" not in json.dumps(seen)
    assert seen["PYTHONHASHSEED"] == "7" and seen["PYTHONPATH"] == "/nowhere" and seen["HOME"] == "/tmp/home"
    allowed = set(sandbox.ENV_ALLOW) | {"PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "PYTHONDONTWRITEBYTECODE",
                                        "PYTHONPATH", "PWD"}
    assert set(seen) <= allowed


def test_disk_written_is_limited(tree):
    seen = inside(SandboxSpec(tree=tree, tmp_bytes=4 << 20, shm_bytes=1 << 20), """
        import json, os
        said = {}
        for name, path, size in (("tmp", "/tmp/big", 8 << 20), ("shm", "/dev/shm/big", 2 << 20),
                                 ("root", "/big", 1), ("dev", "/dev/big", 1)):
            try:
                with open(path, "wb") as f:
                    f.write(b"x" * size)
                said[name] = "written"
            except OSError as exc:
                said[name] = exc.strerror
        os.remove("/tmp/big")
        with open("/tmp/small", "wb") as f:
            f.write(b"x" * 1024)  # under the limit: fine once the big file is gone
        print(json.dumps(said))
    """)
    assert seen["tmp"] == seen["shm"] == "No space left on device"
    assert seen["root"] == seen["dev"] == "Read-only file system"


@pytest.mark.skipif(sandbox.process_limit().startswith("none"), reason=sandbox.process_limit())
def test_forking_past_the_process_limit_fails(tree):
    seen = inside(SandboxSpec(tree=tree, nproc=20), """
        import json, os, time
        started = 0
        error = None
        for _ in range(100):
            try:
                pid = os.fork()
            except OSError as exc:
                error = exc.strerror
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            started += 1
        print(json.dumps({"started": started, "error": error}))
    """)
    assert seen["error"] == "Resource temporarily unavailable"
    assert 10 <= seen["started"] <= 20
    assert Path("/proc/sys/kernel/pid_max").read_text().strip() != "320"  # the machine's own is untouched


def test_the_tree_and_the_kit_copy_are_read_only(tree, tmp_path):
    kit_copy = tmp_path / "kit-copy"
    (kit_copy / "kit").mkdir(parents=True)
    seen = inside(SandboxSpec(tree=tree, kit=kit_copy), f"""
        import json, os
        said = []
        for action in (lambda: open({str(tree / "services" / "shared" / "telemetry.py")!r}, "a").write("Y = 2"),
                       lambda: os.mkdir({str(tree / "services" / "new")!r}),
                       lambda: os.remove({str(tree / "services" / "shared" / "telemetry.py")!r}),
                       lambda: open("/grading/kit/kit/evil.py", "w")):
            try:
                action()
                said.append("done")
            except OSError as exc:
                said.append(exc.strerror)
        print(json.dumps(said))
    """)
    assert seen == ["Read-only file system"] * 4
    assert (tree / "services" / "shared" / "telemetry.py").read_text() == "X = 1\n"


def test_no_capability_no_user_namespace_no_host_sysctl(tree):
    seen = inside(SandboxSpec(tree=tree), """
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        said = {"caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0]}
        said["unshare_user"] = libc.unshare(0x10000000) == 0
        said["unshare_mount"] = libc.unshare(0x00020000) == 0
        try:
            os.close(os.open("/proc/sys/kernel/printk_ratelimit", os.O_WRONLY))
            said["sysctl"] = "writable"
        except OSError as exc:
            said["sysctl"] = exc.strerror
        print(json.dumps(said))
    """)
    assert seen == {"caps": "0000000000000000", "unshare_user": False, "unshare_mount": False,
                    "sysctl": "Read-only file system"}


def test_a_warm_parent_child_can_isolate_itself(tmp_path):
    """Design (b): one warm parent in an unconfined sandbox that sees a staging folder; a forked
    child enters its own namespaces and sees only its submission; its grandchild is PID 1,
    confined, and takes everything it started with it."""
    staging = tmp_path / "staging"
    for name in ("one", "two"):
        (staging / name / "services").mkdir(parents=True)
        (staging / name / "services" / f"{name}.py").write_text("")
    module = tmp_path / "sandbox_copy.py"  # the kit's real folder is never shown: a copy, as the kit's own
    shutil.copy(sandbox.__file__, module)
    read, write = os.pipe()
    code = f"""
        import importlib.util, json, os, sys, time
        spec = importlib.util.spec_from_file_location("sandbox_under_test", {str(module)!r})
        sb = importlib.util.module_from_spec(spec); sys.modules[spec.name] = sb; spec.loader.exec_module(sb)
        W = {write}
        pid = os.fork()
        if pid == 0:                                   # the grading child
            sb.enter_namespaces({str(staging / "one")!r}, "/grading/tree", hide=[{str(staging)!r}], tmp_bytes=1 << 20)
            init = os.fork()
            if init == 0:                              # PID 1: grades
                sb.become_init(16)
                if os.fork() == 0:
                    os.setsid()
                    time.sleep(600)                     # left behind, holding W
                    os._exit(0)
                said = {{"pid": os.getpid(), "tree": os.listdir("/grading/tree/services"),
                        "staging": os.path.exists({str(staging)!r}) and os.listdir({str(staging)!r}), "tmp": sorted(os.listdir("/tmp")),
                        "procs": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                        "caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0]}}
                started = 0
                try:
                    for _ in range(50):
                        if os.fork() == 0:
                            time.sleep(30)
                            os._exit(0)
                        started += 1
                except OSError as exc:
                    said["fork"] = exc.strerror
                said["started"] = started
                print(json.dumps(said), flush=True)
                os._exit(0)
            os.waitpid(init, 0)
            os._exit(0)
        os.close(W)
        os.waitpid(pid, 0)
    """
    spec = SandboxSpec(ro_binds=(staging, module), confined=False, mount_points=("/grading/tree",))
    try:
        done = subprocess.run(sandbox.command(spec, [PYTHON, "-c", textwrap.dedent(code)]), check=False, capture_output=True,
                              text=True, timeout=30, pass_fds=(write,))
        os.close(write)
        assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["pid"] == 1 and seen["caps"] == "0000000000000000"
        assert seen["tree"] == ["one.py"] and seen["staging"] in (False, []) and seen["tmp"] == ["home", "work"]
        assert len(seen["procs"]) == 2 and "1" in seen["procs"]   # itself and its setsid'd child only
        assert seen["fork"] == "Resource temporarily unavailable" and seen["started"] <= 16
        assert _eof_within(read, 5), "a process started by the grading child outlived it"
    finally:
        os.close(read)
        shutil.rmtree(staging, ignore_errors=True)


def test_killing_a_warm_parent_child_ends_its_whole_namespace(tmp_path):
    """The runner's kill reaches the forked child (the namespace's PID 1 is its child): PID 1
    dies with it (parent-death signal), and so does everything in the namespace."""
    (tmp_path / "staging" / "one" / "services").mkdir(parents=True)
    module = tmp_path / "sandbox_copy.py"
    shutil.copy(sandbox.__file__, module)
    read, write = os.pipe()
    code = f"""
        import importlib.util, os, signal, sys, time
        spec = importlib.util.spec_from_file_location("sandbox_under_test", {str(module)!r})
        sb = importlib.util.module_from_spec(spec); sys.modules[spec.name] = sb; spec.loader.exec_module(sb)
        W = {write}
        pid = os.fork()
        if pid == 0:                                   # the grading child
            sb.enter_namespaces({str(tmp_path / "staging" / "one")!r}, "/grading/tree")
            alive_r, alive_w = os.pipe()
            if os.fork() == 0:                         # PID 1
                os.close(alive_w)
                sb.become_init(16, parent_alive=alive_r)   # its own session: a group kill misses it
                if os.fork() == 0:
                    os.setsid()
                    os.write(W, b"started\\n")
                    time.sleep(600)
                time.sleep(600)
            time.sleep(600)
        os.close(W)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)                   # what the warm parent does on a timeout
        os.waitpid(pid, 0)
        time.sleep(600)                                # the warm parent (and its sandbox) goes on
    """
    spec = SandboxSpec(ro_binds=(tmp_path / "staging", module), confined=False, mount_points=("/grading/tree",))
    proc = sandbox.popen(spec, [PYTHON, "-c", textwrap.dedent(code)], pass_fds=(write,))
    os.close(write)
    try:
        assert os.read(read, 100) == b"started\n"
        assert _eof_within(read, 5), "killing the grading child left its namespace running"
        assert proc.poll() is None  # while the warm parent's sandbox still runs
    finally:
        sandbox.kill(proc)
        os.close(read)


def test_the_grading_process_cannot_signal_its_parent(tmp_path):
    """PID 1 of a child's namespace sees no parent (getppid() is 0); a kill of its own process
    group stays inside its namespace, and PID 1 ignores it."""
    (tmp_path / "staging" / "one" / "services").mkdir(parents=True)
    module = tmp_path / "sandbox_copy.py"
    shutil.copy(sandbox.__file__, module)
    code = f"""
        import importlib.util, json, os, signal, sys
        spec = importlib.util.spec_from_file_location("sandbox_under_test", {str(module)!r})
        sb = importlib.util.module_from_spec(spec); sys.modules[spec.name] = sb; spec.loader.exec_module(sb)
        pid = os.fork()
        if pid == 0:                                   # the grading child, in its own session as today
            os.setsid()
            sb.enter_namespaces({str(tmp_path / "staging" / "one")!r}, "/grading/tree")
            init = os.fork()
            if init == 0:
                sb.become_init(16)
                parent = os.getppid()
                os.kill(parent, signal.SIGKILL)        # the learner's "kill my parent"
                print(json.dumps({{"parent": parent, "alive": True}}), flush=True)
                os._exit(0)
            _, status = os.waitpid(init, 0)
            os._exit(3 if os.waitstatus_to_exitcode(status) == 0 else 4)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({{"child": os.waitstatus_to_exitcode(status)}}), flush=True)
    """
    spec = SandboxSpec(ro_binds=(tmp_path / "staging", module), confined=False, mount_points=("/grading/tree",))
    done = subprocess.run(sandbox.command(spec, [PYTHON, "-c", textwrap.dedent(code)]), check=False,
                          capture_output=True, text=True, timeout=30)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr[-2000:]
    assert lines == [{"parent": 0, "alive": True}, {"child": 3}]   # nobody was killed
