"""Pictures and tables of spans: `show_trace` (the waterfall, critical path highlighted),
`show_service_map` (who called whom, with call and error counts), `trace_picture` (the
waterfall as an object), `show_table` (rows of dicts), and the spans regrouped: `traces`
(by trace id) and `records` (as the tree's `SpanRecord`s, what Step 5's functions take).

They take SDK spans, SpanRecords, an `OrderRun` or `Orders`. `example_trace()` is a made-up
trace to draw before the learner's services export anything. The drawing itself is
`kit.traces.waterfall`.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterable

from kit.notebook.display import _display, _display_html
from kit.notebook.tree import current_tree
from kit.traces.service_map import service_map_svg
from kit.traces.waterfall import waterfall_svg


def _spans_of(spans: Any) -> list:
    return list(getattr(spans, "spans", spans) or [])


@dataclass
class TracePicture:
    """An SVG picture that Jupyter shows inline (`.svg` holds the markup)."""

    svg: str
    text: str = ""

    def _repr_html_(self) -> str:
        return f'<div style="overflow-x:auto">{self.svg}</div>'

    def __repr__(self) -> str:
        return self.text or "<TracePicture>"


def trace_picture(spans: Any, *, critical_path: Iterable[dict] | None = None, title: str | None = None,
                  max_rows: int = 200) -> TracePicture:
    """The waterfall of `spans` (SDK spans, SpanRecords, an OrderRun or Orders) as a picture."""
    from kit.traces.text import render_tree

    found = _spans_of(spans)
    return TracePicture(waterfall_svg(found, critical_path=critical_path, title=title, max_rows=max_rows),
                        render_tree(found))


def show_trace(spans: Any, *, critical_path: Iterable[dict] | None = None, title: str | None = None,
               max_rows: int = 200) -> None:
    """Draw the spans as a waterfall: a row per span, coloured by service, errors in red, the
    critical path as a dark stripe (pass `critical_path=` to show your own instead)."""
    _display(trace_picture(spans, critical_path=critical_path, title=title, max_rows=max_rows))


def show_service_map(spans: Any, *, edges: Iterable[dict] | None = None, title: str | None = None) -> None:
    """Draw which service called which (and which database or outside API), with counts."""
    found = _spans_of(spans)
    _display(TracePicture(service_map_svg(found, edges=edges, title=title)))


def labels(spans: Any) -> dict[str, str]:
    """Span id -> the name to show for it: a CLIENT span's name with its target
    (`POST inventory-service /inventory/check`; `kit.traces.model.span_label`)."""
    from kit.traces.model import views

    return {v.span_id: v.label for v in views(_spans_of(spans))}


def traces(spans: Any) -> dict[str, list]:
    """The spans (SDK spans, an OrderRun or Orders) grouped by trace id, each in start order,
    the traces in order of their first span."""
    found = sorted(_spans_of(spans), key=lambda s: s.start_time or 0)
    grouped: dict[str, list] = {}
    for span in found:
        grouped.setdefault(f"{span.context.trace_id:032x}", []).append(span)
    return grouped


def records(spans: Any) -> list:
    """The spans as the tree's `SpanRecord`s (what Step 5's functions take)."""
    current_tree()
    from services.shared.span_store import SpanRecord

    return [s if isinstance(s, SpanRecord) else SpanRecord.from_span(s) for s in _spans_of(spans)]


def show_table(rows: Iterable[dict] | None, columns: list[str] | None = None, *, title: str | None = None,
               limit: int = 40) -> None:
    """Rows of dicts as a small HTML table (floats rounded; at most `limit` rows)."""
    from kit.notebook.display import table_html

    _display_html((f"<b>{html.escape(title)}</b>" if title else "") + " " + table_html(rows, columns, limit=limit))


#: Where to read more, and the kit's other ways to look at traces (the notebooks link them).
LINKS = {
    "OpenTelemetry Python": "https://opentelemetry.io/docs/languages/python/",
    "OpenTelemetry concepts: traces and spans": "https://opentelemetry.io/docs/concepts/signals/traces/",
    "OpenTelemetry context propagation": "https://opentelemetry.io/docs/concepts/context-propagation/",
    "OpenTelemetry sampling": "https://opentelemetry.io/docs/concepts/sampling/",
    "HTTP semantic conventions": "https://opentelemetry.io/docs/specs/semconv/http/http-spans/",
    "W3C Trace Context": "https://www.w3.org/TR/trace-context/",
    "W3C Baggage": "https://www.w3.org/TR/baggage/",
    "B3 propagation": "https://github.com/openzipkin/b3-propagation",
    "The live trace viewer": "http://127.0.0.1:8000/viewer/",
}


def show_retries(run: Any, *, title: str = "Backoff sleeps, by the service that retried") -> None:
    """The retries' backoff sleeps of a run (`OrderRun`), grouped by the service whose HTTP
    client slept, one row per retried call (a new call starts when the sleep stops growing):
    each call's sleeps should double (0.1, 0.2, 0.4 s)."""
    rows = []
    for caller, sleeps in (getattr(run, "retries", {}) or {}).items():
        calls: list[list[float]] = []
        for seconds in sleeps:
            if not calls or seconds <= calls[-1][-1]:
                calls.append([])
            calls[-1].append(seconds)
        rows += [{"caller": caller, "retried call": i, "retries": len(call),
                  "sleeps (s), in order": ", ".join(f"{x:g}" for x in call)} for i, call in enumerate(calls, 1)]
    show_table(rows, title=title)


def example_trace() -> list:
    """A made-up trace of one order whose payment is slow (SpanRecord-shaped objects), to show
    what the pictures look like before your services export anything."""
    from types import SimpleNamespace

    tid, t0, spans = "4bf92f3577b34da6a3ce929d0e0e4736", 1_700_000_000_000.0, []

    def add(sid, parent, service, name, kind, start, duration, status="UNSET", **attrs):
        spans.append(SimpleNamespace(trace_id=tid, span_id=f"{sid:016x}", parent_span_id=f"{parent:016x}" if parent else None,
                                     name=name, service=service, kind=kind, start_ms=t0 + start,
                                     duration_ms=duration, status=status, attributes=attrs, events=()))
    add(1, None, "api-gateway", "POST /api/orders", "SERVER", 0, 262)
    add(2, 1, "api-gateway", "POST", "CLIENT", 2, 14, **{"url.full": "http://auth-service:8001/auth/verify"})
    add(3, 2, "auth-service", "POST /auth/verify", "SERVER", 4, 10)
    add(4, 1, "api-gateway", "POST", "CLIENT", 18, 240, **{"url.full": "http://order-service:8002/orders"})
    add(5, 4, "order-service", "POST /orders", "SERVER", 20, 236)
    add(6, 5, "order-service", "GET", "CLIENT", 22, 2, **{"db.system": "redis", "db.statement": "GET ?"})
    add(7, 5, "order-service", "process_order", "INTERNAL", 26, 228)
    add(8, 7, "order-service", "validate_inventory", "INTERNAL", 28, 18)
    add(9, 8, "order-service", "POST", "CLIENT", 29, 16, **{"url.full": "http://inventory-service:8004/inventory/check"})
    add(10, 9, "inventory-service", "POST /inventory/check", "SERVER", 31, 12)
    add(11, 10, "inventory-service", "SELECT", "CLIENT", 33, 3, **{"db.system": "sqlite", "db.statement": "SELECT on_hand FROM stock WHERE product_id = ?"})
    add(12, 7, "order-service", "reserve_inventory", "INTERNAL", 48, 22)
    add(13, 12, "order-service", "POST", "CLIENT", 49, 20, **{"url.full": "http://inventory-service:8004/inventory/reserve"})
    add(14, 13, "inventory-service", "POST /inventory/reserve", "SERVER", 51, 16)
    add(15, 14, "inventory-service", "UPDATE", "CLIENT", 54, 5, **{"db.system": "sqlite", "db.statement": "UPDATE stock SET on_hand = on_hand - ?"})
    add(16, 7, "order-service", "process_payment", "INTERNAL", 72, 170)
    add(17, 16, "order-service", "POST", "CLIENT", 73, 168, **{"url.full": "http://payment-service:8005/payments/process"})
    add(18, 17, "payment-service", "POST /payments/process", "SERVER", 75, 164)
    add(19, 18, "payment-service", "POST", "CLIENT", 78, 158, **{"url.full": "https://api.payment-provider.example/v1/charges",
                                                                 "server.address": "api.payment-provider.example"})
    add(20, 7, "order-service", "confirm_order", "INTERNAL", 244, 8)
    return spans
