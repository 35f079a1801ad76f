"""The trace pictures (kit/traces/waterfall.py): a known trace drawn as a waterfall and a service map.

The structure is read back from the SVG (rows, the critical-path class, error and exception
marks, nodes and edges). `test_renders_to_png` turns the pictures into PNG files to look at:
into `WORKSHOP_PICTURES_DIR` when set (e.g. `WORKSHOP_PICTURES_DIR=/tmp/pictures python -m
pytest tests/traces/test_waterfall.py`), else a temporary folder; it skips when `rsvg-convert`
(Debian: librsvg2-bin) is not installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from kit.traces.service_map import service_dependencies, service_map_svg
from kit.traces.waterfall import critical_path, waterfall_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1_700_000_000_000.0
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def record(sid, parent, name, start, end, *, service="order-service", kind="INTERNAL", status="UNSET",
           trace=TRACE, events=(), **attributes):
    return SimpleNamespace(trace_id=trace, span_id=f"{sid:016x}", parent_span_id=f"{parent:016x}" if parent else None,
                           name=name, service=service, kind=kind, start_ms=T0 + start, duration_ms=end - start,
                           status=status, attributes=attributes, events=events)


def known_trace():
    """The contract's worked example (A [0,100]; B [10,40] and C [20,90] under A; D [30,60]
    under C) spread over services, with a failing external call inside D."""
    return [
        record(1, None, "A", 0, 100, service="api-gateway", kind="SERVER"),
        record(2, 1, "B", 10, 40, service="auth-service", kind="SERVER"),
        record(3, 1, "C", 20, 90),
        record(4, 3, "D", 30, 60, service="payment-service", status="ERROR",
               events=(("exception", {"exception.type": "ConnectError", "exception.message": "refused"}),)),
        record(5, 4, "POST", 35, 55, service="payment-service", kind="CLIENT", status="ERROR",
               **{"server.address": "api.payment-provider.example", "url.full": "https://api.payment-provider.example/v1"}),
        record(6, 3, "GET", 22, 24, kind="CLIENT", **{"db.system": "redis", "db.statement": "GET ?"}),
    ]


def rows(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if "span" in g.get("class", "").split()]


def classes(row: ET.Element) -> set[str]:
    return set(row.get("class", "").split())


def test_rows_are_the_spans_in_tree_order():
    svg = waterfall_svg(known_trace())
    ids = [r.get("data-span-id") for r in rows(svg)]
    assert ids == [f"{i:016x}" for i in (1, 2, 3, 6, 4, 5)]   # children under parents, by start
    names = [r.find(f"{SVG}text[2]") for r in rows(svg)]
    assert all(n is not None for n in names)
    assert "api-gateway" in svg and "ms</text>" in svg        # legend and time axis


def test_the_critical_path_is_marked_on_the_right_spans():
    by_id = {r.get("data-span-id"): r for r in rows(waterfall_svg(known_trace()))}
    critical = {sid for sid, r in by_id.items() if "critical" in classes(r)}
    # A 0-20, C 20-22, GET 22-24, C 24-30, D 30-35, POST 35-55, D 55-60, C 60-90, A 90-100:
    # B is off the path (C overlaps it and ends later).
    assert critical == {f"{i:016x}" for i in (1, 3, 4, 5, 6)}
    assert [(s["name"], s["start_ms"] - T0) for s in critical_path(known_trace())] == [
        ("A", 0), ("C", 20), ("GET", 22), ("C", 24), ("D", 30), ("POST", 35), ("D", 55), ("C", 60), ("A", 90)]
    # Each span's time on the path is one stripe: a parent's covers its children's pieces too.
    stripes = {sid: [(round(float(s.get("x")), 1), round(float(s.get("width")), 1)) for s in r.iter(f"{SVG}rect")
                     if s.get("class") == "critical-segment"] for sid, r in by_id.items()}
    assert {sid: len(v) for sid, v in stripes.items() if v} == {sid: 1 for sid in critical}
    bar = {sid: next(float(e.get("width")) for e in r.iter(f"{SVG}rect") if e.get("class") == "bar")
           for sid, r in by_id.items()}
    assert abs(stripes[f"{1:016x}"][0][1] - bar[f"{1:016x}"]) < 0.2     # A waits the whole time
    assert abs(stripes[f"{4:016x}"][0][1] - bar[f"{4:016x}"]) < 0.2     # D too, its child POST included


def test_a_parent_whose_time_is_all_its_childs_is_marked():
    """process_payment waits for its CLIENT call for its whole duration: no piece of its own is
    on the path, yet it is on the path (the welcome notebook's example)."""
    spans = [record(1, None, "process_order", 0, 100), record(2, 1, "process_payment", 10, 90),
             record(3, 2, "POST", 10, 90, kind="CLIENT", **{"url.full": "http://payment-service:8005/payments/process"})]
    assert "process_payment" not in {s["name"] for s in critical_path(spans)}
    critical = {r.get("data-span-id") for r in rows(waterfall_svg(spans)) if "critical" in classes(r)}
    assert critical == {f"{i:016x}" for i in (1, 2, 3)}


def test_the_contract_worked_example_critical_path():
    spans = [record(1, None, "A", 0, 100), record(2, 1, "B", 10, 40), record(3, 1, "C", 20, 90),
             record(4, 3, "D", 30, 60)]
    path = [(s["name"], s["start_ms"] - T0, s["end_ms"] - T0) for s in critical_path(spans)]
    assert path == [("A", 0, 20), ("C", 20, 30), ("D", 30, 60), ("C", 60, 90), ("A", 90, 100)]


def test_errors_and_exceptions_are_marked():
    svg = waterfall_svg(known_trace())
    by_id = {r.get("data-span-id"): r for r in rows(svg)}
    errors = {sid for sid, r in by_id.items() if "error" in classes(r)}
    assert errors == {f"{4:016x}", f"{5:016x}"}
    for sid in errors:
        bar = next(e for e in by_id[sid].iter(f"{SVG}rect") if e.get("class") == "bar")
        assert bar.get("stroke") == "#d62728"
        assert "✗" in "".join(by_id[sid].itertext())
    exception = [p for p in ET.fromstring(svg).iter(f"{SVG}path") if p.get("class") == "exception"]
    assert len(exception) == 1
    assert "ConnectError: refused" in "".join(exception[0].itertext())


def test_a_learners_critical_path_can_be_drawn_instead():
    mine = [{"span_id": f"{2:016x}", "start_ms": T0 + 10, "end_ms": T0 + 40}]
    critical = [r.get("data-span-id") for r in rows(waterfall_svg(known_trace(), critical_path=mine))
                if "critical" in classes(r)]
    assert critical == [f"{1:016x}", f"{2:016x}"]     # B, and A that waits for it


def test_several_traces_and_orphans():
    spans = known_trace() + [record(9, 77, "POST /inventory/check", 40, 50, service="inventory-service",
                                    kind="SERVER", trace="ab" * 16)]
    svg = waterfall_svg(spans)
    headers = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("class") == "trace-header"]
    assert [h.get("data-trace-id") for h in headers] == [TRACE, "ab" * 16]
    orphan = [r for r in rows(svg) if "orphan" in classes(r)]
    assert [r.get("data-span-id") for r in orphan] == [f"{9:016x}"]


def test_no_spans_and_many_spans():
    assert "No spans were exported" in waterfall_svg([])
    many = [record(1, None, "root", 0, 1000)] + [record(i, 1, f"step {i}", i, i + 1) for i in range(2, 400)]
    svg = waterfall_svg(many, max_rows=50)
    assert len(rows(svg)) == 50 and "349 more rows" in svg


def test_sdk_spans_are_drawn_too():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "order-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("process_order", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("process_payment") as span:
            span.record_exception(ValueError("declined"))
            span.set_status(Status(StatusCode.ERROR, "payment failed"))
    spans = exporter.get_finished_spans()
    svg = waterfall_svg(spans)
    assert [("error" in classes(r)) for r in rows(svg)] == [False, True]
    assert "ValueError: declined" in svg and "payment failed" in svg
    assert service_dependencies(spans) == []


def test_service_map_nodes_and_edges():
    svg = service_map_svg(known_trace())
    root = ET.fromstring(svg)
    nodes = {g.get("data-name"): g.get("class") for g in root.iter(f"{SVG}g") if "node" in g.get("class", "")}
    assert nodes == {"api-gateway": "node service", "auth-service": "node service",
                     "order-service": "node service", "payment-service": "node service",
                     "redis": "node database", "api.payment-provider.example": "node external"}
    edges = {(g.get("data-caller"), g.get("data-callee")): g.get("class")
             for g in root.iter(f"{SVG}g") if "edge" in g.get("class", "")}
    assert edges[("order-service", "payment-service")] == "edge error"
    assert edges[("payment-service", "api.payment-provider.example")] == "edge error"
    assert edges[("api-gateway", "auth-service")] == "edge"
    assert {(e["caller"], e["callee"]): (e["calls"], e["errors"]) for e in service_dependencies(known_trace())} == {
        ("api-gateway", "auth-service"): (1, 0), ("api-gateway", "order-service"): (1, 0),
        ("order-service", "payment-service"): (1, 1), ("order-service", "redis"): (1, 0),
        ("payment-service", "api.payment-provider.example"): (1, 1)}
    assert "No spans were exported" in service_map_svg([])


def test_renders_to_png(tmp_path):
    converter = shutil.which("rsvg-convert")
    if converter is None:
        pytest.skip("rsvg-convert is not installed (apt-get install librsvg2-bin)")
    folder = Path(os.environ.get("WORKSHOP_PICTURES_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for name, svg in (("waterfall", waterfall_svg(known_trace())), ("service-map", service_map_svg(known_trace()))):
        source, picture = folder / f"{name}.svg", folder / f"{name}.png"
        source.write_text(svg, encoding="utf-8")
        subprocess.run([converter, str(source), "-o", str(picture)], check=True, timeout=60)
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
