# Source of notebooks/12-e4-dependency-map.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Extension E4: the dependency map across traces
#
# Optional, outside the 100 points. Step 5's service map shows who called whom in one trace.
# Summed over every trace in the store, with the latency of each dependency, it becomes the
# map operators look at first: which dependency is slow, which one fails. You edit
# `services/api_gateway/analytics.py`, TODO 3 (`dependency_map`); `docs/learner-api.md`,
# section E4, says exactly what it returns.

# %%
# Setup: the kit's notebook helpers, and the tree to work on.
try:
    import kit
except ImportError:  # the kit is not installed: use the one next to this folder
    import sys
    sys.path.insert(0, "..")
import math

from kit.course import load_course
from kit.notebook import *

use_tree()
extension = load_course().extension("E4")
print(f"{extension.id}. {extension.title}: {extension.goal}\nYou edit: {', '.join(extension.files)}")

# %% [markdown]
# ## The idea: Step 5's edges, trace by trace, summed
#
# The edges are exactly Step 5's (rules 5.27 to 5.30): a span with a child in another service
# is one call from its service to the child's (failed when the child is `ERROR`); a `CLIENT`
# span with no child called something that exports no spans: its `db.system`, else its
# `peer.service`, else its `server.address`. Two things change across traces (rules E4.1 to
# E4.5):
#
# - a parent is looked up **in its own trace**: span ids are only unique within a trace;
# - each edge gets the nearest-rank p50 and p95 of its calls' **latency**, the duration of the
#   caller's span of the edge (the parent, usually the caller's `CLIENT` span: the time the
#   caller waited, network included; or the childless `CLIENT` span itself).
#
# ## Try it: orders through the five services

# %%
analytics = learner("services.api_gateway.analytics")
runs = await run_orders([{"provider": "succeeds"}] * 6 + [{"provider": "declines"}] * 2
                        + [{"provider": "slow", "delay_s": 0.05}])
spans = records(runs.spans)


# %% [reference]
# The kit's reference answer for TODO 3 (not in the learner release).
def nearest_rank(values, n):
    ordered = sorted(values)
    return ordered[math.ceil(n / 100 * len(ordered)) - 1]


def expected_map(spans):
    calls = {}
    by_trace = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, {}).setdefault(s.span_id, s)
    for trace in by_trace.values():
        parents = set()
        for s in trace.values():
            parent = trace.get(s.parent_span_id)
            if parent is not None:
                parents.add(parent.span_id)
                if parent.service != s.service:
                    calls.setdefault((parent.service, s.service), []).append((parent.duration_ms, s.status == "ERROR"))
        for s in trace.values():
            target = s.attributes.get("db.system") or s.attributes.get("peer.service") or s.attributes.get("server.address")
            if s.kind == "CLIENT" and s.span_id not in parents and target:
                calls.setdefault((s.service, str(target)), []).append((s.duration_ms, s.status == "ERROR"))
    return [{"caller": a, "callee": b, "calls": len(c), "errors": sum(e for _, e in c),
             "p50_ms": nearest_rank([d for d, _ in c], 50), "p95_ms": nearest_rank([d for d, _ in c], 95)}
            for (a, b), c in sorted(calls.items())]


# %%
yours = try_it(analytics.dependency_map, spans)
compare(yours, expected_map(spans), todo="Extension E4, TODO 3", title="The dependency map of nine orders")

# %% [markdown]
# Drawn: your edges when you have them, the kit's (Step 5's rules over every trace) otherwise.
# The slow provider call shows in the p95 of `payment-service -> api.payment-provider.example`.

# %%
show_service_map(runs, edges=yours or None, title="The dependency map across traces")

# %% [markdown]
# ## Grade extension E4

# %%
check("E4")
