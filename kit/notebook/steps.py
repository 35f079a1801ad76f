"""The course as the notebooks show it: `course_overview()` (the steps and success criteria of
course.toml) and `show_step(n)` (a step's goal, the file the learner edits with the numbered
`# TODO n (criteria): text` comments still in it, the checks that grade it, and its hints).

The checks are the kit's one check description (`kit.notebook.grading.checks`); the TODOs are
read from the learner's file in the tree in use, as it is on disk now.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from kit import ROOT
from kit.course import load_course
from kit.notebook.display import _display_html
from kit.notebook.grading import check_points, checks as _checks, core_todos, is_core, step_shares
from kit.results import todo_number
from kit.notebook.tree import current_tree

_HEAD = re.compile(r"^\s*#\s*TODO\s+(\d+)(?=\s*[(:])")


def _criteria(label: str) -> str:
    """A TODO's label as criterion ids: `criterion: performance-visible; see docs/...` and
    `traces-span-services, context-propagates` alike."""
    return ", ".join(c.strip() for c in label.replace("criterion:", "").split(";")[0].split(",") if c.strip())


def _todos(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, number, criteria, text) of every `# TODO n (criteria): text` comment, with the
    comment lines that continue it (up to a blank comment line, code, or the next TODO). The
    label in parentheses may itself go on over the next comment lines."""
    found: list[list] = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        head = _HEAD.match(lines[i])
        if not head:
            i += 1
            continue
        rest, j = lines[i][head.end():], i
        if rest.lstrip().startswith("("):                 # a label, maybe over several lines
            while ")" not in rest and j + 1 < len(lines) and lines[j + 1].strip().startswith("#"):
                j += 1
                rest += " " + lines[j].strip().lstrip("#").strip()
            label, _, rest = rest.lstrip()[1:].partition(")")
        else:
            label = ""
        text = rest.lstrip().removeprefix(":").strip()
        for line in lines[j + 1:]:                         # the comment lines that continue it
            stripped = line.strip()
            if not stripped.startswith("#") or re.match(r"#\s*TODO\b", stripped) or not stripped.lstrip("#").strip():
                break
            text += " " + stripped.lstrip("#").strip()
        found.append((i + 1, head[1], _criteria(label), text.strip()))
        i = j + 1
    return found


def show_step(number: int) -> None:
    """Show a step as course.toml describes it, the TODOs left in your file and its checks."""
    from kit.grading.errors import GradingError

    course = load_course()
    step = course.step(number)
    path = current_tree() / step.file
    try:
        checks, problem = _checks(number), None
    except GradingError as exc:  # the kit's own checks are broken: show the step all the same
        checks, problem = [], str(exc)
    criteria = list(dict.fromkeys(c.criterion for c in checks))
    titles = {c.id: c.title for c in course.criteria}
    todos = _todos(path)
    core = core_todos().get(number, ())
    e = html.escape
    try:
        every = _checks()
        share, worth = step_shares(every).get(number, 0.0), check_points(every)
    except GradingError:
        share, worth = 0.0, {}
    parts = [f"<h3>Step {step.number}: {e(step.title)}</h3>",
             f"<p><b>Goal.</b> {e(step.goal)}</p>",
             "<p><b>Success criteria served:</b> " + (", ".join(
                 f"<i>{e(titles.get(c, c))}</i> ({e(course.criterion(c).summary) if c in titles else ''})"
                 for c in criteria) or "none yet") + "</p>",
             (f"<p><b>Worth</b> {share:.1f} of the course's {course.max_score} points "
              f"({len(checks)} checks; a criterion's points are shared evenly by its checks).</p>" if checks else ""),
             f"<p><b>You edit</b> <code>{e(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))}"
             f"</code>" + (f", {len(todos)} TODO comments:</p>" if todos else ": no TODOs left in it.</p>")]
    if todos:
        if core:
            parts.append(f"<p><b>The core path</b> of this step is TODO {', '.join(map(str, core))} "
                         "(marked <b>core</b>): done in order, they earn every criterion's essentials in the "
                         "workshop's time. The others are the <i>deeper</i> part: come back to them after Step 6.</p>")
        parts.append("<ul>" + "".join(
            f"<li><code>line {line}</code> <b>TODO {num}</b> "
            + ("<b style='color:#1a7f37'>core</b>" if int(num) in core else "<i style='color:#777'>deeper</i>")
            + f"{f' <small>({e(crit)})</small>' if crit else ''}: {e(text)}</li>"
            for line, num, crit, text in todos) + "</ul>")
    if checks:
        ordered = sorted(checks, key=lambda c: todo_number(c.todo))
        rows = "".join(f"<tr><td>{e(c.todo or '')}</td><td>{'core' if is_core(c.step, c.todo) else 'deeper'}</td>"
                       f"<td style='text-align:left'>{e(c.title)}</td><td>{e(titles.get(c.criterion, c.criterion))}"
                       f"</td><td>{worth.get(c.id, 0.0):.2f}</td></tr>" for c in ordered)
        parts.append(f"<details><summary><b>{len(checks)} checks</b> grade this step (<code>check({number})</code>)"
                     f"</summary><table><tr><th>TODO</th><th>path</th><th>check</th><th>criterion</th><th>points</th></tr>"
                     f"{rows}</table></details>")
    if problem:
        parts.append(f"<p><b style='color:#d62728'>The checks could not be listed:</b> {e(problem)}</p>")
    if step.hints:
        parts.append("<details><summary><b>Hints</b></summary><ul>"
                     + "".join(f"<li>{e(h)}</li>" for h in step.hints) + "</ul></details>")
    _display_html("".join(parts))


def course_overview() -> None:
    """The steps (with each one's share of the points and its core TODOs) and the success
    criteria of the course, from course.toml."""
    from kit.grading.errors import GradingError

    course = load_course()
    core = core_todos()
    try:
        shares = step_shares()
    except GradingError:
        shares = {}
    e = html.escape
    steps = "".join(f"<tr><td>{s.number}</td><td style='text-align:left'>{e(s.title)}</td>"
                    f"<td style='text-align:left'><code>{e(s.file)}</code></td>"
                    f"<td>{shares.get(s.number, 0.0):.1f}</td>"
                    f"<td>{', '.join(map(str, core.get(s.number, ()))) or '-'}</td>"
                    f"<td style='text-align:left'>{e(s.goal)}</td></tr>" for s in course.steps)
    criteria = "".join(f"<tr><td style='text-align:left'>{e(c.title)}</td><td>{c.points}</td>"
                       f"<td style='text-align:left'>{e(c.summary)}</td></tr>" for c in course.criteria)
    _display_html(f"<h3>{e(course.title)}</h3><table><tr><th>step</th><th>title</th><th>file</th>"
                  f"<th>points</th><th>core TODOs</th><th>goal</th></tr>"
                  f"{steps}</table><p><b>Success criteria</b> ({course.max_score} points)</p><table><tr>"
                  f"<th>criterion</th><th>points</th><th>what it means</th></tr>{criteria}</table>")
