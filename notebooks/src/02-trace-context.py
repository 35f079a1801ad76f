# Source of notebooks/02-trace-context.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Step 2
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
show_step(2)

# %% [markdown]
# ## The idea: the context travels in headers
#
# A service knows nothing about the request that called it except what arrives in the
# headers. So every hop **injects** the current span context into its outgoing headers
# (`traceparent: 00-<trace id>-<span id>-<flags>`, the
# [W3C Trace Context](https://www.w3.org/TR/trace-context/) standard), and every receiver
# **extracts** it and makes it the parent of its own spans: that is what turns five services'
# spans into one trace. Alongside travel **baggage** (`user.id`, `order.id`, ... : only keys we
# trust; [W3C Baggage](https://www.w3.org/TR/baggage/)), a **correlation id** for the logs, and
# a sampling override for Step 6. Other systems speak [B3](https://github.com/openzipkin/b3-propagation)
# (`b3: <trace id>-<span id>-1`), so we read that too. Read more:
# [context propagation](https://opentelemetry.io/docs/concepts/context-propagation/).
#
# Step 1's TODO 5 made your `WorkshopPropagator` the process-wide propagator, so the
# instrumentations of Step 1 extract and inject through your code: once TODOs 1 and 2 are done,
# the calls between services carry the context and the order becomes one trace.
#
# ## Try it: inject inside a span
#
# Inside a span, with some baggage, `inject_context` should write `traceparent` naming that
# span, `baggage`, `X-Correlation-ID` (the trace id, when no correlation id came in), and with
# `b3=True` a `b3` header.

# %%
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

trace_context = learner("services.shared.trace_context")
tracer = TracerProvider().get_tracer("notebook")


def inject_inside_a_span():
    with tracer.start_as_current_span("an outgoing call") as span:
        ids = span.get_span_context()
        trace_id, span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
        context = trace_context.set_baggage_items({"user.id": "user-123", "order.id": "ord-42"})
        headers = {key.lower(): value for key, value in trace_context.inject_context({}, context, b3=True).items()}
    expected = {"traceparent": f"00-{trace_id}-{span_id}-01", "b3": f"{trace_id}-{span_id}-1",
                "baggage": "user.id=user-123,order.id=ord-42", "x-correlation-id": trace_id}
    return [{"header": key, "yours": as_read(key, headers.get(key, "(missing)")), "expected": value}
            for key, value in expected.items()]


def as_read(header, value):
    """The baggage entries in the expected order (their order is free)."""
    if header == "baggage" and value != "(missing)":
        order = {"user.id": 0, "order.id": 1}
        return ",".join(sorted(value.split(","), key=lambda entry: order.get(entry.split("=")[0].strip(), 9)))
    return value


WHERE = {"traceparent": "Step 2, TODO 2", "b3": "Step 2, TODO 2", "baggage": "Step 2, TODO 3",
         "x-correlation-id": "Step 2, TODO 4"}
expectations([(f"header {row['header']}", row["expected"], row["yours"], WHERE[row["header"]])
              for row in try_it(inject_inside_a_span) or []], title="Headers written by inject_context")

# %% [markdown]
# (The order of the baggage entries is free: yours are shown in the expected order.)
#
# ## Try it: extract what arrives
#
# Three requests arrive: one with W3C headers (in odd casing), one with a B3 single header, one
# with a broken `traceparent`. The baggage carries a key we must not trust (`password`).
# Extraction should find the remote parent, keep only trusted baggage, keep the correlation
# id, and never raise on bad input.

# %%
ARRIVALS = {
    "W3C": {"TraceParent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "Baggage": "user.id=user-123,session.id=s-9,password=hunter2",
            "x-correlation-id": "req-42"},
    "B3 single": {"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"},
    "broken": {"traceparent": "00-not-a-trace-id-01", "baggage": "feature.new_checkout=on"},
}


def extract_each():
    rows = []
    for label, headers in ARRIVALS.items():
        context = trace_context.extract_context(headers)
        parent = trace.get_current_span(context).get_span_context()
        rows.append({"request": label,
                     "remote parent": f"{parent.trace_id:032x}/{parent.span_id:016x}" if parent.is_valid else "none",
                     "baggage kept": dict(sorted(trace_context.get_baggage_items(context).items())),
                     "correlation id": trace_context.correlation_id({}, context)})
    return rows


EXPECTED = [
    {"request": "W3C", "remote parent": "4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7",
     "baggage kept": {"session.id": "s-9", "user.id": "user-123"}, "correlation id": "req-42"},
    {"request": "B3 single", "remote parent": "80f198ee56343ba864fe8b2a57d3eff7/e457b5a2e4d86bd1",
     "baggage kept": {}, "correlation id": "80f198ee56343ba864fe8b2a57d3eff7"},
    {"request": "broken", "remote parent": "none", "baggage kept": {"feature.new_checkout": "on"},
     "correlation id": "(any new id)"},
]


def same_rows(yours, expected):
    return len(yours) == len(expected) and all(
        all(e[k] == "(any new id)" or y.get(k) == e[k] for k in e) for y, e in zip(yours, expected))


compare(try_it(extract_each), EXPECTED, same=same_rows, title="What extract_context found",
        todo="Step 2, TODO 1 (the remote parent), TODO 3 (baggage) and TODO 4 (the correlation id)")

# %% [markdown]
# ## Try it: one order, one trace
#
# Now an order through the five services, arriving with a `traceparent` of our own, baggage
# and a correlation id. With Steps 1 and 2 done, every span is in **our** trace
# (`4bf92f35...`), and the answer carries our correlation id back. The baggage we send is
# filtered at the gateway (`password` never gets in); it reaches the spans as attributes once
# Step 1's TODO 3 (the baggage span processor, deeper) is done.

# %%
run = await run_order(headers={
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "baggage": "session.id=s-9,experiment.checkout=b,password=hunter2",
    "X-Correlation-ID": "req-42",
})
expectations([
    ("trace ids of the exported spans", "4bf92f3577b34da6a3ce929d0e0e4736", ", ".join(run.trace_ids) or "none",
     "Step 2, TODO 1 (extract) and TODO 2 (inject)"),
    ("X-Correlation-ID on the answer", "req-42", run.headers.get("x-correlation-id", "(missing)"),
     "Step 2, TODO 4"),
], title="Our trace, our correlation id")
expect_order(run, step=2)
show_trace(run)

# %% [markdown]
# What crossed each boundary: the headers of every call between services (and to the
# external API). `traceparent` should name a different parent span at each hop, in one trace.

# %%
show_table([{"to": f"{c.method} {c.host}{c.path}",
             "traceparent": c.headers.get("traceparent", "-"),
             "baggage": c.headers.get("baggage", "-"),
             "x-correlation-id": c.headers.get("x-correlation-id", "-")} for c in run.crossings],
           title="Headers between services")

# %% [markdown]
# Which spans carry the baggage as attributes (`session.id`, `experiment.checkout`; never
# `password`), per service. Expected, once Step 1's TODO 3 and Step 2's TODO 3 are done: every
# span with both, none with `password`.

# %%
rows = {}
for span in run.spans:
    service = span.resource.attributes.get("service.name")
    row = rows.setdefault(service, {"service": service, "spans": 0, "with session.id": 0,
                                    "with experiment.checkout": 0, "with password": 0})
    row["spans"] += 1
    for key in ("session.id", "experiment.checkout", "password"):
        row[f"with {key}"] += key in (span.attributes or {})
show_table(list(rows.values()), title="Baggage on spans")

# %% [markdown]
# The services' log lines carry the same `trace_id` once TODO 6 (deeper: the `add_trace_ids`
# log processor) is done, so a log line leads you to its trace:

# %%
for line in run.logs[:5]:
    print(line)
print("expected: each line ends with trace_id=4bf92f3577b34da6a3ce929d0e0e4736 and a span_id"
      if run.logs else "(no log lines)")

# %% [markdown]
# ## Grade Step 2

# %%
check(2)
