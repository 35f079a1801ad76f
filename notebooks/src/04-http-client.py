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
# Every call one service makes to another goes through `TracedHttpClient`. Until now Step 1's
# auto-instrumentation traced those calls: one plain `CLIENT` span per request, carrying the
# context. This step makes the client trace itself, the way resilient calls need: each
# **attempt** is one `CLIENT` span, and that attempt's own span context is what goes into
# `traceparent`, so the callee's `SERVER` span becomes the child of exactly the attempt that
# reached it. A retry is a new attempt: a new span (with `http.request.resend_count`), a new
# `traceparent`. The span says what was called (`http.request.method`, `url.full`,
# `server.address`), what came back (`http.response.status_code`), and whether it failed
# (`ERROR`, `error.type`), as the [HTTP semantic
# conventions](https://opentelemetry.io/docs/specs/semconv/http/http-spans/) name them.
#
# Retries make a flaky dependency survivable, and a **circuit breaker** stops hammering a dead
# one: after enough failed calls, calls fail at once without sending anything, and the refusal
# is still an `ERROR` span, so you can see it in the trace.
#
# ## Try it: what crosses each call
#
# One order; every call between services should carry `traceparent` (Steps 1 and 2 already
# do that), and, from your client, `X-Service-Name`, `X-Service-Version` and the correlation id.

# %%
run = await run_order()
CALLS = ["auth-service /auth/verify", "order-service /orders", "inventory-service /inventory/check",
         "inventory-service /inventory/reserve", "payment-service /payments/process",
         "api.payment-provider.example /v1/charges"]
CALLER = {"auth-service": "api-gateway", "order-service": "api-gateway", "inventory-service": "order-service",
          "payment-service": "order-service", "api.payment-provider.example": "payment-service"}


def headers_of_calls(run):
    return [{"call": f"{c.host} {c.path}", "traceparent": "yes" if "traceparent" in c.headers else "-",
             "x-service-name": c.headers.get("x-service-name", "-"),
             "x-service-version": c.headers.get("x-service-version", "-"),
             "x-correlation-id": "yes" if "x-correlation-id" in c.headers else "-"}
            for c in run.crossings if c.host != "api-gateway"]


compare(sorted(headers_of_calls(run), key=lambda r: CALLS.index(r["call"]) if r["call"] in CALLS else 99),
        [{"call": call, "traceparent": "yes", "x-service-name": CALLER[call.split()[0]],
          "x-service-version": "1.0.0", "x-correlation-id": "yes"} for call in CALLS],
        todo="Step 4, TODO 2 (each attempt's headers)", title="Headers of every call")

# %% [markdown]
# And the `CLIENT` spans of the HTTP calls, with the semantic-convention attributes. Expected:
# one per call, each with `http.request.method`, `url.full`, `server.address` and
# `http.response.status_code` (Step 4, TODO 3). The plain spans of Step 1's auto-instrumentation
# have them too, so this already matches before Step 4: the attempts, retries and errors below
# are what Step 4 adds.

# %%
HTTP_KEYS = ["http.request.method", "server.address", "http.response.status_code"]


def client_spans(spans):
    names = labels(spans)           # a CLIENT span's name with its target
    rows = [{"span": names.get(f"{s.context.span_id:016x}", s.name), "status": s.status.status_code.name,
             **{key: (s.attributes or {}).get(key, "") for key in HTTP_KEYS}}
            for s in sorted(spans, key=lambda s: s.start_time)
            if s.kind.name == "CLIENT" and not (s.attributes or {}).get("db.system")]
    return sorted(rows, key=lambda r: next((i for i, c in enumerate(CALLS) if r["span"].endswith(c.split()[1])), 99))


compare(client_spans(run.spans),
        [{"span": f"POST {call}", "status": "UNSET", "http.request.method": "POST", "server.address": call.split()[0],
          "http.response.status_code": 200} for call in CALLS],
        todo="Step 4, TODO 1 (a CLIENT span per attempt) and TODO 3 (its attributes)", title="CLIENT spans of the HTTP calls")
show_trace(run)

# %% [markdown]
# ## Try it: the payment provider is down (retries: deeper, TODOs 4-5)
#
# The external API answers 503 to everything. The payment service retries its call (a `POST`
# with an `Idempotency-Key` may be retried), the order service retries *its* call to the
# payment service, and every attempt is a span with its `resend_count`. The backoff sleeps are
# recorded, not slept; grouped by the service that retried, each call's sleeps should double:
# 0.1, 0.2, 0.4 s (`backoff_base_s` 0.1, three retries).

# %%
down = await run_order("fails")
print("answer:", down.status_code, "(expected 502)")
show_retries(down)
retried = [s for s in down.spans if (s.attributes or {}).get("http.request.resend_count")]
expectations([
    ("the payment service's sleeps, per call", "0.1, 0.2, 0.4",
     ", ".join(f"{x:g}" for x in down.retries.get("payment-service", [])[:3]) or "none", "Step 4, TODO 4 (the retry loop)"),
    ("the order service retried its POST (it has an Idempotency-Key)", True, "order-service" in down.retries,
     "Step 4, TODO 5 (which calls may be retried)"),
    ("CLIENT spans with http.request.resend_count", at_least(1), len(retried), "Step 4, TODO 4"),
    ("failed attempts are ERROR spans with error.type 503", True,
     any((s.attributes or {}).get("error.type") == "503" and s.status.status_code.name == "ERROR" for s in down.spans),
     "Step 4, TODO 7"),
], title="Retries")

# %%
show_trace(down, title="Every attempt is a span")

# %% [markdown]
# The service map counts the calls and failures on each arrow:

# %%
show_service_map(down)

# %% [markdown]
# ## Try it: the circuit opens (deeper: TODO 6)
#
# Three orders in a row while the provider is down. After `failure_threshold` failed calls to
# a host, the circuit opens: the next calls fail at once (`CircuitOpenError`) without reaching
# the provider. Expected: the number of requests that reach the provider falls to zero by the
# third order, and the refused calls are `ERROR` spans with `error.type = CircuitOpenError`.

# %%
runs = await run_orders(3, provider="fails")
show_table([{"order": i + 1, "answer": r.status_code,
             "attempts that reached the provider": sum(1 for c in r.crossings if c.host == "api.payment-provider.example"),
             "spans refused by an open circuit": sum(1 for s in r.spans if (s.attributes or {}).get("error.type") == "CircuitOpenError")}
            for i, r in enumerate(runs)], title="Three orders while the provider is down")
expectations([("attempts that reached the provider, third order", 0,
               sum(1 for c in runs[-1].crossings if c.host == "api.payment-provider.example"),
               "Step 4, TODO 6 (the circuit breaker)")])

# %%
show_trace(runs[-1], title="The third order: refused by the open circuit")

# %% [markdown]
# ## Grade Step 4

# %%
check(4)
