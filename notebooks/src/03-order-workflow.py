# Source of notebooks/03-order-workflow.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Step 3
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
show_step(3)

# %% [markdown]
# ## The idea: spans that speak the business
#
# The instrumentations already show *that* the order service called inventory and payment.
# **Business spans** show *what the order was doing* when it did: `process_order` with one
# child per step (`validate_inventory`, `reserve_inventory`, `process_payment`,
# `confirm_order`, and `rollback_inventory` when payment fails), each with the attributes that
# answer a question later ("show me the trace of order 42", "every failed order over 500").
# Because each span is the *current* span while its step runs, the HTTP calls made inside it,
# and the other services' spans, become its children without any span being passed around.
# Read more: [creating spans, attributes and
# status](https://opentelemetry.io/docs/languages/python/instrumentation/#creating-spans).
#
# A **business failure** (no stock, payment declined) is an `ERROR` status with a description
# on `process_order`; an **exception** is recorded on the span where it happened (an
# `exception` event) and raised again.
#
# ## Try it: a successful order
#
# Look for `process_order` in the order service, with its steps under it, and the calls to
# the inventory and payment services nested inside the steps.

# %%
run = await run_order()
expect_order(run, step=3)
show_trace(run)

# %% [markdown]
# The business spans and their attributes, yours next to the expected ones (attribute names;
# the values change with every order):

# %%
BUSINESS = ["process_order", "validate_inventory", "reserve_inventory", "process_payment",
            "rollback_inventory", "confirm_order"]
OURS = ("order", "inventory", "reservation", "payment", "confirmation")


def business_spans(run):
    rows = []
    for span in sorted(run.spans, key=lambda s: s.start_time):
        if span.name in BUSINESS:
            keys = sorted(k for k in (span.attributes or {})
                          if k.split(".")[0] in OURS and (k != "order.id" or span.name == "process_order"))
            rows.append({"span": span.name, "status": span.status.status_code.name, "attributes": ", ".join(keys)})
    return rows


def expected_spans(*rows):
    return [{"span": name, "status": status, "attributes": ", ".join(sorted(keys))} for name, status, keys in rows]


def same_spans(yours, expected):
    """The same spans in the same order with the same status, each with at least the expected
    attributes (more are fine)."""
    return len(yours) == len(expected) and all(
        y["span"] == e["span"] and y["status"] == e["status"]
        and set(e["attributes"].split(", ")) - {""} <= set(y["attributes"].split(", "))
        for y, e in zip(yours, expected))


PROCESS_ORDER = ["order.id", "order.user_id", "order.total_amount", "order.items_count"]
compare(business_spans(run), expected_spans(
    ("process_order", "UNSET", PROCESS_ORDER),
    ("validate_inventory", "UNSET", ["inventory.available"]),
    ("reserve_inventory", "UNSET", ["reservation.id"]),
    ("process_payment", "UNSET", ["payment.status", "payment.transaction_id"]),
    ("confirm_order", "UNSET", ["confirmation.number"])),
    todo="Step 3, TODO 1 (the spans) and TODO 3 (their attributes)", title="Business spans, a successful order",
    same=same_spans)

# %% [markdown]
# ## Try it: things go wrong
#
# Three orders that fail in different ways. For each, read the answer and the trace:
#
# 1. the payment is **declined** (402): `process_order` is an `ERROR`, and `rollback_inventory`
#    releases the reservation;
# 2. the order asks for a product that is **out of stock** (409): `process_order` is an
#    `ERROR` with `inventory.available = false` on `validate_inventory`, and nothing is reserved;
# 3. the external payment API is **down** (503 on every attempt): the workflow raises, the
#    exception is recorded (a red diamond on the span), and the gateway answers 502.

# %%
declined = await run_order("declines")
out_of_stock = await run_order(items=[{"product_id": "prod-empty", "quantity": 1, "price": 5.0}])
provider_down = await run_order("fails")
show_table([{"case": name, "answer": r.status_code, "expected answer": expected, "body": r.body}
            for name, r, expected in [("declined", declined, 402), ("out of stock", out_of_stock, 409),
                                      ("provider down", provider_down, 502)]], title="Three failing orders")

# %%
show_trace(declined, title="Payment declined")
compare(business_spans(declined), expected_spans(
    ("process_order", "ERROR", PROCESS_ORDER),
    ("validate_inventory", "UNSET", ["inventory.available"]),
    ("reserve_inventory", "UNSET", ["reservation.id"]),
    ("process_payment", "ERROR", ["payment.status"]),
    ("rollback_inventory", "UNSET", ["reservation.id"])),
    todo="Step 3, TODO 4 (a failed result is an ERROR) and TODO 1 (rollback_inventory)",
    title="Business spans, payment declined", same=same_spans)

# %%
show_trace(out_of_stock, title="Out of stock")
compare(business_spans(out_of_stock), expected_spans(
    ("process_order", "ERROR", PROCESS_ORDER),
    ("validate_inventory", "UNSET", ["inventory.available"])),
    todo="Step 3, TODO 4 (a failed result is an ERROR)", title="Business spans, out of stock", same=same_spans)

# %%
show_trace(provider_down, title="Payment provider down")

# %% [markdown]
# The `exception` events recorded in that trace (type and message). Expected: at least one, on
# `process_payment` in the order service (Step 3, TODO 5). Until Step 4 retries, the payment
# service's single call to the provider fails once.

# %%
names = labels(provider_down)    # CLIENT spans named with their target
exceptions = [{"service": s.resource.attributes.get("service.name"), "span": names.get(f"{s.context.span_id:016x}", s.name),
               "exception.type": e.attributes.get("exception.type"),
               "exception.message": e.attributes.get("exception.message")}
              for s in provider_down.spans for e in s.events if e.name == "exception"]
expectations([("process_payment has an exception event", True,
               any(row["span"] == "process_payment" for row in exceptions), "Step 3, TODO 5")])
show_table(exceptions, title="Exceptions recorded")

# %% [markdown]
# ## Grade Step 3

# %%
check(3)
