"""Success criterion 6, errors traced: every failure shows in the trace where it happened. A
declined payment is rolled back and marks the order failed up to the gateway; an outage of the
external payment API, a crash inside a service and an exception in the workflow each leave an
`exception` event on the span where they happened; a client error status is an error, not a
reason to retry. (Keeping errors when sampling drops the rest is checked with sampling.)"""
from __future__ import annotations

import httpx
import respx
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect
from kit.harness.spans import ancestors, describe, exception_events, find, is_error, server_spans
from checks.helpers import make_telemetry, traced_client

PROVIDER = "api.payment-provider.example"
DECLINED = "sent an order whose card the external payment API declines (402 card_declined)"
TIMES_OUT = "sent an order while the external payment API times out (httpx.ConnectTimeout on every attempt)"
PROVIDER_503 = "sent an order while the external payment API answers 503 (so payment-service answers 503)"
UNKNOWN = "sent an order for product prod-unknown, which inventory-service does not handle (it raises)"
EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")


def _url_is(span, host: str, path: str | None = None) -> bool:
    url = (span.attributes or {}).get("url.full")
    if not isinstance(url, str):
        return False
    parsed = httpx.URL(url)
    return parsed.host == host and (path is None or parsed.path == path)


def _complete_exception_events(span) -> list:
    """The span's `exception` events that carry a type, a message and a stack trace."""
    return [e for e in exception_events(span)
            if all(str((e.attributes or {}).get(k, "")).strip() for k in EXCEPTION_KEYS)]


def _event_summary(span) -> str:
    events = exception_events(span)
    if not events:
        return f"{describe(span)} has no exception event"
    return f"{describe(span)} has an exception event with {sorted((events[0].attributes or {}).keys())}"


@check(step=3, criterion="errors-traced", todo="TODO 1", rules=("3.4", "3.5"))
async def test_declined_payment_is_rolled_back_in_a_span(mesh):
    """A declined payment releases the reservation inside a rollback_inventory span"""
    mesh.provider_declines()
    response = await mesh.order()
    spans = mesh.spans()
    expect(response.status_code == 402, did=DECLINED, expected="the gateway to answer 402 (payment_failed)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    releases = mesh.crossings_to("inventory-service")
    expect(any(c.path == "/inventory/release" for c in releases), did=DECLINED,
           expected="a call to POST /inventory/release to give the stock back",
           saw=f"calls to inventory-service: {[c.path for c in releases]}")
    rollback = find(spans, service="order-service", name="rollback_inventory")
    expect(len(rollback) == 1 and rollback[0].kind == SpanKind.INTERNAL, did=DECLINED,
           expected="one INTERNAL rollback_inventory span in order-service",
           saw=f"{[describe(s) for s in rollback] or 'no rollback_inventory span'}", spans=spans)
    parents = [s for s in spans if rollback[0].parent is not None and s.context.span_id == rollback[0].parent.span_id]
    expect(parents and parents[0].name == "process_order", did=DECLINED,
           expected="rollback_inventory to be a child of process_order, like the other steps",
           saw=f"its parent is {describe(parents[0]) if parents else 'not among the exported spans'}", spans=spans)
    release_calls = [s for s in find(spans, service="order-service", kind=SpanKind.CLIENT)
                     if _url_is(s, "inventory-service", "/inventory/release")]
    inside = [s for s in release_calls if rollback[0] in ancestors(spans, s)]
    expect(inside, did=DECLINED,
           expected="the call to /inventory/release made inside rollback_inventory (its CLIENT span below it)",
           saw=(f"its CLIENT span's ancestors: {[describe(a) for a in ancestors(spans, release_calls[0])]}"
                if release_calls else "no CLIENT span in order-service for /inventory/release (Step 4's client makes it)"),
           spans=spans)


@check(step=3, criterion="errors-traced", todo="TODO 4", rules=("3.18", "3.20"))
async def test_declined_payment_marks_process_order_as_failed(mesh):
    """A declined payment sets process_order's status to ERROR, with a description"""
    mesh.provider_declines()
    await mesh.order()
    spans = mesh.spans()
    orders = find(spans, service="order-service", name="process_order")
    expect(orders, did=DECLINED, expected="a process_order span in order-service", saw="none", spans=spans)
    status = orders[0].status
    expect(is_error(orders[0]) and (status.description or "").strip(), did=DECLINED,
           expected="process_order's status to be ERROR with a description (e.g. 'order failed: payment_failed')",
           saw=f"status {status.status_code.name}, description {status.description!r}", spans=spans)


@check(step=1, criterion="errors-traced", todo="TODO 7", rules=("1.13", "1.14"))
async def test_declined_payment_is_an_error_at_the_gateway(mesh):
    """A declined payment is a 402 to the client and an ERROR on the gateway's SERVER span"""
    mesh.provider_declines()
    response = await mesh.order()
    spans = mesh.spans()
    expect(response.status_code == 402, did=DECLINED, expected="the gateway to answer 402",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    gateway = server_spans(spans, "api-gateway", "/api/orders")
    expect(gateway and is_error(gateway[0]), did=DECLINED,
           expected="the gateway's SERVER span for POST /api/orders with status ERROR",
           saw=describe(gateway[0]) if gateway else "no SERVER span in api-gateway for /api/orders", spans=spans)


@check(step=4, criterion="errors-traced", todo="TODO 7", rules=("4.7", "4.8", "4.9"))
async def test_external_api_outage_is_recorded_on_the_client_span(mesh):
    """An outage of the external payment API is an exception event on each attempt's CLIENT span"""
    mesh.provider_times_out()
    response = await mesh.order()
    spans = mesh.spans()
    expect(response.status_code >= 400 and response.status_code != 500, did=TIMES_OUT,
           expected="the order to fail cleanly: an error answer from the gateway, but not a 500 from a crash",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    calls = [s for s in find(spans, service="payment-service", kind=SpanKind.CLIENT) if _url_is(s, PROVIDER)]
    expect(calls, did=TIMES_OUT, expected=f"CLIENT spans in payment-service for the calls to {PROVIDER}",
           saw="none", spans=spans)
    payments = server_spans(spans, "payment-service", "/payments/process")
    expect(payments and mesh.charges > len(payments) and len(calls) == mesh.charges, did=TIMES_OUT,
           expected="the payment calls to try the external API more than once (a timeout is retried, and the call "
                    "carries an Idempotency-Key), each attempt its own CLIENT span",
           saw=f"{len(payments)} payment call(s), {mesh.charges} request(s) to {PROVIDER}, {len(calls)} CLIENT span(s)",
           spans=spans)
    timeouts = [s for s in calls if (s.attributes or {}).get("error.type") in ("ConnectTimeout", "httpx.ConnectTimeout")]
    expect(len(timeouts) == len(calls) and all(is_error(s) for s in timeouts), did=TIMES_OUT,
           expected="every one of those spans with status ERROR and error.type 'ConnectTimeout' (or 'httpx.ConnectTimeout')",
           saw=f"{[(describe(s), (s.attributes or {}).get('error.type')) for s in calls[:4]]}", spans=spans)
    missing = [s for s in timeouts if not _complete_exception_events(s)
               or "ConnectTimeout" not in str(_complete_exception_events(s)[0].attributes.get("exception.type"))]
    expect(not missing, did=TIMES_OUT,
           expected="each of them to record an 'exception' event with exception.type (ConnectTimeout), "
                    "exception.message and exception.stacktrace",
           saw=lambda: _event_summary(missing[0]), spans=spans)


@check(step=1, criterion="errors-traced", todo="TODO 7", rules=("1.13", "1.14"))
async def test_crash_in_a_service_is_a_500_with_the_exception_on_its_server_span(mesh):
    """An unhandled exception in a service is a 500 and an exception event on its SERVER span"""
    await mesh.order(items=[{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}])
    spans = mesh.spans()
    calls = [c for c in mesh.crossings_to("inventory-service") if c.path == "/inventory/check"]
    expect(calls and calls[0].status == 500, did=UNKNOWN,
           expected="inventory-service to answer POST /inventory/check with 500",
           saw=f"answers: {[c.status for c in calls] or 'no call to /inventory/check'}")
    servers = server_spans(spans, "inventory-service", "/inventory/check")
    expect(servers and is_error(servers[0]), did=UNKNOWN,
           expected="inventory-service's SERVER span for /inventory/check with status ERROR",
           saw=describe(servers[0]) if servers else "no such SERVER span", spans=spans)
    events = _complete_exception_events(servers[0])
    expect(events and "UnknownProductError" in str(events[0].attributes.get("exception.type")), did=UNKNOWN,
           expected="that span to record an 'exception' event (exception.type UnknownProductError, "
                    "exception.message, exception.stacktrace)",
           saw=_event_summary(servers[0]), spans=spans)


@check(step=3, criterion="errors-traced", todo="TODO 5", rules=("3.21", "3.22"))
async def test_workflow_exception_is_recorded_where_it_happened(mesh):
    """An exception in the workflow is recorded as an exception event in order-service"""
    mesh.provider_fails(503)
    await mesh.order()
    spans = mesh.spans()
    mine = find(spans, service="order-service")
    recorded = [s for s in mine if _complete_exception_events(s)]
    expect(recorded, did=PROVIDER_503,
           expected="the workflow's exception (the payment call's 503) recorded with span.record_exception on "
                    "the order-service span where it happened: an 'exception' event with exception.type, "
                    "exception.message and exception.stacktrace",
           saw=f"no such event on any of order-service's {len(mine)} spans", spans=spans)


@check(step=3, criterion="errors-traced", todo="TODO 5", rules=("3.5", "3.19", "3.20"))
async def test_workflow_exception_releases_the_reservation_and_fails_the_order(mesh):
    """After an exception the workflow releases the reservation, marks process_order ERROR and re-raises"""
    mesh.provider_fails(503)
    await mesh.order()
    spans = mesh.spans()
    crossings = mesh.transport.crossings
    payments = [i for i, c in enumerate(crossings) if c.host == "payment-service"]
    releases = [i for i, c in enumerate(crossings) if c.host == "inventory-service" and c.path == "/inventory/release"]
    expect(payments and releases and releases[-1] > payments[-1], did=PROVIDER_503,
           expected="a call to POST /inventory/release after the payment failed, to give the stock back",
           saw=f"calls in order: {[f'{c.host}{c.path}' for c in crossings if c.host.endswith('-service')]}")
    order = [c.status for c in mesh.crossings_to("order-service")]
    expect(order and all(status == 502 for status in order), did=PROVIDER_503,
           expected="order-service to answer 502 (what it answers when the workflow raised: re-raise the exception)",
           saw=f"order-service answered {order}")
    orders = find(spans, service="order-service", name="process_order")
    expect(orders and is_error(orders[0]) and (orders[0].status.description or "").strip(), did=PROVIDER_503,
           expected="process_order's status to be ERROR with a description",
           saw=(f"status {orders[0].status.status_code.name}, description {orders[0].status.description!r}"
                if orders else "no process_order span in order-service"), spans=spans)


@check(step=4, criterion="errors-traced", todo="TODO 7", rules=("4.6", "4.19", "4.14"))
async def test_client_error_status_is_an_error_and_not_retried():
    """A 4xx answer sets ERROR and error.type on the CLIENT span, and is not retried like a 503"""
    telemetry, exporter = make_telemetry("lookup-service")
    router = respx.MockRouter(assert_all_mocked=True)
    route = router.get("http://catalog-service:9100/items/missing").mock(return_value=httpx.Response(404))
    did = "made one GET (an idempotent method) to a host that answers 404"
    async with traced_client(telemetry, router, max_retries=3) as client:
        response = await client.get("http://catalog-service:9100/items/missing")
    telemetry.force_flush()
    spans = list(exporter.get_finished_spans())
    expect(response.status_code == 404 and route.call_count == 1, did=did,
           expected="the 404 returned at once, after a single attempt",
           saw=f"answer {response.status_code}, {route.call_count} attempts", spans=spans)
    clients = [s for s in find(spans, kind=SpanKind.CLIENT) if "http.request.method" in (s.attributes or {})]
    expect(len(clients) == 1, did=did, expected="exactly one CLIENT span for the request",
           saw=f"{len(clients)} CLIENT spans", spans=spans)
    attrs = dict(clients[0].attributes or {})
    shown = {"status": clients[0].status.status_code.name, "error.type": attrs.get("error.type"),
             "http.response.status_code": attrs.get("http.response.status_code")}
    expect(shown == {"status": "ERROR", "error.type": "404", "http.response.status_code": 404}, did=did,
           expected="status ERROR, error.type '404' and http.response.status_code 404 on that span",
           saw=shown, spans=spans)
    router.get("http://catalog-service:9100/items/busy").mock(side_effect=[httpx.Response(503), httpx.Response(200)])
    did = "made one GET to a host that answers 503 (unavailable), then 200"
    exporter.clear()
    async with traced_client(telemetry, router, max_retries=3) as client:
        response = await client.get("http://catalog-service:9100/items/busy")
    telemetry.force_flush()
    spans = list(exporter.get_finished_spans())
    clients = [s for s in find(spans, kind=SpanKind.CLIENT) if "http.request.method" in (s.attributes or {})]
    errors = [("ERROR" if is_error(s) else "not ERROR", (s.attributes or {}).get("error.type")) for s in clients]
    expect(response.status_code == 200 and errors == [("ERROR", "503"), ("not ERROR", None)], did=did,
           expected="the 503 retried, unlike the 404: 2 CLIENT spans, the first ERROR with error.type '503', "
                    "then the 200",
           saw=f"answer {response.status_code}; CLIENT spans (status, error.type): {errors}", spans=spans)
