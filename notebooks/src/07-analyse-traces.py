# Source of notebooks/07-analyse-traces.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Analysing traces: the workshop's Steps 7-10
#
# With all six steps done, the system is fully traced. In the workshop you would now send
# orders, open **Application Insights** and investigate: find a transaction (Step 8), read its
# end-to-end timeline (Step 9) and look for slow dependencies (Step 10). Here we do the same on
# the spans the services export in this notebook, and show the KQL you would run in Azure for
# each question. Step 7 (testing) is what the kit's checks do: the last cell grades everything.
#
# The same questions against the running system: `python -m kit.live` starts the five services
# as real processes, `python scripts/step7_trace_test.py` sends an order and prints your Step 5
# endpoint's analysis of it (the workshop's Step 7 script), and [the live trace
# viewer](http://127.0.0.1:8000/viewer/) stands in for Application Insights' transaction search
# and end-to-end view. With an Application Insights connection string set, the same spans go to
# Azure too ([Azure Monitor OpenTelemetry](https://learn.microsoft.com/azure/azure-monitor/app/opentelemetry-enable?tabs=python)).

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
# ## Traffic
#
# A morning's worth of orders, with some trouble: most go through, two cards are declined,
# one order asks for a product that is out of stock, one for a product that does not exist (a
# crash in the inventory service), the payment provider is slow for two orders and down for
# one.

# %%
OK = {}
ORDERS = ([OK] * 6
          + [{"provider": "declines"}] * 2
          + [{"items": [{"product_id": "prod-empty", "quantity": 1, "price": 5.0}]}]
          + [{"items": [{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}]}]
          + [{"provider": "slow", "delay_s": 0.12}] * 2
          + [{"provider": "fails"}]
          + [OK] * 2)
runs = await run_orders(ORDERS)
runs

# %% [markdown]
# ## Step 8: find the transaction
#
# Application Insights' **Transaction search** lists requests; you filter by time, by
# failure, by duration, or by `operation_Id` (the trace id). Here, the span store does the
# same: one line per trace.
#
# ```kusto
# union AppRequests, AppDependencies
# | summarize Start = min(TimeGenerated), DurationMs = max(DurationMs),
#             Errors = countif(Success == false) by OperationId
# | order by Start desc
# ```

# %%
from services.shared.span_store import InMemorySpanStore

store = InMemorySpanStore()
store.add(records(runs))
show_table(store.recent_traces(limit=20),
           ["trace_id", "root_name", "duration_ms", "span_count", "error_count", "services"],
           title="Transaction search: every trace, newest first")

# %% [markdown]
# Only the failed ones, and only the slow ones (`errors_only`, `min_duration_ms`):

# %%
failed = store.recent_traces(errors_only=True)
slow = store.recent_traces(min_duration_ms=100.0)
show_table(failed, ["trace_id", "root_name", "duration_ms", "error_count"], title="Failed transactions")
show_table(slow, ["trace_id", "root_name", "duration_ms", "error_count"], title="Slow transactions (100 ms or more)")

# %% [markdown]
# ## Step 9: the end-to-end transaction
#
# **View end-to-end transaction** shows one trace as a timeline across services, with its
# dependencies, durations and exceptions. Here is the slowest trace: the critical path (dark
# stripe) shows where the request was waiting.

# %%
from kit.traces.model import views

by_trace = traces(runs)
slowest = max(by_trace.values(), key=lambda spans: max(s.end_time for s in spans) - min(s.start_time for s in spans),
              default=[])
show_trace(slowest, title="The slowest transaction")
label = {v.span_id: v.label for v in views(slowest)}   # CLIENT spans named with their target
on_path = {}
for segment in critical_path(slowest):     # a span can be on the path in several pieces
    key = (segment["service"], label.get(segment["span_id"], segment["name"]), segment["span_id"])
    on_path[key] = on_path.get(key, 0.0) + segment["duration_ms"]
show_table([{"service": service, "span": name, "ms on the critical path (its own pieces)": ms}
            for (service, name, _), ms in sorted(on_path.items(), key=lambda item: -item[1])[:8]],
           title="Where the critical path spent its time (top 8)")

# %% [markdown]
# And a failed one, the crash in the inventory service: the ✗ marks follow the failure up
# from the span where the exception happened (red diamond) to the gateway.
#
# ```kusto
# AppExceptions | where OperationId == "<trace id>"
# | project TimeGenerated, AppRoleName, ExceptionType, OuterMessage
# ```

# %%
def has_exception(spans):
    return any(e.name == "exception" for s in spans for e in s.events)


crashed = next((spans for spans in by_trace.values() if has_exception(spans)), [])
show_trace(crashed, title="A failed transaction")
names = labels(crashed)
show_table([{"service": s.resource.attributes.get("service.name"), "span": names.get(f"{s.context.span_id:016x}", s.name),
             "exception.type": e.attributes.get("exception.type"),
             "exception.message": e.attributes.get("exception.message")}
            for s in crashed for e in s.events if e.name == "exception"], title="Its exceptions")

# %% [markdown]
# ## Step 10: performance of the dependencies
#
# **Performance → Dependencies** ranks every dependency (a call from a service to another
# service, a database or an outside API) by count, failures and duration.
#
# ```kusto
# AppDependencies
# | summarize Calls = count(), Failed = countif(Success == false),
#             AvgMs = avg(DurationMs), P95Ms = percentile(DurationMs, 95)
#   by AppRoleName, Target
# | order by P95Ms desc
# ```
#
# Here, from the `CLIENT` spans: who called what, how often, how many failed, how long.

# %%
from collections import defaultdict


def dependency(span):
    attributes = span.attributes or {}
    return str(attributes.get("db.system") or attributes.get("server.address") or attributes.get("peer.service") or "?")


calls = defaultdict(list)
for span in runs.spans:
    if span.kind.name == "CLIENT":
        key = (span.resource.attributes.get("service.name"), dependency(span))
        calls[key].append(((span.end_time - span.start_time) / 1e6, span.status.status_code.name == "ERROR"))


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


rows = [{"caller": caller, "dependency": target, "calls": len(items),
         "failed": sum(failed for _, failed in items),
         "avg ms": sum(d for d, _ in items) / len(items), "p95 ms": p95([d for d, _ in items])}
        for (caller, target), items in calls.items()]
show_table(sorted(rows, key=lambda r: -r["p95 ms"]), title="Dependencies, slowest (p95) first")

# %% [markdown]
# The retries behind those numbers, grouped by the service that retried (the payment provider
# was down for one order, slow for two): each call's backoff doubles.

# %%
show_retries(next((run for run in runs if run.retries), runs[0]), title="Backoff sleeps of the order whose provider was down")

# %% [markdown]
# The application map: every service and dependency that these orders touched, with calls
# and failures on each arrow.

# %%
show_service_map(runs, title="Application map of all the orders")

# %% [markdown]
# ## Step 7: testing, the whole course
#
# The kit's checks are the workshop's tests. This grades every step, as `python grade.py` does.

# %%
check()
