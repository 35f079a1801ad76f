"""Success criterion 1, traces span services: one request is one trace across all five
services, every call between services is a CLIENT span with the callee's SERVER span as its
child, and the HTTP client's retries and circuit breaker show in the trace."""
from __future__ import annotations

import contextlib

import httpx
import respx
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from kit.topology import SERVICE_NAMES
from kit.harness.spans import describe, find, server_spans, service_of, services, trace_id
from checks.helpers import FakeClock, RecordingSleep, make_telemetry, traced_client

ALL_SERVICES = set(SERVICE_NAMES)
ORDER = "sent one order through the gateway (POST /api/orders)"


# Tagged with Step 2: one trace across five services takes Step 2's propagation as well as Step 1.
@check(step=2, criterion="traces-span-services", todo="TODO 1", rules=("0.4", "1.2", "1.7", "1.12", "1.13", "2.2", "2.13"))
async def test_one_order_is_one_trace_across_five_services(mesh):
    """One order is one trace that reaches all five services"""
    response = await mesh.order()
    spans = mesh.spans()
    expect(response.status_code == 200, did=ORDER, expected="the order to go through (200)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    expect(spans, did=ORDER, expected="spans from all five services",
           saw="no spans at all: initialize() must add a span processor with the given exporter", spans=spans)
    traces = {trace_id(s) for s in spans}
    expect(len(traces) == 1, did=ORDER, expected="every span in one trace (one trace id)",
           saw=f"{len(traces)} different trace ids: the trace context did not cross every hop", spans=spans)
    missing = ALL_SERVICES - services(spans)
    expect(not missing, did=ORDER, expected=f"spans from {', '.join(sorted(ALL_SERVICES))}",
           saw=f"no spans from {', '.join(sorted(missing))}", spans=spans)


@check(step=4, criterion="traces-span-services", todo="TODO 2", rules=("4.3", "4.10"))
async def test_each_call_is_a_client_span_parent_of_the_callee_server_span(mesh):
    """Each attempt of a call between services is a CLIENT span whose child is the callee's SERVER span"""
    mesh.provider_fails(503)
    await mesh.order()
    spans = mesh.spans()
    did = ("sent one order through the gateway while the external payment API answers 503 (so payment-service "
           "answers 503, and order-service retries its POST, which carries an Idempotency-Key, 3 times)")
    hops = [("api-gateway", "auth-service", "/auth/verify", 1), ("api-gateway", "order-service", "/orders", 1),
            ("order-service", "inventory-service", "/inventory/check", 1),
            ("order-service", "inventory-service", "/inventory/reserve", 1),
            ("order-service", "payment-service", "/payments/process", 4),
            ("order-service", "inventory-service", "/inventory/release", None)]
    for caller, callee, path, attempts in hops:
        servers = server_spans(spans, callee, path)
        if attempts is None:  # the release is Step 3's business: checked where it made one
            attempts = len([c for c in mesh.transport.crossings if c.host == callee and c.path == path])
        expect(len(servers) == attempts, did=did,
               expected=f"{attempts} SERVER span(s) in {callee} for {path} (one per attempt)",
               saw=f"{len(servers)} among {len(spans)} spans", spans=spans)
        parents = []
        for server in servers:
            found = [s for s in spans if s.context.span_id == (server.parent.span_id if server.parent else None)]
            expect(found and found[0].kind == SpanKind.CLIENT and service_of(found[0]) == caller,
                   did=did, expected=f"{callee}'s SERVER span for {path} to be the child of a CLIENT span in {caller}",
                   saw=f"its parent is {describe(found[0]) if found else 'not among the exported spans'}",
                   spans=spans)
            parents.append(found[0].context.span_id)
        expect(len(set(parents)) == attempts, did=did,
               expected=f"each of the {attempts} SERVER spans for {path} under its own attempt's CLIENT span",
               saw=f"they hang under {len(set(parents))} CLIENT span(s)", spans=spans)


@check(step=1, criterion="traces-span-services", todo="TODO 6", rules=("1.2", "1.13"))
async def test_database_cache_and_external_calls_are_spans_in_their_service(mesh):
    """Database, cache and external API calls are spans in the service that made them"""
    await mesh.order()
    spans = mesh.spans()
    sqlite = [s for s in spans if (s.attributes or {}).get("db.system") in ("sqlite", "sqlite3")]
    expect(sqlite and all(service_of(s) == "inventory-service" for s in sqlite), did=ORDER,
           expected="SQLite query spans (db.system=sqlite) in inventory-service",
           saw=f"{len(sqlite)} SQLite spans, in {sorted({service_of(s) for s in sqlite}) or 'no service'}", spans=spans)
    redis = [s for s in spans if (s.attributes or {}).get("db.system") == "redis"]
    expect(redis and all(service_of(s) == "order-service" for s in redis), did=ORDER,
           expected="Redis cache spans (db.system=redis) in order-service",
           saw=f"{len(redis)} Redis spans, in {sorted({service_of(s) for s in redis}) or 'no service'}", spans=spans)
    external = [s for s in find(spans, service="payment-service", kind=SpanKind.CLIENT)
                if "api.payment-provider.example" in str((s.attributes or {}).get("url.full", ""))
                or (s.attributes or {}).get("server.address") == "api.payment-provider.example"]
    expect(external, did=ORDER, expected="a CLIENT span in payment-service for the external payment API",
           saw="none", spans=spans)


@check(step=2, criterion="traces-span-services", todo="TODO 1", rules=("2.2", "2.13"))
async def test_no_orphan_spans(mesh):
    """Every span but the root has its parent in the trace"""
    await mesh.order()
    spans = mesh.spans()
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None]
    orphans = [s for s in spans if s.parent is not None and s.parent.span_id not in ids]
    expect(spans and not orphans and len(roots) == 1, did=ORDER,
           expected="exactly one root span and every other span's parent among the exported spans",
           saw=(f"{len(roots)} root spans and {len(orphans)} orphans, e.g. "
                f"{describe((orphans or roots)[0]) if (orphans or roots) else 'no spans at all'}"), spans=spans)


@check(step=1, criterion="traces-span-services", todo="TODO 1", rules=("0.4", "1.1", "1.2", "1.3"))
async def test_every_span_carries_its_own_services_resource(mesh):
    """Every span carries the resource of the service that made it"""
    await mesh.order()
    spans = mesh.spans()
    expected_paths = {"api-gateway": "/api/orders", "auth-service": "/auth/verify", "order-service": "/orders",
                      "inventory-service": "/inventory/check", "payment-service": "/payments/process"}
    for service, path in expected_paths.items():
        expect(server_spans(spans, service, path), did=ORDER,
               expected=f"the SERVER span for {path} to carry service.name={service}",
               saw=f"SERVER spans carry {sorted({service_of(s) for s in spans if s.kind == SpanKind.SERVER})}",
               spans=spans)
    a, a_exporter = make_telemetry("alpha-service")
    b, b_exporter = make_telemetry("beta-service")
    with a.create_span("from-alpha"):
        pass
    with b.create_span("from-beta"):
        pass
    a.force_flush(), b.force_flush()
    names = {s.name: service_of(s) for s in [*a_exporter.get_finished_spans(), *b_exporter.get_finished_spans()]}
    expect(names == {"from-alpha": "alpha-service", "from-beta": "beta-service"},
           did="initialised two DistributedTelemetry instances (alpha-service, beta-service) in one process",
           expected="each instance's spans to carry its own service.name",
           saw=f"spans and their services: {names}")


@check(step=4, criterion="traces-span-services", todo="TODO 4", rules=("4.3", "4.5", "4.14", "4.17"))
async def test_retries_are_one_client_span_per_attempt():
    """Retries are one CLIENT span per attempt, with resend counts and backoff"""
    telemetry, exporter = make_telemetry("retry-service")
    router = respx.MockRouter(assert_all_mocked=True)
    router.get("http://flaky-service:9000/items").mock(side_effect=[
        httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"ok": True})])
    sleep = RecordingSleep()
    async with traced_client(telemetry, router, sleep=sleep, max_retries=3, backoff_base_s=0.1) as client:
        response = await client.get("http://flaky-service:9000/items")
    telemetry.force_flush()
    spans = find(exporter.get_finished_spans(), kind=SpanKind.CLIENT)
    did = "made one GET that got 503, 503, then 200 (max_retries=3, backoff_base_s=0.1)"
    expect(response.status_code == 200, did=did, expected="the third attempt's 200", saw=response.status_code, spans=spans)
    expect(len(spans) == 3, did=did, expected="3 CLIENT spans, one per attempt",
           saw=f"{len(spans)} CLIENT spans", spans=exporter.get_finished_spans())
    counts = [(s.attributes or {}).get("http.request.resend_count") for s in spans]
    expect(counts == [None, 1, 2], did=did, expected="http.request.resend_count absent, then 1, then 2",
           saw=counts, spans=spans)
    expect(len(sleep.calls) == 2 and 0.1 <= sleep.calls[0] <= 0.2 + 1e-9 and 0.2 <= sleep.calls[1] <= 0.4 + 1e-9,
           did=did, expected="two sleeps of 0.1 and 0.2 s (jitter may add up to as much again)",
           saw=f"sleeps {sleep.calls}")


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.24", "4.25", "4.29", "4.30"))
async def test_circuit_breaker_opens_and_recovers():
    """The circuit opens after repeated failures, refuses calls visibly, and recovers"""
    telemetry, exporter = make_telemetry("breaker-service")
    circuit_open_error = attr("services.shared.http_client", "CircuitOpenError")
    router = respx.MockRouter(assert_all_mocked=True)
    route = router.get("http://down-service:9000/x").mock(return_value=httpx.Response(500))
    clock = FakeClock()
    did = "called a host that answers 500, three times (failure_threshold=3, reset_timeout_s=30)"
    async with traced_client(telemetry, router, clock=clock, failure_threshold=3, reset_timeout_s=30.0,
                             max_retries=0) as client:
        for _ in range(3):
            with contextlib.suppress(httpx.HTTPError, RuntimeError):  # a last 500 may be returned or raised (4.16)
                await client.get("http://down-service:9000/x")
        sent = route.call_count
        refused = None
        try:
            await client.get("http://down-service:9000/x")
        except circuit_open_error as exc:
            refused = exc
        expect(refused is not None and route.call_count == sent, did=did + ", then a fourth time",
               expected="the fourth call to raise CircuitOpenError at once, sending nothing",
               saw=f"{'no exception' if refused is None else 'CircuitOpenError'}; requests sent: {route.call_count}")
        telemetry.force_flush()
        refusal = [s for s in exporter.get_finished_spans()
                   if (s.attributes or {}).get("error.type") == "CircuitOpenError"]
        expect(refusal and refusal[-1].status.status_code.name == "ERROR", did=did + ", then a fourth time",
               expected="the refusal to be visible as an ERROR span with error.type=CircuitOpenError",
               saw="no such span", spans=exporter.get_finished_spans())
        route.mock(return_value=httpx.Response(200))
        clock.advance(30.5)
        trial = await client.get("http://down-service:9000/x")
        after = await client.get("http://down-service:9000/x")
        expect(trial.status_code == 200 and after.status_code == 200, did=did + ", waited 30.5 s, then called twice more",
               expected="a trial call to go through and close the circuit",
               saw=f"answers {trial.status_code}, {after.status_code}")


@check(step=4, criterion="traces-span-services", todo="TODO 5", rules=("4.18",))
async def test_post_without_idempotency_key_is_never_retried():
    """A POST without an Idempotency-Key is never retried; with one it is"""
    telemetry, exporter = make_telemetry("post-service")
    router = respx.MockRouter(assert_all_mocked=True)
    route = router.post("http://busy-service:9000/charge").mock(return_value=httpx.Response(503))
    async with traced_client(telemetry, router, max_retries=3) as client:
        for headers in ({}, {"Idempotency-Key": "k-1"}):
            with contextlib.suppress(httpx.HTTPError):  # a last 503 may be returned or raised
                await client.post("http://busy-service:9000/charge", json={"amount": 1}, headers=headers)
            if not headers:
                plain = route.call_count
        keyed = route.call_count - plain
    expect(plain == 1 and keyed == 4, did="POSTed to a host answering 503, without and then with an Idempotency-Key",
           expected="1 attempt without the key, 4 (1 + 3 retries) with it",
           saw=f"{plain} attempts without, {keyed} with", spans=exporter.get_finished_spans())


def _real_spans(n: int = 2) -> list:
    """Finished spans of a plain SDK provider: the exporter is driven with real spans (rule 1.26)."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("checks.exporter")
    spans = [tracer.start_span(f"exported-{i}") for i in range(n)]
    for span in spans:
        span.end()
    return spans


@check(step=1, criterion="traces-span-services", todo="TODO 11",
       rules=("1.16", "1.17", "1.18", "1.20", "1.21", "1.22", "1.23", "1.26", "1.27"))
def test_failing_exporter_is_retried_then_cut_off():
    """A failing exporter is retried with backoff, then cut off by its circuit, never raising"""
    resilient_cls = attr("services.shared.telemetry", "ResilientSpanExporter")

    class Failing:
        calls = 0
        result = SpanExportResult.FAILURE

        def export(self, spans):
            Failing.calls += 1
            if self.result is None:
                raise ConnectionError("collector unreachable")
            return self.result

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    inner = Failing()
    inner.result = None  # raises
    clock, sleeps = FakeClock(), []
    exporter = resilient_cls(inner, max_retries=2, backoff_base_s=0.5, failure_threshold=2,
                             reset_timeout_s=30.0, sleep=sleeps.append, clock=clock)
    did = "exported through ResilientSpanExporter(max_retries=2, backoff_base_s=0.5, failure_threshold=2) to an exporter that raises"
    try:
        first = exporter.export(_real_spans())
    except Exception as exc:  # noqa: BLE001 - the learner's exporter must not raise
        expect(False, did=did, expected="FAILURE returned, never an exception", saw=f"it raised {type(exc).__name__}: {exc}")
    expect(first == SpanExportResult.FAILURE and Failing.calls == 3 and sleeps == [0.5, 1.0], did=did,
           expected="3 attempts (1 + 2 retries), sleeps [0.5, 1.0], then FAILURE",
           saw=f"{Failing.calls} attempts, sleeps {sleeps}, result {first}")
    exporter.export(_real_spans())
    before = Failing.calls
    third = exporter.export(_real_spans())
    expect(third == SpanExportResult.FAILURE and Failing.calls == before, did=did + ", three times",
           expected="after 2 failed exports the circuit opens: FAILURE at once, the exporter not called",
           saw=f"the exporter was called {Failing.calls - before} more times")
    inner.result = SpanExportResult.SUCCESS
    clock.advance(31.0)  # clearly past reset_timeout_s, never exactly onto it (rule 1.22)
    trial = exporter.export(_real_spans())
    expect(trial == SpanExportResult.SUCCESS and Failing.calls == before + 1, did=did + ", then waited 31 s",
           expected="one trial export that succeeds and closes the circuit",
           saw=f"result {trial}, {Failing.calls - before} calls")
