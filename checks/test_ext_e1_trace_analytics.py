"""Extension E1, trace analytics (optional, no points): `slowest_operations` and `error_rates`
in services/api_gateway/analytics.py, over spans of many traces.

The checks feed hand-made spans with known answers (enumerated cases and the boundaries of the
nearest-rank percentile, rule 0.12), then generated span sets against the small oracles of
checks/oracles/e1.py.
"""
from __future__ import annotations

import random

from kit.harness.generated import generated
from checks.ext_helpers import call, cut_to, same, shown, span
from checks.oracles.e1 import oracle_rates, oracle_slowest
from kit.harness.expect import check, expect, fail
from kit.harness.strategies import st

ANALYTICS = "services.api_gateway.analytics"
OPERATION_KEYS = {"service", "operation", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms"}
RATE_KEYS = {"service", "requests", "errors", "error_rate"}


def slowest(spans, **kwargs):
    return cut_to(call(ANALYTICS, "slowest_operations", spans, **kwargs), OPERATION_KEYS,
                  lambda: "ranked " + shown(spans))


def rates(spans):
    return cut_to(call(ANALYTICS, "error_rates", spans), RATE_KEYS, lambda: "asked the error rates of " + shown(spans))


def _operations(entries):
    try:
        return [(e["service"], e["operation"]) for e in entries]
    except (KeyError, TypeError) as exc:
        fail(did="read the entries of slowest_operations", expected='dicts with "service" and "operation"',
             saw=f"{entries!r:.300} ({type(exc).__name__}: {exc})")


# -- slowest_operations --------------------------------------------------------------------------

@check(extension="E1", todo="TODO 1", rules=("0.12", "E1.2"))
def test_e1_percentiles_are_the_nearest_rank():
    """slowest_operations: p50, p95, p99 and max by nearest rank for 1, 2, 19, 20 and 100 durations"""
    shuffle = random.Random(14)
    for n in (1, 2, 19, 20, 100):
        values = [float(v * 10) for v in range(1, n + 1)]
        shuffle.shuffle(values)
        spans = [span("GET /items", service="catalog", duration=v) for v in values]
        got = slowest(spans)
        want = oracle_slowest(spans)
        expect(same(got, want), did=f"ranked one operation whose {n} durations are 10, 20, ..., {n * 10} ms (shuffled)",
               expected=f"{want} (nearest rank: sorted(values)[ceil(N / 100 * n) - 1], always one of the values)",
               saw=got)


@check(extension="E1", todo="TODO 1", rules=("E1.1", "0.13", "0.14"))
def test_e1_operations_are_server_and_internal_spans_by_service_and_name():
    """slowest_operations: one entry per (service, name) of SERVER and INTERNAL spans; other kinds left out"""
    spans = [span("POST /orders", service="order-service", kind="SERVER", duration=40),
             span("POST /orders", service="order-service", kind="SERVER", duration=60),
             span("POST /orders", service="api-gateway", kind="CLIENT", duration=500),
             span("process_order", service="order-service", kind="INTERNAL", duration=30),
             span("process_order", service="inventory-service", kind="INTERNAL", duration=20),
             span("publish", service="order-service", kind="PRODUCER", duration=900),
             span("consume", service="order-service", kind="CONSUMER", duration=800),
             span("SELECT stock", service="inventory-service", kind="CLIENT", duration=700)]
    got = slowest(spans)
    want = oracle_slowest(spans)
    expect(same(got, want), did="ranked " + shown(spans),
           expected=f"{want} (CLIENT, PRODUCER and CONSUMER spans are no operation; the same name in two services "
                    "is two operations)", saw=got)
    expect(slowest([]) == [], did="ranked no spans", expected="[]", saw=slowest([]))


@check(extension="E1", todo="TODO 1", rules=("E1.3",))
def test_e1_operations_sorted_by_p95_then_service_then_operation():
    """slowest_operations: by p95 descending; equal p95s by service, then operation"""
    spans = [span("b", service="s2", duration=50), span("a", service="s2", duration=50),
             span("z", service="s1", duration=50), span("fast", service="s0", duration=5),
             span("tail", service="s9", duration=10), span("tail", service="s9", duration=80),
             span("steady", service="s3", duration=70), span("steady", service="s3", duration=70)]
    spans += [span("spiky", service="s4", duration=1000 if i == 0 else 1) for i in range(20)]
    got = _operations(slowest(spans))
    want = _operations(oracle_slowest(spans))
    expect(same(got, want), did="ranked " + shown(spans),
           expected=f"{want} (p95 descending: tail's p95 is 80 although its p50 is 10, spiky's is 1 although its "
                    "max is 1000; ties by service, then operation, both ascending)", saw=got)


@check(extension="E1", todo="TODO 1", rules=("E1.4",))
def test_e1_at_most_top_operations():
    """slowest_operations: at most `top` entries (10 by default; top=0 gives none)"""
    spans = [span(f"op-{i:02d}", service="svc", duration=100 - i) for i in range(12)]
    for top, size in ((None, 10), (0, 0), (1, 1), (3, 3), (12, 12), (50, 12)):
        got = slowest(spans) if top is None else slowest(spans, top=top)
        want = oracle_slowest(spans, 10 if top is None else top)
        expect(same(got, want), did=f"ranked 12 operations with {'the default top' if top is None else f'top={top}'}",
               expected=f"the {size} slowest: {_operations(want)}", saw=f"{len(got)} entries: {_operations(got)}")


# -- error_rates --------------------------------------------------------------------------------

@check(extension="E1", todo="TODO 2", rules=("E1.5", "E1.6", "E1.7", "0.13"))
def test_e1_error_rates_count_failed_requests_per_service():
    """error_rates: per service with requests, errors = SERVER spans with status ERROR, rate = errors / requests"""
    spans = [span("POST /api/orders", service="api-gateway", status="ERROR"),
             span("POST /api/orders", service="api-gateway", status="OK"),
             span("POST /api/orders", service="api-gateway"),
             span("GET /health", service="api-gateway"),
             span("POST /orders", service="api-gateway", kind="CLIENT", status="ERROR"),
             span("process_order", service="order-service", kind="INTERNAL", status="ERROR"),
             span("POST /orders", service="order-service"),
             span("charge", service="payment-service", kind="CLIENT", status="ERROR"),
             span("POST /inventory/check", service="inventory-service", status="ERROR")]
    got = rates(spans)
    want = oracle_rates(spans)
    expect(same(got, want), did="asked the error rates of " + shown(spans),
           expected=f"{want} (only SERVER spans are requests; payment-service has none, so no entry)", saw=got)
    expect(rates([]) == [], did="asked the error rates of no spans", expected="[]", saw=rates([]))


@check(extension="E1", todo="TODO 2", rules=("E1.8",))
def test_e1_error_rates_sorted_by_service():
    """error_rates: the entries sorted by service name"""
    spans = [span("r", service=name, status=status) for name, status in
             (("payment-service", "ERROR"), ("api-gateway", "UNSET"), ("order-service", "ERROR"),
              ("auth-service", "UNSET"), ("order-service", "UNSET"))]
    got = [e.get("service") if isinstance(e, dict) else e for e in rates(spans)]
    want = sorted({s.service for s in spans})
    expect(same(got, want), did="asked the error rates of requests of four services", expected=f"{want}", saw=got)


# -- generated span sets against the oracles ----------------------------------------------------

SERVICES = ("api-gateway", "order-service", "payment-service")
NAMES = ("POST /api/orders", "process_order", "charge")


@st.composite
def span_sets(draw):
    spans = []
    for i in range(draw(st.integers(0, 14))):
        spans.append(span(draw(st.sampled_from(NAMES)), service=draw(st.sampled_from(SERVICES)),
                          kind=draw(st.sampled_from(("SERVER", "INTERNAL", "CLIENT"))),
                          duration=float(draw(st.integers(0, 40))),
                          status=draw(st.sampled_from(("UNSET", "OK", "ERROR"))),
                          trace=draw(st.integers(1, 3)), span_id=i + 1, start=float(i)))
    return spans


@check(extension="E1", todo="TODO 1", rules=("E1.1", "E1.2", "E1.3", "E1.4", "0.12"))
def test_e1_slowest_operations_match_an_oracle_on_generated_spans():
    """slowest_operations agrees with a plain oracle on generated spans (ties, kinds, top)"""
    slowest([span()])   # a stub fails here, at once

    @generated(span_sets(), st.integers(0, 6))
    def agree(spans, top):
        got = slowest(spans, top=top)
        want = oracle_slowest(spans, top)
        expect(same(got, want), did=f"ranked, with top={top}, " + shown(spans), expected=f"{want}", saw=got)

    agree()


@check(extension="E1", todo="TODO 2", rules=("E1.5", "E1.6", "E1.7", "E1.8"))
def test_e1_error_rates_match_an_oracle_on_generated_spans():
    """error_rates agrees with a plain oracle on generated spans"""
    rates([span()])

    @generated(span_sets())
    def agree(spans):
        got = rates(spans)
        want = oracle_rates(spans)
        expect(same(got, want), did="asked the error rates of " + shown(spans), expected=f"{want}", saw=got)

    agree()
