"""Step 1: one tracer provider per service, with a resource, an exporter pipeline and
instrumentation bound to it; and one meter provider beside it, whose metrics point at traces.

YOUR TASK. As shipped, this module is a harmless no-op: the services run and orders go
through, but no span is recorded or exported. Work through the numbered TODOs below; each one
names the success criterion it serves.

What you are building:

* ``DistributedTelemetry.initialize`` builds this service's *own* ``TracerProvider`` (never
  the global one: five services may share one process, and each span must carry the resource
  of the service that made it), with

  - a **resource**: ``service.name``, ``service.version``, ``deployment.environment``,
    ``service.namespace="workshop"``, ``telemetry.sdk.language="python"``;
  - Step 6's **sampler**, ``WorkshopSampler(config)`` with
    ``config = sampling or SamplingConfig.for_environment(environment)``;
  - a span processor that copies every **baggage** entry onto each span as it starts;
  - an **exporter**, first match wins: the ``exporter`` argument; Azure Monitor when a
    connection string is given or ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (the
    package is an optional extra: import it lazily and fall back with a warning when it is
    missing); OTLP over HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; otherwise none.
    Whatever is chosen is wrapped in ``ResilientSpanExporter``, put behind a
    ``BatchSpanProcessor`` (``batch=True``) or ``SimpleSpanProcessor`` (``batch=False``), and
    that processor behind Step 6's ``TailSamplingProcessor(processor, config)``;
  - Step 2's ``WorkshopPropagator`` as the process-wide propagator
    (``opentelemetry.propagate.set_global_textmap``).
* ``instrument_app`` / ``instrument_client`` bind the FastAPI and httpx instrumentations to
  this instance's provider.
* **Metrics correlated with traces** (TODO 14-17): ``initialize`` also builds this service's
  *own* ``MeterProvider`` (never the global one) with the same resource and
  ``exemplar_filter=TraceBasedExemplarFilter()``, so that a measurement taken while a sampled
  span is current carries an *exemplar* naming that span's trace and span id: from a slow
  bucket of a latency chart you reach a trace. Its reader, first match wins: the
  ``metric_reader`` argument; Azure Monitor when a connection string is set; OTLP over HTTP
  when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (both in a ``PeriodicExportingMetricReader``);
  otherwise none. The instrumentations get this meter provider too, so every service records
  ``http.server.request.duration`` and ``http.client.request.duration``; ``meter`` hands out
  a meter from it (a no-op meter before ``initialize()``); ``force_flush`` and ``shutdown``
  cover it as well.
* ``ResilientSpanExporter``: retries with exponential backoff and a circuit breaker, never
  raising into the application.

Usage::

    telemetry = DistributedTelemetry()
    provider = telemetry.initialize("order-service", "1.0.0", "development")
    telemetry.instrument_app(app)
    with telemetry.create_span("process_order", attributes={"order.id": "o-1"}) as span:
        orders = telemetry.meter.create_counter("orders.processed", unit="{order}")
        orders.add(1, {"order.status": "success"})
    telemetry.force_flush()
    telemetry.shutdown()
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ContextManager

# The kit runs every service with the stable HTTP semantic conventions; make sure they are
# chosen before any instrumentation is imported, even when this module is used on its own.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.metrics import Meter  # noqa: E402
from opentelemetry.sdk.metrics import (  # noqa: E402,F401 - you will need these (TODO 14)
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (  # noqa: E402,F401 - (TODO 14, 15)
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace import Span as SDKSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import Span, SpanKind, Tracer  # noqa: E402
from opentelemetry.util.types import AttributeValue  # noqa: E402

from services.shared.sampling import (  # noqa: E402,F401 - you will need these (TODO 2, 4)
    SamplingConfig,
    TailSamplingProcessor,
    WorkshopSampler,
)

if TYPE_CHECKING:  # pragma: no cover - imported for type hints only
    import httpx
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

SERVICE_NAMESPACE = "workshop"


class DistributedTelemetry:
    """Tracing for one service: its own provider, resource, exporter and instrumentation; and
    its own meter provider, whose measurements carry exemplars pointing at sampled traces."""

    def __init__(self) -> None:
        self.tracer_provider: TracerProvider | None = None  # None until initialize()
        self.meter_provider: MeterProvider | None = None    # None until initialize()
        self.service_name: str | None = None

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
        ``InMemoryMetricReader``).
        """
        # TODO 1 (traces-span-services, rich-attributes; rules 1.1, 1.2, 1.6): build a Resource
        #   with service.name, service.version, deployment.environment,
        #   service.namespace="workshop" and telemetry.sdk.language="python", so every span says
        #   which service made it.
        # TODO 2 (sampling-works; rule 1.11): config = sampling or SamplingConfig.for_environment(
        #   environment); give the provider the head sampler WorkshopSampler(config).
        # TODO 3 (context-propagates; rule 2.27): add a BaggageSpanProcessor (below) first, so
        #   every span carries the request's baggage (user.id, order.id, ...) as attributes.
        # TODO 4 (traces-span-services; rules 1.7, 1.8, 1.9, 1.10): choose the exporter (argument >
        #   Azure Monitor, imported lazily, warn and fall back when missing > OTLP when
        #   OTEL_EXPORTER_OTLP_ENDPOINT is set > none), wrap it in ResilientSpanExporter, put it
        #   behind a BatchSpanProcessor (batch=True) or SimpleSpanProcessor (batch=False), and add
        #   that processor wrapped in TailSamplingProcessor(processor, config).
        # TODO 5 (context-propagates; rule 1.12): set_global_textmap(WorkshopPropagator()) from
        #   Step 2, so the FastAPI and httpx instrumentations extract and inject as Step 2 does.
        # TODO 6 (traces-span-services; rules 1.1, 1.3, 1.4, 1.5): keep a tracer from *this*
        #   provider (never the global one) for the `tracer` property.
        # TODO 14 (performance-visible; rules 1.28 to 1.31, see docs/learner-api.md): build this
        #   service's own MeterProvider (never metrics.set_meter_provider) with the same resource
        #   as the tracer provider, exemplar_filter=TraceBasedExemplarFilter() (an exemplar only
        #   while a sampled span is current, so it names a trace that is kept) and
        #   metric_readers=[the reader TODO 15 chose] (or [] when none); keep it as
        #   self.meter_provider, and a meter from it for the `meter` property.
        # TODO 15 (performance-visible; rule 1.32, see docs/learner-api.md): choose the metric
        #   reader, first match wins: the metric_reader argument > Azure Monitor when a connection
        #   string is set (AzureMonitorMetricExporter, imported lazily, warn and fall back when
        #   missing) > OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (OTLPMetricExporter from
        #   opentelemetry.exporter.otlp.proto.http.metric_exporter) > none; put the exporter in a
        #   PeriodicExportingMetricReader.
        self.tracer_provider = TracerProvider()
        self.service_name = service_name
        return self.tracer_provider

    def instrument_app(self, app: FastAPI) -> None:
        """Make a SERVER span for every request of ``app``, with this service's provider."""
        # TODO 7 (traces-span-services, rich-attributes, errors-traced; rules 0.7, 1.13, 1.14):
        #   FastAPIInstrumentor.instrument_app(app, tracer_provider=self.tracer_provider,
        #   exclude_spans=["receive", "send"]).
        # TODO 16 (performance-visible; rules 1.33, 1.34, see docs/learner-api.md): also pass
        #   meter_provider=self.meter_provider, so every request records
        #   http.server.request.duration (with an exemplar naming its trace). None would mean the
        #   *global* meter provider: before initialize() pass metrics.NoOpMeterProvider().

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        """Make a CLIENT span for every request ``client`` sends, and inject trace headers."""
        # TODO 8 (rich-attributes; rules 1.13, 1.14):
        #   HTTPXClientInstrumentor.instrument_client(client,
        #   tracer_provider=self.tracer_provider).
        # TODO 16 (performance-visible; rules 1.33, 1.34, see docs/learner-api.md): also pass
        #   meter_provider=self.meter_provider, so every call records http.client.request.duration.

    # -- using it ---------------------------------------------------------------------------
    @property
    def tracer(self) -> Tracer:
        """This service's tracer; a no-op tracer before ``initialize()``."""
        # TODO 6 (traces-span-services; rules 1.1, 1.3, 1.4, 1.5): return the tracer kept by
        #   initialize() once there is one.
        return trace.NoOpTracer()

    @property
    def meter(self) -> Meter:
        """This service's meter; a no-op meter before ``initialize()``."""
        # TODO 14 (performance-visible; rules 1.28 to 1.31, see docs/learner-api.md): return the
        #   meter kept by initialize() once there is one (keep this no-op meter before that).
        return metrics.NoOpMeter(__name__)

    def create_span(self, name: str, kind: SpanKind = SpanKind.INTERNAL,
                    attributes: Mapping[str, AttributeValue] | None = None
                    ) -> ContextManager[Span]:
        """Start a span as the current span; use it with ``with``.

        The span is the child of whatever span is current, ends when the block ends, and
        records an exception (and ``ERROR`` status) if one escapes the block. Before
        ``initialize()`` it yields a non-recording span, never ``None``.
        """
        # TODO 9 (traces-span-services; rule 1.15): start the span from self.tracer as the current
        #   span, with kind and attributes (it already does, once TODO 6 gives a real tracer).
        return self.tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span that sampling keeps; True when that succeeded."""
        # TODO 10 (traces-span-services; rule 1.10): flush this service's provider.
        # TODO 17 (performance-visible; rule 1.35, see docs/learner-api.md): flush the meter
        #   provider too (it collects every reader now); return False if either flush failed.
        return True

    def shutdown(self) -> None:
        """Flush and stop this service's pipeline (safe to call more than once)."""
        # TODO 10 (traces-span-services; rule 1.10): shut this service's provider down, once.
        # TODO 17 (performance-visible; rule 1.35, see docs/learner-api.md): shut the meter
        #   provider down too (once: a second MeterProvider.shutdown() only logs a warning).
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


telemetry = DistributedTelemetry()  # a default instance, as in the workshop text


class BaggageSpanProcessor(SpanProcessor):
    """Copies every baggage entry in the parent context onto each span as it starts.

    Baggage travels between services in the ``baggage`` header, but it is not part of any
    span. Copying it at span start makes ``user.id`` or ``order.id`` a searchable attribute of
    every span the request produces, in every service it reaches.
    """

    def on_start(self, span: SDKSpan, parent_context: Context | None = None) -> None:
        # TODO 3 (context-propagates; rule 2.27): for each entry of
        #   baggage.get_all(parent_context), span.set_attribute(key, value).
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


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

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # TODO 11 (traces-span-services; rules 1.16, 1.17, 1.18): retry a failed attempt (FAILURE
        #   or an exception) up to max_retries times, sleeping backoff_base_s * 2**(n-1) before the
        #   n-th retry.
        # TODO 12 (traces-span-services; rules 1.19 to 1.25): count consecutive failed exports; at
        #   failure_threshold open the circuit (return FAILURE at once without calling the
        #   exporter); after reset_timeout_s (by self._clock) let one single-attempt trial through:
        #   success closes the circuit, failure opens it again.
        # TODO 13 (traces-span-services; rule 1.27): never raise into the application: catch
        #   everything.
        return self.exporter.export(spans)

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)
