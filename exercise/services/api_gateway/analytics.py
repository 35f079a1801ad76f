"""Extensions E1 and E4 (optional, outside the 100 points): analytics over many traces.

Step 5 looks at one trace at a time. Once the span store holds thousands of traces, the
questions change: which operations are slow *usually* (not in one unlucky request), which
services fail most often, and how the services depend on each other across all traffic.

What to build (docs/learner-api.md, sections E1 and E4, says exactly what each returns):

    slowest_operations(spans, top=10) -> [operation]  TODO 1 (rules E1.1-E1.4)
    error_rates(spans)                -> [service]    TODO 2 (rules E1.5-E1.8)
    dependency_map(spans)             -> [edge]       TODO 3 (rules E4.1-E4.5)
    KQL                                               provided, not graded: the same
                                                      questions for Application Insights

`spans` are `SpanRecord`s (`services.shared.span_store`) of any number of traces. Definitions
shared by every extension (rules 0.11-0.14): durations in ms; a percentile pN of n >= 1
values is the nearest rank, `sorted(values)[math.ceil(N / 100 * n) - 1]` (always one of the
values, so p50 of [1, 2, 3, 4] is 2); a request is a `SERVER` span; an operation is a span's
`(service, name)`.

Keep it fast: 100,000 spans should take well under a second. Group the spans in one pass (a
dict of lists), then sort each group once.
"""
from __future__ import annotations

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


def slowest_operations(spans: list[SpanRecord], *, top: int = 10) -> list[dict]:
    """The `top` slowest operations of `SERVER` and `INTERNAL` spans, by p95 (slowest first)."""
    # TODO 1 (extension E1; rules E1.1-E1.4): group the durations of SERVER and INTERNAL spans
    # by (service, name). One entry per group: {"service", "operation" (the span name), "count",
    # "p50_ms", "p95_ms", "p99_ms", "max_ms"} (nearest-rank percentiles, see above). Sort by
    # p95_ms descending, then service, then operation; return at most `top` entries.
    raise NotImplementedError("Extension E1, TODO 1: rank the operations by p95")


def error_rates(spans: list[SpanRecord]) -> list[dict]:
    """`{"service", "requests", "errors", "error_rate"}` per service with requests, by service."""
    # TODO 2 (extension E1; rules E1.5-E1.8): requests are SERVER spans; errors are the requests
    # with status "ERROR"; error_rate = errors / requests. One entry per service that has at
    # least one request, sorted by service.
    raise NotImplementedError("Extension E1, TODO 2: compute each service's error rate")


def dependency_map(spans: list[SpanRecord]) -> list[dict]:
    """Step 5's service map summed over every trace, with the latency of the calls."""
    # TODO 3 (extension E4; rules E4.1-E4.5): the edges of Step 5's build_service_dependencies,
    # trace by trace (a parent is looked up in its own trace; a duplicated span id is kept
    # once), summed over all traces: {"caller", "callee", "calls", "errors", "p50_ms",
    # "p95_ms"}, sorted by caller, then callee. A call's latency is the duration of the caller's
    # span of the edge: the parent span (for a child in another service), or the childless
    # CLIENT span itself (for a database, cache or outside API).
    raise NotImplementedError("Extension E4, TODO 3: build the dependency map across traces")
