# Source of notebooks/05-trace-analysis.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Step 5
#
# Run the setup cell, then read the step: its goal, the file you edit with the `TODO`s left in
# it, the checks that grade it, and hints (folded).

# %%
# Setup: the kit's notebook helpers, and the tree to work on.
try:
    import kit
except ImportError:  # the kit is not installed: use the one next to this folder
    import sys
    sys.path.insert(0, "..")
from kit.notebook import *

use_tree()
show_step(5)

# %% [markdown]
# ## The idea: from a list of spans to answers
#
# A trace arrives as a flat list of spans, each naming its parent. Rebuilt as a tree, it
# answers three questions:
#
# - **Where did the time go?** The **critical path** is the chain of work the request was
#   actually waiting for. Walk back from the end of the root: the child that ended last (no
#   later than where you are) was being waited for; continue inside it from its end, then from
#   its start look for the next one; time covered by no child is the parent's own. Shorten
#   anything on that path and the request gets faster; shorten work done in parallel with
#   something slower and nothing changes.
# - **What is slow in itself?** A span's **self time** is its duration minus the time its
#   children were running: a long span whose time is all in its children is not the culprit.
# - **Who calls whom?** The **service map**: calls and failed calls between services, and from
#   a service to a database or an outside API.
#
# The pictures in these notebooks draw the kit's own answers; here you compare yours with them.
#
# ## Try it: the worked example from the contract
#
# Root `A` runs 0-100 ms; its children `B` (10-40) and `C` (20-90); `C`'s child `D` (30-60).
# The critical path is A 0-20, C 20-30, D 30-60, C 60-90, A 90-100: `B` is not on it, because
# `C` ended later and overlapped it. Self times: A 20, B 30, C 40, D 30.

# %%
from services.api_gateway import monitoring
from services.shared.span_store import SpanRecord

T0 = 1_700_000_000_000.0   # epoch ms, like real spans


def span(span_id, parent, name, start, end):
    return SpanRecord(trace_id="ab" * 16, span_id=span_id * 16, parent_span_id=parent and parent * 16,
                      name=name, service="example-service", start_ms=T0 + start, duration_ms=end - start)


example = [span("a", None, "A", 0, 100), span("b", "a", "B", 10, 40),
           span("c", "a", "C", 20, 90), span("d", "c", "D", 30, 60)]
tree = try_it(monitoring.build_trace_tree, example)
yours = try_it(monitoring.calculate_critical_path, tree) if tree is not None else None
as_offsets = lambda path: [{"name": s["name"], "from ms": s["start_ms"] - T0, "to ms": s["end_ms"] - T0}
                           for s in path or []]
show_table(as_offsets(yours), title="Your critical path")
show_table(as_offsets(critical_path(example)), title="The kit's critical path")

# %% [markdown]
# Drawn: the dark stripe is *your* critical path when you have one (compare it with the table
# above), the kit's otherwise.

# %%
show_trace(example, critical_path=yours, title="The worked example")
show_table(try_it(monitoring.identify_bottlenecks, example, threshold_ms=0), title="Your bottlenecks (self time)")

# %% [markdown]
# ## Try it: a real trace with a slow dependency
#
# An order whose external payment API takes 150 ms. The critical path should run through
# `process_payment`, the payment service and its call to the provider, and the biggest
# bottleneck by self time should be that call.

# %%
slow = await run_order("slow", delay_s=0.15)
spans = records(slow)            # the spans as SpanRecords, what your functions take
tree = try_it(monitoring.build_trace_tree, spans)
yours = try_it(monitoring.calculate_critical_path, tree) if tree is not None else None
print("total duration (ms):", try_it(monitoring.calculate_total_duration, spans))
show_table([s for s in yours or [] if s["duration_ms"] >= 1.0], ["service", "name", "duration_ms"],
           title="Your critical path (its segments of 1 ms or more)")

# %%
show_trace(slow, critical_path=yours, title="Your critical path (dark stripe)")

# %%
show_table(try_it(monitoring.identify_bottlenecks, spans, threshold_ms=10.0),
           ["service", "operation", "duration_ms", "self_time_ms", "percentage_of_total"],
           title="Your bottlenecks (self time of at least 10 ms)")

# %% [markdown]
# Your service map (`build_service_dependencies`) drawn, and the kit's below it: they should
# match.

# %%
edges = try_it(monitoring.build_service_dependencies, spans)
if edges is not None:
    show_service_map(slow, edges=edges, title="Your service map")
show_service_map(slow, title="The kit's service map")

# %% [markdown]
# ## Try it: the endpoint
#
# The gateway serves all of it at `GET /monitoring/traces/{trace_id}`, reading the spans from
# the span store (in the notebook, the spans the services exported).

# %%
async with open_mesh() as mesh:
    await mesh.order()
    trace_id = next(iter(traces(mesh.spans())), "0" * 32)
    answer = await mesh.get("gateway", f"/monitoring/traces/{trace_id}")
print(answer.status_code)
try:
    body = answer.json()
    print({key: (value if not isinstance(value, list) else f"[{len(value)} entries]")
           for key, value in body.items()} if isinstance(body, dict) else body)
except ValueError:
    print(answer.text[:500])

# %% [markdown]
# ## Grade Step 5

# %%
check(5)
