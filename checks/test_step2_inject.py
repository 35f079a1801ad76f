"""Success criterion 2, context propagates: Step 2's `inject_context`, `WorkshopPropagator`,
baggage, correlation ids and trace ids in logs (rules 2.13 to 2.35).

The checks call the functions directly with contexts built through the OpenTelemetry API (a
remote span context, a tracestate, baggage set with `set_baggage_items`), read back the headers
written, and, for what the process-wide propagator does at a service's door, send one request to
a tiny FastAPI app instrumented with a fresh `DistributedTelemetry` (Step 1).
"""
from __future__ import annotations

import asyncio
import contextvars
import re

import httpx
import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags, TraceState

from kit.harness.expect import check, expect, fail
from kit.harness.learner import attr, load
from kit.harness.spans import describe, parent_id
from checks.helpers import baggage_entries, capture_log_events, make_telemetry

CRITERION = "context-propagates"
TC = "services.shared.trace_context"
TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
B3_TRACE, B3_SPAN = "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"


def tc(name: str):
    return attr(TC, name)


def span_context(sampled: bool = True, state: TraceState | None = None, trace: str = TRACE, span: str = SPAN):
    return SpanContext(int(trace, 16), int(span, 16), is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0), trace_state=state or TraceState())


def with_span(sc, context=None):
    return otel_trace.set_span_in_context(NonRecordingSpan(sc), context)


def inject(headers=None, context=None, *, b3=False, did: str):
    try:
        if headers is None and context is None and not b3:
            return tc("inject_context")()
        return tc("inject_context")(headers, context, b3=b3)
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="headers written, no exception", saw=f"{type(exc).__name__}: {exc}")


def lower(headers) -> dict:
    return {k.lower(): v for k, v in dict(headers).items()}


@check(step=2, criterion=CRITERION, todo="TODO 2", rules=("2.13", "2.19"))
def test_inject_writes_traceparent_and_tracestate_into_the_dict_it_returns():
    """inject_context writes traceparent (and tracestate when there is one) into the dict it returns"""
    state = TraceState([("vendor", "workshop"), ("other", "x1")])
    cases = [(span_context(True, state), "01", "vendor=workshop,other=x1"), (span_context(False), "00", None)]
    for sc, flags, tracestate in cases:
        did = f"called inject_context(headers, ctx) for a span {TRACE}-{SPAN} (flags {flags}, tracestate {tracestate})"
        headers = {"Accept": "application/json"}
        returned = inject(headers, with_span(sc), did=did)
        got = lower(headers)
        expect(returned is headers, did=did, expected="the very dict it was given, returned",
               saw=f"a different object: {returned!r}")
        expect(got.get("traceparent") == f"00-{TRACE}-{SPAN}-{flags}" and got.get("accept") == "application/json",
               did=did, expected=f"traceparent: 00-{TRACE}-{SPAN}-{flags}, and Accept left alone", saw=headers)
        written = got.get("tracestate")
        expect((written is None) if tracestate is None else
               (written is not None and [m.strip() for m in written.split(",")] == tracestate.split(",")), did=did,
               expected=f"tracestate: {tracestate}" if tracestate else "no tracestate header", saw=headers)
    did = "called inject_context() with no arguments inside no span"
    clean = otel_context.attach(otel_context.Context())
    try:
        fresh = inject(did=did)
    finally:
        otel_context.detach(clean)
    expect(isinstance(fresh, dict) and "traceparent" not in lower(fresh), did=did,
           expected="a new dict, without traceparent (no valid span)", saw=repr(fresh))
    token = otel_context.attach(with_span(span_context()))
    try:
        did = "called inject_context() with no arguments while a span was current"
        fresh = inject(did=did)
    finally:
        otel_context.detach(token)
    expect(isinstance(fresh, dict) and lower(fresh).get("traceparent") == f"00-{TRACE}-{SPAN}-01", did=did,
           expected=f"a new dict with traceparent 00-{TRACE}-{SPAN}-01 (the current context)", saw=repr(fresh))


@check(step=2, criterion=CRITERION, todo="TODO 3", rules=("2.14", "2.15", "2.24"))
def test_inject_writes_only_the_baggage_that_propagates():
    """baggage is written only when there is some, and only with the keys that propagate"""
    set_baggage_items = tc("set_baggage_items")
    did = "called inject_context({}, ctx) for a span with no baggage"
    plain = inject({}, with_span(span_context()), did=did)
    expect("baggage" not in lower(plain), did=did, expected="no baggage header", saw=plain)
    items = {"user.id": "u-1", "session.id": "s-1", "order.id": "o-1", "feature.new-cart": "on",
             "experiment.price": "b", "secret.token": "hunter2", "userid": "x", "features.x": "y"}
    ctx = set_baggage_items(items, with_span(span_context()))
    did = f"called inject_context({{}}, ctx) with baggage {items}"
    written = lower(inject({}, ctx, did=did)).get("baggage", "")
    keys = set(baggage_entries(written))
    want = {"user.id", "session.id", "order.id", "feature.new-cart", "experiment.price"}
    expect(keys == want, did=did, expected=f"a baggage header with exactly {sorted(want)}",
           saw=f"baggage: {written!r}")
    only_denied = set_baggage_items({"secret.token": "hunter2"}, with_span(span_context()))
    did = "called inject_context({}, ctx) with only baggage secret.token=hunter2 (a key that does not propagate)"
    got = lower(inject({}, only_denied, did=did))
    expect("baggage" not in got or not got["baggage"].strip(), did=did, expected="no baggage header", saw=got)


@check(step=2, criterion=CRITERION, todo="TODO 4", rules=("2.16", "2.17"))
def test_inject_writes_the_correlation_id_only_when_there_is_one_and_never_replaces_it():
    """X-Correlation-ID is written from the context's id or span, only then, and never over one already set"""
    correlation_id = tc("correlation_id")
    cases = [("an empty context", otel_context.Context(), None),
             ("a context holding only correlation id corr-kept (from extract_context)",
              tc("extract_context")({"X-Correlation-ID": "corr-kept"}), "corr-kept"),
             (f"a context with a span of trace {TRACE}", with_span(span_context()), TRACE),
             ("a context with a span and correlation id corr-both",
              tc("extract_context")({"X-Correlation-ID": "corr-both", "traceparent": f"00-{TRACE}-{SPAN}-01"}),
              "corr-both")]
    for what, ctx, want in cases:
        did = f"called inject_context({{}}, ctx) with {what}"
        got = lower(inject({}, ctx, did=did)).get("x-correlation-id")
        expect(got == want, did=did, expected=f"X-Correlation-ID: {want}" if want else "no X-Correlation-ID",
               saw=repr(got))
        if want:
            expect(correlation_id({}, ctx) == want, did=f"called correlation_id({{}}, ctx) with {what}",
                   expected=f"{want!r}, the value inject_context wrote", saw=repr(correlation_id({}, ctx)))
    ctx = with_span(span_context())
    for carrier in ({"X-Correlation-ID": "mine"}, httpx.Headers({"x-correlation-id": "mine"})):
        did = f"called inject_context(headers, ctx) with headers already holding an X-Correlation-ID: {carrier!r}"
        got = inject(carrier, ctx, did=did)
        values = [v for k, v in (got.multi_items() if isinstance(got, httpx.Headers) else got.items())
                  if k.lower() == "x-correlation-id"]
        expect(values == ["mine"], did=did, expected="the existing X-Correlation-ID kept, and no second one",
               saw=f"X-Correlation-ID values: {values}")


@check(step=2, criterion=CRITERION, todo="TODO 2", rules=("2.18",))
def test_b3_true_also_writes_the_single_b3_header():
    """inject_context(b3=True) also writes b3 with the span's ids and decision; b3=False does not"""
    for sampled in (True, False):
        ctx = with_span(span_context(sampled))
        did = f"called inject_context({{}}, ctx, b3=True) for a span {TRACE}-{SPAN}, {'sampled' if sampled else 'not sampled'}"
        got = lower(inject({}, ctx, b3=True, did=did))
        value = got.get("b3", "")
        match = re.fullmatch(r"([0-9a-f]{32}|[0-9a-f]{16})-([0-9a-f]{16})(?:-([01d]))?(?:-[0-9a-f]{16})?", value)
        ok = (match and match[1].rjust(32, "0") == TRACE and match[2] == SPAN
              and match[3] in ((None, "1", "d") if sampled else (None, "0")))
        expect(ok and "traceparent" in got, did=did,
               expected=f"traceparent and b3: {TRACE}-{SPAN}-{'1' if sampled else '0'}", saw=got)
    did = "called inject_context({}, ctx) (b3 not asked for)"
    got = lower(inject({}, with_span(span_context()), did=did))
    expect("b3" not in got and "traceparent" in got, did=did, expected="traceparent, no b3", saw=got)


class _PairsGetter(Getter):
    """Reads a carrier that is a list of (name, value) pairs, names matched exactly."""

    def get(self, carrier, key):
        values = [v for k, v in carrier if k == key]
        return values or None

    def keys(self, carrier):
        return [k for k, _ in carrier]


class _PairsSetter(Setter):
    def set(self, carrier, key, value):
        carrier.append((key, value))


@check(step=2, criterion=CRITERION, todo="TODO 2", rules=("2.20", "2.21", "2.22"))
def test_workshop_propagator_extracts_and_injects_through_its_getter_and_setter():
    """WorkshopPropagator is a TextMapPropagator using the getter and setter it is handed; fields are what it writes"""
    propagator_cls = attr(TC, "WorkshopPropagator")
    propagator = propagator_cls()
    expect(isinstance(propagator, TextMapPropagator), did="built WorkshopPropagator()",
           expected="a TextMapPropagator", saw=type(propagator).__mro__)
    carrier = [("b3", f"{B3_TRACE}-{B3_SPAN}-1"), ("baggage", "user.id=u-5,secret.token=x"),
               ("x-correlation-id", "corr-prop"), ("x-trace-sampling", "always")]
    did = f"called WorkshopPropagator().extract(carrier, getter=...) on a list of pairs {carrier}"
    try:
        ctx = propagator.extract(carrier, getter=_PairsGetter())
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="a context", saw=f"{type(exc).__name__}: {exc}")
    sc = otel_trace.get_current_span(ctx).get_span_context()
    saw = {"parent": f"{sc.trace_id:032x}-{sc.span_id:016x}" if sc.is_valid else None,
           "baggage": tc("get_baggage_items")(ctx), "correlation id": tc("correlation_id")({}, ctx),
           "override": tc("sampling_override")(ctx)}
    want = {"parent": f"{B3_TRACE}-{B3_SPAN}", "baggage": {"user.id": "u-5"}, "correlation id": "corr-prop",
            "override": "always"}
    expect(saw == want, did=did, expected=f"what extract_context finds: {want}", saw=saw)
    ctx = tc("set_baggage_items")({"order.id": "o-5"}, with_span(span_context(state=TraceState([("v", "1")]))))
    written: list = []
    did = "called WorkshopPropagator().inject(carrier, ctx, setter=...) for a span with tracestate and baggage"
    try:
        propagator.inject(written, ctx, setter=_PairsSetter())
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="headers written through the setter", saw=f"{type(exc).__name__}: {exc}")
    names = {k.lower() for k, _ in written}
    want_names = {"traceparent", "tracestate", "baggage", "x-correlation-id"}
    expect(names == want_names, did=did,
           expected=f"exactly {sorted(want_names)} written through our setter (b3 only when asked, never here)",
           saw=written)
    try:
        fields = {f.lower() for f in propagator.fields}
    except Exception as exc:  # noqa: BLE001
        fail(did="read WorkshopPropagator().fields", expected="the header names", saw=f"{type(exc).__name__}: {exc}")
    # Rule 2.21: every header it writes is listed. One it writes only in other contexts (say, an
    # X-Trace-Sampling it forwards) may be listed too; never a B3 header, which it does not write (2.20).
    b3 = {f for f in fields if f == "b3" or f.startswith("x-b3-")}
    expect(want_names <= fields and not b3, did="read WorkshopPropagator().fields",
           expected=f"the headers it writes, in any casing: {sorted(want_names)} (and no B3 header)",
           saw=sorted(fields))


@check(step=2, criterion=CRITERION, todo="TODO 1", rules=("1.12", "2.20", "2.23", "2.27"))
async def test_server_spans_see_what_the_propagator_extracts():
    """An instrumented app's request sees B3, filtered baggage, the correlation id and the override"""
    from fastapi import FastAPI

    telemetry, exporter = make_telemetry("door-service")
    app = FastAPI()

    @app.get("/seen")
    async def seen():
        return {"baggage": tc("get_baggage_items")(), "correlation_id": tc("correlation_id")({}),
                "override": tc("sampling_override")(otel_context.get_current())}

    class Isolated(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.asgi = httpx.ASGITransport(app, raise_app_exceptions=False)

        async def handle_async_request(self, request):
            return await asyncio.get_running_loop().create_task(
                self.asgi.handle_async_request(request), context=contextvars.Context())

    headers = {"B3": f"{B3_TRACE}-{B3_SPAN}-1", "Baggage": "user.id=u-door,secret.token=x",
               "X-Correlation-ID": "corr-door", "X-Trace-Sampling": "always"}
    did = f"instrumented a FastAPI app with instrument_app and sent GET /seen with {headers}"
    try:
        telemetry.instrument_app(app)
        async with httpx.AsyncClient(transport=Isolated(), base_url="http://door-service") as client:
            response = await client.get("/seen", headers=headers)
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="the request to go through", saw=f"{type(exc).__name__}: {exc}")
    telemetry.force_flush()
    spans = list(exporter.get_finished_spans())
    body = response.json() if response.status_code == 200 else response.text
    want = {"baggage": {"user.id": "u-door"}, "correlation_id": "corr-door", "override": "always"}
    expect(body == want, did=did, expected=f"the request's context to hold {want}", saw=body, spans=spans)
    server = [s for s in spans if s.kind == otel_trace.SpanKind.SERVER]
    expect(server and f"{server[0].context.trace_id:032x}" == B3_TRACE and parent_id(server[0]) == B3_SPAN
           and (server[0].attributes or {}).get("user.id") == "u-door"
           and "secret.token" not in (server[0].attributes or {}), did=did,
           expected=f"the SERVER span in trace {B3_TRACE}, child of {B3_SPAN}, with attribute user.id=u-door and no "
                    "secret.token", saw=describe(server[0]) if server else "no SERVER span", spans=spans)


@check(step=2, criterion=CRITERION, todo="TODO 3", rules=("2.26", "2.27"))
def test_set_baggage_items_returns_a_new_context_whose_spans_carry_it():
    """set_baggage_items returns a new context (attaching is the caller's); spans started in it carry the entries"""
    set_baggage_items, get_baggage_items = tc("set_baggage_items"), tc("get_baggage_items")
    telemetry, exporter = make_telemetry("baggage-service")
    did = "called set_baggage_items({'user.id': 'u-9', 'feature.beta': 'on'}) without attaching what it returned"
    clean = otel_context.attach(otel_context.Context())  # whatever ran before, start from an empty context
    try:
        before = get_baggage_items()
        ctx = set_baggage_items({"user.id": "u-9", "feature.beta": "on"})
        after = get_baggage_items()
    finally:
        otel_context.detach(clean)
    expect(get_baggage_items(ctx) == {"user.id": "u-9", "feature.beta": "on"} and before == after == {}, did=did,
           expected="the entries in the returned context only; the current context unchanged",
           saw=f"returned context: {get_baggage_items(ctx)}, current before/after: {before}/{after}")
    more = set_baggage_items({"order.id": "o-9"}, ctx)
    expect(get_baggage_items(more) == {"user.id": "u-9", "feature.beta": "on", "order.id": "o-9"}
           and get_baggage_items(ctx) == {"user.id": "u-9", "feature.beta": "on"}, did=did + ", then added order.id to it",
           expected="a new context with all three; the first one unchanged",
           saw=f"{get_baggage_items(more)}, first {get_baggage_items(ctx)}")
    token = otel_context.attach(more)
    try:
        with telemetry.create_span("outer"):
            with telemetry.create_span("inner"):
                pass
    finally:
        otel_context.detach(token)
    telemetry.force_flush()
    spans = list(exporter.get_finished_spans())
    want = {"user.id": "u-9", "feature.beta": "on", "order.id": "o-9"}
    wrong = [describe(s) for s in spans if {k: (s.attributes or {}).get(k) for k in want} != want]
    expect(len(spans) == 2 and not wrong, did="attached that context and made a span with a child span",
           expected=f"both spans to carry {want} as attributes", saw=f"without them: {wrong or 'no spans'}", spans=spans)


@check(step=2, criterion=CRITERION, todo="TODO 4", rules=("2.29",))
def test_correlation_id_precedence():
    """correlation_id: the sane header, else the id in the context, else its trace id, else a random id"""
    correlation_id, extract = tc("correlation_id"), tc("extract_context")
    kept = extract({"X-Correlation-ID": "corr-ctx", "traceparent": f"00-{TRACE}-{SPAN}-01"})
    traced = with_span(span_context())
    cases = [({"X-Correlation-ID": "corr-header"}, kept, "corr-header", "the header wins"),
             ({"x-correlation-id": "  corr-trimmed "}, kept, ("corr-trimmed", "  corr-trimmed "),
              "the header (sane once trimmed; rule 2.28 does not say whether it comes back trimmed)"),
             ({"X-Correlation-ID": "x" * 129}, kept, "corr-ctx", "a header that is not sane is passed over"),
             ({}, kept, "corr-ctx", "the id kept in the context"),
             ({"X-Correlation-ID": "   "}, traced, TRACE, "no id anywhere: the context's trace id"),
             ({}, traced, TRACE, "the context's trace id")]
    for headers, ctx, want, why in cases:
        got = correlation_id(headers, ctx)
        wanted = want if isinstance(want, tuple) else (want,)
        expect(got in wanted, did=f"called correlation_id({headers!r}, ctx)",
               expected=f"{' or '.join(map(repr, wanted))}: {why}", saw=repr(got))
    token = otel_context.attach(traced)
    try:
        current = correlation_id({})
    finally:
        otel_context.detach(token)
    expect(current == TRACE, did="called correlation_id({}) while a span was current",
           expected=f"the current context's trace id {TRACE}", saw=repr(current))
    empty = otel_context.Context()
    first, second = correlation_id({}, empty), correlation_id({}, empty)
    expect(isinstance(first, str) and first.strip() and first != second, did="called correlation_id({}, Context()) twice",
           expected="a new random id each time (non-empty)", saw=f"{first!r}, {second!r}")


@check(step=2, criterion=CRITERION, todo="TODO 6", rules=("2.34", "2.35"))
def test_trace_ids_reach_the_log_lines_through_the_provided_logging():
    """current_trace_ids names the valid current span; every log line of the provided set-up carries it"""
    current_trace_ids = tc("current_trace_ids")
    telemetry, _ = make_telemetry("logging-service")
    clean = otel_context.attach(otel_context.Context())  # whatever ran before, no span is current here
    try:
        outside = current_trace_ids()
    finally:
        otel_context.detach(clean)
    token = otel_context.attach(otel_trace.set_span_in_context(INVALID_SPAN))
    try:
        invalid = current_trace_ids()
    finally:
        otel_context.detach(token)
    expect(outside == {} and invalid == {}, did="called current_trace_ids() outside any span, then with an invalid span",
           expected="{} both times", saw=f"{outside}, {invalid}")
    token = otel_context.attach(with_span(span_context(sampled=False)))
    try:
        remote = current_trace_ids()
    finally:
        otel_context.detach(token)
    expect(remote == {"trace_id": TRACE, "span_id": SPAN}, did="called current_trace_ids() with a valid (unsampled) "
           "remote span current", expected=f"{{'trace_id': '{TRACE}', 'span_id': '{SPAN}'}}", saw=remote)
    log = structlog.get_logger("checks.logging")
    did = "logged through the provided services/shared/logs.py set-up: once inside a span, once outside"
    with capture_log_events(load("services.shared.logs")) as events:
        clean = otel_context.attach(otel_context.Context())
        try:
            with telemetry.create_span("logged-work") as span:
                sc = span.get_span_context()
                log.info("inside the span", step=1)
            log.info("outside any span")
        finally:
            otel_context.detach(clean)
    want = {"trace_id": f"{sc.trace_id:032x}", "span_id": f"{sc.span_id:016x}"}
    inside = [e for e in events if e.get("event") == "inside the span"]
    after = [e for e in events if e.get("event") == "outside any span"]
    expect(inside and {k: inside[0].get(k) for k in want} == want and inside[0].get("step") == 1, did=did,
           expected=f"the line inside the span to carry {want}", saw=inside or f"events: {events}")
    expect(after and "trace_id" not in after[0] and "span_id" not in after[0], did=did,
           expected="no trace ids on the line outside any span", saw=after or f"events: {events}")
