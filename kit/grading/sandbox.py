"""Run grading inside a bubblewrap (`bwrap`) sandbox, when the machine allows it.

One sandbox for one command (the learner's code runs in it, confined from the start):

    ok, why = available()                 # (False, "bwrap is not installed ...") -> grade unsandboxed, warn
    spec = SandboxSpec(tree=target, kit=kit_copy, rw_binds=(events_fifo, log))
    proc = popen(spec, argv, stdout=PIPE)
    kill(proc)                            # the sandbox and everything started inside it, at once

One warm parent for many trees (what docs/sandbox.md recommends): the warm parent runs in an
unconfined sandbox (`confined=False`) that sees a staging folder, and every child it forks
isolates itself before any learner code runs:

    spec = SandboxSpec(kit=kit_copy, ro_binds=(stage,), rw_binds=(io,), confined=False,
                       mount_points=(TREE_MOUNT,))
    popen(spec, [sys.executable, "-m", "kit.grading.warm_parent", "--serve"], ...)
    # in the forked child (warm_parent -> kit.child.main), files it needs already open:
    enter_namespaces(stage / "7", TREE_MOUNT, hide=(stage, io))
    # in the grandchild it forks (PID 1 of the new namespace), before grading:
    become_init(nproc, parent_alive=read_end)

What the sandbox gives the code inside (each property is proved by tests/grading/test_sandbox.py):

- **its own PID namespace**: the command is PID 2 under bwrap's init; when the command exits,
  or bwrap is killed, or the process that started bwrap dies (`--die-with-parent`), the kernel
  kills every process of the namespace, a grandchild started with `setsid()` or a double fork
  included;
- **no network** (its own network namespace: a loopback that leads nowhere), its own IPC and
  host name;
- **a private, size-limited `/tmp`** (a new tmpfs, `tmp_bytes`) holding `HOME` and the working
  folder, and a small `/dev/shm` (`shm_bytes`); everything else is read-only (`/` and `/dev`
  are remounted read-only), so `tmp_bytes + shm_bytes` (plus what `rw_binds` files may grow
  to, each capped by the grading child's RLIMIT_FSIZE) is all it can write;
- **a read-only view of only what grading needs**: `/usr` (and the `/bin`, `/lib*` links),
  the Python installation (`python_paths()`), the kit's private copy (at `KIT_MOUNT`), the tree being graded,
  `ro_binds`; never the kit's real folder, `solution/` or `selftest/` (unless the graded tree
  is one), the instructor's home or anything under `hidden` (other submissions): `command`
  refuses a bind that would show one;
- **an environment built from an allow-list** (`ENV_ALLOW`: locale, `PYTHONHASHSEED`, ...)
  plus `spec.env`; `HOME=/tmp/home`, `TMPDIR=/tmp`, a `PATH` of the visible folders. No token,
  no `REDIS_URL`, nothing else of the caller's environment;
- **a limit on processes**: `nproc` tasks (processes and threads) may be created in the sandbox.

How the process limit works here (measured on Linux 6.18, as root): RLIMIT_NPROC does nothing
for the kit run as root, **even inside bwrap's user namespace**: bwrap maps the sandbox's uid 0
to the host's uid 0, and the kernel never applies RLIMIT_NPROC to the host's root user
(`copy_process`: `user != INIT_USER`), with or without capabilities. What works instead, without
cgroups: since Linux 6.14 `kernel.pid_max` belongs to each PID namespace, so the bootstrap sets
the sandbox's own `pid_max` to 300 + nproc and `ns_last_pid` to 299 (PIDs below 300 are only
handed out before the first wrap): a fork past the limit fails with EAGAIN, as with
RLIMIT_NPROC. RLIMIT_NPROC is set as well; it is what applies when the kit runs as an ordinary
user (the sandbox's uid then maps to that user). On a kernel older than 6.14 with the kit run
as root there is no process limit (`available()` says so): `pid_max` is machine-wide there and
is left alone.

Why a bootstrap: launched by root, bwrap leaves the command uid 0 of its user namespace, which is
the host's uid 0 for file permissions: with every capability dropped, it could still write the
host's own sysctls through `/proc/sys` (tested: `kernel.printk_ratelimit`). So before the
command runs, a few lines of Python (`BOOTSTRAP`, run with `python -I -S`, then `exec`) set the
process limit, enter a nested user and mount namespace whose `user.max_user_namespaces` is 0 (no
further user namespaces, so no way back to any capability: what bwrap's `--disable-userns`
does, which cannot be used here since it would come before these steps), bind `/proc/sys` and
`/proc/sysrq-trigger` read-only over themselves, and drop every capability (bounding set,
ambient, effective, permitted). bwrap has already set `no_new_privs`.

Killing: `popen` starts bwrap in a new session; `kill(proc)` sends SIGKILL to that process
group (bwrap, and through `--die-with-parent` its init in the sandbox, whose death ends every
process of the PID namespace) and reaps bwrap.

Why the warm parent is sandboxed once and its children isolate themselves (and not one
sandboxed warm parent per tree), with the measurements, and what the runner must change: see
docs/sandbox.md.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import site
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The kit's real folder (this file is <root>/kit/grading/sandbox.py, in the real folder or in
#: a private copy: both count as "the kit" and are checked against).
KIT_ROOT = Path(__file__).resolve().parents[2]

#: Variables of the caller's environment that reach the sandbox (when set); everything else is
#: dropped. `spec.env` adds fixed values (PYTHONPATH, ...).
ENV_ALLOW = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME", "TZ",
             "PYTHONHASHSEED", "OTEL_SEMCONV_STABILITY_OPT_IN", "TERM", "NO_COLOR", "COLUMNS",
             # The kit's own tests strip propagation headers in the mesh to prove the checks catch a
             # client that injects nothing (checks/conftest.py); it can only make a check stricter.
             "WORKSHOP_MESH_STRIP_HEADERS")

#: Where the sandbox's home and working folder are (inside its private /tmp).
HOME = "/tmp/home"
WORK = "/tmp/work"
#: Where the kit's private copy is seen inside (outside /tmp: a child's new /tmp covers /tmp);
#: `environment` puts it on PYTHONPATH.
KIT_MOUNT = "/grading/kit"
#: Where `enter_namespaces` shows a child its tree (the warm parent's sandbox needs it in
#: `mount_points`).
TREE_MOUNT = "/grading/tree"

DEFAULT_TMP_BYTES = 64 * 1024 * 1024
DEFAULT_SHM_BYTES = 8 * 1024 * 1024
#: Tasks (processes and threads) the code inside may create. A grading child uses a handful of
#: threads; two children share one sandbox when a tree's checks are split.
DEFAULT_NPROC = 256

#: Exit code of the bootstrap when it could not confine the sandbox (the command did not run).
BOOTSTRAP_FAILED = 125

_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")

# The bootstrap: runs first inside the sandbox (`python -I -S -c BOOTSTRAP nproc -- argv...`),
# confines, then execs argv. Standard library only, no site: it costs ~10 ms. `confine` is also
# defined in this module (exec'd below) for a process that confines itself.
BOOTSTRAP = r'''
import ctypes, os, resource, sys

def kernel_at_least(major, minor):
    """Whether the running Linux is at least major.minor ("6.18.44-fc-v857" -> 6.18)."""
    found = []
    for part in os.uname().release.split(".")[:2]:
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        found.append(int(digits or 0))
    return tuple(found + [0, 0])[:2] >= (major, minor)

def confine(nproc):
    """Process limit, no further user namespaces, /proc/sys read-only, no capabilities."""
    libc = ctypes.CDLL(None, use_errno=True)

    def call(result, what):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def write(path, text):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    root = os.getuid() == 0
    if nproc and root and kernel_at_least(6, 14):
        # kernel.pid_max is this PID namespace's own since 6.14 (machine-wide before: never
        # written there). PIDs are then handed out from 300 up to pid_max - 1.
        write("/proc/sys/kernel/pid_max", str(300 + nproc))
        write("/proc/sys/kernel/ns_last_pid", "299")
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    if root:
        # A nested user namespace (full capabilities inside it) with a new mount namespace:
        # forbid any further user namespace, cover /proc/sys, then drop every capability.
        uid, gid = os.getuid(), os.getgid()
        call(libc.unshare(0x10000000 | 0x00020000), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", f"{uid} {uid} 1")
        write("/proc/self/gid_map", f"{gid} {gid} 1")
        write("/proc/sys/user/max_user_namespaces", "0")
        MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384
        for path in ("/proc/sys", "/proc/sysrq-trigger"):
            if os.path.exists(path):
                call(libc.mount(path.encode(), path.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
                call(libc.mount(None, path.encode(), None,
                                MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
                     f"read-only {path}")
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        libc.prctl(24, cap, 0, 0, 0)              # PR_CAPBSET_DROP
    libc.prctl(47, 4, 0, 0, 0)                    # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    call(libc.syscall(126, ctypes.byref(Header(0x20080522, 0)), (Data * 2)()), "capset")  # SYS_capset

if __name__ == "__main__":
    try:
        confine(int(sys.argv[1]))
    except Exception as exc:
        sys.stderr.write(f"sandbox: could not confine the sandbox: {exc}\n")
        os._exit(125)
    argv = sys.argv[3:]   # sys.argv[2] is "--"
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"sandbox: cannot run {argv[0]}: {exc}\n")
        os._exit(127)
'''

_namespace: dict = {"__name__": "kit.grading.sandbox._bootstrap"}
exec(compile(BOOTSTRAP, "<sandbox bootstrap>", "exec"), _namespace)  # noqa: S102 - our own constant: one source for both uses
#: confine(nproc): what the bootstrap does, for a process that confines itself (it must be
#: uid 0 of a user namespace that owns its PID namespace, with its capabilities: inside bwrap).
confine = _namespace["confine"]
kernel_at_least = _namespace["kernel_at_least"]


# -- one warm parent for many trees: each forked child isolates itself --------------------------

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = (
    0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    enc = (lambda v: None if v is None else v.encode())
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def enter_namespaces(tree: str | Path, mount_at: str = TREE_MOUNT, hide: Sequence[str | Path] = (), *,
                     tmp_bytes: int = DEFAULT_TMP_BYTES, shm_bytes: int = DEFAULT_SHM_BYTES,
                     network: bool = False) -> None:
    """In a child forked by a warm parent that runs in an unconfined sandbox (`confined=False`):
    new mount, PID, network, IPC and UTS namespaces; `tree` bound read-only at `mount_at` (an
    empty folder the sandbox has, outside /tmp: `mount_points`), each folder of `hide` (the staging folder of
    every submission, the runner's exchange folder) covered by an empty read-only tmpfs, a new
    size-limited /tmp and /dev/shm. Open what the child must keep (its log, its events FIFO)
    before. The next process this one forks is PID 1 of the new PID namespace: it must call
    `become_init` first; when it ends, every process it started ends (setsid'd or not)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS | (0 if network else _CLONE_NEWNET)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount(str(tree), mount_at, None, _MS_BIND | _MS_REC)
    _mount(None, mount_at, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    for folder in hide:
        _mount("tmpfs", str(folder), "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k,mode=555")
    _mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={tmp_bytes},mode=1777")
    _mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={shm_bytes},mode=1777")
    os.makedirs(HOME, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)


def become_init(nproc: int = DEFAULT_NPROC, parent_alive: int | None = None) -> None:
    """In the first process forked after `enter_namespaces` (PID 1 of its namespace): killed
    when its parent dies (PR_SET_PDEATHSIG), a session and process group of its own (a signal to
    its group, `os.kill(0, ...)`, would otherwise reach its parent outside the namespace; PID 1
    itself ignores SIGKILL sent from inside), a /proc of its own PID namespace (it sees no
    process of the warm parent's), then `confine(nproc)`: its own process limit, no user
    namespaces, /proc/sys read-only, no capabilities. `parent_alive`: the read end of a pipe
    whose write end only the parent holds; if the parent is already gone, this process exits at
    once (the parent-death signal only covers a parent that dies after it is set). Since it has
    its own group, the warm parent's kill of the child's group misses it: the parent-death
    signal is what ends it."""
    import ctypes
    import select
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)        # PR_SET_PDEATHSIG
    os.setsid()
    _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    confine(nproc)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)        # again: entering a user namespace cleared it
    if parent_alive is not None:
        ready, _, _ = select.select([parent_alive], [], [], 0)
        if ready and os.read(parent_alive, 1) == b"":
            os._exit(70)


class SandboxError(ValueError):
    """A sandbox that would break a promise (show a hidden folder, say); nothing was started."""


def python_paths() -> tuple[Path, ...]:
    """What the running interpreter needs to be visible: its prefixes (a venv and the Python it
    was made from), its site-packages and, when it exists, the user's site-packages."""
    found: list[Path] = []
    candidates = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
                  *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    candidates.append(os.path.dirname(os.path.realpath(sys.executable)))
    for name in candidates:
        path = Path(name).resolve()
        if path.exists() and path not in found and not _within(path, Path("/usr")):  # /usr: always shown
            found.append(path)
    return tuple(found)


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandbox shows and allows. Paths are bound at their own path, read-only unless
    in `rw_binds`; folders are refused (`SandboxError`) when they would show something hidden."""

    tree: Path | None = None                  # the tree being graded
    kit: Path | None = None                   # the kit's private copy, seen at KIT_MOUNT
    ro_binds: tuple[Path, ...] = ()           # more read-only files or folders
    rw_binds: tuple[Path, ...] = ()           # existing files (events FIFO, log) it may write
    python: tuple[Path, ...] = field(default_factory=python_paths)
    tmp_bytes: int = DEFAULT_TMP_BYTES        # size of the private /tmp (home, work folder)
    shm_bytes: int = DEFAULT_SHM_BYTES        # size of /dev/shm
    nproc: int = DEFAULT_NPROC                # tasks it may create (0: no limit)
    env: Mapping[str, str] = field(default_factory=dict)   # set inside, after the allow-list
    env_allow: tuple[str, ...] = ENV_ALLOW
    cwd: str = WORK                           # inside the private /tmp, or a bound folder
    network: bool = False
    hidden: tuple[Path, ...] = ()             # never shown: other submissions, a class folder
    mount_points: tuple[str, ...] = ()        # empty folders to create (for enter_namespaces)
    confined: bool = True                     # False: see `command` (a warm parent only)

    def protected(self) -> list[Path]:
        """Folders no bind may show: the kit's real folder, the home folder, `hidden`."""
        paths = [KIT_ROOT, Path.home(), *self.hidden]
        return [Path(p).resolve() for p in paths]


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check(spec: SandboxSpec, path: Path, role: str) -> Path:
    path = Path(path).resolve()
    if not path.exists():
        raise SandboxError(f"{role} {path} does not exist")
    if path == Path("/"):
        raise SandboxError(f"{role} is the whole file system")
    tree = Path(spec.tree).resolve() if spec.tree is not None else None
    for secret in spec.protected():
        if _within(secret, path):  # the bind would show all of `secret`
            raise SandboxError(f"{role} {path} would show {secret}")
    if role == "the graded tree" or (tree is not None and _within(path, tree)):
        return path  # the graded tree may be anywhere, solution/ included
    hidden = [*(KIT_ROOT / part for part in ("solution", "selftest", ".git")), *(Path(h).resolve() for h in spec.hidden)]
    if role != "a Python folder":  # only a virtual environment may live in the kit's real folder
        hidden.append(KIT_ROOT)
    for folder in hidden:
        if _within(path, folder):
            raise SandboxError(f"{role} {path} is inside {folder}, which the sandbox never shows")
    return path


def _binds(spec: SandboxSpec) -> list[tuple[str, Path, Path]]:
    """(bwrap option, source, destination) for every bind, in a working order: folders before
    what is inside them. Everything is seen at its own path but the kit's copy (`KIT_MOUNT`)."""
    binds: list[tuple[str, Path]] = []
    for path in spec.python:
        binds.append(("--ro-bind", _check(spec, path, "a Python folder")))
    if spec.tree is not None:
        binds.append(("--ro-bind", _check(spec, spec.tree, "the graded tree")))
    binds += [("--ro-bind", _check(spec, p, "a read-only bind")) for p in spec.ro_binds]
    binds += [("--bind", _check(spec, p, "a writable bind")) for p in spec.rw_binds]
    # A folder inside another bound folder needs no bind of its own unless it is writable.
    ro = [p for option, p in binds if option == "--ro-bind"]
    kept = [(o, p) for o, p in binds
            if o == "--bind" or not any(q != p and _within(p, q) for q in ro)]
    unique = [(option, path, path) for option, path in dict.fromkeys(kept)]
    if spec.kit is not None:
        kit = _check(spec, spec.kit, "the kit's copy")
        unique.append(("--ro-bind", kit, Path(KIT_MOUNT)))
    return sorted(unique, key=lambda item: len(item[2].parts))


def environment(spec: SandboxSpec, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment the sandboxed command gets."""
    environ = os.environ if environ is None else environ
    env = {name: environ[name] for name in spec.env_allow if name in environ}
    bins = [str(p / "bin") for p in spec.python if (p / "bin").is_dir()]
    bins += [str(Path(sys.executable).parent)]
    env["PATH"] = ":".join(dict.fromkeys([*bins, "/usr/local/bin", "/usr/bin", "/bin"]))
    env.update({"HOME": HOME, "TMPDIR": "/tmp", "USER": "learner", "LOGNAME": "learner",
                "PYTHONDONTWRITEBYTECODE": "1"})
    if spec.kit is not None:
        env["PYTHONPATH"] = KIT_MOUNT
    env.update(spec.env)
    return env


def command(spec: SandboxSpec, argv: Sequence[str]) -> list[str]:
    """The bwrap command line that runs `argv` in the sandbox `spec` describes.

    With `spec.confined` (the default) `argv` runs after `BOOTSTRAP` has confined it. Without,
    `argv` runs as uid 0 of the sandbox's user namespace with its capabilities there (it can
    create namespaces and mount, inside the sandbox only, and can write the host's sysctls):
    only for a warm parent that never runs learner code and confines every child it forks
    (`enter_namespaces` in the child, `become_init` in the grandchild)."""
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--unshare-all", "--unshare-user"]
    if spec.network:
        args.append("--share-net")
    args += ["--die-with-parent", "--new-session", "--hostname", "grading", "--clearenv"]
    for name, value in environment(spec).items():
        args += ["--setenv", name, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    for name in _ETC_FILES:
        args += ["--ro-bind-try", name, name]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(spec.tmp_bytes), "--tmpfs", "/tmp",
             "--size", str(spec.shm_bytes), "--tmpfs", "/dev/shm",
             "--dir", HOME, "--dir", WORK]
    for option, source, destination in _binds(spec):
        args += [option, str(source), str(destination)]
    for point in spec.mount_points:
        args += ["--dir", point]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", spec.cwd]
    if not spec.confined:
        return [*args, *argv]
    python = os.path.realpath(sys.executable)
    return [*args, python, "-I", "-S", "-c", BOOTSTRAP, str(spec.nproc), "--", *argv]


def popen(spec: SandboxSpec, argv: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start `argv` in the sandbox (in a new session, for `kill`). `env` and `cwd` are the
    sandbox's business (`spec.env`, `spec.cwd`) and cannot be passed."""
    for name in ("env", "cwd", "start_new_session", "preexec_fn"):
        if name in kwargs:
            raise TypeError(f"popen() sets {name} itself")
    return subprocess.Popen(command(spec, argv), start_new_session=True, env={"PATH": "/usr/bin:/bin"},
                            **kwargs)


def kill(proc: subprocess.Popen, timeout_s: float = 5.0) -> int | None:
    """Kill a sandbox started by `popen` and everything inside it; returns bwrap's exit code.
    SIGKILL to bwrap's process group: bwrap dies, so its init inside does (`--die-with-parent`),
    and with it every process of the sandbox's PID namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None


def bwrap_version() -> str | None:
    """bwrap's version ("0.8.0"), or None when it is not installed."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    try:
        out = subprocess.run([bwrap, "--version"], check=False, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+(?:\.\d+)+)", out)
    return match.group(1) if match else "unknown"


def process_limit() -> str:
    """How `nproc` is enforced on this machine, in a few words."""
    if os.getuid() != 0:
        return "RLIMIT_NPROC"
    if kernel_at_least(6, 14):
        return "the sandbox's own kernel.pid_max"
    return "none (root ignores RLIMIT_NPROC; a per-namespace pid_max needs Linux 6.14+)"


@functools.lru_cache(maxsize=1)
def available() -> tuple[bool, str]:
    """(True, what the sandbox is) when grading can run in bwrap here, else (False, why), one
    line each. Starts one tiny sandbox to be sure (about 30 ms, once per process)."""
    if not sys.platform.startswith("linux"):
        return False, f"no sandbox on {sys.platform} (bubblewrap needs Linux): grading runs unsandboxed"
    version = bwrap_version()
    if version is None:
        return False, "bubblewrap (bwrap) is not installed: grading runs unsandboxed (apt-get install bubblewrap)"
    try:
        done = subprocess.run(command(SandboxSpec(), ["/bin/true"]), check=False, capture_output=True, text=True,
                              timeout=20, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.SubprocessError, SandboxError) as exc:
        return False, f"bwrap {version} could not start a sandbox ({exc}): grading runs unsandboxed"
    if done.returncode != 0:
        said = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())[-300:]
        return False, (f"bwrap {version} could not start a sandbox (user namespaces refused? "
                       f"{said or f'exit code {done.returncode}'}): grading runs unsandboxed")
    return True, f"sandboxed with bwrap {version}; process limit: {process_limit()}"
