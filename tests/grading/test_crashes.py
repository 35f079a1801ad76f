"""Crashes that are not the learner's fault cost nothing (kit/grading/runner.py): when the warm
parent, or the grading process's parent, is killed from outside in the middle of a grading, the
checks it was running are graded again in fresh processes, and nothing is blamed on the learner's
modules; a crash is blamed only when it reproduces."""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from kit import ROOT
from kit.grading.processes import descendants
from kit.grading.runner import run_checks
from kit.grading.zygote import Zygote


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _warm_parent(zygote: Zygote) -> int:
    """The warm parent's pid, as this process sees it (inside bwrap, or not)."""
    for pid in descendants(zygote._proc.pid):
        if b"kit.grading.warm_parent" in _cmdline(pid) and b"kit.grading.warm_parent" not in _cmdline(_parent(pid)):
            return pid
    raise AssertionError("no warm parent")


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def tree(tmp_path) -> Path:
    shutil.copytree(ROOT / "solution", tmp_path / "tree", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "tree"


def _grade_while(zygote: Zygote, tree: Path, attack) -> object:
    result = {}
    worker = threading.Thread(target=lambda: result.update(report=run_checks(tree, zygote=zygote, split=1)))
    worker.start()
    attack()
    worker.join(300)
    return result["report"]


def _when_a_child_runs(zygote: Zygote) -> tuple[int, list[int]]:
    """Wait until the warm parent has a grading child; (warm parent, its children)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not (zygote.alive and zygote._state["spawned"]):  # warmed up, and grading
            time.sleep(0.05)
            continue
        try:
            warm = _warm_parent(zygote)
        except AssertionError:  # a new warm parent is on its way
            time.sleep(0.05)
            continue
        children = [p for p in descendants(warm) if _parent(p) == warm]
        if children:
            time.sleep(0.4)  # some checks in
            return warm, children
        time.sleep(0.02)
    raise AssertionError("no grading child started")


def test_killing_the_warm_parent_costs_the_learner_nothing(zygote, tree):
    def attack():
        warm, _ = _when_a_child_runs(zygote)
        os.kill(warm, signal.SIGKILL)

    report = _grade_while(zygote, tree, attack)
    assert report.score == 100, [c.message for c in report.checks if not c.passed]
    assert not [w for w in report.warnings if "unsandboxed" not in w], report.warnings


def test_killing_the_grading_process_s_parent_costs_the_learner_nothing(zygote, tree):
    def attack():
        _, children = _when_a_child_runs(zygote)
        for child in children:
            os.kill(child, signal.SIGKILL)

    report = _grade_while(zygote, tree, attack)
    assert report.score == 100, [c.message for c in report.checks if not c.passed]


def test_a_crash_that_reproduces_is_blamed(zygote, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "solution", tree, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tree / "services/api_gateway/monitoring.py", "a", encoding="utf-8") as handle:
        handle.write("\ndef build_timeline(spans):\n    import os\n    os._exit(7)\n")
    report = run_checks(tree, zygote=zygote)
    failed = {c.id: c.message for c in report.checks if not c.passed}
    assert failed and all("exited with code 7" in m for m in failed.values()), failed
