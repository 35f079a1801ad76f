"""How fast the viewer's search and performance pages answer over 100,000 stored traces.

    python benchmarks/bench_viewer.py                      # 100,000 traces (about 1.4M spans)
    python benchmarks/bench_viewer.py --traces 10000 --keep /tmp/store.db

Builds a span file deterministically (fixed seed and clock: the workshop's order path, 14 spans
a trace, one in twenty failing at the payment provider, some slow; log lines, metric points and
exemplars as the live system writes them), indexes it once (`Index.refresh`, the catch-up the
viewer does as spans arrive), then times each query a page runs, the median of `--repeat` runs.
The store is the provided `SqliteSpanStore`'s table layout; the kit's indexes are
`kit.live.viewer.index`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.live.capture import SCHEMA as CAPTURE_SCHEMA  # noqa: E402
from kit.live.viewer.index import Index  # noqa: E402
from kit.live.viewer.store import SPANS_SCHEMA  # noqa: E402  the provided store's table

T_END = 1_790_000_000_000.0          # a fixed "now" (epoch ms): the store is the same every run
DAY_MS = 24 * 3600 * 1000.0
PORTS = {"api-gateway": 8000, "auth-service": 8001, "order-service": 8002,
         "inventory-service": 8004, "payment-service": 8005}
PROVIDER = ("127.0.0.1", 8009)
EXPERIMENT = "checkout-v2"


def _trace(rng: random.Random, start: float, n: int) -> tuple[list[tuple], list[tuple], dict]:
    """One order's spans (rows of `spans`), its log lines and its facts."""
    tid = f"{rng.getrandbits(128):032x}"
    ids = iter(f"{rng.getrandbits(64):016x}" for _ in range(20))
    fail = rng.random() < 0.05
    slow = rng.random() < 0.02
    variant = "treatment" if rng.random() < 0.5 else "control"
    provider_ms = rng.lognormvariate(3.0, 0.4) * (1.3 if variant == "treatment" else 1.0)
    if slow:
        provider_ms += rng.uniform(800, 2500)
    rows: list[tuple] = []

    def add(span_id, parent, service, name, kind, t0, dur, status="UNSET", attrs=None, events=()):
        rows.append((tid, span_id, parent, name, service, kind, t0, dur, status,
                     "payment provider unavailable" if status == "ERROR" else None,
                     json.dumps(attrs or {}), json.dumps(list(events))))

    def client(parent, service, target, path, t0, dur, status="UNSET", code=200):
        sid = next(ids)
        host, port = (PROVIDER if target == "provider" else ("127.0.0.1", PORTS[target]))
        add(sid, parent, service, "POST", "CLIENT", t0, dur, status,
            {"http.request.method": "POST", "server.address": host, "server.port": port,
             "url.full": f"http://{host}:{port}{path}", "http.response.status_code": code})
        return sid

    def server(parent, service, route, t0, dur, status="UNSET", code=200, extra=None):
        sid = next(ids)
        add(sid, parent, service, f"POST {route}", "SERVER", t0, dur, status,
            {"http.route": route, "http.request.method": "POST", "http.response.status_code": code,
             "server.address": f"127.0.0.1:{PORTS[service]}", "server.port": PORTS[service],
             **(extra or {})})
        return sid

    err = "ERROR" if fail else "UNSET"
    t = start
    auth_ms, inv_ms = rng.uniform(0.8, 3), rng.uniform(1, 6)
    pay_ms = provider_ms + rng.uniform(1, 3)
    order_ms = 2 + inv_ms + pay_ms + 3
    total = auth_ms + order_ms + 4
    gw = server(None, "api-gateway", "/api/orders", t, total, err, 502 if fail else 200,
                {f"experiment.{EXPERIMENT}": variant, "enduser.id": f"user-{n % 500}"})
    c1 = client(gw, "api-gateway", "auth-service", "/auth/verify", t + 0.5, auth_ms)
    server(c1, "auth-service", "/auth/verify", t + 0.6, auth_ms - 0.2)
    c2 = client(gw, "api-gateway", "order-service", "/orders", t + auth_ms + 1, order_ms, err,
                502 if fail else 200)
    osrv = server(c2, "order-service", "/orders", t + auth_ms + 1.2, order_ms - 0.4, err,
                  502 if fail else 200)
    t_o = t + auth_ms + 1.3
    add(next(ids), osrv, "order-service", "GET", "CLIENT", t_o, 0.3, "UNSET",
        {"db.system": "redis", "server.address": "localhost", "server.port": 6379})
    proc = next(ids)
    add(proc, osrv, "order-service", "process_order", "INTERNAL", t_o + 0.5, order_ms - 1.5, err)
    c3 = client(proc, "order-service", "inventory-service", "/inventory/check", t_o + 0.7, inv_ms)
    inv = server(c3, "inventory-service", "/inventory/check", t_o + 0.8, inv_ms - 0.3)
    add(next(ids), inv, "inventory-service", "SELECT", "CLIENT", t_o + 1.0, 0.2, "UNSET",
        {"db.system": "sqlite", "db.statement": "SELECT on_hand FROM stock WHERE product_id = ?"})
    t_p = t_o + 1 + inv_ms
    c4 = client(proc, "order-service", "payment-service", "/payments/process", t_p, pay_ms, err,
                502 if fail else 200)
    psrv = server(c4, "payment-service", "/payments/process", t_p + 0.2, pay_ms - 0.4, err,
                  502 if fail else 200)
    exc_event = [["exception", {"exception.type": "PaymentProviderError",
                                "exception.message": "provider answered 503",
                                "exception.stacktrace": "Traceback (most recent call last):\n"
                                "  File \"payment_service/main.py\", line 40, in process\n"
                                "PaymentProviderError: provider answered 503"}]] if fail else []
    client(psrv, "payment-service", "provider", "/v1/charges", t_p + 0.4, provider_ms, err,
           503 if fail else 200)
    if exc_event:
        last = rows[-1]
        rows[-1] = last[:-1] + (json.dumps(exc_event),)
    logs = [(t_o + order_ms - 1, "order-service", "warning" if fail else "info",
             "Order failed" if fail else "Order processed successfully", None, tid, proc,
             json.dumps({"order_id": f"ord-{n:08d}", **({"reason": "payment_error"} if fail else {})}))]
    return rows, logs, {"trace_id": tid, "failed": fail, "duration_ms": total}


def build_store(path: str | os.PathLike[str], traces: int, *, seed: int = 7,
                span_ms: float = DAY_MS) -> dict:
    """A span file of `traces` orders spread over `span_ms` before `T_END` (deterministic)."""
    rng = random.Random(seed)
    conn = sqlite3.connect(os.fspath(path))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.executescript(SPANS_SCHEMA + CAPTURE_SCHEMA)
    facts = []
    batch: list[tuple] = []
    logs: list[tuple] = []
    step = span_ms / traces
    for n in range(traces):
        rows, lines, fact = _trace(rng, T_END - span_ms + n * step, n)
        batch.extend(rows)
        logs.extend(lines)
        facts.append(fact)
        if len(batch) > 100_000:
            conn.executemany(f"INSERT OR REPLACE INTO spans VALUES ({', '.join('?' * 12)})", batch)
            batch.clear()
    conn.executemany(f"INSERT OR REPLACE INTO spans VALUES ({', '.join('?' * 12)})", batch)
    conn.executemany("INSERT INTO kit_logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", logs)
    # One histogram point per service per minute, with an exemplar in the slowest bucket.
    bounds = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
    points, exemplars = [], []
    for minute in range(int(span_ms // 60_000)):
        end = T_END - span_ms + (minute + 1) * 60_000
        for service, port in PORTS.items():
            counts = [rng.randrange(0, 20) for _ in range(len(bounds) + 1)]
            points.append((service, "http.server.request.duration", "s", "Histogram", end - 60_000,
                           end, json.dumps({"http.route": "/x", "http.response.status_code": 200}),
                           200, "/x", sum(counts), sum(counts) * 0.02, None, json.dumps(bounds),
                           json.dumps(counts)))
            fact = facts[min(int((end - (T_END - span_ms)) / step), len(facts) - 1)]
            exemplars.append((service, "http.server.request.duration", end - 1000,
                              fact["duration_ms"] / 1000, fact["trace_id"], None, 200, "/x"))
    conn.executemany("INSERT INTO kit_metric_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     points)
    conn.executemany("INSERT INTO kit_exemplars VALUES (?, ?, ?, ?, ?, ?, ?, ?)", exemplars)
    conn.commit()
    conn.close()
    return {"facts": facts}


def _time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def queries(index: Index, facts: list[dict], span_ms: float) -> list[tuple[str, object]]:
    """Each question a page asks, as a callable."""
    last30 = (T_END - 30 * 60_000, T_END)
    everything = (T_END - span_ms, T_END + 1)
    failed = next(f for f in reversed(facts) if f["failed"])["trace_id"]
    uuid = f"{failed[:8]}-{failed[8:12]}-{failed[12:16]}-{failed[16:20]}-{failed[20:]}"
    return [
        ("search: last 30 minutes, page 1", lambda: index.search(start_ms=last30[0], end_ms=last30[1])),
        ("search: all traces, page 1", lambda: index.search(start_ms=everything[0], end_ms=everything[1])),
        ("search: all, page 200 (offset 9,950)", lambda: index.search(start_ms=everything[0], end_ms=everything[1], offset=9_950)),
        ("search: all, errors only", lambda: index.search(start_ms=everything[0], end_ms=everything[1], errors_only=True)),
        ("search: all, min duration 1 s", lambda: index.search(start_ms=everything[0], end_ms=everything[1], min_duration_ms=1000)),
        ("search: all, service + operation", lambda: index.search(start_ms=everything[0], end_ms=everything[1], service="payment-service", operation="POST /payments/process")),
        ("search: all, service + errors + 500 ms", lambda: index.search(start_ms=everything[0], end_ms=everything[1], service="inventory-service", errors_only=True, min_duration_ms=500)),
        ("search: trace id (UUID form)", lambda: index.search(trace_id=uuid)),
        ("performance: operations, last 30 min", lambda: index.operations(start_ms=last30[0], end_ms=last30[1])),
        ("performance: operations, all", lambda: index.operations(start_ms=everything[0], end_ms=everything[1])),
        ("performance: dependencies, last 30 min", lambda: index.dependencies(start_ms=last30[0], end_ms=last30[1])),
        ("performance: dependencies, all", lambda: index.dependencies(start_ms=everything[0], end_ms=everything[1])),
        ("performance: samples of one operation, all", lambda: index.samples(kind="SERVER", service="payment-service", key="POST /payments/process", start_ms=everything[0], end_ms=everything[1])),
        ("E1 error rates, all", lambda: index.error_rates(start_ms=everything[0], end_ms=everything[1])),
        ("E1 slowest operations, all", lambda: index.slowest_operations(start_ms=everything[0], end_ms=everything[1])),
        ("E2 compare variants, all", lambda: index.compare_variants(EXPERIMENT, start_ms=everything[0], end_ms=everything[1])),
        ("E3 one SLO, all", lambda: index.slo(service="api-gateway", operation="POST /api/orders", objective=0.99, latency_ms=500, start_ms=everything[0], end_ms=everything[1])),
        ("E4 dependency map, all", lambda: index.dependency_map(start_ms=everything[0], end_ms=everything[1])),
        ("trace page: log lines of a trace", lambda: index.logs_of(failed)),
        ("metrics: one service, last 30 min", lambda: index.request_metrics(service="api-gateway", start_ms=last30[0], end_ms=last30[1])),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store at this path")
    args = parser.parse_args(argv)
    tmp = None
    path = args.keep
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-viewer-")
        path = Path(tmp.name) / "spans.db"
    rng_facts = None
    t0 = time.perf_counter()
    if not path.exists():
        rng_facts = build_store(path, args.traces)["facts"]
        print(f"built {args.traces:,} traces in {time.perf_counter() - t0:.1f} s")
    else:
        rng = random.Random(7)
        rng_facts = [_trace(rng, T_END - DAY_MS + n * DAY_MS / args.traces, n)[2]
                     for n in range(args.traces)]
    index = Index(path, min_refresh_s=3600, aliases={"127.0.0.1:8009": "payment-provider"})
    t0 = time.perf_counter()
    added = index.refresh(force=True)
    print(f"indexed {added:,} spans in {time.perf_counter() - t0:.1f} s "
          f"(once; afterwards only what arrives)")
    t0 = time.perf_counter()
    index.refresh(force=True)
    print(f"catch-up with nothing new: {(time.perf_counter() - t0) * 1000:.1f} ms")
    print(f"{'query':<48} {'median ms':>10}  result")
    worst = 0.0
    for label, fn in queries(index, rng_facts, DAY_MS):
        ms, result = _time(fn, args.repeat)
        worst = max(worst, ms)
        if isinstance(result, dict) and "traces" in result:
            what = f"{result['total']:,} traces, {len(result['traces'])} shown"
        elif isinstance(result, (list, dict)):
            what = f"{len(result)} rows"
        else:
            what = ""
        print(f"{label:<48} {ms:>10.1f}  {what}")
    print(f"slowest query: {worst:.0f} ms")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
