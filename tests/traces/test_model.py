"""The one span model (kit/traces/model.py): a `Span` from the SDK's ReadableSpan, from a
SpanRecord-shaped object or from a `Span`; a span exported twice kept once; traces grouped and
walked parents first, siblings in start order, never looping."""
from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags, set_span_in_context

from kit.traces.model import Span, by_trace, roots_and_children, view, views, walk

TRACE = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_700_000_000_000.0


def record(span_id, parent=None, *, start=0.0, duration=10.0, trace=TRACE, **extra):
    """A SpanRecord-shaped object (the fields of the trees' `SpanRecord`, nothing else)."""
    fields = dict(trace_id=trace, span_id=span_id, parent_span_id=parent, name=f"op-{span_id}",
                  service="order-service", kind="INTERNAL", status="UNSET", start_ms=T0 + start,
                  duration_ms=duration, attributes={}, events=())
    fields.update(extra)
    return SimpleNamespace(**fields)


@pytest.fixture
def exported():
    """Two SDK spans of one trace (a SERVER span and its CLIENT child) and one whose parent is remote."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "api-gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    before_ms = time.time() * 1000
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": "POST"}) as server:
        with tracer.start_as_current_span("POST order-service", kind=SpanKind.CLIENT) as client:
            client.set_status(Status(StatusCode.ERROR, "upstream said 503"))
            client.record_exception(RuntimeError("boom"))
    remote = SpanContext(int(TRACE, 16), 0x00f067aa0ba902b7, is_remote=True, trace_flags=TraceFlags(1))
    with tracer.start_as_current_span("GET /health", context=set_span_in_context(NonRecordingSpan(remote))):
        pass
    after_ms = time.time() * 1000
    provider.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    return SimpleNamespace(spans=spans, server=server, client=client, before_ms=before_ms, after_ms=after_ms)


def test_a_readable_span_becomes_a_span(exported):
    server = view(exported.spans["POST /orders"])
    client = view(exported.spans["POST order-service"])
    ctx = exported.server.get_span_context()
    assert server.trace_id == f"{ctx.trace_id:032x}" and len(server.trace_id) == 32
    assert server.span_id == f"{ctx.span_id:016x}" and len(server.span_id) == 16
    assert server.parent_span_id is None and client.parent_span_id == server.span_id
    assert client.trace_id == server.trace_id
    assert (server.service, server.name, server.kind, server.status) == ("api-gateway", "POST /orders", "SERVER", "UNSET")
    assert (client.kind, client.status, client.status_description) == ("CLIENT", "ERROR", "upstream said 503")
    assert server.attributes == {"http.request.method": "POST"}
    # epoch milliseconds, the child inside its parent
    assert exported.before_ms - 1 <= server.start_ms <= client.start_ms <= client.end_ms <= server.end_ms <= exported.after_ms + 1
    assert server.end_ms == server.start_ms + server.duration_ms
    (name, at_ms, attributes), = client.events
    assert name == "exception" and attributes["exception.type"] == "RuntimeError"
    assert client.start_ms <= at_ms <= client.end_ms


def test_a_span_whose_parent_is_remote_keeps_the_remote_parent_id(exported):
    span = view(exported.spans["GET /health"])
    assert span.trace_id == TRACE and span.parent_span_id == "00f067aa0ba902b7"


def test_a_span_record_becomes_a_span():
    span = view(record("b7ad6b7169203331", "00f067aa0ba902b7", start=5, duration=20, kind="SERVER", status="ERROR",
                       attributes={"order.id": "o-1"}, events=(("exception", {"exception.type": "ValueError"}),),
                       status_description="out of stock"))
    assert span == Span(trace_id=TRACE, span_id="b7ad6b7169203331", parent_span_id="00f067aa0ba902b7",
                        name="op-b7ad6b7169203331", service="order-service", kind="SERVER", status="ERROR",
                        status_description="out of stock", start_ms=T0 + 5, duration_ms=20.0,
                        attributes={"order.id": "o-1"}, events=(("exception", None, {"exception.type": "ValueError"}),))
    assert span.end_ms == T0 + 25


def test_a_span_record_without_the_optional_fields():
    bare = SimpleNamespace(trace_id=TRACE, span_id="a" * 16, parent_span_id=None, name="n", service="s",
                           kind="INTERNAL", status="UNSET", start_ms=1, duration_ms=2)
    span = view(bare)
    assert (span.attributes, span.events, span.status_description) == ({}, (), "")
    assert isinstance(span.start_ms, float) and isinstance(span.duration_ms, float)


def test_a_span_is_plain_frozen_data_and_its_own_view():
    span = view(record("a" * 16))
    assert view(span) is span
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.name = "changed"  # type: ignore[misc]
    assert hash(span) == hash(view(record("a" * 16, name="another name")))


def test_a_span_exported_twice_is_kept_once_and_spans_come_in_start_order(exported):
    sdk = list(exported.spans.values())
    spans = views([record("c" * 16, start=30), *sdk, record("a" * 16, start=10, duration=5),
                   record("b" * 16, start=10, duration=1), *sdk, record("c" * 16, start=30, name="again")])
    assert len(spans) == 3 + len(sdk)
    assert len({(s.trace_id, s.span_id) for s in spans}) == len(spans)
    assert [s.start_ms for s in spans] == sorted(s.start_ms for s in spans)
    ours = [s for s in spans if s.trace_id == TRACE and s.service == "order-service"]
    assert [s.span_id for s in ours] == ["b" * 16, "a" * 16, "c" * 16]   # same start: the shorter first
    assert next(s for s in ours if s.span_id == "c" * 16).name == "op-" + "c" * 16  # the first export kept


def test_spans_are_grouped_by_trace_traces_in_start_order():
    late = "1" * 32
    spans = views([record("a" * 16, trace=late, start=50), record("b" * 16, start=20),
                   record("c" * 16, trace=late, start=60), record("d" * 16, start=0)])
    groups = by_trace(spans)
    assert [[s.span_id for s in g] for g in groups] == [["d" * 16, "b" * 16], ["a" * 16, "c" * 16]]
    assert by_trace([]) == []


def test_walk_goes_parents_first_siblings_in_start_order():
    #   root ── first ── grandchild
    #        └─ second
    #   orphan (its parent is not among the spans)
    trace = views([record("2" * 16, "1" * 16, start=30, name="second"),
                   record("1" * 16, None, start=0, duration=100, name="root"),
                   record("4" * 16, "3" * 16, start=15, name="grandchild"),
                   record("3" * 16, "1" * 16, start=10, name="first"),
                   record("5" * 16, "f" * 16, start=5, name="orphan")])
    walked = [(s.name, path) for s, path in walk(trace)]
    assert walked == [("root", (False,)),
                      ("first", (False, False)),
                      ("grandchild", (False, False, True)),
                      ("second", (False, True)),
                      ("orphan", (True,))]
    roots, kids = roots_and_children(trace)
    assert [r.name for r in roots] == ["root", "orphan"]
    assert [k.name for k in kids["1" * 16]] == ["first", "second"]


def test_walk_draws_a_cycle_of_parent_links_once_and_ends():
    trace = views([record("a" * 16, "b" * 16, start=0), record("b" * 16, "a" * 16, start=1),
                   record("c" * 16, "c" * 16, start=2)])   # two spans each other's parent; one its own
    walked = [s.span_id for s, _ in walk(trace)]
    assert sorted(walked) == ["a" * 16, "b" * 16, "c" * 16]


def test_walk_of_a_deep_trace_does_not_recurse():
    depth = 1500   # deeper than the recursion limit
    trace = views([record(f"{i:016x}", f"{i - 1:016x}" if i else None, start=i) for i in range(depth)])
    walked = list(walk(trace))
    assert len(walked) == depth and len(walked[-1][1]) == depth


def test_client_spans_are_labelled_with_their_target():
    from kit.traces.model import span_label

    def client(name, **attributes):
        return Span(trace_id="ab" * 16, span_id="01" * 8, name=name, service="order-service",
                    kind="CLIENT", start_ms=0.0, duration_ms=1.0, attributes=attributes)

    assert span_label(client("POST", **{"url.full": "http://inventory-service:8004/inventory/check?x=1"})) \
        == "POST inventory-service /inventory/check"
    assert client("POST", **{"server.address": "api.payment-provider.example",
                             "url.full": "https://api.payment-provider.example/v1/charges"}).label \
        == "POST api.payment-provider.example /v1/charges"
    assert span_label(client("GET", **{"server.address": "payment-service"})) == "GET payment-service"
    assert span_label(client("SELECT", **{"db.system": "sqlite", "server.address": "db"})) == "SELECT"
    assert span_label(client("POST inventory-service /inventory/check",
                             **{"url.full": "http://inventory-service:8004/inventory/check"})) \
        == "POST inventory-service /inventory/check"
    server = Span(trace_id="ab" * 16, span_id="02" * 8, name="POST /orders", service="order-service",
                  kind="SERVER", start_ms=0.0, duration_ms=1.0, attributes={"url.full": "http://x/orders"})
    assert span_label(server) == "POST /orders"
