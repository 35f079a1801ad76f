# Source of notebooks/01-telemetry.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Step 1
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
show_step(1)

# %% [markdown]
# ## The idea: a tracer provider per service
#
# A **tracer provider** makes a service's spans. Its **resource** says where every span came
# from (`service.name`, `service.version`, `deployment.environment`, ...), and its **span
# processors** say where finished spans go (an exporter: Azure Monitor, OTLP, or, in this
# notebook, memory). The FastAPI and httpx **instrumentations** make a `SERVER` span for every
# request a service receives and a `CLIENT` span for every call it makes, if they are bound to
# that service's provider. As shipped, the HTTP client the services call each other with
# (Step 4's file) is handed to your `instrument_client`, so once this step is done every call
# between services is already a `CLIENT` span.
#
# Here all five services share one Python process, so nothing may rely on the *global*
# provider: each service keeps its own, and every span must carry its own service's resource.
# Read more: [OpenTelemetry for Python](https://opentelemetry.io/docs/languages/python/),
# [traces and spans](https://opentelemetry.io/docs/concepts/signals/traces/), the
# [resource semantic conventions](https://opentelemetry.io/docs/specs/semconv/resource/).
#
# ## Try it: two services, two providers
#
# We make two `DistributedTelemetry` objects (your class), each exporting to its own list in
# memory, and start one span in each. Each exporter should get exactly its own service's span,
# with that service's resource: yours on the left, the expected rows on the right.

# %%
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

telemetry = learner("services.shared.telemetry")

SERVICES = ("inventory-service", "payment-service")
RESOURCE_KEYS = ["service.name", "service.version", "deployment.environment",
                 "service.namespace", "telemetry.sdk.language"]


def two_services():
    rows = []
    for name in SERVICES:
        service, exporter = telemetry.DistributedTelemetry(), InMemorySpanExporter()
        service.initialize(name, "1.0.0", "development", exporter=exporter, batch=False)
        with service.create_span("hello", attributes={"greeting": "hi"}):
            pass
        service.force_flush()
        for span in exporter.get_finished_spans():
            rows.append({"exported to": f"{name}'s exporter", "span": span.name,
                         **{key: span.resource.attributes.get(key) for key in RESOURCE_KEYS}})
        service.shutdown()
    return rows


EXPECTED = [{"exported to": f"{name}'s exporter", "span": "hello", "service.name": name,
             "service.version": "1.0.0", "deployment.environment": "development",
             "service.namespace": "workshop", "telemetry.sdk.language": "python"} for name in SERVICES]
compare(try_it(two_services), EXPECTED, todo="Step 1, TODO 1 (the resource), TODO 4 (the exporter) and TODO 6 (the tracer)",
        title="What each service's exporter received")

# %% [markdown]
# As shipped, *yours* is empty: `initialize()` builds no pipeline yet, so nothing is exported.
# Once TODOs 1, 4 and 6 are done, each exporter gets one row, with its own service's resource.
#
# ## Try it: one order through the five services
#
# Now the real thing: an order through all five services, each initialised by its own
# `create_app()` with your `DistributedTelemetry`. With Step 1 done, every service exports
# spans: a `SERVER` span for each request it received, a `CLIENT` span for each call it made
# (to another service, to the external payment API, and to Redis and SQLite, in the service
# that made them).
#
# The context does not cross services yet: that is Step 2. Until then each request a service
# receives starts **a trace of its own**, so the waterfall shows six traces, one group each.
# That is expected for now. The checklist says what to expect and what your run did.

# %%
run = await run_order()
expect_order(run, step=1)

# %%
show_trace(run)

# %% [markdown]
# The service map draws who called whom. Until Step 2, a call's `CLIENT` span and the callee's
# `SERVER` span are in different traces, so each service's outgoing calls are drawn as arrows
# to their target host (the databases, the external API and the other services by address);
# after Step 2 the arrows join service to service.

# %%
show_service_map(run)

# %% [markdown]
# ## Grade Step 1
#
# This runs exactly what `python grade.py --only 1` runs, on your files as saved.

# %%
check(1)
