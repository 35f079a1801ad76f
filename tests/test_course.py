"""The course description (kit/course.py, course.toml): parsed into one `Course`, errors that name
the bad entry, ids that are unique, points that add up to 100, and a README that says the same."""
from __future__ import annotations

import re
import tomllib

import pytest

from kit import ROOT
from kit.course import CourseError, load_course, parse_course

COURSE = load_course()
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _data() -> dict:
    with open(ROOT / "course.toml", "rb") as handle:
        return tomllib.load(handle)


# -- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, field", [("criteria", "points"), ("criteria", "id"), ("steps", "file"),
                                            ("steps", "title")])
def test_a_missing_field_is_named(section, field):
    data = _data()
    del data[section][1][field]
    with pytest.raises(CourseError) as excinfo:
        parse_course(data, "my-course.toml")
    assert str(excinfo.value).startswith("my-course.toml: ") and repr(field) in str(excinfo.value)


def test_a_missing_section_is_named():
    data = _data()
    del data["steps"]
    with pytest.raises(CourseError, match=r"no \[\[steps\]\] entries"):
        parse_course(data)


@pytest.mark.parametrize("section, kind", [("criteria", "criterion"), ("steps", "step")])
def test_an_entry_listed_twice_is_refused(section, kind):
    data = _data()
    data[section].append(dict(data[section][0]))
    with pytest.raises(CourseError, match=f"{kind} .* is listed twice"):
        parse_course(data, "my-course.toml")


def test_an_extension_listed_twice_is_refused():
    data = _data()
    extension = {"id": "E1", "title": "An extension", "files": ["services/shared/extra.py"]}
    data["extensions"] = [extension, dict(extension)]
    with pytest.raises(CourseError, match="extension E1 is listed twice"):
        parse_course(data)


def test_the_error_names_the_entry_itself():
    data = _data()
    missing, twice = data["criteria"][1], data["criteria"][2]
    del missing["points"]
    with pytest.raises(CourseError) as excinfo:
        parse_course(data)
    assert missing["id"] in str(excinfo.value)
    data = _data()
    data["criteria"].append(dict(twice))
    with pytest.raises(CourseError) as excinfo:
        parse_course(data)
    assert twice["id"] in str(excinfo.value)


def test_points_that_are_not_a_number_are_refused():
    data = _data()
    data["criteria"][0]["points"] = "many"
    with pytest.raises(CourseError, match=r"\[\[criteria\]\] entry 1 .* has a bad value"):
        parse_course(data)


def test_parsing_the_file_gives_the_loaded_course():
    assert parse_course(_data()) == COURSE
    assert load_course() is COURSE   # read once


# -- the course itself ---------------------------------------------------------------------------

def test_ids_and_numbers_are_unique():
    assert len({c.id for c in COURSE.criteria}) == len(COURSE.criteria)
    assert [s.number for s in COURSE.steps] == list(range(1, len(COURSE.steps) + 1))
    assert len({e.id.lower() for e in COURSE.extensions}) == len(COURSE.extensions)
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", c.id) for c in COURSE.criteria)


def test_the_points_add_up_to_100():
    assert COURSE.max_score == sum(c.points for c in COURSE.criteria) == 100
    assert all(c.points > 0 for c in COURSE.criteria)


def test_learner_files_are_the_step_files_then_the_extensions_files_once_each():
    files = COURSE.learner_files
    assert files[:len(COURSE.steps)] == COURSE.step_files == tuple(s.file for s in COURSE.steps)
    assert len(set(files)) == len(files)
    assert set(files[len(COURSE.steps):]) == {f for e in COURSE.extensions for f in e.files} - set(COURSE.step_files)
    for learner_file in files:
        assert learner_file.startswith("services/") and learner_file.endswith(".py")
        assert (ROOT / "exercise" / learner_file).is_file() and (ROOT / "solution" / learner_file).is_file()


def test_extension_files_are_listed_after_the_step_files():
    data = _data()
    data["extensions"] = [{"id": "E1", "title": "a", "files": ["services/shared/extra.py", COURSE.steps[0].file]},
                          {"id": "E2", "title": "b", "files": ["services/shared/extra.py", "services/shared/more.py"]}]
    course = parse_course(data)
    assert course.learner_files == (*COURSE.step_files, "services/shared/extra.py", "services/shared/more.py")
    assert course.extension("e2").files == ("services/shared/extra.py", "services/shared/more.py")


def test_lookups_name_what_is_known():
    assert COURSE.step(1) is COURSE.steps[0]
    assert COURSE.criterion(COURSE.criteria[0].id) is COURSE.criteria[0]
    with pytest.raises(KeyError, match="known: 1, 2"):
        COURSE.step(99)
    with pytest.raises(KeyError, match=COURSE.criteria[0].id):
        COURSE.criterion("no-such-criterion")


def test_every_step_has_a_goal_and_hints_and_every_criterion_a_summary():
    assert all(s.title and s.goal and s.hints for s in COURSE.steps)
    assert all(c.title and c.summary for c in COURSE.criteria)


def test_each_steps_core_path_is_parsed_in_order_and_a_step_without_one_has_none():
    data = _data()
    assert [s.core for s in COURSE.steps] == [tuple(s.get("core", ())) for s in data["steps"]]
    assert all(s.core for s in COURSE.steps) and all(list(s.core) == sorted(set(s.core)) for s in COURSE.steps)
    for step in data["steps"]:
        step.pop("core", None)
    assert all(s.core == () for s in parse_course(data, "course.toml").steps)


# -- the README says the same ---------------------------------------------------------------------

def _readme_step_table() -> list[tuple[int, str]]:
    """(number, file) of each row of the README's table of steps."""
    section = README.split("## The steps", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*`([^`]+)`\s*\|", section, flags=re.MULTILINE)
    return [(int(number), path) for number, path in rows]


def test_the_readmes_step_table_lists_the_steps_and_their_files():
    assert _readme_step_table() == [(s.number, s.file) for s in COURSE.steps]


def test_the_readmes_points_are_the_courses():
    section = README.split("## The steps", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"Points by success criterion:(.*?)\(see `course.toml`\)", section, flags=re.DOTALL)
    assert match, "the README no longer says the points by success criterion"
    said = re.findall(r"([a-z][a-z ]+?) (\d+)(?:,|\s*$)", " ".join(match[1].split()))
    assert [(title.strip(), int(points)) for title, points in said] == \
        [(c.title.lower(), c.points) for c in COURSE.criteria]


def test_the_readmes_counts_are_the_courses():
    words = {6: "six", 5: "five"}
    assert f"{words[len(COURSE.criteria)]} success\ncriteria" in README or \
        f"{words[len(COURSE.criteria)]} success criteria" in README
    assert f"You work in {words[len(COURSE.steps)]} files" in README
    assert f"A fresh copy scores 0/{COURSE.max_score}" in README
