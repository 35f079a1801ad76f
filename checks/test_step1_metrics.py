"""Success criterion 4, performance visible, Step 1's metrics: every service measures its
requests with its own meter provider, and a latency point leads to the trace that made it
(rules 1.28 to 1.35).

Metrics are read through an `AccumulatingMetricReader` passed to `initialize(metric_reader=...)`:
a reader that keeps every collection, since `force_flush` collects and an exemplar belongs to
the collection that took it (rule 3.29). The checks never collect themselves: what they see is
what the learner's `force_flush` (or `shutdown`) handed the reader.

A contract problem, noted here: the provided services never call `instrument_client` (Step 4's
client makes its own CLIENT spans), so `http.client.request.duration` (rule 1.33) can only be
checked by calling `instrument_client` on a plain `httpx.AsyncClient` with a mocked transport.
"""
from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from kit.harness.expect import check, expect, fail
from kit.harness.learner import attr
from kit.harness.mesh import AccumulatingMetricReader
from kit.harness.spans import find
from kit.topology import SERVICE_NAMES

CRITERION = "performance-visible"
RESOURCE_KEYS = ("service.name", "service.version", "deployment.environment", "service.namespace",
                 "telemetry.sdk.language")
UNSAMPLED_TRACE = "5bf92f3577b34da6a3ce929d0e0e4737"
PARENT = "00f067aa0ba902b7"


def metered(name: str, *, ratio: float = 1.0, **options):
    """A fresh DistributedTelemetry for `name` with its own span exporter and accumulating reader."""
    telemetry = attr("services.shared.telemetry", "DistributedTelemetry")()
    exporter, reader = InMemorySpanExporter(), AccumulatingMetricReader()
    config = attr("services.shared.sampling", "SamplingConfig")(ratio=ratio)
    try:
        telemetry.initialize(name, "1.0.0", "development", exporter=exporter, sampling=config, batch=False,
                             metric_reader=reader, **options)
    except Exception as exc:  # noqa: BLE001
        fail(did=f"called initialize({name!r}, ..., metric_reader=<a reader>)", expected="no exception",
             saw=f"{type(exc).__name__}: {exc}")
    return telemetry, exporter, reader


def flush(telemetry, did: str) -> None:
    try:
        telemetry.force_flush()
    except Exception as exc:  # noqa: BLE001
        fail(did=did + ", then force_flush()", expected="no exception", saw=f"{type(exc).__name__}: {exc}")


def ids(exemplar) -> tuple[str, str]:
    return f"{exemplar.trace_id or 0:032x}", f"{exemplar.span_id or 0:016x}"


def exemplars(reader, name: str) -> list:
    return [e for _, point in reader.points(name) for e in (getattr(point, "exemplars", None) or ())]


def resource_of(reader, name: str) -> dict:
    found = reader.metrics(name)
    return {k: found[0][0].attributes.get(k) for k in RESOURCE_KEYS} if found else {}


@check(step=1, criterion=CRITERION, todo="TODO 14", rules=("1.28", "1.29", "1.30"))
def test_each_instance_has_its_own_meter_provider_with_its_resource():
    """meter_provider is None and meter a no-op before initialize(); then each instance its own, with its resource"""
    early = attr("services.shared.telemetry", "DistributedTelemetry")()
    did = "built DistributedTelemetry() and, before initialize(), recorded with its meter"
    expect(early.meter_provider is None, did=did, expected="meter_provider None until initialize() (rule 1.28)",
           saw=f"meter_provider = {early.meter_provider!r}")
    try:
        early.meter.create_counter("early.counter").add(1)
        early.meter.create_histogram("early.histogram", unit="s").record(0.5)
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="a no-op meter that accepts measurements (rule 1.29)", saw=f"{type(exc).__name__}: {exc}")
    alpha, alpha_spans, alpha_reader = metered("alpha-metrics")
    beta, _, beta_reader = metered("beta-metrics")
    did = "initialised alpha-metrics and beta-metrics, each with its own reader, and counted 2 on alpha's meter, 5 on beta's"
    expect(alpha.meter_provider is not None and beta.meter_provider is not None
           and alpha.meter_provider is not beta.meter_provider, did=did,
           expected="each instance to keep its own meter_provider", saw=f"{alpha.meter_provider!r}, {beta.meter_provider!r}")
    alpha.meter.create_counter("checks.probe").add(2)
    beta.meter.create_counter("checks.probe").add(5)
    with alpha.create_span("resource-probe"):
        pass
    flush(alpha, did), flush(beta, did)
    sums = {name: [p.value for _, p in reader.points("checks.probe")]
            for name, reader in (("alpha", alpha_reader), ("beta", beta_reader))}
    expect(sums["alpha"] and sums["beta"] and set(sums["alpha"]) == {2} and set(sums["beta"]) == {5}, did=did,
           expected="alpha's reader to see only 2 and beta's only 5: two meter providers, never the global one",
           saw=f"checks.probe values collected: {sums}")
    spans = list(alpha_spans.get_finished_spans())
    want = {k: (spans[0].resource.attributes.get(k) if spans else None) for k in RESOURCE_KEYS}
    got = resource_of(alpha_reader, "checks.probe")
    expect(spans and got == want and want["service.name"] == "alpha-metrics", did=did,
           expected=f"the metrics' resource to be the spans' resource: {want}", saw=got)


@check(step=1, criterion=CRITERION, todo="TODO 14", rules=("1.31", "1.34"))
def test_exemplars_name_the_sampled_span_that_was_current():
    """A measurement under a sampled span carries its trace and span id; unsampled or no span, none"""
    sampled, _, sampled_reader = metered("exemplar-service", ratio=1.0)
    did = "recorded a histogram (checks.latency) inside a span of a service sampling everything"
    histogram = sampled.meter.create_histogram("checks.latency", unit="s")
    clean = otel_context.attach(otel_context.Context())  # whatever ran before, no span is current here
    try:
        with sampled.create_span("timed") as span:
            ctx = span.get_span_context()
            histogram.record(0.25)
        histogram.record(0.75)  # outside any span: no exemplar
    finally:
        otel_context.detach(clean)
    expect(ctx.is_valid and ctx.trace_flags.sampled, did=did, expected="create_span to give a real, sampled span",
           saw=f"span context {ctx}")
    flush(sampled, did)
    want = (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    found = [ids(e) for e in exemplars(sampled_reader, "checks.latency")]
    expect(found == [want], did=did + ", then one outside any span",
           expected=f"exactly one exemplar, naming trace {want[0]} and span {want[1]}",
           saw=f"exemplars {found}" if sampled_reader.points("checks.latency") else "no checks.latency point collected")
    did = ("recorded the histogram while a span that is not sampled was current (a remote parent whose "
           "traceparent flags are 00)")
    unsampled = NonRecordingSpan(SpanContext(int(UNSAMPLED_TRACE, 16), int(PARENT, 16), is_remote=True,
                                             trace_flags=TraceFlags(0)))
    token = otel_context.attach(otel_trace.set_span_in_context(unsampled))
    try:
        histogram.record(0.5)
    finally:
        otel_context.detach(token)
    flush(sampled, did)
    found = [ids(e) for e in exemplars(sampled_reader, "checks.latency")]
    expect(not any(t == UNSAMPLED_TRACE for t, _ in found), did=did,
           expected="no exemplar naming that trace: exemplars only for sampled spans (TraceBasedExemplarFilter)",
           saw=f"exemplars {found}")


@check(step=1, criterion=CRITERION, todo="TODO 15", rules=("1.32",))
def test_the_metric_reader_argument_wins(monkeypatch):
    """The metric_reader argument wins over OTLP and Azure Monitor; with none of them meters still work"""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING",
                       "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/")
    telemetry, _, reader = metered("reader-choice")
    did = ("set OTEL_EXPORTER_OTLP_ENDPOINT and APPLICATIONINSIGHTS_CONNECTION_STRING, called "
           "initialize(..., metric_reader=<ours>) and counted 3")
    telemetry.meter.create_counter("checks.chosen").add(3)
    flush(telemetry, did)
    expect([p.value for _, p in reader.points("checks.chosen")][-1:] == [3], did=did,
           expected="our reader to collect checks.chosen = 3: the argument is the first match",
           saw=f"it collected {reader.names() or 'nothing'}")
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "APPLICATIONINSIGHTS_CONNECTION_STRING"):
        monkeypatch.delenv(name)
    quiet = attr("services.shared.telemetry", "DistributedTelemetry")()
    did = "called initialize() with no metric_reader, no connection string and no OTLP endpoint, then counted 1"
    try:
        quiet.initialize("no-reader", exporter=InMemorySpanExporter(), batch=False)
        quiet.meter.create_counter("checks.nowhere").add(1)
        quiet.force_flush()
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="no reader, and meters that still work (no exception)", saw=f"{type(exc).__name__}: {exc}")
    expect(quiet.meter_provider is not None, did=did, expected="a meter provider all the same", saw="meter_provider None")


def _duration_points(reader, name):
    return [(resource, point) for resource, point in reader.points(name)]


@check(step=1, criterion=CRITERION, todo="TODO 16", rules=("0.4", "0.6", "1.33", "1.34"))
async def test_every_service_records_request_durations_that_lead_to_traces(make_mesh):
    """Every service records http.server.request.duration, whose exemplar names the request's span"""
    mesh = await make_mesh(metric_readers=True)
    did = "sent an order through the gateway"
    response = await mesh.order()
    spans = mesh.spans()
    expect(response.status_code == 200, did=did, expected="the order to go through (200)", saw=response.status_code,
           spans=spans)
    for service in SERVICE_NAMES:
        reader = mesh.metrics(service)
        found = reader.metrics("http.server.request.duration")
        expect(found, did=did, expected=f"{service} to record http.server.request.duration",
               saw=f"{service}'s metrics: {reader.names() or 'none'}")
        expect(all(metric.unit == "s" for _, metric in found), did=did,
               expected="http.server.request.duration in seconds (unit 's')",
               saw=f"unit {[metric.unit for _, metric in found][:1]}")
        points = _duration_points(reader, "http.server.request.duration")
        keys = set().union(*[set(p.attributes or {}) for _, p in points]) if points else set()
        expect({"http.request.method", "http.response.status_code"} <= keys
               and not {"http.method", "http.status_code"} & keys, did=did,
               expected=f"{service}'s points with the stable names http.request.method and http.response.status_code",
               saw=f"attribute names {sorted(keys)}")
        expect({str(resource.attributes.get("service.name")) for resource, _ in points} == {service}, did=did,
               expected=f"{service}'s points with service.name={service} in their resource",
               saw=f"{sorted({str(r.attributes.get('service.name')) for r, _ in points})}")
        servers = {(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}")
                   for s in find(spans, service=service, kind=SpanKind.SERVER)}
        named = [ids(e) for e in exemplars(reader, "http.server.request.duration")]
        expect(servers and any(n in servers for n in named), did=did,
               expected=f"an exemplar on {service}'s http.server.request.duration naming one of its SERVER spans "
                        f"(trace, span) {sorted(servers)}", saw=f"exemplars (trace, span): {named}", spans=spans)


@check(step=1, criterion=CRITERION, todo="TODO 16", rules=("0.6", "1.33", "1.34"))
async def test_instrument_client_records_client_request_durations():
    """instrument_client records http.client.request.duration, in seconds, with an exemplar of its span"""
    telemetry, exporter, reader = metered("client-metrics")

    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    did = "called instrument_client(httpx.AsyncClient(...)) and sent GET http://catalog-service:9100/items (200)"
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            telemetry.instrument_client(client)
            await client.get("http://catalog-service:9100/items")
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="the call to go through", saw=f"{type(exc).__name__}: {exc}")
    flush(telemetry, did)
    spans = list(exporter.get_finished_spans())
    found = reader.metrics("http.client.request.duration")
    expect(found and all(metric.unit == "s" for _, metric in found), did=did,
           expected="http.client.request.duration recorded, in seconds",
           saw=f"metrics {reader.names() or 'none'}, units {[m.unit for _, m in found]}")
    keys = set().union(*[set(p.attributes or {}) for _, p in reader.points("http.client.request.duration")])
    expect({"http.request.method", "http.response.status_code", "server.address"} <= keys, did=did,
           expected="points with the stable names http.request.method, http.response.status_code, server.address",
           saw=f"attribute names {sorted(keys)}")
    clients = [(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in spans if s.kind == SpanKind.CLIENT]
    named = [ids(e) for e in exemplars(reader, "http.client.request.duration")]
    expect(clients and any(n in clients for n in named), did=did,
           expected=f"an exemplar naming the CLIENT span {clients}", saw=f"exemplars {named}", spans=spans)


@check(step=1, criterion=CRITERION, todo="TODO 17", rules=("1.35",))
def test_force_flush_and_shutdown_cover_the_meter_provider():
    """force_flush collects the metrics; shutdown shuts the meter provider down"""
    telemetry, _, reader = metered("flushing-service")
    did = "counted 4 on the meter, then called force_flush() (the check never collects itself)"
    telemetry.meter.create_counter("checks.flushed").add(4)
    flush(telemetry, did)
    values = [p.value for _, p in reader.points("checks.flushed")]
    expect(values and set(values) == {4}, did=did, expected="a collection holding checks.flushed = 4",
           saw=f"collections: {len(reader.collections)}, values {values}")
    did = "then called shutdown()"
    try:
        telemetry.shutdown()
    except Exception as exc:  # noqa: BLE001
        fail(did=did, expected="no exception", saw=f"{type(exc).__name__}: {exc}")
    expect(reader.shut_down, did=did, expected="the meter provider shut down, and with it our reader",
           saw="our reader was never shut down")
