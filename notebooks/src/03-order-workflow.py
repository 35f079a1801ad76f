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
run

# %%
show_trace(run)

# %% [markdown]
# The business spans and their attributes:

# %%
BUSINESS = ["process_order", "validate_inventory", "reserve_inventory", "process_payment",
            "rollback_inventory", "confirm_order"]


def business_spans(run):
    rows = []
    for span in sorted(run.spans, key=lambda s: s.start_time):
        if span.name in BUSINESS:
            attributes = {k: v for k, v in (span.attributes or {}).items()
                          if k.split(".")[0] in ("order", "inventory", "reservation", "payment", "confirmation")}
            rows.append({"span": span.name, "status": span.status.status_code.name, "attributes": attributes})
    return rows


show_table(business_spans(run), title="Business spans")

# %% [markdown]
# ## Try it: things go wrong
#
# Three orders that fail in different ways. For each, read the answer and the trace:
#
# 1. the payment is **declined** (402): `process_order` is an `ERROR`, and `rollback_inventory`
#    releases the reservation;
# 2. the order asks for a product that is **out of stock** (409): `process_order` is an
#    `ERROR` with `inventory.available = false`, and nothing is reserved;
# 3. the external payment API is **down** (503 on every attempt): the workflow raises, the
#    exception is recorded (a red diamond on the span), and the gateway answers 502.

# %%
declined = await run_order("declines")
out_of_stock = await run_order(items=[{"product_id": "prod-empty", "quantity": 1, "price": 5.0}])
provider_down = await run_order("fails")
show_table([{"case": name, "answer": r.status_code, "body": r.body}
            for name, r in [("declined", declined), ("out of stock", out_of_stock), ("provider down", provider_down)]])

# %%
show_trace(declined, title="Payment declined")
show_table(business_spans(declined), title="Business spans, payment declined")

# %%
show_trace(provider_down, title="Payment provider down")

# %% [markdown]
# The `exception` events recorded in that trace (type and message):

# %%
show_table([{"service": s.resource.attributes.get("service.name"), "span": s.name,
             "exception.type": e.attributes.get("exception.type"),
             "exception.message": e.attributes.get("exception.message")}
            for s in provider_down.spans for e in s.events if e.name == "exception"],
           title="Exceptions recorded")

# %% [markdown]
# ## Grade Step 3

# %%
check(3)
