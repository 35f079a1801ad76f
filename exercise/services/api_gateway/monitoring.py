"""Step 5: trace analysis, and the gateway's `GET /monitoring/traces/{trace_id}`.

Success criterion served: **performance visible** (you can find the bottlenecks).

A trace is a flat list of spans from several services; each span names its parent. Turning
that list back into a tree is what makes it readable, and three questions can then be answered:

- where did the time go? The **critical path** is the chain of work the request was actually
  waiting for: shorten anything on it and the request gets faster.
- which operation is slow in itself? A span's **self time** is the time when none of its
  children was running.
- who calls whom? The **service map** counts calls (and failed calls) between services, and
  from a service to a database or an outside API.

What to build (the contract, Step 5, says exactly what each function returns):

    build_trace_tree(spans)          -> [TraceNode]   TODO 1
    calculate_total_duration(spans)  -> float         TODO 2
    calculate_critical_path(tree)    -> [segment]     TODO 3
    identify_bottlenecks(spans)      -> [bottleneck]  TODO 4
    build_timeline(spans)            -> [entry]       TODO 5
    build_service_dependencies(spans)-> [edge]        TODO 6
    GET /monitoring/traces/{id}                       TODO 7

A `TraceNode` is `{"span": SpanRecord, "children": [TraceNode, ...]}`. Spans come as
`SpanRecord`s (`services.shared.span_store`): ids in hex, times in epoch milliseconds
(`start_ms`, `duration_ms`, and the property `end_ms`). The analysis must stay fast on big traces:
100,000 spans in well under a second (sort once, index by id, no recursion).
"""
from __future__ import annotations

from typing import Any, TypedDict

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from services.shared.span_store import SpanRecord, get_span_store, normalize_trace_id

router = APIRouter(prefix="/monitoring", tags=["monitoring"])


class TraceNode(TypedDict):
    span: SpanRecord
    children: list[TraceNode]


def build_trace_tree(spans: list[SpanRecord]) -> list[TraceNode]:
    """One node per span; a span whose parent is absent from the list is a root; roots and
    children in start order; a span id seen twice is kept once."""
    # TODO 1 (performance-visible): index the spans by span_id (skip duplicates), make a node
    # {"span": span, "children": []} for each, attach every node to its parent's children (or
    # to the roots when the parent is not in the list), and sort roots and children by start.
    raise NotImplementedError("Step 5, TODO 1: build the trace tree")


def calculate_total_duration(spans: list[SpanRecord]) -> float:
    """Latest end minus earliest start, in ms (0 for no spans)."""
    # TODO 2 (performance-visible): max(end_ms) - min(start_ms), or 0 for an empty list.
    raise NotImplementedError("Step 5, TODO 2: compute the total duration")


def calculate_critical_path(tree: list[TraceNode]) -> list[dict]:
    """The critical path (Jaeger's algorithm), as time-ordered segments
    `{"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}`."""
    # TODO 3 (performance-visible): take the longest root (the earliest on a tie). Clip each
    # node's children to its interval (drop a child wholly outside it). Walk back from the
    # node's end: the child that ends last, no later than the current point (on a tie, the one
    # that starts last), is on the path: recurse into it over its clipped interval, then go on
    # from its start. Time that no child covers belongs to the node itself. Emit one segment per
    # contiguous piece of non-zero length, in time order; together they tile the root.
    # Worked example (ms): A[0,100] > B[10,40], C[20,90] > D[30,60] gives
    # A 0-20, C 20-30, D 30-60, C 60-90, A 90-100.
    raise NotImplementedError("Step 5, TODO 3: compute the critical path")


def identify_bottlenecks(spans: list[SpanRecord], *, threshold_ms: float = 1000.0,
                         top: int = 5) -> list[dict]:
    """Spans whose self time is at least `threshold_ms`, largest first, at most `top`:
    `{"span_id", "operation", "service", "duration_ms", "self_time_ms", "percentage_of_total"}`."""
    # TODO 4 (performance-visible): self time = duration minus the union of the children's
    # intervals clipped to the span (overlapping children count once). percentage_of_total =
    # self_time_ms / calculate_total_duration(spans) * 100. Equal self times keep start order.
    raise NotImplementedError("Step 5, TODO 4: rank the bottlenecks by self time")


def build_timeline(spans: list[SpanRecord]) -> list[dict]:
    """One entry per span in start order: `{"span_id", "parent_span_id", "name", "service",
    "offset_ms", "duration_ms", "depth", "status"}`, offsets from the trace's start."""
    # TODO 5 (performance-visible): depth 0 for a root, parent's depth + 1 otherwise.
    raise NotImplementedError("Step 5, TODO 5: build the timeline")


def build_service_dependencies(spans: list[SpanRecord]) -> list[dict]:
    """Edges `{"caller", "callee", "calls", "errors"}`, sorted by caller then callee."""
    # TODO 6 (performance-visible): a span of one service with a child span of another is one
    # call (an error when the child's status is ERROR). A CLIENT span with no child in the trace
    # is a call to its db.system (a database or cache), else its peer.service or server.address
    # (an error when the CLIENT span's status is ERROR).
    raise NotImplementedError("Step 5, TODO 6: build the service map")


@router.get("/traces/{trace_id}")
def get_trace_details(
    trace_id: str,
    threshold_ms: float = Query(1000.0, ge=0, description="bottleneck self-time threshold"),
    top: int = Query(5, ge=0, description="at most this many bottlenecks"),
) -> dict[str, Any]:
    """Everything above for one trace, read from the span store in use."""
    # TODO 7 (performance-visible): normalize_trace_id(trace_id) (raises ValueError: answer 422),
    # get_span_store().get_trace(tid) (no spans: answer 404), then answer {"trace_id",
    # "total_duration_ms", "service_count", "span_count", "critical_path", "bottlenecks",
    # "timeline", "service_map"} from the functions above.
    return JSONResponse({"detail": "Step 5, TODO 7: /monitoring/traces/{trace_id} is not built yet"},
                        status_code=501)
