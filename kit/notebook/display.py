"""Showing things in the notebook: HTML and rich objects through IPython's `display` (plain
text outside Jupyter), and errors raised by the learner's code as a short message with the
traceback folded away, never as a crashed cell.

The learner's way in:

    telemetry = learner("services.shared.telemetry")   # a module, or a stand-in saying why not
    try_it(telemetry.DistributedTelemetry)             # call it; if it raises, show why
    compare(yours, expected, todo="Step 1, TODO 4")    # yours next to the expected result
    expectations([...])                                # a checklist: expected, yours, which TODO

An expected value may be `NO_REFERENCE`: the learner release has no reference answer there (its
notebooks' reference cells are stubs returning it, see notebooks/build.py), so `compare` and
`expectations` show yours alone, with one line naming the `check(...)` that grades it.

A syntax error or an import error in the learner's file is one readable message ("Your code
cannot be imported: SyntaxError in shared/telemetry.py line 12: ...") in every cell that uses
it, and the cell still ends normally, so Run All reaches `check(N)`. As a last net, `use_tree()`
installs an IPython handler that shows any exception raised through the learner's code the
same way.
"""
from __future__ import annotations

import html
import importlib
import re
import traceback
from typing import Any, Callable, Iterable

_GOOD, _BAD, _TODO = "#1a7f37", "#d62728", "#b8860b"


class _NoReference:
    """The type of `NO_REFERENCE` (one instance)."""

    _instance: _NoReference | None = None

    def __new__(cls) -> _NoReference:  # noqa: PYI034 (one instance)
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_REFERENCE"

    def __reduce__(self) -> str:
        return "NO_REFERENCE"


#: What a reference function of a notebook returns in the learner release, which has none: an
#: expected value that `compare` and `expectations` show as "no reference answer here".
NO_REFERENCE = _NoReference()


def no_reference(expected: Any) -> bool:
    """Whether `expected` is `NO_REFERENCE`, or rows one of which is (rows built from it)."""
    return expected is NO_REFERENCE or (isinstance(expected, (list, tuple))
                                        and any(row is NO_REFERENCE for row in expected))


def graded_by(todo: str) -> str:
    """The `check(...)` call grading a TODO: "Extension E1, TODO 2" -> `check("E1")`, "Step 5,
    TODO 3" -> `check(5)`, anything else -> `check()`."""
    found = re.search(r"\b(E\d+)\b", todo) or re.search(r"\bStep (\d+)\b", todo)
    if found is None:
        return "check()"
    return f'check("{found[1]}")' if found[1].startswith("E") else f"check({found[1]})"


def no_reference_line(todo: str) -> str:
    """The one line shown where the learner release has no reference answer."""
    return f"The learner release has no reference answer here: `{graded_by(todo)}` grades it"


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python: print the text form
        print(repr(obj))
        return
    display(obj)


def _display_html(markup: str) -> None:
    try:
        from IPython.display import HTML, display
    except ImportError:
        print(re.sub(r"<[^>]+>", "", markup))
        return
    display(HTML(markup))


def _explain(exc: BaseException) -> str:
    from kit.harness.expect import CheckFailure
    from kit.harness.learner import describe_exception

    if isinstance(exc, LearnerCodeBroken):
        return exc.reason
    if isinstance(exc, CheckFailure):
        return exc.learner_message()
    return describe_exception(exc)


def _show_error(heading: str, message: str, exc: BaseException | None = None) -> None:
    tb = "".join(traceback.format_exception(exc)) if exc is not None and not isinstance(exc, LearnerCodeBroken) else ""
    _display_html(f"<div style='border-left:4px solid {_BAD};padding:4px 8px'><b>{html.escape(heading)}:</b>"
                  f"<pre style='white-space:pre-wrap'>{html.escape(message)}</pre>"
                  + (f"<details><summary>traceback</summary><pre>{html.escape(tb)}</pre></details>" if tb else "")
                  + "</div>")


_broken: dict[str, Any] = {"cell": None}


def _cell_number() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "execution_count", None) if shell is not None else None


def _show_broken(reason: str, heading: str = "Fix this first") -> None:
    """Show why the learner's code cannot run, once per cell."""
    cell = _cell_number()
    if cell is not None and _broken["cell"] == cell:
        return
    _broken["cell"] = cell
    _show_error(heading, reason + "\n(save the file and re-run this cell)")


def _broken_in_this_cell() -> bool:
    return _broken["cell"] is not None and _broken["cell"] == _cell_number()


def not_done(where: str, detail: str = "") -> None:
    """Show "Not done yet: Step N, TODO k" (and what is missing)."""
    _display_html(f"<div style='border-left:4px solid #edc948;padding:4px 8px'><b>Not done yet:</b> "
                  f"{html.escape(where)}" + (f" <span style='color:#555'>({html.escape(detail)})</span>" if detail else "")
                  + "</div>")


# -- importing the learner's code -------------------------------------------------------------

class LearnerCodeBroken(Exception):
    """The learner's module could not be imported: `reason` says which file, line and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BrokenModule:
    """Stands in for a learner module that could not be imported: every attribute is a callable
    that raises `LearnerCodeBroken` with the reason (so `try_it` shows it as one message)."""

    def __init__(self, name: str, reason: str):
        self.__name__, self.reason = name, reason

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        reason = self.reason

        def broken(*_: Any, **__: Any) -> Any:
            raise LearnerCodeBroken(reason)
        broken.__name__ = attribute
        return broken

    def __repr__(self) -> str:
        return f"<{self.__name__} cannot be imported: {self.reason}>"


def _import_reason(name: str, exc: BaseException) -> str:
    from kit.harness.learner import describe_exception

    return f"Your code cannot be imported ({name}): {describe_exception(exc)}"


def learner(name: str) -> Any:
    """Import the learner's module `name` (e.g. "services.shared.telemetry") from the tree in use.
    If it cannot be imported (a syntax error, an import error, an exception at import), show why
    as one message and return a `BrokenModule`: cells using it then say the same, never crash."""
    from kit.notebook.tree import _refresh_if_edited, current_tree

    current_tree()
    _refresh_if_edited()
    try:
        return importlib.import_module(name)
    except Exception as exc:
        reason = _import_reason(name, exc)
        _show_broken(reason)
        return BrokenModule(name, reason)


def try_it(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call one of your functions; if it raises, show why (not a crashed cell) and return None.
    A stub's `NotImplementedError("Step 5, TODO 1: ...")` shows as "Not done yet: Step 5, TODO 1"."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as exc:
        not_done(str(exc) or getattr(function, "__name__", "this function"))
    except LearnerCodeBroken as exc:
        _show_broken(exc.reason)
    except Exception as exc:
        _show_error(f"{getattr(function, '__name__', 'Your code')} raised", _explain(exc), exc)
    return None


# -- yours next to the expected ---------------------------------------------------------------

def _cell(value: Any) -> str:
    text = f"{value:.2f}" if isinstance(value, float) else str(value)
    return html.escape(text if len(text) <= 120 else text[:119] + "…")


def table_html(rows: Iterable[dict] | None, columns: list[str] | None = None, *, limit: int = 40) -> str:
    """Rows of dicts as a small HTML table (floats rounded; at most `limit` rows)."""
    rows = list(rows or [])
    if not rows:
        return "<i>(nothing)</i>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{_cell(r.get(c, ''))}</td>" for c in columns)
                   + "</tr>" for r in rows[:limit])
    more = f"<p>… {len(rows) - limit} more rows</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _normal(rows: Any) -> Any:
    if isinstance(rows, list):
        return [_normal(r) for r in rows]
    if isinstance(rows, dict):
        return {k: _normal(v) for k, v in rows.items()}
    if isinstance(rows, float):
        return round(rows, 6)
    return rows


def compare(yours: Any, expected: Any, *, todo: str, title: str = "", columns: list[str] | None = None,
            same: Callable[[Any, Any], bool] | None = None) -> None:
    """Your rows next to the expected rows, and the verdict: "✓ as expected", or "Not done yet:
    `todo`" (e.g. "Step 1, TODO 4"). `same(yours, expected)` decides (default: equal rows).
    When `expected` is `NO_REFERENCE` (the learner release), yours alone and the check that grades it."""
    if no_reference(expected):
        verdict = (f"<b style='color:{_BAD}'>your code did not run</b> (the error above) " if yours is None
                   and _broken_in_this_cell() else "")
        _display_html(
            (f"<b>{html.escape(title)}</b> " if title else "") + verdict
            + f"<p style='margin:4px 0;color:#555'>{html.escape(no_reference_line(todo), quote=False)}</p>"
            + f"<div><p style='margin:4px 0'><b>Yours</b></p>{table_html(yours if isinstance(yours, list) else [], columns)}</div>")
        return
    matches = (same or (lambda a, b: _normal(a) == _normal(b)))(yours, expected) if yours is not None else False
    verdict = (f"<b style='color:{_BAD}'>your code did not run</b> (the error above)" if yours is None and _broken_in_this_cell()
               else f"<b style='color:{_GOOD}'>✓ as expected</b>" if matches else
               f"<b style='color:{_TODO}'>Not done yet:</b> {html.escape(todo)}"
               + (" <span style='color:#555'>(yours differs from the expected result)</span>" if yours else ""))
    _display_html(
        (f"<b>{html.escape(title)}</b> " if title else "") + verdict
        + "<div style='display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start'>"
        + f"<div><p style='margin:4px 0'><b>Yours</b></p>{table_html(yours if isinstance(yours, list) else [], columns)}</div>"
        + f"<div><p style='margin:4px 0'><b>Expected</b></p>{table_html(expected, columns)}</div></div>")


def expectations(rows: Iterable[tuple[str, Any, Any, str]], *, title: str = "") -> None:
    """A checklist: each row (what, expected, yours, "Step N, TODO k"), marked ✓ when yours is the
    expected value (or the expected callable accepts yours), else "Not done yet: Step N, TODO k".
    A row whose expected value is `NO_REFERENCE` (the learner release) shows yours alone, unmarked,
    and one line under the table names the check that grades it."""
    lines, good, unanswered = [], True, []
    for what, expected, yours, todo in rows:
        if no_reference(expected):
            unanswered.append(no_reference_line(todo))
            lines.append(f"<tr><td style='text-align:left'>{html.escape(what)}</td><td style='text-align:left'>-</td>"
                         f"<td style='text-align:left'>{_cell(yours)}</td><td></td><td></td></tr>")
            continue
        ok = expected(yours) if callable(expected) else yours == expected
        good = good and bool(ok)
        shown = getattr(expected, "__doc__", None) if callable(expected) else expected
        mark = (f"<td style='color:{_GOOD};font-weight:bold'>✓</td><td></td>" if ok else
                f"<td style='color:{_BAD};font-weight:bold'>✗</td>"
                f"<td style='text-align:left'><b style='color:{_TODO}'>Not done yet:</b> {html.escape(todo)}</td>")
        lines.append(f"<tr><td style='text-align:left'>{html.escape(what)}</td>"
                     f"<td style='text-align:left'>{_cell(shown)}</td><td style='text-align:left'>{_cell(yours)}</td>{mark}</tr>")
    _display_html((f"<b>{html.escape(title)}</b>" if title else "")
                  + "<table><tr><th style='text-align:left'>what</th><th style='text-align:left'>expected</th>"
                  "<th style='text-align:left'>yours</th><th></th><th></th></tr>" + "".join(lines) + "</table>"
                  + "".join(f"<p style='margin:4px 0;color:#555'>{html.escape(line, quote=False)}</p>"
                            for line in dict.fromkeys(unanswered)))


# -- the last net: an exception through the learner's code, shown as one message -------------

def _through_learner_code(exc: BaseException) -> bool:
    if isinstance(exc, (SyntaxError, LearnerCodeBroken)):
        return True
    return any("/services/" in f.filename for f in traceback.extract_tb(exc.__traceback__))


def _custom_exc(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> Any:
    if not _through_learner_code(value):
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    if isinstance(value, (SyntaxError, LearnerCodeBroken)):
        _show_broken(_explain(value))
    else:
        _show_error("Your code raised", _explain(value), value)
    return None


def install_exception_handler(shell: Any) -> None:
    """Show exceptions that come from the learner's code as one readable message."""
    import warnings

    # Trio (imported later by the HTTP stack) warns that it will not install its own handler.
    warnings.filterwarnings("ignore", message="IPython detected, but you already have a custom exception handler",
                            category=RuntimeWarning)
    shell.set_custom_exc((Exception,), _custom_exc)
