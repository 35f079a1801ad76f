"""The text tree in check failures (kit/traces/text.py): what a learner reads when a trace is
wrong, so it is pinned here character for character."""
from __future__ import annotations

from types import SimpleNamespace

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from kit.traces.text import render_tree

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_700_000_000_000.0


def record(span_id, parent, service, name, kind, start, duration=1.0, *, trace=TRACE, status="UNSET", events=()):
    return SimpleNamespace(trace_id=trace, span_id=span_id * 16, parent_span_id=parent and parent * 16,
                           name=name, service=service, kind=kind, status=status, start_ms=T0 + start,
                           duration_ms=duration, attributes={}, events=events)


TWO_SERVICES = [
    # given out of order, and the order service's server span exported twice
    record("4", "3", "order-service", "process_order", "INTERNAL", 4, status="ERROR",
           events=(("exception", {"exception.type": "ValueError"}),)),
    record("1", None, "api-gateway", "POST /orders", "SERVER", 0, 20),
    record("5", "1", "api-gateway", "GET auth-service", "CLIENT", 1, 2),
    record("2", "1", "api-gateway", "POST order-service", "CLIENT", 3, 10),
    record("3", "2", "order-service", "POST /orders", "SERVER", 3.5, 9),
    record("3", "2", "order-service", "POST /orders", "SERVER", 3.5, 9),
    record("6", "3", "order-service", "reserve_inventory", "INTERNAL", 5),
]


def test_a_two_service_trace_is_drawn_as_its_tree():
    assert render_tree(TWO_SERVICES) == "\n".join([
        f"trace {TRACE}",
        "  └─ api-gateway: POST /orders [SERVER]",
        "     ├─ api-gateway: GET auth-service [CLIENT]",
        "     └─ api-gateway: POST order-service [CLIENT]",
        "        └─ order-service: POST /orders [SERVER]",
        "           ├─ order-service: process_order [INTERNAL]  ERROR  [exception]",
        "           └─ order-service: reserve_inventory [INTERNAL]",
    ])


def test_a_span_whose_parent_was_not_exported_is_marked():
    # the order service's spans alone: their parent (the gateway's CLIENT span) is elsewhere
    spans = [s for s in TWO_SERVICES if s.service == "order-service"]
    assert render_tree(spans) == "\n".join([
        f"trace {TRACE}",
        "  └─ order-service: POST /orders [SERVER]  (its parent was not exported)",
        "     ├─ order-service: process_order [INTERNAL]  ERROR  [exception]",
        "     └─ order-service: reserve_inventory [INTERNAL]",
    ])


def test_traces_are_drawn_one_after_the_other_in_start_order():
    spans = [record("7", None, "api-gateway", "GET /later", "SERVER", 100, trace=OTHER),
             record("1", None, "api-gateway", "GET /first", "SERVER", 0, status="OK")]
    assert render_tree(spans) == "\n".join([
        f"trace {TRACE}",
        "  └─ api-gateway: GET /first [SERVER]  OK",
        f"trace {OTHER}",
        "  └─ api-gateway: GET /later [SERVER]",
    ])


def test_no_spans_says_what_to_do():
    assert render_tree([]) == "(no spans were exported; until Step 1 wires the exporter, no check can see a trace)"


def test_a_long_tree_is_cut_with_a_note():
    spans = [record("1", None, "api-gateway", "root", "SERVER", 0, 100)]
    spans += [SimpleNamespace(**{**vars(record("1", "1", "api-gateway", f"child {i}", "INTERNAL", 1 + i)),
                                 "span_id": f"{i + 2:016x}"}) for i in range(20)]
    text = render_tree(spans, max_lines=5)
    lines = text.splitlines()
    assert lines == [f"trace {TRACE}",
                     "  └─ api-gateway: root [SERVER]",
                     "     ├─ api-gateway: child 0 [INTERNAL]",
                     "     ├─ api-gateway: child 1 [INTERNAL]",
                     "     ├─ api-gateway: child 2 [INTERNAL]",
                     "  ... 17 more lines"]
    assert len(render_tree(spans).splitlines()) == 22   # the default (60 lines) keeps it whole


def test_sdk_spans_are_drawn_with_their_resources_service_name():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "auth-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("POST /verify", kind=SpanKind.SERVER) as span:
        pass
    provider.shutdown()
    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert render_tree(exporter.get_finished_spans()) == f"trace {trace_id}\n  └─ auth-service: POST /verify [SERVER]"


def test_client_spans_are_drawn_with_their_target():
    spans = [record("1", None, "order-service", "process_order", "INTERNAL", 0, 10),
             record("2", "1", "order-service", "POST", "CLIENT", 1, 5),
             record("3", "1", "order-service", "GET", "CLIENT", 6, 1)]
    spans[1].attributes = {"url.full": "http://inventory-service:8004/inventory/check", "server.address": "inventory-service"}
    spans[2].attributes = {"db.system": "redis", "server.address": "localhost"}
    assert render_tree(spans) == "\n".join([
        f"trace {TRACE}",
        "  └─ order-service: process_order [INTERNAL]",
        "     ├─ order-service: POST inventory-service /inventory/check [CLIENT]",
        "     └─ order-service: GET [CLIENT]",
    ])
