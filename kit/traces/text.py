"""A trace as a small text tree: service / span / kind / status, one line per span.

`render_tree(spans)` takes the SDK's finished spans (`ReadableSpan`) or anything with the same
shape as the provided `SpanRecord`, groups them by trace and draws each trace's tree, children in
start order. Spans whose parent is not among them are shown as roots, marked `(parent not in this
service's export)` when their parent is remote and missing: exactly what a learner needs to see
when propagation is broken.
"""
from __future__ import annotations

from typing import Any, Iterable

from kit.traces.model import by_trace, views, walk


def render_tree(spans: Iterable[Any], *, max_lines: int = 60) -> str:
    """Draw the spans as one tree per trace. Long outputs are cut with a note."""
    rows = views(spans)
    if not rows:
        return "(no spans were exported; until Step 1 wires the exporter, no check can see a trace)"
    lines: list[str] = []
    for trace in by_trace(rows):
        ids = {r.span_id for r in trace}
        lines.append(f"trace {trace[0].trace_id}")
        for r, path in walk(trace):
            prefix = "".join("   " if last else "│  " for last in path[:-1])
            branch = "└─ " if path[-1] else "├─ "
            status = "" if r.status == "UNSET" else f"  {r.status}"
            extra = "  [exception]" if any(e[0] == "exception" for e in r.events) else ""
            orphan = len(path) == 1 and r.parent_span_id is not None and r.parent_span_id not in ids
            note = "  (its parent was not exported)" if orphan else ""
            lines.append(f"  {prefix}{branch}{r.service}: {r.label} [{r.kind}]{status}{extra}{note}")
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"  ... {len(lines) - max_lines} more lines"]
    return "\n".join(lines)
