"""How fast Step 5's trace analysis is on a very large trace.

    python benchmarks/bench_analysis.py [--sizes 100000] [--repeat 3] [--no-memory]

Generates one synthetic trace per size (a fixed seed, so every run sees the same spans) with
a realistic shape: a gateway root, calls fanning out to the other four services, several
levels deep, each service making internal spans, database and cache calls and calls to the
outside payment API; children run one after another or in parallel, some overrun their
parent (clock skew), a few are orphans or duplicates, one long chain is thousands of levels
deep. Each timed run analyses fresh span records, made in the order the spans ended (as an
exporter delivers them) and listed in start order (as the span stores return a trace).

It times, best of `--repeat` runs:

- the endpoint's analysis (`_trace_details`: one index of the trace, then the tree, total
  duration, critical path, bottlenecks, timeline and service map), which is what
  `GET /monitoring/traces/{trace_id}` does after reading the store; the verdict;
- each of the six public functions on its own, as a learner's check or notebook calls it
  (each one builds its own index), for information.

The verdict uses the process's CPU time, which other work on a shared machine does not inflate
(the wall-clock time is printed beside it); freeing the input and the results is not timed.
The target: 100,000 spans in under 1 s. It prints PASS or FAIL (exit code 0 or 1) and, for
information, the peak memory of one analysis (tracemalloc, in a separate untimed run). It
measures the reference answer in `solution/`. Numbers go in notes, never in tests.
"""
from __future__ import annotations

import argparse
import functools
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solution"))

from services.api_gateway.monitoring import (_trace_details,  # noqa: E402
                                             build_service_dependencies, build_timeline,
                                             build_trace_tree, calculate_critical_path,
                                             calculate_total_duration, identify_bottlenecks)
from services.shared.span_store import SpanRecord  # noqa: E402

LIMIT_100K_S = 1.0
SERVICES = ["auth-service", "order-service", "inventory-service", "payment-service"]
OPERATIONS = ["validate_inventory", "reserve_inventory", "process_payment", "confirm_order",
              "load_product", "compute_total", "check_fraud", "render_receipt"]
EPOCH_MS = 1_700_000_000_000.0


def make_trace(size: int, seed: int = 5) -> list[tuple]:
    """One trace of exactly `size` spans (see the module docstring for its shape), as the SDK
    holds them: `(trace id, span id, parent id or None, name, service, kind, start ns, end ns,
    status, attributes)` with integer ids. `records()` turns them into span records.

    Plain tuples of strings and numbers, because the cyclic garbage collector stops looking at
    those: the benchmark's own data must not slow down the collections it measures."""
    rng = random.Random(seed)
    trace_id = rng.getrandbits(128)
    ids = iter(range(1, 1 << 62))
    spans: list[tuple] = []

    def add(parent: int | None, name: str, service: str, kind: str, start: float,
            duration: float, **attributes) -> int:
        span_id = next(ids)
        start_ns = int((EPOCH_MS + start) * 1e6)
        spans.append((trace_id, span_id, parent, name, service, kind, start_ns,
                      start_ns + int(duration * 1e6),
                      "ERROR" if rng.random() < 0.01 else "UNSET", tuple(attributes.items())))
        return span_id

    root = add(None, "POST /api/orders", "api-gateway", "SERVER", 0.0, 60_000.0)
    # A queue of spans still to be given children: (span id, service, start, end, depth).
    queue = [(root, "api-gateway", 0.0, 60_000.0, 0)]
    # One long chain (a recursive call, a retry loop), far deeper than Python's recursion limit.
    chain, start, end = root, 1.0, 59_000.0
    for depth in range(min(5_000, size // 20)):
        chain = add(chain, "recurse", "order-service", "INTERNAL", start, end - start)
        start, end = start + 0.001, end - 0.001
    head = 0
    while len(spans) < size and head < len(queue):
        parent, service, p_start, p_end, depth = queue[head]
        head += 1
        fan_out = rng.choice((1, 2, 3, 4, 6, 8)) if depth < 12 else rng.choice((0, 1, 2))
        parallel = rng.random() < 0.3
        slot = (p_end - p_start) / max(fan_out, 1)
        for k in range(fan_out):
            if len(spans) >= size:
                break
            if parallel:
                c_start = p_start + rng.uniform(0, slot / 2)
                c_end = p_end - rng.uniform(0, slot / 2)
            else:
                c_start = p_start + k * slot + rng.uniform(0, slot / 4)
                c_end = p_start + (k + 1) * slot - rng.uniform(0, slot / 4)
            if rng.random() < 0.02:                     # clock skew: overruns the parent
                c_end += slot / 3
            roll = rng.random()
            if roll < 0.25 and len(spans) + 1 < size:     # a call to another of our services
                callee = rng.choice(SERVICES)
                client = add(parent, f"POST {callee}", service, "CLIENT", c_start,
                             c_end - c_start, **{"server.address": callee})
                inner = add(client, f"POST /{callee.split('-')[0]}", callee, "SERVER",
                            c_start + 0.2, max(c_end - c_start - 0.4, 0.0))
                queue.append((inner, callee, c_start + 0.2, c_end - 0.2, depth + 1))
            elif roll < 0.35:                           # a database or a cache: a leaf
                add(parent, "SELECT", service, "CLIENT", c_start, c_end - c_start,
                    **{"db.system": rng.choice(("sqlite", "redis"))})
            elif roll < 0.38:                           # the outside payment API: a leaf
                add(parent, "POST /v1/charges", service, "CLIENT", c_start, c_end - c_start,
                    **{"server.address": "api.payment-provider.example"})
            else:
                span = add(parent, rng.choice(OPERATIONS), service, "INTERNAL", c_start,
                           c_end - c_start)
                queue.append((span, service, c_start, c_end, depth + 1))
    while len(spans) < size:                          # an orphan: its parent was lost
        add(rng.getrandbits(64), "orphan", "payment-service", "INTERNAL",
            rng.uniform(0, 60_000), rng.uniform(0, 100))
    for i in rng.sample(range(len(spans)), min(10, len(spans))):
        spans[i] = spans[rng.randrange(len(spans))]   # a few spans exported twice
    return spans


def records(trace: list[tuple]) -> list[SpanRecord]:
    """Fresh span records of `trace`, as the endpoint gets them: made in the order the spans
    ended (the order exporters deliver them), listed in start order (as stores return them)."""
    trace_hex = functools.lru_cache(maxsize=None)(lambda trace_id: format(trace_id, "032x"))
    made = [SpanRecord(   # field by field as SpanRecord.from_span makes them from SDK spans
        trace_id=trace_hex(trace_id), span_id=format(span_id, "016x"),
        parent_span_id=None if parent is None else format(parent, "016x"), name=name,
        service=service, kind=kind, start_ms=start / 1e6, duration_ms=(end - start) / 1e6,
        status=status, attributes=dict(attributes))
        for trace_id, span_id, parent, name, service, kind, start, end, status, attributes
        in sorted(trace, key=lambda values: values[7])]
    made.sort(key=lambda r: r.start_ms)
    return made


def endpoint(spans: list[SpanRecord]) -> dict:
    """The endpoint's analysis of one trace (its answer, so that freeing it is not timed:
    that happens after the response is sent)."""
    return _trace_details("0" * 32, spans, threshold_ms=1000.0, top=5)


def public_functions(spans: list[SpanRecord]) -> dict[str, Callable[[], object]]:
    """Each public function on its own (the critical path takes the tree, built untimed)."""
    tree = build_trace_tree(spans)
    return {
        "build_trace_tree": lambda: build_trace_tree(spans),
        "calculate_total_duration": lambda: calculate_total_duration(spans),
        "calculate_critical_path": lambda: calculate_critical_path(tree),
        "identify_bottlenecks": lambda: identify_bottlenecks(spans),
        "build_timeline": lambda: build_timeline(spans),
        "build_service_dependencies": lambda: build_service_dependencies(spans),
    }


def best_time(trace: list[tuple], repeat: int,
              prepare: Callable[[list[SpanRecord]], Callable[[], object]]) -> tuple[float, float]:
    """The best CPU and wall-clock times of `repeat` runs, each of `prepare(fresh records)()`
    (only the call that `prepare` returns is timed)."""
    cpu, wall = [], []
    for _ in range(repeat):
        spans = records(trace)
        run = prepare(spans)
        gc.collect()
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        result = run()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
        del spans, run, result
    return min(cpu), min(wall)


def peak_memory_mb(trace: list[tuple]) -> float:
    spans = records(trace)
    gc.collect()
    tracemalloc.start()
    result = endpoint(spans)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del spans, result
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run")
    args = parser.parse_args(argv)

    results: dict[int, float] = {}
    for size in args.sizes:
        trace = make_trace(size)
        seconds, wall = best_time(trace, args.repeat, lambda spans: lambda: endpoint(spans))
        results[size] = seconds
        line = (f"{size:>9,} spans, the endpoint's analysis: {seconds:.3f} s CPU "
                f"({wall:.3f} s wall), best of {args.repeat}")
        if not args.no_memory:
            line += f", peak memory {peak_memory_mb(trace):.1f} MiB"
        print(line, flush=True)
        print(f"  {'function, on its own':<28} {'CPU s':>7} {'wall s':>7}")
        for name in public_functions([]):
            cpu, wall = best_time(trace, args.repeat,
                                  lambda spans, name=name: public_functions(spans)[name])
            print(f"  {name:<28} {cpu:7.3f} {wall:7.3f}", flush=True)
        del trace

    if 100_000 not in results:
        return 0
    passed = results[100_000] < LIMIT_100K_S
    print(f"{'PASS' if passed else 'FAIL'}: 100,000 spans in {results[100_000]:.3f} s "
          f"(target < {LIMIT_100K_S:g} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
