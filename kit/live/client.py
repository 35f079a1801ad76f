"""The client side of the live system: what a caller outside the five services sends (tests,
benchmarks and scripts use it; the services never do).

    traceparent, trace_id = new_traceparent()
    answer = send_order(system.url("gateway"), headers={"traceparent": traceparent})

`send_order` posts one order to the gateway's `POST /api/orders` as the workshop's client does
(a bearer token, the default items of `kit.topology`); `new_traceparent` makes the W3C
`traceparent` header of a client that starts its own trace, so the trace can be found again.
"""
from __future__ import annotations

import uuid

import httpx

from kit.topology import default_items


def new_traceparent(sampled: bool = True) -> tuple[str, str]:
    """A fresh W3C `traceparent` as a client outside the system would send it, and its trace id."""
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace_id}-{parent_id}-{'01' if sampled else '00'}", trace_id


def send_order(gateway_url: str, *, client: httpx.Client | None = None, token: str = "token-alice",
               items: list[dict] | None = None, headers: dict[str, str] | None = None,
               timeout_s: float = 15.0) -> httpx.Response:
    """POST one order to the gateway, as the workshop's client does."""
    items = default_items() if items is None else items
    body = {"items": items, "total_amount": round(sum(i["quantity"] * i["price"] for i in items), 2)}
    hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
    if client is not None:
        return client.post(f"{gateway_url}/api/orders", json=body, headers=hdrs, timeout=timeout_s)
    with httpx.Client(timeout=timeout_s) as own:
        return own.post(f"{gateway_url}/api/orders", json=body, headers=hdrs)
