"""Success criterion 6, errors traced (with sampling): even when head sampling keeps nothing
(ratio 0), the tail keeps what matters. A failed request is exported where it failed, with its
exception, and along every ancestor up to the gateway, while a fast successful request costs
nothing; a slow local trace is kept; and the tail's buffer stays within max_buffered_traces.
(Error statuses and exception events themselves are checked in test_errors_traced.py.)

The tail-processor checks drive `TailSamplingProcessor` directly, with span times given
explicitly, so that timing never decides: a kit sampler marks every span not sampled
(RECORD_ONLY), and a `SimpleSpanProcessor` with an `InMemorySpanExporter` sits behind it."""
from __future__ import annotations

import httpx
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from checks.helpers import CountingIds
from kit.harness.spans import ancestors, children_of, describe, exception_events, find, is_error, server_spans, services

PROVIDER = "api.payment-provider.example"
MS = 1_000_000                      # nanoseconds in a millisecond
T0 = 1_700_000_000_000_000_000      # a fixed start time, in nanoseconds since the epoch


def _config(**options):
    return attr("services.shared.sampling", "SamplingConfig")(**options)


#: For the mesh: no order comes near a minute, so slowness never decides what the tail keeps.
SLOW_MS = 60_000.0


def _exported_from(spans) -> str:
    if not spans:
        return ("nothing was exported at all (the services must trace and export first: Step 1's "
                "initialize() puts your TailSamplingProcessor in front of the exporter)")
    return f"{len(spans)} spans exported, from {', '.join(sorted(services(spans)))}"


async def _fast_success_exports_nothing(mesh) -> None:
    """A fast successful order in this ratio-0 mesh must export nothing: a tail processor that
    keeps everything would pass the rest of a check, not this."""
    response = await mesh.order()
    spans = mesh.spans()
    did = "sent a successful order with SamplingConfig(ratio=0.0, slow_threshold_ms=60000)"
    expect(response.status_code == 200, did=did, expected="the order to go through (200)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    expect(not spans, did=did,
           expected="nothing exported: not head-sampled, no error, nothing slow (only failed or slow "
                    "requests are worth keeping at ratio 0)",
           saw=_exported_from(spans), spans=spans)


def _kept_with_its_ancestors(spans, failed, did: str, where: str) -> None:
    """`failed` (the span where the request failed) has its exception event, and every ancestor
    up to the gateway's root SERVER span is exported with status ERROR."""
    expect(is_error(failed) and exception_events(failed), did=did,
           expected=f"{where} exported with status ERROR and its 'exception' event",
           saw=f"{describe(failed)} with {len(exception_events(failed))} exception events", spans=spans)
    chain = ancestors(spans, failed)
    top = chain[-1] if chain else failed
    gateway = server_spans(spans, "api-gateway", "/api/orders")
    expect(top.parent is None and top.context.span_id in {g.context.span_id for g in gateway}, did=did,
           expected=f"every ancestor of {where} exported, across services, up to the gateway's SERVER span for "
                    "POST /api/orders: each service keeps the local trace that holds an ERROR span",
           saw=(f"the chain stops at {describe(top)}, whose parent was not exported" if top.parent is not None
                else f"the chain ends at {describe(top)}, not at the gateway's SERVER span"), spans=spans)
    not_error = [describe(s) for s in chain if not is_error(s)]
    expect(not not_error, did=did, expected="every ancestor with status ERROR",
           saw=f"not ERROR: {', '.join(not_error)}", spans=spans)


@check(step=6, criterion="errors-traced", todo="TODO 9", rules=("6.24", "6.25", "6.26"))
async def test_external_api_outage_is_kept_at_ratio_zero(make_mesh):
    """At ratio 0 an outage of the external payment API is still exported, up to the gateway"""
    mesh = await make_mesh(sampling=_config(ratio=0.0, slow_threshold_ms=SLOW_MS))
    await _fast_success_exports_nothing(mesh)
    mesh.provider_times_out()
    did = ("then sent an order while the external payment API times out (httpx.ConnectTimeout), "
           "with SamplingConfig(ratio=0.0)")
    response = await mesh.order()
    spans = mesh.spans()
    expect(response.status_code >= 400, did=did, expected="the order to fail (an error answer from the gateway)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    clients = find(spans, service="payment-service", kind=SpanKind.CLIENT)
    calls = [s for s in clients if isinstance((s.attributes or {}).get("url.full"), str)
             and httpx.URL(s.attributes["url.full"]).host == PROVIDER]
    # The provider exports no spans: a payment-service CLIENT span with no exported child is a call
    # to it, whatever attributes it carries (a Step 6 check must not depend on Steps 1 and 4's).
    calls = calls or [s for s in clients if not children_of(spans, s)]
    expect(calls, did=did, expected=f"payment-service's CLIENT spans for the calls to {PROVIDER} exported: "
                                    "that is where the request failed",
           saw=_exported_from(spans), spans=spans)
    failed = next((s for s in calls if exception_events(s)), calls[0])
    _kept_with_its_ancestors(spans, failed, did, f"payment-service's CLIENT span for {PROVIDER}")


@check(step=6, criterion="errors-traced", todo="TODO 9", rules=("6.24", "6.25", "6.26"))
async def test_crash_in_a_service_is_kept_at_ratio_zero(make_mesh):
    """At ratio 0 a crash inside a service is still exported, up to the gateway"""
    mesh = await make_mesh(sampling=_config(ratio=0.0, slow_threshold_ms=SLOW_MS))
    await _fast_success_exports_nothing(mesh)
    did = ("then sent an order for product prod-unknown, which makes inventory-service raise, "
           "with SamplingConfig(ratio=0.0)")
    await mesh.order(items=[{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}])
    spans = mesh.spans()
    crashed = server_spans(spans, "inventory-service", "/inventory/check")
    expect(crashed, did=did, expected="inventory-service's SERVER span for /inventory/check exported: "
                                      "that is where the request failed",
           saw=_exported_from(spans), spans=spans)
    _kept_with_its_ancestors(spans, crashed[0], did, "inventory-service's SERVER span for /inventory/check")


# -- the tail processor on its own ---------------------------------------------------------

class _NotSampled(Sampler):
    """Records every span but samples none (RECORD_ONLY), keeping the parent's tracestate: what
    the head sampler does at ratio 0. Only the tail processor can then get a span exported."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        parent = otel_trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.RECORD_ONLY, attributes, parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return "NotSampled"


def _tail_tracer(config, **options):
    """A tracer whose spans go through the learner's TailSamplingProcessor to an in-memory exporter."""
    tail_cls = attr("services.shared.sampling", "TailSamplingProcessor")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=_NotSampled(), id_generator=CountingIds(),
                              resource=Resource.create({"service.name": "report-service"}))
    provider.add_span_processor(tail_cls(SimpleSpanProcessor(exporter), config, **options))
    return provider.get_tracer("checks"), exporter


def _start(tracer, name: str, at_ms: float, parent=None, *, kind=SpanKind.INTERNAL, attributes=None):
    context = otel_trace.set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(name, context=context, kind=kind, attributes=attributes, start_time=T0 + int(at_ms * MS))


def _end(span, at_ms: float) -> None:
    span.end(end_time=T0 + int(at_ms * MS))


def _ids(exporter) -> set[int]:
    return {s.context.span_id for s in exporter.get_finished_spans()}


def _names(exporter) -> list[str]:
    return sorted(s.name for s in exporter.get_finished_spans()) or ["nothing"]


@check(step=6, criterion="errors-traced", todo="TODO 9", rules=("6.19", "6.20"))
def test_slow_local_trace_is_kept_at_ratio_zero():
    """A local trace whose root lasts at least slow_threshold_ms is kept; a faster one is not"""
    tracer, exporter = _tail_tracer(_config(ratio=0.0, slow_threshold_ms=500.0))
    slow = _start(tracer, "GET /reports/slow", 0, kind=SpanKind.SERVER)
    slow_child = _start(tracer, "render_report", 10, slow, attributes={"report.id": "r-1"})
    _end(slow_child, 20)
    _end(slow, 500)
    fast = _start(tracer, "GET /reports/fast", 1000, kind=SpanKind.SERVER)
    fast_child = _start(tracer, "render_report", 1010, fast, attributes={"report.id": "r-2"})
    _end(fast_child, 1020)
    _end(fast, 1499)
    did = ("ran two local traces, not head-sampled, through TailSamplingProcessor(SimpleSpanProcessor(exporter), "
           "SamplingConfig(ratio=0.0, slow_threshold_ms=500.0)): a root lasting exactly 500 ms with a child, "
           "and a root lasting 499 ms with a child")
    exported = exporter.get_finished_spans()
    got = _ids(exporter)
    kept = {slow.get_span_context().span_id, slow_child.get_span_context().span_id}
    expect(kept <= got, did=did,
           expected="the slow trace exported whole, root and child: its root lasted at least slow_threshold_ms "
                    "(exactly 500 ms counts). Neither span is marked sampled, and the SDK's processors skip such "
                    "spans: hand the next processor copies marked sampled",
           saw=f"exported: {', '.join(_names(exporter))}", spans=exported)
    child = next(s for s in exported if s.context.span_id == slow_child.get_span_context().span_id)
    expect((child.attributes or {}).get("report.id") == "r-1", did=did,
           expected="the exported child to keep its attributes (report.id=r-1)",
           saw=f"attributes {dict(child.attributes or {})}", spans=exported)
    dropped = {fast.get_span_context().span_id, fast_child.get_span_context().span_id}
    expect(not dropped & got, did=did,
           expected="the faster trace (499 ms, no error) dropped: nothing of it exported",
           saw=f"exported: {', '.join(_names(exporter))}", spans=exported)


@check(step=6, criterion="errors-traced", todo="TODO 11", rules=("6.22", "6.23"))
def test_tail_holds_at_most_max_buffered_traces():
    """The tail holds at most max_buffered_traces undecided local traces, deciding the oldest early"""
    tracer, exporter = _tail_tracer(_config(ratio=0.0, slow_threshold_ms=500.0), max_buffered_traces=2)
    roots, children = {}, {}
    for i, name in enumerate("ABC"):
        roots[name] = _start(tracer, f"GET /reports/{name}", 3 * i, kind=SpanKind.SERVER)
        children[name] = _start(tracer, f"render_{name}", 3 * i + 1, roots[name])
        _end(children[name], 3 * i + 2)
    _end(roots["A"], 1000)                 # slow: 1000 ms
    _end(roots["C"], 6 + 1000)             # slow
    _end(roots["B"], 3 + 10)               # fast
    final = _ids(exporter)
    spans = exporter.get_finished_spans()

    def ids(name: str) -> set[int]:
        return {roots[name].get_span_context().span_id, children[name].get_span_context().span_id}

    did = ("opened three local traces A, B, C (not head-sampled) through TailSamplingProcessor(..., "
           "SamplingConfig(ratio=0.0, slow_threshold_ms=500.0), max_buffered_traces=2): each root's child "
           "ended, then root A ended after 1000 ms, root C after 1000 ms and root B after 10 ms")
    expect(ids("C") <= final, did=did,
           expected="C, the newest, held until its root ended and then kept whole (it was slow)",
           saw=f"exported: {', '.join(_names(exporter))}", spans=spans)
    expect(not ids("B") & final, did=did, expected="B dropped (fast, no error): nothing of it exported",
           saw=f"exported: {', '.join(_names(exporter))}", spans=spans)
    expect(not ids("A") & final, did=did,
           expected="A, the oldest, decided early when a third undecided trace arrived (at most 2 held), as if its "
                    "root had ended then: not head-sampled and no error so far, so dropped; its slow root, ending "
                    "later, follows that decision (rule 6.23)",
           saw=f"exported: {', '.join(_names(exporter))}", spans=spans)
