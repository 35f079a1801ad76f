"""Success criterion 5, sampling works: not every request is kept. Head decisions follow the
trace id (the same answer in every service, as `TraceIdRatioBased` gives), honour a remote
parent, slow health probes down to their own ratio, respect a traces-per-second cap and the
`X-Trace-Sampling` override; what is not head-sampled is still recorded, and at ratio 0 a fast
successful order costs nothing."""
from __future__ import annotations

import logging
import random
import warnings

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from structlog.testing import capture_logs

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from kit.topology import SERVICES, SERVICE_NAMES
from kit.harness.spans import describe, server_spans, services, trace_id
from checks.helpers import FakeClock

ALL_SERVICES = set(SERVICE_NAMES)
#: The SERVER span each service makes for one order.
ORDER_PATHS = {"api-gateway": "/api/orders", "auth-service": "/auth/verify", "order-service": "/orders",
               "inventory-service": "/inventory/check", "payment-service": "/payments/process"}

#: 2,000 fixed trace ids (a seeded generator: the same ids on every run, random-looking bits).
_RNG = random.Random(20240601)
TRACE_IDS = [_RNG.getrandbits(128) | 1 for _ in range(2000)]
TOLERANCE = 0.05

#: One trace id and span id for the checks that need a single trace.
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT = 0x00F067AA0BA902B7
ORDER_ATTRIBUTES = {"url.path": "/api/orders", "http.request.method": "POST"}


def _config(**options):
    return attr("services.shared.sampling", "SamplingConfig")(**options)


#: For the mesh: no order comes near a minute, so slowness never decides what the tail keeps.
SLOW_MS = 60_000.0


def _sampler(config, clock=None):
    sampler_cls = attr("services.shared.sampling", "WorkshopSampler")
    return sampler_cls(config, clock=clock) if clock is not None else sampler_cls(config)


def _root(sampler, trace_id_: int = TRACE, *, kind: SpanKind | None = SpanKind.SERVER,
          attributes=None, parent=None):
    """The sampler's answer for the first span of a trace (no parent unless `parent` is given)."""
    return sampler.should_sample(parent, trace_id_, "POST /api/orders", kind,
                                 dict(ORDER_ATTRIBUTES if attributes is None else attributes))


def _sampled(result) -> bool:
    return result.decision.is_sampled()


def _remote_parent(*, sampled: bool, state: str = "vendor=workshop"):
    """A context whose current span is a remote parent, as extracted from a traceparent."""
    parent = SpanContext(TRACE, PARENT, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
                         trace_state=TraceState.from_header([state]))
    return otel_trace.set_span_in_context(NonRecordingSpan(parent))


def _hex(ids) -> str:
    return ", ".join(f"{t:032x}" for t in ids)


def _exported_from(spans) -> str:
    if not spans:
        return "nothing was exported"
    return f"{len(spans)} spans exported, from {', '.join(sorted(services(spans)))}"


def _pattern(decisions) -> str:
    return " ".join("S" if d else "-" for d in decisions) + "  (S sampled, - not)"


def _whole_order_missing(spans) -> str:
    """What is missing of a whole order's trace, or "" when every service's SERVER span is there."""
    missing = sorted(name for name, path in ORDER_PATHS.items() if not server_spans(spans, name, path))
    if not missing:
        return ""
    if not spans:
        return ("nothing was exported at all: the services must trace and export first (Step 1's initialize() "
                "with the given exporter, behind your TailSamplingProcessor)")
    return f"no SERVER span for the order from {', '.join(missing)}; {_exported_from(spans)}"


@check(step=6, criterion="sampling-works", todo="TODO 2", rules=("6.1", "6.6"))
def test_ratio_sampling_is_consistent_for_a_trace_id():
    """Root traces are sampled at the ratio, and the trace id alone decides"""
    for ratio in (0.0, 0.1, 0.5):
        first, second = _sampler(_config(ratio=ratio)), _sampler(_config(ratio=ratio))
        one = [_sampled(_root(first, t)) for t in TRACE_IDS]
        two = [_sampled(_root(second, t)) for t in TRACE_IDS]
        did = (f"asked two WorkshopSampler(SamplingConfig(ratio={ratio})) instances about the same "
               f"{len(TRACE_IDS)} new trace ids")
        share = sum(one) / len(one)
        expect(abs(share - ratio) <= TOLERANCE, did=did,
               expected=f"a share of sampled traces within {TOLERANCE} of {ratio}",
               saw=f"{sum(one)} of {len(one)} sampled ({share:.3f})")
        differ = [t for t, a, b in zip(TRACE_IDS, one, two) if a != b]
        expect(not differ, did=did,
               expected="the same answer from both for every trace id (decide from the trace id, not at random), "
                        "so that every service agrees on a trace",
               saw=lambda: f"{len(differ)} trace ids answered differently, e.g. {_hex(differ[:3])}")



@check(step=6, criterion="sampling-works", todo="TODO 5", rules=("6.5", "6.6", "6.7"))
async def test_health_probes_use_the_health_ratio(make_mesh):
    """Health probes (/health, /healthz, /ready, /live) are sampled at health_ratio"""
    probes = [(SpanKind.SERVER, {"url.path": "/health"}), (SpanKind.SERVER, {"http.target": "/healthz"}),
              (SpanKind.SERVER, {"http.route": "/ready"}), (None, {"url.path": "/live"}),
              (SpanKind.SERVER, {"url.path": "/health/"}), (SpanKind.SERVER, {"url.path": "/api/v1/healthz"}),
              (None, {"http.route": "/internal/ready/"})]
    ordinary = [(SpanKind.SERVER, {"url.path": "/api/orders"}), (SpanKind.SERVER, {"url.path": "/health-report"}),
                (SpanKind.CLIENT, {"url.path": "/health"})]

    def label(kind, attributes):
        return f"{'kind None' if kind is None else kind.name} {attributes}"

    for ratio, health_ratio in ((1.0, 0.0), (0.0, 1.0)):
        sampler = _sampler(_config(ratio=ratio, health_ratio=health_ratio))
        did = f"asked WorkshopSampler(SamplingConfig(ratio={ratio}, health_ratio={health_ratio})) about new traces"
        wrong = [label(k, a) for k, a in probes if _sampled(_root(sampler, kind=k, attributes=a)) != bool(health_ratio)]
        expect(not wrong, did=did,
               expected=f"health probes (a SERVER span, or kind None, whose url.path, http.target or http.route "
                        f"is /health, /healthz, /ready or /live, or ends with one, trailing slash ignored) "
                        f"{'sampled' if health_ratio else 'not sampled'}, as health_ratio={health_ratio} says",
               saw=f"wrong for: {'; '.join(wrong)}")
        wrong = [label(k, a) for k, a in ordinary if _sampled(_root(sampler, kind=k, attributes=a)) != bool(ratio)]
        expect(not wrong, did=did,
               expected=f"other traces (including a CLIENT span calling /health: not a probe arriving) "
                        f"{'sampled' if ratio else 'not sampled'}, as ratio={ratio} says",
               saw=f"wrong for: {'; '.join(wrong)}")

    mesh = await make_mesh(sampling=_config(ratio=1.0, health_ratio=0.0, slow_threshold_ms=SLOW_MS))
    did = ("called GET /health on each of the five services, then sent an order "
           "(SamplingConfig(ratio=1.0, health_ratio=0.0, slow_threshold_ms=60000))")
    for key in (s.key for s in SERVICES):
        await mesh.get(key, "/health")
    await mesh.order()
    spans = mesh.spans()
    probes_kept = [describe(s) for name in ALL_SERVICES for s in server_spans(spans, name, "/health")]
    expect(not probes_kept, did=did, expected="no span of the health probes exported",
           saw=f"exported: {', '.join(probes_kept)}", spans=spans)
    missing = _whole_order_missing(spans)
    expect(not missing, did=did, expected="the order exported from all five services (ratio=1.0)",
           saw=missing, spans=spans)


@check(step=6, criterion="sampling-works", todo="TODO 3", rules=("6.2", "6.3"))
def test_remote_parent_decision_is_honoured():
    """A remote parent's sampled flag is honoured, and its tracestate kept"""
    cases = [(0.0, True), (1.0, False)]
    for ratio, parent_sampled in cases:
        sampler = _sampler(_config(ratio=ratio))
        result = _root(sampler, parent=_remote_parent(sampled=parent_sampled))
        did = (f"asked WorkshopSampler(SamplingConfig(ratio={ratio})) about a SERVER span whose remote parent "
               f"(from traceparent, tracestate vendor=workshop) is {'sampled' if parent_sampled else 'not sampled'}")
        expect(_sampled(result) == parent_sampled, did=did,
               expected=f"{'sampled' if parent_sampled else 'not sampled'}, as the caller decided, whatever the ratio",
               saw=f"decision {result.decision.name}")
        state = result.trace_state.to_header() if result.trace_state is not None else None
        expect(state == "vendor=workshop", did=did,
               expected="the parent's tracestate (vendor=workshop) kept on the decision", saw=f"tracestate {state!r}")


@check(step=6, criterion="sampling-works", todo="TODO 4", rules=("6.4",))
def test_spans_not_head_sampled_are_still_recorded():
    """A span that is not head-sampled is RECORD_ONLY, never DROP"""
    sampler = _sampler(_config(ratio=0.0))
    unsampled_parent = _remote_parent(sampled=False)
    for what, result in (("a new trace", _root(sampler)),
                         ("a span whose remote parent is not sampled", _root(sampler, parent=unsampled_parent))):
        expect(result.decision == Decision.RECORD_ONLY,
               did=f"asked WorkshopSampler(SamplingConfig(ratio=0.0)) about {what}",
               expected="Decision.RECORD_ONLY: not sampled, but recorded, so the tail processor can still keep "
                        "the trace if it fails or is slow",
               saw=f"Decision.{result.decision.name}")


@check(step=6, criterion="sampling-works", todo="TODO 6", rules=("6.8", "6.9", "6.10", "6.11"))
def test_cap_holds_under_a_burst():
    """max_traces_per_second caps new sampled traces with a token bucket"""
    clock = FakeClock()
    sampler = _sampler(_config(ratio=1.0, max_traces_per_second=5), clock=clock)
    ids = iter(TRACE_IDS)
    base = "built WorkshopSampler(SamplingConfig(ratio=1.0, max_traces_per_second=5)) on a fake clock"

    def burst(n: int = 20) -> int:
        return sum(_sampled(_root(sampler, next(ids))) for _ in range(n))

    steps = [(0.0, 5, "20 new traces at once: the bucket starts full with 5 tokens"),
             (0.2, 1, "0.2 s later, 20 more: 0.2 s refills one token"),
             (100.0, 5, "100 s later, 20 more: the bucket holds at most 5")]
    done = []
    for wait, want, what in steps:
        clock.advance(wait)
        got = burst()
        done.append(what)
        expect(got == want, did=f"{base}, then sent {'; then '.join(done)}", expected=f"{want} of them sampled",
               saw=f"{got} sampled")
    remote = _root(sampler, parent=_remote_parent(sampled=True))
    expect(_sampled(remote), did=f"{base}, emptied the bucket, then asked about a span whose remote parent is sampled",
           expected="sampled: a caller's decision is honoured and takes no token",
           saw=f"decision {remote.decision.name}")

    clock = FakeClock()
    sampler = _sampler(_config(ratio=1.0, max_traces_per_second=0.1), clock=clock)
    did = ("built WorkshopSampler(SamplingConfig(ratio=1.0, max_traces_per_second=0.1)) on a fake clock, "
           "sent two new traces at once, then one more every second for 10 s")
    got = [_sampled(_root(sampler, next(ids))) for _ in range(2)]
    for _ in range(10):
        clock.advance(1.0)
        got.append(_sampled(_root(sampler, next(ids))))
    want = [True, False] + [False] * 9 + [True]
    expect(got == want, did=did,
           expected="the first sampled (the bucket holds max(0.1, 1) = 1 token), the next ten not, until ten "
                    "refills of 0.1 make a whole token (compare with a 1e-9 tolerance: they add up to "
                    "0.9999999999999999): " + _pattern(want),
           saw=_pattern(got))


@check(step=6, criterion="sampling-works", todo="TODO 1", rules=("6.27", "6.28"))
def test_for_environment_picks_the_ratio(caplog):
    """SamplingConfig.for_environment: development 1.0, staging 0.5, production 0.1"""
    config_cls = attr("services.shared.sampling", "SamplingConfig")
    cases = {"development": 1.0, "staging": 0.5, "production": 0.1, "Production": 0.1, "STAGING": 0.5,
             "qa-cluster": 1.0}
    got = {}
    for name in cases:
        config = config_cls.for_environment(name)
        got[name] = getattr(config, "ratio", None) if isinstance(config, config_cls) else type(config).__name__
    wrong = {name: got[name] for name, want in cases.items() if not (isinstance(got[name], float | int)
                                                                     and abs(got[name] - want) < 1e-12)}
    expect(not wrong, did=f"called SamplingConfig.for_environment with {', '.join(map(repr, cases))}",
           expected="SamplingConfigs with ratio " + ", ".join(f"{k}={v}" for k, v in cases.items())
                    + " (case-insensitive; an unknown name falls back to development)",
           saw="ratios " + ", ".join(f"{k}={v}" for k, v in got.items()))
    caplog.clear()
    with caplog.at_level(logging.WARNING), capture_logs() as structured, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        config_cls.for_environment("qa-cluster")
    logged = ([r for r in caplog.records if r.levelno >= logging.WARNING]
              + [w for w in warned if not issubclass(w.category, DeprecationWarning)]
              + [e for e in structured if e.get("log_level") in ("warning", "error", "critical")])
    expect(logged, did="called SamplingConfig.for_environment('qa-cluster') (an unknown environment)",
           expected="a warning logged that the name is unknown and development is used",
           saw="no warning (logging, structlog or warnings.warn)")


@check(step=6, criterion="sampling-works", todo="TODO 7", rules=("6.13", "6.16"))
async def test_override_always_traces_every_service(make_mesh):
    """X-Trace-Sampling: always traces the request in every service, even at ratio 0"""
    mesh = await make_mesh(sampling=_config(ratio=0.0, slow_threshold_ms=SLOW_MS))
    plain = await mesh.order()
    spans = mesh.spans()
    did = "sent a successful order at ratio=0.0 (slow_threshold_ms=60000) without X-Trace-Sampling"
    expect(plain.status_code == 200 and not spans, did=did,
           expected="the order to go through (200) and nothing exported: ratio 0 samples no new trace",
           saw=f"answer {plain.status_code}; {_exported_from(spans)}", spans=spans)
    response = await mesh.order(headers={"X-Trace-Sampling": "always"})
    spans = mesh.spans()
    did = "sent an order at ratio=0.0 with X-Trace-Sampling: always"
    expect(response.status_code == 200, did=did, expected="the order to go through (200)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    missing = _whole_order_missing(spans)
    expect(not missing, did=did,
           expected="the whole trace exported from all five services: the override samples the trace at the "
                    "gateway, and the sampled flag in traceparent carries the decision downstream",
           saw=missing, spans=spans)
    traces = {trace_id(s) for s in spans}
    expect(len(traces) == 1, did=did, expected="every exported span in that one trace",
           saw=f"{len(traces)} trace ids", spans=spans)


@check(step=6, criterion="sampling-works", todo="TODO 7", rules=("6.14", "6.16"))
async def test_override_never_silences_every_service(make_mesh):
    """X-Trace-Sampling: never keeps a fast successful order out of every service, even at ratio 1"""
    mesh = await make_mesh(sampling=_config(ratio=1.0, slow_threshold_ms=SLOW_MS))
    await mesh.order()
    spans = mesh.spans()
    missing = _whole_order_missing(spans)
    expect(not missing, did="sent a successful order at ratio=1.0 without X-Trace-Sampling",
           expected="the whole trace exported from all five services", saw=missing, spans=spans)
    mesh.exporter.clear()
    response = await mesh.order(headers={"X-Trace-Sampling": "never"})
    spans = mesh.spans()
    did = ("then sent a second successful order at ratio=1.0 (slow_threshold_ms=60000) with "
           "X-Trace-Sampling: never")
    expect(response.status_code == 200, did=did, expected="the order to go through (200)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    expect(not spans, did=did,
           expected="nothing exported from any service: the override un-samples the trace at the gateway, the "
                    "sampled flag in traceparent tells every service downstream, and a fast successful request "
                    "gives the tail no reason to keep it",
           saw=_exported_from(spans), spans=spans)


@check(step=6, criterion="sampling-works", todo="TODO 7", rules=("6.12", "6.13", "6.15"))
def test_override_wins_over_ratio_and_cap():
    """The override beats the ratio and the cap, and takes no token"""
    extract_context = attr("services.shared.trace_context", "extract_context")
    always = extract_context({"X-Trace-Sampling": "always"})
    never = extract_context({"X-Trace-Sampling": "never"})
    for ratio, context, want, header in ((0.0, always, True, "always"), (1.0, never, False, "never")):
        result = _root(_sampler(_config(ratio=ratio)), parent=context)
        expect(_sampled(result) == want,
               did=f"asked WorkshopSampler(SamplingConfig(ratio={ratio})) about a new trace whose context "
                   f"came from extract_context({{'X-Trace-Sampling': '{header}'}})",
               expected="sampled" if want else "not sampled (RECORD_ONLY)", saw=f"decision {result.decision.name}")
    clock = FakeClock()
    sampler = _sampler(_config(ratio=1.0, max_traces_per_second=1), clock=clock)
    got = [_sampled(_root(sampler, TRACE_IDS[0], parent=always)), _sampled(_root(sampler, TRACE_IDS[1])),
           _sampled(_root(sampler, TRACE_IDS[2])), _sampled(_root(sampler, TRACE_IDS[3], parent=always))]
    expect(got == [True, True, False, True],
           did="built WorkshopSampler(SamplingConfig(ratio=1.0, max_traces_per_second=1)) on a fake clock and "
               "asked, at one instant, about: an 'always' trace, a new trace, a new trace, an 'always' trace",
           expected="S S - S  (S sampled, - not): the overrides are sampled whatever the cap and take no token, "
                    "so the bucket's one token goes to the first new trace",
           saw=_pattern(got))


@check(step=6, criterion="sampling-works", todo="TODO 2", rules=("6.6", "6.26"))
async def test_ratio_zero_drops_fast_successful_orders(make_mesh):
    """At ratio 0 a fast successful order exports nothing; at ratio 1 it exports the whole trace"""
    quiet = await make_mesh(sampling=_config(ratio=0.0, slow_threshold_ms=SLOW_MS))
    response = await quiet.order()
    spans = quiet.spans()
    did = "sent a successful order with SamplingConfig(ratio=0.0, slow_threshold_ms=60000)"
    expect(response.status_code == 200, did=did, expected="the order to go through (200)",
           saw=f"{response.status_code} {response.text[:200]}", spans=spans)
    expect(not spans, did=did,
           expected="nothing exported from any service: no head sampling, no error, nothing slow",
           saw=_exported_from(spans), spans=spans)
    loud = await make_mesh(sampling=_config(ratio=1.0, slow_threshold_ms=SLOW_MS))
    await loud.order()
    spans = loud.spans()
    missing = _whole_order_missing(spans)
    expect(not missing, did="sent the same order with SamplingConfig(ratio=1.0)",
           expected="the whole trace exported from all five services", saw=missing, spans=spans)
