"""A trace as a small text tree: service / span / kind / status, one line per span.

`render_tree(spans)` takes the SDK's finished spans (`ReadableSpan`) or anything with the same
shape as the provided `SpanRecord`, groups them by trace and draws each trace's tree, children in
start order. Spans whose parent is not among them are shown as roots, marked `(parent not in this
service's export)` when their parent is remote and missing: exactly what a learner needs to see
when propagation is broken.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class _Row:
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    status: str
    start: float
    events: tuple[str, ...]


def _row(span: Any) -> _Row:
    if hasattr(span, "get_span_context"):  # an SDK ReadableSpan
        ctx = span.get_span_context()
        parent = span.parent
        return _Row(trace_id=f"{ctx.trace_id:032x}", span_id=f"{ctx.span_id:016x}",
                    parent_id=f"{parent.span_id:016x}" if parent is not None else None,
                    service=str(span.resource.attributes.get("service.name", "?")) if span.resource else "?",
                    name=span.name, kind=span.kind.name, status=span.status.status_code.name,
                    start=float(span.start_time or 0), events=tuple(e.name for e in span.events))
    return _Row(trace_id=span.trace_id, span_id=span.span_id, parent_id=span.parent_span_id,
                service=span.service, name=span.name, kind=span.kind, status=span.status,
                start=float(span.start_ms), events=tuple(getattr(span, "event_names", ()) or ()))


def render_tree(spans: Iterable[Any], *, max_lines: int = 60) -> str:
    """Draw the spans as one tree per trace. Long outputs are cut with a note."""
    rows = [_row(s) for s in spans]
    if not rows:
        return "(no spans were exported; until Step 1 wires the exporter, no check can see a trace)"
    by_trace: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        by_trace[row.trace_id].append(row)
    lines: list[str] = []
    for trace_id, trace_rows in sorted(by_trace.items(), key=lambda kv: min(r.start for r in kv[1])):
        ids = {r.span_id for r in trace_rows}
        children: dict[str | None, list[_Row]] = defaultdict(list)
        for r in trace_rows:
            children[r.parent_id if r.parent_id in ids else None].append(r)
        lines.append(f"trace {trace_id}")
        stack = [(r, "", True, r.parent_id is not None) for r in sorted(children[None], key=lambda r: r.start)[::-1]]
        while stack:
            r, prefix, last, orphan = stack.pop()
            branch = "└─ " if last else "├─ "
            status = "" if r.status == "UNSET" else f"  {r.status}"
            extra = "  [exception]" if "exception" in r.events else ""
            note = "  (its parent was not exported)" if orphan else ""
            lines.append(f"  {prefix}{branch}{r.service}: {r.name} [{r.kind}]{status}{extra}{note}")
            kids = sorted(children.get(r.span_id, ()), key=lambda k: k.start)
            child_prefix = prefix + ("   " if last else "│  ")
            for i, kid in reversed(list(enumerate(kids))):
                stack.append((kid, child_prefix, i == len(kids) - 1, False))
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"  ... {len(lines) - max_lines} more lines"]
    return "\n".join(lines)
