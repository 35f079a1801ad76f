"""Where finished spans are kept, so that the gateway can analyse a whole trace.

A trace is spread over five services, and each service exports only its own spans. To analyse
a trace (Step 5's `/monitoring/traces/{trace_id}`) something must hold every span of it in one
place: that is a span store. This module is provided code, identical in `exercise/` and
`solution/`.

`SpanRecord` is one finished span as plain data: ids as lowercase hex, `kind` and `status` as
strings (`"SERVER"`, `"ERROR"`, ...), times in epoch milliseconds. Build one with keyword
arguments, or from an SDK span with `SpanRecord.from_span(span)` (its `service` is the span's
resource `service.name`). `to_dict()` / `from_dict()` turn it into JSON-ready data and back.

Every store has the same three methods (the `SpanStore` protocol):

- `add(records)` keeps span records (the same span id added twice is kept once, the later wins);
- `get_trace(trace_id)` returns the records of one trace, in start order (`[]` if unknown);
- `recent_traces(limit=50, errors_only=False, min_duration_ms=0.0)` returns summaries of the
  latest traces, newest first (see `summarize_trace`).

The stores:

- `InMemorySpanStore()`: a dict behind a lock; the default.
- `ExporterBackedSpanStore(exporter)`: a read-through view of an SDK `InMemorySpanExporter`,
  converting its finished spans on demand. The kit's in-process mesh uses this one.
- `SqliteSpanStore(path)`: one SQLite file that several service processes write at once
  (WAL mode, a busy timeout, one connection per thread and process).
- `KqlSpanStore(workspace_id)`: Application Insights behind the same interface, read with a KQL
  query from the Log Analytics workspace. Needs `pip install azure-monitor-query azure-identity`.

`SpanStoreExporter(store)` is a `SpanExporter` that writes every exported span into a store, so
any service can feed one. `get_span_store()` / `set_span_store(store)` hold the store in use (a
plain module global: the mesh runs each service in a fresh `contextvars.Context`, so a
ContextVar would not be shared); `store_from_env()` picks one from the environment.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_logger = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdef")


def normalize_trace_id(trace_id: str) -> str:
    """`trace_id` as 32 lowercase hex digits (dashes of a UUID form removed), or ValueError."""
    tid = str(trace_id).replace("-", "").strip().lower()
    if len(tid) != 32 or not _HEX.issuperset(tid):
        raise ValueError(f"a trace id is 32 hex digits, got {trace_id!r}")
    return tid


def _freeze_value(value: Any) -> Any:
    # OpenTelemetry attribute values are scalars or sequences of scalars (tuples in the SDK);
    # JSON brings sequences back as lists, so lists become tuples again.
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=1024)
def _trace_hex(trace_id: int) -> str:
    # Every span of a trace shares one id string: a store may hold millions of spans.
    return format(trace_id, "032x")


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanRecord:
    """One finished span as plain, immutable data (build it with keyword arguments)."""

    trace_id: str                      # 32 lowercase hex digits
    span_id: str                       # 16 lowercase hex digits
    name: str
    service: str                       # the resource's service.name
    start_ms: float                    # epoch milliseconds
    duration_ms: float
    parent_span_id: str | None = None  # None for a trace's first span
    kind: str = "INTERNAL"             # SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER
    status: str = "UNSET"              # OK, ERROR, UNSET
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # (name, attributes), e.g. exceptions
    status_description: str | None = None

    def __post_init__(self) -> None:
        # Own copies, so that the record cannot change under a caller's feet.
        object.__setattr__(self, "start_ms", float(self.start_ms))
        object.__setattr__(self, "duration_ms", float(self.duration_ms))
        object.__setattr__(self, "attributes", dict(self.attributes or {}))
        object.__setattr__(
            self, "events", tuple((str(n), dict(a or {})) for n, a in (self.events or ()))
        )

    def __hash__(self) -> int:
        # The generated hash would fail on the attribute dict; ids identify a span anyway.
        return hash((self.trace_id, self.span_id))

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms

    @classmethod
    def from_span(cls, span: ReadableSpan) -> SpanRecord:
        """The record of an SDK span (`ReadableSpan`, as exporters receive them)."""
        ctx = span.get_span_context()
        parent = span.parent
        start = span.start_time or 0
        end = span.end_time if span.end_time is not None else start
        resource = span.resource.attributes if span.resource is not None else {}
        return cls(
            trace_id=_trace_hex(ctx.trace_id),
            span_id=format(ctx.span_id, "016x"),
            parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
            name=span.name,
            service=str(resource.get("service.name", "unknown_service")),
            kind=span.kind.name,
            start_ms=start / 1e6,
            duration_ms=(end - start) / 1e6,
            status=span.status.status_code.name,
            status_description=span.status.description,
            attributes=dict(span.attributes or {}),
            events=tuple((e.name, dict(e.attributes or {})) for e in span.events),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (sequences become lists)."""
        return {
            "trace_id": self.trace_id, "span_id": self.span_id,
            "parent_span_id": self.parent_span_id, "name": self.name,
            "service": self.service, "kind": self.kind, "start_ms": self.start_ms,
            "duration_ms": self.duration_ms, "status": self.status,
            "status_description": self.status_description,
            "attributes": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in self.attributes.items()},
            "events": [[n, {k: list(v) if isinstance(v, tuple) else v for k, v in a.items()}]
                       for n, a in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpanRecord:
        """The inverse of `to_dict()`; unknown keys are ignored."""
        return cls(
            trace_id=data["trace_id"], span_id=data["span_id"],
            parent_span_id=data.get("parent_span_id"), name=data["name"],
            service=data["service"], kind=data.get("kind", "INTERNAL"),
            start_ms=float(data["start_ms"]), duration_ms=float(data["duration_ms"]),
            status=data.get("status", "UNSET"),
            status_description=data.get("status_description"),
            attributes={k: _freeze_value(v) for k, v in (data.get("attributes") or {}).items()},
            events=tuple((n, {k: _freeze_value(v) for k, v in (a or {}).items()})
                         for n, a in (data.get("events") or ())),
        )


def summarize_trace(records: Sequence[SpanRecord]) -> dict[str, Any]:
    """One line about a trace, as `recent_traces` returns it.

    `{"trace_id", "root_name", "root_service", "start_ms", "duration_ms", "span_count",
    "services", "error_count"}`; the root is the earliest span whose parent is not in the trace.
    """
    ids = {r.span_id for r in records}
    ordered = sorted(records, key=lambda r: r.start_ms)
    root = next((r for r in ordered if r.parent_span_id not in ids), ordered[0])
    start = ordered[0].start_ms
    return {
        "trace_id": root.trace_id,
        "root_name": root.name,
        "root_service": root.service,
        "start_ms": start,
        "duration_ms": max(r.end_ms for r in records) - start,
        "span_count": len(records),
        "services": sorted({r.service for r in records}),
        "error_count": sum(r.status == "ERROR" for r in records),
    }


def _select(summaries: Iterable[dict], limit: int, errors_only: bool,
            min_duration_ms: float) -> list[dict]:
    chosen = [s for s in summaries
              if (not errors_only or s["error_count"]) and s["duration_ms"] >= min_duration_ms]
    chosen.sort(key=lambda s: s["start_ms"], reverse=True)
    return chosen[:limit]


@runtime_checkable
class SpanStore(Protocol):
    """What the gateway and the trace viewer need from a place that keeps spans."""

    def add(self, records: Iterable[SpanRecord]) -> None: ...
    def get_trace(self, trace_id: str) -> list[SpanRecord]: ...
    def recent_traces(self, limit: int = 50, errors_only: bool = False,
                      min_duration_ms: float = 0.0) -> list[dict]: ...


class InMemorySpanStore:
    """Spans in a dict behind a lock; the oldest traces go once `max_traces` are held."""

    def __init__(self, max_traces: int | None = 10_000) -> None:
        self._traces: OrderedDict[str, dict[str, SpanRecord]] = OrderedDict()
        self._max = max_traces
        self._lock = threading.Lock()

    def add(self, records: Iterable[SpanRecord]) -> None:
        with self._lock:
            for r in records:
                self._traces.setdefault(r.trace_id.lower(), {})[r.span_id] = r
            while self._max is not None and len(self._traces) > self._max:
                self._traces.popitem(last=False)

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        with self._lock:
            spans = list(self._traces.get(str(trace_id).lower(), {}).values())
        return sorted(spans, key=lambda r: r.start_ms)

    def recent_traces(self, limit: int = 50, errors_only: bool = False,
                      min_duration_ms: float = 0.0) -> list[dict]:
        with self._lock:
            traces = [list(t.values()) for t in self._traces.values() if t]
        return _select(map(summarize_trace, traces), limit, errors_only, min_duration_ms)

    def records(self) -> list[SpanRecord]:
        """Every record held, trace by trace."""
        with self._lock:
            return [r for t in self._traces.values() for r in t.values()]

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()


class ExporterBackedSpanStore:
    """A view of an SDK `InMemorySpanExporter`: its finished spans, read when asked.

    Nothing is copied at export time, so a check sees exactly what the services exported.
    Records passed to `add()` are kept beside them.
    """

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self._extra = InMemorySpanStore(max_traces=None)

    def add(self, records: Iterable[SpanRecord]) -> None:
        self._extra.add(records)

    def _records(self, trace_id: str | None = None) -> list[SpanRecord]:
        want = int(trace_id, 16) if trace_id else None
        spans = [SpanRecord.from_span(s) for s in self._exporter.get_finished_spans()
                 if want is None or s.get_span_context().trace_id == want]
        return spans

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        try:
            tid = normalize_trace_id(trace_id)
        except ValueError:
            return []
        merged = {r.span_id: r for r in self._records(tid)}
        merged.update((r.span_id, r) for r in self._extra.get_trace(tid))
        return sorted(merged.values(), key=lambda r: r.start_ms)

    def recent_traces(self, limit: int = 50, errors_only: bool = False,
                      min_duration_ms: float = 0.0) -> list[dict]:
        store = InMemorySpanStore(max_traces=None)
        store.add(self._records())
        store.add(self._extra.records())
        return store.recent_traces(limit, errors_only, min_duration_ms)


_COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "service", "kind", "start_ms",
            "duration_ms", "status", "status_description", "attributes", "events")
_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    name TEXT NOT NULL, service TEXT NOT NULL, kind TEXT NOT NULL,
    start_ms REAL NOT NULL, duration_ms REAL NOT NULL, status TEXT NOT NULL,
    status_description TEXT, attributes TEXT NOT NULL, events TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id));
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ms);
COMMIT;
"""


class SqliteSpanStore:
    """Spans in one SQLite file that several processes can write at the same time.

    WAL mode lets readers carry on while one writer writes; the busy timeout makes a second
    writer wait for the lock instead of failing. Every write transaction takes the write lock
    when it begins (BEGIN IMMEDIATE): a transaction that read first and wanted to write later
    could find another process's commit in between, and fail at once. Each thread of each
    process gets its own connection (a connection must never cross a thread or a fork).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._timeout_s = timeout_s
        self._local = threading.local()
        conn = self._connect()
        deadline = time.monotonic() + timeout_s
        while True:  # WAL is a property of the file, set once; another process may hold it
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        conn = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level="IMMEDIATE")
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        self._local.conn = (os.getpid(), conn)
        return conn

    def add(self, records: Iterable[SpanRecord]) -> None:
        rows = [(r.trace_id.lower(), r.span_id, r.parent_span_id, r.name, r.service, r.kind,
                 r.start_ms, r.duration_ms, r.status, r.status_description,
                 json.dumps(d["attributes"], default=str), json.dumps(d["events"], default=str))
                for r in records for d in (r.to_dict(),)]
        if rows:
            with self._connect() as conn:  # one transaction
                conn.executemany(f"INSERT OR REPLACE INTO spans ({', '.join(_COLUMNS)}) "
                                 f"VALUES ({', '.join('?' * len(_COLUMNS))})", rows)

    def _fetch(self, where: str, args: Sequence[Any]) -> list[SpanRecord]:
        cur = self._connect().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM spans WHERE {where} ORDER BY start_ms", args)
        out = []
        for row in cur:
            data = dict(zip(_COLUMNS, row))
            data["attributes"] = json.loads(data["attributes"])
            data["events"] = json.loads(data["events"])
            out.append(SpanRecord.from_dict(data))
        return out

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        return self._fetch("trace_id = ?", (str(trace_id).lower(),))

    def recent_traces(self, limit: int = 50, errors_only: bool = False,
                      min_duration_ms: float = 0.0) -> list[dict]:
        # Filter and order in SQL, then summarise the chosen traces like every other store.
        having = ["MAX(start_ms + duration_ms) - MIN(start_ms) >= ?"]
        if errors_only:
            having.append("SUM(status = 'ERROR') > 0")
        ids = [row[0] for row in self._connect().execute(
            f"SELECT trace_id FROM spans GROUP BY trace_id HAVING {' AND '.join(having)} "
            "ORDER BY MIN(start_ms) DESC LIMIT ?", (min_duration_ms, int(limit)))]
        if not ids:
            return []
        by_trace: dict[str, list[SpanRecord]] = {tid: [] for tid in ids}
        for r in self._fetch(f"trace_id IN ({', '.join('?' * len(ids))})", ids):
            by_trace[r.trace_id].append(r)
        return [summarize_trace(by_trace[tid]) for tid in ids]

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's data goes)."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            held[1].close()
            self._local.conn = None


class SpanStoreExporter(SpanExporter):
    """A `SpanExporter` that writes every exported span into `store`."""

    def __init__(self, store: SpanStore) -> None:
        self.store = store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.add([SpanRecord.from_span(s) for s in spans])
        except Exception:  # an exporter must never raise into the SDK
            _logger.exception("could not write %d spans to %r", len(spans), self.store)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


# --- Application Insights (Log Analytics workspace), read with KQL --------------------------

class MissingDependencyError(ImportError):
    """An optional package that a span store needs is not installed."""


#: The spans of one trace. The Azure Monitor exporter writes SERVER/CONSUMER spans to
#: AppRequests, the other kinds to AppDependencies (INTERNAL ones with type "InProc") and each
#: exception event to AppExceptions (ParentId = the span it happened in).
_TRACE_QUERY = """\
let trace_id = '{trace_id}';
union AppRequests, AppDependencies, AppExceptions
| where OperationId == trace_id
| project TimeGenerated, Type, Id, ParentId, OperationId, Name, DurationMs, Success,
    ResultCode, AppRoleName, DependencyType, Target, Properties, ExceptionType, OuterMessage
| order by TimeGenerated asc
| take 10000"""


def build_trace_query(trace_id: str) -> str:
    """The KQL query for every span of `trace_id` (validated first: nothing else can slip in)."""
    return _TRACE_QUERY.format(trace_id=normalize_trace_id(trace_id))


def build_recent_traces_query(limit: int = 50, errors_only: bool = False,
                              min_duration_ms: float = 0.0) -> str:
    """The KQL query for the ids of the latest traces (newest first) that pass the filters."""
    where = [f"| where DurationMs >= {float(min_duration_ms)!r}"]
    if errors_only:
        where.append("| where Errors > 0")
    return "\n".join([
        "union AppRequests, AppDependencies",
        "| summarize Start = min(TimeGenerated), End = max(TimeGenerated + 1ms * DurationMs),",
        "    Errors = countif(Success == false) by OperationId",
        "| extend DurationMs = (End - Start) / 1ms",
        *where,
        f"| top {int(limit)} by Start desc",
        "| project OperationId"])


def _epoch_ms(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp() * 1000.0


def _as_dict(value: Any) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value else {}
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


_DB_TYPES = {"mysql", "postgresql", "mongodb", "redis", "sql"}


def rows_to_span_records(rows: Iterable[Mapping[str, Any]], *,
                         namespace: str = "workshop") -> list[SpanRecord]:
    """Map rows of `build_trace_query` (column name -> value) to span records.

    The exporter names a role `<service.namespace>.<service.name>`: the namespace is taken off.
    App Insights keeps only success or failure, so the status is `ERROR` or `UNSET`, and
    OpenTelemetry's own attributes (http.*, db.*) live in columns: the ones the analysis needs
    (`server.address`, `db.system`, `http.response.status_code`) are rebuilt from them.
    """
    spans: list[dict[str, Any]] = []
    exceptions: dict[str, list] = {}
    for row in rows:
        table = row.get("Type")
        if table == "AppExceptions":
            exceptions.setdefault(row.get("ParentId") or "", []).append(("exception", {
                "exception.type": row.get("ExceptionType") or "",
                "exception.message": row.get("OuterMessage") or ""}))
            continue
        trace_id = str(row["OperationId"]).lower()
        parent = row.get("ParentId") or None
        dep_type = str(row.get("DependencyType") or "")
        attributes = _as_dict(row.get("Properties"))
        if table == "AppRequests":
            kind = "SERVER"
        elif dep_type.startswith("InProc"):
            kind = "INTERNAL"
        else:
            kind = "PRODUCER" if dep_type.startswith("Queue Message") else "CLIENT"
            target = row.get("Target")
            if dep_type.lower() in _DB_TYPES:
                attributes.setdefault("db.system", dep_type.lower())
            elif dep_type.upper() == "HTTP" and target:
                attributes.setdefault("server.address", str(target).split(":")[0])
            elif target:
                attributes.setdefault("peer.service", str(target))
        code = str(row.get("ResultCode") or "")
        if code.isdigit() and code != "0":
            attributes.setdefault("http.response.status_code", int(code))
        service = str(row.get("AppRoleName") or "unknown_service")
        if namespace and service.startswith(namespace + "."):
            service = service[len(namespace) + 1:]
        success = row.get("Success")
        failed = success is False or str(success).lower() == "false"
        spans.append(dict(
            trace_id=trace_id, span_id=str(row["Id"]).lower(),
            parent_span_id=None if not parent or parent.lower() == trace_id else parent.lower(),
            name=str(row.get("Name") or ""), service=service, kind=kind,
            start_ms=_epoch_ms(row["TimeGenerated"]),
            duration_ms=float(row.get("DurationMs") or 0.0),
            status="ERROR" if failed else "UNSET", attributes=attributes))
    return [SpanRecord(**s, events=tuple(exceptions.get(s["span_id"], ()))) for s in spans]


class KqlSpanStore:
    """Spans read from Application Insights (a Log Analytics workspace) with KQL.

    Read-only: the services put spans there with the Azure Monitor exporter, so `add()` does
    nothing. Needs `azure-monitor-query` (and `azure-identity` unless `credential` or `client`
    is given); the client is made on first use, never at import or construction.
    """

    def __init__(self, workspace_id: str, credential: Any = None, client: Any = None, *,
                 timespan: timedelta = timedelta(days=1), namespace: str = "workshop") -> None:
        self.workspace_id = workspace_id
        self._credential = credential
        self._client = client
        self._timespan = timespan
        self._namespace = namespace

    def _query_client(self) -> Any:
        if self._client is None:
            credential, needed = self._credential, "azure-monitor-query"
            try:
                from azure.monitor.query import LogsQueryClient
                if credential is None:
                    needed = "azure-identity"
                    from azure.identity import DefaultAzureCredential
                    credential = DefaultAzureCredential()
            except ImportError:
                raise MissingDependencyError(
                    f"KqlSpanStore needs the {needed} package, which is not installed: "
                    "pip install azure-monitor-query azure-identity") from None
            self._client = LogsQueryClient(credential)
        return self._client

    def _rows(self, query: str) -> list[dict[str, Any]]:
        response = self._query_client().query_workspace(
            self.workspace_id, query, timespan=self._timespan)
        tables = getattr(response, "tables", None) or getattr(response, "partial_data", None)
        rows: list[dict[str, Any]] = []
        for table in tables or ():
            columns = [getattr(c, "name", c) for c in table.columns]
            rows.extend(dict(zip(columns, row)) for row in table.rows)
        return rows

    def add(self, records: Iterable[SpanRecord]) -> None:
        pass

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        try:
            query = build_trace_query(trace_id)
        except ValueError:
            return []
        records = rows_to_span_records(self._rows(query), namespace=self._namespace)
        return sorted(records, key=lambda r: r.start_ms)

    def recent_traces(self, limit: int = 50, errors_only: bool = False,
                      min_duration_ms: float = 0.0) -> list[dict]:
        ids = [row["OperationId"] for row in
               self._rows(build_recent_traces_query(limit, errors_only, min_duration_ms))]
        return [summarize_trace(spans) for spans in map(self.get_trace, ids) if spans]


# --- the store in use -----------------------------------------------------------------------

def store_from_env(environ: Mapping[str, str] | None = None) -> SpanStore:
    """Kql if `WORKSHOP_APPINSIGHTS_WORKSPACE_ID` is set, else SQLite if `WORKSHOP_SPAN_DB`
    is set (a file path), else in memory."""
    env = os.environ if environ is None else environ
    if env.get("WORKSHOP_APPINSIGHTS_WORKSPACE_ID"):
        return KqlSpanStore(env["WORKSHOP_APPINSIGHTS_WORKSPACE_ID"])
    if env.get("WORKSHOP_SPAN_DB"):
        return SqliteSpanStore(env["WORKSHOP_SPAN_DB"])
    return InMemorySpanStore()


_store: SpanStore = InMemorySpanStore()


def get_span_store() -> SpanStore:
    """The store in use (an `InMemorySpanStore` until `set_span_store` is called)."""
    return _store


def set_span_store(store: SpanStore) -> SpanStore:
    """Make `store` the one in use, for every service in the process; returns the previous."""
    global _store
    previous, _store = _store, store
    return previous
