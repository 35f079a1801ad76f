# Source of notebooks/00-welcome.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Welcome: distributed tracing with OpenTelemetry
#
# In this workshop you make one order visible as **one trace** while it travels through five
# services. These notebooks go with it: one per step, each explaining the idea, letting you
# try your code on the real services (running right here, in this notebook), drawing the trace
# your code produced, and grading the step in place.
#
# **The system.** A client sends `POST /api/orders` to the **api-gateway**, which checks the
# caller's token with the **auth-service** and hands the order to the **order-service**. The
# order service reads a product cache (**Redis**), asks the **inventory-service** (which keeps
# its stock in **SQLite**) to check and reserve the items, and the **payment-service** to
# charge the customer through an **external payment API** (a third party, not ours).
#
# ```
# client ─▶ api-gateway ─┬─▶ auth-service
#                        └─▶ order-service ─┬─▶ Redis (cache)
#                                           ├─▶ inventory-service ─▶ SQLite
#                                           └─▶ payment-service ─▶ external payment API
# ```
#
# **How the kit runs it.** The five services are FastAPI apps. The notebooks start all five in
# this Python process and route calls between them by host name; a call crosses from one
# service to the next with **only its HTTP headers**, exactly as over a network, so a trace
# connects only if your code carries the context across. The external payment API is
# simulated (we can make it decline, fail or be slow), and every service exports its spans to
# memory, so we can draw them.
#
# **Which code runs.** The first code cell of every notebook picks the tree: `exercise/` (your
# work) unless the environment variable `WORKSHOP_NOTEBOOK_TREE` says otherwise. Instructors
# can run `use_tree("solution")` (or start Jupyter with `WORKSHOP_NOTEBOOK_TREE=solution`) to
# see the reference answer.
#
# **Where to read more.** [OpenTelemetry for Python](https://opentelemetry.io/docs/languages/python/)
# ([traces and spans](https://opentelemetry.io/docs/concepts/signals/traces/),
# [context propagation](https://opentelemetry.io/docs/concepts/context-propagation/),
# [sampling](https://opentelemetry.io/docs/concepts/sampling/)), the
# [W3C Trace Context](https://www.w3.org/TR/trace-context/) standard that carries a trace
# between services, and the kit's own reference for what each function must do,
# `docs/learner-api.md`.

# %%
# Setup: the kit's notebook helpers, and the tree to work on.
try:
    import kit
except ImportError:  # the kit is not installed: use the one next to this folder
    import sys
    sys.path.insert(0, "..")
from kit.notebook import *

use_tree()

# %% [markdown]
# ## The course
#
# Six steps, one file each: you complete the numbered `TODO` comments in that file. The
# table comes from `course.toml`, the one description of the course that the grader reads too;
# **points** is each step's share of the course's 100 (a criterion's points are shared evenly
# by its checks, and a step is worth the points of the checks that grade it).
#
# **The core path.** The workshop has 45-60 minutes for the six steps. The TODOs listed under
# *core TODOs* are the core path: done in order, step by step, they earn every success
# criterion's essentials, and each step's core checks turn green as you finish it. The other
# TODOs are the **deeper** part (the resilient exporter, metrics, B3 details, circuit breaker,
# health probes, the tail sampler's limits, ...): come back to them once the six steps' core
# is done. Every step notebook marks each TODO and each check *core* or *deeper*.

# %%
course_overview()

# %% [markdown]
# ## What you will see
#
# Every step notebook draws the trace your code produced as a **waterfall**: one row per
# span, children indented under their parent, bars coloured by service on a time axis in
# milliseconds. Errors have a red outline and a ✗, exceptions a red diamond, and the dark
# stripe through the bars is the **critical path**: the chain of work the request was
# actually waiting for (every span on it is striped and its name is bold, parents included: a
# span waiting for its child is on the path too). A `CLIENT` span is labelled with the call it
# made, e.g. `POST inventory-service /inventory/check`. Hover over a bar for its attributes.
#
# Here is a made-up trace of an order whose payment was slow, to show what to look for. The
# order's steps run one after another, so each of them is on the critical path; the longest
# stretch of it is `process_payment` waiting for the payment service and its call to the
# external API (158 of the 262 ms): that is where the time went.

# %%
show_trace(example_trace(), title="An example: one order with a slow payment")

# %% [markdown]
# The **service map** draws the same spans as who-calls-whom, with call and error counts.

# %%
show_service_map(example_trace(), title="The example's service map")

# %% [markdown]
# ## Your services, as they are now
#
# `await run_order()` sends one order through the five services of your tree and returns what
# happened: the HTTP answer, the spans that were exported, the log lines, and the headers of
# every call between services. (Jupyter runs an event loop already, so `await` works at the
# top level of a cell.)
#
# As shipped, the exercise works but traces nothing: the order goes through (answer 200), and
# no span is exported, so the waterfall below is empty. After Step 1 every service exports its
# spans (each service's part still a trace of its own); after Step 2 they join into one trace.

# %%
run = await run_order()
run

# %%
show_trace(run)

# %% [markdown]
# ## How to grade
#
# The last cell of each step notebook is `check(N)`: it grades Step N in place, exactly as
# `python grade.py --only N` does on the command line (in a separate process, on your files as
# saved), and shows what the scorecard shows: every check of the step in TODO order, with its
# TODO (core or deeper), criterion and points, the step's points out of its share of the 100,
# and for each failure (click it) what was tried, what was expected and what your code did,
# with your trace; the step's hints come last.
#
# When you edit a file, just re-run the cells: the notebook notices the edit and imports your
# new code. If your file has a syntax error, the cells say so in one line (which file, which
# line) and the notebook keeps going.
#
# **Outside the notebooks.** `python -m kit.live` runs the five services as real processes on
# ports 8000-8005; then [the live trace viewer](http://127.0.0.1:8000/viewer/) lists recent
# traces and draws each one as these notebooks do, and `python scripts/step7_trace_test.py`
# (the workshop's Step 7) sends an order and prints its analysis from your Step 5 endpoint once
# Step 5 is done. Start with **01-telemetry**.
