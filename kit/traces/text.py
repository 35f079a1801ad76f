"""A trace as a small text tree: service / span / kind / status, one line per span.

`render_tree(spans)` takes the SDK's finished spans (`ReadableSpan`) or anything with the same
shape as the provided `SpanRecord`, groups them by trace and draws each trace's tree, children in
start order. Spans whose parent is not among them are shown as roots, marked `(parent not in this
service's export)` when their parent is remote and missing: exactly what a learner needs to see
when propagation is broken.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from kit.traces.model import SpanView, views


def render_tree(spans: Iterable[Any], *, max_lines: int = 60) -> str:
    """Draw the spans as one tree per trace. Long outputs are cut with a note."""
    rows = views(spans)
    if not rows:
        return "(no spans were exported; until Step 1 wires the exporter, no check can see a trace)"
    by_trace: dict[str, list[SpanView]] = defaultdict(list)
    for row in rows:
        by_trace[row.trace_id].append(row)
    lines: list[str] = []
    for trace_id, trace_rows in sorted(by_trace.items(), key=lambda kv: min(r.start for r in kv[1])):
        ids = {r.span_id for r in trace_rows}
        children: dict[str | None, list[SpanView]] = defaultdict(list)
        for r in trace_rows:
            children[r.parent_id if r.parent_id in ids else None].append(r)
        lines.append(f"trace {trace_id}")
        stack = [(r, "", True, r.parent_id is not None) for r in sorted(children[None], key=lambda r: r.start)[::-1]]
        while stack:
            r, prefix, last, orphan = stack.pop()
            branch = "└─ " if last else "├─ "
            status = "" if r.status == "UNSET" else f"  {r.status}"
            extra = "  [exception]" if any(e[0] == "exception" for e in r.events) else ""
            note = "  (its parent was not exported)" if orphan else ""
            lines.append(f"  {prefix}{branch}{r.service}: {r.name} [{r.kind}]{status}{extra}{note}")
            kids = sorted(children.get(r.span_id, ()), key=lambda k: k.start)
            child_prefix = prefix + ("   " if last else "│  ")
            for i, kid in reversed(list(enumerate(kids))):
                stack.append((kid, child_prefix, i == len(kids) - 1, False))
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"  ... {len(lines) - max_lines} more lines"]
    return "\n".join(lines)
