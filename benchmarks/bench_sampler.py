"""How much Step 6's sampling costs, measured against the SDK's own sampler.

    python benchmarks/bench_sampler.py [--calls 240000] [--repeat 7] [--ratio 0.25]

1. `WorkshopSampler.should_sample` against `ParentBased(TraceIdRatioBased(ratio))`, side by side
   in one run: the same trace ids and the same mix of parents (none, remote sampled, remote not
   sampled, local sampled, local not sampled), the best of several repeats of each (timeit).
   The workshop sampler does more (health probes, the `X-Trace-Sampling` override, B3 parents
   without a decision) and must still cost at most twice as much: the script prints the ratio
   and PASS or FAIL (exit code 0 or 1).
2. For information: `TailSamplingProcessor` throughput (spans per second through a whole
   provider, next to the same provider without it) and the most traces it held at once, with
   many traces in flight.

It measures the reference answer in `solution/`. Numbers go in notes, never in tests.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
import timeit
from pathlib import Path

os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solution"))

from opentelemetry import trace  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (SimpleSpanProcessor, SpanExporter,  # noqa: E402
                                            SpanExportResult)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: E402
from opentelemetry.trace import (NonRecordingSpan, SpanContext, SpanKind, Status,  # noqa: E402
                                 StatusCode, TraceFlags, TraceState)

from services.shared.sampling import (SamplingConfig, TailSamplingProcessor,  # noqa: E402
                                      WorkshopSampler)

LIMIT = 2.0
SERVER_ATTRIBUTES = {"http.request.method": "POST", "url.path": "/api/orders",
                     "url.scheme": "http", "server.address": "order-service"}
INTERNAL_ATTRIBUTES = {"order.id": "order-1"}


def _parent(trace_id: int, *, remote: bool, sampled: bool) -> Context:
    span_context = SpanContext(trace_id, random.getrandbits(64) | 1, is_remote=remote,
                               trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
                               trace_state=TraceState([("vendor", "abc")]) if remote else None)
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


def make_cases(count: int, seed: int = 6) -> list[tuple]:
    """(parent_context, trace_id, name, kind, attributes) in a fixed mix, from fixed ids."""
    random.seed(seed)
    cases = []
    for i in range(count):
        trace_id = random.getrandbits(128) or 1
        shape = i % 5
        if shape == 0:      # a new trace: a server span with no parent
            cases.append((None, trace_id, "POST /api/orders", SpanKind.SERVER, SERVER_ATTRIBUTES))
        elif shape in (1, 2):   # a server span continuing a caller's trace
            ctx = _parent(trace_id, remote=True, sampled=shape == 1)
            cases.append((ctx, trace_id, "POST /orders", SpanKind.SERVER, SERVER_ATTRIBUTES))
        else:               # a child span in the same service
            ctx = _parent(trace_id, remote=False, sampled=shape == 3)
            cases.append((ctx, trace_id, "process_order", SpanKind.INTERNAL, INTERNAL_ATTRIBUTES))
    return cases


def _loop(sampler, cases, rounds: int) -> None:
    should_sample = sampler.should_sample
    for _ in range(rounds):
        for parent_context, trace_id, name, kind, attributes in cases:
            should_sample(parent_context, trace_id, name, kind, attributes)


def bench_head(calls: int, repeat: int, ratio: float) -> bool:
    cases = make_cases(1000)
    rounds = max(1, calls // len(cases))
    reference = ParentBased(TraceIdRatioBased(ratio))
    workshop = WorkshopSampler(SamplingConfig(ratio=ratio))

    # Same answers where both samplers define the same thing (everything but "not sampled",
    # which the SDK drops and the workshop sampler records for the tail).
    for parent_context, trace_id, name, kind, attributes in cases:
        a = reference.should_sample(parent_context, trace_id, name, kind, attributes)
        b = workshop.should_sample(parent_context, trace_id, name, kind, attributes)
        assert a.decision.is_sampled() == b.decision.is_sampled(), (parent_context, trace_id)

    best = {"reference": float("inf"), "workshop": float("inf")}
    for _ in range(repeat):   # interleaved, so that drift in the machine hits both alike
        for label, sampler in (("reference", reference), ("workshop", workshop)):
            seconds = min(timeit.repeat(lambda s=sampler: _loop(s, cases, rounds),
                                        repeat=1, number=1))
            best[label] = min(best[label], seconds)
    n = rounds * len(cases)
    ref_ns, ws_ns = (best[k] / n * 1e9 for k in ("reference", "workshop"))
    factor = ws_ns / ref_ns
    print(f"should_sample, {n:,} calls per repeat, best of {repeat}, ratio {ratio}")
    print(f"  ParentBased(TraceIdRatioBased) {ref_ns:8.0f} ns/call")
    print(f"  WorkshopSampler                {ws_ns:8.0f} ns/call")
    verdict = "PASS" if factor <= LIMIT else "FAIL"
    print(f"  ratio {factor:.2f} (limit {LIMIT:.1f}): {verdict}")
    return factor <= LIMIT


class _CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS


def _run_traces(tracer, traces: int, in_flight: int, children: int) -> None:
    """`traces` local traces, `in_flight` of them open at once: each root stays open while the
    next `in_flight` traces start, as in a busy service. 1 in 50 fails; 1 in 100 is slow."""
    open_roots: list = []
    base = time.time_ns()
    for i in range(traces):
        root = tracer.start_span("POST /orders", kind=SpanKind.SERVER, start_time=base)
        parent = trace.set_span_in_context(root)
        for c in range(children):
            child = tracer.start_span("step", context=parent)
            if i % 50 == 0 and c == children - 1:
                child.set_status(Status(StatusCode.ERROR, "failed"))
            child.end()
        open_roots.append((root, i))
        if len(open_roots) > in_flight:
            done, j = open_roots.pop(0)
            done.end(end_time=base + (2_000_000_000 if j % 100 == 7 else 5_000_000))
    for done, j in open_roots:
        done.end(end_time=base + (2_000_000_000 if j % 100 == 7 else 5_000_000))


def bench_tail(traces: int, in_flight: int, ratio: float, max_buffered: int) -> None:
    children = 4
    spans = traces * (children + 1)
    print(f"tail sampling, {traces:,} local traces of {children + 1} spans, {in_flight} in flight, "
          f"ratio {ratio}, max_buffered_traces {max_buffered}")
    config = SamplingConfig(ratio=ratio)
    for label in ("without tail processor", "with TailSamplingProcessor"):
        exporter = _CountingExporter()
        provider = TracerProvider(sampler=WorkshopSampler(config))
        tail = None
        if label.startswith("with "):
            tail = TailSamplingProcessor(SimpleSpanProcessor(exporter), config,
                                         max_buffered_traces=max_buffered)
            provider.add_span_processor(tail)
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("bench")
        started = time.perf_counter()
        _run_traces(tracer, traces, in_flight, children)
        seconds = time.perf_counter() - started
        extra = (f", peak buffered traces {tail.peak_buffered_traces:,}, "
                 f"still held {tail.buffered_traces}" if tail else "")
        print(f"  {label:27s} {spans / seconds:10,.0f} spans/s, exported {exporter.count:,}{extra}")
        provider.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=240_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=500)
    args = parser.parse_args()

    started = time.perf_counter()
    ok = bench_head(args.calls, args.repeat, args.ratio)
    print()
    bench_tail(args.traces, args.in_flight, 0.1, 10_000)
    bench_tail(args.traces, args.in_flight, 0.1, 256)
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
