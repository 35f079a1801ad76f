"""Load and tracing overhead: orders through the live system with tracing on and off.

Starts the live system (`kit.live`, solution/ by default) twice on free loopback ports: once
with tracing off (the OpenTelemetry SDK disabled: no spans at all) and once with tracing on
(every span sampled and exported, in batches, to the shared SQLite span store). Each time:
a short warm-up, then `--orders` orders (500) from `--concurrency` concurrent clients, each
order with its own sampled `traceparent`; then the system is stopped (every service flushes
as it stops). Prints throughput and p50/p99 latency for both, the overhead, and checks the
store: every measured order's trace must be complete (one root, no span missing: the same
spans as the other orders).

    python benchmarks/bench_load.py [--orders 500] [--concurrency 8] [--time-limit 240]

Bounded: loopback only, a fixed number of requests, and a time limit per run after which no
new order is sent; every process stops by itself if this script dies. Exit code 0 when nothing
was lost and tracing cost at most `--budget` (25%) of the throughput, else 1.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kit.live import (DEFAULT_ITEMS, LiveConfig, LiveSystem, free_base_port,  # noqa: E402
                      new_traceparent, ports_from_base)
from kit.viewer.store import SpanDatabase  # noqa: E402

STOCK = {"prod-1": 10_000_000, "prod-2": 10_000_000}   # never runs out during a run
BODY = {"items": DEFAULT_ITEMS,
        "total_amount": round(sum(i["quantity"] * i["price"] for i in DEFAULT_ITEMS), 2)}


@dataclass
class Run:
    mode: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    traces: list[tuple[str, str]] = field(default_factory=list)   # (trace id, client parent)
    wall_s: float = 0.0
    cut_short: bool = False
    store: Path | None = None

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, max(0, round(q / 100 * len(data)) - 1))]


async def _drive(gateway: str, orders: int, concurrency: int, deadline: float, run: Run) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(orders):
        queue.put_nowait(None)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=gateway, timeout=15, limits=limits) as client:
        async def worker() -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if time.monotonic() > deadline:
                    run.cut_short = True
                    return
                traceparent, trace_id = new_traceparent()
                start = time.perf_counter()
                try:
                    answer = await client.post("/api/orders", json=BODY, headers={
                        "Authorization": "Bearer token-alice", "traceparent": traceparent})
                    status = answer.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                run.latencies_ms.append((time.perf_counter() - start) * 1000)
                run.statuses[status] += 1
                if status == 200:
                    run.traces.append((trace_id, traceparent.split("-")[2]))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.wall_s = time.perf_counter() - started


def measure(mode: str, args: argparse.Namespace, run_dir: Path) -> Run:
    """One run: start the system with tracing `mode` ("off" or "store"), load it, stop it."""
    run = Run(mode)
    # The inventory's database file holds enough stock for every order. Every reservation is
    # a few committed writes, which on a disk would each wait for fsync and measure the disk:
    # keep that file in memory (tmpfs) when the machine has one. The span file stays on disk.
    shm = Path("/dev/shm")
    inventory_dir = Path(tempfile.mkdtemp(prefix="workshop-bench-", dir=shm if shm.is_dir() else None))
    config = LiveConfig(tree=args.tree, ports=ports_from_base(free_base_port()),
                        run_dir=run_dir / mode, export=mode, stock=dict(STOCK),
                        inventory_db=str(inventory_dir / "inventory.db"),
                        max_seconds=args.time_limit + 120)
    system = LiveSystem(config)
    system.start()
    try:
        with httpx.Client(base_url=system.url("gateway"), timeout=15) as client:
            for _ in range(args.warmup):
                client.post("/api/orders", json=BODY, headers={"Authorization": "Bearer token-alice"})
        asyncio.run(_drive(system.url("gateway"), args.orders, args.concurrency,
                           time.monotonic() + args.time_limit, run))
    finally:
        codes = system.stop()
        shutil.rmtree(inventory_dir, ignore_errors=True)
    if any(code != 0 for code in codes.values()):
        print(f"  warning: not every process stopped cleanly: {codes}")
    run.store = config.span_file
    return run


def check_store(run: Run) -> tuple[int, int, str]:
    """(complete traces, incomplete traces, a note). Complete: stored, one root (the
    gateway's server span under the client's span), and the same spans as most orders."""
    db = SpanDatabase(run.store)
    shapes: dict[str, Counter] = {}
    roots_ok: dict[str, bool] = {}
    for trace_id, client_parent in run.traces:
        spans = db.get_trace(trace_id)
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.parent_span_id not in ids]
        roots_ok[trace_id] = (len(roots) == 1 and roots[0].parent_span_id == client_parent
                              and roots[0].service == "api-gateway")
        shapes[trace_id] = Counter((s.service, s.name, s.kind) for s in spans)
    if not shapes:
        return 0, 0, "no successful order to check"
    common, _ = Counter(frozenset(c.items()) for c in shapes.values()).most_common(1)[0]
    expected = sum(n for _, n in common)
    bad = [t for t, c in shapes.items() if frozenset(c.items()) != common or not roots_ok[t]]
    note = f"{expected} spans per order"
    if bad:
        missing = Counter()
        for t in bad:
            missing.update(Counter(dict(common)) - shapes[t])
        note += f"; missing most often: {missing.most_common(3)}"
    return len(shapes) - len(bad), len(bad), note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=240.0,
                        help="seconds per run after which no new order is sent")
    parser.add_argument("--budget", type=float, default=25.0,
                        help="the most throughput tracing may cost, in percent")
    parser.add_argument("--tree", type=Path, default=ROOT / "solution")
    args = parser.parse_args(argv)

    print(f"{args.orders} orders per run, {args.concurrency} concurrent clients, "
          f"{args.tree.name}/, loopback only")
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory(prefix="workshop-bench-") as tmp:
        for mode in ("off", "store"):
            label = "tracing off" if mode == "off" else "tracing on"
            print(f"- {label} ...", flush=True)
            runs[mode] = run = measure(mode, args, Path(tmp))
            if mode == "store":
                complete, incomplete, note = check_store(run)
                stored = SpanDatabase(run.store).count()

    print()
    print(f"{'':14}{'orders ok':>10}{'other':>8}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for mode, run in runs.items():
        label = "tracing off" if mode == "off" else "tracing on"
        other = sum(n for s, n in run.statuses.items() if s != 200)
        print(f"{label:14}{run.ok:>10}{other:>8}{run.throughput:>10.1f}"
              f"{run.pct(50):>9.1f}{run.pct(99):>9.1f}")
        if run.cut_short:
            print(f"  (cut short by the {args.time_limit:.0f} s time limit)")
        if other:
            print(f"  answers other than 200: {dict((k, v) for k, v in run.statuses.items() if k != 200)}")
    off, on = runs["off"].throughput, runs["store"].throughput
    overhead = (1 - on / off) * 100 if off else float("nan")
    print(f"\nSpan store after the traced run: {stored} spans; {complete} complete traces, "
          f"{incomplete} incomplete ({note}).")
    within = overhead <= args.budget
    print(f"Tracing costs {overhead:.1f}% of the throughput "
          f"(p50 {runs['store'].pct(50) - runs['off'].pct(50):+.1f} ms, "
          f"p99 {runs['store'].pct(99) - runs['off'].pct(99):+.1f} ms): "
          f"{'within' if within else 'OVER'} the {args.budget:g}% budget.")
    lost = incomplete > 0 or complete != runs["store"].ok
    if lost:
        print("Some sampled spans are missing from the store.")
    return 0 if within and not lost and runs["off"].ok and runs["store"].ok else 1


if __name__ == "__main__":
    sys.exit(main())
