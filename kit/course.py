"""The course description (`course.toml`) as typed, frozen dataclasses.

`load_course()` is the only reader of `course.toml`; the grader, scorecard, notebooks and
README table all take their steps, criteria, points and hints from the `Course` it returns.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kit import ROOT


class CourseError(ValueError):
    """course.toml is malformed; the message says where."""


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    points: int
    summary: str


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    file: str
    goal: str
    hints: tuple[str, ...]
    core: tuple[int, ...] = ()   # the TODO numbers of the step's core path, in order


@dataclass(frozen=True)
class Extension:
    """One of the workshop's optional extension challenges: graded apart, outside the 100 points."""
    id: str                      # "E1" .. "E4"
    title: str
    files: tuple[str, ...]       # its learner files (E1 and E4 share one)
    goal: str
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Course:
    title: str
    criteria: tuple[Criterion, ...]
    steps: tuple[Step, ...]
    extensions: tuple[Extension, ...] = ()

    @property
    def max_score(self) -> int:
        return sum(c.points for c in self.criteria)

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(f"unknown criterion {criterion_id!r}; known: {', '.join(c.id for c in self.criteria)}")

    def step(self, number: int) -> Step:
        for step in self.steps:
            if step.number == number:
                return step
        raise KeyError(f"unknown step {number!r}; known: {', '.join(str(s.number) for s in self.steps)}")

    def extension(self, extension_id: str) -> Extension:
        for extension in self.extensions:
            if extension.id.lower() == str(extension_id).lower():
                return extension
        raise KeyError(f"unknown extension {extension_id!r}; known: {', '.join(e.id for e in self.extensions)}")

    @property
    def step_files(self) -> tuple[str, ...]:
        """The six graded learner files, in step order."""
        return tuple(step.file for step in self.steps)

    @property
    def learner_files(self) -> tuple[str, ...]:
        """Every file a learner writes: the six step files, then the extensions' files (once each)."""
        files = list(self.step_files)
        for extension in self.extensions:
            files += [f for f in extension.files if f not in files]
        return tuple(files)


def _entries(data: dict, section: str, source: str, build) -> tuple:
    """Build every entry of `section`, with an error that names the entry and what is wrong."""
    if section not in data and section != "extensions":
        raise CourseError(f"{source}: no [[{section}]] entries")
    built = []
    for n, entry in enumerate(data.get(section, ()), 1):
        name = f"[[{section}]] entry {n}" + (f" ({entry.get('id') or entry.get('number')})"
                                              if isinstance(entry, dict) and (entry.get("id") or entry.get("number")) else "")
        try:
            built.append(build(entry))
        except KeyError as exc:
            raise CourseError(f"{source}: {name} lacks the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise CourseError(f"{source}: {name} has a bad value ({exc})") from None
    return tuple(built)


def parse_course(data: dict, source: str = "course.toml") -> Course:
    """Build a Course from parsed TOML, with an error that names the bad entry."""
    criteria = _entries(data, "criteria", source, lambda c: Criterion(
        id=c["id"], title=c["title"], points=int(c["points"]), summary=c.get("summary", "")))
    steps = _entries(data, "steps", source, lambda s: Step(
        number=int(s["number"]), title=s["title"], file=s["file"], goal=s.get("goal", ""),
        hints=tuple(s.get("hints", ())), core=tuple(int(k) for k in s.get("core", ()))))
    extensions = _entries(data, "extensions", source, lambda e: Extension(
        id=e["id"], title=e["title"], files=tuple(e["files"]), goal=e.get("goal", ""),
        hints=tuple(e.get("hints", ()))))
    for kind, ids in (("criterion", [c.id for c in criteria]), ("step", [s.number for s in steps]),
                      ("extension", [e.id for e in extensions])):
        twice = sorted({str(i) for i in ids if ids.count(i) > 1})
        if twice:
            raise CourseError(f"{source}: {kind} {', '.join(twice)} is listed twice")
    return Course(title=data.get("title", ""), criteria=criteria, steps=steps, extensions=extensions)


@lru_cache(maxsize=None)
def load_course(path: Path = ROOT / "course.toml") -> Course:
    """Read and parse the course description (cached: it never changes during a run)."""
    with open(path, "rb") as handle:
        return parse_course(tomllib.load(handle), str(path))
