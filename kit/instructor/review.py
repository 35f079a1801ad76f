"""Reading a learner's work beside the reference: `python grade.py --diff --target PATH`.

For each of the six learner files, in step order, a unified diff from `solution/` (the `---`
side, the reference) to the learner's file (the `+++` side): lines starting with `+` are the
learner's own, lines starting with `-` are the reference's. A file identical to the reference,
or missing from the submission, is said so in one line. Only the learner files are compared:
what else differs in a submission is not the learner's work.

    review_diff(tree, label="alice.zip") -> str
"""
from __future__ import annotations

import difflib
from pathlib import Path

from kit import ROOT
from kit.course import load_course


def _lines(path: Path) -> list[str] | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except (FileNotFoundError, IsADirectoryError):
        return None


def review_diff(tree: Path, *, label: str | None = None, reference: Path = ROOT / "solution",
                context: int = 3) -> str:
    """The learner files of `tree` as unified diffs against `reference`, as one text."""
    tree = Path(tree)
    label = (label or str(tree)).rstrip("/")
    out = [f"Learner files of {label} against the reference (solution/): "
           f"'-' lines are the reference's, '+' lines the learner's.\n"]
    for step in load_course().steps:
        out.append(f"\n=== Step {step.number}: {step.title} ({step.file}) ===\n")
        mine, theirs = _lines(tree / step.file), _lines(reference / step.file)
        if mine is None:
            out.append(f"not in the submission ({label}/{step.file} is missing)\n")
            continue
        if theirs is None:
            out.append(f"the reference has no {step.file}\n")
            continue
        diff = list(difflib.unified_diff(theirs, mine, f"solution/{step.file}", f"{label}/{step.file}", n=context))
        if not diff:
            out.append("identical to the reference\n")
            continue
        added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
        out.append(f"{added} line(s) of the learner's, {removed} of the reference's\n")
        out.extend(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff)
    return "".join(out)
