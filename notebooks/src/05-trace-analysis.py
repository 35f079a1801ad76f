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
# The pictures in these notebooks draw `kit.traces.analysis`: the kit's reference analysis (the
# contract's definitions), or in the learner release your own Step 5, and until your Step 5 gives
# an answer they say what to finish instead. Here every "Try it" shows yours next to the expected
# answer: the contract's own numbers for its worked example, the kit's reference for a real trace
# (in the learner release, where that reference is your own code, yours is shown alone). TODOs
# 1-4 and 6 (the tree, the duration, the critical path, the bottlenecks and the service map) are
# the core of this step; the timeline and the endpoint are the deeper part.
#
# ## Try it: the worked example from the contract
#
# Root `A` runs 0-100 ms; its children `B` (10-40) and `C` (20-90); `C`'s child `D` (30-60).
# The critical path is A 0-20, C 20-30, D 30-60, C 60-90, A 90-100: `B` is not on it, because
# `C` ended later and overlapped it. Self times: A 20, B 30, C 40, D 30.

# %%
from kit.traces import analysis

# False in the learner release: there `kit.traces.analysis` asks your own Step 5.
REFERENCE = not getattr(analysis, "FROM_LEARNER", False)
monitoring = learner("services.api_gateway.monitoring")
span_store = learner("services.shared.span_store")

T0 = 1_700_000_000_000.0   # epoch ms, like real spans


def span(span_id, parent, name, start, end):
    return span_store.SpanRecord(trace_id="ab" * 16, span_id=span_id * 16, parent_span_id=parent and parent * 16,
                                 name=name, service="example-service", start_ms=T0 + start, duration_ms=end - start)


def as_offsets(path, t0=T0, names=None):
    names = names or {}       # span id -> label: a CLIENT span's name with its target
    return [{"span": names.get(s.get("span_id"), s.get("name")), "from ms": round(s["start_ms"] - t0, 3),
             "to ms": round(s["end_ms"] - t0, 3)} for s in path or []]


def against_reference(yours, reference, **how):
    """Yours next to the kit's reference answer (`reference()`); in the learner release, which
    has no reference, yours alone."""
    if REFERENCE:
        compare(yours, reference(), **how)
    elif yours is not None:
        show_table(yours, title=how.get("title", "") + " (yours)")


# The contract's answer for its worked example (times in ms from the trace's start).
CONTRACT_PATH = [{"span": "A", "from ms": 0, "to ms": 20}, {"span": "C", "from ms": 20, "to ms": 30},
                 {"span": "D", "from ms": 30, "to ms": 60}, {"span": "C", "from ms": 60, "to ms": 90},
                 {"span": "A", "from ms": 90, "to ms": 100}]
CONTRACT_BOTTLENECKS = [{"span": "C", "self_time_ms": 40, "percentage_of_total": 40},
                        {"span": "B", "self_time_ms": 30, "percentage_of_total": 30},
                        {"span": "D", "self_time_ms": 30, "percentage_of_total": 30},
                        {"span": "A", "self_time_ms": 20, "percentage_of_total": 20}]

example = try_it(lambda: [span("a", None, "A", 0, 100), span("b", "a", "B", 10, 40),
                          span("c", "a", "C", 20, 90), span("d", "c", "D", 30, 60)]) or []
tree = try_it(monitoring.build_trace_tree, example)
yours = try_it(monitoring.calculate_critical_path, tree) if tree is not None else None
compare(as_offsets(yours) if yours is not None else None, CONTRACT_PATH,
        todo="Step 5, TODO 1 (the tree) and TODO 3 (the critical path)", title="The critical path")

# %% [markdown]
# Drawn: the dark stripe is *your* critical path when you have one (compare it with the table
# above), otherwise the kit's reference (in the learner release, where that is your own Step 5,
# the picture says what to finish). A span waiting for a child on the path is marked too.

# %%
show_trace(example, critical_path=yours, title="The worked example")


def bottleneck_rows(rows, names=None):
    names = names or {}
    return [{"span": names.get(r.get("span_id"), r.get("operation")), "self_time_ms": round(r["self_time_ms"], 3),
             "percentage_of_total": round(r["percentage_of_total"], 3)} for r in rows or []]


def kit_bottlenecks(spans, threshold_ms, top=5):
    uniq, parent = analysis.index(spans)
    return analysis.bottlenecks(uniq, analysis.self_times(uniq, parent), threshold_ms=threshold_ms, top=top)


mine = try_it(monitoring.identify_bottlenecks, example, threshold_ms=0)
compare(bottleneck_rows(mine) if mine is not None else None, CONTRACT_BOTTLENECKS,
        todo="Step 5, TODO 4 (self time)", title="Bottlenecks (self time)")

# %% [markdown]
# ## Try it: a real trace with a slow dependency
#
# An order whose external payment API takes 150 ms. The critical path should run through
# `process_payment`, the payment service and its call to the provider, and the biggest
# bottleneck by self time should be that call.

# %%
slow = await run_order("slow", delay_s=0.15)
spans = records(slow)            # the spans as SpanRecords, what your functions take
start = min((s.start_ms for s in spans), default=0.0)
names = labels(spans)
tree = try_it(monitoring.build_trace_tree, spans)
yours = try_it(monitoring.calculate_critical_path, tree) if tree is not None else None
total = try_it(monitoring.calculate_total_duration, spans)
total_shown = round(total, 3) if isinstance(total, (int, float)) else total
if REFERENCE:
    expectations([("total duration (ms)", round(analysis.total_duration(spans), 3), total_shown, "Step 5, TODO 2")])
elif total is not None:
    show_table([{"total duration (ms), yours": total_shown}])
long = lambda path: [dict(r, **{"from ms": round(r["from ms"], 1), "to ms": round(r["to ms"], 1)})
                     for r, s in zip(as_offsets(path, start, names), path or []) if s["duration_ms"] >= 1.0]
against_reference(long(yours) if yours is not None else None, lambda: long(critical_path(spans)),
                  todo="Step 5, TODO 3", title="The critical path (its segments of 1 ms or more)")

# %%
show_trace(slow, critical_path=yours, title="Your critical path (dark stripe)")

# %%
mine = try_it(monitoring.identify_bottlenecks, spans, threshold_ms=10.0)
against_reference(bottleneck_rows(mine, names) if mine is not None else None,
                  lambda: bottleneck_rows(kit_bottlenecks(spans, 10.0), names),
                  todo="Step 5, TODO 4", title="Bottlenecks with a self time of at least 10 ms",
                  same=lambda a, b: [r["span"] for r in a] == [r["span"] for r in b])

# %% [markdown]
# Your service map (`build_service_dependencies`) next to the kit's reference: they should match.

# %%
edges = try_it(monitoring.build_service_dependencies, spans)
against_reference(edges, lambda: analysis.service_map(*analysis.index(spans)),
                  todo="Step 5, TODO 6 (the service map)", title="The service map")
if edges is not None:
    show_service_map(slow, edges=edges, title="Your service map")
if REFERENCE:
    show_service_map(slow, title="The kit's service map")

# %% [markdown]
# ## Try it: the endpoint (deeper: TODO 7)
#
# The gateway serves all of it at `GET /monitoring/traces/{trace_id}`, reading the spans from
# the span store (in the notebook, the spans the services exported). Expected: 200, with
# `trace_id`, `total_duration_ms`, `service_count`, `span_count`, `critical_path`,
# `bottlenecks`, `timeline` and `service_map`, the same analysis as above. It is what
# `python scripts/step7_trace_test.py` prints against the live system (`python -m kit.live`).

# %%
async with open_mesh() as mesh:
    await mesh.order()
    trace_id = next(iter(traces(mesh.spans())), "0" * 32)
    answer = await mesh.get("gateway", f"/monitoring/traces/{trace_id}")
try:
    body = answer.json()
except ValueError:
    body = {"(not JSON)": answer.text[:200]}
KEYS = ["trace_id", "total_duration_ms", "service_count", "span_count", "critical_path", "bottlenecks",
        "timeline", "service_map"]
expectations([("status", 200, answer.status_code, "Step 5, TODO 7 (the endpoint)")]
             + [(f"field {key}", True, isinstance(body, dict) and key in body, "Step 5, TODO 7") for key in KEYS],
             title=f"GET /monitoring/traces/{trace_id}")

# %% [markdown]
# ## Grade Step 5

# %%
check(5)
