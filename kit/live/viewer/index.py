"""The viewer's indexes over a span file, and the queries of its pages (all SQL, no scans).

The provided `SqliteSpanStore` keeps one row per span in `spans` (indexed by trace and start
time only). The viewer adds, in the same file, tables of its own that it keeps up to date from
`spans` (`refresh()`: the rows added since the last call, found by rowid, so a catch-up costs
what was added):

- `kit_spans`: per span the columns the pages filter and group on (service, name, kind, status,
  start, duration, the dependency a CLIENT span calls: `db.system`, `peer.service`, or the
  address it called), with covering indexes for the performance tables;
- `kit_traces`: per trace its start, end, duration, span count, error count and root (its
  earliest span);
  indexed by start (newest first), with partial indexes for errors;
- `kit_endpoints`: which service answers on which port (learned from SERVER spans), so that a
  CLIENT span's address is named after the service it reached.

Beside them, the live system's services write `kit_logs`, `kit_metric_points` and
`kit_exemplars` (`kit.live.capture`).

Percentiles are the contract's nearest rank (`sorted(v)[ceil(p/100 * n) - 1]`), computed in SQL
with window functions.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from kit.live.capture import SCHEMA as CAPTURE_SCHEMA
from kit.live.viewer import tables
from kit.live.viewer.tables import BUCKETS_MS


def nearest_rank(values: Sequence[float], p: float) -> float | None:
    """The contract's percentile: `sorted(values)[ceil(p / 100 * n) - 1]` (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def parse_trace_id(raw: str) -> str | None:
    """32 hex digits, or a UUID (Application Insights' `operation_Id` form), as 32 lowercase
    hex digits; None otherwise."""
    tid = (raw or "").strip().lower().replace("-", "")
    return tid if len(tid) == 32 and all(c in "0123456789abcdef" for c in tid) else None


class Index:
    """The viewer's tables in a span file, kept up to date from `spans` (see the module)."""

    def __init__(self, path: str | os.PathLike[str], *, aliases: Mapping[str, str] | None = None,
                 min_refresh_s: float = 0.5) -> None:
        self.path = os.fspath(path)
        self.aliases = dict(aliases or {})
        self.min_refresh_s = min_refresh_s
        self._refreshed = 0.0
        self._ready = False
        self._local = threading.local()

    # -- connection and catch-up --------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA cache_size = -65536")      # 64 MB: the indexes' pages stay in memory
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def _reader(self) -> sqlite3.Connection:
        """This thread's reading connection (kept: opening one costs more than a query)."""
        held = getattr(self._local, "conn", None)
        if held is None or held[0] != os.getpid():
            held = (os.getpid(), self.connect())
            self._local.conn = held
        return held[1]

    def _ensure(self, conn: sqlite3.Connection) -> None:
        if self._ready:
            return
        conn.execute("PRAGMA journal_mode = WAL")
        try:
            row = conn.execute("SELECT value FROM kit_state WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            row = None
        if row is None or str(row[0]) != str(tables.SCHEMA_VERSION):
            # Indexes of an older layout (or none): build them again from the spans.
            conn.execute("BEGIN IMMEDIATE")
            for table in tables.DERIVED:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute("COMMIT")
        conn.executescript(tables.SCHEMA + CAPTURE_SCHEMA)
        conn.execute("INSERT OR REPLACE INTO kit_state VALUES ('schema', ?)", (str(tables.SCHEMA_VERSION),))
        if self.aliases:
            conn.executemany("INSERT OR REPLACE INTO kit_aliases VALUES (?, ?)",
                             sorted(self.aliases.items()))
        self._ready = True

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def refresh(self, *, force: bool = False) -> int:
        """Index the spans added since the last call; returns how many. Cheap when nothing
        was added; at most every `min_refresh_s` unless `force`."""
        if not self.exists():
            return 0
        now = time.monotonic()
        if not force and now - self._refreshed < self.min_refresh_s:
            return 0
        self._refreshed = now
        conn = self.connect()
        try:
            self._ensure(conn)
            try:
                top = conn.execute("SELECT MAX(rowid) FROM spans").fetchone()[0] or 0
            except sqlite3.OperationalError:          # no span written yet
                return 0
            row = conn.execute("SELECT value FROM kit_state WHERE key = 'spans_rowid'").fetchone()
            done = int(row[0]) if row else 0
            if top <= done:
                return 0
            added = 0
            step = 25_000                  # short write transactions: exporters wait less
            while done < top:
                upto = min(done + step, top)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row = conn.execute(
                        "SELECT value FROM kit_state WHERE key = 'spans_rowid'").fetchone()
                    done = int(row[0]) if row else 0      # another viewer may have indexed
                    if done >= upto:
                        conn.execute("COMMIT")
                        continue
                    for statement in tables.STAGE.strip().split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(tables.FILL_STAGE, (done, upto))
                    known = conn.execute("SELECT COUNT(*) FROM kit_endpoints").fetchone()[0]
                    conn.execute(tables.ENDPOINTS)
                    conn.execute("INSERT OR IGNORE INTO kit_operations SELECT DISTINCT service, "
                                 "name, kind FROM temp.kit_stage")
                    conn.execute("INSERT OR IGNORE INTO kit_operations SELECT DISTINCT system, "
                                 "'', 'DATABASE' FROM temp.kit_stage WHERE system IS NOT NULL")
                    conn.execute(tables.UNROLL)
                    added += conn.execute(tables.INDEX_SPANS).rowcount
                    conn.execute(tables.ROLL)
                    conn.execute("CREATE TEMP TABLE IF NOT EXISTS kit_touched "
                                 "(trace_id TEXT PRIMARY KEY) WITHOUT ROWID")
                    conn.execute("DELETE FROM temp.kit_touched")
                    conn.execute("INSERT INTO temp.kit_touched " + tables.TOUCHED)
                    conn.execute(tables.SUMMARISE)
                    for statement in tables.TRACE_OPS:
                        conn.execute(statement)
                    if conn.execute("SELECT COUNT(*) FROM kit_endpoints").fetchone()[0] != known:
                        conn.execute(tables.RENAME)
                        for statement in tables.REROLL_CLIENTS:
                            conn.execute(statement)
                    conn.execute("INSERT OR REPLACE INTO kit_state VALUES ('spans_rowid', ?)",
                                 (upto,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                done = upto
            if added > 20_000:                # the planner's statistics, after a big catch-up
                conn.execute("ANALYZE")
            return added
        finally:
            conn.close()

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        if not self.exists():
            return []
        self.refresh()
        conn = self._reader()
        try:
            self._ensure(conn)
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    # -- transaction search -------------------------------------------------------------------
    def search(self, *, start_ms: float | None = None, end_ms: float | None = None,
               service: str = "", operation: str = "", errors_only: bool = False,
               min_duration_ms: float = 0.0, trace_id: str = "", limit: int = 50,
               offset: int = 0) -> dict[str, Any]:
        """Traces newest first: `{"total", "traces": [summary...]}`. A `trace_id` (32 hex or a
        UUID) finds that trace whatever the other filters say."""
        cols = ("t.trace_id, t.start_ms, t.duration_ms, t.span_count, t.error_count, "
                "t.root_name, t.root_service, t.services")
        if trace_id:
            tid = parse_trace_id(trace_id)
            rows = self._rows(f"SELECT {cols} FROM kit_traces t WHERE trace_id = ?", (tid,)) if tid else []
            return {"total": len(rows), "traces": [_summary(r) for r in rows]}
        where, args = _trace_filters("t", start_ms, end_ms, errors_only, min_duration_ms)
        where.insert(0, "1")
        if operation and not service:    # a request name is its service's: find the service
            owners = [s for s, names in self.services_and_operations().items() if operation in names]
            if len(owners) == 1:
                service = owners[0]
        if service:                      # one index walk in start order (kit_trace_ops)
            t_where, t_args = _trace_filters("o", start_ms, end_ms, errors_only, min_duration_ms)
            t_where[:0], t_args[:0] = ["o.service = ?", "o.name = ?"], [service, operation or ""]
            t_cond = " AND ".join(t_where)
            total = self._rows(f"SELECT COUNT(*) FROM kit_trace_ops o INDEXED BY "
                               f"kit_trace_ops_by_start WHERE {t_cond}", t_args)
            rows = self._rows(f"SELECT {cols} FROM kit_trace_ops o INDEXED BY kit_trace_ops_by_start "
                              f"JOIN kit_traces t USING (trace_id) WHERE {t_cond} "
                              "ORDER BY o.start_ms DESC LIMIT ? OFFSET ?",
                              [*t_args, int(limit), int(offset)])
            return {"total": total[0][0] if total else 0, "traces": [_summary(r) for r in rows]}
        if operation:
            sub = ["kind = 'SERVER'"]
            sub_args: list[Any] = []
            if service:
                sub.append("service = ?")
                sub_args.append(service)
            if operation:
                sub.append("name = ?")
                sub_args.append(operation)
            if start_ms is not None:   # a request starts no earlier than its trace
                sub.append("start_ms >= ?")
                sub_args.append(start_ms)
            where.append(f"t.trace_id IN (SELECT trace_id FROM kit_spans WHERE {' AND '.join(sub)})")
            args.extend(sub_args)
        cond = " AND ".join(where)
        # A minimum duration is counted on the duration index (it is usually selective); when
        # few traces pass it, the page is read from there too and sorted, else newest first.
        by = ("kit_traces_by_duration_start" if min_duration_ms else
              "kit_traces_errors" if errors_only else "kit_traces_by_start")
        total = self._rows(f"SELECT COUNT(*) FROM kit_traces t INDEXED BY {by} WHERE {cond}", args)
        if min_duration_ms and not (total and total[0][0] <= 5_000):
            by = "kit_traces_errors" if errors_only else "kit_traces_by_start"
        rows = self._rows(f"SELECT {cols} FROM kit_traces t INDEXED BY {by} WHERE {cond} "
                          "ORDER BY t.start_ms DESC LIMIT ? OFFSET ?",
                          [*args, int(limit), int(offset)])
        return {"total": total[0][0] if total else 0, "traces": [_summary(r) for r in rows]}

    def services_and_operations(self) -> dict[str, list[str]]:
        """Each service's request names (SERVER spans), for the search form's choices."""
        out: dict[str, list[str]] = {}
        for service, name in self._rows("SELECT service, name FROM kit_operations "
                                        "WHERE kind = 'SERVER' ORDER BY service, name"):
            out.setdefault(service, []).append(name)
        return out

    def node_kinds(self) -> dict[str, str]:
        """Each known node's kind for the maps: `service` (it exports spans) or `database`
        (a `db.system` or `peer.service` its callers named)."""
        kinds: dict[str, str] = {}
        for name, kind in self._rows("SELECT DISTINCT service, kind FROM kit_operations"):
            if kind == "DATABASE":
                kinds.setdefault(name, "database")
            else:
                kinds[name] = "service"
        return kinds

    def time_span(self) -> tuple[float, float] | None:
        rows = self._rows("SELECT MIN(start_ms), MAX(start_ms) FROM kit_traces")
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] is not None else None

    # -- performance: operations and dependencies ---------------------------------------------
    #
    # Pass 1 counts each group (and its duration distribution) in one aggregate over an index.
    # Pass 2 reads each percentile with one index walk in duration order (`LIMIT 1 OFFSET k`,
    # from the nearer end), so no group is ever sorted. A small range (few rows) is read whole.

    _SMALL = 60_000

    @staticmethod
    def _bounds(start_ms: float | None, end_ms: float | None) -> tuple[float, float]:
        return (start_ms if start_ms is not None else -1e18,
                end_ms if end_ms is not None else 1e18)

    def _grouped(self, *, kind: str, key: str, start_ms: float | None, end_ms: float | None,
                 service: str = "") -> list[dict[str, Any]]:
        """Per (service, `key`) of `kind` spans starting in the range: count, failed,
        failure rate, p50/p95/p99/max/avg and the duration distribution.

        A range with at most `_SMALL` spans of this kind is read whole on the time index and
        ranked here. A larger one is counted per (group, bucket) on the group index; each
        percentile's nearest rank then falls in a known bucket, read with one short index walk
        inside that bucket (`LIMIT 1 OFFSET k`, from its nearer end): no group is sorted."""
        lo, hi = self._bounds(start_ms, end_ms)
        svc = " AND service = ?" if service else ""
        sargs = [service] if service else []
        cond = f"kind = ? AND start_ms >= ? AND start_ms < ?{svc}"
        args: list[Any] = [kind, lo, hi, *sargs]
        rolled = self._rolled(kind, lo, hi, service)
        small = sum(r[3] for r in rolled) <= self._SMALL
        table = ("kit_spans INDEXED BY kit_spans_by_edge" if key == "target"
                 else "kit_spans INDEXED BY kit_spans_by_grp")
        groups: dict[tuple[str, str], dict[str, Any]] = {}

        def group(service_: str, k: str) -> dict[str, Any]:
            return groups.setdefault((service_, k), {
                "service": service_, "key": k, "count": 0, "failed": 0, "max_ms": 0.0,
                "sum": 0.0, "distribution": [0] * (len(BUCKETS_MS) + 1)})

        def key_of(grp: str) -> str:
            return grp.split("\x1f", 1)[0] if key == "target" else grp

        values: dict[tuple[str, str], list[float]] = defaultdict(list)
        if small:
            for service_, grp, bucket, d, status in self._rows(
                    "SELECT service, grp, bucket, duration_ms, status FROM kit_spans "
                    f"INDEXED BY kit_spans_by_time WHERE {cond}", args):
                g = group(service_, key_of(grp))
                g["count"] += 1
                g["failed"] += status == "ERROR"
                g["max_ms"] = max(g["max_ms"], d)
                g["sum"] += d
                g["distribution"][bucket] += 1
                values[service_, g["key"]].append(d)
        else:
            for service_, grp, bucket, count, errs, total, mx in rolled:
                g = group(service_, key_of(grp))
                g["count"] += count
                g["failed"] += int(errs or 0)
                g["max_ms"] = max(g["max_ms"], mx or 0.0)
                g["sum"] += total or 0.0
                g["distribution"][bucket] += count
        out = []
        for (service_, k), g in groups.items():
            n = g["count"]
            g["failure_rate"] = g["failed"] / n if n else 0.0
            g["avg_ms"] = g.pop("sum") / n if n else 0.0
            for p in (50, 95, 99):
                g[f"p{p}_ms"] = (nearest_rank(values[service_, k], p) if small else
                                 self._rank(table, cond, args, key, service_, k,
                                            g["distribution"], p))
            out.append(g)
        return out

    def _rolled(self, kind: str, lo: float, hi: float,
                service: str = "") -> list[tuple]:
        """`(service, grp, bucket, count, errors, total ms, max ms)` of `kind` spans starting
        in [lo, hi): the rollup's whole minutes inside the range, the spans of the partial
        minutes at its two ends read from the time index."""
        m_lo, m_hi = math.ceil(lo / 60000), math.floor(hi / 60000)
        svc, sargs = (" AND service = ?", [service]) if service else ("", [])
        sums: dict[tuple[str, str, int], list[float]] = {}

        def add(rows: list[tuple]) -> None:
            for service_, grp, bucket, count, errs, total, mx in rows:
                acc = sums.setdefault((service_, grp, bucket), [0, 0, 0.0, 0.0])
                acc[0] += count or 0
                acc[1] += errs or 0
                acc[2] += total or 0.0
                acc[3] = max(acc[3], mx or 0.0)

        edges = [(lo, hi)]
        if m_lo < m_hi:
            add(self._rows("SELECT service, grp, bucket, SUM(count), SUM(errors), SUM(total), "
                           "MAX(max) FROM kit_rollup WHERE kind = ? AND minute >= ? AND minute < ?"
                           f"{svc} GROUP BY service, grp, bucket", [kind, m_lo, m_hi, *sargs]))
            edges = [(lo, m_lo * 60000.0), (m_hi * 60000.0, hi)]
        for a, b in edges:
            if a < b:
                add(self._rows("SELECT service, grp, bucket, COUNT(*), SUM(status = 'ERROR'), "
                               "SUM(duration_ms), MAX(duration_ms) FROM kit_spans INDEXED BY "
                               "kit_spans_by_time WHERE kind = ? AND start_ms >= ? AND start_ms < ?"
                               f"{svc} GROUP BY service, grp, bucket", [kind, a, b, *sargs]))
        return [(k[0], k[1], k[2], int(v[0]), int(v[1]), v[2], v[3])
                for k, v in sums.items() if v[0] > 0]

    def _rank(self, table: str, cond: str, args: Sequence[Any], key: str, service: str,
              value: str, distribution: Sequence[int], p: int) -> float | None:
        n = sum(distribution)
        if not n:
            return None
        rank = max(math.ceil(p / 100 * n), 1)               # 1-based, ascending
        before = 0
        for bucket, count in enumerate(distribution):
            if before + count >= rank:
                break
            before += count
        inside = rank - before                              # 1-based within the bucket
        order, offset = (("ASC", inside - 1) if inside <= count - inside
                         else ("DESC", count - inside))
        rows = self._rows(f"SELECT duration_ms FROM {table} WHERE {cond} AND service = ? AND "
                          f"{key} = ? AND bucket = ? ORDER BY duration_ms {order} LIMIT 1 OFFSET ?",
                          [*args, service, value, bucket, offset])
        return rows[0][0] if rows else None

    def operations(self, *, start_ms: float | None = None, end_ms: float | None = None,
                   service: str = "") -> list[dict[str, Any]]:
        """Per request name (a service's SERVER spans by name): count, failed, failure rate,
        p50/p95/p99/max, and the duration distribution (counts per `BUCKETS_MS` bucket)."""
        rows = self._grouped(kind="SERVER", key="grp", start_ms=start_ms, end_ms=end_ms,
                             service=service)
        for r in rows:
            r["operation"] = r.pop("key")
        return rows

    def dependencies(self, *, start_ms: float | None = None, end_ms: float | None = None,
                     service: str = "") -> list[dict[str, Any]]:
        """Per dependency call (CLIENT spans: other services, the cache, the database, the
        payment provider): caller, target, type, name, `key` (for `samples`) and the figures
        of `operations`."""
        rows = self._grouped(kind="CLIENT", key="grp", start_ms=start_ms, end_ms=end_ms,
                             service=service)
        for r in rows:
            target, dtype, name = (r["key"].split("\x1f") + ["", "", ""])[:3]
            r.update(caller=r.pop("service"), target=target, type=dtype, name=name)
        return rows

    def samples(self, *, kind: str, service: str, key: str = "",
                start_ms: float | None = None, end_ms: float | None = None,
                limit: int = 10) -> dict[str, list[dict]]:
        """Sample traces of one row: the slowest and the latest failed, each `{"trace_id",
        "span_id", "duration_ms", "start_ms", "status"}`. `key` is the row's operation name,
        or a dependency's `key` as `dependencies` returns it."""
        lo, hi = self._bounds(start_ms, end_ms)
        where = "kind = ? AND service = ? AND grp = ? AND start_ms >= ? AND start_ms < ?"
        args = [kind, service, key, lo, hi]
        cols = ("trace_id", "span_id", "duration_ms", "start_ms", "status")
        slow = self._rows(f"SELECT {', '.join(cols)} FROM kit_spans INDEXED BY kit_spans_by_grp "
                          f"WHERE {where} ORDER BY duration_ms DESC LIMIT ?", [*args, limit])
        failed = self._rows(f"SELECT {', '.join(cols)} FROM kit_spans WHERE {where} "
                            "AND status = 'ERROR' ORDER BY start_ms DESC LIMIT ?", [*args, limit])
        return {"slowest": [dict(zip(cols, r)) for r in slow],
                "failed": [dict(zip(cols, r)) for r in failed]}

    # -- the extensions (the kit's own computations, never the learner's) -----------------------
    def dependency_map(self, *, start_ms: float | None = None,
                       end_ms: float | None = None) -> list[dict[str, Any]]:
        """E4 across traces: `{"caller", "callee", "calls", "errors", "p50_ms", "p95_ms"}`, the
        latency of a call being its CLIENT span's duration (the caller's span of the edge)."""
        edges = []
        for r in self._grouped(kind="CLIENT", key="target", start_ms=start_ms, end_ms=end_ms):
            if r["service"] == r["key"]:
                continue
            edges.append({"caller": r["service"], "callee": r["key"], "calls": r["count"],
                          "errors": r["failed"], "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"]})
        return sorted(edges, key=lambda e: (e["caller"], e["callee"]))

    def error_rates(self, *, start_ms: float | None = None,
                    end_ms: float | None = None) -> list[dict[str, Any]]:
        """E1: per service with requests, `{"service", "requests", "errors", "error_rate"}`."""
        lo, hi = self._bounds(start_ms, end_ms)
        per: dict[str, list[int]] = {}
        for service, _, _, count, errs, _, _ in self._rolled("SERVER", lo, hi):
            acc = per.setdefault(service, [0, 0])
            acc[0] += count
            acc[1] += errs
        rows = [(s, n, e) for s, (n, e) in sorted(per.items())]
        return [{"service": s, "requests": n, "errors": int(e or 0),
                 "error_rate": (e or 0) / n if n else 0.0} for s, n, e in rows]

    def slowest_operations(self, *, start_ms: float | None = None, end_ms: float | None = None,
                           top: int = 10) -> list[dict[str, Any]]:
        """E1: per operation of SERVER and INTERNAL spans, by p95 descending."""
        merged: dict[tuple[str, str], dict] = {}
        for kind in ("SERVER", "INTERNAL"):
            for r in self._grouped(kind=kind, key="grp", start_ms=start_ms, end_ms=end_ms):
                merged.setdefault((r["service"], r["key"]), {
                    "service": r["service"], "operation": r["key"], "count": r["count"],
                    "p50_ms": r["p50_ms"], "p95_ms": r["p95_ms"], "p99_ms": r["p99_ms"],
                    "max_ms": r["max_ms"]})
        ordered = sorted(merged.values(), key=lambda r: (-r["p95_ms"], r["service"], r["operation"]))
        return ordered[:top]

    def slo(self, *, service: str, operation: str, objective: float,
            latency_ms: float | None = None, start_ms: float | None = None,
            end_ms: float | None = None) -> dict[str, Any]:
        """E3 over SQL: the counts of the SLO's events, and the contract's derived figures."""
        lo, hi = self._bounds(start_ms, end_ms)
        good = "status != 'ERROR'" + (" AND duration_ms <= ?" if latency_ms is not None else "")
        gargs = [latency_ms] if latency_ms is not None else []
        rows = self._rows(f"SELECT COUNT(*), SUM({good}) FROM kit_spans INDEXED BY kit_spans_by_grp "
                          "WHERE kind = 'SERVER' AND service = ? AND grp = ? AND start_ms >= ? "
                          "AND start_ms < ?", [*gargs, service, operation, lo, hi])
        total, good_n = (rows[0][0], int(rows[0][1] or 0)) if rows else (0, 0)
        sli = good_n / total if total else 1.0
        burn = (1 - sli) / (1 - objective) if objective < 1 else (0.0 if sli >= 1 else math.inf)
        return {"total": total, "good": good_n, "sli": sli, "objective": objective,
                "met": sli >= objective, "error_budget_remaining": 1 - burn, "burn_rate": burn}

    def experiments(self) -> list[str]:
        """The experiment names found on the latest requests (`experiment.<name>`)."""
        names: set[str] = set()
        for (tags,) in self._rows("SELECT tags FROM kit_spans INDEXED BY kit_spans_by_time "
                                  "WHERE kind = 'SERVER' AND tags IS NOT NULL "
                                  "ORDER BY start_ms DESC LIMIT 500"):
            try:
                names.update(k[len("experiment."):] for k in json.loads(tags))
            except ValueError:
                pass
        return sorted(names)

    def compare_variants(self, experiment: str, *, start_ms: float | None = None,
                         end_ms: float | None = None) -> dict[str, dict[str, Any]]:
        """E2: per variant of the gateway's `POST /api/orders` requests that carry
        `experiment.<experiment>`: orders, errors, error rate, p50, p95."""
        lo, hi = self._bounds(start_ms, end_ms)
        path = '$."experiment.' + experiment.replace('"', '') + '"'
        rows = self._rows(
            "SELECT json_extract(k.tags, ?) AS variant, k.duration_ms, k.status "
            "FROM kit_spans k INDEXED BY kit_spans_by_grp "
            "WHERE k.service = 'api-gateway' AND k.grp = 'POST /api/orders' AND k.kind = 'SERVER' "
            "AND k.start_ms >= ? AND k.start_ms < ? AND variant IS NOT NULL", [path, lo, hi])
        by: dict[str, list[tuple[float, bool]]] = {}
        for variant, duration, status in rows:
            by.setdefault(str(variant), []).append((duration, status == "ERROR"))
        out = {}
        for variant, items in sorted(by.items()):
            durations = [d for d, _ in items]
            errors = sum(e for _, e in items)
            out[variant] = {"orders": len(items), "errors": errors,
                            "error_rate": errors / len(items), "p50_ms": nearest_rank(durations, 50),
                            "p95_ms": nearest_rank(durations, 95)}
        return out

    # -- logs ----------------------------------------------------------------------------------
    def logs_of(self, trace_id: str) -> list[dict[str, Any]]:
        """The log lines that carry this trace id, in time order."""
        tid = parse_trace_id(trace_id)
        if tid is None:
            return []
        rows = self._rows("SELECT time_ms, service, level, event, logger, span_id, fields "
                          "FROM kit_logs WHERE trace_id = ? ORDER BY time_ms", (tid,))
        out = []
        for when, service, level, event, logger_name, span_id, fields in rows:
            try:
                extra = json.loads(fields or "{}")
            except ValueError:
                extra = {}
            out.append({"time_ms": when, "service": service, "level": level, "event": event,
                        "logger": logger_name, "span_id": span_id, "fields": extra})
        return out

    # -- metrics -------------------------------------------------------------------------------
    def metric_services(self) -> list[str]:
        return [r[0] for r in self._rows(
            "SELECT DISTINCT service FROM kit_metric_points "
            "WHERE metric = 'http.server.request.duration' ORDER BY service")]

    def request_metrics(self, *, service: str, start_ms: float | None = None,
                        end_ms: float | None = None, slots: int = 30) -> dict[str, Any]:
        """From `http.server.request.duration` points of `service` in the range (health checks
        left out: `NOT_COUNTED_ROUTES`): requests,
        errors (5xx), the rate per second, a rate series of `slots` slots, and the latency
        histogram (bucket bounds in ms, counts summed over the points)."""
        lo = start_ms if start_ms is not None else -1e18
        hi = end_ms if end_ms is not None else 1e18
        rows = self._rows("SELECT end_ms, status_code, count, bounds, bucket_counts, unit "
                          "FROM kit_metric_points WHERE metric = 'http.server.request.duration' "
                          "AND service = ? AND end_ms >= ? AND end_ms < ? "
                          f"AND COALESCE(route, '') NOT IN ({_NOT_COUNTED}) ORDER BY end_ms",
                          (service, lo, hi))
        requests = errors = 0
        bounds: list[float] = []
        counts: list[int] = []
        scale = 1000.0
        first = rows[0][0] if rows else None
        last = rows[-1][0] if rows else None
        lo_t = start_ms if start_ms is not None else (first or 0)
        hi_t = end_ms if end_ms is not None else (last or 0)
        width = max((hi_t - lo_t) / slots, 1.0)
        series = [[0, 0] for _ in range(slots)]
        for end, status, count, b, c, unit in rows:
            scale = 1.0 if unit == "ms" else 1000.0
            b, c = json.loads(b or "[]"), json.loads(c or "[]")
            if not bounds:
                bounds, counts = b, [0] * len(c)
            if b == bounds and len(c) == len(counts):
                counts = [x + y for x, y in zip(counts, c)]
            requests += count or 0
            failed = (count or 0) if (status or 0) >= 500 else 0
            errors += failed
            slot = min(max(int((end - lo_t) // width), 0), slots - 1)
            series[slot][0] += count or 0
            series[slot][1] += failed
        seconds = max((hi_t - lo_t) / 1000, 1e-9)
        return {"service": service, "requests": requests, "errors": errors,
                "error_rate": errors / requests if requests else 0.0,
                "rate_per_s": requests / seconds if rows else 0.0,
                "bounds_ms": [x * scale for x in bounds], "counts": counts,
                "series": series, "slot_ms": width, "from_ms": lo_t, "to_ms": hi_t}

    def exemplars(self, *, service: str, low_ms: float | None, high_ms: float | None,
                  start_ms: float | None = None, end_ms: float | None = None,
                  metric: str = "http.server.request.duration", limit: int = 50) -> list[dict]:
        """Exemplars of `metric` for `service` whose value is in (low, high] ms (a histogram
        bucket), newest first: `{"trace_id", "span_id", "value_ms", "time_ms", "status_code",
        "route"}`."""
        unit = self._rows("SELECT unit FROM kit_metric_points WHERE metric = ? LIMIT 1", (metric,))
        scale = 1.0 if unit and unit[0][0] == "ms" else 1000.0
        where = ["metric = ?", "service = ?", f"COALESCE(route, '') NOT IN ({_NOT_COUNTED})"]
        args: list[Any] = [metric, service]
        if low_ms is not None:
            where.append("value * ? > ?")
            args += [scale, low_ms]
        if high_ms is not None:
            where.append("value * ? <= ?")
            args += [scale, high_ms]
        if start_ms is not None:
            where.append("time_ms >= ?")
            args.append(start_ms)
        if end_ms is not None:
            where.append("time_ms < ?")
            args.append(end_ms)
        rows = self._rows("SELECT trace_id, span_id, value, time_ms, status_code, route FROM "
                          f"kit_exemplars WHERE {' AND '.join(where)} ORDER BY time_ms DESC "
                          "LIMIT ?", [*args, limit])
        return [{"trace_id": t, "span_id": s, "value_ms": v * scale, "time_ms": w,
                 "status_code": c, "route": r} for t, s, v, w, c, r in rows]

    def counter_totals(self, metric: str = "orders.processed", *, start_ms: float | None = None,
                       end_ms: float | None = None) -> list[dict[str, Any]]:
        """A counter's delta points summed per attribute set (e.g. orders by status/reason)."""
        lo = start_ms if start_ms is not None else -1e18
        hi = end_ms if end_ms is not None else 1e18
        totals: dict[str, float] = {}
        for attrs, value in self._rows("SELECT attributes, SUM(value) FROM kit_metric_points "
                                       "WHERE metric = ? AND end_ms >= ? AND end_ms < ? "
                                       "GROUP BY attributes", (metric, lo, hi)):
            totals[attrs] = totals.get(attrs, 0) + (value or 0)
        return [{"attributes": json.loads(a), "value": v} for a, v in sorted(totals.items())]


#: Routes the metrics page leaves out: the health checks the launcher polls at start-up.
NOT_COUNTED_ROUTES = ("/health",)
_NOT_COUNTED = ", ".join(f"'{r}'" for r in NOT_COUNTED_ROUTES)


def _sql_text(text: str) -> str:
    return str(text).replace("'", "''")


def _summary(row: Sequence[Any]) -> dict[str, Any]:
    tid, start, duration, n, errors, root_name, root_service, services = row
    return {"trace_id": tid, "root_name": root_name, "root_service": root_service,
            "start_ms": start, "duration_ms": duration, "span_count": n,
            "services": sorted(set((services or "").split(","))) if services else [],
            "error_count": int(errors or 0)}


def _trace_filters(alias: str, start_ms: float | None, end_ms: float | None, errors_only: bool,
                   min_duration_ms: float | None) -> tuple[list[str], list[Any]]:
    """The search's filters on a table of traces (`kit_traces` or `kit_trace_ops`, as `alias`):
    SQL conditions and their arguments."""
    where: list[str] = []
    args: list[Any] = []
    if start_ms is not None:
        where.append(f"{alias}.start_ms >= ?")
        args.append(start_ms)
    if end_ms is not None:
        where.append(f"{alias}.start_ms < ?")
        args.append(end_ms)
    if errors_only:
        where.append(f"{alias}.error_count > 0")
    if min_duration_ms:
        where.append(f"{alias}.duration_ms >= ?")
        args.append(float(min_duration_ms))
    return where, args
