"""Step 3: the order workflow, traced with business spans.

The order service runs `OrderWorkflow.process_order` for every order. The HTTP instrumentation
already shows *that* the order service called inventory and payment; the business spans made
here show *what the order was doing* when it did, in the language of the business:

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

How the tracing ideas are applied:

- **Nesting by context.** Each step is a span made with `telemetry.create_span`, which makes
  it the current span; the HTTP client's spans, and through `traceparent` the callee's spans,
  become its children without any span being passed around.
- **Attributes answer questions.** `order.id`, `order.user_id`, `order.total_amount`, ... let
  you find "the trace of order 42" or "every failed order above 500" in a trace backend.
- **Baggage for the whole call tree.** `user.id` and `order.id` are put in the baggage and the
  context holding them is *attached* around the downstream calls, so they travel in the
  `baggage` header and every service the order reaches can tag its spans with them.
- **Errors where they happened.** A business failure (no stock, payment declined) sets
  `process_order` to `ERROR` with a description and returns a `"failed"` result. An exception
  (a 5xx answer, a transport error) is recorded, as an `exception` event, on the step span
  where it happened, which is set to `ERROR` too; `process_order` is set to `ERROR` with a
  description; any inventory reservation is released; the exception is re-raised.
- **Logs that point at the trace.** "Order processed successfully" carries `trace_id`, so a log
  line leads straight to its trace.
- **A business metric that points at the trace.** Every order adds 1 to the counter
  `orders.processed` (unit `{order}`), with `order.status` = `success` | `failed` and, for a
  failed order, `order.failure_reason` (`inventory_unavailable`, `payment_failed`, or `error`
  when the workflow raised). A dashboard can chart the failure rate by reason without reading
  a single trace; and because the count is added *while `process_order` is the current span*,
  its exemplar carries that order's trace id: from a spike of `payment_failed` you reach one
  such order's trace. The attributes are few-valued on purpose (never the order id: one time
  series per order would swamp the metrics backend; that detail belongs on the span).

Results: `{"status": "success", "order_id", "confirmation_number", "estimated_delivery"}` or
`{"status": "failed", "reason": "inventory_unavailable" | "payment_failed"}`.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from services.shared.trace_context import set_baggage_items

if TYPE_CHECKING:
    from services.shared.http_client import TracedHttpClient
    from services.shared.telemetry import DistributedTelemetry

#: Days from the order to its estimated delivery.
DELIVERY_DAYS = 5

INVENTORY_UNAVAILABLE = {"status": "failed", "reason": "inventory_unavailable"}
PAYMENT_FAILED = {"status": "failed", "reason": "payment_failed"}

#: The business metric: one count per order, by `order.status` and `order.failure_reason`.
ORDERS_PROCESSED = "orders.processed"
#: `order.failure_reason` of an order whose workflow raised (a 5xx answer, a transport error).
FAILURE_REASON_ERROR = "error"


class OrderWorkflow:
    """Checks stock, reserves it, takes the payment and confirms one order (see module docs).

    Every call goes through `client` (the service's `TracedHttpClient`) to the inventory
    service at `inventory_url` and the payment service at `payment_url`; the spans are made
    with `telemetry`, the order service's `DistributedTelemetry`, and the `orders.processed`
    counter with its meter.
    """

    def __init__(self, telemetry: DistributedTelemetry, client: TracedHttpClient,
                 inventory_url: str, payment_url: str) -> None:
        self.telemetry = telemetry
        self.client = client
        self.inventory_url = inventory_url.rstrip("/")
        self.payment_url = payment_url.rstrip("/")
        # One instrument for the life of the workflow; each order adds to it.
        self._orders_processed = telemetry.meter.create_counter(
            ORDERS_PROCESSED, unit="{order}",
            description="Orders run through the workflow, by outcome and failure reason")

    async def process_order(self, order_data: dict) -> dict:
        """Run one order through the workflow and return its result dict.

        `order_data` has `id`, `user_id`, `items` (each `product_id`, `quantity`, `price`) and
        `total_amount`. Business failures come back as `{"status": "failed", ...}`; a 5xx
        answer or a transport error is raised (after releasing any reservation)."""
        started = time.perf_counter()
        order_id = str(order_data["id"])
        user_id = str(order_data["user_id"])
        items = list(order_data.get("items", []))
        amount = order_data["total_amount"]
        attributes = {"order.id": order_id, "order.user_id": user_id,
                      "order.total_amount": float(amount), "order.items_count": len(items)}
        log = structlog.get_logger()
        failure: Exception | None = None
        with self.telemetry.create_span("process_order", kind=SpanKind.INTERNAL,
                                        attributes=attributes) as span:
            # Baggage lives in a context; it only travels once that context is current. Attach
            # it for the downstream calls and always detach it, so it never leaks into the
            # next request this task handles.
            token = otel_context.attach(
                set_baggage_items({"user.id": user_id, "order.id": order_id}))
            try:
                result = await self._run_steps(order_id, user_id, items, amount)
            except Exception as exc:
                # Already recorded, with its stack trace, on the step span where it happened;
                # here the order itself is marked failed and the exception goes on.
                span.set_status(Status(StatusCode.ERROR, f"order failed: {_describe(exc)}"))
                log.error("Order processing failed", order_id=order_id, error=_describe(exc))
                self._count_order(FAILURE_REASON_ERROR)
                failure = exc
            else:
                if result["status"] == "success":
                    log.info("Order processed successfully", order_id=order_id,
                             trace_id=format(span.get_span_context().trace_id, "032x"),
                             duration_ms=round((time.perf_counter() - started) * 1000, 3))
                    self._count_order(None)
                else:
                    span.set_status(Status(StatusCode.ERROR, f"order failed: {result['reason']}"))
                    log.warning("Order failed", order_id=order_id, reason=result["reason"])
                    self._count_order(result["reason"])
            finally:
                otel_context.detach(token)
        if failure is not None:
            # Raised outside `create_span`, so the exception is not recorded a second time on
            # `process_order`: one `exception` event, on the span where it happened.
            raise failure
        return result

    async def _run_steps(self, order_id: str, user_id: str, items: list[dict],
                         amount: Any) -> dict:
        with self._step("validate_inventory") as span:
            available = await self._check_inventory(order_id, items)
            span.set_attribute("inventory.available", available)
        if not available:
            return dict(INVENTORY_UNAVAILABLE)

        with self._step("reserve_inventory") as span:
            reservation_id = await self._reserve_inventory(order_id, items)
            if reservation_id is None:
                span.set_status(Status(StatusCode.ERROR, "stock is gone (409)"))
            else:
                span.set_attribute("reservation.id", reservation_id)
        if reservation_id is None:
            return dict(INVENTORY_UNAVAILABLE)

        try:
            with self._step("process_payment") as span:
                payment = await self._process_payment(order_id, user_id, amount)
                span.set_attribute("payment.status", payment["status"])
                if payment.get("transaction_id"):
                    span.set_attribute("payment.transaction_id", payment["transaction_id"])
                if payment["status"] != "success":
                    reason = payment.get("reason") or "declined"
                    span.set_status(Status(StatusCode.ERROR, f"payment declined: {reason}"))
        except Exception:
            # The payment may or may not have happened; the stock must not stay held. A
            # failing release is recorded on its own span but must not hide the real error.
            await self._rollback_inventory(order_id, reservation_id, suppress_errors=True)
            raise
        if payment["status"] != "success":
            await self._rollback_inventory(order_id, reservation_id)
            return dict(PAYMENT_FAILED)

        with self._step("confirm_order") as span:
            confirmation = self._confirm_order(order_id, payment.get("transaction_id", ""))
            span.set_attribute("confirmation.number", confirmation["confirmation_number"])
        return {"status": "success", "order_id": order_id, **confirmation}

    def _count_order(self, failure_reason: str | None) -> None:
        """Add this order to `orders.processed`. Called while `process_order` is the current
        span, so that (when the trace is sampled) the exemplar names this order's trace."""
        attributes = {"order.status": "success"} if failure_reason is None else {
            "order.status": "failed", "order.failure_reason": failure_reason}
        self._orders_processed.add(1, attributes)

    @contextmanager
    def _step(self, name: str) -> Iterator[Span]:
        """A business span; an exception inside it is recorded on it, then re-raised.

        The exception is re-raised *after* the span's `with` block, so that whatever
        `create_span` does with exceptions, the event is recorded exactly once, here."""
        failure: Exception | None = None
        with self.telemetry.create_span(name, kind=SpanKind.INTERNAL) as span:
            try:
                yield span
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, _describe(exc)))
                failure = exc
        if failure is not None:
            raise failure

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
        """Release the reservation, inside a `rollback_inventory` span."""
        try:
            with self._step("rollback_inventory") as span:
                span.set_attribute("reservation.id", reservation_id)
                response = await self.client.post(
                    f"{self.inventory_url}/inventory/release",
                    json={"order_id": order_id, "reservation_id": reservation_id})
                _answer(response)
        except Exception as exc:
            if not suppress_errors:
                raise
            structlog.get_logger().error("Releasing the reservation failed", order_id=order_id,
                                         reservation_id=reservation_id, error=_describe(exc))

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


def _describe(exc: BaseException) -> str:
    """`"Type: first line of the message"`, for span status descriptions and logs."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
