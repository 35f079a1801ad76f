# Source of notebooks/04-http-client.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Step 4
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
show_step(4)

# %% [markdown]
# ## The idea: every call is a span, every attempt too
#
# Every call one service makes to another goes through `TracedHttpClient`. Each **attempt** is
# one `CLIENT` span, and that attempt's own span context is what goes into `traceparent`, so the
# callee's `SERVER` span becomes the child of exactly the attempt that reached it. A retry is
# a new attempt: a new span (with `http.request.resend_count`), a new `traceparent`. The span
# says what was called (`http.request.method`, `url.full`, `server.address`), what came back
# (`http.response.status_code`), and whether it failed (`ERROR`, `error.type`).
#
# Retries make a flaky dependency survivable, and a **circuit breaker** stops hammering a dead
# one: after enough failed calls, calls fail at once without sending anything, and the refusal
# is still an `ERROR` span, so you can see it in the trace.
#
# ## Try it: what crosses each call
#
# One order; every call between services should carry `traceparent`, `X-Service-Name`,
# `X-Service-Version` and the correlation id.

# %%
run = await run_order()
show_table([{"call": f"{c.method} {c.host}{c.path}", "answer": c.status,
             "traceparent": c.headers.get("traceparent", "-"),
             "x-service-name": c.headers.get("x-service-name", "-"),
             "x-service-version": c.headers.get("x-service-version", "-"),
             "x-correlation-id": c.headers.get("x-correlation-id", "-")} for c in run.crossings],
           title="Headers of every call")

# %% [markdown]
# And the `CLIENT` spans your client made, with the semantic-convention attributes:

# %%
HTTP_KEYS = ["http.request.method", "url.full", "server.address", "http.response.status_code",
             "http.request.resend_count", "error.type"]


def client_spans(spans):
    return [{"service": s.resource.attributes.get("service.name"), "status": s.status.status_code.name,
             **{key: (s.attributes or {}).get(key, "") for key in HTTP_KEYS}}
            for s in sorted(spans, key=lambda s: s.start_time)
            if s.kind.name == "CLIENT" and "url.full" in (s.attributes or {})]


show_table(client_spans(run.spans), title="CLIENT spans")
show_trace(run)

# %% [markdown]
# ## Try it: the payment provider is down
#
# The external API answers 503 to everything. The payment service retries its call
# (a `POST` with an `Idempotency-Key` may be retried), the order service retries *its* call
# to the payment service, and every attempt is a span with its `resend_count`. The backoff
# sleeps are recorded, not slept: they should double each time.

# %%
down = await run_order("fails")
print("answer:", down.status_code, down.body)
print("backoff sleeps (s):", down.sleeps)
show_trace(down, title="Every attempt is a span")

# %% [markdown]
# The service map counts the calls and failures on each arrow:

# %%
show_service_map(down)

# %% [markdown]
# ## Try it: the circuit opens
#
# Three orders in a row while the provider is down. After `failure_threshold` failed calls to
# a host, the circuit opens: the next calls fail at once (`CircuitOpenError`) without reaching
# the provider. Watch the number of requests that reach the provider fall to zero.

# %%
runs = await run_orders(3, provider="fails")
show_table([{"order": i + 1, "answer": r.status_code,
             "attempts that reached the provider": sum(1 for c in r.crossings if c.host == "api.payment-provider.example"),
             "spans refused by an open circuit": sum(1 for s in r.spans if (s.attributes or {}).get("error.type") == "CircuitOpenError")}
            for i, r in enumerate(runs)], title="Three orders while the provider is down")

# %%
show_trace(runs[-1], title="The third order: refused by the open circuit")

# %% [markdown]
# ## Grade Step 4

# %%
check(4)
