"""Success criterion 3, rich attributes: the order workflow's business spans carry the order's
business context, every span carries its service's resource, the HTTP spans follow the stable
HTTP semantic conventions, and every call between services says who made it."""
from __future__ import annotations

import httpx
import respx
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from kit.harness.spans import describe, find, server_spans, service_of
from checks.helpers import make_telemetry

STEPS = ("validate_inventory", "reserve_inventory", "process_payment", "confirm_order")
ITEMS = [{"product_id": "prod-1", "quantity": 1, "price": 29.99},
         {"product_id": "prod-2", "quantity": 1, "price": 49.99},
         {"product_id": "prod-3", "quantity": 1, "price": 9.99}]
TOTAL = 89.97
ORDER = "sent order ord-rich-1 (three items, total 89.97) as user-123 through the gateway"

#: Each call between our services in one successful order: caller, callee host, port, path.
HOPS = [("api-gateway", "auth-service", 8001, "/auth/verify"),
        ("api-gateway", "order-service", 8002, "/orders"),
        ("order-service", "inventory-service", 8004, "/inventory/check"),
        ("order-service", "inventory-service", 8004, "/inventory/reserve"),
        ("order-service", "payment-service", 8005, "/payments/process")]
PROVIDER = "api.payment-provider.example"


def _one(spans, name, did):
    """The single order-service span called `name`, or a failure that says what was found."""
    found = find(spans, service="order-service", name=name)
    expect(len(found) == 1, did=did, expected=f"exactly one {name!r} span in order-service",
           saw=(f"{len(found)} {name!r} spans in order-service" if spans
                else "no spans at all were exported (Step 1: initialize() must export to the given exporter)"),
           spans=spans)
    return found[0]


def _parent(spans, span) -> str:
    """The span's parent, described, or where it is not."""
    found = [s for s in spans if span.parent is not None and s.context.span_id == span.parent.span_id]
    return describe(found[0]) if found else ("none (a root span)" if span.parent is None
                                             else "not among the exported spans")


def _client_spans_to(spans, service, host, path):
    """The CLIENT spans of `service` whose url.full points at `host` and `path`."""
    found = []
    for s in find(spans, service=service, kind=SpanKind.CLIENT):
        url = (s.attributes or {}).get("url.full")
        if isinstance(url, str):
            parsed = httpx.URL(url)
            if parsed.host == host and parsed.path == path:
                found.append(s)
    return found


@check(step=3, criterion="rich-attributes", todo="TODO 1", rules=("3.1", "3.2", "3.3", "3.4"))
async def test_business_spans_are_internal_children_of_process_order(mesh):
    """The workflow's business spans are INTERNAL children of process_order, under the request"""
    response = await mesh.order(order_id="ord-rich-1", items=ITEMS, total_amount=TOTAL)
    spans = mesh.spans()
    expect(response.status_code == 200, did=ORDER, expected="the order to go through (200)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    root = _one(spans, "process_order", ORDER)
    expect(root.kind == SpanKind.INTERNAL, did=ORDER,
           expected="process_order to be an INTERNAL span (the SERVER span is the HTTP request's own)",
           saw=describe(root), spans=spans)
    server = server_spans(spans, "order-service", "/orders")
    expect(server and root.parent is not None and root.parent.span_id == server[0].context.span_id, did=ORDER,
           expected="process_order to be the child of order-service's SERVER span for POST /orders",
           saw=f"its parent is {_parent(spans, root)}",
           spans=spans)
    for name in STEPS:
        step = _one(spans, name, ORDER)
        expect(step.kind == SpanKind.INTERNAL and step.parent is not None
               and step.parent.span_id == root.context.span_id, did=ORDER,
               expected=f"{name} to be an INTERNAL span whose parent is process_order",
               saw=f"{describe(step)}, whose parent is {_parent(spans, step)}",
               spans=spans)
    rollback = find(spans, name="rollback_inventory")
    expect(not rollback, did=ORDER, expected="no rollback_inventory span: the payment went through",
           saw=f"{len(rollback)} rollback_inventory spans", spans=spans)


@check(step=3, criterion="rich-attributes", todo="TODO 3", rules=("3.6",))
async def test_process_order_carries_the_orders_details(mesh):
    """process_order carries order.id, order.user_id, order.total_amount and order.items_count"""
    await mesh.order(order_id="ord-rich-1", items=ITEMS, total_amount=TOTAL)
    spans = mesh.spans()
    attrs = dict(_one(spans, "process_order", ORDER).attributes or {})
    total = attrs.get("order.total_amount")
    want = "order.id='ord-rich-1', order.user_id='user-123', order.total_amount=89.97 (a number), order.items_count=3"
    saw = {k: attrs.get(k) for k in ("order.id", "order.user_id", "order.total_amount", "order.items_count")}
    expect(attrs.get("order.id") == "ord-rich-1" and attrs.get("order.user_id") == "user-123"
           and isinstance(total, (int, float)) and not isinstance(total, bool) and abs(total - TOTAL) < 1e-6
           and attrs.get("order.items_count") == 3, did=ORDER,
           expected=f"process_order's attributes {want}", saw=saw, spans=spans)


@check(step=3, criterion="rich-attributes", todo="TODO 3", rules=("3.7", "3.8", "3.9", "3.11", "3.16"))
async def test_step_spans_carry_what_each_step_found(mesh):
    """Each step span carries its outcome: availability, reservation, payment, confirmation"""
    mesh.provider_succeeds("ch_rich_0042")
    response = await mesh.order(order_id="ord-rich-1", items=ITEMS, total_amount=TOTAL)
    spans = mesh.spans()
    did = ORDER + " (the payment provider answers transaction ch_rich_0042)"
    attrs = {name: dict(_one(spans, name, did).attributes or {}) for name in STEPS}
    available = attrs["validate_inventory"].get("inventory.available")
    expect(available is True, did=did, expected="validate_inventory to carry inventory.available=True (a bool)",
           saw=f"inventory.available={available!r}", spans=spans)
    reservation = attrs["reserve_inventory"].get("reservation.id")
    expect(isinstance(reservation, str) and reservation.strip(), did=did,
           expected="reserve_inventory to carry reservation.id (the id inventory-service returned)",
           saw=f"reservation.id={reservation!r}", spans=spans)
    payment = {k: attrs["process_payment"].get(k) for k in ("payment.status", "payment.transaction_id")}
    expect(payment == {"payment.status": "success", "payment.transaction_id": "ch_rich_0042"}, did=did,
           expected="process_payment to carry payment.status='success' and payment.transaction_id='ch_rich_0042'",
           saw=payment, spans=spans)
    number = response.json().get("confirmation_number") if response.status_code == 200 else None
    confirmation = attrs["confirm_order"].get("confirmation.number")
    expect(number and confirmation == number, did=did,
           expected=f"confirm_order to carry confirmation.number={number!r} (the number in the answer)",
           saw=f"confirmation.number={confirmation!r}", spans=spans)

    before = len(spans)
    empty = "then sent an order for prod-empty (no stock)"
    await mesh.order(order_id="ord-rich-2", items=[{"product_id": "prod-empty", "quantity": 1, "price": 99.0}])
    later = mesh.spans()[before:]
    checked = find(later, service="order-service", name="validate_inventory")
    values = [(s.attributes or {}).get("inventory.available") for s in checked]
    expect(values == [False], did=f"{did}, {empty}",
           expected="that order's validate_inventory span to carry inventory.available=False (a bool)",
           saw=f"inventory.available values: {values}" if values else "no validate_inventory span for it",
           spans=later)


@check(step=1, criterion="rich-attributes", todo="TODO 1", rules=("0.4", "1.2", "1.6"))
async def test_every_span_carries_the_full_resource(make_mesh):
    """Every span carries its service's resource: name, version, environment, namespace, language"""
    sampling_config = attr("services.shared.sampling", "SamplingConfig")
    # An environment name with no sampling ratio of its own falls back to "development" (keep
    # everything), so no trace id can decide what this check sees, whatever `sampling` does.
    mesh = await make_mesh(settings={"environment": "qa", "service_version": "2.4.1"},
                           sampling=sampling_config(ratio=1.0))
    await mesh.order()
    spans = mesh.spans()
    did = "ran the five services as version 2.4.1 in environment 'qa' and sent one order"
    expect(spans, did=did, expected="spans from all five services", saw="no spans were exported", spans=spans)
    keys = ("service.name", "service.version", "deployment.environment", "service.namespace", "telemetry.sdk.language")
    for service in ("api-gateway", "auth-service", "order-service", "inventory-service", "payment-service"):
        want = {"service.name": service, "service.version": "2.4.1", "deployment.environment": "qa",
                "service.namespace": "workshop", "telemetry.sdk.language": "python"}
        mine = [s for s in spans if service_of(s) == service]
        wrong = [{k: (s.resource.attributes if s.resource else {}).get(k) for k in keys} for s in mine]
        wrong = [w for w in wrong if w != want]
        expect(mine and not wrong, did=did, expected=f"every {service} span's resource to hold {want}",
               saw=f"resource {wrong[0]}" if wrong else f"no spans from {service}", spans=spans)


@check(step=1, criterion="rich-attributes", todo="TODO 7", rules=("0.6", "1.13", "1.14"))
async def test_server_spans_follow_the_http_conventions(mesh):
    """SERVER spans carry http.request.method, url.path or http.route and http.response.status_code"""
    await mesh.order()
    spans = mesh.spans()
    did = "sent an order through the gateway"
    for service, path in [("api-gateway", "/api/orders"), *[(host, path) for _, host, _, path in HOPS]]:
        servers = server_spans(spans, service, path)
        expect(servers, did=did,
               expected=f"a SERVER span in {service} for POST {path}",
               saw=f"{service}'s SERVER spans: {[s.name for s in find(spans, service=service, kind=SpanKind.SERVER)]}",
               spans=spans)
        attrs = dict(servers[0].attributes or {})
        shown = {k: attrs.get(k) for k in ("http.request.method", "url.path", "http.route", "http.response.status_code")}
        expect(attrs.get("http.request.method") == "POST" and attrs.get("http.response.status_code") == 200
               and path in (attrs.get("url.path"), attrs.get("http.route")),
               did=did,
               expected=(f"{service}'s SERVER span for {path} to carry the stable names http.request.method='POST', "
                         f"url.path or http.route={path!r}, http.response.status_code=200 "
                         "(instrumented after OTEL_SEMCONV_STABILITY_OPT_IN=http)"),
               saw=shown, spans=spans)


@check(step=4, criterion="rich-attributes", todo="TODO 3", rules=("4.4", "4.3"))
async def test_client_spans_follow_the_http_conventions(mesh):
    """Every attempt's CLIENT span carries http.request.method, url.full, server.address and the status"""
    mesh.provider_fails(503)
    await mesh.order()
    spans = mesh.spans()
    did = ("sent an order through the gateway while the external payment API answers 503 (so order-service's "
           "POST to payment-service, which carries an Idempotency-Key, is retried 3 times)")
    calls = [*[(caller, host, path) for caller, host, _, path in HOPS],
             ("order-service", "inventory-service", "/inventory/release"), ("payment-service", PROVIDER, "/v1/charges")]
    for caller, host, path in calls:
        clients = _client_spans_to(spans, caller, host, path)
        sent = [c for c in mesh.transport.crossings if c.host == host and c.path == path]
        retried = (caller, path) == ("order-service", "/payments/process")
        if not sent and path == "/inventory/release":
            continue  # the release is Step 3's business
        expect(clients and len(clients) == len(sent) and (len(sent) > 1 or not retried), did=did,
               expected=(f"one CLIENT span in {caller} per attempt of its call to {host}{path}, whose url.full is "
                         f"that call" + (" (more than one attempt: the 503 is retried)" if retried else "")),
               saw=f"{len(sent)} request(s) and {len(clients)} such CLIENT span(s); {caller}'s CLIENT spans' url.full: "
                   f"{[(s.attributes or {}).get('url.full') for s in find(spans, service=caller, kind=SpanKind.CLIENT)]}",
               spans=spans)
        for n, (span, crossing) in enumerate(zip(clients, sent), start=1):
            attrs = dict(span.attributes or {})
            shown = {k: attrs.get(k) for k in ("http.request.method", "url.full", "server.address",
                                               "http.response.status_code")}
            expect(attrs.get("http.request.method") == "POST" and attrs.get("server.address") == host
                   and attrs.get("http.response.status_code") == crossing.status, did=did,
                   expected=(f"attempt {n} of {caller}'s call to {host}{path} to carry http.request.method='POST', "
                             f"server.address={host!r}, http.response.status_code={crossing.status}"),
                   saw=shown, spans=spans)


@check(step=4, criterion="rich-attributes", todo="TODO 2", rules=("4.12",))
async def test_every_call_between_services_names_its_caller(make_mesh):
    """Every call between services sends X-Service-Name and X-Service-Version"""
    mesh = await make_mesh(settings={"service_version": "2.4.1"})
    await mesh.order()
    did = "ran the five services as version 2.4.1 and sent one order"
    callers = {host: caller for caller, host, _, _ in HOPS}
    hops = [c for c in mesh.transport.crossings if c.host in callers]
    expect(len(hops) >= len(HOPS), did=did, expected="calls to auth, order, inventory and payment",
           saw=f"calls to {sorted({c.host for c in hops})}")
    wrong = [f"{c.method} {c.host}{c.path}: X-Service-Name={c.headers.get('x-service-name')!r}, "
             f"X-Service-Version={c.headers.get('x-service-version')!r}" for c in hops
             if (c.headers.get("x-service-name"), c.headers.get("x-service-version")) != (callers[c.host], "2.4.1")]
    expect(not wrong, did=did,
           expected="every call between services to carry X-Service-Name = the caller's service name "
                    "(api-gateway, order-service) and X-Service-Version: 2.4.1",
           saw="; ".join(wrong))


@check(step=1, criterion="rich-attributes", todo="TODO 8", rules=("0.6", "1.13", "1.14"))
async def test_instrument_client_makes_client_spans():
    """instrument_client makes a CLIENT span with the service's resource and the stable HTTP names"""
    telemetry, exporter = make_telemetry("catalog-client")
    router = respx.MockRouter(assert_all_mocked=True)
    router.get("http://catalog-service:9100/items").mock(return_value=httpx.Response(200, json=[]))
    did = ("called telemetry.instrument_client(httpx.AsyncClient(...)) for service catalog-client, "
           "then GET http://catalog-service:9100/items (answered 200)")
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        telemetry.instrument_client(client)
        await client.get("http://catalog-service:9100/items")
    telemetry.force_flush()
    spans = list(exporter.get_finished_spans())
    clients = find(spans, kind=SpanKind.CLIENT)
    expect(len(clients) == 1, did=did, expected="exactly one CLIENT span",
           saw=f"{len(clients)} CLIENT spans among {len(spans)} spans", spans=spans)
    span = clients[0]
    expect(service_of(span) == "catalog-client", did=did, expected="the span to carry service.name=catalog-client",
           saw=f"service.name={service_of(span)!r}", spans=spans)
    attrs = dict(span.attributes or {})
    want = {"http.request.method": "GET", "url.full": "http://catalog-service:9100/items",
            "server.address": "catalog-service", "http.response.status_code": 200}
    shown = {k: attrs.get(k) for k in want}
    expect(shown == want, did=did, expected=f"the stable HTTP attributes {want}", saw=shown, spans=spans)
