"""Extensions E1 and E4: analytics over many traces.

Step 5 looks at one trace at a time. Once the span store holds thousands of traces, the
questions change: which operations are slow *usually* (not in one unlucky request), which
services fail most often, and how the services depend on each other across all traffic.

    slowest_operations(spans, top=10) -> [operation]  E1: p50/p95/p99/max per (service, name)
    error_rates(spans)                -> [service]    E1: failed requests / requests
    dependency_map(spans)             -> [edge]       E4: Step 5's service map over every trace
    KQL                                               E1: the same questions, for App Insights

Definitions shared by every extension: durations in ms; a percentile pN of n >= 1 values is
the nearest rank, `sorted(values)[ceil(N / 100 * n) - 1]` (always one of the values, never an
interpolation, so p50 of [1, 2, 3, 4] is 2); a request is a `SERVER` span; an operation is a
span's `(service, name)`.

Percentiles, not averages: if one request in ten takes 5 s and the rest 50 ms, the mean
(about 0.5 s) describes no request at all, while p50 = 50 ms and p95 = 5 s describe both the
usual request and the slow tail that users complain about. Spans are counted as given;
each function is one pass to group the spans and one sort per group, so 100,000 spans take
well under a second (`benchmarks/bench_extensions.py`).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from operator import attrgetter

from services.shared.span_store import SpanRecord

#: The E1 questions as KQL for Application Insights users (provided, not graded). The Azure
#: Monitor exporter writes SERVER spans to `AppRequests` and the other kinds to
#: `AppDependencies` (INTERNAL spans with `DependencyType == "InProc"`); `AppRoleName` is the
#: service. KQL's `percentiles()` is an estimate, not the nearest rank: close, not equal.
KQL: dict[str, dict[str, str]] = {
    "slowest_operations": {
        "question": "Which operations are slowest at p95 (with p50, p99 and the worst case)?",
        "kql": """\
union
    (AppRequests | project TimeGenerated, AppRoleName, Name, DurationMs),
    (AppDependencies | where DependencyType == "InProc"
        | project TimeGenerated, AppRoleName, Name, DurationMs)
| where TimeGenerated > ago(1h)
| summarize ['count'] = count(), (p50_ms, p95_ms, p99_ms) = percentiles(DurationMs, 50, 95, 99),
    max_ms = max(DurationMs) by service = AppRoleName, operation = Name
| order by p95_ms desc, service asc, operation asc
| take 10""",
    },
    "error_rates": {
        "question": "Which services fail the most requests?",
        "kql": """\
AppRequests
| where TimeGenerated > ago(1h)
| summarize requests = count(), errors = countif(Success == false) by service = AppRoleName
| extend error_rate = todouble(errors) / requests
| order by service asc""",
    },
}


def _percentile(sorted_values: Sequence[float], n: int) -> float:
    """The nearest-rank percentile pN of values already sorted (at least one)."""
    return sorted_values[math.ceil(n / 100 * len(sorted_values)) - 1]


def slowest_operations(spans: list[SpanRecord], *, top: int = 10) -> list[dict]:
    """The `top` slowest operations of `SERVER` and `INTERNAL` spans, by p95 (slowest first).

    `{"service", "operation", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms"}` per operation;
    equal p95s go by service, then operation. CLIENT spans are left out: a call to another of
    our services is already there as the callee's SERVER span, and calls to databases and
    outside APIs are what `dependency_map` measures.
    """
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for span in spans:
        if span.kind == "SERVER" or span.kind == "INTERNAL":
            durations[span.service, span.name].append(span.duration_ms)
    found = []
    for (service, operation), values in durations.items():
        values.sort()
        found.append({"service": service, "operation": operation, "count": len(values),
                      "p50_ms": _percentile(values, 50), "p95_ms": _percentile(values, 95),
                      "p99_ms": _percentile(values, 99), "max_ms": values[-1]})
    found.sort(key=lambda op: (-op["p95_ms"], op["service"], op["operation"]))
    return found[:max(top, 0)]


def error_rates(spans: list[SpanRecord]) -> list[dict]:
    """`{"service", "requests", "errors", "error_rate"}` per service that has requests, by service.

    Only requests (`SERVER` spans) count: a failed call to another service shows as that
    service's failed request, and counting the caller's CLIENT span too would count it twice.
    """
    requests: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for span in spans:
        if span.kind == "SERVER":
            requests[span.service] += 1
            errors[span.service] += span.status == "ERROR"
    return [{"service": service, "requests": count, "errors": errors[service],
             "error_rate": errors[service] / count}
            for service, count in sorted(requests.items())]


def dependency_map(spans: list[SpanRecord]) -> list[dict]:
    """Step 5's service map summed over every trace, with the latency of the calls.

    `{"caller", "callee", "calls", "errors", "p50_ms", "p95_ms"}` per edge, sorted by caller
    then callee. The edges are Step 5's `build_service_dependencies`, trace by trace:

    - a span with a child span in another service is one call from its service to the child's
      (failed when the child's status is ERROR); its latency is the parent span's duration
      (the caller's CLIENT span, usually: the time the caller waited, network included);
    - a CLIENT span with no child in its trace called something that exports no spans: its
      `db.system`, else its `peer.service`, else its `server.address` (none of them: no edge);
      failed when that span's status is ERROR; its latency is that span's duration.

    As in Step 5, a span's parent is looked up in its own trace only, and a span id seen twice
    in a trace is kept once (its earliest-starting copy, the first given on a tie).
    """
    # Start order (a stable sort), so that the first copy of a duplicated span is the one kept.
    position: dict[tuple[str, str], int] = {}
    distinct: list[SpanRecord] = []
    for span in sorted(spans, key=attrgetter("start_ms")):
        key = (span.trace_id, span.span_id)
        if key not in position:
            position[key] = len(distinct)
            distinct.append(span)

    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    errors: dict[tuple[str, str], int] = defaultdict(int)
    has_child = [False] * len(distinct)
    for span in distinct:
        p = position.get((span.trace_id, span.parent_span_id), -1)
        if p < 0:
            continue                                  # a root: no caller in this trace
        has_child[p] = True
        parent = distinct[p]
        if parent.service != span.service:
            edge = (parent.service, span.service)
            latencies[edge].append(parent.duration_ms)
            errors[edge] += span.status == "ERROR"
    for i, span in enumerate(distinct):
        if has_child[i] or span.kind != "CLIENT":
            continue
        attrs = span.attributes
        target = attrs.get("db.system") or attrs.get("peer.service") or attrs.get("server.address")
        if target:
            edge = (span.service, str(target))
            latencies[edge].append(span.duration_ms)
            errors[edge] += span.status == "ERROR"

    edges = []
    for (caller, callee), values in sorted(latencies.items()):
        values.sort()
        edges.append({"caller": caller, "callee": callee, "calls": len(values),
                      "errors": errors[caller, callee],
                      "p50_ms": _percentile(values, 50), "p95_ms": _percentile(values, 95)})
    return edges
