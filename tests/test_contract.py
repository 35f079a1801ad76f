"""Every rule of the learner reference (`docs/learner-api.md`) is graded, and every check and
mutant says which rules it is about.

- every rule a check or a mutant cites exists;
- every check cites at least one rule, every mutant at least one;
- in every section listed in `SWEPT` (the steps whose checks sweep their rules' cases): each
  ordinary rule has a check and a mutant that breaks it, each *(either)* or *(how we check)*
  rule has a check (no mutant can break a rule that allows both readings);
- section 0 (conventions): each rule is cited by a check (and broken by a mutant), or is a
  promise of the kit itself held by the kit test `CONVENTIONS` names, which must exist.
"""
from __future__ import annotations

import ast

import pytest

from kit import ROOT

from kit.contract import EITHER, HOW, RULE, load_rules
from kit.course import load_course
from kit.grading.zygote import shared_zygote
from kit.instructor.selftest import load_catalogue

RULES = load_rules()
BY_ID = {r.id: r for r in RULES}

#: The sections whose checks cover every rule across its cases (grown step by step).
SWEPT: set[str] = {"0", "1", "2", "3", "4", "5", "6", "E1", "E2", "E3", "E4"}

#: Section 0 is about the kit and the trees as much as about the learner's code: the rules no
#: check can observe are held by these kit tests (the others are cited by checks).
CONVENTIONS: dict[str, str] = {
    "0.1": "tests/trees/test_checks_on_trees.py::test_every_check_passes_on_the_solution",
    "0.2": "tests/trees/test_trees.py::test_trees_differ_only_in_the_learner_files",
    "0.3": "tests/trees/test_trees.py::test_trees_hold_the_same_files",
    "0.5": "tests/test_topology.py::test_the_provider_is_not_one_of_ours",
    "0.8": "tests/test_contract.py::test_checks_reach_learner_code_only_through_the_harness",
    "0.9": "tests/harness/test_mesh_isolation.py::test_without_headers_only_the_isolated_mesh_breaks_the_trace",
    "0.10": "tests/trees/test_checks_on_trees.py::test_every_check_passes_on_the_solution",
}


@pytest.fixture(scope="module")
def checks():
    return shared_zygote().checks


@pytest.fixture(scope="module")
def mutants():
    return load_catalogue()


def test_the_reference_numbers_its_rules_without_gaps():
    sections: dict[str, list[int]] = {}
    for rule in RULES:
        sections.setdefault(rule.section, []).append(int(rule.id.split(".")[1]))
    for section, numbers in sections.items():
        assert numbers == list(range(1, len(numbers) + 1)), f"section {section}: {numbers}"
    assert {"0", "1", "2", "3", "4", "5", "6"} <= set(sections)


def test_every_rule_cited_exists(checks, mutants):
    unknown = {f"check {c.id}": sorted(set(c.rules) - set(BY_ID)) for c in checks if set(c.rules) - set(BY_ID)}
    unknown |= {f"mutant {m.name}": sorted(set(m.rules) - set(BY_ID)) for m in mutants if set(m.rules) - set(BY_ID)}
    assert not unknown, f"rules that docs/learner-api.md does not have: {unknown}"


def test_every_check_in_a_swept_section_names_its_rules(checks):
    bare = [c.id for c in checks if str(c.step) in SWEPT and not c.rules]
    assert not bare, f"checks that name no rule (@check(..., rules=(...))): {bare}"


def test_every_mutant_of_a_swept_section_names_the_rules_it_breaks(mutants):
    bare = [m.name for m in mutants if not m.rules and _section_of(m) in SWEPT]
    assert not bare, f"mutants whose manifest names no rule (rules = [...]): {bare}"


@pytest.mark.parametrize("section", sorted(SWEPT) or [pytest.param("-", marks=pytest.mark.skip("no section swept yet"))])
def test_every_rule_of_a_swept_section_has_a_check_and_a_mutant(section, checks, mutants):
    checked = {r for c in checks for r in c.rules} | set(CONVENTIONS)
    broken = {r for m in mutants for r in m.rules}
    mine = [r for r in RULES if r.section == section]
    no_check = [r.id for r in mine if r.id not in checked]
    # A convention the kit itself keeps (CONVENTIONS) is no learner's mistake to make.
    no_mutant = [r.id for r in mine if r.kind == RULE and r.id not in broken and r.id not in CONVENTIONS]
    assert not no_check, f"section {section}: rules no check verifies: {no_check}"
    assert not no_mutant, f"section {section}: rules no mutant breaks: {no_mutant}"


def test_section_0_is_held_by_checks_or_kit_tests(checks):
    """Every rule of section 0 is cited by a check or held by the kit test CONVENTIONS names."""
    cited = {r for c in checks for r in c.rules}
    loose = [r.id for r in RULES if r.section == "0" and r.id not in cited and r.id not in CONVENTIONS]
    assert not loose, f"section 0 rules that neither a check nor a kit test holds: {loose}"
    for rule_id, nodeid in CONVENTIONS.items():
        path, _, name = nodeid.partition("::")
        assert rule_id in BY_ID, rule_id
        assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), f"{rule_id}: {nodeid} does not exist"


def test_checks_reach_learner_code_only_through_the_harness():
    """Rule 0.8: no check module imports the learner's `services` package itself; learner code
    is reached through `kit.harness` (`load`, `attr`, the mesh), which imports the target tree."""
    offenders = []
    for path in sorted((ROOT / "checks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "services" or n.startswith("services.") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"checks that import the learner's code directly: {offenders}"


def test_no_mutant_claims_to_break_a_rule_that_allows_both_readings(mutants):
    wrong = {m.name: [r for r in m.rules if BY_ID.get(r) and BY_ID[r].kind in (EITHER, HOW)] for m in mutants}
    assert not {k: v for k, v in wrong.items() if v}


def _section_of(mutant) -> str:
    return mutant.rules[0].split(".")[0] if mutant.rules else _FILE_SECTION.get(_patched_file(mutant), "?")


def _patched_file(mutant) -> str:
    for line in mutant.patch.splitlines():
        if line.startswith("+++ "):
            return line[4:].strip().removeprefix("b/")
    return ""


def _file_sections() -> dict[str, str]:
    course = load_course()
    sections = {step.file: str(step.number) for step in course.steps}
    for extension in course.extensions:
        for file in extension.files:
            sections.setdefault(file, extension.id)
    return sections


_FILE_SECTION = _file_sections()
