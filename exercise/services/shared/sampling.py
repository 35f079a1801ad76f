"""Step 6: sampling, or which traces we keep and where that is decided.

Recording every request of a busy system costs a lot and tells you little you could not learn
from a tenth of them. Sampling keeps a representative share of the traces, and keeps every
trace that is worth reading on its own: one that failed, or one that was slow. It is decided
in two places, and this module holds one class for each.

**Head sampling** (`WorkshopSampler`) decides when a trace's first span starts, before anything
is known about how the request will go. The SDK asks the sampler once per span; its answer
becomes the span's *sampled* flag, which travels to every downstream service in `traceparent`,
so one decision covers the whole distributed trace:

- A span whose parent is in this process follows its parent, and a span whose parent came over
  the wire honours the parent's sampled flag: the caller has already decided. (A B3 header may
  leave the decision out; such a trace is decided here like a new one, keeping its trace id.)
- A new trace (no parent) is sampled when its trace id falls under the ratio, exactly as
  `TraceIdRatioBased` decides: the low 64 bits of the trace id are compared with
  `round(ratio * 2**64)`. The trace id is random, so this samples `ratio` of the traces, and it
  is a pure function of the id, so every service that looks at the same trace agrees.
- Health probes (`/health`, `/healthz`, `/ready`, `/live`) are frequent and boring: their
  traces use `health_ratio` instead.
- `max_traces_per_second` caps the new traces sampled per second with a token bucket, so a
  traffic spike cannot multiply the tracing bill.
- A caller can force the decision with the `X-Trace-Sampling: always|never` header, which
  Step 2's `extract_context` keeps in the context (`sampling_override`).
- A span that is not head-sampled is still *recorded* (`RECORD_ONLY`): it collects attributes,
  events and status like any other, but the SDK's exporting processors skip it. That is what
  lets the tail change its mind.

**Tail sampling** (`TailSamplingProcessor`) decides after the fact. It sits in front of the
exporting processor and looks at each service's part of a trace (a *local trace*) as a whole.
A head-sampled one is kept anyway, so its spans go straight on; any other is held until its
first span (its local root) ends, and is then kept whole if it holds an `ERROR` span or its
root was slow, and dropped otherwise. So with `ratio=0` a failing request is still exported in
full in every service it touched, while fast successful requests cost nothing.

Step 1 wires them together::

    config = SamplingConfig.for_environment("production")
    provider = TracerProvider(resource=resource, sampler=WorkshopSampler(config))
    provider.add_span_processor(TailSamplingProcessor(BatchSpanProcessor(exporter), config))

**Your job.** As shipped, the sampler samples every span (like the SDK's `ALWAYS_ON`: it keeps
the span's attributes and the parent's `tracestate`, and nothing else) and the tail processor
hands every span straight on, so the services work and every trace is exported. Replace that
with the behaviour above, TODO by TODO:

- TODO 1 (sampling-works): `SamplingConfig.for_environment`.
- TODO 2-7: `WorkshopSampler` (2 ratio, 3 parents, 4 RECORD_ONLY, 5 health probes, 6 the cap,
  7 the override).
- TODO 8-11: `TailSamplingProcessor` (8 local traces, 9 the decision, 10 the sampled copy,
  11 late spans and bounded memory).

The tests of your sampler pass fake clocks and fixed trace ids, so nothing here may depend on
randomness or on the wall clock except through `clock` and the span's own times.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

# TODO 7 reads the X-Trace-Sampling override with Step 2's helper.
from services.shared.trace_context import sampling_override  # noqa: F401

_logger = logging.getLogger(__name__)

#: Head ratio per deployment environment: everything while developing, less as traffic grows.
ENVIRONMENT_RATIOS: dict[str, float] = {"development": 1.0, "staging": 0.5, "production": 0.1}

#: Paths of health probes (matched at the end of the path, so `/api/health` is one too).
HEALTH_PATHS: tuple[str, ...] = ("/health", "/healthz", "/ready", "/live")


@dataclass
class SamplingConfig:
    """What to keep. The sampler reads `ratio`, `health_ratio` and `max_traces_per_second`;
    the tail processor reads `slow_threshold_ms` and `keep_errors`. Both read the config once,
    when they are built."""

    ratio: float = 1.0                  # head ratio for ordinary root traces
    health_ratio: float = 0.001         # /health, /healthz, /ready, /live
    max_traces_per_second: float | None = None
    slow_threshold_ms: float = 1000.0   # tail: keep a slow local trace
    keep_errors: bool = True            # tail: keep a local trace that holds an error

    @classmethod
    def for_environment(cls, environment: str) -> "SamplingConfig":
        """The config for a deployment environment (case-insensitive): `development` samples
        every trace, `staging` half, `production` a tenth. An unknown name falls back to
        `development` with a warning, so a typo costs money rather than visibility."""
        # TODO 1 (sampling-works; rules 6.27 and 6.28): look the environment up in
        # ENVIRONMENT_RATIOS, ignoring case, and return cls(ratio=<that ratio>). For a name that is
        # not there, log a warning with _logger.warning(...) and use "development".
        return cls()


class WorkshopSampler(Sampler):
    """The head sampler: parent-based, trace-id-ratio for new traces, a lower ratio for health
    probes, an optional traces-per-second cap, and the `X-Trace-Sampling` override.

    `clock` (seconds, monotonic) drives the token bucket; tests pass a fake one."""

    def __init__(self, config: SamplingConfig, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        # TODO 2 (sampling-works; rules 6.1 and 6.6): should_sample runs for every span, so compute
        # what it needs once, here: the bounds `round(ratio * 2**64)` for config.ratio and
        # config.health_ratio (TraceIdRatioBased.get_bound_for_rate computes the same), and, when
        # config.max_traces_per_second is not None, a token bucket (TODO 6).

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        # TODO 2 (sampling-works; rules 6.1 and 6.6): a new trace (no valid parent) is sampled when
        # `trace_id & (2**64 - 1) < bound`, exactly like TraceIdRatioBased, so that every
        # service and every sampler instance gives the same trace id the same answer.
        #
        # TODO 3 (sampling-works; rules 6.2 and 6.3): parent-based. A valid local parent (not
        # parent.is_remote): follow parent.trace_flags.sampled. A remote parent: honour its
        # sampled flag, unless its B3 header carried no decision (Step 2's
        # sampling_decision_deferred(parent_context) says so): then decide as for a new trace.
        # Always return the parent's trace_state (None for a new trace).
        #
        # TODO 4 (sampling-works; rule 6.4): a span that is not head-sampled gets
        # Decision.RECORD_ONLY, never DROP: it is still recorded, so the tail processor can keep it
        # if it fails.
        #
        # TODO 5 (sampling-works; rules 6.5 to 6.7): a health probe uses config.health_ratio instead
        # of ratio: kind SERVER or None, and its `url.path`, `http.target` or `http.route` attribute
        # is one of HEALTH_PATHS or ends with one (ignore a trailing slash and a query string).
        #
        # TODO 6 (sampling-works; rules 6.8 to 6.11): with config.max_traces_per_second = N, a trace
        # that the ratio (or health ratio, or a deferred B3 parent) would sample must also take a
        # whole token from a bucket that holds at most max(N, 1), starts full and refills at N per
        # second of self._clock(). Compare with `tokens >= 1 - 1e-9`: ten refills of 0.1 are
        # 0.9999999999999999. Remote parents that decided, and overrides, take no token.
        #
        # TODO 7 (sampling-works; rules 6.12 to 6.16): sampling_override(parent_context) == "always"
        # samples the trace whatever the ratio, cap or upstream flag (taking no token); "never"
        # records it only. Check it before the remote parent's flag.
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes,
                              parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        c = self.config
        return (f"WorkshopSampler{{ratio={c.ratio},health_ratio={c.health_ratio},"
                f"max_traces_per_second={c.max_traces_per_second}}}")


class TailSamplingProcessor(SpanProcessor):
    """Keeps whole local traces that were head-sampled, failed or were slow; drops the rest.

    Put it in front of the processor that exports (`next_processor`, usually a
    `BatchSpanProcessor`). A *local trace* is what one service recorded of a trace: a local
    root (a span whose parent is remote or absent, or whose local parent this processor never
    saw start) and its local descendants. A service called twice in one trace has two.

    A head-sampled local trace is kept, so it is decided when its root starts and its spans
    are handed on as they end. Any other is held until its root ends, then kept whole when it
    holds an `ERROR` span (`keep_errors`) or its root lasted at least `slow_threshold_ms`, and
    dropped otherwise. A span of a decided trace that ends later follows the decision. At most
    `max_buffered_traces` undecided traces are held: when a new one would exceed that, the
    oldest is decided early, on what it holds so far (kept only if it holds an error).
    """

    def __init__(self, next_processor: SpanProcessor, config: SamplingConfig, *,
                 max_buffered_traces: int = 10_000) -> None:
        self.next_processor = next_processor
        self.config = config
        self.max_buffered_traces = max_buffered_traces
        # TODO 8 (errors-traced; rule 6.17): the state: which local trace each started span belongs
        # to (key it by (trace_id, span_id)), and the undecided local traces, oldest first (an
        # OrderedDict), each with its ended spans. Guard it with a threading.Lock: spans start and
        # end on many threads.

    @property
    def buffered_traces(self) -> int:
        """How many local traces are held undecided right now."""
        return 0  # TODO 11: the number of undecided local traces

    @property
    def peak_buffered_traces(self) -> int:
        """The most local traces ever held undecided at once."""
        return 0  # TODO 11: the largest that number has been

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.next_processor.on_start(span, parent_context=parent_context)
        # TODO 8 (errors-traced; rule 6.17): find the span's local trace: its parent's, when
        # span.parent is a local span (not is_remote) that you saw start; otherwise the span is a
        # local root and starts a new one. A local root whose trace_flags.sampled is set is kept
        # whatever happens: decide it now.

    def _on_ending(self, span: Span) -> None:
        self.next_processor._on_ending(span)  # pylint: disable=protected-access

    def on_end(self, span: ReadableSpan) -> None:
        # TODO 9 (errors-traced; rules 6.18, 6.19, 6.24 to 6.26): hold the span with its undecided
        # local trace. When the local root ends, keep the whole trace if it was head-sampled, holds
        # a span whose status is ERROR (when config.keep_errors), or the root lasted at least
        # config.slow_threshold_ms (end_time - start_time is in nanoseconds); else drop it.
        #
        # TODO 10 (errors-traced; rule 6.20): hand kept spans on with
        # self.next_processor.on_end(...), outside your lock. The SDK's Simple/BatchSpanProcessor
        # skip spans whose context.trace_flags.sampled is off, so hand on a copy whose context has
        # the SAMPLED flag set (same ids, attributes, events and status).
        #
        # TODO 11 (errors-traced; rules 6.21 to 6.23): a span of a trace already decided follows the
        # decision, even when it ends after its root. Forget a decided trace once all its spans
        # ended. Hold at most max_buffered_traces undecided traces: before a new one would exceed
        # that, decide the oldest early, as if its root had ended then (keep it only if it was
        # head-sampled or already holds an error).
        self.next_processor.on_end(span)

    def shutdown(self) -> None:
        # TODO 11: decide what is still held (as when decided early) before shutting down.
        self.next_processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.next_processor.force_flush(timeout_millis)
