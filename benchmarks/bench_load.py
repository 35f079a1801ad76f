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
import os
import shutil
import statistics
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

from kit.topology import DEFAULT_ITEMS  # noqa: E402
from kit.live.client import new_traceparent  # noqa: E402
from kit.live.system import LiveConfig, LiveSystem, free_base_port, ports_from_base  # noqa: E402
from kit.live.viewer.store import SpanDatabase  # noqa: E402

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
    cpu_s: float | None = None          # CPU time of every service process during the load

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def cpu_ms_per_order(self) -> float | None:
        return self.cpu_s * 1000 / self.ok if self.cpu_s is not None and self.ok else None

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, max(0, round(q / 100 * len(data)) - 1))]


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time of these processes so far (Linux /proc; None elsewhere)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])     # utime, stime
        return total / ticks
    except (OSError, ValueError, IndexError):
        return None


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
        pids = [proc.pid for proc in system.procs.values()]
        before = cpu_seconds(pids)
        asyncio.run(_drive(system.url("gateway"), args.orders, args.concurrency,
                           time.monotonic() + args.time_limit, run))
        after = cpu_seconds(pids)
        if before is not None and after is not None:
            run.cpu_s = after - before
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
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each mode, alternating off/on (medians are reported)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--time-limit", type=float, default=120.0,
                        help="seconds per run after which no new order is sent")
    parser.add_argument("--budget", type=float, default=25.0,
                        help="the most throughput tracing may cost, in percent")
    parser.add_argument("--tree", type=Path, default=ROOT / "solution")
    args = parser.parse_args(argv)

    print(f"{args.orders} orders per run, {args.concurrency} concurrent clients, "
          f"{args.rounds} round(s) of tracing off / on, {args.tree.name}/, loopback only, "
          f"{os.cpu_count()} CPUs")
    runs: dict[str, list[Run]] = {"off": [], "store": []}
    checks: list[tuple[int, int, str, int]] = []
    with tempfile.TemporaryDirectory(prefix="workshop-bench-") as tmp:
        for r in range(args.rounds):
            for mode in ("off", "store"):
                run = measure(mode, args, Path(tmp) / f"round{r}")
                runs[mode].append(run)
                line = (f"  round {r + 1}, tracing {'off' if mode == 'off' else 'on '}: "
                        f"{run.ok} ok, {run.throughput:6.1f} orders/s, p50 {run.pct(50):6.1f} ms, "
                        f"p99 {run.pct(99):6.1f} ms")
                if run.cpu_ms_per_order is not None:
                    line += f", {run.cpu_ms_per_order:5.1f} CPU ms/order"
                if mode == "store":
                    complete, incomplete, note = check_store(run)
                    checks.append((complete, incomplete, note, run.ok))
                    line += f"; store: {complete}/{run.ok} traces complete"
                print(line, flush=True)

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else float("nan")

    print()
    print(f"{'median':14}{'orders/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/order':>14}")
    summary = {}
    for mode, label in (("off", "tracing off"), ("store", "tracing on")):
        rs = runs[mode]
        summary[mode] = (med(r.throughput for r in rs), med(r.pct(50) for r in rs),
                         med(r.pct(99) for r in rs), med(r.cpu_ms_per_order for r in rs))
        thr, p50, p99, cpu = summary[mode]
        print(f"{label:14}{thr:>10.1f}{p50:>9.1f}{p99:>9.1f}{cpu:>14.1f}")
    for mode in runs:
        for run in runs[mode]:
            other = {k: v for k, v in run.statuses.items() if k != 200}
            if other or run.cut_short:
                print(f"  note: a {mode} run had {other or 'no'} other answers"
                      f"{' and was cut short by the time limit' if run.cut_short else ''}")

    off, on = summary["off"], summary["store"]
    overhead = (1 - on[0] / off[0]) * 100 if off[0] else float("nan")
    cpu_extra = (on[3] / off[3] - 1) * 100 if off[3] == off[3] and off[3] else float("nan")
    complete = sum(c[0] for c in checks)
    incomplete = sum(c[1] for c in checks)
    expected = sum(c[3] for c in checks)
    print(f"\nSpan store after the traced runs: {complete} of {expected} orders have their "
          f"whole trace ({checks[-1][2] if checks else 'nothing checked'}); "
          f"{incomplete} incomplete.")
    within = overhead <= args.budget
    print(f"Tracing costs {overhead:.1f}% of the throughput (median of {args.rounds}), "
          f"{cpu_extra:+.0f}% CPU per order, p50 {on[1] - off[1]:+.1f} ms, p99 {on[2] - off[2]:+.1f} ms: "
          f"{'within' if within else 'OVER'} the {args.budget:g}% budget.")
    lost = incomplete > 0 or complete != expected
    if lost:
        print("Some sampled spans are missing from the store.")
    return 0 if within and not lost and expected else 1


if __name__ == "__main__":
    sys.exit(main())
