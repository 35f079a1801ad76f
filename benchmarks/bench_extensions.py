"""How fast the extensions' reference answers are on a store of many traces.

    python benchmarks/bench_extensions.py [--spans 100000] [--per-trace 50] [--repeat 3]

Generates `--spans` span records spread over traces of `--per-trace` spans each, every trace
shaped as in `bench_analysis.py` (its generator, one seed per trace: a gateway
`POST /api/orders` root, calls fanning out to the other services, internal spans, database,
cache and outside calls, 1% errors, a few orphans and duplicates). Each trace's root carries
`experiment.checkout-v2` with the variant of a user, as the gateway's E2 wiring puts it there.
The same seed every run, so every run sees the same spans.

Then it times each extension function on all the spans (best of `--repeat` runs, on the
process's CPU time, with the wall-clock time beside it) and prints a table; the verdict is
PASS when each of the E1, E3 and E4 functions takes under `LIMIT_S` (exit code 0, else 1).
`assign_variant` is timed for 10,000 users, for information. It measures the reference answer
in `solution/`. Numbers go in notes, never in tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solution"))

from bench_analysis import make_trace, records  # noqa: E402
from services.api_gateway.analytics import (dependency_map, error_rates,  # noqa: E402
                                            slowest_operations)
from services.api_gateway.slo import SLO, evaluate_slo  # noqa: E402
from services.shared.experiments import assign_variant, compare_variants  # noqa: E402
from services.shared.span_store import SpanRecord  # noqa: E402

LIMIT_S = 0.5
EXPERIMENT = "checkout-v2"


def make_spans(total: int, per_trace: int) -> list[SpanRecord]:
    """`total` span records over traces of `per_trace` spans, each root tagged with a variant."""
    spans: list[SpanRecord] = []
    for seed in range(-(-total // per_trace)):
        trace = records(make_trace(per_trace, seed=seed))
        root = trace[0]                               # the gateway's POST /api/orders
        variant = assign_variant(f"user-{seed % 997}", EXPERIMENT)
        trace[0] = dataclasses.replace(
            root, attributes={**root.attributes, f"experiment.{EXPERIMENT}": variant})
        spans += trace
    return spans[:total]


def functions(spans: list[SpanRecord]) -> dict[str, tuple[Callable[[], object], bool]]:
    """Each function to time, and whether the verdict holds it to LIMIT_S."""
    window_start = min(s.start_ms for s in spans)
    available = SLO(name="orders-available", service="api-gateway",
                    operation="POST /api/orders", objective=0.99)
    fast = SLO(name="orders-fast", service="api-gateway", operation="POST /api/orders",
               objective=0.95, latency_ms=60_000.0)
    users = [f"user-{i}" for i in range(10_000)]
    return {
        "slowest_operations (E1)": (lambda: slowest_operations(spans), True),
        "error_rates (E1)": (lambda: error_rates(spans), True),
        "evaluate_slo, availability (E3)": (lambda: evaluate_slo(available, spans), True),
        "evaluate_slo, latency, window (E3)": (
            lambda: evaluate_slo(fast, spans, start_ms=window_start, end_ms=window_start + 30_000),
            True),
        "dependency_map (E4)": (lambda: dependency_map(spans), True),
        "compare_variants (E2)": (lambda: compare_variants(spans, EXPERIMENT), False),
        "assign_variant x 10,000 (E2)": (lambda: [assign_variant(u, EXPERIMENT) for u in users],
                                         False),
    }


def best_time(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(repeat):
        gc.collect()
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        result = run()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
        del result
    return min(cpu), min(wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--per-trace", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    spans = make_spans(args.spans, args.per_trace)
    traces = len({s.trace_id for s in spans})
    print(f"{len(spans):,} spans in {traces:,} traces; best of {args.repeat} runs")
    print(f"  {'function':<36} {'CPU s':>7} {'wall s':>7}")
    ok = True
    for name, (run, held) in functions(spans).items():
        cpu, wall = best_time(run, args.repeat)
        verdict = ("" if not held else "  PASS" if cpu < LIMIT_S else "  FAIL")
        ok &= cpu < LIMIT_S or not held
        print(f"  {name:<36} {cpu:7.3f} {wall:7.3f}{verdict}", flush=True)
    print(f"{'PASS' if ok else 'FAIL'}: each E1/E3/E4 function under {LIMIT_S:g} s CPU "
          f"on {len(spans):,} spans")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
