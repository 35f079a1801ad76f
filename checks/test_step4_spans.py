"""Step 4, what every attempt leaves behind: one CLIENT span with the request's attributes and
its error, and the headers that carry the trace. Each check drives `TracedHttpClient` alone on
a scripted fake network (`ScriptedWire`), with calls that are retried, so that "every attempt"
means more than one."""
from __future__ import annotations

import httpx
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from kit.harness.spans import describe, exception_events, find, is_error, span_id, trace_id
from checks.helpers import RecordingSleep, ScriptedWire, baggage_entries, make_telemetry, outcome_name, traced_client

EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")


def _client_spans(exporter) -> list:
    return [s for s in find(exporter.get_finished_spans(), kind=SpanKind.CLIENT)
            if (s.attributes or {}).get("error.type") != "CircuitOpenError"]


def _attempt_spans(exporter) -> list:
    """The CLIENT spans that describe a request (rule 4.4 gives every attempt's span its method)."""
    return [s for s in _client_spans(exporter) if "http.request.method" in (s.attributes or {})]


async def _attempts(script, method="GET", url="http://catalog-service:9100/items", *, max_retries=3,
                    headers=None, service="catalog-client", spans_of=None):
    """One call through a fresh client: (attempt spans, or what `spans_of(exporter)` picks,
    requests on the wire, every span)."""
    telemetry, exporter = make_telemetry(service)
    wire = ScriptedWire(script)
    async with traced_client(telemetry, wire, max_retries=max_retries, failure_threshold=1000) as client:
        try:
            await client.request(method, url, headers=headers or {})
        except NotImplementedError:
            raise
        except Exception:  # noqa: BLE001 - out of retries any error may be raised (4.16): the spans count here
            pass
    telemetry.force_flush()
    return (spans_of or _attempt_spans)(exporter), wire, list(exporter.get_finished_spans())


async def _all_client_spans(script, method):
    """Like `_attempts`, with every CLIENT span but a refusal's, whether or not it names its method."""
    return await _attempts(script, method, spans_of=_client_spans)


def _script_text(script) -> str:
    return ", ".join(outcome_name(o) for o in script)


@check(step=4, criterion="traces-span-services", todo="TODO 1", rules=("4.3", "4.5"))
async def test_every_attempt_is_one_client_span_with_its_resend_count():
    """Every attempt, first or retry, is exactly one CLIENT span; retries carry http.request.resend_count"""
    cases = [("GET", [503, 200], 2), ("PUT", [httpx.ConnectError, 502, 200], 3),
             ("DELETE", [429, httpx.ReadTimeout, 504, 200], 4), ("GET", [503], 4), ("GET", [200], 1)]
    for method, script, attempts in cases:
        spans, wire, every = await _all_client_spans(script, method)
        requests = wire.requests
        did = f"sent one {method} (max_retries=3) that got {_script_text(script)}"
        expect(len(requests) == attempts and len(spans) == attempts, did=did,
               expected=f"{attempts} attempt(s) on the wire and one CLIENT span for each: {attempts} CLIENT span(s)",
               saw=f"{len(spans)} CLIENT span(s) for {len(requests)} request(s)", spans=every)
        counts = [(s.attributes or {}).get("http.request.resend_count") for s in spans]
        want = [None] + list(range(1, len(spans)))
        expect(counts == want, did=did,
               expected=f"http.request.resend_count absent on the first attempt, then 1, 2, ...: {want}",
               saw=f"resend counts {counts}", spans=every)


@check(step=4, criterion="rich-attributes", todo="TODO 3", rules=("4.4",))
async def test_every_attempt_span_describes_its_request():
    """Every attempt's span carries http.request.method, url.full, server.address and the status it got"""
    cases = [("GET", "http://catalog-service:9100/items?page=2", [503, 200]),
             ("PUT", "http://stock-service:9200/stock/prod-1", [httpx.ConnectError, 200]),
             ("DELETE", "https://api.partner.example/v1/holds/7", [503, 404]),
             ("HEAD", "http://catalog-service:9100/items", [503, 204]),
             ("POST", "http://orders-service:9500/orders", [409])]
    for n_case, (method, url, script) in enumerate(cases):
        spans, wire, every = await _attempts(script, method, url)
        did = f"sent {method} {url} (max_retries=3), which got {_script_text(script)}"
        if n_case == 0:
            expect(len(wire.requests) == 2, did=did, expected="2 attempts (the 503 is retried)",
                   saw=f"{len(wire.requests)} attempt(s)", spans=every)
        expect(len(spans) == len(wire.requests), did=did,
               expected=f"one CLIENT span per attempt: {len(wire.requests)}", saw=f"{len(spans)} CLIENT span(s)",
               spans=every)
        want_url = httpx.URL(url)
        for n, (span, outcome) in enumerate(zip(spans, wire.outcomes), start=1):
            attrs = dict(span.attributes or {})
            full = attrs.get("url.full")
            parsed = httpx.URL(full) if isinstance(full, str) else None
            shown = {k: attrs.get(k) for k in ("http.request.method", "url.full", "server.address",
                                               "http.response.status_code")}
            status = outcome if isinstance(outcome, int) else None
            expect(attrs.get("http.request.method") == method and attrs.get("server.address") == want_url.host
                   and parsed is not None and (parsed.host, parsed.port, parsed.path) == (
                       want_url.host, want_url.port, want_url.path)
                   and attrs.get("http.response.status_code") == status,
                   did=did, expected=(f"attempt {n}'s span to carry http.request.method={method!r}, url.full={url!r}, "
                                      f"server.address={want_url.host!r} and "
                                      + (f"http.response.status_code={status}" if status else
                                         f"no http.response.status_code ({outcome_name(outcome)}: no answer came)")),
                   saw=shown, spans=every)


def _error_type_ok(value, outcome) -> bool:
    if isinstance(outcome, int):
        return value == str(outcome)
    return value in (outcome.__name__, f"httpx.{outcome.__name__}")  # rule 4.8: either spelling


@check(step=4, criterion="errors-traced", todo="TODO 7", rules=("4.6", "4.7", "4.8", "4.9"))
async def test_every_failed_attempt_is_an_error_on_its_span():
    """Each failed attempt's span is ERROR with error.type; a transport error also records an exception event"""
    cases = [[httpx.ConnectError, httpx.ReadTimeout, 503, 200], [httpx.RemoteProtocolError, 429, 502, 201],
             [httpx.ConnectTimeout, httpx.WriteError, 504, 302], [400], [401], [404], [409], [422], [500],
             [501], [204]]
    for n_case, script in enumerate(cases):
        spans, wire, every = await _attempts(script, "GET")
        did = f"sent one GET (max_retries=3) that got {_script_text(script)}"
        if n_case == 0:
            expect(len(wire.requests) >= 2, did=did, expected="the ConnectError retried: at least 2 attempts",
                   saw=f"{len(wire.requests)} attempt(s)", spans=every)
        expect(len(spans) == len(wire.requests), did=did,
               expected=f"one CLIENT span per attempt: {len(wire.requests)}", saw=f"{len(spans)} CLIENT span(s)",
               spans=every)
        for n, (span, outcome) in enumerate(zip(spans, wire.outcomes), start=1):
            attrs = dict(span.attributes or {})
            failed = not isinstance(outcome, int) or outcome >= 400
            if not failed:
                expect(not is_error(span) and "error.type" not in attrs, did=did,
                       expected=f"attempt {n} ({outcome}) to be no error: status not ERROR, no error.type",
                       saw=f"{describe(span)}, error.type={attrs.get('error.type')!r}", spans=every)
                continue
            spelled = (repr(str(outcome)) if isinstance(outcome, int)
                       else f"'{outcome.__name__}' (or 'httpx.{outcome.__name__}')")
            expect(is_error(span) and _error_type_ok(attrs.get("error.type"), outcome), did=did,
                   expected=f"attempt {n} ({outcome_name(outcome)}): status ERROR and error.type {spelled}",
                   saw=f"{describe(span)}, error.type={attrs.get('error.type')!r}", spans=every)
            if isinstance(outcome, int):
                continue
            events = [e for e in exception_events(span)
                      if all(str((e.attributes or {}).get(k, "")).strip() for k in EXCEPTION_KEYS)
                      and outcome.__name__ in str((e.attributes or {}).get("exception.type"))]
            expect(events, did=did,
                   expected=f"attempt {n}'s span to record an 'exception' event for {outcome.__name__} "
                            "(exception.type, exception.message, exception.stacktrace)",
                   saw=(f"events {[(e.name, sorted((e.attributes or {}))) for e in span.events]}"
                        if span.events else "no event on it"), spans=every)


@check(step=4, criterion="context-propagates", todo="TODO 2", rules=("4.10", "4.11", "4.12", "4.13"))
async def test_every_attempt_sends_the_trace_headers():
    """Every attempt sends traceparent naming its own span, baggage, X-Correlation-ID and who is calling"""
    inject_context = attr("services.shared.trace_context", "inject_context")
    telemetry, exporter = make_telemetry("checkout-service")
    wire = ScriptedWire([503, httpx.ConnectError, 503, 200])
    did = ("opened a span with baggage user.id=u-7 and, inside it, sent one GET (max_retries=3) from a client named "
           "checkout-service 3.1.4 that got 503, ConnectError, 503, then 200")
    token = otel_context.attach(otel_baggage.set_baggage("user.id", "u-7"))
    try:
        with telemetry.create_span("checkout") as outer:
            step2 = {k.lower(): v for k, v in inject_context({}).items()}
            client_cls = attr("services.shared.http_client", "TracedHttpClient")
            async with client_cls("checkout-service", "3.1.4", telemetry=telemetry,
                                  transport=httpx.MockTransport(wire.async_handler), sleep=RecordingSleep(),
                                  max_retries=3, failure_threshold=1000) as client:
                await client.get("http://cart-service:9300/cart")
    finally:
        otel_context.detach(token)
    telemetry.force_flush()
    every = list(exporter.get_finished_spans())
    spans = _attempt_spans(exporter)
    expect(len(wire.requests) >= 2 and len(spans) == len(wire.requests), did=did,
           expected="the 503 retried (at least 2 attempts on the wire) and one CLIENT span per attempt",
           saw=f"{len(wire.requests)} request(s), {len(spans)} CLIENT span(s)", spans=every)
    want_trace = f"{outer.get_span_context().trace_id:032x}"
    correlation = step2.get("x-correlation-id")
    for n, (request, span) in enumerate(zip(wire.requests, spans), start=1):
        headers = {k.lower(): v for k, v in request.headers.items()}
        parts = headers.get("traceparent", "").split("-")
        expect(len(parts) == 4 and parts[1] == want_trace and parts[2] == span_id(span), did=did,
               expected=f"attempt {n} to send traceparent 00-{want_trace}-{span_id(span)}-.. "
                        f"(this attempt's own CLIENT span, {span_id(span)}, as the parent)",
               saw=f"traceparent: {headers.get('traceparent')!r}", spans=every)
        expect(baggage_entries(headers.get("baggage")).get("user.id") == "u-7", did=did,
               expected=f"attempt {n} to send a baggage header with user.id=u-7",
               saw=f"baggage: {headers.get('baggage')!r}")
        expect(headers.get("x-service-name") == "checkout-service" and headers.get("x-service-version") == "3.1.4",
               did=did, expected=f"attempt {n} to send X-Service-Name: checkout-service and X-Service-Version: 3.1.4",
               saw=f"X-Service-Name: {headers.get('x-service-name')!r}, "
                   f"X-Service-Version: {headers.get('x-service-version')!r}")
        if correlation:
            expect(headers.get("x-correlation-id") == correlation, did=did,
                   expected=f"attempt {n} to send X-Correlation-ID: {correlation} (what Step 2's inject_context "
                            "gives in this trace)",
                   saw=f"X-Correlation-ID: {headers.get('x-correlation-id')!r}")
    expect(all(trace_id(s) == want_trace for s in spans), did=did,
           expected=f"every attempt's span in the caller's trace {want_trace}",
           saw=f"traces {sorted({trace_id(s) for s in spans})}", spans=every)


class _CountingTransport(httpx.AsyncBaseTransport):
    """The transport handed to the client: counts what it sends and how often it is closed."""

    def __init__(self, wire: ScriptedWire) -> None:
        self.wire, self.sent, self.closed = wire, 0, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return await self.wire.async_handler(request)

    async def aclose(self) -> None:
        self.closed += 1


@check(step=4, criterion="traces-span-services", todo="TODO 4", rules=("4.1", "4.2"))
async def test_one_pooled_client_on_the_given_transport():
    """Every attempt goes through the one pooled client on the given transport, closed by async with"""
    telemetry, _ = make_telemetry("pool-service")
    transport = _CountingTransport(ScriptedWire([503, 200, 200, 200]))
    client_cls = attr("services.shared.http_client", "TracedHttpClient")
    did = ("built TracedHttpClient(transport=T) in `async with`, then sent a GET that got 503 then 200, "
           "a POST and a DELETE")
    async with client_cls("pool-service", telemetry=telemetry, transport=transport, sleep=RecordingSleep(),
                          max_retries=2, failure_threshold=1000) as client:
        expect(hasattr(client, "request"), did=did, expected="`async with TracedHttpClient(...) as client` "
               "to give the client", saw=f"client is {type(client).__name__}")
        answers = [(await client.get("http://pool-service:9400/a")).status_code,
                   (await client.post("http://pool-service:9400/b", json={})).status_code,
                   (await client.request("DELETE", "http://pool-service:9400/c")).status_code]
        during = transport.closed
    expect(transport.sent == 4 and answers == [200, 200, 200], did=did,
           expected="4 requests through T (the GET twice, then the POST and the DELETE) and answers [200, 200, 200]",
           saw=f"{transport.sent} request(s) through T, answers {answers}")
    expect(during == 0 and transport.closed >= 1, did=did,
           expected="T kept open while the client lives (one pooled client, not one per call), and closed when "
                    "the `async with` block ends",
           saw=f"T closed {during} time(s) during the calls, {transport.closed} in all")
