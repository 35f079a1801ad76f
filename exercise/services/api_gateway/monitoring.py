"""Step 5: trace analysis, and the gateway's `GET /monitoring/traces/{trace_id}`.

Success criterion served: **performance visible** (you can find where a request's time went).

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

What to build (the contract, Step 5, says exactly what each one returns):

    build_trace_tree(spans)           -> [TraceNode]   TODO 1
    calculate_total_duration(spans)   -> float         TODO 2
    calculate_critical_path(tree)     -> [segment]     TODO 3
    identify_bottlenecks(spans)       -> [bottleneck]  TODO 4
    build_timeline(spans)             -> [entry]       TODO 5
    build_service_dependencies(spans) -> [edge]        TODO 6
    GET /monitoring/traces/{trace_id}                  TODO 7

A `TraceNode` is `{"span": SpanRecord, "children": [TraceNode, ...]}`. Spans come as
`SpanRecord`s (`services.shared.span_store`): ids in hex, times in epoch milliseconds
(`start_ms`, `duration_ms`, and the property `end_ms`). A span whose parent is not in the list
is a root (an orphan whose parent was lost, or the first span of a trace that began outside our
services). A span id seen twice (a span exported twice) is kept once.

Keep it fast on big traces: a trace of 100,000 spans should be analysed in well under a
second. Sort once, index spans by id in a dict, and walk with loops and explicit stacks, not
recursion (a trace thousands of levels deep would hit Python's recursion limit).

Until TODO 7 is done the endpoint answers 501, and the gateway runs as usual.
"""
from __future__ import annotations

from typing import Any, TypedDict

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.shared.span_store import SpanRecord, get_span_store, normalize_trace_id  # noqa: F401

router = APIRouter(prefix="/monitoring", tags=["monitoring"])


class TraceNode(TypedDict):
    span: SpanRecord
    children: list[TraceNode]


def build_trace_tree(spans: list[SpanRecord]) -> list[TraceNode]:
    """The trace as a forest: one node per distinct span; roots and children in start order."""
    # TODO 1 (performance-visible; rules 5.2 to 5.5): index the spans by span_id (a duplicated
    # span id is kept once: its first occurrence), make
    # a node {"span": span, "children": []} for each, attach every node to its parent's
    # children, or to the roots when its parent is not in the list; roots and children go in
    # start order (sort the spans by start_ms once, then attach them in that order).
    raise NotImplementedError("Step 5, TODO 1: build the trace tree")


def calculate_total_duration(spans: list[SpanRecord]) -> float:
    """Latest end minus earliest start, in ms: the trace as the user lived it (0 if empty)."""
    # TODO 2 (performance-visible; rule 5.6): the latest end_ms minus the earliest start_ms; 0 for
    # [].
    raise NotImplementedError("Step 5, TODO 2: compute the total duration")


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
    # TODO 3 (performance-visible; rules 5.7 to 5.15): pick the longest root. For a span with
    # interval [s, e], clip its children to [s, e] and sort them by end (latest first, then latest
    # start). From point = e, take the next child whose end <= point: the span owns [child end,
    # point]; handle the child the same way inside its clipped interval (push it on a stack: no
    # recursion); then point = child start. When no child is left, the span owns [s, point]. Collect
    # the pieces, put them in time order, drop empty ones, join touching pieces of the same span.
    # Worked example (ms): A[0,100] with B[10,40], C[20,90], and D[30,60] under C gives A 0-20, C
    # 20-30, D 30-60, C 60-90, A 90-100.
    raise NotImplementedError("Step 5, TODO 3: compute the critical path")


def identify_bottlenecks(spans: list[SpanRecord], *, threshold_ms: float = 1000.0,
                         top: int = 5) -> list[dict]:
    """The spans with the most self time (at least `threshold_ms`), largest first, at most `top`.

    Self time = duration minus the union of the children's intervals, each clipped to the span:
    two children running in parallel do not count twice, and a child that overran its parent
    cannot make the parent's self time negative. Ranking by self time rather than duration
    points at the operation that is slow itself, not at every ancestor of it. Equal self times
    keep start order.
    """
    # TODO 4 (performance-visible; rules 5.16 to 5.21): for each span, merge its children's clipped
    # intervals (in start order, overlapping ones join) and subtract their total length from its
    # duration. Answer {"span_id", "operation" (the span's name), "service", "duration_ms",
    # "self_time_ms", "percentage_of_total"} with percentage_of_total = self_time_ms /
    # calculate_total_duration(spans) * 100. Worked example self times: A 20, B 30, C 40, D 30.
    raise NotImplementedError("Step 5, TODO 4: rank the bottlenecks by self time")


def build_timeline(spans: list[SpanRecord]) -> list[dict]:
    """One entry per span in start order (a parent before a child that starts with it), with
    its offset from the trace start and its depth in the tree (roots are 0): a waterfall."""
    # TODO 5 (performance-visible; rules 5.22 to 5.26): {"span_id", "parent_span_id", "name",
    # "service", "offset_ms" (start_ms minus the trace's earliest start), "duration_ms", "depth",
    # "status"}; depth is 0 for a root (an orphan too, keeping the parent_span_id it names) and the
    # parent's depth + 1 otherwise. Spans that start together keep the order they were given in,
    # except that a parent comes before its children.
    raise NotImplementedError("Step 5, TODO 5: build the timeline")


def build_service_dependencies(spans: list[SpanRecord]) -> list[dict]:
    """The service map: `{"caller", "callee", "calls", "errors"}` per pair, sorted.

    A call between two of our services shows as a parent span in one service with a child span
    in another (the callee's server span under the caller's client span): each such pair is
    one call, failed when the child's status is ERROR. A CLIENT span with no child went
    somewhere that exports no spans: a database or cache (its `db.system`), or an outside API
    (its `peer.service` or `server.address`).
    """
    # TODO 6 (performance-visible; rules 5.27 to 5.30): count those calls per (caller, callee): a
    # CLIENT span with no child counts for its own service and is an error when its own status is
    # ERROR. Sort the edges by caller, then callee.
    raise NotImplementedError("Step 5, TODO 6: build the service map")


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
    # TODO 7 (performance-visible; rules 5.1, 5.31 to 5.35): tid = normalize_trace_id(trace_id) (a
    # ValueError means 422: raise fastapi.HTTPException(422, ...)); spans =
    # get_span_store().get_trace(tid) (none: 404). Answer {"trace_id", "total_duration_ms",
    # "service_count", "span_count", "critical_path", "bottlenecks", "timeline", "service_map"} from
    # the functions above (bottlenecks with this request's threshold_ms and top).
    return JSONResponse(status_code=501, content={
        "detail": "Step 5, TODO 7: GET /monitoring/traces/{trace_id} is not built yet"})
