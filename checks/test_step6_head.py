"""Success criterion 5, sampling works: the head sampler of Step 6 asked directly, case by case.

Every check here calls `WorkshopSampler.should_sample` (or builds a `TracerProvider` around it)
with fixed or generated trace ids, a `FakeClock` for the token bucket, and contexts made the way
the services make them: a remote parent as `extract_context` gives it, or a `SpanContext` built
here. No mesh, no wall clock, no randomness: the same verdict on every run.
"""
from __future__ import annotations

import logging
import warnings

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from structlog.testing import capture_logs

from kit.harness.expect import check, expect, fail
from kit.harness.generated import generated
from kit.harness.learner import attr
from kit.harness.strategies import st
from checks.helpers import FakeClock

SAMPLING = "services.shared.sampling"
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT = 0x00F067AA0BA902B7
ORDER = {"url.path": "/api/orders", "http.request.method": "POST"}
LOW = (1 << 64) - 1
#: Trace ids from a fixed linear congruential sequence: random-looking bits, the same every run.
IDS = [((i * 0x9E3779B97F4A7C15F39CC0605CEDC835 + 0x2545F4914F6CDD1D) % (1 << 128)) | 1 for i in range(1, 2001)]


def _config(**options):
    return attr(SAMPLING, "SamplingConfig")(**options)


def _sampler(config, clock=None):
    sampler_cls = attr(SAMPLING, "WorkshopSampler")
    try:
        return sampler_cls(config, clock=clock) if clock is not None else sampler_cls(config)
    except Exception as exc:  # noqa: BLE001 - the learner's constructor crashed: say so
        fail(did=f"built WorkshopSampler({config!r})", expected="a sampler", saw=f"{type(exc).__name__}: {exc}")


def _ask(sampler, trace_id=TRACE, *, parent=None, kind=SpanKind.SERVER, attributes=None, name="POST /api/orders"):
    try:
        return sampler.should_sample(parent, trace_id, name, kind, dict(ORDER if attributes is None else attributes))
    except Exception as exc:  # noqa: BLE001
        fail(did=f"called should_sample(trace_id={trace_id:032x}, kind={kind}, attributes={attributes})",
             expected="a SamplingResult", saw=f"{type(exc).__name__}: {exc}")


def _sampled(result) -> bool:
    return result.decision.is_sampled()


def _pattern(decisions) -> str:
    return " ".join("S" if d else "-" for d in decisions) + "  (S sampled, - not)"


def _parent(*, sampled: bool, remote: bool = True, state: str = "vendor=workshop,other=1", trace_id=TRACE):
    context = SpanContext(trace_id, PARENT, is_remote=remote,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
                          trace_state=TraceState.from_header([state]))
    return otel_trace.set_span_in_context(NonRecordingSpan(context))


def _extract(headers):
    try:
        return attr("services.shared.trace_context", "extract_context")(headers)
    except Exception as exc:  # noqa: BLE001
        fail(did=f"called extract_context({headers}) (Step 2)", expected="a Context",
             saw=f"{type(exc).__name__}: {exc}")


def _traceparent(sampled: bool, trace_id=TRACE) -> dict:
    return {"traceparent": f"00-{trace_id:032x}-{PARENT:016x}-{'01' if sampled else '00'}",
            "tracestate": "vendor=workshop"}


# -- ratio -----------------------------------------------------------------------------------------

@st.composite
def ratio_cases(draw):
    ratio = draw(st.one_of(st.sampled_from((0.0, 1.0, 0.5)), st.floats(0.0, 1.0)))
    ids = draw(st.lists(st.one_of(st.integers(1, (1 << 128) - 1), st.sampled_from(
        (1 << 64, (1 << 64) | LOW, (1 << 127) | 1, LOW, 1, TRACE))), min_size=1, max_size=12, unique=True))
    return ratio, ids, draw(st.permutations(ids))


@check(step=6, criterion="sampling-works", todo="TODO 2", rules=("6.1", "6.6"))
def test_ratio_decisions_agree_in_every_instance_and_order():
    """Three samplers asked about the same trace ids, in different orders, give the same answers"""
    @generated(ratio_cases(), examples=[
            (0.0, [TRACE, 1 << 64, LOW], [LOW, 1 << 64, TRACE]),
            (1.0, [TRACE, (1 << 64) | LOW, LOW], [LOW, (1 << 64) | LOW, TRACE])])
    def run(case):
        ratio, ids, shuffled = case
        one, two, three = (_sampler(_config(ratio=ratio)) for _ in range(3))
        first = {t: _sampled(_ask(one, t)) for t in ids}
        second = {t: _sampled(_ask(two, t)) for t in reversed(ids)}
        third = {t: _sampled(_ask(three, t)) for t in shuffled}
        again = {t: _sampled(_ask(one, t)) for t in shuffled}
        did = (f"built three WorkshopSampler(SamplingConfig(ratio={ratio!r})) and asked each about the new traces "
               f"{', '.join(f'{t:032x}' for t in ids)} (in different orders), then the first one again")
        differ = [f"{t:032x}" for t in ids if len({first[t], second[t], third[t], again[t]}) > 1]
        expect(not differ, did=did, expected="one answer per trace id, whoever asks and in whatever order (decide "
               "from the trace id, as TraceIdRatioBased does)", saw=f"different answers for {differ}")
        if ratio in (0.0, 1.0):
            wrong = [f"{t:032x}" for t in ids if first[t] != (ratio == 1.0)]
            expect(not wrong, did=did, expected=f"{'every' if ratio else 'no'} trace sampled at ratio {ratio}",
                   saw=f"wrong for {wrong}")
    run()
    for ratio in (0.25, 0.75):
        sampler = _sampler(_config(ratio=ratio))
        share = sum(_sampled(_ask(sampler, t)) for t in IDS) / len(IDS)
        expect(abs(share - ratio) <= 0.04, did=f"asked WorkshopSampler(SamplingConfig(ratio={ratio})) about "
               f"{len(IDS)} new traces with random-looking ids", expected=f"a share within 0.04 of {ratio}",
               saw=f"{share:.3f}")


# -- parents ---------------------------------------------------------------------------------------

@check(step=6, criterion="sampling-works", todo="TODO 3", rules=("6.2", "6.3", "6.4"))
def test_parents_decide_and_their_tracestate_is_kept():
    """A remote parent's flag wins over the ratio and the cap; every parent's tracestate is kept"""
    clock = FakeClock()
    for ratio, cap in ((0.0, None), (1.0, None), (1.0, 1), (0.5, None)):
        sampler = _sampler(_config(ratio=ratio, max_traces_per_second=cap), clock=clock)
        if cap:
            _ask(sampler, IDS[0])                 # the bucket's one token is gone
        for sampled in (True, False):
            for how, parent in (("a SpanContext(is_remote=True)", _parent(sampled=sampled)),
                                ("extract_context(traceparent, tracestate)", _extract(_traceparent(sampled)))):
                result = _ask(sampler, parent=parent)
                spent = " with its only token spent" if cap else ""
                did = (f"asked WorkshopSampler(SamplingConfig(ratio={ratio}, max_traces_per_second={cap})){spent} "
                       f"about a SERVER span whose remote parent ({how}) is {'sampled' if sampled else 'not sampled'}")
                want = Decision.RECORD_AND_SAMPLE if sampled else Decision.RECORD_ONLY
                expect(result.decision == want, did=did,
                       expected=f"Decision.{want.name}: the caller decided, whatever the ratio or the cap (and a span "
                                "not sampled is still recorded)", saw=f"Decision.{result.decision.name}")
                state = result.trace_state.to_header() if result.trace_state is not None else None
                want_state = "vendor=workshop,other=1" if how.startswith("a Span") else "vendor=workshop"
                expect(state == want_state, did=did, expected=f"the parent's tracestate {want_state!r} on the result",
                       saw=f"tracestate {state!r}")
    for sampled in (True, False):
        result = _ask(_sampler(_config(ratio=0.5)), parent=_parent(sampled=sampled, remote=False), kind=SpanKind.INTERNAL)
        state = result.trace_state.to_header() if result.trace_state is not None else None
        expect(state == "vendor=workshop,other=1", did=f"asked about an INTERNAL span whose local parent "
               f"({'sampled' if sampled else 'not sampled'}) has tracestate vendor=workshop,other=1",
               expected="that tracestate kept on the result", saw=f"tracestate {state!r}")


@check(step=6, criterion="sampling-works", todo="TODO 4", rules=("6.4",))
def test_every_span_not_head_sampled_is_record_only():
    """Whatever says no (ratio, remote parent, health ratio, cap, override), the answer is RECORD_ONLY"""
    clock = FakeClock()
    capped = _sampler(_config(ratio=1.0, max_traces_per_second=1), clock=clock)
    _ask(capped, IDS[0])
    cases = [
        ("a new trace at ratio 0", _sampler(_config(ratio=0.0)), {}),
        ("a span whose remote parent is not sampled", _sampler(_config(ratio=1.0)), {"parent": _parent(sampled=False)}),
        ("a /health probe at health_ratio 0", _sampler(_config(ratio=1.0, health_ratio=0.0)),
         {"attributes": {"url.path": "/health"}}),
        ("a new trace once the cap's only token is spent", capped, {"trace_id": IDS[1]}),
        ("a new trace with X-Trace-Sampling: never", _sampler(_config(ratio=1.0)),
         {"parent": _extract({"X-Trace-Sampling": "never"})}),
    ]
    wrong = []
    for what, sampler, options in cases:
        result = _ask(sampler, **options)
        if result.decision != Decision.RECORD_ONLY:
            wrong.append(f"{what}: Decision.{result.decision.name}")
    expect(not wrong, did="asked the sampler about " + "; ".join(c[0] for c in cases),
           expected="Decision.RECORD_ONLY for each: not sampled, but recorded, so that the tail can still keep it",
           saw="; ".join(wrong))


@check(step=6, criterion="sampling-works", todo="TODO 4", rules=("6.4",))
def test_sampled_and_recorded_spans_keep_their_attributes():
    """The sampler leaves a span's attributes alone, sampled or only recorded"""
    for ratio in (1.0, 0.0):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=_sampler(_config(ratio=ratio)))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        attributes = {"url.path": "/api/orders", "http.request.method": "POST", "order.id": "o-1"}
        span = provider.get_tracer("checks").start_span("POST /api/orders", kind=SpanKind.SERVER, attributes=attributes)
        recorded = dict(span.attributes or {}) if span.is_recording() else None
        span.end()
        did = (f"started a SERVER span with attributes {attributes} in a TracerProvider whose sampler is "
               f"WorkshopSampler(SamplingConfig(ratio={ratio}))")
        expect(recorded is not None and attributes.items() <= recorded.items(), did=did,
               expected="the span recording, with every attribute it was started with (a SamplingResult carries "
                        "the attributes it was given: returning none erases them)",
               saw="not recording" if recorded is None else f"attributes {recorded}")
        exported = exporter.get_finished_spans()
        if ratio:
            expect(exported and attributes.items() <= dict(exported[0].attributes or {}).items(), did=did,
                   expected="the span exported with those attributes",
                   saw=f"exported: {[dict(s.attributes or {}) for s in exported]}")
        else:
            expect(not exported and not span.get_span_context().trace_flags.sampled, did=did,
                   expected="the span recorded but not sampled (RECORD_ONLY): nothing exported",
                   saw=f"sampled={span.get_span_context().trace_flags.sampled}, {len(exported)} exported")


# -- health probes ---------------------------------------------------------------------------------

HEALTH = ("/health", "/healthz", "/ready", "/live")


@st.composite
def probe_cases(draw):
    """A path attribute, whether it names a health probe, and a kind."""
    key = draw(st.sampled_from(("url.path", "http.target", "http.route")))
    prefix = draw(st.sampled_from(("", "/api", "/api/v1", "/internal/status")))
    if draw(st.booleans()):
        path = prefix + draw(st.sampled_from(HEALTH)) + draw(st.sampled_from(("", "/")))
        probe = True
    else:
        path = prefix + draw(st.sampled_from(("/health-report", "/healthy", "/readyz", "/lively", "/orders",
                                              "/health/details", "/ready/now", "/xlive", "/api/livez")))
        probe = False
    kind = draw(st.sampled_from((SpanKind.SERVER, None, SpanKind.CLIENT, SpanKind.INTERNAL)))
    return {key: path}, kind, probe and kind in (SpanKind.SERVER, None)


@check(step=6, criterion="sampling-works", todo="TODO 5", rules=("6.5", "6.6", "6.7"))
def test_health_probes_are_recognised_on_every_path_attribute():
    """Health probes by url.path, http.target or route, as a suffix, with a trailing slash, kind None"""
    samplers = {(1.0, 0.0): _sampler(_config(ratio=1.0, health_ratio=0.0)),
                (0.0, 1.0): _sampler(_config(ratio=0.0, health_ratio=1.0))}

    @generated(probe_cases(), examples=[
            ({"url.path": "/health"}, SpanKind.SERVER, True),
            ({"http.target": "/api/healthz/"}, None, True),
            ({"http.route": "/internal/status/ready"}, SpanKind.SERVER, True),
            ({"url.path": "/live/"}, None, True),
            ({"url.path": "/health"}, SpanKind.CLIENT, False),
            ({"url.path": "/health-report"}, SpanKind.SERVER, False)])
    def run(case):
        attributes, kind, probe = case
        for (ratio, health_ratio), sampler in samplers.items():
            got = _sampled(_ask(sampler, attributes=attributes, kind=kind, name="GET"))
            want = bool(health_ratio if probe else ratio)
            expect(got == want, did=f"asked WorkshopSampler(SamplingConfig(ratio={ratio}, health_ratio={health_ratio})) "
                   f"about a new trace whose first span has kind {kind.name if kind else None} and attributes {attributes}",
                   expected=f"{'sampled' if want else 'not sampled'}: "
                            + ("a health probe (a SERVER span, or kind None, whose path is /health, /healthz, /ready "
                               "or /live or ends with one, a trailing slash ignored) is sampled at health_ratio"
                               if probe else "not a health probe, so the ordinary ratio decides"),
                   saw="sampled" if got else "not sampled")
    run()


# -- the cap ---------------------------------------------------------------------------------------

def _run_bucket(config, steps):
    """[(seconds to wait, new traces to ask about)] -> how many were sampled at each step."""
    clock = FakeClock()
    sampler = _sampler(_config(**config), clock=clock)
    ids = iter(IDS)
    got = []
    for wait, n in steps:
        clock.advance(wait)
        got.append(sum(_sampled(_ask(sampler, next(ids))) for _ in range(n)))
    return got


@check(step=6, criterion="sampling-works", todo="TODO 6", rules=("6.8", "6.9", "6.11"))
def test_token_bucket_capacity_start_and_refill():
    """The bucket holds max(N, 1) tokens, starts full and refills at N per second of the clock"""
    cases = [
        ({"max_traces_per_second": 3}, [(0, 10), (0, 5), (1 / 3, 5), (1.0, 10), (100.0, 10)], [3, 0, 1, 3, 3],
         "N=3: 3 at once (starts full), none more, 1 after 1/3 s, 3 after 1 s, still 3 after 100 s (at most 3 held)"),
        ({"max_traces_per_second": 0.5}, [(0, 5), (1.0, 5), (1.0, 5), (10.0, 5)], [1, 0, 1, 1],
         "N=0.5: 1 at once (max(0.5, 1) = 1 token), none after 1 s (half a token), 1 after 2 s, only 1 after 10 s more"),
        ({"max_traces_per_second": None}, [(0, 200)], [200], "no cap: all 200 sampled"),
        ({"max_traces_per_second": 0.1}, [(0, 2)] + [(1.0, 1)] * 10, [1] + [0] * 9 + [1],
         "N=0.1: 1 at once, then one trace a second: the tenth refill of 0.1 makes a whole token (1e-9 tolerance)"),
        ({"max_traces_per_second": 2.5}, [(0, 5), (0.4, 5), (0.4, 5)], [2, 1, 1],
         "N=2.5: 2 at once (a bucket of 2.5 holds 2 whole tokens), 0.4 s refill 1 token: 1, then 1 again"),
    ]
    for config, steps, want, story in cases:
        got = _run_bucket(dict(ratio=1.0, **config), steps)
        expect(got == want, did=f"built WorkshopSampler(SamplingConfig(ratio=1.0, {', '.join(f'{k}={v}' for k, v in config.items())})) "
               f"on a FakeClock and sent bursts of new traces: (seconds waited, traces) {steps}",
               expected=f"sampled per burst {want}: {story}", saw=f"{got}")


@check(step=6, criterion="sampling-works", todo="TODO 6", rules=("6.10",))
def test_only_traces_the_ratio_keeps_take_tokens():
    """Only a trace the ratio (or health ratio) would sample takes a token; a B3 parent without a decision does"""
    probe = _sampler(_config(ratio=0.5))
    kept = [t for t in IDS if _sampled(_ask(probe, t))][:3]
    rejected = [t for t in IDS if not _sampled(_ask(probe, t))][:20]
    clock = FakeClock()
    sampler = _sampler(_config(ratio=0.5, max_traces_per_second=1), clock=clock)
    got = [_sampled(_ask(sampler, t)) for t in rejected] + [_sampled(_ask(sampler, kept[0])),
                                                             _sampled(_ask(sampler, kept[1]))]
    expect(got == [False] * 20 + [True, False],
           did="asked WorkshopSampler(SamplingConfig(ratio=0.5, max_traces_per_second=1)) on a FakeClock, at one "
               "instant, about 20 new traces that ratio 0.5 does not sample, then two that it does",
           expected=_pattern([False] * 20 + [True, False]) + ": a trace the ratio drops takes no token, so the "
                    "bucket's one token goes to the first trace the ratio keeps",
           saw=_pattern(got))
    health = _sampler(_config(ratio=0.0, health_ratio=1.0, max_traces_per_second=1), clock=FakeClock())
    got = [_sampled(_ask(health, IDS[i], attributes={"url.path": "/health"})) for i in range(2)]
    expect(got == [True, False], did="asked WorkshopSampler(SamplingConfig(ratio=0, health_ratio=1, "
           "max_traces_per_second=1)) about two /health probes at one instant",
           expected=_pattern([True, False]) + ": the health ratio keeps them, and the cap still applies",
           saw=_pattern(got))
    b3 = {"b3": f"{TRACE:032x}-{PARENT:016x}"}
    context = _extract(b3)
    parent = otel_trace.get_current_span(context).get_span_context()
    expect(parent.is_valid and parent.is_remote, did=f"called extract_context({b3}) (Step 2)",
           expected="a remote parent with that trace id (rule 2.9: the decision is left to the sampler)",
           saw=f"{parent}")
    sampler = _sampler(_config(ratio=1.0, max_traces_per_second=1), clock=FakeClock())
    got = [_sampled(_ask(sampler, TRACE, parent=context)), _sampled(_ask(sampler, IDS[5])),
           _sampled(_ask(_sampler(_config(ratio=0.0)), TRACE, parent=context))]
    expect(got == [True, False, False],
           did=f"asked WorkshopSampler(SamplingConfig(ratio=1.0, max_traces_per_second=1)) about a span whose parent "
               f"came from {b3} (no sampling decision), then about a new trace at the same instant; then a "
               "ratio-0 sampler about the same B3 parent",
           expected=_pattern([True, False, False]) + ": a parent without a decision is decided like a new trace, by "
                    "the ratio, and takes the bucket's token",
           saw=_pattern(got))


# -- the override ----------------------------------------------------------------------------------

@check(step=6, criterion="sampling-works", todo="TODO 7", rules=("6.12", "6.13", "6.14", "6.15"))
def test_override_beats_ratio_cap_and_remote_parent():
    """X-Trace-Sampling beats the ratio, the cap and the remote parent's flag; always takes no token"""
    cases = []
    for header in ("always", "never"):
        want = header == "always"
        for ratio, cap, parent in ((0.0, None, None), (1.0, None, None), (1.0, 1, None), (0.5, None, False),
                                   (0.5, None, True), (1.0, 1, True)):
            headers = {"X-Trace-Sampling": header}
            if parent is not None:
                headers |= _traceparent(parent)
            cases.append((header, ratio, cap, parent, headers, want))
    wrong = []
    for header, ratio, cap, parent, headers, want in cases:
        clock = FakeClock()
        sampler = _sampler(_config(ratio=ratio, max_traces_per_second=cap), clock=clock)
        if cap:
            _ask(sampler, IDS[0])                 # spend the only token
        got = _sampled(_ask(sampler, IDS[1], parent=_extract(headers)))
        if got != want:
            wrong.append(f"{header} at ratio {ratio}, cap {cap}{' (token spent)' if cap else ''}, "
                         f"{'no parent' if parent is None else 'remote parent ' + ('sampled' if parent else 'not sampled')}"
                         f": {'sampled' if got else 'not sampled'}")
    expect(not wrong, did="asked WorkshopSampler about spans whose context came from extract_context with "
           "X-Trace-Sampling always or never, with ratios 0, 0.5 and 1, a spent cap and remote parents of either flag",
           expected="'always': sampled, 'never': not sampled, in every case", saw="; ".join(wrong))
    clock = FakeClock()
    sampler = _sampler(_config(ratio=1.0, max_traces_per_second=2), clock=clock)
    always = _extract({"X-Trace-Sampling": "always"})
    got = [_sampled(_ask(sampler, IDS[i], parent=always)) for i in range(5)] + [
        _sampled(_ask(sampler, IDS[10 + i])) for i in range(3)]
    expect(got == [True] * 5 + [True, True, False],
           did="asked WorkshopSampler(SamplingConfig(ratio=1.0, max_traces_per_second=2)) at one instant about five "
               "'always' traces, then three new traces",
           expected=_pattern([True] * 5 + [True, True, False]) + ": overrides take no token, so both tokens are left",
           saw=_pattern(got))


# -- per environment -------------------------------------------------------------------------------

@st.composite
def environment_names(draw):
    name = draw(st.sampled_from(("development", "staging", "production")))
    upper = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if u else c for c, u in zip(name, upper)), name


@check(step=6, criterion="sampling-works", todo="TODO 1", rules=("6.27", "6.28"))
def test_for_environment_ignores_case_and_warns_on_unknown_names(caplog):
    """for_environment: every environment in any case; an unknown name is development with a warning"""
    config_cls = attr(SAMPLING, "SamplingConfig")
    ratios = {"development": 1.0, "staging": 0.5, "production": 0.1}

    def ratio_of(name):
        try:
            config = config_cls.for_environment(name)
        except Exception as exc:  # noqa: BLE001
            fail(did=f"called SamplingConfig.for_environment({name!r})", expected="a SamplingConfig",
                 saw=f"{type(exc).__name__}: {exc}")
        expect(isinstance(config, config_cls), did=f"called SamplingConfig.for_environment({name!r})",
               expected="a SamplingConfig", saw=type(config).__name__)
        return config.ratio

    @generated(environment_names(), examples=[
            ("Production", "production"),
            ("STAGING", "staging"),
            ("development", "development")])
    def run(case):
        name, lower = case
        got = ratio_of(name)
        expect(abs(got - ratios[lower]) < 1e-12, did=f"called SamplingConfig.for_environment({name!r})",
               expected=f"ratio {ratios[lower]} (the name ignoring case)", saw=f"ratio {got}")
    run()
    for unknown in ("qa-cluster", "prod", ""):
        caplog.clear()
        with caplog.at_level(logging.WARNING), capture_logs() as structured, \
                warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            got = ratio_of(unknown)
        logged = ([r for r in caplog.records if r.levelno >= logging.WARNING]
                  + [w for w in warned if not issubclass(w.category, DeprecationWarning)]
                  + [e for e in structured if e.get("log_level") in ("warning", "error", "critical")])
        did = f"called SamplingConfig.for_environment({unknown!r}) (an unknown environment)"
        expect(abs(got - 1.0) < 1e-12, did=did, expected="ratio 1.0: development", saw=f"ratio {got}")
        expect(logged, did=did, expected="a warning logged that the name is unknown and development is used",
               saw="no warning (logging, structlog or warnings.warn)")
