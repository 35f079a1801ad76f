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
# (`traceparent: 00-<trace id>-<span id>-<flags>`), and every receiver **extracts** it and makes
# it the parent of its own spans: that is what turns five services' spans into one trace.
# Alongside travel **baggage** (`user.id`, `order.id`, ... : only keys we trust), a
# **correlation id** for the logs, and a sampling override for Step 6. Other systems speak
# **B3** (`b3: <trace id>-<span id>-1`), so we read that too.
#
# ## Try it: inject inside a span
#
# Inside a span, with some baggage, `inject_context` should write `traceparent` naming that
# span, `baggage`, `X-Correlation-ID`, and with `b3=True` a `b3` header.

# %%
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.shared import trace_context

tracer = TracerProvider().get_tracer("notebook")


def inject_inside_a_span():
    with tracer.start_as_current_span("an outgoing call") as span:
        context = trace_context.set_baggage_items({"user.id": "user-123", "order.id": "ord-42"})
        headers = trace_context.inject_context({}, context, b3=True)
        print("the span's trace id:", f"{span.get_span_context().trace_id:032x}")
        print("the span's span id: ", f"{span.get_span_context().span_id:016x}")
    return [{"header": key, "value": value} for key, value in headers.items()]


show_table(try_it(inject_inside_a_span), title="Headers written by inject_context")

# %% [markdown]
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
                     "baggage kept": trace_context.get_baggage_items(context),
                     "correlation id": trace_context.correlation_id({}, context)})
    return rows


show_table(try_it(extract_each), title="What extract_context found")

# %% [markdown]
# ## Try it: one order, one trace
#
# Now an order through the five services, arriving with a `traceparent` of our own, baggage
# and a correlation id. With Step 1 and Step 2 done, every span is in **our** trace
# (`4bf92f35...`), the answer carries our correlation id back, and the baggage shows up as
# span attributes in every service the order reaches.

# %%
run = await run_order(headers={
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "baggage": "session.id=s-9,experiment.checkout=b,password=hunter2",
    "X-Correlation-ID": "req-42",
})
print("answer:", run.status_code, " X-Correlation-ID:", run.headers.get("x-correlation-id"))
print("trace ids:", run.trace_ids)
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
# `password`), per service:

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
# The services' log lines should carry the same `trace_id` (the `add_trace_ids` processor),
# so a log line leads you to its trace:

# %%
for line in run.logs[:5]:
    print(line)

# %% [markdown]
# ## Grade Step 2

# %%
check(2)
