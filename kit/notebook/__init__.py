"""The notebooks' API: work through the workshop in Jupyter, see your traces, grade each step.

    from kit.notebook import *
    use_tree()                            # exercise/ (yours); "solution" for instructors
    show_step(2)                          # the step's goal, file, TODOs and checks (course.toml)
    run = await run_order()               # one order through the five services, in process
    show_trace(run)                       # the trace as a waterfall, critical path highlighted
    show_service_map(run)                 # who called whom, with call and error counts
    check(2)                              # grade Step 2 in place, as `grade.py --only 2` does

**Which code runs.** `use_tree()` puts one tree on `sys.path`: `exercise/` unless the
environment variable `WORKSHOP_NOTEBOOK_TREE` says otherwise; `use_tree("solution")` (or
`WORKSHOP_NOTEBOOK_TREE=solution` before starting Jupyter) shows the reference answer, and a
path grades a copy of `exercise/`. This is the one switch: every helper below uses that tree.

**Your edits are picked up.** You edit the `.py` files; before each cell runs, any
`services.*` module whose file changed since it was imported is dropped from `sys.modules`
(all of them at once, so classes stay consistent), and the next import reads your new code.
`reload()` forces it.

**The services run in the notebook.** `run_order()`, `run_orders()` and `open_mesh()` build the
five services of the tree in this process (`kit.harness.mesh`): only headers cross between services,
the external payment API is simulated and HTTP retries do not really sleep. Jupyter already
runs an event loop, so these are awaited at the top level of a cell (`await run_order()`,
`async with open_mesh() as mesh: ...`). Errors raised by your code are shown as a short
message (with the traceback folded away), never as a crashed cell.

**Grading** (`check(step)`) runs exactly what `python grade.py --only N` runs, in a child
process, on the files as saved on disk, and returns the `GradeReport`, which draws itself.
"""
from __future__ import annotations

import ast
import contextlib
import html
import io
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from kit import ROOT
from kit.course import load_course
from kit.traces.waterfall import critical_path, service_dependencies, service_map_svg, waterfall_svg

__all__ = ["use_tree", "current_tree", "reload", "show_step", "course_overview", "open_mesh",
           "run_order", "run_orders", "show_trace", "show_service_map", "trace_picture",
           "records", "traces", "try_it", "show_table", "check", "example_trace", "critical_path",
           "service_dependencies"]

TREE_ENV = "WORKSHOP_NOTEBOOK_TREE"
_state: dict[str, Any] = {"tree": None, "loaded_at": 0.0, "hooked": False}
#: One entry per `check()` in this session: {"step", "passed", "total", "all_passed", "error"}.
grading_history: list[dict] = []


# -- which tree, and picking up edits --------------------------------------------------------

def _tree_path(tree: str | os.PathLike) -> Path:
    path = ROOT / str(tree) if str(tree) in ("exercise", "solution") else Path(tree).expanduser().resolve()
    if not (path / "services").is_dir():
        raise ValueError(f"use_tree({str(tree)!r}): {path} has no services/ folder; "
                         "use 'exercise', 'solution' or the path of a copy of exercise/")
    return path


def use_tree(tree: str | os.PathLike | None = None) -> None:
    """Work on `tree`: "exercise" (the default), "solution", or the path of a copy of exercise/.
    Without an argument, the environment variable WORKSHOP_NOTEBOOK_TREE decides."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")  # before any instrumentation
    path = _tree_path(tree or os.environ.get(TREE_ENV) or "exercise")
    known = {str(ROOT / "exercise"), str(ROOT / "solution"), str(_state["tree"] or "")}
    sys.path[:] = [p for p in sys.path if p not in known]
    sys.path.insert(0, str(path))
    _state["tree"] = path
    reload()
    _install_hook()
    shown = f"{path.relative_to(ROOT)}/" if path.is_relative_to(ROOT) else str(path)
    print(f"Working on {shown}" + ("  (your code)" if path == ROOT / "exercise" else ""))


def current_tree() -> Path:
    """The tree in use (use_tree() is called with its default if it was not yet)."""
    if _state["tree"] is None:
        with contextlib.redirect_stdout(io.StringIO()):
            use_tree()
    return _state["tree"]


def reload() -> list[str]:
    """Forget every imported `services.*` module, so the next import reads the files again."""
    dropped = [name for name in sys.modules if name == "services" or name.startswith("services.")]
    for name in dropped:
        del sys.modules[name]
    _state["loaded_at"] = time.time()
    return dropped


def _edited_files() -> list[Path]:
    tree = current_tree()
    return [p for p in (tree / "services").rglob("*.py") if p.stat().st_mtime > _state["loaded_at"]]


def _refresh_if_edited(*_: Any) -> None:
    if _state["tree"] is None or "services" not in sys.modules:
        return
    edited = _edited_files()
    if edited:
        reload()
        names = ", ".join(str(p.relative_to(_state["tree"])) for p in edited[:4])
        print(f"↻ reloaded your edited code ({names})")


def _install_hook() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and not _state["hooked"]:
        shell.events.register("pre_run_cell", _refresh_if_edited)
        _state["hooked"] = True


# -- the course, the step, the learner's TODOs ---------------------------------------------------

_TODO = re.compile(r"^\s*#\s*TODO\s+(\d+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")


def _todos(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, number, criteria, text) of every `# TODO n (criteria): text` comment, with the
    comment lines that continue it."""
    found: list[list] = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for i, line in enumerate(lines, 1):
        match = _TODO.match(line)
        if match:
            found.append([i, match[1], match[2] or "", match[3].strip()])
    for entry in found:                   # join the indented comment lines that follow
        for line in lines[entry[0]:]:
            stripped = line.strip()
            if not stripped.startswith("#") or _TODO.match(line) or not re.match(r"#\s{2,}\S", stripped):
                break
            entry[3] += " " + stripped.lstrip("#").strip()
    return [tuple(e) for e in found]


def _checks_by_step() -> dict[int, list[dict]]:
    """The graded checks, read from checks/*.py without importing them: title, criterion, TODO."""
    steps: dict[int, list[dict]] = {}
    for path in sorted((ROOT / "checks").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", getattr(deco.func, "attr", "")) == "check":
                    kw = {k.arg: ast.literal_eval(k.value) for k in deco.keywords}
                    doc = (ast.get_docstring(node) or node.name).strip().splitlines()[0]
                    steps.setdefault(int(kw["step"]), []).append(
                        {"title": doc, "criterion": kw.get("criterion", ""), "todo": kw.get("todo") or ""})
    return steps


def show_step(number: int) -> None:
    """Show a step as course.toml describes it, the TODOs left in your file and its checks."""
    course = load_course()
    step = course.step(number)
    path = current_tree() / step.file
    checks = _checks_by_step().get(number, [])
    criteria = list(dict.fromkeys(c["criterion"] for c in checks))
    titles = {c.id: c.title for c in course.criteria}
    todos = _todos(path)
    e = html.escape
    parts = [f"<h3>Step {step.number}: {e(step.title)}</h3>",
             f"<p><b>Goal.</b> {e(step.goal)}</p>",
             "<p><b>Success criteria served:</b> " + (", ".join(
                 f"<i>{e(titles.get(c, c))}</i> ({e(course.criterion(c).summary) if c in titles else ''})"
                 for c in criteria) or "none yet") + "</p>",
             f"<p><b>You edit</b> <code>{e(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))}"
             f"</code>" + (f", {len(todos)} TODO comments:</p>" if todos else ": no TODOs left in it.</p>")]
    if todos:
        parts.append("<ul>" + "".join(
            f"<li><code>line {line}</code> <b>TODO {num}</b>{f' <small>({e(crit)})</small>' if crit else ''}: "
            f"{e(text)}</li>" for line, num, crit, text in todos) + "</ul>")
    if checks:
        rows = "".join(f"<tr><td style='text-align:left'>{e(c['title'])}</td><td>{e(titles.get(c['criterion'], c['criterion']))}"
                       f"</td><td>{e(c['todo'])}</td></tr>" for c in checks)
        parts.append(f"<details><summary><b>{len(checks)} checks</b> grade this step (<code>check({number})</code>)"
                     f"</summary><table><tr><th>check</th><th>criterion</th><th>look at</th></tr>{rows}</table></details>")
    if step.hints:
        parts.append("<details><summary><b>Hints</b></summary><ul>"
                     + "".join(f"<li>{e(h)}</li>" for h in step.hints) + "</ul></details>")
    _display_html("".join(parts))


def course_overview() -> None:
    """The steps and success criteria of the course, from course.toml."""
    course = load_course()
    e = html.escape
    steps = "".join(f"<tr><td>{s.number}</td><td style='text-align:left'>{e(s.title)}</td>"
                    f"<td style='text-align:left'><code>{e(s.file)}</code></td>"
                    f"<td style='text-align:left'>{e(s.goal)}</td></tr>" for s in course.steps)
    criteria = "".join(f"<tr><td style='text-align:left'>{e(c.title)}</td><td>{c.points}</td>"
                       f"<td style='text-align:left'>{e(c.summary)}</td></tr>" for c in course.criteria)
    _display_html(f"<h3>{e(course.title)}</h3><table><tr><th>step</th><th>title</th><th>file</th><th>goal</th></tr>"
                  f"{steps}</table><p><b>Success criteria</b> ({course.max_score} points)</p><table><tr>"
                  f"<th>criterion</th><th>points</th><th>what it means</th></tr>{criteria}</table>")


# -- running the services --------------------------------------------------------------------

@contextlib.asynccontextmanager
async def open_mesh(**options: Any):
    """`async with open_mesh() as mesh:` the five services of the tree, as `kit.harness.mesh.Mesh`
    (options: `sampling=SamplingConfig(...)`, `settings={...}`); torn down at the end."""
    current_tree()
    _refresh_if_edited()
    from kit.harness.mesh import Mesh

    mesh = Mesh(**options)
    await mesh.__aenter__()
    try:
        yield mesh
    finally:
        await mesh.__aexit__(None, None, None)


@dataclass(repr=False)
class OrderRun:
    """What one order through the services produced."""

    status_code: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    spans: list = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    crossings: list = field(default_factory=list)      # each call between services: host, path, headers
    sleeps: list[float] = field(default_factory=list)  # what the HTTP clients' retries would have slept
    error: str | None = None
    exception: BaseException | None = None

    @property
    def trace_ids(self) -> list[str]:
        return list(dict.fromkeys(f"{s.context.trace_id:032x}" for s in self.spans))

    def __repr__(self) -> str:
        if self.error:
            return f"OrderRun(error={self.error.splitlines()[0]!r})"
        return f"OrderRun({self.status_code}, {len(self.spans)} spans in {len(self.trace_ids)} traces)"

    def _repr_html_(self) -> str:
        if self.error:
            return f"<b style='color:#d62728'>The order did not get through:</b> <pre>{html.escape(self.error)}</pre>"
        traces = len(self.trace_ids)
        return (f"<b>{self.status_code}</b> <code>{html.escape(str(self.body))[:400]}</code><br>"
                f"{len(self.spans)} spans exported, in {traces} trace{'s' * (traces != 1)}")


class Orders(list):
    """The runs of `run_orders()`, in order; `.spans` holds every span they exported."""

    spans: list = []

    def _repr_html_(self) -> str:
        codes: dict[Any, int] = {}
        for run in self:
            codes[run.status_code] = codes.get(run.status_code, 0) + 1
        traces = len({f"{s.context.trace_id:032x}" for s in self.spans})
        return (f"{len(self)} orders, answers {', '.join(f'{c}×{n}' for c, n in codes.items())}; "
                f"{len(self.spans)} spans exported, in {traces} traces")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROVIDER = {"succeeds": "provider_succeeds", "declines": "provider_declines", "fails": "provider_fails",
             "times_out": "provider_times_out", "slow": "provider_slow"}


def _set_provider(mesh: Any, provider: str, delay_s: float) -> None:
    if provider not in _PROVIDER:
        raise ValueError(f"provider={provider!r}: use one of {', '.join(_PROVIDER)}")
    method = getattr(mesh, _PROVIDER[provider])
    method(delay_s) if provider == "slow" else method()


async def _one_order(mesh: Any, spec: dict, default_provider: str) -> OrderRun:
    run = OrderRun()
    _set_provider(mesh, spec.pop("provider", default_provider), spec.pop("delay_s", 0.2))
    before, crossings, sleeps = len(mesh.spans()), len(mesh.transport.crossings), len(mesh.sleeps)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            response = await mesh.order(**spec)
        run.status_code, run.headers = response.status_code, dict(response.headers)
        try:
            run.body = response.json()
        except ValueError:
            run.body = response.text
    except Exception as exc:  # the learner's code raised: report it, keep the notebook going
        run.error, run.exception = _explain(exc), exc
    run.logs = [_ANSI.sub("", line) for line in out.getvalue().splitlines() if line.strip()]
    run.spans = mesh.spans()[before:]
    run.crossings = mesh.transport.crossings[crossings:]
    run.sleeps = mesh.sleeps[sleeps:]
    return run


async def run_order(provider: str = "succeeds", *, sampling: Any = None, delay_s: float = 0.2,
                    **order: Any) -> OrderRun:
    """Send one order through fresh services and return what happened (`OrderRun`).

    `provider`: how the external payment API answers: "succeeds", "declines" (402),
    "fails" (503), "times_out" or "slow" (`delay_s` seconds, really waited).
    `order`: `token`, `items`, `total_amount`, `headers`, `order_id`, as `Mesh.order` takes.
    """
    runs = await run_orders([{"provider": provider, "delay_s": delay_s, **order}], sampling=sampling)
    return runs[0]


async def run_orders(orders: int | Iterable[dict], *, sampling: Any = None,
                     provider: str = "succeeds", **common: Any) -> Orders:
    """Send several orders through one set of services: `orders` is a count, or one dict per
    order (keys as `run_order` takes, `provider` included). Returns the runs (`Orders`)."""
    specs = [dict(common) for _ in range(orders)] if isinstance(orders, int) else [{**common, **o} for o in orders]
    runs = Orders()
    runs.spans = []
    try:
        async with open_mesh(sampling=sampling) as mesh:
            for spec in specs:
                runs.append(await _one_order(mesh, spec, provider))
            runs.spans = mesh.spans()
    except Exception as exc:  # building or stopping the services failed: the learner's code
        message = _explain(exc)
        _show_error("The services could not run", message, exc)
        runs.extend(OrderRun(error=message) for _ in range(len(specs) - len(runs)))
        return runs
    failed = [run for run in runs if run.error]
    if failed:
        _show_error(f"{len(failed)} of {len(runs)} orders did not get through; the first one", failed[0].error, failed[0].exception)
    return runs


# -- pictures and tables -----------------------------------------------------------------------

def _spans_of(spans: Any) -> list:
    return list(getattr(spans, "spans", spans) or [])


@dataclass
class TracePicture:
    """An SVG picture that Jupyter shows inline (`.svg` holds the markup)."""

    svg: str
    text: str = ""

    def _repr_html_(self) -> str:
        return f'<div style="overflow-x:auto">{self.svg}</div>'

    def __repr__(self) -> str:
        return self.text or "<TracePicture>"


def trace_picture(spans: Any, *, critical_path: Iterable[dict] | None = None, title: str | None = None,
                  max_rows: int = 200) -> TracePicture:
    """The waterfall of `spans` (SDK spans, SpanRecords, an OrderRun or Orders) as a picture."""
    from kit.traces.text import render_tree

    found = _spans_of(spans)
    return TracePicture(waterfall_svg(found, critical_path=critical_path, title=title, max_rows=max_rows),
                        render_tree(found))


def show_trace(spans: Any, *, critical_path: Iterable[dict] | None = None, title: str | None = None,
               max_rows: int = 200) -> None:
    """Draw the spans as a waterfall: a row per span, coloured by service, errors in red, the
    critical path as a dark stripe (pass `critical_path=` to show your own instead)."""
    _display(trace_picture(spans, critical_path=critical_path, title=title, max_rows=max_rows))


def show_service_map(spans: Any, *, edges: Iterable[dict] | None = None, title: str | None = None) -> None:
    """Draw which service called which (and which database or outside API), with counts."""
    found = _spans_of(spans)
    _display(TracePicture(service_map_svg(found, edges=edges, title=title)))


def traces(spans: Any) -> dict[str, list]:
    """The spans (SDK spans, an OrderRun or Orders) grouped by trace id, each in start order,
    the traces in order of their first span."""
    found = sorted(_spans_of(spans), key=lambda s: s.start_time or 0)
    grouped: dict[str, list] = {}
    for span in found:
        grouped.setdefault(f"{span.context.trace_id:032x}", []).append(span)
    return grouped


def records(spans: Any) -> list:
    """The spans as the tree's `SpanRecord`s (what Step 5's functions take)."""
    current_tree()
    from services.shared.span_store import SpanRecord

    return [s if isinstance(s, SpanRecord) else SpanRecord.from_span(s) for s in _spans_of(spans)]


def show_table(rows: Iterable[dict] | None, columns: list[str] | None = None, *, title: str | None = None,
               limit: int = 40) -> None:
    """Rows of dicts as a small HTML table (floats rounded; at most `limit` rows)."""
    rows = list(rows or [])
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    e = html.escape

    def cell(value: Any) -> str:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        return e(text if len(text) <= 80 else text[:79] + "…")
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{cell(r.get(c, ''))}</td>" for c in columns)
                   + "</tr>" for r in rows[:limit])
    more = f"<p>… {len(rows) - limit} more rows</p>" if len(rows) > limit else ""
    _display_html((f"<b>{e(title)}</b>" if title else "") + (f"<table><tr>{head}</tr>{body}</table>{more}"
                                                             if rows else " <i>(nothing)</i>"))


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


# -- grading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GradingProblem:
    """Grading could not run (not a failed check): what happened and what to do."""

    message: str

    def _repr_html_(self) -> str:
        return f"<b style='color:#d62728'>Grading could not run:</b> {html.escape(self.message)}"


def check(step: int | str | None = None, *, timeout_s: float = 10.0):
    """Grade one step (or a criterion id, or everything) of the tree in use, in a child process,
    exactly as `python grade.py --only N` does; returns the GradeReport (it draws itself)."""
    from kit.grading.runner import GradingError, run_checks

    only = None if step is None else str(step)
    if only is not None and only.isdigit() and not _checks_by_step().get(int(only)):
        grading_history.append({"step": only, "error": "no checks"})
        return GradingProblem(f"no check grades Step {only} yet (the kit has none for it)")
    try:
        report = run_checks(current_tree(), only=only, check_timeout_s=timeout_s, split=2)
    except GradingError as exc:
        grading_history.append({"step": only, "error": str(exc)})
        return GradingProblem(str(exc))
    grading_history.append({"step": only, "passed": sum(c.passed for c in report.checks),
                            "total": len(report.checks), "all_passed": report.all_passed, "error": None})
    return report


# -- an example trace (for pictures before your own code makes any) -----------------------------

def example_trace() -> list:
    """A made-up trace of one order whose payment is slow (SpanRecord-shaped objects), to show
    what the pictures look like before your services export anything."""
    from types import SimpleNamespace

    tid, t0, spans = "4bf92f3577b34da6a3ce929d0e0e4736", 1_700_000_000_000.0, []

    def add(sid, parent, service, name, kind, start, duration, status="UNSET", **attrs):
        spans.append(SimpleNamespace(trace_id=tid, span_id=f"{sid:016x}", parent_span_id=f"{parent:016x}" if parent else None,
                                     name=name, service=service, kind=kind, start_ms=t0 + start,
                                     duration_ms=duration, status=status, attributes=attrs, events=()))
    add(1, None, "api-gateway", "POST /api/orders", "SERVER", 0, 262)
    add(2, 1, "api-gateway", "POST", "CLIENT", 2, 14, **{"url.full": "http://auth-service:8001/auth/verify"})
    add(3, 2, "auth-service", "POST /auth/verify", "SERVER", 4, 10)
    add(4, 1, "api-gateway", "POST", "CLIENT", 18, 240, **{"url.full": "http://order-service:8002/orders"})
    add(5, 4, "order-service", "POST /orders", "SERVER", 20, 236)
    add(6, 5, "order-service", "GET", "CLIENT", 22, 2, **{"db.system": "redis", "db.statement": "GET ?"})
    add(7, 5, "order-service", "process_order", "INTERNAL", 26, 228)
    add(8, 7, "order-service", "validate_inventory", "INTERNAL", 28, 18)
    add(9, 8, "order-service", "POST", "CLIENT", 29, 16, **{"url.full": "http://inventory-service:8004/inventory/check"})
    add(10, 9, "inventory-service", "POST /inventory/check", "SERVER", 31, 12)
    add(11, 10, "inventory-service", "SELECT", "CLIENT", 33, 3, **{"db.system": "sqlite", "db.statement": "SELECT on_hand FROM stock WHERE product_id = ?"})
    add(12, 7, "order-service", "reserve_inventory", "INTERNAL", 48, 22)
    add(13, 12, "order-service", "POST", "CLIENT", 49, 20, **{"url.full": "http://inventory-service:8004/inventory/reserve"})
    add(14, 13, "inventory-service", "POST /inventory/reserve", "SERVER", 51, 16)
    add(15, 14, "inventory-service", "UPDATE", "CLIENT", 54, 5, **{"db.system": "sqlite", "db.statement": "UPDATE stock SET on_hand = on_hand - ?"})
    add(16, 7, "order-service", "process_payment", "INTERNAL", 72, 170)
    add(17, 16, "order-service", "POST", "CLIENT", 73, 168, **{"url.full": "http://payment-service:8005/payments/process"})
    add(18, 17, "payment-service", "POST /payments/process", "SERVER", 75, 164)
    add(19, 18, "payment-service", "POST", "CLIENT", 78, 158, **{"url.full": "https://api.payment-provider.example/v1/charges",
                                                                 "server.address": "api.payment-provider.example"})
    add(20, 7, "order-service", "confirm_order", "INTERNAL", 244, 8)
    return spans


# -- display plumbing ----------------------------------------------------------------------------

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
