"""One span model for the whole kit, and one way to walk a trace.

`Span` is a finished span as plain, read-only data, with the fields of the provided `SpanRecord`
(`trace_id`, `span_id`, `parent_span_id`, `name`, `service`, `kind`, `status`, `start_ms`,
`duration_ms`, `attributes`) plus `status_description` and `events`. Times are epoch
milliseconds. Everything that draws or analyses traces takes it:

    spans = views(exported)        # from the SDK's ReadableSpan, a SpanRecord, or a Span
    for trace in by_trace(spans):
        for span, path in walk(trace):   # parents before children, children in start order
            depth = len(path) - 1        # path[i]: whether that ancestor was its parent's last child

`views` keeps a span exported twice once. `walk` never recurses and never loops (a cycle of
parent links, which a broken exporter can produce, draws each span once).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Event = tuple[str, "float | None", Mapping[str, Any]]   # (name, epoch ms or None, attributes)


@dataclass(frozen=True, kw_only=True)
class Span:
    """One finished span as plain data (the same fields as the provided `SpanRecord`)."""

    trace_id: str
    span_id: str
    name: str
    service: str
    start_ms: float
    duration_ms: float
    parent_span_id: str | None = None
    kind: str = "INTERNAL"
    status: str = "UNSET"
    status_description: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()

    def __hash__(self) -> int:
        return hash((self.trace_id, self.span_id))

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms

    @property
    def label(self) -> str:
        """The name to show (`span_label`): a CLIENT span's name with its target."""
        return span_label(self)


def event_fields(event: Any) -> Event:
    """One span event as `(name, epoch ms or None, attributes)`, whatever shape it came in: the
    model's own 3-tuple, the provided `SpanRecord`'s `(name, attributes)`, or an object with
    `name` and `attributes` (an SDK event's `timestamp` is in ns)."""
    if isinstance(event, (tuple, list)):
        if len(event) == 3:
            return str(event[0]), event[1], dict(event[2] or {})
        return str(event[0]), None, dict(event[1] or {}) if len(event) > 1 else {}
    stamp = getattr(event, "timestamp", None)
    return (str(getattr(event, "name", event)), stamp / 1e6 if stamp else None,
            dict(getattr(event, "attributes", {}) or {}))


def view(span: Any) -> Span:
    """`span` (an SDK `ReadableSpan`, a `SpanRecord`-shaped object or a `Span`) as a `Span`."""
    if isinstance(span, Span):
        return span
    if hasattr(span, "get_span_context"):  # an SDK ReadableSpan
        ctx, parent = span.get_span_context(), span.parent
        start = (span.start_time or 0) / 1e6
        end = (span.end_time if span.end_time is not None else span.start_time or 0) / 1e6
        resource = span.resource.attributes if span.resource is not None else {}
        return Span(trace_id=f"{ctx.trace_id:032x}", span_id=f"{ctx.span_id:016x}",
                    parent_span_id=f"{parent.span_id:016x}" if parent is not None else None,
                    service=str(resource.get("service.name", "?")), name=span.name, kind=span.kind.name,
                    status=span.status.status_code.name, status_description=span.status.description or "",
                    start_ms=start, duration_ms=end - start, attributes=dict(span.attributes or {}),
                    events=tuple(map(event_fields, span.events)))
    events = [event_fields(e) for e in getattr(span, "events", ()) or ()]
    return Span(trace_id=str(span.trace_id), span_id=str(span.span_id), parent_span_id=span.parent_span_id,
                service=str(span.service), name=str(span.name), kind=str(span.kind), status=str(span.status),
                status_description=str(getattr(span, "status_description", "") or ""),
                start_ms=float(span.start_ms), duration_ms=float(span.duration_ms),
                attributes=dict(getattr(span, "attributes", {}) or {}), events=tuple(events))


def span_label(span: Any) -> str:
    """The name to show for a span: its own name, except that a CLIENT span of an HTTP call also
    names its target, from `server.address` (else the host of `url.full`) and the URL's path:
    `POST` becomes `POST inventory-service /inventory/check`. Database calls keep their name."""
    name = str(span.name)
    if str(getattr(span, "kind", "")) != "CLIENT":
        return name
    attrs = getattr(span, "attributes", None) or {}
    if attrs.get("db.system") or attrs.get("db.system.name"):
        return name
    url = str(attrs.get("url.full") or attrs.get("http.url") or "")
    rest = url.split("://", 1)[-1] if url else ""
    host_port, _, path = rest.partition("/")
    target = str(attrs.get("server.address") or attrs.get("net.peer.name") or host_port.rsplit(":", 1)[0] or "")
    if not target:
        return name
    path = ("/" + path.split("?", 1)[0]) if url else ""
    parts = [name]
    if target not in name:
        parts.append(target)
    if path and path != "/" and path not in name:
        parts.append(path)
    return " ".join(parts)


def views(spans: Iterable[Any]) -> list[Span]:
    """Every span as a `Span`, a span exported twice kept once, in start order."""
    seen: dict[tuple[str, str], Span] = {}
    for s in map(view, spans):
        seen.setdefault((s.trace_id, s.span_id), s)
    return sorted(seen.values(), key=lambda s: (s.start_ms, s.end_ms))


def by_trace(spans: Iterable[Span]) -> list[list[Span]]:
    """The spans grouped by trace (each group in the order given), traces in start order."""
    groups: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        groups[s.trace_id].append(s)
    return sorted(groups.values(), key=lambda g: min(s.start_ms for s in g))


def roots_and_children(trace: list[Span]) -> tuple[list[Span], dict[str, list[Span]]]:
    """Roots (parent not among the spans) and children by parent id, all in start order."""
    ids = {s.span_id for s in trace}
    kids: dict[str, list[Span]] = defaultdict(list)
    roots = []
    for s in sorted(trace, key=lambda s: s.start_ms):
        if s.parent_span_id in ids and s.parent_span_id != s.span_id:
            kids[s.parent_span_id].append(s)
        else:
            roots.append(s)
    return roots, kids


def walk(trace: list[Span]) -> Iterator[tuple[Span, tuple[bool, ...]]]:
    """Every span of one trace with its path: a depth-first walk, parents before children,
    siblings in start order. `path[i]` says whether the span's ancestor at depth i (the span
    itself last) is the last child of its parent; `len(path) - 1` is the depth. Spans caught in
    a cycle of parent links come last, at depth 0."""
    roots, kids = roots_and_children(trace)
    seen: set[str] = set()
    stack = [(r, (i == len(roots) - 1,)) for i, r in reversed(list(enumerate(roots)))]
    while stack:
        span, path = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        yield span, path
        children = kids.get(span.span_id, ())
        stack.extend((k, path + (i == len(children) - 1,)) for i, k in reversed(list(enumerate(children))))
    for s in trace:
        if s.span_id not in seen:
            yield s, (True,)
