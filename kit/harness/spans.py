"""Small queries over the SDK's finished spans, for checks.

Checks observe the learner's code through the spans it exports; these helpers say things about
those spans in the learner's terms (service, name, kind, status) and never depend on how the
reference solution is written.
"""
from __future__ import annotations

from typing import Any, Iterable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name", "?")) if span.resource else "?"


def trace_id(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def span_id(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def parent_id(span: ReadableSpan) -> str | None:
    return f"{span.parent.span_id:016x}" if span.parent is not None else None


def describe(span: ReadableSpan) -> str:
    status = span.status.status_code.name
    return f"{service_of(span)}: {span.name} [{span.kind.name}{'' if status == 'UNSET' else ', ' + status}]"


def find(spans: Iterable[ReadableSpan], *, service: str | None = None, name: str | None = None,
         kind: SpanKind | None = None, attribute: tuple[str, Any] | None = None) -> list[ReadableSpan]:
    """The spans that match every given filter, in start order."""
    found = [s for s in spans
             if (service is None or service_of(s) == service)
             and (name is None or s.name == name)
             and (kind is None or s.kind == kind)
             and (attribute is None or (s.attributes or {}).get(attribute[0]) == attribute[1])]
    return sorted(found, key=lambda s: s.start_time or 0)


def server_spans(spans: Iterable[ReadableSpan], service: str, path: str | None = None) -> list[ReadableSpan]:
    """The SERVER spans of `service`, optionally only those for `path` (matched on url.path,
    http.route, http.target or the span name)."""
    found = []
    for s in find(spans, service=service, kind=SpanKind.SERVER):
        attrs = s.attributes or {}
        names = {attrs.get("url.path"), attrs.get("http.route"), attrs.get("http.target"), s.name}
        if path is None or path in names or any(isinstance(n, str) and n.endswith(" " + path) for n in names):
            found.append(s)
    return found


def children_of(spans: Iterable[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
            and s.context.trace_id == parent.context.trace_id]


def ancestors(spans: Iterable[ReadableSpan], span: ReadableSpan) -> list[ReadableSpan]:
    """The span's parent, its parent, ... as far as the exported spans go."""
    by_id = {(s.context.trace_id, s.context.span_id): s for s in spans}
    chain, current = [], span
    while current.parent is not None and (current.context.trace_id, current.parent.span_id) in by_id:
        current = by_id[(current.context.trace_id, current.parent.span_id)]
        chain.append(current)
    return chain


def is_error(span: ReadableSpan) -> bool:
    return span.status.status_code == StatusCode.ERROR


def exception_events(span: ReadableSpan) -> list:
    return [e for e in span.events if e.name == "exception"]


def services(spans: Iterable[ReadableSpan]) -> set[str]:
    return {service_of(s) for s in spans}
