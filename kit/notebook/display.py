"""Showing things in the notebook: HTML and rich objects through IPython's `display` (plain
text outside Jupyter), and errors raised by the learner's code as a short message with the
traceback folded away, never as a crashed cell.

`try_it(function, ...)` is the learner's way in: call one of your functions, see why it failed.
"""
from __future__ import annotations

import html
import re
import traceback
from typing import Any, Callable


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

    if isinstance(exc, CheckFailure):
        return exc.learner_message()
    return describe_exception(exc)


def _show_error(heading: str, message: str, exc: BaseException | None = None) -> None:
    tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
    _display_html(f"<div style='border-left:4px solid #d62728;padding:4px 8px'><b>{html.escape(heading)}:</b>"
                  f"<pre>{html.escape(message)}</pre>"
                  + (f"<details><summary>traceback</summary><pre>{html.escape(tb)}</pre></details>" if tb else "")
                  + "</div>")


def try_it(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call one of your functions; if it raises, show why (not a crashed cell) and return None."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as exc:
        _display_html(f"<div style='border-left:4px solid #edc948;padding:4px 8px'><b>Not done yet:</b> "
                      f"{html.escape(str(exc) or getattr(function, '__name__', 'this function'))}</div>")
    except Exception as exc:
        _show_error(f"{getattr(function, '__name__', 'Your code')} raised", _explain(exc), exc)
    return None
