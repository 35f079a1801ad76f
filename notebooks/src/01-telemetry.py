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
# that service's provider.
#
# Here all five services share one Python process, so nothing may rely on the *global*
# provider: each service keeps its own, and every span must carry its own service's resource.
#
# ## Try it: two services, two providers
#
# We make two `DistributedTelemetry` objects (your class), each exporting to its own list in
# memory, and start one span in each. Each exporter should get exactly its own service's span,
# with that service's resource.

# %%
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.shared.telemetry import DistributedTelemetry

RESOURCE_KEYS = ["service.name", "service.version", "deployment.environment",
                 "service.namespace", "telemetry.sdk.language"]


def two_services():
    rows = []
    for name in ("inventory-service", "payment-service"):
        telemetry, exporter = DistributedTelemetry(), InMemorySpanExporter()
        telemetry.initialize(name, "1.0.0", "development", exporter=exporter, batch=False)
        with telemetry.create_span("hello", attributes={"greeting": "hi"}):
            pass
        telemetry.force_flush()
        for span in exporter.get_finished_spans():
            rows.append({"exported to": f"{name}'s exporter", "span": span.name,
                         **{key: span.resource.attributes.get(key) for key in RESOURCE_KEYS}})
        telemetry.shutdown()
    return rows


show_table(try_it(two_services), title="What each service's exporter received")

# %% [markdown]
# As shipped, the table is empty: `initialize()` builds no pipeline yet, so nothing is
# exported. Once TODOs 1, 4 and 6 are done you get one row per service, each with its own
# `service.name`.
#
# ## Try it: one order through the five services
#
# Now the real thing: an order through all five services, each initialised by its own
# `create_app()` with your `DistributedTelemetry`. With Step 1 done you should see `SERVER`
# spans for each request, `CLIENT` spans for each call (including Redis and SQLite, in the
# service that made them, and the external payment API).
#
# Until Step 2 carries the context across, each service starts **its own trace**: the
# waterfall below then shows several traces, one group each. That is expected for now.

# %%
run = await run_order()
run

# %%
show_trace(run)

# %% [markdown]
# The service map draws who called whom. The databases (`redis`, `sqlite`) and the external
# API appear as soon as the instrumentations make `CLIENT` spans for them; arrows *between*
# services appear only once a callee's spans are children of its caller's (Step 2).

# %%
show_service_map(run)

# %% [markdown]
# ## Grade Step 1
#
# This runs exactly what `python grade.py --only 1` runs, on your files as saved.

# %%
check(1)
