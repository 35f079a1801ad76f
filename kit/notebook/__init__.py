"""The notebooks' API: work through the workshop in Jupyter, see your traces, grade each step.

    from kit.notebook import *
    use_tree()                            # exercise/ (yours); "solution" for instructors
    show_step(2)                          # the step's goal, file, TODOs (core or deeper) and checks
    trace_context = learner("services.shared.trace_context")   # your module, or why it will not import
    compare(yours, expected, todo="Step 2, TODO 1")            # your result next to the expected one
                                          # (expected NO_REFERENCE: the learner release has none)
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
process, on the files as saved on disk, and shows it as the scorecard does: each check in TODO
order, with its TODO (core or deeper), file, criterion and points, and the step's share of the
course's 100 points.

The modules: `tree` (which tree, picking up edits), `steps` (the course, a step, its TODOs),
`orders` (running the services), `pictures` (waterfalls, service maps, tables, links),
`expected` (what an order's trace should show at each step), `grading`
(`check`), `display` (showing HTML and errors, `try_it`).
"""
from __future__ import annotations

# OrderRun, Orders, TracePicture, GradingProblem, TREE_ENV, grading_history and NO_REFERENCE
# are not in __all__ (a notebook's `import *` leaves them out) but stay reachable as
# kit.notebook.NAME (the learner release's reference stubs import NO_REFERENCE by name).
from kit.notebook.display import NO_REFERENCE, compare, expectations, learner, not_done, try_it  # noqa: F401
from kit.notebook.expected import at_least, between, expect_order
from kit.notebook.grading import GradingProblem, check, grading_history  # noqa: F401
from kit.notebook.orders import OrderRun, Orders, open_mesh, run_order, run_orders  # noqa: F401
from kit.notebook.pictures import (LINKS, TracePicture, example_trace, labels, records, show_retries,  # noqa: F401
                                   show_service_map, show_table, show_trace, trace_picture, traces)
from kit.notebook.steps import course_overview, show_step
from kit.notebook.tree import TREE_ENV, current_tree, reload, use_tree  # noqa: F401
from kit.traces.service_map import service_dependencies
from kit.traces.waterfall import critical_path

__all__ = ["use_tree", "current_tree", "reload", "show_step", "course_overview", "open_mesh",
           "run_order", "run_orders", "show_trace", "show_service_map", "trace_picture",
           "records", "traces", "try_it", "learner", "compare", "expectations", "not_done", "expect_order", "at_least", "between", "show_retries", "labels", "LINKS", "show_table", "check", "example_trace", "critical_path",
           "service_dependencies"]
