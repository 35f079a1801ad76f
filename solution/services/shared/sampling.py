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
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (Link, SpanContext, SpanKind, StatusCode, TraceFlags,
                                 get_current_span)
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from services.shared.trace_context import sampling_override

try:  # Step 2's helper for a B3 parent that carried no decision (not part of the contract)
    from services.shared.trace_context import sampling_decision_deferred
except ImportError:  # pragma: no cover - without it every remote parent is taken at its flag
    def sampling_decision_deferred(context: Context | None = None) -> bool:
        return False

_logger = logging.getLogger(__name__)

#: Head ratio per deployment environment: everything while developing, less as traffic grows.
ENVIRONMENT_RATIOS: dict[str, float] = {"development": 1.0, "staging": 0.5, "production": 0.1}

#: Paths of health probes (matched at the end of the path, so `/api/health` is one too).
HEALTH_PATHS: tuple[str, ...] = ("/health", "/healthz", "/ready", "/live")

# The attributes an HTTP server instrumentation passes at span start that name the path:
# stable semantic conventions (`url.path`), the old ones (`http.target`) and the route.
_PATH_ATTRIBUTES = ("url.path", "http.target", "http.route")

# TraceIdRatioBased looks at the low 64 bits of the trace id (W3C trace ids are random there,
# and 64-bit ids from older systems still work).
_LOW_64_BITS = (1 << 64) - 1
_TOKEN_TOLERANCE = 1e-9

_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD = Decision.RECORD_ONLY


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

    def __post_init__(self) -> None:
        for name in ("ratio", "health_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SamplingConfig.{name} must be between 0 and 1, got {value!r}")
        if self.max_traces_per_second is not None and not self.max_traces_per_second > 0:
            raise ValueError("SamplingConfig.max_traces_per_second must be > 0 or None, "
                             f"got {self.max_traces_per_second!r}")

    @classmethod
    def for_environment(cls, environment: str) -> "SamplingConfig":
        """The config for a deployment environment (case-insensitive): `development` samples
        every trace, `staging` half, `production` a tenth. An unknown name falls back to
        `development` with a warning, so a typo costs money rather than visibility."""
        key = str(environment or "").strip().lower()
        if key not in ENVIRONMENT_RATIOS:
            _logger.warning("Unknown environment %r for sampling; using 'development' "
                            "(ratio %s)", environment, ENVIRONMENT_RATIOS["development"])
            key = "development"
        return cls(ratio=ENVIRONMENT_RATIOS[key])


def _bound(ratio: float) -> int:
    # The same bound as TraceIdRatioBased.get_bound_for_rate, so that one trace id gets one
    # answer from both samplers at the same ratio.
    return round(ratio * (_LOW_64_BITS + 1))


def _is_health_path(path: str) -> bool:
    """True for a health-probe path: one of `HEALTH_PATHS`, or ending with one, ignoring a
    query string and a trailing slash (`/health/`, `/api/v1/healthz?full=1`)."""
    path = path.partition("?")[0].partition("#")[0].rstrip("/")
    return path.endswith(HEALTH_PATHS)


def _is_health_check(kind: SpanKind | None, attributes: Attributes) -> bool:
    # Only a server span is a probe arriving; a client span calling /health elsewhere is part
    # of whatever trace made the call. Some callers pass no kind: take that as a server span.
    if not attributes or (kind is not None and kind is not SpanKind.SERVER):
        return False
    for key in _PATH_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and _is_health_path(value):
            return True
    return False


class _TokenBucket:
    """At most `rate` grants per second on average, bursts of up to max(rate, 1)."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity           # starts full
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()           # the SDK may sample on many threads at once

    def try_take(self) -> bool:
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._last, 0.0)    # a clock that steps back adds nothing
            tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._last = now
            # Floating point: ten refills of 0.1 add up to 0.9999999999999999, which must
            # still count as one whole token.
            if tokens >= 1.0 - _TOKEN_TOLERANCE:
                self._tokens = max(tokens - 1.0, 0.0)
                return True
            self._tokens = tokens
            return False


class WorkshopSampler(Sampler):
    """The head sampler: parent-based, trace-id-ratio for new traces, a lower ratio for health
    probes, an optional traces-per-second cap, and the `X-Trace-Sampling` override.

    `clock` (seconds, monotonic) drives the token bucket; tests pass a fake one."""

    def __init__(self, config: SamplingConfig, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        # Everything should_sample needs is computed here once: the SDK calls should_sample
        # for every span, on the application's hot path.
        self._bound = _bound(config.ratio)
        self._health_bound = _bound(config.health_ratio)
        cap = config.max_traces_per_second
        self._bucket = _TokenBucket(cap, clock) if cap is not None else None

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            # tracestate belongs to the trace (vendors keep their own state in it): carry the
            # parent's on, unchanged.
            parent_state = parent.trace_state
            if not parent.is_remote:
                # A parent in this process: the decision was made at this service's local root
                # and every span below it follows, so a trace is never half exported.
                return SamplingResult(_SAMPLE if parent.trace_flags.sampled else _RECORD,
                                      attributes, parent_state)
        else:
            parent_state = None

        # From here on this span starts this service's part of the trace.
        override = _override(parent_context)
        if override is not None:
            # An explicit request from the caller wins over ratio, cap and upstream flag. The
            # decision leaves this service as the sampled flag, so downstream services follow
            # it without seeing the header.
            sampled = override == "always"
        elif parent.is_valid and (parent.trace_flags.sampled
                                  or not _decision_deferred(parent_context)):
            # The caller decided: honour it, so the trace is kept or dropped in every service.
            sampled = parent.trace_flags.sampled
        else:
            # A new trace, or a remote parent (B3) that left the decision to us: decide from
            # the trace id, which keeps every service that decides this way in agreement.
            sampled = self._sample_new_trace(trace_id, kind, attributes)
        # Not head-sampled is still recorded (RECORD_ONLY): the tail processor sees the span
        # and can keep it if the trace turns out to fail or be slow.
        return SamplingResult(_SAMPLE if sampled else _RECORD, attributes, parent_state)

    def _sample_new_trace(self, trace_id: int, kind: SpanKind | None,
                          attributes: Attributes) -> bool:
        bound = self._health_bound if _is_health_check(kind, attributes) else self._bound
        if trace_id & _LOW_64_BITS >= bound:
            return False
        # The cap only spends tokens on traces the ratio would keep, so at low traffic the
        # ratio alone decides and at high traffic the cap bounds the cost.
        return self._bucket is None or self._bucket.try_take()

    def get_description(self) -> str:
        c = self.config
        return (f"WorkshopSampler{{ratio={c.ratio},health_ratio={c.health_ratio},"
                f"max_traces_per_second={c.max_traces_per_second}}}")


def _override(parent_context: Context | None) -> str | None:
    try:
        value = sampling_override(parent_context)
    except NotImplementedError:     # Step 2 not written yet: no override, sampling still works
        return None
    return value if value in ("always", "never") else None


def _decision_deferred(parent_context: Context | None) -> bool:
    # W3C `traceparent` always carries a decision (its flags byte); a B3 header may leave it
    # out, and Step 2 then marks the context so that the sampler decides. Only asked when the
    # parent's flag is off, since a deferred parent never has it on.
    try:
        return sampling_decision_deferred(parent_context)
    except NotImplementedError:
        return False


class _LocalTrace:
    """One service's part of one trace: a local root and the local spans below it."""

    __slots__ = ("root", "keep", "ended", "span_keys", "open_spans", "has_error")

    def __init__(self, root: tuple[int, int], keep: bool | None) -> None:
        self.root = root                            # (trace_id, span_id) of the local root
        self.keep: bool | None = keep               # None while undecided
        self.ended: list[ReadableSpan] = []         # held until the decision
        self.span_keys: list[tuple[int, int]] = []  # every span seen starting in it
        self.open_spans = 0
        self.has_error = False


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
        if max_buffered_traces < 1:
            raise ValueError("max_buffered_traces must be at least 1")
        self.next_processor = next_processor
        self.config = config
        self.max_buffered_traces = max_buffered_traces
        self._slow_ns = config.slow_threshold_ms * 1_000_000
        self._keep_errors = config.keep_errors
        self._lock = threading.Lock()
        # Undecided local traces, oldest first: the ones that cost memory.
        self._undecided: OrderedDict[tuple[int, int], _LocalTrace] = OrderedDict()
        # (trace_id, span_id) -> its local trace, for every span of a trace still in play.
        self._owner: dict[tuple[int, int], _LocalTrace] = {}
        self._peak = 0

    @property
    def buffered_traces(self) -> int:
        """How many local traces are held undecided right now."""
        return len(self._undecided)

    @property
    def peak_buffered_traces(self) -> int:
        """The most local traces ever held undecided at once."""
        return self._peak

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.next_processor.on_start(span, parent_context=parent_context)
        context = span.get_span_context()
        key = (context.trace_id, context.span_id)
        parent = span.parent
        evicted: list[ReadableSpan] = []
        with self._lock:
            local = None
            if parent is not None and not parent.is_remote:
                local = self._owner.get((context.trace_id, parent.span_id))
            if local is None:
                # A local root. A head-sampled trace is kept whatever happens, so it is
                # decided now and its spans go straight through as they end: in development
                # (ratio 1) this processor holds nothing.
                local = _LocalTrace(key, True if context.trace_flags.sampled else None)
                if local.keep is None:
                    if len(self._undecided) >= self.max_buffered_traces:
                        evicted = self._decide_oldest_early()
                    self._undecided[key] = local
                    self._peak = max(self._peak, len(self._undecided))
            local.span_keys.append(key)
            local.open_spans += 1
            self._owner[key] = local
        self._hand_on(evicted)

    def _on_ending(self, span: Span) -> None:
        self.next_processor._on_ending(span)  # pylint: disable=protected-access

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        key = (context.trace_id, context.span_id)
        kept: list[ReadableSpan] = []
        with self._lock:
            local = self._owner.get(key)
            if local is None:
                # Started before this processor was in place: a local trace of its own.
                if self._verdict(span.context.trace_flags.sampled, _is_error(span), span):
                    kept = [span]
            else:
                local.open_spans -= 1
                if local.keep is None:
                    local.ended.append(span)
                    local.has_error = local.has_error or _is_error(span)
                    if key == local.root:
                        # The local root ended: everything that decides is known now.
                        local.keep = self._verdict(False, local.has_error, span)
                        del self._undecided[key]
                        kept = local.ended if local.keep else []
                        local.ended = []
                elif local.keep:
                    kept = [span]           # decided already: a late span follows
                if local.keep is not None and local.open_spans == 0:
                    self._forget(local)
        self._hand_on(kept)

    def _verdict(self, head_sampled: bool, has_error: bool, root: ReadableSpan) -> bool:
        if head_sampled or (has_error and self._keep_errors):
            return True
        start, end = root.start_time, root.end_time
        return start is not None and end is not None and end - start >= self._slow_ns

    def _decide_oldest_early(self) -> list[ReadableSpan]:
        # Memory is bounded: decide the oldest undecided trace now. Its root has not ended, so
        # how long it lasts is unknown; an error it already holds is reason enough to keep it.
        _, local = self._undecided.popitem(last=False)
        local.keep = local.has_error and self._keep_errors
        kept = local.ended if local.keep else []
        local.ended = []
        return kept

    def _forget(self, local: _LocalTrace) -> None:
        for key in local.span_keys:
            self._owner.pop(key, None)

    def _hand_on(self, spans: list[ReadableSpan]) -> None:
        # Called outside the lock: the next processor may export synchronously.
        for span in spans:
            self.next_processor.on_end(_as_sampled(span))

    def shutdown(self) -> None:
        # Nothing more will end: decide what is still held, so a failing trace is not lost.
        with self._lock:
            kept: list[ReadableSpan] = []
            while self._undecided:
                kept.extend(self._decide_oldest_early())
            self._owner.clear()
        self._hand_on(kept)
        self.next_processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        # Spans of kept traces have been handed on already; undecided ones stay held.
        return self.next_processor.force_flush(timeout_millis)


def _is_error(span: ReadableSpan) -> bool:
    return span.status.status_code is StatusCode.ERROR


def _as_sampled(span: ReadableSpan) -> ReadableSpan:
    """The span itself if it is marked sampled, else a copy that is.

    The SDK's Simple/BatchSpanProcessor export only spans whose sampled flag is set; a span the
    head sampler recorded but did not sample (RECORD_ONLY) and that the tail decided to keep
    must therefore be handed on as a sampled copy. The copy keeps everything else (ids,
    attributes, events, status, other trace flags)."""
    context = span.context
    if context.trace_flags.sampled:
        return span
    clone = copy.copy(span)
    clone._context = SpanContext(  # pylint: disable=protected-access
        context.trace_id, context.span_id, is_remote=context.is_remote,
        trace_flags=TraceFlags(context.trace_flags | TraceFlags.SAMPLED),
        trace_state=context.trace_state)
    return clone
