"""Step 1: one tracer provider per service, with a resource, an exporter pipeline and
instrumentation bound to it; and one meter provider beside it, whose metrics point at traces.

A *tracer provider* is the factory for a service's spans. Everything a span needs to say
*where* it came from lives in the provider's **resource** (``service.name``,
``service.version``, ``deployment.environment``, ...), and everything about *where spans go*
lives in the provider's **span processors** (which hand finished spans to an exporter).
Metrics come from a *meter provider* built the same way: same resource, its own readers.

Usage::

    from services.shared.telemetry import DistributedTelemetry

    telemetry = DistributedTelemetry()
    provider = telemetry.initialize("order-service", "1.0.0", "development")
    telemetry.instrument_app(app)             # SERVER spans for every request
    telemetry.instrument_client(http_client)  # CLIENT spans for every outgoing call
    with telemetry.create_span("process_order", attributes={"order.id": "o-1"}) as span:
        orders = telemetry.meter.create_counter("orders.processed", unit="{order}")
        orders.add(1, {"order.status": "success"})  # its exemplar points at this trace
    telemetry.force_flush()                   # export everything that has finished
    telemetry.shutdown()                      # on exit

Design choices, each one a tracing idea:

* **No global tracer provider.** Five services may live in one process (the kit's checks
  run them side by side), so each ``DistributedTelemetry`` keeps its *own* provider, and the
  tracer, the FastAPI and the httpx instrumentations are all bound to it explicitly. A span
  therefore always carries the resource of the service that made it.
* **Exporter choice, first match wins**: the ``exporter`` argument (tests pass an
  ``InMemorySpanExporter``); Azure Monitor when a connection string is given or
  ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (the package is an optional extra: when it
  is missing we log a warning and fall through); OTLP over HTTP when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; otherwise no exporter at all - spans are still
  created, so context still propagates, they are just not sent anywhere.
* **The exporter never hurts the application.** Whatever is chosen is wrapped in
  :class:`ResilientSpanExporter`: retries with exponential backoff, then a circuit breaker so
  that a dead backend costs nothing, and it never raises.
* **Batch in production, simple in tests.** ``batch=True`` exports from a background thread in
  batches (cheap on the request path); ``batch=False`` exports each span as it ends, which
  makes tests deterministic.
* **The processor chain**: first a processor that copies every baggage entry onto each span
  as it starts (so ``user.id`` is searchable on every span of every service the request
  reaches), then Step 6's ``TailSamplingProcessor`` in front of the export processor (it holds a
  service's local trace until its root ends and keeps it when it was head-sampled, failed or
  was slow). The head sampler is Step 6's ``WorkshopSampler``.
* **One propagation format for the whole process**: Step 2's ``WorkshopPropagator`` is set as
  the global text-map propagator, because that is what the FastAPI and httpx
  instrumentations call to extract and inject headers.
* **Metrics that lead to traces.** A latency chart says *that* some requests are slow; a trace
  says *why*. The bridge is an **exemplar**: a sample measurement stored with a histogram
  bucket (or a counter) together with the trace id and span id that were current when it was
  recorded. So ``initialize`` also builds this service's *own* ``MeterProvider`` (never the
  global one, for the same reason as the tracer provider), with the *same resource*, so a
  metric and a span of one service say the same ``service.name``, and with
  ``TraceBasedExemplarFilter``: an exemplar is taken only while a *sampled* span is current,
  because only a sampled trace is sure to be exported; an exemplar naming a trace that was
  never kept would lead nowhere. (A trace kept only by the tail, for its error or its
  slowness, was not head-sampled and so has no exemplar: the price of deciding at record time.)
* **Metric reader choice, first match wins**, mirroring the exporter choice: the
  ``metric_reader`` argument (tests pass an ``InMemoryMetricReader``); Azure Monitor when a
  connection string is set; OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (both
  behind a ``PeriodicExportingMetricReader``, which exports from a background thread);
  otherwise no reader: instruments still work, their measurements just go nowhere.
* **The instrumentations record the HTTP metrics.** ``instrument_app`` and
  ``instrument_client`` bind FastAPI and httpx to this meter provider too, so every request
  records ``http.server.request.duration`` / ``http.client.request.duration`` (seconds, the
  stable HTTP semantic conventions), each point recorded while the request's span is current,
  hence with an exemplar that names its trace.
"""
from __future__ import annotations

import functools

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ContextManager

# The kit runs every service with the stable HTTP semantic conventions; make sure they are
# chosen before any instrumentation is imported, even when this module is used on its own.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from opentelemetry import baggage, metrics, trace  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.metrics import Meter  # noqa: E402
from opentelemetry.propagate import set_global_textmap  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace import Span as SDKSpan  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Span, SpanKind, Tracer  # noqa: E402
from opentelemetry.util.types import AttributeValue  # noqa: E402

from services.shared.sampling import (  # noqa: E402
    SamplingConfig,
    TailSamplingProcessor,
    WorkshopSampler,
)
from services.shared.trace_context import WorkshopPropagator  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    import httpx
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

SERVICE_NAMESPACE = "workshop"
_INSTRUMENTATION_NAME = "services.shared.telemetry"


@functools.lru_cache(maxsize=1)
def _detected_resource() -> Resource:
    """What `Resource.create()` detects about this process (the SDK's telemetry.sdk.* attributes,
    OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME). Detection looks up entry points and runs a
    thread pool, a few milliseconds each time; it cannot change while the process runs, so it is
    done once and each service merges its own attributes over it, exactly as
    `Resource.create(attributes)` would."""
    return Resource.create()


class DistributedTelemetry:
    """Tracing for one service: its own provider, resource, exporter and instrumentation; and
    its own meter provider, whose measurements carry exemplars pointing at sampled traces."""

    def __init__(self) -> None:
        self.tracer_provider: TracerProvider | None = None  # None until initialize()
        self.meter_provider: MeterProvider | None = None    # None until initialize()
        self.service_name: str | None = None
        self._tracer: Tracer | None = None
        self._meter: Meter | None = None
        self._shut_down = False

    # -- set-up -----------------------------------------------------------------------------
    def initialize(self, service_name: str, service_version: str = "1.0.0",
                   environment: str = "development", connection_string: str | None = None, *,
                   exporter: SpanExporter | None = None,
                   sampling: SamplingConfig | None = None,
                   batch: bool = True,
                   metric_reader: MetricReader | None = None) -> TracerProvider:
        """Build this service's tracer provider (returned) and meter provider.

        ``exporter`` overrides the exporter choice (tests pass an ``InMemorySpanExporter``);
        ``sampling`` overrides ``SamplingConfig.for_environment(environment)``; ``batch``
        chooses a ``BatchSpanProcessor`` (True) or a ``SimpleSpanProcessor`` (False);
        ``metric_reader`` overrides the metric reader choice (tests pass an
        ``InMemoryMetricReader``; a reader belongs to one meter provider only).
        """
        # The resource says who made a span. Every span of this provider carries it, which is
        # how a trace viewer knows which service each hop belongs to.
        resource = _detected_resource().merge(Resource({
            "service.name": service_name,
            "service.version": service_version,
            "deployment.environment": environment,
            "service.namespace": SERVICE_NAMESPACE,
            "telemetry.sdk.language": "python",
        }))

        # Head sampling decides at span start; tail sampling (below) can still rescue a trace
        # that turned out to fail or be slow.
        config = sampling or SamplingConfig.for_environment(environment)
        provider = TracerProvider(resource=resource, sampler=WorkshopSampler(config))

        # 1. Baggage -> span attributes, so business context is on every span.
        provider.add_span_processor(BaggageSpanProcessor())

        # 2. Tail sampling in front of the exporter.
        chosen = _choose_exporter(exporter, connection_string)
        if chosen is not None:
            resilient = ResilientSpanExporter(chosen)
            export_processor: SpanProcessor = (
                BatchSpanProcessor(resilient) if batch else SimpleSpanProcessor(resilient))
            provider.add_span_processor(TailSamplingProcessor(export_processor, config))

        # The instrumentations extract and inject through the *global* propagator, so this is
        # the one process-wide setting: the same propagator for every service.
        set_global_textmap(WorkshopPropagator())

        # Metrics: this service's own meter provider, with the same resource as its spans, and
        # exemplars only while a *sampled* span is current, so that every exemplar names a
        # trace that is exported.
        reader = _choose_metric_reader(metric_reader, connection_string)
        meter_provider = MeterProvider(metric_readers=[reader] if reader is not None else [],
                                       resource=resource,
                                       exemplar_filter=TraceBasedExemplarFilter())

        self.tracer_provider = provider
        self.meter_provider = meter_provider
        self.service_name = service_name
        self._tracer = provider.get_tracer(_INSTRUMENTATION_NAME, service_version)
        self._meter = meter_provider.get_meter(_INSTRUMENTATION_NAME, service_version)
        self._shut_down = False
        logger.info("Distributed tracing initialized for %s (%s)", service_name, environment)
        return provider

    def instrument_app(self, app: FastAPI) -> None:
        """Make a SERVER span for every request of ``app``, with this service's provider, and
        record ``http.server.request.duration`` with this service's meter provider."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self._provider_for_instrumentation(),
            # The duration is recorded while the server span is current: its exemplar names
            # the request's trace.
            meter_provider=self._meter_provider_for_instrumentation(),
            # One span per request, not three: the ASGI "receive"/"send" sub-spans add noise.
            exclude_spans=["receive", "send"],
        )

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        """Make a CLIENT span for every request ``client`` sends, inject trace headers, and
        record ``http.client.request.duration`` with this service's meter provider."""
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(
            client, tracer_provider=self._provider_for_instrumentation(),
            meter_provider=self._meter_provider_for_instrumentation())

    def _provider_for_instrumentation(self) -> trace.TracerProvider:
        # Never fall back to the global provider: before initialize() instrument with a no-op.
        if self.tracer_provider is None:
            logger.warning("instrumenting before initialize(): no spans will be recorded")
            return trace.NoOpTracerProvider()
        return self.tracer_provider

    def _meter_provider_for_instrumentation(self) -> metrics.MeterProvider:
        # The instrumentations fall back to the *global* meter provider when given None.
        if self.meter_provider is None:
            return metrics.NoOpMeterProvider()
        return self.meter_provider

    # -- using it ---------------------------------------------------------------------------
    @property
    def tracer(self) -> Tracer:
        """This service's tracer; a no-op tracer before ``initialize()``."""
        return self._tracer if self._tracer is not None else trace.NoOpTracer()

    @property
    def meter(self) -> Meter:
        """This service's meter; a no-op meter before ``initialize()``.

        Record business metrics with it *while the span they describe is current*: with a
        sampled span current, the measurement's exemplar points at that span's trace."""
        return self._meter if self._meter is not None else metrics.NoOpMeter(
            _INSTRUMENTATION_NAME)

    def create_span(self, name: str, kind: SpanKind = SpanKind.INTERNAL,
                    attributes: Mapping[str, AttributeValue] | None = None
                    ) -> ContextManager[Span]:
        """Start a span as the current span; use it with ``with``.

        The span is the child of whatever span is current, ends when the block ends, and
        records an exception (and ``ERROR`` status) if one escapes the block. Before
        ``initialize()`` it yields a non-recording span, never ``None``.
        """
        return self.tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span that sampling keeps, and collect and export the metrics;
        True when both succeeded."""
        if self.tracer_provider is None:
            return True
        spans_ok = self.tracer_provider.force_flush(timeout_millis)
        return _flush_metrics(self.meter_provider, timeout_millis) and spans_ok

    def shutdown(self) -> None:
        """Flush and stop this service's pipelines, spans and metrics (safe to call more than
        once)."""
        if self.tracer_provider is None or self._shut_down:
            return
        self._shut_down = True
        try:
            self.tracer_provider.shutdown()
        finally:
            if self.meter_provider is not None:
                try:  # a last collection and export, then the readers stop
                    self.meter_provider.shutdown()
                except Exception:  # noqa: BLE001 - never raise into the application
                    logger.exception("meter provider shutdown failed")


telemetry = DistributedTelemetry()  # a default instance, as in the workshop text


class BaggageSpanProcessor(SpanProcessor):
    """Copies every baggage entry in the parent context onto each span as it starts.

    Baggage travels between services in the ``baggage`` header, but it is not part of any
    span. Copying it at span start makes ``user.id`` or ``order.id`` a searchable attribute of
    every span the request produces, in every service it reaches.
    """

    def on_start(self, span: SDKSpan, parent_context: Context | None = None) -> None:
        for key, value in baggage.get_all(parent_context).items():
            if not isinstance(value, (str, bool, int, float)):
                value = str(value)
            span.set_attribute(key, value)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _choose_exporter(exporter: SpanExporter | None,
                     connection_string: str | None) -> SpanExporter | None:
    """The first match wins: argument, Azure Monitor, OTLP over HTTP, none."""
    if exporter is not None:
        return exporter

    connection_string = connection_string or os.environ.get(
        "APPLICATIONINSIGHTS_CONNECTION_STRING")
    if connection_string:
        try:  # an optional extra: `pip install .[azure]`
            from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
        except ImportError:
            logger.warning("Azure Monitor connection string set, but "
                           "azure-monitor-opentelemetry-exporter is not installed; "
                           "falling back to the next exporter")
        else:
            return AzureMonitorTraceExporter(connection_string=connection_string)

    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # reads the endpoint (and headers) from the environment

    return None


def _choose_metric_reader(metric_reader: MetricReader | None,
                          connection_string: str | None) -> MetricReader | None:
    """The first match wins, as for spans: argument, Azure Monitor, OTLP over HTTP, none.

    The exporting readers are periodic: a background thread collects and exports every
    ``OTEL_METRIC_EXPORT_INTERVAL`` ms (60 s by default), off the request path."""
    if metric_reader is not None:
        return metric_reader

    connection_string = connection_string or os.environ.get(
        "APPLICATIONINSIGHTS_CONNECTION_STRING")
    if connection_string:
        try:  # an optional extra: `pip install .[azure]`
            from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
        except ImportError:
            logger.warning("Azure Monitor connection string set, but "
                           "azure-monitor-opentelemetry-exporter is not installed; "
                           "falling back to the next metric reader")
        else:
            return PeriodicExportingMetricReader(
                AzureMonitorMetricExporter(connection_string=connection_string))

    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        # Reads the endpoint (and headers) from the environment, adding /v1/metrics.
        return PeriodicExportingMetricReader(OTLPMetricExporter())

    return None


def _flush_metrics(meter_provider: MeterProvider | None, timeout_millis: int) -> bool:
    """Collect every reader now (a periodic reader also exports); never raises."""
    if meter_provider is None:
        return True
    try:
        return bool(meter_provider.force_flush(timeout_millis))
    except Exception:  # noqa: BLE001 - a timeout or a failing exporter must not reach the app
        logger.warning("metric flush failed", exc_info=True)
        return False


class ResilientSpanExporter(SpanExporter):
    """Wraps an exporter with retries, exponential backoff and a circuit breaker.

    * A failed export (``FAILURE`` or an exception) is retried up to ``max_retries`` times;
      the n-th retry first sleeps ``backoff_base_s * 2**(n-1)``.
    * After ``failure_threshold`` consecutive failed exports the circuit *opens*: exports
      return ``FAILURE`` at once, without touching the backend.
    * After ``reset_timeout_s`` one trial export (a single attempt) goes through
      (*half-open*): success closes the circuit, failure opens it for another period.
    * It never raises: telemetry must never break the application it observes.

    ``sleep`` and ``clock`` are injected so that tests control time.
    """

    def __init__(self, exporter: SpanExporter, *, max_retries: int = 3,
                 backoff_base_s: float = 0.5, failure_threshold: int = 5,
                 reset_timeout_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.exporter = exporter
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._opened_at: float | None = None  # None: the circuit is closed
        self._trial_running = False

    @property
    def circuit_open(self) -> bool:
        """True while exports are refused (open or waiting on a trial)."""
        return self._opened_at is not None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            with self._lock:
                trial = False
                if self._opened_at is not None:
                    if (self._trial_running
                            or self._clock() - self._opened_at < self.reset_timeout_s):
                        return SpanExportResult.FAILURE  # open: refuse at once
                    trial = self._trial_running = True  # half-open: one trial goes through
            if trial:
                ok = self._attempt(spans)
                with self._lock:
                    self._trial_running = False
                    if ok:
                        self._close()
                    else:
                        self._opened_at = self._clock()
                return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

            ok = self._attempt(spans)
            retry = 0
            while not ok and retry < self.max_retries:
                retry += 1
                self._sleep(self.backoff_base_s * 2 ** (retry - 1))
                ok = self._attempt(spans)
            with self._lock:
                if ok:
                    self._close()
                else:
                    self._consecutive_failures += 1
                    if self._consecutive_failures >= self.failure_threshold:
                        self._opened_at = self._clock()
                        logger.warning("span export failing: circuit opened for %.1fs",
                                       self.reset_timeout_s)
            return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE
        except Exception:  # noqa: BLE001 - never raise into the application
            logger.exception("span export failed")
            return SpanExportResult.FAILURE

    def _attempt(self, spans: Sequence[ReadableSpan]) -> bool:
        try:
            return self.exporter.export(spans) == SpanExportResult.SUCCESS
        except Exception as exc:  # noqa: BLE001 - an exception is just a failed attempt
            logger.debug("span export attempt raised %r", exc)
            return False

    def _close(self) -> None:
        self._consecutive_failures = 0
        self._opened_at = None

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:  # noqa: BLE001
            logger.exception("span exporter shutdown failed")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self.exporter.force_flush(timeout_millis))
        except Exception:  # noqa: BLE001
            return False
