"""The provided span store (`services/shared/span_store.py`, identical in both trees).

The module is loaded from `solution/` by its file path under a private name: the test process
never imports `services` (both trees define it), and the span store needs nothing else of it.
"""
from __future__ import annotations

import contextvars
import importlib.util
import json
import multiprocessing
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

MODULE_PATH = Path(__file__).resolve().parents[2] / "solution/services/shared/span_store.py"
TRACE = "0af7651916cd43dd8448eb211c80319c"
BASE = 1_700_000_000_000.0


def load_span_store(path: str | Path = MODULE_PATH):
    """The span store module, loaded once per process from its file."""
    name = "_kit_tests_span_store"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module          # dataclasses look their module up while building
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def ss():
    return load_span_store()


def record(ss, span_id, start, end, *, trace=TRACE, parent=None, name=None, service="svc",
           status="UNSET", **extra):
    return ss.SpanRecord(trace_id=trace, span_id=span_id.rjust(16, "0"),
                         parent_span_id=parent.rjust(16, "0") if parent else None,
                         name=name or span_id, service=service, start_ms=BASE + start,
                         duration_ms=end - start, status=status, **extra)


# --- SpanRecord ---------------------------------------------------------------------------

def test_from_span_reads_an_sdk_span_and_round_trips_through_json(ss):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "order-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as server:
        with tracer.start_as_current_span("process_payment", attributes={
                "order.id": "o-1", "order.total_amount": 99.5, "tags": ("a", "b")}) as span:
            try:
                raise ValueError("card declined")
            except ValueError as exc:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, "payment failed"))
        server.set_status(Status(StatusCode.OK))
    child_span, server_span = exporter.get_finished_spans()

    child = ss.SpanRecord.from_span(child_span)
    parent = ss.SpanRecord.from_span(server_span)
    assert child.trace_id == parent.trace_id == format(server_span.context.trace_id, "032x")
    assert child.span_id == format(child_span.context.span_id, "016x")
    assert child.parent_span_id == parent.span_id and parent.parent_span_id is None
    assert (child.name, child.service, child.kind, child.status) == (
        "process_payment", "order-service", "INTERNAL", "ERROR")
    assert (parent.kind, parent.status) == ("SERVER", "OK")
    assert child.status_description == "payment failed"
    assert child.start_ms == pytest.approx(child_span.start_time / 1e6)
    assert child.duration_ms == pytest.approx((child_span.end_time - child_span.start_time) / 1e6)
    assert child.end_ms == pytest.approx(child_span.end_time / 1e6)
    assert dict(child.attributes) == {"order.id": "o-1", "order.total_amount": 99.5,
                                      "tags": ("a", "b")}
    (event_name, event_attributes), = child.events
    assert event_name == "exception" and event_attributes["exception.type"] == "ValueError"
    assert event_attributes["exception.message"] == "card declined"

    data = json.loads(json.dumps(child.to_dict()))
    assert ss.SpanRecord.from_dict(data) == child
    assert hash(ss.SpanRecord.from_dict(data)) == hash(child)


def test_span_record_is_frozen_and_built_with_keywords(ss):
    r = record(ss, "a", 0, 10, attributes={"k": "v"})
    with pytest.raises(AttributeError):
        r.name = "b"
    with pytest.raises(TypeError):
        ss.SpanRecord(TRACE, "a" * 16, "n", "svc", BASE, 1.0)
    assert (r.kind, r.status, r.parent_span_id, r.events) == ("INTERNAL", "UNSET", None, ())
    assert isinstance(r.start_ms, float) and isinstance(r.duration_ms, float)


# --- the stores ---------------------------------------------------------------------------

def _three_traces(ss):
    """fast (10 ms, oldest), slow (500 ms), failing (50 ms, newest, one ERROR span)."""
    fast, slow, failing = "1" * 32, "2" * 32, "3" * 32
    return [
        record(ss, "f1", 0, 10, trace=fast, name="GET /fast", service="api-gateway"),
        record(ss, "f2", 2, 8, trace=fast, parent="f1", service="auth-service"),
        record(ss, "s1", 100, 600, trace=slow, name="POST /slow", service="api-gateway"),
        record(ss, "e1", 1000, 1050, trace=failing, name="POST /fail", parent="remote",
               service="api-gateway"),
        record(ss, "e2", 1010, 1040, trace=failing, parent="e1", service="order-service",
               status="ERROR"),
    ]


def _exporter_store(ss, tmp_path):
    return ss.ExporterBackedSpanStore(InMemorySpanExporter())


STORES = {
    "memory": lambda ss, tmp_path: ss.InMemorySpanStore(),
    "sqlite": lambda ss, tmp_path: ss.SqliteSpanStore(tmp_path / "spans.db"),
    "exporter": _exporter_store,
}


@pytest.mark.parametrize("kind", sorted(STORES))
def test_recent_traces_newest_first_with_filters(ss, tmp_path, kind):
    store = STORES[kind](ss, tmp_path)
    store.add(_three_traces(ss))
    recent = store.recent_traces()
    assert [s["trace_id"] for s in recent] == ["3" * 32, "2" * 32, "1" * 32]
    assert recent[0] == {"trace_id": "3" * 32, "root_name": "POST /fail",
                         "root_service": "api-gateway", "start_ms": BASE + 1000,
                         "duration_ms": 50.0, "span_count": 2,
                         "services": ["api-gateway", "order-service"], "error_count": 1}
    assert [s["trace_id"] for s in store.recent_traces(limit=2)] == ["3" * 32, "2" * 32]
    assert [s["trace_id"] for s in store.recent_traces(errors_only=True)] == ["3" * 32]
    assert [s["trace_id"] for s in store.recent_traces(min_duration_ms=100)] == ["2" * 32]
    assert store.recent_traces(errors_only=True, min_duration_ms=100) == []


@pytest.mark.parametrize("kind", sorted(STORES))
def test_get_trace_in_start_order_and_a_span_kept_once(ss, tmp_path, kind):
    store = STORES[kind](ss, tmp_path)
    spans = _three_traces(ss)
    store.add(reversed(spans))
    store.add([spans[1]])                                    # exported twice
    got = store.get_trace("1" * 32)
    assert got == [spans[0], spans[1]]
    assert store.get_trace("f" * 32) == []
    assert store.get_trace(("1" * 32).upper()) == got


def test_exporter_backed_store_reads_finished_spans_on_demand(ss):
    exporter = InMemorySpanExporter()
    store = ss.ExporterBackedSpanStore(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": "api-gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("GET /x") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert [r.name for r in store.get_trace(trace_id)] == ["GET /x"]
    assert store.recent_traces()[0]["trace_id"] == trace_id
    assert store.get_trace("not-a-trace-id") == []


def test_in_memory_store_forgets_the_oldest_traces(ss):
    store = ss.InMemorySpanStore(max_traces=2)
    for i in range(3):
        store.add([record(ss, "a", i, i + 1, trace=str(i) * 32)])
    assert store.get_trace("0" * 32) == [] and len(store.recent_traces()) == 2


def test_span_store_exporter_writes_to_a_store_and_never_raises(ss):
    store = ss.InMemorySpanStore()
    provider = TracerProvider(resource=Resource.create({"service.name": "auth-service"}))
    provider.add_span_processor(SimpleSpanProcessor(ss.SpanStoreExporter(store)))
    with provider.get_tracer("test").start_as_current_span("verify") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert [(r.name, r.service) for r in store.get_trace(trace_id)] == [("verify", "auth-service")]

    class Broken:
        def add(self, records):
            raise OSError("disk full")

    assert ss.SpanStoreExporter(Broken()).export([]) is SpanExportResult.FAILURE


# --- SQLite, written by two processes at once ---------------------------------------------

def _write_spans(module_path: str, db: str, writer: int, barrier, batches: int, size: int) -> None:
    ss = load_span_store(module_path)
    store = ss.SqliteSpanStore(db)
    barrier.wait(timeout=60)                                # both processes start together
    for b in range(batches):
        store.add([ss.SpanRecord(trace_id=f"{writer + 1:032x}",
                                 span_id=f"{writer:08x}{b * size + i:08x}", name=f"w{writer}",
                                 service=f"service-{writer}", start_ms=BASE + b * size + i,
                                 duration_ms=1.0, attributes={"batch": b})
                   for i in range(size)])


def test_sqlite_store_takes_writes_from_two_processes_at_once(ss, tmp_path):
    db = tmp_path / "spans.db"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    batches, size = 40, 25
    writers = [context.Process(target=_write_spans,
                               args=(str(MODULE_PATH), str(db), w, barrier, batches, size))
               for w in range(2)]
    for p in writers:
        p.start()
    try:
        for p in writers:
            p.join(timeout=120)
    finally:
        for p in writers:                                   # never leave one behind
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in writers] == [0, 0]

    store = ss.SqliteSpanStore(db)
    assert store._connect().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for w in range(2):
        spans = store.get_trace(f"{w + 1:032x}")
        assert len(spans) == batches * size
        assert [s.start_ms for s in spans] == sorted(s.start_ms for s in spans)
        assert {s.service for s in spans} == {f"service-{w}"}
        assert spans[-1].attributes == {"batch": batches - 1}
    assert {s["span_count"] for s in store.recent_traces()} == {batches * size}


# --- Application Insights through KQL ------------------------------------------------------

GOLDEN_TRACE_QUERY = """\
let trace_id = '0af7651916cd43dd8448eb211c80319c';
union AppRequests, AppDependencies, AppExceptions
| where OperationId == trace_id
| project TimeGenerated, Type, Id, ParentId, OperationId, Name, DurationMs, Success,
    ResultCode, AppRoleName, DependencyType, Target, Properties, ExceptionType, OuterMessage
| order by TimeGenerated asc
| take 10000"""


def test_kql_trace_query_is_the_golden_text_and_refuses_injection(ss):
    assert ss.build_trace_query(TRACE) == GOLDEN_TRACE_QUERY
    assert ss.build_trace_query("0AF76519-16CD-43DD-8448-EB211C80319C") == GOLDEN_TRACE_QUERY
    for bad in ["x' or 1 == 1 //", TRACE[:-1], TRACE + "0", "g" * 32]:
        with pytest.raises(ValueError):
            ss.build_trace_query(bad)


def test_kql_recent_traces_query(ss):
    assert ss.build_recent_traces_query(10, True, 250) == "\n".join([
        "union AppRequests, AppDependencies",
        "| summarize Start = min(TimeGenerated), End = max(TimeGenerated + 1ms * DurationMs),",
        "    Errors = countif(Success == false) by OperationId",
        "| extend DurationMs = (End - Start) / 1ms",
        "| where DurationMs >= 250.0",
        "| where Errors > 0",
        "| top 10 by Start desc",
        "| project OperationId"])


def _rows():
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    ms = at.timestamp() * 1000
    return ms, [
        {"TimeGenerated": at, "Type": "AppRequests", "Id": "00000000000000A1",
         "ParentId": TRACE, "OperationId": TRACE, "Name": "POST /api/orders", "DurationMs": 120.5,
         "Success": False, "ResultCode": "502", "AppRoleName": "workshop.api-gateway",
         "Properties": '{"user.id": "user-123"}'},
        {"TimeGenerated": "2024-05-01T12:00:00.010Z", "Type": "AppDependencies",
         "Id": "00000000000000b2", "ParentId": "00000000000000a1", "OperationId": TRACE,
         "Name": "process_order", "DurationMs": 100.0, "Success": True, "ResultCode": "0",
         "AppRoleName": "workshop.order-service", "DependencyType": "InProc",
         "Properties": {"order.id": "o-1"}},
        {"TimeGenerated": "2024-05-01T12:00:00.020Z", "Type": "AppDependencies",
         "Id": "00000000000000b3", "ParentId": "00000000000000b2", "OperationId": TRACE,
         "Name": "POST /v1/charges", "DurationMs": 50.0, "Success": "False", "ResultCode": "503",
         "AppRoleName": "workshop.payment-service", "DependencyType": "HTTP",
         "Target": "api.payment-provider.example:443", "Properties": None},
        {"TimeGenerated": "2024-05-01T12:00:00.030Z", "Type": "AppDependencies",
         "Id": "00000000000000b4", "ParentId": "00000000000000b2", "OperationId": TRACE,
         "Name": "GET", "DurationMs": 1.0, "Success": True, "AppRoleName": "order-service",
         "DependencyType": "redis", "Target": "localhost"},
        {"TimeGenerated": "2024-05-01T12:00:00.040Z", "Type": "AppExceptions",
         "ParentId": "00000000000000b3", "OperationId": TRACE,
         "ExceptionType": "httpx.ConnectError", "OuterMessage": "connection refused"},
    ]


def test_kql_rows_become_span_records(ss):
    ms, rows = _rows()
    gateway, work, charge, cache = ss.rows_to_span_records(rows)
    assert gateway == ss.SpanRecord(
        trace_id=TRACE, span_id="00000000000000a1", parent_span_id=None,
        name="POST /api/orders", service="api-gateway", kind="SERVER", start_ms=ms,
        duration_ms=120.5, status="ERROR",
        attributes={"user.id": "user-123", "http.response.status_code": 502})
    assert (work.kind, work.status, work.service, work.parent_span_id) == (
        "INTERNAL", "UNSET", "order-service", "00000000000000a1")
    assert work.start_ms == pytest.approx(ms + 10) and work.attributes == {"order.id": "o-1"}
    assert (charge.kind, charge.status) == ("CLIENT", "ERROR")
    assert charge.attributes == {"server.address": "api.payment-provider.example",
                                 "http.response.status_code": 503}
    assert charge.events == (("exception", {"exception.type": "httpx.ConnectError",
                                            "exception.message": "connection refused"}),)
    assert (cache.kind, cache.attributes) == ("CLIENT", {"db.system": "redis"})


def test_kql_store_queries_through_the_client_it_is_given(ss):
    ms, rows = _rows()
    columns = sorted({key for row in rows for key in row})
    calls = []

    class FakeLogsClient:
        def query_workspace(self, workspace_id, query, *, timespan):
            calls.append((workspace_id, query, timespan))
            table = SimpleNamespace(columns=columns,
                                    rows=[[row.get(c) for c in columns] for row in rows])
            return SimpleNamespace(tables=[table])

    store = ss.KqlSpanStore("workspace-1", client=FakeLogsClient())
    spans = store.get_trace(TRACE)
    assert [s.name for s in spans] == ["POST /api/orders", "process_order", "POST /v1/charges",
                                       "GET"]
    assert calls[0][:2] == ("workspace-1", GOLDEN_TRACE_QUERY) and calls[0][2] is not None
    assert store.get_trace("'; drop") == [] and len(calls) == 1
    store.add(spans)                                        # read-only: nothing happens


def test_kql_store_without_azure_monitor_query_says_so_in_one_line(ss, monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.monitor.query", None)   # import fails, as uninstalled
    store = ss.KqlSpanStore("workspace-1")                  # building it needs nothing
    with pytest.raises(ImportError) as raised:
        store.get_trace(TRACE)
    message = str(raised.value)
    assert isinstance(raised.value, ss.MissingDependencyError)
    assert "\n" not in message and "pip install azure-monitor-query" in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


# --- choosing the store -------------------------------------------------------------------

def test_store_from_env(ss, tmp_path):
    assert isinstance(ss.store_from_env({}), ss.InMemorySpanStore)
    db = tmp_path / "live.db"
    store = ss.store_from_env({"WORKSHOP_SPAN_DB": str(db)})
    assert isinstance(store, ss.SqliteSpanStore) and db.exists()
    store = ss.store_from_env({"WORKSHOP_SPAN_DB": str(db),
                               "WORKSHOP_APPINSIGHTS_WORKSPACE_ID": "workspace-1"})
    assert isinstance(store, ss.KqlSpanStore) and store.workspace_id == "workspace-1"


def test_the_store_in_use_is_one_global_seen_from_any_context(ss):
    assert isinstance(ss.get_span_store(), ss.SpanStore)
    mine = ss.InMemorySpanStore()
    previous = ss.set_span_store(mine)
    try:
        # A fresh, empty context, as the mesh gives each service call.
        assert contextvars.Context().run(ss.get_span_store) is mine
    finally:
        assert ss.set_span_store(previous) is mine


def test_the_viewers_copy_of_the_table_is_the_provided_stores(ss):
    """The viewer reads (and its tests and benchmark write) the provided store's table without
    importing any tree, from its own copy of the schema: the copy must say what the store says."""
    from kit.live.viewer.store import SPANS_SCHEMA

    def statements(script: str) -> list[str]:
        parts = [" ".join(p.split()) for p in script.split(";")]
        return [p for p in parts if p and p not in ("BEGIN IMMEDIATE", "COMMIT")]

    assert statements(SPANS_SCHEMA) == statements(ss._SCHEMA)
