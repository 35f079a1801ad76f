"""What a live service process writes beside its spans: its log lines and its metrics.

Both go into the same SQLite file as the spans (`WORKSHOP_SPAN_DB`), in tables of the kit's own
(`kit_logs`, `kit_metric_points`, `kit_exemplars`), so the viewer can show a trace's log lines
next to its waterfall and a latency histogram whose buckets lead to traces.

- **Logs**: `capture_logs(db, service)` configures the provided structured logging
  (`services.shared.logs.configure_logging`) and adds one processor that keeps every event with
  the trace id and span id current when it was logged (the event's own `trace_id`/`span_id`
  when Step 2 put them there, else the current OpenTelemetry span's), and a handler that does the
  same for the standard `logging` records of WARNING and above. Lines are written in batches by
  a background thread (`flush()` writes at once).
- **Metrics**: `metric_reader(db)` is a periodic reader (every 5 s, and at every
  `telemetry.force_flush()`) with delta temporality, whose exporter writes each histogram and
  counter point with its exemplars. The service passes it to the learner's
  `initialize(metric_reader=...)` through `create_app(..., metric_reader=...)`.

Nothing here may break a service: every write failure is logged once and dropped.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

logger = logging.getLogger("kit.live")

SCHEMA = """
CREATE TABLE IF NOT EXISTS kit_logs (
    time_ms REAL NOT NULL, service TEXT NOT NULL, level TEXT NOT NULL, event TEXT NOT NULL,
    logger TEXT, trace_id TEXT, span_id TEXT, fields TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS kit_logs_by_trace ON kit_logs (trace_id, time_ms);
CREATE INDEX IF NOT EXISTS kit_logs_by_time ON kit_logs (time_ms);
CREATE TABLE IF NOT EXISTS kit_metric_points (
    service TEXT NOT NULL, metric TEXT NOT NULL, unit TEXT, kind TEXT NOT NULL,
    start_ms REAL NOT NULL, end_ms REAL NOT NULL, attributes TEXT NOT NULL,
    status_code INTEGER, route TEXT, count INTEGER, sum REAL, value REAL,
    bounds TEXT, bucket_counts TEXT);
CREATE INDEX IF NOT EXISTS kit_points_by_metric ON kit_metric_points (metric, end_ms);
CREATE TABLE IF NOT EXISTS kit_exemplars (
    service TEXT NOT NULL, metric TEXT NOT NULL, time_ms REAL NOT NULL, value REAL NOT NULL,
    trace_id TEXT NOT NULL, span_id TEXT, status_code INTEGER, route TEXT);
CREATE INDEX IF NOT EXISTS kit_exemplars_by_metric ON kit_exemplars (metric, service, time_ms);
"""


def connect(path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection to the span file with the kit's tables created (WAL, busy timeout)."""
    conn = sqlite3.connect(os.fspath(path), timeout=timeout_s, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _Writer:
    """Rows queued by any thread, written in one transaction per table by a background thread
    (every `interval_s`, and at `flush()`)."""

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self.path = path
        self._rows: dict[str, list[tuple]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._warned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(interval_s,), daemon=True,
                                        name="kit-live-capture")
        self._thread.start()

    def put(self, sql: str, rows: Iterable[tuple]) -> None:
        with self._lock:
            self._rows.setdefault(sql, []).extend(rows)

    def flush(self) -> bool:
        with self._lock:
            pending, self._rows = self._rows, {}
        if not pending:
            return True
        with self._write_lock:
            try:
                if self._conn is None:
                    self._conn = connect(self.path)
                with self._conn:
                    for sql, rows in pending.items():
                        self._conn.executemany(sql, rows)
                return True
            except Exception:  # noqa: BLE001 - capture must never break the service
                if not self._warned:
                    self._warned = True
                    logger.exception("could not write logs/metrics to %s (warned once)", self.path)
                return False

    def _loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()


_WRITERS: dict[str, _Writer] = {}


def writer(path: str | os.PathLike[str]) -> _Writer:
    """The one background writer of this process for `path`."""
    key = os.fspath(path)
    if key not in _WRITERS:
        _WRITERS[key] = _Writer(key)
    return _WRITERS[key]


def flush_all() -> bool:
    return all([w.flush() for w in list(_WRITERS.values())])


# -- logs ----------------------------------------------------------------------------------------

_LOG_SQL = ("INSERT INTO kit_logs (time_ms, service, level, event, logger, trace_id, span_id, "
            "fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_RESERVED = {"event", "level", "timestamp", "trace_id", "span_id", "logger"}


def _current_ids() -> tuple[str | None, str | None]:
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _hex(value: Any, width: int) -> str | None:
    if isinstance(value, int):
        return f"{value:0{width}x}"
    if isinstance(value, str):
        text = value.replace("-", "").strip().lower()
        if len(text) == width and all(c in "0123456789abcdef" for c in text):
            return text
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _current_service() -> str:
    from opentelemetry import trace

    resource = getattr(trace.get_current_span(), "resource", None)
    return str(getattr(resource, "attributes", {}).get("service.name", "?")) if resource is not None else "?"


class _LogCapture:
    """A structlog processor (and a `logging.Handler` twin) that queues each event."""

    def __init__(self, sink: _Writer, service: str | None) -> None:
        self.sink, self.service = sink, service

    def row(self, *, level: str, event: str, logger_name: str | None, trace_id: Any,
            span_id: Any, fields: dict[str, Any], when_ms: float | None = None) -> None:
        tid, sid = _hex(trace_id, 32), _hex(span_id, 16)
        if tid is None:
            tid, sid = _current_ids()
        service = self.service or _current_service()   # None: the current span's service
        self.sink.put(_LOG_SQL, [(when_ms or time.time() * 1000, service, level.lower(),
                                  str(event), logger_name, tid, sid,
                                  json.dumps(_jsonable(fields), default=str))])

    def __call__(self, logger_: Any, method_name: str, event_dict: dict) -> dict:
        try:
            fields = {k: v for k, v in event_dict.items() if k not in _RESERVED}
            exc = event_dict.get("exc_info")
            if exc:
                if exc is True:
                    import sys
                    exc = sys.exc_info()
                if isinstance(exc, BaseException):
                    exc = (type(exc), exc, exc.__traceback__)
                if isinstance(exc, tuple) and exc[0] is not None:
                    fields["exception"] = "".join(traceback.format_exception(*exc))
                fields.pop("exc_info", None)
            self.row(level=str(event_dict.get("level") or method_name),
                     event=str(event_dict.get("event", "")),
                     logger_name=event_dict.get("logger"),
                     trace_id=event_dict.get("trace_id"), span_id=event_dict.get("span_id"),
                     fields=fields)
        except Exception:  # noqa: BLE001 - logging must go on
            pass
        return event_dict


class _Handler(logging.Handler):
    def __init__(self, capture: _LogCapture) -> None:
        super().__init__(logging.WARNING)
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("kit.live"):
            return
        try:
            fields: dict[str, Any] = {}
            if record.exc_info and record.exc_info[0] is not None:
                fields["exception"] = "".join(traceback.format_exception(*record.exc_info))
            self.capture.row(level=record.levelname, event=record.getMessage(),
                             logger_name=record.name, trace_id=None, span_id=None,
                             fields=fields, when_ms=record.created * 1000)
        except Exception:  # noqa: BLE001
            pass


def _safe(processor: Any) -> Any:
    """A learner's processor (Step 2's `add_trace_ids`) that raises must not lose the line."""
    def run(logger_: Any, method_name: str, event_dict: dict) -> dict:
        try:
            result = processor(logger_, method_name, event_dict)
        except Exception:  # noqa: BLE001
            return event_dict
        return result if isinstance(result, dict) else event_dict
    return run


def capture_logs(path: str | os.PathLike[str], service: str | None) -> _LogCapture:
    """Send this process's structlog events (and WARNING+ `logging` records) to the store too;
    the lines still go to stdout (the service's log file) as the provided set-up prints them.
    `service` names the lines; None takes the current span's service (several services in one
    process, as in a notebook). Calling it again replaces the earlier capture."""
    import structlog

    sink = writer(path)
    capture = _LogCapture(sink, service)
    try:
        from services.shared.logs import configure_logging

        configure_logging()
        processors = list(structlog.get_config()["processors"])
    except Exception:  # noqa: BLE001 - no provided logs module: structlog's defaults
        processors = list(structlog.get_config()["processors"])
    processors = [p for p in processors if not isinstance(p, _LogCapture)]
    renderer = processors[-1] if processors else structlog.processors.JSONRenderer()
    chain = [_safe(p) for p in processors[:-1]]
    structlog.configure(processors=[*chain, capture, renderer])
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    root.addHandler(_Handler(capture))
    return capture


# -- metrics ---------------------------------------------------------------------------------------

_POINT_SQL = ("INSERT INTO kit_metric_points (service, metric, unit, kind, start_ms, end_ms, "
              "attributes, status_code, route, count, sum, value, bounds, bucket_counts) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_EXEMPLAR_SQL = ("INSERT INTO kit_exemplars (service, metric, time_ms, value, trace_id, span_id, "
                 "status_code, route) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _status(attrs: dict) -> int | None:
    raw = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def metric_rows(metrics_data: Any, fallback_service: str = "?") -> tuple[list[tuple], list[tuple]]:
    """The point rows and exemplar rows of one collection (the SDK's `MetricsData`)."""
    points: list[tuple] = []
    exemplars: list[tuple] = []
    for rm in metrics_data.resource_metrics:
        service = str((rm.resource.attributes if rm.resource else {}).get(
            "service.name", fallback_service))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = metric.data
                kind = type(data).__name__
                for p in getattr(data, "data_points", ()):
                    attrs = dict(p.attributes or {})
                    status, route = _status(attrs), attrs.get("http.route")
                    start = (getattr(p, "start_time_unix_nano", 0) or p.time_unix_nano) / 1e6
                    end = p.time_unix_nano / 1e6
                    if kind == "Histogram":
                        if not p.count:
                            continue
                        points.append((service, metric.name, metric.unit, kind, start, end,
                                       json.dumps(_jsonable(attrs)), status, route, p.count, p.sum,
                                       None, json.dumps(list(p.explicit_bounds)),
                                       json.dumps(list(p.bucket_counts))))
                    else:
                        value = getattr(p, "value", None)
                        if value is None:
                            continue
                        points.append((service, metric.name, metric.unit, kind, start, end,
                                       json.dumps(_jsonable(attrs)), status, route, None, None,
                                       float(value), None, None))
                    for ex in getattr(p, "exemplars", None) or ():
                        if not ex.trace_id:
                            continue
                        exemplars.append((service, metric.name, ex.time_unix_nano / 1e6,
                                          float(ex.value), f"{ex.trace_id:032x}",
                                          f"{ex.span_id:016x}" if ex.span_id else None,
                                          status, route))
    return points, exemplars


def _metric_exporter_base() -> Any:
    from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter

    class StoreMetricExporter(MetricExporter):
        """Writes every collected point (histograms with their buckets) and its exemplars into
        the span file; other exporters (OTLP, Azure Monitor) get the same data."""

        def __init__(self, path: str, others: Sequence[Any] = ()) -> None:
            super().__init__(preferred_temporality={
                Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
                UpDownCounter: AggregationTemporality.CUMULATIVE})
            self.sink, self.others = writer(path), list(others)
            self._warned: set[int] = set()

        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
            from opentelemetry.sdk.metrics.export import MetricExportResult

            for i, other in enumerate(self.others):
                try:
                    other.export(metrics_data, timeout_millis=timeout_millis)
                except Exception:  # noqa: BLE001 - a backend must never break the service
                    if i not in self._warned:
                        self._warned.add(i)
                        logger.warning("exporting metrics to %s failed (warned once)",
                                       type(other).__name__)
            try:
                points, exemplars = metric_rows(metrics_data)
                self.sink.put(_POINT_SQL, points)
                self.sink.put(_EXEMPLAR_SQL, exemplars)
                return MetricExportResult.SUCCESS if self.sink.flush() else MetricExportResult.FAILURE
            except Exception:  # noqa: BLE001
                logger.exception("could not write metrics")
                return MetricExportResult.FAILURE

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return self.sink.flush()

        def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
            self.sink.flush()
            for other in self.others:
                try:
                    other.shutdown()
                except Exception:  # noqa: BLE001
                    pass

    return StoreMetricExporter


def backend_metric_exporters() -> list[Any]:
    """OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`) and Azure Monitor (connection string) metric
    exporters, when configured: the `both` export mode sends metrics there as well."""
    found: list[Any] = []
    if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        try:
            from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
        except ImportError:
            pass
        else:
            found.append(AzureMonitorMetricExporter(
                connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        except ImportError:
            pass
        else:
            found.append(OTLPMetricExporter())
    return found


def metric_reader(path: str | os.PathLike[str], *, interval_ms: float = 5_000,
                  others: Sequence[Any] = ()) -> Any:
    """A periodic reader whose exporter writes into the span file (and to `others`)."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = _metric_exporter_base()(os.fspath(path), others)
    return PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)


def iso_ms(text: str) -> float | None:
    """An ISO timestamp (structlog's `TimeStamper(fmt="iso")`) as epoch ms."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000
    except (TypeError, ValueError):
        return None
