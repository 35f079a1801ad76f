"""The grader's own errors, and the helpers that tell them on one line."""
from __future__ import annotations

from pathlib import Path


class GradingError(RuntimeError):
    """The grader itself could not run (not the learner's fault); the message says what to do."""


def listed(items: list[str], limit: int = 4) -> str:
    """"a, b, c, d and 3 more"."""
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def log_tail(path: Path, limit: int = 4000) -> str:
    """The last lines of a log that say what went wrong, on one line."""
    try:
        lines = [line.strip() for line in path.read_bytes()[-limit:].decode("utf-8", "replace").splitlines()]
    except OSError:
        return "(no output)"
    lines = [line for line in lines if line and not line.startswith(("Traceback", "File ", "^", "~"))]
    telling = [line for line in lines if line.startswith(("ERROR", "E ")) or "Error" in line]
    return " | ".join((telling or lines)[-2:]) or "(no output)"
