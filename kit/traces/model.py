"""One span, whatever it came from: the SDK's `ReadableSpan` or a `SpanRecord`-shaped object.

The kit draws traces in several places (the text tree in check failures, the waterfall and
service-map pictures); `view(span)` gives all of them the same plain, read-only shape, with
times in epoch milliseconds, and `views(spans)` drops a span exported twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class SpanView:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    status: str
    description: str
    start: float          # epoch ms
    end: float            # epoch ms
    attributes: Mapping[str, Any]
    events: tuple[tuple[str, float | None, Mapping[str, Any]], ...]   # (name, epoch ms, attrs)


def view(span: Any) -> SpanView:
    if hasattr(span, "get_span_context"):  # an SDK ReadableSpan
        ctx, parent = span.get_span_context(), span.parent
        start = (span.start_time or 0) / 1e6
        end = (span.end_time if span.end_time is not None else span.start_time or 0) / 1e6
        resource = span.resource.attributes if span.resource is not None else {}
        return SpanView(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}",
                     f"{parent.span_id:016x}" if parent is not None else None,
                     str(resource.get("service.name", "?")), span.name, span.kind.name,
                     span.status.status_code.name, span.status.description or "", start, end,
                     dict(span.attributes or {}),
                     tuple((e.name, e.timestamp / 1e6 if e.timestamp else None, dict(e.attributes or {}))
                           for e in span.events))
    events = []
    for event in getattr(span, "events", ()) or ():
        if isinstance(event, (tuple, list)):          # SpanRecord: (name, attributes)
            events.append((str(event[0]), None, dict(event[1] or {}) if len(event) > 1 else {}))
        else:
            events.append((str(getattr(event, "name", event)), None, dict(getattr(event, "attributes", {}) or {})))
    start = float(span.start_ms)
    return SpanView(str(span.trace_id), str(span.span_id), span.parent_span_id, str(span.service),
                 str(span.name), str(span.kind), str(span.status),
                 str(getattr(span, "status_description", "") or ""), start, start + float(span.duration_ms),
                 dict(getattr(span, "attributes", {}) or {}), tuple(events))


def views(spans: Iterable[Any]) -> list[SpanView]:
    seen: dict[tuple[str, str], SpanView] = {}
    for s in map(view, spans):
        seen.setdefault((s.trace_id, s.span_id), s)    # a span exported twice is drawn once
    return sorted(seen.values(), key=lambda s: (s.start, s.end))
