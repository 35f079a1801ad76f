# Source of notebooks/08-viewing-traces.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Viewing traces: the workshop's Steps 8-10 in the trace viewer
#
# In the workshop, Steps 8-10 happen in **Application Insights**: *Transaction search* finds
# a request (Step 8), the *end-to-end transaction* view shows its timeline, its log lines and
# its exceptions (Step 9), and the *Performance* blade ranks operations and dependencies, from
# which you open sample traces (Step 10). On this laptop, the kit's trace viewer does the same
# over the spans, log lines and metrics that the live system keeps in one SQLite file.
#
# **With the running system** (the way to do these steps):
#
# ```bash
# python -m kit.live --solution --provider-latency-ms 300 --provider-failure-rate 0.2 --experiment checkout-v2 \\
#     --stock prod-1=100000 --stock prod-2=100000      # the seeded stock lasts about 50 orders
# python scripts/step7_trace_test.py --orders 200      # in another terminal: traffic, then the Step 7 test
# ```
#
# then open the viewer: [search](http://127.0.0.1:8000/viewer/),
# [performance](http://127.0.0.1:8000/viewer/performance),
# [metrics](http://127.0.0.1:8000/viewer/metrics),
# [insights](http://127.0.0.1:8000/viewer/insights). (Drop `--solution` to run your own code.)
#
# **In this notebook**, the same questions over orders that run here, in process: each cell
# asks the viewer's own queries (`kit.live.viewer.index`) and shows the KQL you would type in
# Application Insights' *Logs* for the same answer. The viewer computes everything with the
# kit's own code, so it works whatever state your steps are in (with Step 1 unfinished there
# are simply no spans to show).

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
# ## Traffic, kept as the live system keeps it
#
# A morning's orders with some trouble: two declined cards, one order for a product that does
# not exist (a crash in the inventory service), a slow payment provider for three orders and a
# provider that is down for one. While they run, every service's log lines are captured with
# the trace id and span id current when they were logged (as the live system does); then
# the spans are written into a span file laid out like the live system's.

# %%
import tempfile
import time
from pathlib import Path

from kit.live import capture
from kit.live.viewer.index import Index
from kit.live.viewer.store import write_spans

span_file = Path(tempfile.mkdtemp(prefix="steps-8-10-")) / "spans.db"
capture.capture_logs(span_file, None)          # None: each line names the service that logged it

OK = {}
ORDERS = ([OK] * 8
          + [{"provider": "declines"}] * 2
          + [{"items": [{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}]}]
          + [{"provider": "slow", "delay_s": 0.15}] * 3
          + [{"provider": "fails"}]
          + [OK] * 3)
runs = await run_orders(ORDERS)
capture.flush_all()
written = write_spans(span_file, records(runs))
index = Index(span_file, min_refresh_s=0)
print(f"{len(ORDERS)} orders, {written} spans in {span_file}")

# %% [markdown]
# ## Step 8: transaction search
#
# Application Insights' **Transaction search** lists requests in a time range; you narrow it
# by role (service), operation, failures, duration, or look one up by `operation_Id` (the
# trace id, shown as a UUID). The viewer's search page has the same filters; here are the
# orders of the last 30 minutes, newest first:
#
# ```kusto
# requests
# | where timestamp > ago(30m) and cloud_RoleName == "api-gateway" and name == "POST /api/orders"
# | project timestamp, operation_Id, name, duration, success, resultCode
# | order by timestamp desc
# ```

# %%
last_30_min = time.time() * 1000 - 30 * 60_000
found = index.search(start_ms=last_30_min, service="api-gateway", operation="POST /api/orders")
print(f"{found['total']} orders in the last 30 minutes")
show_table(found["traces"], ["trace_id", "root_name", "duration_ms", "span_count", "error_count", "services"],
           title="Transaction search: the gateway's orders, newest first")

# %% [markdown]
# Only the failed ones, and only the slow ones (the page's *errors only* and *min duration*):
#
# ```kusto
# requests | where timestamp > ago(30m) and success == false
# requests | where timestamp > ago(30m) and duration >= 100
# ```

# %%
failed = index.search(start_ms=last_30_min, errors_only=True)["traces"]
slow = index.search(start_ms=last_30_min, min_duration_ms=100)["traces"]
show_table(failed, ["trace_id", "root_name", "duration_ms", "error_count"], title="Failed transactions")
show_table(slow, ["trace_id", "root_name", "duration_ms", "error_count"], title="Slow transactions (100 ms or more)")

# %% [markdown]
# By id: Application Insights shows a trace id as a UUID (`operation_Id`); the viewer takes
# both forms.
#
# ```kusto
# union requests, dependencies, exceptions, traces
# | where operation_Id == "<trace id>"
# ```

# %%
some = (failed or found["traces"] or [{"trace_id": "0" * 32}])[0]["trace_id"]
as_uuid = f"{some[:8]}-{some[8:12]}-{some[12:16]}-{some[16:20]}-{some[20:]}"
show_table(index.search(trace_id=as_uuid)["traces"], ["trace_id", "root_name", "duration_ms", "error_count"],
           title=f"Looked up by operation_Id {as_uuid}")

# %% [markdown]
# ## Step 9: the end-to-end transaction
#
# **View end-to-end transaction** shows one trace: the timeline across services, the log
# lines written while it ran (each under its span), and the exceptions with their stack
# traces. The viewer's trace page puts the same three side by side; here is the failed order
# that crashed in the inventory service.
#
# ```kusto
# union requests, dependencies, traces, exceptions
# | where operation_Id == "<trace id>"
# | project timestamp, itemType, cloud_RoleName, name, message, type, duration, success
# | order by timestamp asc
# ```

# %%
spans_by_trace = traces(runs)


def exception_types(trace_id):
    return [str(e.attributes.get("exception.type", "")) for s in spans_by_trace.get(trace_id, [])
            for e in s.events if e.name == "exception"]


crashed_id = next((t["trace_id"] for t in failed
                   if any(x.endswith("UnknownProductError") for x in exception_types(t["trace_id"]))),
                  some)
show_trace(spans_by_trace.get(crashed_id, []), title="The failed transaction")

# %% [markdown]
# Its log lines, in time order, each with the span it was logged under (the ids come from
# Step 2's `add_trace_ids`, or from the current span when that is not done yet):

# %%
names = {s.get_span_context().span_id: s.name for s in spans_by_trace.get(crashed_id, [])}
show_table([{"service": line["service"], "level": line["level"], "event": line["event"],
             "span": names.get(int(line["span_id"], 16), line["span_id"]) if line["span_id"] else "",
             "fields": ", ".join(f"{k}={v}" for k, v in line["fields"].items() if k != "exception")}
            for line in index.logs_of(crashed_id)], title="Its log lines")

# %% [markdown]
# And its exceptions, with the stack trace recorded on the span (`exception.stacktrace`):
#
# ```kusto
# exceptions | where operation_Id == "<trace id>"
# | project timestamp, cloud_RoleName, type, outerMessage, details
# ```

# %%
exceptions = [{"service": s.resource.attributes.get("service.name"), "span": s.name,
               "type": e.attributes.get("exception.type"), "message": e.attributes.get("exception.message"),
               "stack trace (last lines)": "\n".join(str(e.attributes.get("exception.stacktrace", "")).splitlines()[-3:])}
              for s in spans_by_trace.get(crashed_id, []) for e in s.events if e.name == "exception"]
show_table(exceptions, title="Its exceptions")

# %% [markdown]
# ## Step 10: performance
#
# The **Performance** blade has two tabs: *Operations* (each service's requests by name) and
# *Dependencies* (calls out: other services, the cache, the database, the payment provider),
# each with count, failures and duration percentiles; a row opens sample traces. The viewer's
# performance page is the same two tables (sortable, with a duration distribution), computed
# in SQL over the span file.
#
# ```kusto
# requests | where timestamp > ago(1h)
# | summarize count = count(), failed = countif(success == false),
#             p50 = percentile(duration, 50), p95 = percentile(duration, 95), p99 = percentile(duration, 99)
#   by cloud_RoleName, name
# | order by p95 desc
# ```

# %%
operations = sorted(index.operations(), key=lambda r: -(r["p95_ms"] or 0))
show_table(operations, ["service", "operation", "count", "failed", "p50_ms", "p95_ms", "p99_ms"],
           title="Operations, slowest (p95) first")

# %% [markdown]
# ```kusto
# dependencies | where timestamp > ago(1h)
# | summarize count = count(), failed = countif(success == false),
#             p50 = percentile(duration, 50), p95 = percentile(duration, 95)
#   by cloud_RoleName, target, type, name
# | order by p95 desc
# ```

# %%
dependencies = sorted(index.dependencies(), key=lambda r: -(r["p95_ms"] or 0))
show_table(dependencies, ["caller", "target", "type", "name", "count", "failed", "p50_ms", "p95_ms"],
           title="Dependencies, slowest (p95) first")

# %% [markdown]
# The slowest dependency's sample traces: the slowest calls, and the latest failed ones (the
# page's *samples* link; in Application Insights, *Drill into ... samples*).

# %%
if dependencies:
    worst = dependencies[0]
    samples = index.samples(kind="CLIENT", service=worst["caller"], key=worst["key"], limit=5)
    show_table(samples["slowest"], ["trace_id", "span_id", "duration_ms", "status"],
               title=f"Slowest calls {worst['caller']} -> {worst['target']} ({worst['name']})")
    show_table(samples["failed"], ["trace_id", "span_id", "duration_ms", "status"], title="Failed calls")
    slowest = spans_by_trace.get(samples["slowest"][0]["trace_id"], []) if samples["slowest"] else []
    show_trace(slowest, title="The slowest sample: where the time went (critical path)")
else:
    print("No dependency call was recorded (no spans yet: Step 1 comes first).")

# %% [markdown]
# ## Metrics and their exemplars
#
# The live system also keeps each service's metrics (your Step 1 meter provider, read every
# 5 s): the viewer's **metrics** page shows per service the request rate, the error rate and a
# latency histogram of `http.server.request.duration`; clicking a bucket lists the traces of
# its **exemplars**, so a slow bucket leads straight to a slow trace. In Application
# Insights, the same from the request telemetry:
#
# ```kusto
# requests | where timestamp > ago(1h)
# | summarize requests = count(), failed = countif(toint(resultCode) >= 500)
#   by cloud_RoleName, bin(timestamp, 1m)
# requests | where timestamp > ago(1h) and cloud_RoleName == "api-gateway"
# | summarize count() by bin(duration, 50)       // the latency histogram
# ```

# %% [markdown]
# ## The extensions, in the viewer
#
# The viewer's **insights** page shows the four extension challenges over the stored traces,
# computed by the kit (so they work before you write them): E1's questions (the slowest
# operations, the error rate per service) with their KQL, E2's comparison of experiment
# variants, E3's SLOs (SLI, objective, remaining error budget, burn rate) and E4's dependency
# map across traces with the latency of each edge.

# %%
show_table(index.slowest_operations(top=5), title="E1: the slowest operations (p95)")
show_table(index.error_rates(), title="E1: error rate per service")
slo = index.slo(service="api-gateway", operation="POST /api/orders", objective=0.99)
show_table([{"SLO": "orders available (99%)", **slo}], title="E3: one SLO over these orders")
show_table(index.dependency_map(), title="E4: the dependency map across traces, latency per edge")

# %% [markdown]
# The KQL of each, as the insights page shows it:

# %%
from kit.live.viewer.panels import KQL

for name, query in KQL.items():
    print(query.replace("{experiment}", "checkout-v2"), end="\n\n")
