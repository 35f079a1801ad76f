"""Step 5: trace analysis, and the gateway's `GET /monitoring/traces/{trace_id}`.

A trace is a flat list of spans from several services; each span names its parent. Turning
that list back into a tree is what makes it readable, and three questions can then be
answered from it:

- where did the time go? The **critical path** is the chain of work that the request was
  actually waiting for: shorten anything on it and the request gets faster; shorten anything
  off it (work done in parallel with something slower) and nothing changes.
- which operation is slow in itself? A span's **self time** is the time when none of its
  children was running: a slow span whose time is all spent in children is not the culprit.
- who calls whom? The **service map** counts calls (and failed calls) between services, and
  from a service to a database or an outside API.

    build_trace_tree(spans)           -> [TraceNode]   roots, children in start order
    calculate_total_duration(spans)   -> float         latest end - earliest start (ms)
    calculate_critical_path(tree)     -> [segment]     Jaeger's algorithm, in time order
    identify_bottlenecks(spans)       -> [bottleneck]  by self time, largest first
    build_timeline(spans)             -> [entry]       start order, with depth and offset
    build_service_dependencies(spans) -> [edge]        caller -> callee, calls and errors

A `TraceNode` is `{"span": SpanRecord, "children": [TraceNode, ...]}`. Spans come as
`SpanRecord`s (`services.shared.span_store`): ids in hex, times in epoch milliseconds. A span
whose parent is not in the list is a root (an orphan whose parent was lost, or the first span
of a trace that began outside our services). A span id seen twice (a span exported twice) is
kept once: its earliest-starting copy, the first given on a tie.

Every analysis starts from the same view of the trace, `_index(spans)`: the distinct spans
sorted once by start, each one's parent found through one dict of span ids (the endpoint
builds it once and runs every analysis on it). Every walk is a loop, never a recursion, so a
trace thousands of levels deep cannot hit Python's recursion limit; everything is
O(n log n), so a trace of 100,000 spans is analysed in well under a second
(`benchmarks/bench_analysis.py`).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypedDict

from fastapi import APIRouter, HTTPException, Query

from services.shared.span_store import SpanRecord, get_span_store, normalize_trace_id

router = APIRouter(prefix="/monitoring", tags=["monitoring"])


class TraceNode(TypedDict):
    span: SpanRecord
    children: list[TraceNode]


# --- one view of the trace, the start of every analysis --------------------------------------

@dataclass
class _Index:
    """A trace's distinct spans in start order, with parallel lists (position i is span i).

    Times are offsets in ms from the trace's start: two nearby epoch times subtract exactly,
    and the small numbers that result keep more precision than epoch times do."""

    spans: list[SpanRecord]
    offsets: list[float]       # start, ms from the earliest start
    durations: list[float]
    ends: list[float]          # offset + duration
    parent: list[int]          # the parent's position, -1 for a root
    depth: list[int]           # 0 for a root


def _index(spans: list[SpanRecord]) -> _Index:
    """Sort once, find parents through a dict: the view of the trace every analysis uses.

    The sort is stable, so spans that start together keep the order they were given in; a
    duplicated span id keeps its first copy in that order (the earliest-starting one).
    """
    ordered = sorted(spans, key=attrgetter("start_ms"))
    position: dict[str, int] = {}
    distinct: list[SpanRecord] = []
    for span in ordered:
        if span.span_id not in position:
            position[span.span_id] = len(distinct)
            distinct.append(span)
    first = distinct[0].start_ms if distinct else 0.0
    offsets = [s.start_ms - first for s in distinct]
    durations = [s.duration_ms for s in distinct]
    parent = [position.get(s.parent_span_id, -1) for s in distinct]   # absent parent: a root
    return _Index(spans=distinct, offsets=offsets, durations=durations,
                  ends=[o + d for o, d in zip(offsets, durations)],
                  parent=parent, depth=_depths(parent))


def _depths(parent: list[int]) -> list[int]:
    """Each span's depth (0 for a root), breaking any cycle of parent links.

    Usually a parent started before its child, so it comes first and its depth is known. When
    it does not (the clocks of two machines disagree), walk up the chain of parents to a span
    already done (-1 = not seen, -2 = on the chain being walked). Broken input must not loop
    forever: in a cycle of parent links (impossible in a real trace, but one bad exporter is
    enough) the earliest span of the cycle becomes a root.
    """
    depth = [-1] * len(parent)
    for start, p in enumerate(parent):
        if depth[start] >= 0:
            continue
        if p < 0:
            depth[start] = 0
        elif p < start:
            depth[start] = depth[p] + 1
        while depth[start] < 0:
            chain, i = [], start
            while i >= 0 and depth[i] == -1:
                depth[i] = -2
                chain.append(i)
                i = parent[i]
            if i >= 0 and depth[i] == -2:             # came back onto this chain: a cycle
                parent[min(chain[chain.index(i):])] = -1
                for j in chain:
                    depth[j] = -1
                continue                              # walk again, now that it is broken
            d = depth[i] if i >= 0 else -1
            for j in reversed(chain):
                d += 1
                depth[j] = d
    return depth


# --- the analyses ------------------------------------------------------------------------------

# Each public function is `_index(spans)` and one algorithm over it. The endpoint asks five of
# them about the same trace, so it builds the index once and calls the algorithms itself.

def build_trace_tree(spans: list[SpanRecord]) -> list[TraceNode]:
    """The trace as a forest: one node per distinct span; roots and children in start order."""
    return _tree(_index(spans))


def _tree(index: _Index) -> list[TraceNode]:
    nodes: list[TraceNode] = [{"span": s, "children": []} for s in index.spans]
    roots = []
    for node, p in zip(nodes, index.parent):          # in start order, so children are too
        if p < 0:
            roots.append(node)
        else:
            nodes[p]["children"].append(node)
    return roots


def calculate_total_duration(spans: list[SpanRecord]) -> float:
    """Latest end minus earliest start, in ms: the trace as the user lived it (0 if empty)."""
    return _total_duration(_index(spans))


def _total_duration(index: _Index) -> float:
    return max(index.ends) if index.ends else 0.0   # offsets start at 0


class _Clipped:
    """A child with its interval clipped to its parent's."""

    __slots__ = ("node", "start", "end")

    def __init__(self, node: TraceNode, start: float, end: float) -> None:
        self.node, self.start, self.end = node, start, end


def calculate_critical_path(tree: list[TraceNode]) -> list[dict]:
    """The critical path of the longest root (the earliest, on a tie), in time order.

    Jaeger's algorithm. Each child is first clipped to its parent's (clipped) interval: a span
    cannot make its parent wait before the parent started or after it ended, whatever the
    clocks of two machines say. A child wholly outside its parent is ignored, with its subtree.
    Then, from the end of a span, walk back: the child that ends last, no later than the
    current point, is what the span was waiting for; the walk goes inside it from its end,
    and continues in the parent from that child's start. Time covered by no such child is the
    span's own. Among children ending together, the one that started last is taken (it is
    the one the parent was still waiting for); a child ending exactly where the next one starts
    counts, so back-to-back steps all appear.

    Returns `{"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}` per
    contiguous segment of non-zero length; the segments tile the root's interval.
    """
    if not tree:
        return []
    root = tree[0]
    for node in tree[1:]:                             # longest root, earliest on a tie
        if node["span"].duration_ms > root["span"].duration_ms:
            root = node

    by_end = attrgetter("end", "start")

    def enter(node: TraceNode, start: float, end: float) -> list:
        # A frame: [node, its start, the current point, usable children, cursor]. Children
        # are sorted latest end first (then latest start), and the point only moves back, so
        # one cursor finds each next child and a child skipped once stays skipped.
        kids = []
        for child in node["children"]:
            c = child["span"]
            c_start, c_end = c.start_ms, c.start_ms + c.duration_ms
            s, e = max(c_start, start), min(c_end, end)
            if s < e or (start <= c_start and c_end <= end):   # else wholly outside
                kids.append(_Clipped(child, s, e))
        kids.sort(key=by_end, reverse=True)           # stable: equal keys keep start order
        return [node, start, end, kids, 0]

    found: list[tuple[SpanRecord, float, float]] = []  # (span, start, end), latest first
    r = root["span"]
    stack = [enter(root, r.start_ms, r.start_ms + r.duration_ms)]
    while stack:
        frame = stack[-1]
        node, start, point, kids, k = frame
        while k < len(kids) and kids[k].end > point:
            k += 1
        if k < len(kids):
            child = kids[k]
            found.append((node["span"], child.end, point))   # own time after the child
            frame[2], frame[4] = child.start, k + 1
            stack.append(enter(child.node, child.start, child.end))
        else:
            found.append((node["span"], start, point))       # own time before any child
            stack.pop()

    path: list[dict] = []
    for span, start, end in reversed(found):
        if end <= start:
            continue
        if path and path[-1]["span_id"] == span.span_id and path[-1]["end_ms"] == start:
            path[-1]["end_ms"] = end                  # one entry per contiguous segment
            path[-1]["duration_ms"] = end - path[-1]["start_ms"]
            continue
        path.append({"span_id": span.span_id, "name": span.name, "service": span.service,
                     "start_ms": start, "end_ms": end, "duration_ms": end - start})
    return path


def identify_bottlenecks(spans: list[SpanRecord], *, threshold_ms: float = 1000.0,
                         top: int = 5) -> list[dict]:
    """The spans with the most self time (at least `threshold_ms`), largest first, at most `top`.

    Self time = duration minus the union of the children's intervals, each clipped to the span:
    two children running in parallel do not count twice, and a child that overran its parent
    cannot make the parent's self time negative. Ranking by self time rather than duration
    points at the operation that is slow itself, not at every ancestor of it. Equal self times
    keep start order.
    """
    return _bottlenecks(_index(spans), threshold_ms, top)


def _bottlenecks(index: _Index, threshold_ms: float, top: int) -> list[dict]:
    starts, ends, n = index.offsets, index.ends, len(index.spans)
    covered = [0.0] * n
    # Each span's current run of merged child time. Spans are visited in start order, so each
    # parent meets its children in start order and one run per parent is enough.
    run_start = [0.0] * n
    run_end = [float("-inf")] * n
    for i, p in enumerate(index.parent):
        if p < 0:
            continue
        s = starts[i] if starts[i] > starts[p] else starts[p]   # clipped to the parent
        e = ends[i] if ends[i] < ends[p] else ends[p]
        if e <= s:
            continue                                  # wholly outside the parent
        if s > run_end[p]:                            # a gap: close the previous run
            if run_end[p] > run_start[p]:
                covered[p] += run_end[p] - run_start[p]
            run_start[p], run_end[p] = s, e
        elif e > run_end[p]:
            run_end[p] = e
    found = []
    for i, duration in enumerate(index.durations):
        if run_end[i] > run_start[i]:
            covered[i] += run_end[i] - run_start[i]
        self_time = max(duration - covered[i], 0.0)  # never below 0 by a rounding error
        if self_time >= threshold_ms:
            found.append((self_time, i))
    found.sort(key=lambda f: f[0], reverse=True)      # stable: equal self times keep start order
    total = _total_duration(index)
    return [{"span_id": span.span_id, "operation": span.name, "service": span.service,
             "duration_ms": span.duration_ms, "self_time_ms": self_time,
             "percentage_of_total": self_time / total * 100 if total > 0 else 0.0}
            for self_time, i in found[:max(top, 0)] for span in (index.spans[i],)]


def build_timeline(spans: list[SpanRecord]) -> list[dict]:
    """One entry per span in start order (a parent before a child that starts with it), with
    its offset from the trace start and its depth in the tree (roots are 0): a waterfall."""
    return _timeline(_index(spans))


def _timeline(index: _Index) -> list[dict]:
    offsets, durations, depth = index.offsets, index.durations, index.depth
    return [{"span_id": s.span_id, "parent_span_id": s.parent_span_id, "name": s.name,
             "service": s.service, "offset_ms": offsets[i], "duration_ms": durations[i],
             "depth": depth[i], "status": s.status}
            for i in _parents_first(index) for s in (index.spans[i],)]


def _parents_first(index: _Index) -> list[int]:
    """The index's order (start order, spans that start together in the order given), except
    that a span waits for its parent when the parent starts at the same time.

    Sorting by depth would also put a parent first, but it would move unrelated spans too (a
    deep span given before a root that starts with it). Within a run of equal starts, take the
    earliest-given span whose parent is not still waiting in the run: a heap of positions.
    """
    offsets, parent = index.offsets, index.parent
    order: list[int] = []
    n, i = len(offsets), 0
    while i < n:
        j = i + 1
        while j < n and offsets[j] == offsets[i]:
            j += 1
        if j - i == 1:
            order.append(i)
        else:
            waiting: dict[int, list[int]] = {}
            ready = []
            for k in range(i, j):
                if i <= parent[k] < j:
                    waiting.setdefault(parent[k], []).append(k)
                else:
                    ready.append(k)
            heapq.heapify(ready)
            while ready:
                k = heapq.heappop(ready)
                order.append(k)
                for child in waiting.pop(k, ()):
                    heapq.heappush(ready, child)
        i = j
    return order


def build_service_dependencies(spans: list[SpanRecord]) -> list[dict]:
    """The service map: `{"caller", "callee", "calls", "errors"}` per pair, sorted.

    A call between two of our services shows as a parent span in one service with a child span
    in another (the callee's server span under the caller's client span): each such pair is
    one call, failed when the child's status is ERROR. A CLIENT span with no child went
    somewhere that exports no spans: a database or cache (its `db.system`), or an outside API
    (its `peer.service` or `server.address`).
    """
    return _dependencies(_index(spans))


def _dependencies(index: _Index) -> list[dict]:
    uniq = index.spans
    services = [s.service for s in uniq]
    edges: dict[tuple[str, str], list[int]] = {}
    has_child = bytearray(len(uniq))
    for i, p in enumerate(index.parent):
        if p < 0:
            continue
        has_child[p] = 1
        if services[p] != services[i]:
            edge = edges.setdefault((services[p], services[i]), [0, 0])
            edge[0] += 1
            edge[1] += uniq[i].status == "ERROR"
    for i, span in enumerate(uniq):
        if has_child[i] or span.kind != "CLIENT":
            continue
        attrs = span.attributes
        target = (attrs.get("db.system") or attrs.get("peer.service")
                  or attrs.get("server.address"))
        if target:
            edge = edges.setdefault((span.service, str(target)), [0, 0])
            edge[0] += 1
            edge[1] += span.status == "ERROR"
    return [{"caller": caller, "callee": callee, "calls": calls, "errors": errors}
            for (caller, callee), (calls, errors) in sorted(edges.items())]


# --- the endpoint --------------------------------------------------------------------------------

@router.get("/traces/{trace_id}")
def get_trace_details(
    trace_id: str,
    threshold_ms: float = Query(1000.0, ge=0, description="bottleneck self-time threshold"),
    top: int = Query(5, ge=0, description="at most this many bottlenecks"),
) -> dict[str, Any]:
    """Everything above for one trace, read from the span store in use.

    `trace_id` is 32 hex digits (a UUID's dashes are removed first): 422 otherwise, 404 when no
    span of that trace is stored. A plain `def`: FastAPI runs it in a worker thread, so a slow
    store (SQLite, Application Insights) does not hold up the event loop.
    """
    try:
        tid = normalize_trace_id(trace_id)
    except ValueError:
        raise HTTPException(422, detail=f"trace_id must be 32 hex digits, got {trace_id!r}")
    try:
        spans = get_span_store().get_trace(tid)
    except ImportError as exc:                        # e.g. KqlSpanStore without its package
        raise HTTPException(503, detail=str(exc))
    if not spans:
        raise HTTPException(404, detail=f"no span of trace {tid} is stored")
    return _trace_details(tid, spans, threshold_ms=threshold_ms, top=top)


def _trace_details(trace_id: str, spans: list[SpanRecord], *, threshold_ms: float,
                   top: int) -> dict[str, Any]:
    """The endpoint's answer for a trace's spans: every analysis above, from one index."""
    index = _index(spans)
    tree = _tree(index)
    return {
        "trace_id": trace_id,
        "total_duration_ms": _total_duration(index),
        "service_count": len({s.service for s in spans}),
        "span_count": len(index.spans),
        "critical_path": calculate_critical_path(tree),
        "bottlenecks": _bottlenecks(index, threshold_ms, top),
        "timeline": _timeline(index),
        "service_map": _dependencies(index),
    }
