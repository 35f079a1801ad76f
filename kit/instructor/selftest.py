"""Checks that are checked: the catalogue of broken solutions in `selftest/`.

Each file `selftest/<name>.patch` is one *mutant*: a realistic mistake, written as a small
unified diff against `solution/`, with a manifest on top saying what it must cost:

    # B3 single header ignored: `b3: {trace}-{span}-1` does not continue the trace.
    lose = ["context-propagates"]              # these criteria (or extensions, "E2") must lose points ...
    checks = ["b3_single_header_is_accepted"]  # ... these checks must fail (the ones it targets)
    rules = ["2.2"]                            # the rules of docs/learner-api.md it breaks

    --- a/services/shared/trace_context.py
    +++ b/services/shared/trace_context.py
    @@ -178,6 +178,7 @@
    ...

The lines before the first `--- ` are TOML (comments become the description); every criterion
*not* in `lose` must keep all its points. `lose` may name an optional extension ("E2": it is lost
when one of its checks fails); a mutant that names one must leave the other extensions whole,
while a mutant of a step may also break extensions that build on that step. `may_lose = [...]` names criteria allowed to go either
way (use sparingly). A criterion that has no checks yet in the kit is skipped, so mutants can be
written before their checks land.

`run_selftest()` applies every mutant to a fresh copy of `solution/` and grades them all with the
batch machinery (one warm parent, `jobs` at a time), the unmodified solution too (it must score
full marks, or nothing else means anything). `python grade.py --selftest` prints, for each
mutant, what it was expected to cost and what it cost, then the catalogue's size and kill rate:
the share of checks that fail for at least one mutant, and the share of mutants that at least
one check catches. An instructor who changed a check runs it to see that the check still
catches its mistakes and no longer catches anything else.

To add a mutant: copy `solution/` somewhere, make the mistake, `diff -u` the learner file
against `solution/` (paths `a/services/...`, `b/services/...`), and put the manifest on top.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kit import ROOT
from kit.course import load_course
from kit.results import GradeReport
from kit.grading.runner import DEFAULT_CHECK_TIMEOUT_S, Zygote, run_checks

CATALOGUE = ROOT / "selftest"


class CatalogueError(ValueError):
    """A mutant file is malformed or no longer applies; the message names it."""


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    lose: tuple[str, ...]
    checks: tuple[str, ...]
    may_lose: tuple[str, ...]
    patch: str
    path: Path
    rules: tuple[str, ...] = ()   # the rules of docs/learner-api.md the mistake breaks


@dataclass
class MutantOutcome:
    mutant: Mutant
    report: GradeReport | None
    problem: str = ""                       # why the mutant could not be graded
    lost: tuple[str, ...] = ()              # criteria that lost points
    killed: tuple[str, ...] = ()            # checks that failed
    unexpected_loss: tuple[str, ...] = ()   # criteria that lost points but should not have
    missed_loss: tuple[str, ...] = ()       # criteria that should have lost points but did not
    missed_checks: tuple[str, ...] = ()     # targeted checks that passed anyway
    pending: tuple[str, ...] = ()           # expected criteria that have no checks yet

    @property
    def ok(self) -> bool:
        return not (self.problem or self.unexpected_loss or self.missed_loss or self.missed_checks)


@dataclass
class SelftestResult:
    outcomes: list[MutantOutcome]
    baseline: GradeReport
    checks: list[str]                                   # every check id of the kit
    seconds: float = 0.0
    complete: bool = True                               # the whole catalogue (not --mutant NAME)
    killed_by: dict[str, list[str]] = field(default_factory=dict)   # check id -> mutants

    @property
    def size(self) -> int:
        return len(self.outcomes)

    @property
    def detected(self) -> int:
        return sum(bool(o.killed) for o in self.outcomes)

    @property
    def survivors(self) -> list[str]:
        """Checks that no mutant makes fail."""
        return [c for c in self.checks if not self.killed_by.get(c)]

    @property
    def check_kill_rate(self) -> float:
        return (len(self.checks) - len(self.survivors)) / len(self.checks) if self.checks else 0.0

    @property
    def mutant_kill_rate(self) -> float:
        return self.detected / self.size if self.size else 0.0

    @property
    def ok(self) -> bool:
        """The solution passes, every mutant costs what its manifest says and, for the whole
        catalogue, every check is made to fail by some mutant."""
        return (self.baseline.all_passed and all(o.ok for o in self.outcomes)
                and not (self.complete and self.survivors))


# -- the catalogue -------------------------------------------------------------------------------

def load_catalogue(folder: Path = CATALOGUE, names: list[str] | None = None) -> list[Mutant]:
    """Every mutant in `folder` (or only `names`), sorted by name."""
    paths = sorted(Path(folder).glob("*.patch"))
    if names:
        known = {p.stem: p for p in paths}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CatalogueError(f"no mutant called {', '.join(unknown)} in {folder} "
                                 f"(the names are the .patch files there)")
        paths = [known[n] for n in names]
    return [parse_mutant(p) for p in paths]


def parse_mutant(path: Path) -> Mutant:
    text = Path(path).read_text(encoding="utf-8")
    match = re.search(r"^--- ", text, flags=re.MULTILINE)
    if match is None:
        raise CatalogueError(f"{path}: no diff in it (a line starting with '--- ')")
    header, patch = text[:match.start()], text[match.start():]
    try:
        manifest = tomllib.loads(header)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: the manifest above the diff is not valid TOML ({exc})") from None
    course = load_course()
    criteria = {c.id for c in course.criteria} | {e.id for e in course.extensions}   # "E2": an extension
    for key in ("lose", "may_lose"):
        bad = [c for c in manifest.get(key, []) if c not in criteria]
        if bad:
            raise CatalogueError(f"{path}: {key} names unknown criteria or extensions {bad}; known: {sorted(criteria)}")
    unknown = set(manifest) - {"lose", "checks", "may_lose", "rules"}
    if unknown:
        raise CatalogueError(f"{path}: unknown manifest keys {sorted(unknown)} (lose, checks, may_lose, rules)")
    if not manifest.get("lose"):
        raise CatalogueError(f"{path}: the manifest must say which criteria lose points (lose = [...])")
    description = " ".join(line.lstrip("#").strip() for line in header.splitlines()
                           if line.startswith("#")).strip()
    return Mutant(name=Path(path).stem, description=description, lose=tuple(manifest["lose"]),
                  checks=tuple(manifest.get("checks", [])), may_lose=tuple(manifest.get("may_lose", [])),
                  rules=tuple(manifest.get("rules", [])), patch=patch, path=Path(path))


# -- applying a unified diff -------------------------------------------------------------------

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def apply_patch(patch: str, tree: Path, *, name: str = "patch") -> list[str]:
    """Apply a unified diff to the files under `tree`; returns the files changed.

    Strict: every hunk's context must match exactly (it may have moved a few lines, as when the
    solution above it changed); otherwise `CatalogueError` says which hunk no longer applies."""
    files: dict[str, list[tuple[int, list[str], list[str]]]] = {}
    lines = patch.splitlines()
    i, current = 0, None
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
                raise CatalogueError(f"{name}: '--- ' without '+++ ' at line {i + 1}")
            current = _strip_prefix(lines[i + 1][4:].split("\t")[0].strip())
            files.setdefault(current, [])
            i += 2
            continue
        match = _HUNK.match(line)
        if match:
            if current is None:
                raise CatalogueError(f"{name}: a hunk before any file header")
            old_len = int(match.group(2) or 1)
            new_len = int(match.group(4) or 1)
            old, new = [], []
            i += 1
            while i < len(lines) and (len(old) < old_len or len(new) < new_len):
                body = lines[i]
                tag, text = (body[:1], body[1:]) if body else (" ", "")
                if tag == "\\":
                    i += 1
                    continue
                if tag in (" ", "-"):
                    old.append(text)
                if tag in (" ", "+"):
                    new.append(text)
                if tag not in (" ", "-", "+"):
                    raise CatalogueError(f"{name}: unexpected line {i + 1} in a hunk of {current}: {body!r}")
                i += 1
            files[current].append((int(match.group(1)), old, new))
            continue
        i += 1
    if not files:
        raise CatalogueError(f"{name}: the diff changes no file")
    for rel, hunks in files.items():
        path = tree / rel
        if not path.is_file():
            raise CatalogueError(f"{name}: {rel} is not in the solution")
        text = path.read_text(encoding="utf-8")
        content = text.splitlines()
        shift = 0
        for number, (start, old, new) in enumerate(hunks, start=1):
            at = _find(content, old, start - 1 + shift)
            if at is None:
                raise CatalogueError(f"{name}: hunk {number} of {rel} no longer applies to solution/ "
                                     "(the solution changed there): update the mutant")
            content[at:at + len(old)] = new
            shift += len(new) - len(old)
        path.write_text("\n".join(content) + ("\n" if text.endswith("\n") else ""), encoding="utf-8")
    return sorted(files)


def _strip_prefix(path: str) -> str:
    return path[2:] if path.startswith(("a/", "b/")) else path


def _find(content: list[str], old: list[str], near: int, fuzz: int = 200) -> int | None:
    if not old:
        return max(0, min(near, len(content)))
    for delta in range(fuzz + 1):
        for at in (near - delta, near + delta) if delta else (near,):
            if 0 <= at <= len(content) - len(old) and content[at:at + len(old)] == old:
                return at
    return None


# -- running it ----------------------------------------------------------------------------------

def judge(mutant: Mutant, report: GradeReport) -> MutantOutcome:
    """Compare what the mutant cost with what its manifest says. An extension (no points) is lost
    when one of its checks fails, like a criterion that loses points."""
    with_checks = {c.id for c in report.criteria if c.total} | {e.id for e in report.extensions}
    lost = tuple([c.id for c in report.criteria if c.total and c.score < c.max_score]
                 + [e.id for e in report.extensions if not e.complete])
    killed = tuple(c.id for c in report.checks if not c.passed)
    expected = {c for c in mutant.lose if c in with_checks}
    allowed = expected | set(mutant.may_lose)
    if not any(c.startswith("E") and c[1:].isdigit() for c in mutant.lose):
        # A mistake in a step may break the optional extensions built on it (E2's order through
        # the services needs Steps 1, 2 and 4): only a mutant of an extension is held to them.
        allowed |= {e.id for e in report.extensions}
    known_checks = {c.id for c in report.checks}
    return MutantOutcome(
        mutant=mutant, report=report, lost=lost, killed=killed,
        unexpected_loss=tuple(c for c in lost if c not in allowed),
        missed_loss=tuple(sorted(expected - set(lost))),
        missed_checks=tuple(c for c in mutant.checks if c in known_checks and c not in killed),
        pending=tuple(c for c in mutant.lose if c not in with_checks))


def run_selftest(*, names: list[str] | None = None, folder: Path = CATALOGUE, jobs: int = 2,
                 check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S, zygote: Zygote | None = None) -> SelftestResult:
    """Grade the solution and every mutant; see the module doc."""
    import time

    started = time.monotonic()
    mutants = load_catalogue(folder, names)
    if not mutants:
        raise CatalogueError(f"{folder}: no mutants (*.patch) in it")
    own = zygote is None
    zygote = zygote or Zygote()
    scratch = Path(tempfile.mkdtemp(prefix="workshop-selftest-"))
    try:
        trees: dict[str, Path | str] = {}
        for mutant in mutants:
            tree = scratch / mutant.name
            shutil.copytree(ROOT / "solution", tree, ignore=shutil.ignore_patterns("__pycache__"))
            try:
                apply_patch(mutant.patch, tree, name=mutant.path.name)
                trees[mutant.name] = tree
            except CatalogueError as exc:
                trees[mutant.name] = str(exc)

        def grade(tree: Path) -> GradeReport:
            return run_checks(tree, check_timeout_s=check_timeout_s, zygote=zygote)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            baseline_future = pool.submit(grade, ROOT / "solution")
            futures = {m.name: pool.submit(grade, trees[m.name]) for m in mutants
                       if isinstance(trees[m.name], Path)}
            baseline = baseline_future.result()
            outcomes = []
            for mutant in mutants:
                if mutant.name in futures:
                    outcomes.append(judge(mutant, futures[mutant.name].result()))
                else:
                    outcomes.append(MutantOutcome(mutant=mutant, report=None, problem=str(trees[mutant.name])))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if own:
            zygote.close()
    result = SelftestResult(outcomes, baseline, [c.id for c in baseline.checks], time.monotonic() - started,
                            complete=not names)
    for outcome in outcomes:
        for check_id in outcome.killed:
            result.killed_by.setdefault(check_id, []).append(outcome.mutant.name)
    return result


def print_selftest(result: SelftestResult, console=None) -> None:
    """The instructor's view: one line per mutant, then the catalogue's size and kill rate."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not result.baseline.all_passed:
        failing = ", ".join(c.id for c in result.baseline.failed)
        console.print(f"[bold red]solution/ itself fails: {failing}[/] (every result below is suspect)")
    table = Table(title="Mutants (selftest/*.patch)", title_justify="left", box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("mutant", no_wrap=True)
    table.add_column("must lose", no_wrap=True)
    table.add_column("lost", no_wrap=True)
    table.add_column("failed", justify="right")
    for o in result.outcomes:
        mark = "[green]✓[/]" if o.ok else "[red]✗[/]"
        must = "\n".join([c for c in o.mutant.lose if c not in o.pending]
                         + [f"[dim]{c} (no checks yet)[/]" for c in o.pending])
        table.add_row(mark, o.mutant.name, must, "\n".join(o.lost) or "-", str(len(o.killed)))
    console.print(table)
    for o in result.outcomes:
        if o.ok:
            continue
        console.print(f"[bold red]✗ {o.mutant.name}[/] [dim]({o.mutant.path.name})[/]: {o.mutant.description}",
                      soft_wrap=True)
        if o.problem:
            console.print(f"    {o.problem}")
        if o.unexpected_loss:
            console.print(f"    lost points it should not: {', '.join(o.unexpected_loss)} "
                          f"(failed: {', '.join(c.id for c in o.report.failed if c.criterion in o.unexpected_loss)})")
        if o.missed_loss:
            console.print(f"    kept every point of: {', '.join(o.missed_loss)} (no check there caught it)")
        if o.missed_checks:
            console.print(f"    these targeted checks passed anyway: {', '.join(o.missed_checks)}")
    if result.survivors and result.complete:
        console.print(f"[bold red]Checks no mutant makes fail:[/] {', '.join(result.survivors)}")
    total = len(result.checks)
    console.print(
        f"\nCatalogue: {result.size} mutants; {result.detected}/{result.size} detected "
        f"({result.mutant_kill_rate:.0%}); {total - len(result.survivors)}/{total} checks killed by at least one "
        f"mutant ({result.check_kill_rate:.0%}); {sum(o.ok for o in result.outcomes)}/{result.size} behave exactly "
        f"as their manifest says. ({result.seconds:.1f} s)",
        style="bold green" if result.ok else "bold", soft_wrap=True)
