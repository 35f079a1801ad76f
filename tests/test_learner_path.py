"""The learner's path: the workshop can be followed in order, one step at a time.

(1) The cumulative trees. For N in 1..6, a copy of `exercise/` with the reference files of
    steps 1..N laid over it (and nothing after) passes every check tagged with steps 1..N:
    a learner who has finished the steps so far sees them green, whatever is still a stub.
(2) The TODO pointers. Every check's `todo=` names a `# TODO k` that exists in its step's stub,
    and that TODO's label names the check's criterion: the scorecard sends the learner to the
    right place. Every mismatch is reported at once.
(3) The core path. course.toml's `core = [...]` TODOs of each step exist in its stub, and the
    checks pointing at them earn a share of every criterion.
"""
from __future__ import annotations

import re
import shutil
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from kit import ROOT
from kit.course import load_course
from kit.grading.runner import run_checks

COURSE = load_course()
STEPS = [s.number for s in COURSE.steps]

# Labels: `# TODO 3 (rich-attributes): ...`, `# TODO 2 (traces-span-services, context-propagates): ...`,
# `# TODO 14 (criterion: performance-visible; see docs/learner-api.md): ...`,
# `# TODO 6 (traces-span-services; rules 4.20 to 4.30): ...`


def stub_todos(step: int) -> dict[str, set[str]]:
    """`"TODO k"` -> the criteria its labels name, for every labelled TODO of the step's stub. A
    label may go on over the next comment lines: `# TODO 2 (a, b; rules 4.10 to` / `#   4.13): ...`."""
    found: dict[str, set[str]] = defaultdict(set)
    lines = (ROOT / "exercise" / COURSE.step(step).file).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        head = re.match(r"^\s*#\s*TODO\s+(\d+)\s*\(", line)
        if not head:
            continue
        label, j = line[head.end():], i
        while ")" not in label and j + 1 < len(lines) and lines[j + 1].strip().startswith("#"):
            j += 1
            label += " " + lines[j].strip().lstrip("#").strip()
        label = label.split(")", 1)[0].replace("criterion:", "").split(";")[0]
        found[f"TODO {head[1]}"].update(c.strip() for c in label.split(",") if c.strip())
    for line in lines:                   # unlabelled mentions (`# TODO 11: ...`) name the TODO too
        plain = re.match(r"^\s*#\s*TODO\s+(\d+)\s*:", line)
        if plain:
            found.setdefault(f"TODO {plain[1]}", set())
    return found


def _checks():
    from kit.grading.zygote import shared_zygote

    return [c for c in shared_zygote().checks if c.step is not None]   # the extensions' have none


# -- (1) the cumulative trees -------------------------------------------------------------------

def _cumulative_tree(tmp: Path, upto: int) -> Path:
    tree = tmp / f"steps-1-{upto}"
    shutil.copytree(ROOT / "exercise", tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for step in COURSE.steps:
        if step.number <= upto:
            shutil.copy2(ROOT / "solution" / step.file, tree / step.file)
    return tree


@pytest.mark.parametrize("upto", STEPS, ids=lambda n: f"steps-1-{n}")
def test_steps_done_so_far_pass_their_checks(tmp_path, upto):
    tree = _cumulative_tree(tmp_path, upto)
    failing = []
    for step in range(1, upto + 1):
        report = run_checks(tree, only=str(step))
        assert report.checks, f"no check grades Step {step}"
        failing += [f"Step {step} {c.todo or ''} [{c.criterion}] {c.id}: {c.message.splitlines()[0] if c.message else c.status}"
                    for c in report.checks if not c.passed]
    assert not failing, (f"with the reference files of steps 1..{upto} over the stubs, "
                         f"{len(failing)} checks of those steps fail:\n" + "\n".join(failing))


# -- (2) the TODO pointers ----------------------------------------------------------------------

def test_every_todo_pointer_names_a_todo_of_its_step_with_its_criterion():
    todos = {step: stub_todos(step) for step in STEPS}
    problems = []
    for c in _checks():
        where = f"{c.id} (step {c.step}, {c.criterion}, todo={c.todo!r})"
        if not c.todo:
            problems.append(f"{where}: names no TODO")
            continue
        number = re.fullmatch(r"TODO (\d+)", c.todo.strip())
        if not number:
            problems.append(f"{where}: not of the form 'TODO k'")
            continue
        labels = todos[c.step].get(c.todo.strip())
        if labels is None:
            problems.append(f"{where}: {COURSE.step(c.step).file} has no {c.todo}")
        elif c.criterion not in labels:
            problems.append(f"{where}: {COURSE.step(c.step).file} labels {c.todo} "
                            f"({', '.join(sorted(labels)) or 'no criterion'}), not {c.criterion}")
    assert not problems, f"{len(problems)} TODO pointers disagree with the stubs:\n" + "\n".join(problems)


# -- (3) the core path --------------------------------------------------------------------------

def _core() -> dict[int, list[str]]:
    data = tomllib.loads((ROOT / "course.toml").read_text(encoding="utf-8"))
    return {int(s["number"]): [f"TODO {k}" for k in s.get("core", [])] for s in data["steps"]}


def test_core_todos_exist_and_earn_every_criterion():
    core = _core()
    assert all(core[s] for s in STEPS), f"a step has no core TODOs: {core}"
    missing = [f"Step {s} {t}" for s in STEPS for t in core[s] if t not in stub_todos(s)]
    assert not missing, f"core TODOs absent from the stubs: {missing}"
    earned = {c.criterion for c in _checks() if c.todo in core[c.step]}
    assert earned == {c.id for c in COURSE.criteria}, \
        f"criteria the core path earns nothing of: {sorted({c.id for c in COURSE.criteria} - earned)}"


def test_step_shares_add_up_to_the_course_points():
    from kit.notebook.grading import step_shares

    shares = step_shares()
    assert set(shares) == set(STEPS)
    assert abs(sum(shares.values()) - COURSE.max_score) < 1e-6, shares
