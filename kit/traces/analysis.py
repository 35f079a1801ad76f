"""The kit's own trace analysis, for the trace viewer, the Step 7 script and the benchmarks.

The learner writes the same analysis in Step 5 (`services/api_gateway/monitoring.py`); the kit
never calls it, so that the viewer works whatever state the learner's code is in. The
definitions are the contract's (see `learner-api.md`, Step 5): a span whose parent is not in the
list is a root; self time is the duration minus the union of the children's intervals clipped
to the span; the critical path is Jaeger's (children clipped to their parent, walk back from the
end, the latest-ending child that ends no later than the current point is on the path).

Every function takes spans with the shape of the provided `SpanRecord` (`trace_id`, `span_id`,
`parent_span_id`, `name`, `service`, `kind`, `start_ms`, `duration_ms`, `status`,
`attributes`): the tree's own records, or the kit's one span model, `kit.traces.model.Span`
(what `kit.live.viewer.store` reads from a span database without importing any tree). Nothing recurses, so a deep trace
cannot hit the recursion limit.

    spans = store.get_trace(trace_id)
    analysis = analyse(spans)     # everything below in one dict, JSON-ready
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from kit.traces.model import Span, event_fields, span_label  # noqa: F401 - Span: the span model these functions take

__all__ = ["index", "children_lists", "total_duration", "self_times", "depths",
           "critical_path", "bottlenecks", "service_map", "analyse"]


def _end(span: Any) -> float:
    return span.start_ms + span.duration_ms


def index(spans: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The distinct spans in start order (a span id seen twice is kept once, the first) and
    each one's parent position (-1 for a root). A cycle of parent links (a broken exporter)
    is cut at its earliest span, so no walk below can loop."""
    first: dict[str, Any] = {}
    for span in spans:
        first.setdefault(span.span_id, span)
    uniq = sorted(first.values(), key=attrgetter("start_ms"))
    pos = {s.span_id: i for i, s in enumerate(uniq)}
    parent = [pos.get(s.parent_span_id, -1) if s.parent_span_id else -1 for s in uniq]
    colour = bytearray(len(uniq))          # 0 unseen, 1 on the current chain, 2 done
    for start in range(len(uniq)):
        chain, i = [], start
        while i >= 0 and colour[i] == 0:
            colour[i] = 1
            chain.append(i)
            i = parent[i]
        if i >= 0 and colour[i] == 1:
            cycle = chain[chain.index(i):]
            parent[min(cycle)] = -1
        for j in chain:
            colour[j] = 2
    return uniq, parent


def children_lists(parent: list[int]) -> list[list[int]]:
    """For each position, its children's positions in start order."""
    kids: list[list[int]] = [[] for _ in parent]
    for i, p in enumerate(parent):
        if p >= 0:
            kids[p].append(i)
    return kids


def total_duration(spans: Sequence[Any]) -> float:
    """Latest end minus earliest start, in ms (0 for no spans)."""
    if not spans:
        return 0.0
    return max(_end(s) for s in spans) - min(s.start_ms for s in spans)


def depths(parent: list[int]) -> list[int]:
    """Each position's depth in its tree (roots are 0)."""
    depth = [0] * len(parent)
    kids = children_lists(parent)
    order = [i for i, p in enumerate(parent) if p < 0]
    for i in order:                      # the list grows as it is walked: parents first
        for k in kids[i]:
            depth[k] = depth[i] + 1
            order.append(k)
    return depth


def self_times(uniq: list[Any], parent: list[int]) -> list[float]:
    """Each span's self time: its duration minus the union of its children's intervals,
    each clipped to the span (parallel children count once)."""
    n = len(uniq)
    covered = [0.0] * n
    run_start = [0.0] * n
    run_end = [float("-inf")] * n
    for i, p in enumerate(parent):       # children come in start order
        if p < 0:
            continue
        s, e = max(uniq[i].start_ms, uniq[p].start_ms), min(_end(uniq[i]), _end(uniq[p]))
        if e <= s:
            continue
        if s > run_end[p]:
            if run_end[p] > run_start[p]:
                covered[p] += run_end[p] - run_start[p]
            run_start[p], run_end[p] = s, e
        elif e > run_end[p]:
            run_end[p] = e
    out = []
    for i, span in enumerate(uniq):
        if run_end[i] > run_start[i]:
            covered[i] += run_end[i] - run_start[i]
        out.append(max(span.duration_ms - covered[i], 0.0))
    return out


def critical_path(uniq: list[Any], parent: list[int]) -> list[dict]:
    """Jaeger's critical path of the longest root (the earliest on a tie), in time order:
    `{"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}` per contiguous
    segment of non-zero length; the segments tile the root's interval."""
    roots = [i for i, p in enumerate(parent) if p < 0]
    if not roots:
        return []
    root = roots[0]
    for i in roots[1:]:
        if uniq[i].duration_ms > uniq[root].duration_ms:
            root = i
    kids = children_lists(parent)

    def frame(i: int, start: float, end: float) -> list:
        usable = []
        for k in kids[i]:
            c_start, c_end = uniq[k].start_ms, _end(uniq[k])
            s, e = max(c_start, start), min(c_end, end)
            if s < e or (start <= c_start and c_end <= end):
                usable.append((e, s, k))
        usable.sort(key=lambda t: (t[0], t[1]), reverse=True)   # latest end, then latest start
        return [i, start, end, usable, 0]

    found: list[tuple[int, float, float]] = []
    stack = [frame(root, uniq[root].start_ms, _end(uniq[root]))]
    while stack:
        fr = stack[-1]
        i, start, point, usable, k = fr
        while k < len(usable) and usable[k][0] > point:
            k += 1
        if k < len(usable):
            c_end, c_start, child = usable[k]
            found.append((i, c_end, point))
            fr[2], fr[4] = c_start, k + 1
            stack.append(frame(child, c_start, c_end))
        else:
            found.append((i, start, point))
            stack.pop()
    path: list[dict] = []
    for i, start, end in reversed(found):
        if end <= start:
            continue
        span = uniq[i]
        if path and path[-1]["span_id"] == span.span_id and path[-1]["end_ms"] == start:
            path[-1]["end_ms"] = end
            path[-1]["duration_ms"] = end - path[-1]["start_ms"]
            continue
        path.append({"span_id": span.span_id, "name": span.name, "service": span.service,
                     "start_ms": start, "end_ms": end, "duration_ms": end - start})
    return path


def bottlenecks(uniq: list[Any], selfs: list[float], *, threshold_ms: float = 0.0,
                top: int = 5) -> list[dict]:
    """The spans with the most self time (at least `threshold_ms`), largest first."""
    total = total_duration(uniq)
    found = sorted(((t, s) for t, s in zip(selfs, uniq) if t >= threshold_ms),
                   key=lambda f: f[0], reverse=True)
    return [{"span_id": s.span_id, "operation": s.name, "service": s.service,
             "duration_ms": s.duration_ms, "self_time_ms": t,
             "percentage_of_total": t / total * 100 if total > 0 else 0.0}
            for t, s in found[:max(top, 0)]]


def service_map(uniq: list[Any], parent: list[int], *,
                aliases: Mapping[str, str] | None = None) -> list[dict]:
    """`{"caller", "callee", "calls", "errors"}` per pair, sorted. A call between services is a
    parent in one service with a child in another; a CLIENT span with no child called
    something that exports no spans: its `db.system`, `peer.service` or `server.address`
    (`aliases` renames an address, or `address:port`, e.g. the stand-in payment provider)."""
    aliases = aliases or {}
    edges: dict[tuple[str, str], list[int]] = {}
    has_child = bytearray(len(uniq))
    for i, p in enumerate(parent):
        if p < 0:
            continue
        has_child[p] = 1
        if uniq[p].service != uniq[i].service:
            edge = edges.setdefault((uniq[p].service, uniq[i].service), [0, 0])
            edge[0] += 1
            edge[1] += uniq[i].status == "ERROR"
    for i, span in enumerate(uniq):
        if span.kind != "CLIENT" or has_child[i]:
            continue
        attrs = span.attributes or {}
        target = attrs.get("db.system") or attrs.get("peer.service") or attrs.get("server.address")
        if not target:
            continue
        target = str(target)
        port = attrs.get("server.port")
        target = aliases.get(f"{target}:{port}", aliases.get(target, target))
        edge = edges.setdefault((span.service, target), [0, 0])
        edge[0] += 1
        edge[1] += span.status == "ERROR"
    return [{"caller": a, "callee": b, "calls": c, "errors": e}
            for (a, b), (c, e) in sorted(edges.items())]


def analyse(spans: Sequence[Any], *, threshold_ms: float = 0.0, top: int = 5,
            aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything about one trace, JSON-ready: the summary figures, the critical path, the
    bottlenecks, the service map and one `timeline` row per span (start order, with depth,
    offset, self time, its `label` (a CLIENT span's name with its target), its own pieces of the
    critical path (`critical`) and whether it is on the path at all, itself or as the ancestor
    of a span that is (`on_critical_path`))."""
    uniq, parent = index(spans)
    if not uniq:
        return {"trace_id": None, "total_duration_ms": 0.0, "service_count": 0,
                "span_count": 0, "error_count": 0, "services": [], "critical_path": [],
                "bottlenecks": [], "service_map": [], "timeline": []}
    selfs = self_times(uniq, parent)
    depth = depths(parent)
    path = critical_path(uniq, parent)
    on_path: dict[str, list[list[float]]] = {}
    for seg in path:
        on_path.setdefault(seg["span_id"], []).append([seg["start_ms"], seg["end_ms"]])
    waiting = bytearray(len(uniq))         # on the path itself, or an ancestor of a span that is
    pos = {s.span_id: i for i, s in enumerate(uniq)}
    for span_id in on_path:
        i = pos.get(span_id, -1)
        while i >= 0 and not waiting[i]:
            waiting[i] = 1
            i = parent[i]
    t0 = uniq[0].start_ms
    # Display order: depth-first, children in start order, so each span sits under its parent.
    kids = children_lists(parent)
    order: list[int] = []
    stack = [i for i, p in enumerate(parent) if p < 0][::-1]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed(kids[i]))
    timeline = []
    for i in order:
        s = uniq[i]
        timeline.append({
            "span_id": s.span_id, "parent_span_id": s.parent_span_id, "name": s.name,
            "service": s.service, "kind": s.kind, "status": s.status,
            "status_description": getattr(s, "status_description", None),
            "offset_ms": s.start_ms - t0, "duration_ms": s.duration_ms, "depth": depth[i],
            "self_time_ms": selfs[i], "start_ms": s.start_ms,
            "label": span_label(s),
            "critical": [[a - t0, b - t0] for a, b in on_path.get(s.span_id, [])],
            "on_critical_path": bool(waiting[i]),
            "orphan": parent[i] < 0 and bool(s.parent_span_id) and i != order[0],
            "attributes": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in (s.attributes or {}).items()},
            "events": [{"name": n, "attributes": {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in a.items()}}
                       for n, _, a in map(event_fields, getattr(s, "events", ()) or ())],
        })
    return {
        "trace_id": uniq[0].trace_id,
        "start_ms": t0,
        "total_duration_ms": total_duration(uniq),
        "service_count": len({s.service for s in uniq}),
        "span_count": len(uniq),
        "error_count": sum(s.status == "ERROR" for s in uniq),
        "services": sorted({s.service for s in uniq}),
        "critical_path": path,
        "bottlenecks": bottlenecks(uniq, selfs, threshold_ms=threshold_ms, top=top),
        "service_map": service_map(uniq, parent, aliases=aliases),
        "timeline": timeline,
    }
