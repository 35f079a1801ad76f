"""A trace as OTLP/JSON: the file format of the OpenTelemetry file exporter, which Jaeger UI
(1.55 and later: "Search" -> "Upload") and other OpenTelemetry tools open.

`to_otlp_json(spans)` returns `{"resourceSpans": [...]}`: one resource per service (its
`service.name`, and `service.namespace` = "workshop"), ids as lowercase hex, times as strings
of nanoseconds since the epoch, kinds and status codes as the protocol's numbers, attribute
values as typed `AnyValue`s (as the OTLP/JSON mapping asks). An event keeps its time when it has
one (a `SpanRecord` keeps only names and attributes: such an event is given its span's end time).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kit.traces.model import event_fields

KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
SCOPE = {"name": "workshop-kit.live.viewer", "version": "1"}


def any_value(value: Any) -> dict[str, Any]:
    """An attribute value as an OTLP/JSON `AnyValue` (64-bit ints are strings, as in JSON)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": "" if value is None else str(value)}


def key_values(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v)} for k, v in (attributes or {}).items()]


def _nanos(ms: float) -> str:
    return str(int(round(ms * 1_000_000)))


def span_to_otlp(span: Any) -> dict[str, Any]:
    """One span (shaped like the provided `SpanRecord`) as an OTLP/JSON `Span`."""
    end = span.start_ms + span.duration_ms
    out: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": KINDS.get(span.kind, 0),
        "startTimeUnixNano": _nanos(span.start_ms),
        "endTimeUnixNano": _nanos(end),
        "attributes": key_values(span.attributes),
        "events": [{"timeUnixNano": _nanos(end if when is None else when), "name": name,
                    "attributes": key_values(attrs)}
                   for name, when, attrs in map(event_fields, getattr(span, "events", ()) or ())],
        "status": {"code": STATUS_CODES.get(span.status, 0)},
    }
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id
    description = getattr(span, "status_description", None)
    if description and span.status == "ERROR":
        out["status"]["message"] = description
    return out


def to_otlp_json(spans: Iterable[Any], *, namespace: str = "workshop") -> dict[str, Any]:
    """The spans as one OTLP/JSON `ExportTraceServiceRequest`, grouped by service."""
    by_service: dict[str, list[Any]] = {}
    for span in sorted(spans, key=lambda s: s.start_ms):
        by_service.setdefault(span.service, []).append(span)
    return {"resourceSpans": [
        {"resource": {"attributes": key_values({"service.name": service,
                                                 "service.namespace": namespace})},
         "scopeSpans": [{"scope": SCOPE, "spans": [span_to_otlp(s) for s in group]}]}
        for service, group in by_service.items()]}
