"""The viewer's own parts, in process and without a browser: the kit's analysis (the contract's
worked example), the OTLP/JSON download (checked against the OTLP protobuf schema), and the
viewer app over a small in-memory store."""
from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from kit.traces.analysis import analyse, critical_path, index, self_times
from kit.traces.model import Span
from kit.live.viewer.server import create_viewer_app
from kit.traces.otlp import to_otlp_json
from kit.live.viewer.store import summarize

T0 = 1_700_000_000_000.0
TRACE = "0af7651916cd43dd8448eb211c80319c"


def span(span_id: str, parent: str | None, start: float, end: float, *, service: str = "svc",
         name: str | None = None, kind: str = "INTERNAL", status: str = "UNSET",
         attributes=None, events=(), trace_id: str = TRACE) -> Span:
    return Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name or span_id,
                service=service, kind=kind, start_ms=T0 + start, duration_ms=end - start,
                status=status, attributes=attributes or {}, events=events)


def worked_example() -> list[Span]:
    """The contract's example: A [0, 100]; B [10, 40] and C [20, 90] under A; D [30, 60] under C."""
    a, b, c, d = ("a" * 16, "b" * 16, "c" * 16, "d" * 16)
    return [span(a, None, 0, 100, name="A", service="api-gateway", kind="SERVER"),
            span(b, a, 10, 40, name="B", service="auth-service", kind="SERVER"),
            span(c, a, 20, 90, name="C", service="order-service", kind="SERVER"),
            span(d, c, 30, 60, name="D", service="order-service")]


def test_the_contracts_worked_example():
    uniq, parent = index(worked_example())
    path = [(seg["name"], seg["start_ms"] - T0, seg["end_ms"] - T0)
            for seg in critical_path(uniq, parent)]
    assert path == [("A", 0, 20), ("C", 20, 30), ("D", 30, 60), ("C", 60, 90), ("A", 90, 100)]
    assert dict(zip([s.name for s in uniq], self_times(uniq, parent))) == {
        "A": 20, "B": 30, "C": 40, "D": 30}


def test_analyse_marks_the_critical_parts_of_each_row():
    result = analyse(worked_example())
    rows = {r["name"]: r for r in result["timeline"]}
    assert [r["name"] for r in result["timeline"]] == ["A", "B", "C", "D"]     # tree order
    assert rows["B"]["critical"] == []
    assert rows["C"]["critical"] == [[20, 30], [60, 90]]
    assert rows["D"]["depth"] == 2
    assert result["bottlenecks"][0]["operation"] == "C"
    assert {(e["caller"], e["callee"]) for e in result["service_map"]} == {
        ("api-gateway", "auth-service"), ("api-gateway", "order-service")}


def test_an_address_alias_names_an_outside_api_in_the_service_map():
    spans = [span("a" * 16, None, 0, 10, service="payment-service", kind="SERVER"),
             span("b" * 16, "a" * 16, 1, 9, service="payment-service", kind="CLIENT",
                  attributes={"server.address": "127.0.0.1", "server.port": 8009})]
    edges = analyse(spans, aliases={"127.0.0.1:8009": "payment-provider"})["service_map"]
    assert edges == [{"caller": "payment-service", "callee": "payment-provider", "calls": 1,
                      "errors": 0}]


def test_the_otlp_download_is_valid_otlp_json():
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = worked_example()
    spans[3] = span("d" * 16, "c" * 16, 30, 60, name="D", service="order-service", status="ERROR",
                    attributes={"n": 3, "ok": True, "ratio": 0.5, "tags": ("x", "y")},
                    events=(("exception", {"exception.type": "ValueError"}),))
    document = to_otlp_json(spans)
    # OTLP/JSON writes ids as hex where the protobuf JSON mapping expects base64: convert,
    # then let protobuf check every field name, enum and type.
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in s:
                        s[key] = base64.b64encode(bytes.fromhex(s[key])).decode()
    request = json_format.Parse(json.dumps(document), ExportTraceServiceRequest())
    services = {rs.resource.attributes[0].value.string_value: rs for rs in request.resource_spans}
    assert set(services) == {"api-gateway", "auth-service", "order-service"}
    d = [s for s in services["order-service"].scope_spans[0].spans if s.name == "D"][0]
    assert d.status.code == 2 and d.trace_id.hex() == TRACE and d.parent_span_id.hex() == "c" * 16
    assert abs(d.end_time_unix_nano - d.start_time_unix_nano - 30_000_000) < 1_000  # float ms
    assert d.events[0].name == "exception"
    assert {a.key for a in d.attributes} == {"n", "ok", "ratio", "tags"}


class _Store:
    """A span store with the two methods the viewer uses."""

    def __init__(self, spans):
        self.spans = spans

    def get_trace(self, trace_id):
        return sorted((s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start_ms)

    def recent_traces(self, limit=50, errors_only=False, min_duration_ms=0.0):
        ids = dict.fromkeys(s.trace_id for s in self.spans)
        out = [summarize(self.get_trace(t)) for t in ids]
        out = [s for s in out if (s["error_count"] or not errors_only)
               and s["duration_ms"] >= min_duration_ms]
        return sorted(out, key=lambda s: s["start_ms"], reverse=True)[:limit]


@pytest.fixture
def client():
    other = "1" * 32
    spans = worked_example() + [
        span("e" * 16, None, 200, 205, trace_id=other, service="api-gateway", kind="SERVER",
             status="ERROR", name="POST /api/orders")]
    return TestClient(create_viewer_app(_Store(spans)))


def test_the_list_page_filters(client):
    page = client.get("/viewer/").text
    assert TRACE in page and "1" * 32 in page
    page = client.get("/viewer/", params={"errors": 1}).text
    assert TRACE not in page and "1" * 32 in page
    page = client.get("/viewer/", params={"min_ms": 50}).text
    assert TRACE in page and "1" * 32 not in page
    assert client.get("/", follow_redirects=False).headers["location"] == "/viewer/"


def test_a_trace_page_and_its_errors(client):
    page = client.get(f"/viewer/traces/{TRACE}")
    assert page.status_code == 200
    assert page.text.count('class="span') >= 4 and 'id="details"' in page.text
    assert client.get("/viewer/traces/" + "2" * 32).status_code == 404
    assert client.get("/viewer/traces/not-a-trace-id").status_code == 422
    otlp = client.get(f"/viewer/traces/{TRACE}/otlp.json")
    assert otlp.headers["content-disposition"] == f'attachment; filename="trace-{TRACE}.json"'
    assert len([s for rs in otlp.json()["resourceSpans"] for ss in rs["scopeSpans"]
                for s in ss["spans"]]) == 4
    api = client.get(f"/viewer/api/traces/{TRACE}").json()
    assert api["span_count"] == 4 and len(api["critical_path"]) == 5
    assert client.get("/viewer/map").status_code == 200
