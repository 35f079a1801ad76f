"""The viewer's index (`kit.live.viewer.index`) against small, obviously-correct oracles, on a
deterministic store (`benchmarks/bench_viewer.py`'s builder, 1,500 orders): search filters and
paging, nearest-rank percentiles and distributions of the performance tables, sample traces,
the extensions' figures, log lines, metric points and exemplars; and the capture side
(`kit.live.capture`) writing log lines and metric points as the live services do."""
from __future__ import annotations

import importlib.util
import json
import math
import sqlite3
from collections import defaultdict

import pytest

from kit import ROOT
from kit.live.viewer.index import Index, nearest_rank, parse_trace_id
from kit.live.viewer.tables import BUCKETS_MS

_spec = importlib.util.spec_from_file_location("bench_viewer", ROOT / "benchmarks" / "bench_viewer.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TRACES = 1_500
ALIASES = {"127.0.0.1:8009": "payment-provider"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("viewer-index") / "spans.db"
    facts = bench.build_store(path, TRACES, span_ms=6 * 3600_000)["facts"]
    index = Index(path, aliases=ALIASES, min_refresh_s=0)
    assert index.refresh(force=True) == TRACES * 13
    conn = sqlite3.connect(path)
    spans = [dict(zip(("trace_id", "span_id", "parent", "name", "service", "kind", "start_ms",
                       "duration_ms", "status", "attributes"), r))
             for r in conn.execute("SELECT trace_id, span_id, parent_span_id, name, service, kind, "
                                   "start_ms, duration_ms, status, attributes FROM spans")]
    conn.close()
    return {"index": index, "facts": facts, "spans": spans, "path": path}


def _traces(spans):
    out = defaultdict(list)
    for s in spans:
        out[s["trace_id"]].append(s)
    return out


def test_nearest_rank_is_the_contracts():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [nearest_rank(values, p) for p in (1, 20, 21, 50, 95, 100)] == [1, 1, 2, 3, 5, 5]
    assert nearest_rank([], 50) is None


def test_trace_ids_in_both_forms():
    tid = "0af7651916cd43dd8448eb211c80319c"
    assert parse_trace_id(tid.upper()) == tid
    assert parse_trace_id("0af76519-16cd-43dd-8448-eb211c80319c") == tid
    assert parse_trace_id("0af7651916cd43dd8448eb211c8031") is None
    assert parse_trace_id("zaf7651916cd43dd8448eb211c80319c") is None


def test_search_filters_and_pages_as_the_oracle(store):
    index, traces = store["index"], _traces(store["spans"])
    summary = {tid: {"start": min(s["start_ms"] for s in ss),
                     "duration": max(s["start_ms"] + s["duration_ms"] for s in ss) - min(s["start_ms"] for s in ss),
                     "errors": sum(s["status"] == "ERROR" for s in ss),
                     "requests": {(s["service"], s["name"]) for s in ss if s["kind"] == "SERVER"}}
               for tid, ss in traces.items()}
    lo = bench.T_END - 2 * 3600_000

    def oracle(pred):
        chosen = [t for t, v in summary.items() if v["start"] >= lo and pred(v)]
        return sorted(chosen, key=lambda t: -summary[t]["start"])

    cases = [
        ({}, lambda v: True),
        ({"errors_only": True}, lambda v: v["errors"] > 0),
        ({"min_duration_ms": 200}, lambda v: v["duration"] >= 200),
        ({"service": "payment-service"}, lambda v: any(s == "payment-service" for s, _ in v["requests"])),
        ({"service": "inventory-service", "operation": "POST /inventory/check", "errors_only": True},
         lambda v: ("inventory-service", "POST /inventory/check") in v["requests"] and v["errors"] > 0),
        ({"operation": "POST /payments/process", "min_duration_ms": 100},
         lambda v: ("payment-service", "POST /payments/process") in v["requests"] and v["duration"] >= 100),
    ]
    for filters, pred in cases:
        expected = oracle(pred)
        got = index.search(start_ms=lo, limit=1000, **filters)
        assert got["total"] == len(expected), filters
        assert [t["trace_id"] for t in got["traces"]] == expected, filters
        page2 = index.search(start_ms=lo, limit=7, offset=7, **filters)["traces"]
        assert [t["trace_id"] for t in page2] == expected[7:14], filters
    some = store["facts"][123]["trace_id"]
    uuid = f"{some[:8]}-{some[8:12]}-{some[12:16]}-{some[16:20]}-{some[20:]}"
    found = index.search(trace_id=uuid, errors_only=True)["traces"]
    assert [t["trace_id"] for t in found] == [some]
    assert found[0]["root_name"] == "POST /api/orders" and found[0]["span_count"] == 13


def _bucket(d):
    return next((i for i, b in enumerate(BUCKETS_MS) if d <= b), len(BUCKETS_MS))


@pytest.fixture(params=["read whole", "by bucket"])
def paths(request, store):
    """Both ways of ranking: a small range read whole, a large one walked bucket by bucket."""
    index = store["index"]
    saved = index._SMALL
    index._SMALL = saved if request.param == "read whole" else 0
    yield request.param
    index._SMALL = saved


def test_operations_and_dependencies_as_the_oracle(store, paths):
    index, spans = store["index"], store["spans"]
    lo, hi = bench.T_END - 3 * 3600_000, bench.T_END - 3600_000
    for kind, rows, name_of in (
            ("SERVER", index.operations(start_ms=lo, end_ms=hi), lambda r: (r["service"], r["operation"])),
            ("CLIENT", index.dependencies(start_ms=lo, end_ms=hi), lambda r: (r["caller"], r["key"]))):
        groups = defaultdict(list)
        for s in spans:
            if s["kind"] == kind and lo <= s["start_ms"] < hi:
                groups[s["service"], s["span_id"]] = s     # one entry per span
        by_row = defaultdict(list)
        for r in rows:
            by_row[name_of(r)] = r
        if kind == "SERVER":
            expect = defaultdict(list)
            for s in groups.values():
                expect[s["service"], s["name"]].append(s)
            assert set(expect) == set(by_row)
            for key, items in expect.items():
                r = by_row[key]
                durations = [s["duration_ms"] for s in items]
                assert r["count"] == len(items)
                assert r["failed"] == sum(s["status"] == "ERROR" for s in items)
                for p in (50, 95, 99):
                    assert r[f"p{p}_ms"] == nearest_rank(durations, p), (key, p)
                assert r["max_ms"] == max(durations)
                dist = [0] * (len(BUCKETS_MS) + 1)
                for d in durations:
                    dist[_bucket(d)] += 1
                assert r["distribution"] == dist
        else:
            targets = {r["target"] for r in rows}
            assert {"auth-service", "order-service", "inventory-service", "payment-service",
                    "payment-provider", "redis", "sqlite"} == targets
            http = [r for r in rows if r["type"] == "HTTP"]
            assert {r["name"] for r in http} == {"POST /auth/verify", "POST /orders",
                                                 "POST /inventory/check", "POST /payments/process",
                                                 "POST /v1/charges"}
            provider = next(r for r in rows if r["target"] == "payment-provider")
            calls = [s for s in groups.values() if '"server.port": 8009' in s["attributes"]]
            assert provider["count"] == len(calls)
            assert provider["p95_ms"] == nearest_rank([s["duration_ms"] for s in calls], 95)
            assert provider["failed"] == sum(s["status"] == "ERROR" for s in calls) > 0


def test_samples_are_the_slowest_and_the_failed(store):
    index, spans = store["index"], store["spans"]
    rows = index.dependencies()
    provider = next(r for r in rows if r["target"] == "payment-provider")
    found = index.samples(kind="CLIENT", service="payment-service", key=provider["key"], limit=5)
    calls = sorted((s for s in spans if '"server.port": 8009' in s["attributes"]),
                   key=lambda s: -s["duration_ms"])
    assert [r["span_id"] for r in found["slowest"]] == [s["span_id"] for s in calls[:5]]
    assert found["failed"] and all(r["status"] == "ERROR" for r in found["failed"])


def test_the_extensions_as_the_contract_defines_them(store, paths):
    index, spans = store["index"], store["spans"]
    gateway = [s for s in spans if s["kind"] == "SERVER" and s["name"] == "POST /api/orders"]
    slo = index.slo(service="api-gateway", operation="POST /api/orders", objective=0.9,
                    latency_ms=100.0)
    good = sum(s["status"] != "ERROR" and s["duration_ms"] <= 100.0 for s in gateway)
    assert (slo["total"], slo["good"]) == (len(gateway), good)
    sli = good / len(gateway)
    assert math.isclose(slo["burn_rate"], (1 - sli) / 0.1) and slo["met"] == (sli >= 0.9)
    assert math.isclose(slo["error_budget_remaining"], 1 - slo["burn_rate"])
    variants = index.compare_variants(bench.EXPERIMENT)
    by = defaultdict(list)
    for s in gateway:
        by[json.loads(s["attributes"])[f"experiment.{bench.EXPERIMENT}"]].append(s)
    assert set(variants) == set(by) == {"control", "treatment"}
    for v, items in by.items():
        d = [s["duration_ms"] for s in items]
        assert variants[v]["orders"] == len(items)
        assert variants[v]["p95_ms"] == nearest_rank(d, 95)
        assert variants[v]["errors"] == sum(s["status"] == "ERROR" for s in items)
    assert index.experiments() == [bench.EXPERIMENT]
    edges = {(e["caller"], e["callee"]): e for e in index.dependency_map()}
    assert set(edges) == {("api-gateway", "auth-service"), ("api-gateway", "order-service"),
                          ("order-service", "redis"), ("order-service", "inventory-service"),
                          ("inventory-service", "sqlite"), ("order-service", "payment-service"),
                          ("payment-service", "payment-provider")}
    to_order = [s["duration_ms"] for s in spans if s["kind"] == "CLIENT"
                and '"server.port": 8002' in s["attributes"]]
    assert edges["api-gateway", "order-service"]["p50_ms"] == nearest_rank(to_order, 50)
    rates = {r["service"]: r for r in index.error_rates()}
    assert rates["api-gateway"]["requests"] == TRACES
    slowest = index.slowest_operations(top=3)
    assert [r["p95_ms"] for r in slowest] == sorted((r["p95_ms"] for r in slowest), reverse=True)


def test_log_lines_metrics_and_exemplars(store):
    index, facts = store["index"], store["facts"]
    failed = next(f for f in facts if f["failed"])
    lines = index.logs_of(failed["trace_id"].upper())
    assert [(line["service"], line["event"], line["level"]) for line in lines] == [
        ("order-service", "Order failed", "warning")]
    assert lines[0]["fields"]["reason"] == "payment_error"
    m = index.request_metrics(service="api-gateway", start_ms=bench.T_END - 3600_000,
                              end_ms=bench.T_END + 1)
    assert m["requests"] == sum(m["counts"]) and len(m["bounds_ms"]) == 14
    assert m["bounds_ms"][0] == 5.0 and m["rate_per_s"] > 0
    some = index.exemplars(service="api-gateway", low_ms=None, high_ms=None, limit=500)
    assert some and {e["trace_id"] for e in some} <= {f["trace_id"] for f in facts}
    top = max(some, key=lambda e: e["value_ms"])
    hit = index.exemplars(service="api-gateway", low_ms=top["value_ms"] - 0.001,
                          high_ms=top["value_ms"], limit=500)
    assert top["trace_id"] in {e["trace_id"] for e in hit}


def test_an_index_catches_up_with_spans_added_later(store, tmp_path):
    path = tmp_path / "spans.db"
    bench.build_store(path, 20, span_ms=60_000)
    index = Index(path, min_refresh_s=0)
    assert index.search(limit=100)["total"] == 20
    conn = sqlite3.connect(path)
    row = list(conn.execute("SELECT * FROM spans LIMIT 1").fetchone())
    row[0], row[1], row[2] = "f" * 32, "e" * 16, None
    row[6] = bench.T_END + 10_000
    conn.execute(f"INSERT INTO spans VALUES ({', '.join('?' * len(row))})", row)
    conn.commit()
    conn.close()
    assert index.refresh(force=True) == 1
    assert index.search(limit=100)["traces"][0]["trace_id"] == "f" * 32


def test_capture_writes_log_lines_and_metric_points(tmp_path):
    import structlog
    from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from kit.live import capture

    path = tmp_path / "spans.db"
    old = structlog.get_config()
    try:
        capture.capture_logs(path, None)
        resource = Resource.create({"service.name": "order-service"})
        tracer = TracerProvider(resource=resource).get_tracer("t")
        reader = capture.metric_reader(path, interval_ms=3_600_000)
        meter = MeterProvider(resource=resource, metric_readers=[reader],
                              exemplar_filter=TraceBasedExemplarFilter()).get_meter("m")
        histogram = meter.create_histogram("http.server.request.duration", unit="s")
        with tracer.start_as_current_span("process_order") as span:
            structlog.get_logger().warning("Order failed", order_id="o-1")
            histogram.record(0.2, {"http.route": "/orders", "http.response.status_code": 502})
            ids = (f"{span.get_span_context().trace_id:032x}", f"{span.get_span_context().span_id:016x}")
        reader.force_flush()
        capture.flush_all()
    finally:
        structlog.configure(**{k: v for k, v in old.items()})
    conn = sqlite3.connect(path)
    logs = conn.execute("SELECT service, level, event, trace_id, span_id FROM kit_logs").fetchall()
    assert logs == [("order-service", "warning", "Order failed", *ids)]
    points = conn.execute("SELECT service, metric, count, status_code, route FROM kit_metric_points").fetchall()
    assert points == [("order-service", "http.server.request.duration", 1, 502, "/orders")]
    exemplars = conn.execute("SELECT trace_id, span_id, value FROM kit_exemplars").fetchall()
    assert exemplars == [(*ids, 0.2)]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_every_page_answers_before_any_span_is_stored(tmp_path, make):
    from fastapi.testclient import TestClient

    from kit.live.viewer.server import create_viewer_app
    from kit.live.viewer.store import SPANS_SCHEMA, SpanDatabase

    path = tmp_path / "spans.db"
    if make == "empty":
        sqlite3.connect(path).executescript(SPANS_SCHEMA)
    client = TestClient(create_viewer_app(SpanDatabase(path)))
    for url in ("/viewer/", "/viewer/performance", "/viewer/metrics", "/viewer/insights",
                "/viewer/map", "/viewer/?range=custom&from=2020-01-01T00:00",
                "/viewer/performance/samples?service=x&key=y",
                "/viewer/metrics?service=api-gateway&bucket=3"):
        assert client.get(url).status_code == 200, url
    assert client.get("/viewer/?trace=not-an-id").status_code == 422
    assert client.get("/viewer/traces/" + "a" * 32).status_code == 404


def test_a_file_indexed_with_another_layout_is_indexed_again(tmp_path):
    path = tmp_path / "spans.db"
    bench.build_store(path, 10, span_ms=60_000)
    assert Index(path, min_refresh_s=0).refresh(force=True) == 130
    conn = sqlite3.connect(path)
    conn.execute("UPDATE kit_state SET value = 'old' WHERE key = 'schema'")
    conn.execute("DROP INDEX kit_spans_by_grp")
    conn.commit()
    conn.close()
    again = Index(path, min_refresh_s=0)
    assert again.refresh(force=True) == 130
    assert again.search(limit=100)["total"] == 10
    assert len(again.operations()) == 5


def test_a_span_stored_again_is_counted_once(tmp_path):
    path = tmp_path / "spans.db"
    bench.build_store(path, 30, span_ms=30 * 60_000)
    index = Index(path, min_refresh_s=0)
    index._SMALL = 0                                   # the rollup path
    before = {r["operation"]: r for r in index.operations()}
    conn = sqlite3.connect(path)
    row = list(conn.execute("SELECT * FROM spans WHERE name = 'POST /auth/verify' "
                            "ORDER BY start_ms LIMIT 1").fetchone())
    row[7] = 9_999.0                                   # exported again, now 10 s long
    conn.execute(f"INSERT OR REPLACE INTO spans VALUES ({', '.join('?' * len(row))})", row)
    conn.commit()
    conn.close()
    assert index.refresh(force=True) == 1
    after = {r["operation"]: r for r in index.operations()}
    assert after["POST /auth/verify"]["count"] == before["POST /auth/verify"]["count"] == 30
    assert after["POST /auth/verify"]["max_ms"] == after["POST /auth/verify"]["p99_ms"] == 9_999.0
    assert after["POST /api/orders"] == before["POST /api/orders"]
