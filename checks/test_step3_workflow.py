"""Step 3, the order workflow driven on its own: `OrderWorkflow` gets a stand-in for the
inventory and payment services (`Downstream`, a client with `request`, `get` and `post`, as
the contract's `TracedHttpClient` has) that answers as each case needs, and remembers every
call with the context it was made in. Every outcome the contract names is played: success, no
stock at the check, stock gone at the reservation (409), a declined payment (402), a payment
that fails with a 503 or a transport error, and an inventory service that answers 500."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
from opentelemetry import baggage as otel_baggage
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from kit.harness.spans import ancestors, describe, exception_events, find, is_error
from checks.helpers import make_telemetry

INVENTORY = "http://inventory-service:8004"
PAYMENT = "http://payment-service:8005"
EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")
STEPS = ("validate_inventory", "reserve_inventory", "process_payment", "confirm_order", "rollback_inventory")


@dataclass
class Call:
    method: str
    path: str
    body: dict
    headers: dict
    baggage: dict
    span_id: int


@dataclass
class Downstream:
    """Inventory and payment, as one client: each path answers as the case says (a status code
    or an httpx exception class), and every call is kept with the baggage and span current then."""

    available: bool = True
    check: object = 200
    reserve: object = 200
    payment: object = 200
    calls: list = field(default_factory=list)

    async def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        url = httpx.URL(str(url))
        body = kwargs.get("json")
        if body is None and kwargs.get("content") is not None:
            try:
                body = json.loads(kwargs["content"])
            except ValueError:
                body = None
        headers = {k.lower(): v for k, v in httpx.Headers(kwargs.get("headers") or {}).items()}
        span = otel_trace.get_current_span().get_span_context()
        self.calls.append(Call(method.upper(), url.path, body if isinstance(body, dict) else {}, headers,
                               dict(otel_baggage.get_all()), span.span_id))
        order_id = (body or {}).get("order_id", "?") if isinstance(body, dict) else "?"
        outcome, payload = {
            "/inventory/check": (self.check, {"available": self.available}),
            "/inventory/reserve": (self.reserve, {"reservation_id": f"res-{order_id}"}),
            "/inventory/release": (200, {"released": True}),
            "/payments/process": (self.payment, {"status": "success", "transaction_id": f"txn-{order_id}"}),
        }.get(url.path, (404, {"detail": "not found"}))
        request = httpx.Request(method, url)
        if isinstance(outcome, type):
            raise outcome(f"{outcome.__name__} calling {url}", request=request)
        if outcome == 409:
            payload = {"detail": "stock is gone"}
        elif outcome == 402:
            payload = {"status": "declined", "reason": "card_declined"}
        elif outcome >= 500:
            payload = {"detail": "unavailable"}
        return httpx.Response(outcome, json=payload, request=request)

    async def get(self, url, **kwargs):
        return await self.request("GET", url, **kwargs)

    async def post(self, url, **kwargs):
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        pass

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]


@dataclass(frozen=True)
class Case:
    name: str
    said: str                    # what the stand-in services did, for the learner
    downstream: dict
    result: str | None           # "success", a failure reason, or None when it must raise
    spans: tuple                 # the workflow spans this outcome must have
    paths: tuple                 # the calls it must make, in order
    raised_in: str | None = None  # the step span where the exception happened

    @property
    def payment_failed(self) -> bool:
        return "rollback_inventory" in self.spans


BASE = ("process_order", "validate_inventory")
CASES = (
    Case("success", "everything in stock, the payment accepted", {}, "success",
         BASE + ("reserve_inventory", "process_payment", "confirm_order"),
         ("/inventory/check", "/inventory/reserve", "/payments/process")),
    Case("no stock", "the inventory check answering available: false", {"available": False}, "inventory_unavailable",
         BASE, ("/inventory/check",)),
    Case("stock gone", "the check answering available: true, then the reservation 409 (the stock went meanwhile)",
         {"reserve": 409}, "inventory_unavailable", BASE + ("reserve_inventory",),
         ("/inventory/check", "/inventory/reserve")),
    Case("declined", "the payment declined (402)", {"payment": 402}, "payment_failed",
         BASE + ("reserve_inventory", "process_payment", "rollback_inventory"),
         ("/inventory/check", "/inventory/reserve", "/payments/process", "/inventory/release")),
    Case("payment 503", "the payment service answering 503", {"payment": 503}, None,
         BASE + ("reserve_inventory", "process_payment", "rollback_inventory"),
         ("/inventory/check", "/inventory/reserve", "/payments/process", "/inventory/release"), "process_payment"),
    Case("payment unreachable", "the payment call failing with httpx.ConnectError", {"payment": httpx.ConnectError},
         None, BASE + ("reserve_inventory", "process_payment", "rollback_inventory"),
         ("/inventory/check", "/inventory/reserve", "/payments/process", "/inventory/release"), "process_payment"),
    Case("check 500", "the inventory check answering 500", {"check": 500}, None, BASE, ("/inventory/check",),
         "validate_inventory"),
    Case("reserve times out", "the reservation failing with httpx.ReadTimeout", {"reserve": httpx.ReadTimeout}, None,
         BASE + ("reserve_inventory",), ("/inventory/check", "/inventory/reserve"), "reserve_inventory"),
)

ORDER = {"id": "ord-w-17", "user_id": "user-42", "total_amount": 25.5,
         "items": [{"product_id": "prod-1", "quantity": 2, "price": 10.0},
                   {"product_id": "prod-3", "quantity": 1, "price": 5.5}]}


@dataclass
class Run:
    result: object
    error: BaseException | None
    server: object
    spans: list
    calls: list

    def named(self, name: str) -> list:
        return find(self.spans, name=name)


async def run_order(case: Case, order: dict = ORDER, *, telemetry=None, exporter=None) -> Run:
    """Run one order through the learner's workflow under a SERVER span, as order-service does."""
    if telemetry is None:
        telemetry, exporter = make_telemetry("order-service")
    downstream = Downstream(**case.downstream)
    workflow = attr("services.order_service.workflows", "OrderWorkflow")(telemetry, downstream, INVENTORY, PAYMENT)
    error = result = None
    with telemetry.tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, record_exception=False,
                                                set_status_on_exception=False) as server:
        try:
            result = await workflow.process_order(dict(order))
        except Exception as exc:  # noqa: BLE001 - what the workflow raised is part of what is checked
            error = exc
    telemetry.force_flush()
    return Run(result, error, server, list(exporter.get_finished_spans()), downstream.calls)


def _did(case: Case, order: dict = ORDER) -> str:
    return f"ran OrderWorkflow.process_order for order {order['id']} with {case.said}"


def _outcome(run: Run) -> str:
    return f"it raised {type(run.error).__name__}: {run.error}" if run.error else f"it returned {run.result!r}"


@check(step=3, criterion="rich-attributes", todo="TODO 1", rules=("3.1", "3.2", "3.3"))
async def test_workflow_spans_in_every_outcome():
    """In every outcome, the step spans are INTERNAL children of process_order, under the server span"""
    for case in CASES:
        run = await run_order(case)
        did = _did(case)
        roots = run.named("process_order")
        server = run.server.get_span_context()
        expect(len(roots) == 1 and roots[0].kind == SpanKind.INTERNAL and roots[0].parent is not None
               and roots[0].parent.span_id == server.span_id and roots[0].context.trace_id == server.trace_id,
               did=did, expected="one INTERNAL process_order span, child of the order service's SERVER span",
               saw=f"{[describe(s) for s in roots] or 'no process_order span'}", spans=run.spans)
        for name in case.spans[1:]:
            if name == "rollback_inventory":
                continue  # where rollback_inventory appears is rules 3.4 and 3.5 (the next check)
            found = run.named(name)
            expect(len(found) == 1 and found[0].kind == SpanKind.INTERNAL and found[0].parent is not None
                   and found[0].parent.span_id == roots[0].context.span_id, did=did,
                   expected=f"one INTERNAL {name} span, child of process_order (this outcome's steps: "
                            f"{', '.join(case.spans[1:])})",
                   saw=f"{[describe(s) for s in found] or f'no {name} span'}"
                       + (", whose parent is not process_order" if found else ""), spans=run.spans)


@check(step=3, criterion="errors-traced", todo="TODO 1", rules=("3.4", "3.5"))
async def test_rollback_only_when_the_payment_failed():
    """Only a failed payment (declined, 5xx or transport error) releases the stock, inside rollback_inventory"""
    for case in CASES:
        run = await run_order(case)
        did = _did(case)
        rollbacks = run.named("rollback_inventory")
        releases = [c for c in run.calls if c.path == "/inventory/release"]
        if not case.payment_failed:
            expect(not rollbacks and not releases, did=did,
                   expected="no rollback_inventory span and no release call: no payment failed",
                   saw=f"{len(rollbacks)} rollback_inventory span(s), {len(releases)} release call(s)", spans=run.spans)
            continue
        expect(len(rollbacks) == 1 and len(releases) == 1, did=did,
               expected="the reservation released once (POST /inventory/release), inside one rollback_inventory span",
               saw=f"{len(rollbacks)} rollback_inventory span(s), {len(releases)} release call(s)", spans=run.spans)
        by_id = {s.context.span_id: s for s in run.spans}
        current = by_id.get(releases[0].span_id)
        inside = current is not None and (current is rollbacks[0] or rollbacks[0] in ancestors(run.spans, current))
        expect(inside and releases[0].body.get("reservation_id") == f"res-{ORDER['id']}", did=did,
               expected=f"the release call made while rollback_inventory is the current span, with "
                        f"reservation_id='res-{ORDER['id']}' (the id the reservation returned)",
               saw=f"current span at the call: {describe(current) if current else 'none of the exported spans'}; "
                   f"body {releases[0].body}", spans=run.spans)


ORDERS = (
    ORDER,
    {"id": "ord-w-2", "user_id": "user-7", "total_amount": 99,
     "items": [{"product_id": "prod-2", "quantity": 3, "price": 33.0}]},
    {"id": "ord-w-3", "user_id": "user-123", "total_amount": 89.97,
     "items": [{"product_id": "prod-1", "quantity": 1, "price": 29.99},
               {"product_id": "prod-2", "quantity": 1, "price": 49.99},
               {"product_id": "prod-3", "quantity": 1, "price": 9.99},
               {"product_id": "prod-9", "quantity": 0, "price": 0.0}]},
)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@check(step=3, criterion="rich-attributes", todo="TODO 3", rules=("3.6", "3.7", "3.8", "3.9", "3.10", "3.11"))
async def test_every_step_span_carries_its_attributes():
    """Each span carries its attributes, with the right types, for several orders and outcomes"""
    for order in ORDERS:
        run = await run_order(CASES[0], order)
        did = _did(CASES[0], order)
        root = run.named("process_order")
        attrs = dict(root[0].attributes or {}) if root else {}
        shown = {k: attrs.get(k) for k in ("order.id", "order.user_id", "order.total_amount", "order.items_count")}
        expect(attrs.get("order.id") == order["id"] and attrs.get("order.user_id") == order["user_id"]
               and _number(attrs.get("order.total_amount")) and abs(attrs["order.total_amount"] - order["total_amount"]) < 1e-9
               and _number(attrs.get("order.items_count")) and attrs["order.items_count"] == len(order["items"]),
               did=did, expected=f"process_order with order.id={order['id']!r}, order.user_id={order['user_id']!r}, "
                                 f"order.total_amount={order['total_amount']} (a number) and "
                                 f"order.items_count={len(order['items'])} (the number of items)",
               saw=shown if root else "no process_order span", spans=run.spans)
        want = {"validate_inventory": {"inventory.available": True},
                "reserve_inventory": {"reservation.id": f"res-{order['id']}"},
                "process_payment": {"payment.status": "success", "payment.transaction_id": f"txn-{order['id']}"},
                "confirm_order": {"confirmation.number": (run.result or {}).get("confirmation_number")
                                  if isinstance(run.result, dict) else None}}
        for name, expected in want.items():
            spans = run.named(name)
            got = {k: (spans[0].attributes or {}).get(k) for k in expected} if spans else None
            types_ok = got is not None and (name != "validate_inventory" or got["inventory.available"] is True)
            expect(got == expected and types_ok and all(v is not None for v in expected.values()), did=did,
                   expected=f"{name} with {expected}" + (" (a bool)" if name == "validate_inventory" else "")
                            + (" (the number the workflow returned)" if name == "confirm_order" else ""),
                   saw=got if spans else f"no {name} span", spans=run.spans)
    run = await run_order(CASES[1])
    spans = run.named("validate_inventory")
    value = (spans[0].attributes or {}).get("inventory.available") if spans else "no validate_inventory span"
    expect(value is False, did=_did(CASES[1]), expected="validate_inventory with inventory.available=False (a bool)",
           saw=f"inventory.available={value!r}", spans=run.spans)
    run = await run_order(CASES[3])
    spans = run.named("process_payment")
    attrs = dict(spans[0].attributes or {}) if spans else {}
    status, transaction = attrs.get("payment.status"), attrs.get("payment.transaction_id", "")
    expect(spans and isinstance(status, str) and status.strip() and status != "success" and transaction == "",
           did=_did(CASES[3]),
           expected="process_payment with payment.status saying the payment did not succeed (e.g. 'declined'), and "
                    "payment.transaction_id absent or '' (rule 3.10: either)",
           saw={"payment.status": status, "payment.transaction_id": attrs.get("payment.transaction_id")}
           if spans else "no process_payment span", spans=run.spans)


@check(step=3, criterion="errors-traced", todo="TODO 4", rules=("3.16", "3.17", "3.18", "3.19", "3.20"))
async def test_business_failures_return_and_exceptions_raise():
    """Business failures return 'failed' with their reason; 5xx and transport errors are re-raised; both mark process_order ERROR"""
    for case in CASES:
        run = await run_order(case)
        did = _did(case)
        paths = tuple(c.path for c in run.calls)
        expect(paths == case.paths, did=did,
               expected=f"the calls {list(case.paths)}"
                        + (" (no payment: the order cannot be served)" if case.result == "inventory_unavailable" else ""),
               saw=f"calls {list(paths)}; {_outcome(run)}", spans=run.spans)
        if case.result == "success":
            result = run.result if isinstance(run.result, dict) else {}
            expect(run.error is None and result.get("status") == "success" and result.get("order_id") == ORDER["id"]
                   and {"confirmation_number", "estimated_delivery"} <= set(result), did=did,
                   expected=f"{{'status': 'success', 'order_id': {ORDER['id']!r}, 'confirmation_number': ..., "
                            f"'estimated_delivery': ...}} returned", saw=_outcome(run), spans=run.spans)
        elif case.result is not None:
            result = run.result if isinstance(run.result, dict) else {}
            expect(run.error is None and {"status": "failed", "reason": case.result}.items() <= result.items(), did=did,
                   expected=f"{{'status': 'failed', 'reason': {case.result!r}}} returned (a business failure, "
                            "not an exception)", saw=_outcome(run), spans=run.spans)
        else:
            transport = case.downstream.get("payment", case.downstream.get("reserve", case.downstream.get("check")))
            same = not isinstance(transport, type) or isinstance(run.error, transport)
            expect(run.error is not None and same, did=did,
                   expected="the exception re-raised by process_order"
                            + (f" (the {transport.__name__} itself)" if isinstance(transport, type) else ""),
                   saw=_outcome(run), spans=run.spans)
        roots = run.named("process_order")
        failed = case.result != "success"
        description = (roots[0].status.description or "").strip() if roots else ""
        expect(roots and (is_error(roots[0]) and description if failed else not is_error(roots[0])), did=did,
               expected=("process_order's status ERROR, with a description" if failed
                         else "process_order's status not ERROR: the order went through"),
               saw=(f"status {roots[0].status.status_code.name}, description {roots[0].status.description!r}"
                    if roots else "no process_order span"), spans=run.spans)


def _complete(event, name: str | None) -> bool:
    attrs = event.attributes or {}
    return all(str(attrs.get(k, "")).strip() for k in EXCEPTION_KEYS) and (
        name is None or name in str(attrs.get("exception.type")))


@check(step=3, criterion="errors-traced", todo="TODO 5", rules=("3.21", "3.22"))
async def test_exception_is_recorded_on_the_step_where_it_happened():
    """An exception leaves an exception event (type, message, stack trace) on the step span where it happened"""
    for case in CASES:
        if case.raised_in is None:
            continue
        run = await run_order(case)
        did = _did(case)
        failing = case.downstream.get("payment", case.downstream.get("reserve", case.downstream.get("check")))
        name = failing.__name__ if isinstance(failing, type) else None
        spans = run.named(case.raised_in)
        # Rule 3.22: the innermost span where it happened; a span of the learner's own inside the
        # step (around the call, say) is innermost then.
        inner = [s for s in run.spans if spans and spans[0] in ancestors(run.spans, s)]
        events = [e for s in spans[:1] + inner for e in exception_events(s) if _complete(e, name)]
        expect(events, did=did,
               expected=f"{case.raised_in} (the innermost span where it happened), or a span of yours inside it, to "
                        f"record an 'exception' event with exception.type{f' ({name})' if name else ''}, "
                        "exception.message and exception.stacktrace",
               saw=(f"its events: {[(e.name, dict(e.attributes or {}).get('exception.type')) for e in spans[0].events]}"
                    if spans and spans[0].events else
                    f"no event on {case.raised_in}" if spans else f"no {case.raised_in} span"), spans=run.spans)


@check(step=3, criterion="context-propagates", todo="TODO 2", rules=("3.12", "3.13", "3.14", "3.15"))
async def test_every_downstream_call_carries_the_orders_baggage():
    """Every call goes through the given client, as the contract shows, with user.id and order.id in baggage"""
    for case in (CASES[0], CASES[3], CASES[4]):
        run = await run_order(case)
        did = _did(case)
        # After an exception, whether the stock was released is rules 3.5 and 3.19 (errors-traced).
        made = [c.path for c in run.calls if case.result or c.path != "/inventory/release"]
        want = case.paths if case.result else case.paths[:3]
        expect(tuple(made) == want, did=did,
               expected=f"every call through the client the workflow was given: {list(want)}",
               saw=f"calls through it: {[c.path for c in run.calls]}; {_outcome(run)}")
        items = ORDER["items"]
        want = {"/inventory/check": {"order_id": ORDER["id"], "items": items},
                "/inventory/reserve": {"order_id": ORDER["id"], "items": items},
                "/payments/process": {"order_id": ORDER["id"], "user_id": ORDER["user_id"],
                                      "amount": ORDER["total_amount"]},
                "/inventory/release": {"order_id": ORDER["id"], "reservation_id": f"res-{ORDER['id']}"}}
        for call in run.calls:
            body = {k: call.body.get(k) for k in want[call.path]}
            expect(call.method == "POST" and body == want[call.path], did=did,
                   expected=f"POST {call.path} with the JSON body {want[call.path]}",
                   saw=f"{call.method} {call.path} with {call.body}")
            expect(call.baggage.get("user.id") == ORDER["user_id"] and call.baggage.get("order.id") == ORDER["id"],
                   did=did, expected=f"baggage user.id={ORDER['user_id']} and order.id={ORDER['id']} in the context "
                                     f"of the call to {call.path}",
                   saw=f"baggage there: {call.baggage or 'none'}")
        payments = [c for c in run.calls if c.path == "/payments/process"]
        expect(payments and str(payments[0].headers.get("idempotency-key", "")).strip(), did=did,
               expected="the payment call to carry an Idempotency-Key header (so that the client may retry it)",
               saw=f"headers {payments[0].headers if payments else '(no payment call)'}")
