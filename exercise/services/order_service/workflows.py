"""Step 3: the order workflow, traced with business spans.

The order service runs `OrderWorkflow.process_order` for every order. As shipped, the workflow
does its business (check the stock, reserve it, take the payment, release the stock if the
payment is declined, confirm) but tells nobody about it: no spans, no baggage, no log. The HTTP
instrumentation can show *that* the order service called inventory and payment; your business
spans will show *what the order was doing* when it did:

    order-service  POST /orders                     SERVER
      process_order                                 INTERNAL  order.id, order.user_id, ...
        validate_inventory                          INTERNAL  inventory.available
          POST  -> inventory-service /inventory/check    CLIENT (one per attempt, Step 4)
        reserve_inventory                           INTERNAL  reservation.id
          POST  -> inventory-service /inventory/reserve
        process_payment                             INTERNAL  payment.status, payment.transaction_id
          POST  -> payment-service /payments/process
        rollback_inventory   (only when the payment failed)
          POST  -> inventory-service /inventory/release
        confirm_order                               INTERNAL  confirmation.number

What to build (the TODOs below, with the success criteria each one serves and the rules of
docs/learner-api.md it covers):

- TODO 1 (rich-attributes, errors-traced; rules 3.1 to 3.5): `process_order`, and inside it one
  span per step, all `INTERNAL`, made with `self.telemetry.create_span(...)` (which makes each the
  current span, so the nesting and the HTTP client's spans follow by themselves).
- TODO 2 (context-propagates; rules 3.12 to 3.15): put `user.id` and `order.id` in the baggage with
  Step 2's `set_baggage_items` and *attach* that context (`opentelemetry.context.attach`, then
  `detach` in a `finally`) around the downstream calls, so they travel in the `baggage` header.
- TODO 3 (rich-attributes; rules 3.6 to 3.11): the attributes in the tree above.
- TODO 4 (errors-traced; rules 3.16 to 3.18, 3.20): a business failure (no stock, payment declined)
  sets `process_order`'s status to `ERROR` with a description.
- TODO 5 (errors-traced; rules 3.19 to 3.22): an exception (a 5xx answer, a transport error) is
  recorded with `span.record_exception(exc)` on the step span where it happened (status `ERROR`
  there too), `process_order` gets status `ERROR` with a description, and the exception is
  re-raised (after releasing any reservation; the stub already does that part).
- TODO 6 (context-propagates; rule 3.23): log "Order processed successfully" with `order_id`,
  `trace_id` (32 hex digits) and `duration_ms`, through `structlog.get_logger()`.
- TODO 7 (performance-visible; rules 3.24 to 3.29): a business metric. Every
  order adds 1 to a counter `orders.processed` (unit `{order}`) made with
  `self.telemetry.meter`, with `order.status` = `success` | `failed` and, when failed,
  `order.failure_reason` (`inventory_unavailable`, `payment_failed`, or `error` when the
  workflow raised). Add it *inside* the `process_order` span, so that its exemplar points at
  the order's trace.

Results: `{"status": "success", "order_id", "confirmation_number", "estimated_delivery"}` or
`{"status": "failed", "reason": "inventory_unavailable" | "payment_failed"}`.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from services.shared.http_client import TracedHttpClient
    from services.shared.telemetry import DistributedTelemetry

#: Days from the order to its estimated delivery.
DELIVERY_DAYS = 5

INVENTORY_UNAVAILABLE = {"status": "failed", "reason": "inventory_unavailable"}
PAYMENT_FAILED = {"status": "failed", "reason": "payment_failed"}


class OrderWorkflow:
    """Checks stock, reserves it, takes the payment and confirms one order (see module docs).

    Every call goes through `client` (the service's `TracedHttpClient`) to the inventory
    service at `inventory_url` and the payment service at `payment_url`; the spans are made
    with `telemetry`, the order service's `DistributedTelemetry`.
    """

    def __init__(self, telemetry: DistributedTelemetry, client: TracedHttpClient,
                 inventory_url: str, payment_url: str) -> None:
        self.telemetry = telemetry
        self.client = client
        self.inventory_url = inventory_url.rstrip("/")
        self.payment_url = payment_url.rstrip("/")
        # TODO 7 (performance-visible; rule 3.24): create the counter
        #   once: self.telemetry.meter.create_counter("orders.processed", unit="{order}").

    async def process_order(self, order_data: dict) -> dict:
        """Run one order through the workflow and return its result dict.

        `order_data` has `id`, `user_id`, `items` (each `product_id`, `quantity`, `price`) and
        `total_amount`. Business failures come back as `{"status": "failed", ...}`; a 5xx
        answer or a transport error is raised (after releasing any reservation)."""
        order_id = str(order_data["id"])
        user_id = str(order_data["user_id"])
        items = list(order_data.get("items", []))
        amount = order_data["total_amount"]
        # TODO 1 (rich-attributes; rules 3.1, 3.3): run everything below inside a "process_order"
        #   span: `with self.telemetry.create_span("process_order", attributes=...) as span:`.
        # TODO 3 (rich-attributes; rule 3.6): give it order.id, order.user_id, order.total_amount
        #   (a float) and order.items_count.
        # TODO 2 (context-propagates; rule 3.15): token = opentelemetry.context.attach(
        #   set_baggage_items({"user.id": user_id, "order.id": order_id})) before the steps,
        #   and opentelemetry.context.detach(token) in a `finally` after them.
        # TODO 5 (errors-traced; rules 3.19, 3.20): if the steps raise, set process_order's status
        #   to Status(StatusCode.ERROR, <description>) and re-raise. (The exception itself is
        #   recorded on the step span where it happened, once.)
        result = await self._run_steps(order_id, user_id, items, amount)
        # TODO 4 (errors-traced; rules 3.17, 3.18, 3.20): a "failed" result sets process_order's
        #   status to Status(StatusCode.ERROR, <description, e.g. "order failed: payment_failed">).
        # TODO 6 (context-propagates; rule 3.23): on success, log inside the span:
        #   structlog.get_logger().info("Order processed successfully", order_id=order_id,
        #       trace_id=<span's trace id as 32 hex digits>, duration_ms=<time taken, in ms>)
        # TODO 7 (performance-visible; rules 3.25 to 3.28): while process_order
        #   is still the current span, add 1 to orders.processed with {"order.status":
        #   "success"}, or {"order.status": "failed", "order.failure_reason": result["reason"]},
        #   or, when the steps raised, {"order.status": "failed", "order.failure_reason":
        #   "error"} (before re-raising).
        return result

    async def _run_steps(self, order_id: str, user_id: str, items: list[dict],
                         amount: Any) -> dict:
        # TODO 1 (rich-attributes, errors-traced; rules 3.2 to 3.5): wrap each step below in its
        #   own span, inside process_order: "validate_inventory", "reserve_inventory",
        #   "process_payment", "rollback_inventory" (only when the payment failed) and
        #   "confirm_order".
        # TODO 3 (rich-attributes; rules 3.7 to 3.11): inventory.available (bool) on
        #   validate_inventory, reservation.id on reserve_inventory, payment.status and
        #   payment.transaction_id on process_payment, confirmation.number on confirm_order.
        # TODO 5 (errors-traced; rules 3.21, 3.22): an exception inside a step span:
        #   span.record_exception(exc) and Status(StatusCode.ERROR, ...) on that span, then
        #   re-raise it. Careful: if it escapes the `with create_span(...)` block, create_span may
        #   record it as well.
        available = await self._check_inventory(order_id, items)
        if not available:
            return dict(INVENTORY_UNAVAILABLE)

        reservation_id = await self._reserve_inventory(order_id, items)
        if reservation_id is None:
            return dict(INVENTORY_UNAVAILABLE)

        try:
            payment = await self._process_payment(order_id, user_id, amount)
        except Exception:
            await self._rollback_inventory(order_id, reservation_id, suppress_errors=True)
            raise
        if payment["status"] != "success":
            await self._rollback_inventory(order_id, reservation_id)
            return dict(PAYMENT_FAILED)

        confirmation = self._confirm_order(order_id, payment.get("transaction_id", ""))
        return {"status": "success", "order_id": order_id, **confirmation}

    # -- the downstream calls ------------------------------------------------------------------

    async def _check_inventory(self, order_id: str, items: list[dict]) -> bool:
        response = await self.client.post(f"{self.inventory_url}/inventory/check",
                                          json={"order_id": order_id, "items": items})
        return bool(_answer(response)["available"])

    async def _reserve_inventory(self, order_id: str, items: list[dict]) -> str | None:
        """The reservation id, or None when the stock went in the meantime (409)."""
        response = await self.client.post(f"{self.inventory_url}/inventory/reserve",
                                          json={"order_id": order_id, "items": items})
        if response.status_code == 409:
            return None
        return str(_answer(response)["reservation_id"])

    async def _process_payment(self, order_id: str, user_id: str, amount: Any) -> dict:
        """`{"status": "success", "transaction_id"}` or `{"status": "declined", "reason"}`."""
        # The idempotency key makes the POST safe to retry: the client may resend it after a
        # 503, and the payment service charges an order at most once.
        response = await self.client.post(
            f"{self.payment_url}/payments/process",
            json={"order_id": order_id, "user_id": user_id, "amount": amount},
            headers={"Idempotency-Key": f"order-{order_id}"})
        if response.status_code == 402:
            body = _json_or_empty(response)
            return {"status": "declined", "reason": body.get("reason", "declined")}
        body = _answer(response)
        return {"status": str(body.get("status", "declined")),
                "transaction_id": str(body.get("transaction_id") or ""),
                "reason": str(body.get("reason") or "")}

    async def _rollback_inventory(self, order_id: str, reservation_id: str, *,
                                  suppress_errors: bool = False) -> None:
        """Release the reservation."""
        try:
            response = await self.client.post(
                f"{self.inventory_url}/inventory/release",
                json={"order_id": order_id, "reservation_id": reservation_id})
            _answer(response)
        except Exception:
            if not suppress_errors:
                raise

    @staticmethod
    def _confirm_order(order_id: str, transaction_id: str) -> dict:
        """Local work: a confirmation number (stable for one order and payment) and the
        estimated delivery date (ISO `YYYY-MM-DD`)."""
        digest = hashlib.sha256(f"{order_id}:{transaction_id}".encode()).hexdigest()
        delivery = datetime.now(timezone.utc).date() + timedelta(days=DELIVERY_DAYS)
        return {"confirmation_number": f"CONF-{digest[:10].upper()}",
                "estimated_delivery": delivery.isoformat()}


def _answer(response: httpx.Response) -> dict:
    """The JSON body of a successful answer; any other answer raises `httpx.HTTPStatusError`."""
    response.raise_for_status()
    return _json_or_empty(response)


def _json_or_empty(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
