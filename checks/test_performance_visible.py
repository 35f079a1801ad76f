"""Success criterion 4, performance visible: the trace analysis of Step 5 finds the trace tree,
the critical path (Jaeger's algorithm, as the contract states it), the bottlenecks by self time,
the timeline and the service map, and serves them at /monitoring/traces/{trace_id}.

Most checks feed the analysis functions synthetic traces with known answers (times in ms from
an epoch base, so no clock decides anything); two send real orders through the services.
"""
from __future__ import annotations

from kit.harness.expect import check, expect, fail
from kit.harness.learner import attr
from checks.helpers import call_learner
from kit.harness.spans import server_spans, trace_id

BASE = 1_700_000_000_000.0
TRACE = "0af7651916cd43dd8448eb211c80319c"
MONITORING = "services.api_gateway.monitoring"


def record(span_id, start, end, parent=None, *, name=None, service="svc", kind="INTERNAL", status="UNSET",
           attributes=None):
    """A SpanRecord for the synthetic traces: times in ms from BASE."""
    span_record = attr("services.shared.span_store", "SpanRecord")
    return span_record(trace_id=TRACE, span_id=span_id.rjust(16, "0"), parent_span_id=parent.rjust(16, "0") if parent else None,
                       name=name or span_id, service=service, kind=kind, start_ms=BASE + start,
                       duration_ms=end - start, status=status, attributes=attributes or {})


def worked_example():
    """The contract's example: A [0,100]; B [10,40] and C [20,90] under A; D [30,60] under C."""
    return [record("a", 0, 100), record("b", 10, 40, "a"), record("c", 20, 90, "a"), record("d", 30, 60, "c")]


def call(name, *args, **kwargs):
    """Call a Step 5 function; a NotImplementedError or a crash fails the check plainly."""
    return call_learner(MONITORING, name, *args, **kwargs)


def path_of(spans, roots=None):
    """The critical path as (span name, start, end) in ms from BASE."""
    tree = call("build_trace_tree", spans) if roots is None else roots
    segments = call("calculate_critical_path", tree)
    try:
        return [(_name_of(spans, s["span_id"]), round(s["start_ms"] - BASE, 6), round(s["end_ms"] - BASE, 6))
                for s in segments]
    except (KeyError, TypeError) as exc:
        fail(did="read the critical path's segments", expected='dicts with "span_id", "start_ms", "end_ms"',
             saw=f"{segments!r:.300} ({type(exc).__name__}: {exc})")


def _name_of(spans, span_id):
    return next((s.name for s in spans if s.span_id == span_id), span_id)


def _tree_shape(nodes):
    """[(name, [children...]), ...] of a TraceNode list."""
    try:
        return [(n["span"].name, _tree_shape(n["children"])) for n in nodes]
    except (KeyError, TypeError, AttributeError) as exc:
        fail(did="read the trace tree", expected='nodes {"span": SpanRecord, "children": [...]}',
             saw=f"{nodes!r:.300} ({type(exc).__name__})")


@check(step=5, criterion="performance-visible", todo="TODO 1", rules=("5.2", "5.3", "5.4", "5.5"))
def test_trace_tree_links_children_in_start_order():
    """The trace tree: roots and children in start order; orphans are roots; duplicates kept once"""
    spans = [record("c", 20, 90, "a"), record("a", 0, 100), record("d", 30, 60, "c"), record("b", 10, 40, "a"),
             record("o", 50, 55, "missing"), record("b", 10, 40, "a")]
    shape = _tree_shape(call("build_trace_tree", spans))
    want = [("a", [("b", []), ("c", [("d", [])])]), ("o", [])]
    expect(shape == want, did="built the tree of A[0,100] > B[10,40], C[20,90] > D[30,60], an orphan O whose parent "
           "is absent, and B given twice (spans in shuffled order)", expected=f"{want}", saw=f"{shape}")
    expect(_tree_shape(call("build_trace_tree", [])) == [], did="built the tree of no spans", expected="[]",
           saw=call("build_trace_tree", []))


@check(step=5, criterion="performance-visible", todo="TODO 2", rules=("5.6",))
def test_total_duration_runs_from_earliest_start_to_latest_end():
    """Total duration is the latest end minus the earliest start (0 for no spans)"""
    spans = [record("a", 0, 100), record("late", 90, 130, "a"), record("r2", -5, 10)]
    total = call("calculate_total_duration", spans)
    expect(abs(total - 135) < 1e-6, did="asked the total duration of spans over [-5, 130] ms", expected="135.0",
           saw=total)
    empty = call("calculate_total_duration", [])
    expect(empty == 0, did="asked the total duration of no spans", expected="0", saw=empty)


@check(step=5, criterion="performance-visible", todo="TODO 3", rules=("5.8", "5.11", "5.12"))
def test_critical_path_of_the_contracts_worked_example():
    """The critical path of the contract's worked example, segment by segment"""
    got = path_of(worked_example())
    want = [("a", 0, 20), ("c", 20, 30), ("d", 30, 60), ("c", 60, 90), ("a", 90, 100)]
    expect(got == want, did="computed the critical path of A[0,100] > B[10,40], C[20,90] > D[30,60]",
           expected=f"{want} (B is not on the path)", saw=got)


@check(step=5, criterion="performance-visible", todo="TODO 3", rules=("5.8", "5.9", "5.10"))
def test_critical_path_of_sequential_and_parallel_children():
    """Back-to-back children all lie on the path; of parallel ones, only the last to end"""
    sequential = [record("root", 0, 100), record("s1", 0, 30, "root"), record("s2", 30, 60, "root"),
                  record("s3", 60, 100, "root")]
    got = path_of(sequential)
    want = [("s1", 0, 30), ("s2", 30, 60), ("s3", 60, 100)]
    expect(got == want, did="computed the path of root[0,100] with back-to-back children [0,30], [30,60], [60,100]",
           expected=f"{want}", saw=got)
    parallel = [record("root", 0, 100), record("p1", 10, 80, "root"), record("p2", 10, 90, "root"),
                record("p3", 20, 90, "root")]
    got = path_of(parallel)
    want = [("root", 0, 20), ("p3", 20, 90), ("root", 90, 100)]
    expect(got == want, did="computed the path of root[0,100] with parallel children [10,80], [10,90], [20,90]",
           expected=f"{want} (of two children ending together, the later start wins; parallel time is not counted twice)",
           saw=got)


@check(step=5, criterion="performance-visible", todo="TODO 3", rules=("5.7", "5.13"))
def test_critical_path_clips_children_to_their_parent():
    """Children are clipped to their parent: an overflowing child is cut, one wholly outside ignored"""
    spans = [record("root", 0, 100), record("over", 70, 130, "root"), record("early", -20, 10, "root"),
             record("outside", 110, 150, "root")]
    got = path_of(spans)
    want = [("early", 0, 10), ("root", 10, 70), ("over", 70, 100)]
    expect(got == want, did="computed the path of root[0,100] with children [70,130], [-20,10] and [110,150]",
           expected=f"{want} (segments tile the root's interval)", saw=got)


@check(step=5, criterion="performance-visible", todo="TODO 3", rules=("5.14", "5.15"))
def test_critical_path_with_several_roots_one_span_or_none():
    """Several roots: the longest root's path; one span: itself; no spans: nothing"""
    spans = [record("short", 0, 10), record("long", 5, 60), record("kid", 20, 30, "long"), record("tie", 100, 155)]
    got = path_of(spans)
    want = [("long", 5, 20), ("kid", 20, 30), ("long", 30, 60)]
    expect(got == want, did="computed the path of roots short[0,10], long[5,60] (child [20,30]) and tie[100,155]",
           expected=f"{want} (the longest root; the earliest on a tie)", saw=got)
    single = path_of([record("only", 0, 7)])
    expect(single == [("only", 0, 7)], did="computed the path of one span [0,7]", expected="[('only', 0, 7)]", saw=single)
    expect(call("calculate_critical_path", []) == [], did="computed the path of an empty tree", expected="[]",
           saw=call("calculate_critical_path", []))


@check(step=5, criterion="performance-visible", todo="TODO 4", rules=("5.16", "5.17", "5.18", "5.19", "5.20"))
def test_bottlenecks_are_ranked_by_self_time():
    """Bottlenecks are ranked by self time, with threshold, top and percentage of the total"""
    spans = worked_example()
    found = call("identify_bottlenecks", spans, threshold_ms=0, top=10)
    try:
        got = [(_name_of(spans, b["span_id"]), round(b["self_time_ms"], 6), round(b["percentage_of_total"], 6))
               for b in found]
        keys_ok = all({"span_id", "operation", "service", "duration_ms", "self_time_ms", "percentage_of_total"} <= b.keys()
                      for b in found)
    except (KeyError, TypeError, AttributeError) as exc:
        fail(did="read the bottlenecks", expected="dicts with span_id, operation, service, duration_ms, "
             "self_time_ms, percentage_of_total", saw=f"{found!r:.300} ({type(exc).__name__})")
    want = [("c", 40, 40), ("b", 30, 30), ("d", 30, 30), ("a", 20, 20)]
    expect(got == want and keys_ok, did="asked the bottlenecks of the worked example (threshold 0)",
           expected=f"(name, self time, % of total): {want}; equal self times in start order", saw=got)
    limited = call("identify_bottlenecks", spans, threshold_ms=25, top=2)
    names = [_name_of(spans, b["span_id"]) for b in limited]
    expect(names == ["c", "b"], did="asked the bottlenecks of the worked example with threshold_ms=25, top=2",
           expected="['c', 'b']", saw=names)


@check(step=5, criterion="performance-visible", todo="TODO 5", rules=("5.22", "5.24"))
def test_timeline_gives_offsets_depths_and_status():
    """The timeline lists every span in start order with offset, duration, depth and status"""
    spans = [record("c", 20, 90, "a", service="svc-c", status="ERROR"), record("a", 0, 100, service="svc-a"),
             record("d", 30, 60, "c"), record("b", 10, 40, "a")]
    rows = call("build_timeline", spans)
    try:
        got = [(_name_of(spans, r["span_id"]), r["offset_ms"], r["duration_ms"], r["depth"], r["status"]) for r in rows]
    except (KeyError, TypeError) as exc:
        fail(did="read the timeline", expected="dicts with span_id, parent_span_id, name, service, offset_ms, "
             "duration_ms, depth, status", saw=f"{rows!r:.300} ({type(exc).__name__})")
    want = [("a", 0, 100, 0, "UNSET"), ("b", 10, 30, 1, "UNSET"), ("c", 20, 70, 1, "ERROR"), ("d", 30, 30, 2, "UNSET")]
    expect(got == want, did="built the timeline of the worked example (C with status ERROR)",
           expected=f"(name, offset, duration, depth, status): {want}", saw=got)


@check(step=5, criterion="performance-visible", todo="TODO 6", rules=("5.27", "5.28", "5.29"))
def test_service_map_counts_calls_and_errors_between_services():
    """The service map has one edge per caller and callee, with calls and errors"""
    spans = [
        record("g", 0, 100, service="api-gateway", kind="SERVER"),
        record("gc1", 5, 20, "g", service="api-gateway", kind="CLIENT"),
        record("as", 6, 19, "gc1", service="auth-service", kind="SERVER"),
        record("gc2", 25, 95, "g", service="api-gateway", kind="CLIENT"),
        record("os", 26, 94, "gc2", service="order-service", kind="SERVER", status="ERROR"),
        record("db", 30, 35, "os", service="order-service", kind="CLIENT", attributes={"db.system": "redis"}),
        record("ext", 40, 60, "os", service="order-service", kind="CLIENT", status="ERROR",
               attributes={"server.address": "api.example"}),
        record("peer", 60, 70, "os", service="order-service", kind="CLIENT", attributes={"peer.service": "ledger"}),
    ]
    edges = call("build_service_dependencies", spans)
    try:
        got = [(e["caller"], e["callee"], e["calls"], e["errors"]) for e in edges]
    except (KeyError, TypeError) as exc:
        fail(did="read the service map", expected='dicts with "caller", "callee", "calls", "errors"',
             saw=f"{edges!r:.300} ({type(exc).__name__})")
    want = [("api-gateway", "api-gateway", 2, 0), ("api-gateway", "auth-service", 1, 0),
            ("api-gateway", "order-service", 1, 1), ("order-service", "api.example", 1, 1),
            ("order-service", "ledger", 1, 0), ("order-service", "redis", 1, 0)]
    want = [w for w in want if w[0] != w[1]]
    expect(got == want, did="built the service map of a gateway calling auth and order (order failing), and order "
           "calling redis, an external API (failing) and a peer.service", expected=f"(caller, callee, calls, errors) "
           f"sorted by caller then callee: {want}", saw=got)


def _store_spans(mesh):
    span_record = attr("services.shared.span_store", "SpanRecord")
    return [span_record.from_span(s) for s in mesh.spans()]


@check(step=5, criterion="performance-visible", todo="TODO 7", rules=("5.32", "5.35", "5.36"))
async def test_slow_payment_call_shows_on_the_critical_path_and_as_a_bottleneck(mesh):
    """A slow external payment call is on the critical path and a top bottleneck, and the map is whole"""
    mesh.provider_slow(0.025)
    did = "sent an order whose external payment call takes 25 ms, then GET /monitoring/traces/{trace_id}"
    order = await mesh.order()
    spans = mesh.spans()
    gateway = server_spans(spans, "api-gateway", "/api/orders")
    expect(order.status_code == 200 and gateway, did=did, expected="the order to go through with a gateway SERVER span",
           saw=f"{order.status_code}; gateway spans: {len(gateway)}", spans=spans)
    tid = trace_id(gateway[0])
    response = await mesh.get("gateway", f"/monitoring/traces/{tid}")
    expect(response.status_code == 200, did=did, expected="200 with the analysis",
           saw=f"{response.status_code} {response.text[:200]}")
    body = response.json()
    keys = {"trace_id", "total_duration_ms", "service_count", "span_count", "critical_path", "bottlenecks", "timeline",
            "service_map"}
    expect(keys <= body.keys(), did=did, expected=f"the keys {sorted(keys)}", saw=sorted(body))
    records = [r for r in _store_spans(mesh) if r.trace_id == tid]
    external = [r for r in records if r.service == "payment-service" and r.kind == "CLIENT"
                and "api.payment-provider.example" in str(r.attributes.get("url.full", "")) + str(r.attributes.get("server.address", ""))]
    expect(external, did=did, expected="a CLIENT span in payment-service for the external API", saw="none", spans=spans)
    on_path = {seg.get("span_id") for seg in body["critical_path"]}
    expect(external[0].span_id in on_path, did=did, expected="the external payment call on the critical path",
           saw=f"critical path: {[seg.get('name') for seg in body['critical_path']]}")
    top = call("identify_bottlenecks", records, threshold_ms=10.0, top=5)
    expect(external[0].span_id in {b.get("span_id") for b in top}, did=did + " (bottlenecks with threshold_ms=10, top=5)",
           expected="the external payment call among the top bottlenecks",
           saw=f"bottlenecks: {[(b.get('operation'), b.get('service')) for b in top]}")
    edges = {(e.get("caller"), e.get("callee")) for e in body["service_map"]}
    diagram = {("api-gateway", "auth-service"), ("api-gateway", "order-service"), ("order-service", "inventory-service"),
               ("order-service", "payment-service"), ("order-service", "redis"), ("inventory-service", "sqlite"),
               ("payment-service", "api.payment-provider.example")}
    expect(diagram <= edges, did=did, expected="the service map to hold every edge of the workshop's diagram",
           saw=f"missing {sorted(diagram - edges)}")
    expect(body["service_count"] == 5 and body["span_count"] == len(records), did=did,
           expected=f"service_count 5 and span_count {len(records)}",
           saw=f"service_count {body['service_count']}, span_count {body['span_count']}")


@check(step=5, criterion="performance-visible", todo="TODO 7", rules=("5.31", "5.33", "5.34"))
async def test_trace_endpoint_answers_404_and_422(mesh):
    """The trace endpoint: 404 for an unknown trace, 422 for a malformed id, dashes tolerated"""
    await mesh.order()
    tid = trace_id(server_spans(mesh.spans(), "api-gateway", "/api/orders")[0])
    dashed = f"{tid[:8]}-{tid[8:12]}-{tid[12:16]}-{tid[16:20]}-{tid[20:]}"
    answers = {}
    for label, trace in (("known, with dashes", dashed), ("unknown", "f" * 32), ("malformed", "not-a-trace-id")):
        answers[label] = (await mesh.get("gateway", f"/monitoring/traces/{trace}")).status_code
    want = {"known, with dashes": 200, "unknown": 404, "malformed": 422}
    expect(answers == want, did="asked /monitoring/traces/ for a stored trace (as a UUID), an unknown one and a "
           "malformed id", expected=str(want), saw=str(answers))
