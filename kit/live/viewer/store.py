"""Reading spans for the viewer: any span store, or the span database file on its own.

In the live system the viewer runs next to the gateway and reads the store the gateway reads
(the provided `get_span_store()`: the shared SQLite file, or Application Insights through KQL).
Standing alone (`python -m kit.live.viewer`), in the tests and in the benchmarks it reads the SQLite
file that the provided `SqliteSpanStore` writes, with `SpanDatabase`, which imports no tree.

Both give the same two methods the viewer needs:

- `get_trace(trace_id)` -> the spans of one trace, in start order;
- `recent_traces(limit, errors_only, min_duration_ms)` -> summaries, newest first:
  `{"trace_id", "root_name", "root_service", "start_ms", "duration_ms", "span_count",
  "services", "error_count"}`.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from kit.traces.model import Span, event_fields

_COLUMNS = ("trace_id", "span_id", "parent_span_id", "name", "service", "kind", "start_ms",
            "duration_ms", "status", "status_description", "attributes", "events")


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _span(row: Sequence[Any]) -> Span:
    data = dict(zip(_COLUMNS, row))
    attributes = {k: _freeze(v) for k, v in json.loads(data["attributes"] or "{}").items()}
    events = tuple((name, when, {k: _freeze(v) for k, v in attrs.items()})
                   for name, when, attrs in map(event_fields, json.loads(data["events"] or "[]")))
    return Span(trace_id=data["trace_id"], span_id=data["span_id"],
                parent_span_id=data["parent_span_id"], name=data["name"],
                service=data["service"], kind=data["kind"], start_ms=float(data["start_ms"]),
                duration_ms=float(data["duration_ms"]), status=data["status"],
                status_description=data["status_description"], attributes=attributes,
                events=events)


def summarize(spans: Sequence[Any]) -> dict[str, Any]:
    """One line about a trace (the root is the earliest span whose parent is not in it)."""
    ids = {s.span_id for s in spans}
    ordered = sorted(spans, key=lambda s: s.start_ms)
    root = next((s for s in ordered if s.parent_span_id not in ids), ordered[0])
    start = ordered[0].start_ms
    return {"trace_id": root.trace_id, "root_name": root.name, "root_service": root.service,
            "start_ms": start,
            "duration_ms": max(s.start_ms + s.duration_ms for s in spans) - start,
            "span_count": len(spans), "services": sorted({s.service for s in spans}),
            "error_count": sum(s.status == "ERROR" for s in spans)}


SPANS_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    name TEXT NOT NULL, service TEXT NOT NULL, kind TEXT NOT NULL,
    start_ms REAL NOT NULL, duration_ms REAL NOT NULL, status TEXT NOT NULL,
    status_description TEXT, attributes TEXT NOT NULL, events TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id));
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ms);
"""
"""The provided `SqliteSpanStore`'s table, as it creates it (services/shared/span_store.py)."""


def write_spans(path: str | os.PathLike[str], spans: Sequence[Any]) -> int:
    """Write spans (SDK spans, `SpanRecord`s or `Span`s) into a span file laid out as the
    provided `SqliteSpanStore` writes it, without importing any tree (notebooks, tests,
    benchmarks). Returns how many were written."""
    from kit.traces.model import views

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    rows = []
    for s in views(spans):
        events = [[e[0], {k: plain(v) for k, v in (e[-1] or {}).items()}] for e in s.events or ()]
        rows.append((s.trace_id, s.span_id, s.parent_span_id, s.name, s.service, s.kind,
                     s.start_ms, s.duration_ms, s.status, s.status_description or None,
                     json.dumps({k: plain(v) for k, v in (s.attributes or {}).items()}, default=str),
                     json.dumps(events, default=str)))
    conn = sqlite3.connect(os.fspath(path), timeout=30)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SPANS_SCHEMA)
        with conn:
            conn.executemany(f"INSERT OR REPLACE INTO spans ({', '.join(_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_COLUMNS))})", rows)
    finally:
        conn.close()
    return len(rows)


class SpanDatabase:
    """Read-only access to the SQLite span file of the provided `SqliteSpanStore`.

    Opens a connection per call (the file is written by other processes meanwhile); a file
    that does not exist yet simply holds no traces.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        if not os.path.exists(self.path):
            return []
        conn = sqlite3.connect(self.path, timeout=30)  # SELECTs only
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def get_trace(self, trace_id: str) -> list[Span]:
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM spans WHERE trace_id = ? "
                           "ORDER BY start_ms", (str(trace_id).replace("-", "").lower(),))
        return [_span(r) for r in rows]

    def all_spans(self) -> list[Span]:
        """Every stored span, in start order."""
        return [_span(r) for r in
                self._query(f"SELECT {', '.join(_COLUMNS)} FROM spans ORDER BY start_ms")]

    def trace_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT trace_id FROM spans")]

    def count(self) -> int:
        rows = self._query("SELECT COUNT(*) FROM spans")
        return rows[0][0] if rows else 0

    def recent_traces(self, limit: int = 50, errors_only: bool = False,
                      min_duration_ms: float = 0.0) -> list[dict]:
        having = ["MAX(start_ms + duration_ms) - MIN(start_ms) >= ?"]
        if errors_only:
            having.append("SUM(status = 'ERROR') > 0")
        ids = [r[0] for r in self._query(
            f"SELECT trace_id FROM spans GROUP BY trace_id HAVING {' AND '.join(having)} "
            "ORDER BY MIN(start_ms) DESC LIMIT ?", (float(min_duration_ms), int(limit)))]
        if not ids:
            return []
        by_trace: dict[str, list[Span]] = {tid: [] for tid in ids}
        rows = self._query(f"SELECT {', '.join(_COLUMNS)} FROM spans WHERE trace_id IN "
                           f"({', '.join('?' * len(ids))}) ORDER BY start_ms", ids)
        for r in rows:
            span = _span(r)
            by_trace[span.trace_id].append(span)
        return [summarize(by_trace[tid]) for tid in ids if by_trace[tid]]
