# Source of notebooks/09-e1-trace-analytics.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Extension E1: trace analytics
#
# Optional, outside the 100 points. Step 5 looked at one trace; here you answer questions over
# *many* traces: which operations are slow usually (not in one unlucky request), and how often
# each service fails. You edit `services/api_gateway/analytics.py`, TODO 1 (`slowest_operations`)
# and TODO 2 (`error_rates`); `docs/learner-api.md`, section E1, says exactly what each returns.

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
extension = load_course().extension("E1")
print(f"{extension.id}. {extension.title}: {extension.goal}\nYou edit: {', '.join(extension.files)}")

# %% [markdown]
# ## The idea: percentiles, not averages
#
# If one request in ten takes 5 s and the others 50 ms, the mean (about 0.5 s) describes no
# request at all; p50 = 50 ms describes the usual request and p95 = 5 s the slow tail users
# complain about. The kit's percentiles are the **nearest rank** (rule 0.12):
# `sorted(values)[ceil(N / 100 * n) - 1]`, always one of the values, never an average of two.
# With 20 values, p95 is the 19th smallest; with 2 values, p50 is the smaller one.
#
# An **operation** is a span's `(service, name)` (rule 0.14); only `SERVER` and `INTERNAL`
# spans are ranked (a `CLIENT` span is the caller's view of someone else's work). A
# **request** is a `SERVER` span (rule 0.13); a service's error rate is its requests with
# status `ERROR` divided by its requests.
#
# ## Try it: ten requests, one of them slow

# %%
analytics = learner("services.api_gateway.analytics")
span_store = learner("services.shared.span_store")
T0 = 1_700_000_000_000.0


def span(i, name, service, kind, duration, status="UNSET"):
    return span_store.SpanRecord(trace_id=f"{i:032x}", span_id=f"{i:016x}", name=name, service=service,
                                 kind=kind, start_ms=T0 + i, duration_ms=duration, status=status)


# %% [reference]
# The kit's reference answer for TODO 1 (not in the learner release).
def nearest_rank(values, n):
    ordered = sorted(values)
    return ordered[math.ceil(n / 100 * len(ordered)) - 1]


def expected_slowest(spans, top=10):
    """The rules written as plainly as possible (what your function should return)."""
    groups = {}
    for s in spans:
        if s.kind in ("SERVER", "INTERNAL"):
            groups.setdefault((s.service, s.name), []).append(s.duration_ms)
    rows = [{"service": svc, "operation": name, "count": len(v), "p50_ms": nearest_rank(v, 50),
             "p95_ms": nearest_rank(v, 95), "p99_ms": nearest_rank(v, 99), "max_ms": max(v)}
            for (svc, name), v in groups.items()]
    return sorted(rows, key=lambda r: (-r["p95_ms"], r["service"], r["operation"]))[:top]


# %%
example = ([span(i, "POST /api/orders", "api-gateway", "SERVER", 5000 if i == 0 else 50) for i in range(10)]
           + [span(10 + i, "process_order", "order-service", "INTERNAL", 30 + i) for i in range(5)]
           + [span(20, "POST /orders", "api-gateway", "CLIENT", 9000)])
mean = sum(s.duration_ms for s in example[:10]) / 10
print(f"mean of the gateway's ten requests: {mean:g} ms (no request took that long)")
compare(try_it(analytics.slowest_operations, example), expected_slowest(example),
        todo="Extension E1, TODO 1", title="slowest_operations")

# %% [markdown]
# ## Try it: error rates

# %% [reference]
# The kit's reference answer for TODO 2 (not in the learner release).
def expected_rates(spans):
    found = {}
    for s in spans:
        if s.kind == "SERVER":
            r, e = found.get(s.service, (0, 0))
            found[s.service] = (r + 1, e + (s.status == "ERROR"))
    return [{"service": svc, "requests": r, "errors": e, "error_rate": e / r} for svc, (r, e) in sorted(found.items())]


# %%
failing = example + [span(30 + i, "POST /payments/process", "payment-service", "SERVER", 20,
                          "ERROR" if i < 2 else "UNSET") for i in range(8)]
compare(try_it(analytics.error_rates, failing), expected_rates(failing), todo="Extension E1, TODO 2",
        title="error_rates")

# %% [markdown]
# ## Try it: real orders
#
# Twelve orders through the five services, some declined by the payment provider and one slow.
# (On the unmodified exercise the steps are not written yet, so few spans are exported.)

# %%
runs = await run_orders([{"provider": "succeeds"}] * 8 + [{"provider": "declines"}] * 3
                        + [{"provider": "slow", "delay_s": 0.05}])
spans = records(runs.spans)
compare(try_it(analytics.slowest_operations, spans, top=5), expected_slowest(spans, 5),
        todo="Extension E1, TODO 1", title="The five slowest operations at p95",
        same=lambda a, b: [(r["service"], r["operation"]) for r in a] == [(r["service"], r["operation"]) for r in b])
compare(try_it(analytics.error_rates, spans), expected_rates(spans), todo="Extension E1, TODO 2",
        title="Error rates per service")

# %% [markdown]
# ## The same questions in KQL (Application Insights)
#
# With the Azure Monitor exporter, `SERVER` spans land in the `AppRequests` table and the other
# kinds in `AppDependencies`; `AppRoleName` is the service. `analytics.KQL` holds the two
# queries (provided, not graded). KQL's `percentiles()` is an estimate, close to the nearest
# rank but not always equal.

# %%
for name, query in analytics.KQL.items():
    print(f"-- {name}: {query['question']}\n{query['kql']}\n")

# %% [markdown]
# ## Grade extension E1

# %%
check("E1")
