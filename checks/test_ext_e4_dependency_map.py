"""Extension E4, the dependency map across traces (optional, no points): `dependency_map` in
services/api_gateway/analytics.py.

Its edges are Step 5's service map (rules 5.27 to 5.30) summed over every trace, each with the
nearest-rank p50 and p95 of its calls' latency: the duration of the caller's span of the edge.
Hand-made traces with known answers first (a parent is looked up in its own trace; a duplicated
span is kept once), then generated multi-trace span sets against the small oracle of
checks/oracles/e4.py.
"""
from __future__ import annotations

from kit.harness.generated import generated
from checks.ext_helpers import call, cut_to, same, shown, span
from checks.oracles.e4 import oracle_dependency_map
from kit.harness.expect import check, expect, fail
from kit.harness.strategies import st

ANALYTICS = "services.api_gateway.analytics"
EDGE_KEYS = {"caller", "callee", "calls", "errors", "p50_ms", "p95_ms"}


def dependency_map(spans):
    return cut_to(call(ANALYTICS, "dependency_map", spans), EDGE_KEYS, lambda: "drew the dependency map of " + shown(spans))


def call_tree(trace, *, gateway_ms=50.0, order_ms=30.0, status="UNSET", db=None):
    """gateway SERVER > gateway CLIENT > order SERVER [> order CLIENT to a database]."""
    spans = [span("POST /api/orders", service="api-gateway", trace=trace, span_id=1, duration=gateway_ms + 10),
             span("POST /orders", service="api-gateway", kind="CLIENT", trace=trace, span_id=2, parent=1,
                  duration=gateway_ms),
             span("POST /orders", service="order-service", trace=trace, span_id=3, parent=2, duration=order_ms,
                  status=status)]
    if db is not None:
        spans.append(span("SELECT", service="order-service", kind="CLIENT", trace=trace, span_id=4, parent=3,
                           duration=db, attributes={"db.system": "sqlite"}))
    return spans


@check(extension="E4", todo="TODO 3", rules=("E4.2", "E4.3", "5.27", "5.28", "5.29", "5.30"))
def test_e4_edges_of_one_trace_follow_step_5():
    """dependency_map of one trace: Step 5's edges (child in another service; childless CLIENT spans)"""
    spans = call_tree(1, status="ERROR", db=4.0) + [
        span("GET", service="order-service", kind="CLIENT", trace=1, span_id=5, parent=3, duration=6,
             attributes={"peer.service": "pricing-api"}),
        span("GET", service="order-service", kind="CLIENT", trace=1, span_id=6, parent=3, duration=7,
             status="ERROR", attributes={"server.address": "api.payment-provider.example"}),
        span("GET", service="order-service", kind="CLIENT", trace=1, span_id=7, parent=3, duration=8,
             attributes={"http.request.method": "GET"}),
        span("validate", service="order-service", kind="INTERNAL", trace=1, span_id=8, parent=3, duration=9,
             attributes={"db.system": "redis"}),
        span("HGET", service="order-service", kind="CLIENT", trace=1, span_id=9, parent=3, duration=3,
             attributes={"db.system": "redis", "peer.service": "cache"}),
        span("wrapped", service="order-service", kind="CLIENT", trace=1, span_id=10, parent=3, duration=11,
             attributes={"db.system": "sqlite"}),
        span("inner", service="order-service", kind="INTERNAL", trace=1, span_id=11, parent=10, duration=2)]
    got = dependency_map(spans)
    want = oracle_dependency_map(spans)
    expect(same(got, want), did="drew the dependency map of " + shown(spans),
           expected=f"{want} (a CLIENT span with a child is no call to its db.system; db.system before "
                    "peer.service or server.address; no edge without any; an INTERNAL span is no call)",
           saw=got, spans=spans)
    expect(dependency_map([]) == [], did="drew the dependency map of no spans", expected="[]",
           saw=dependency_map([]))


@check(extension="E4", todo="TODO 3", rules=("E4.1", "E4.2"))
def test_e4_edges_are_summed_over_traces_with_parents_in_their_own_trace():
    """dependency_map of several traces: calls and errors summed; a parent is looked up in its own trace"""
    spans = (call_tree(1) + call_tree(2, status="ERROR") + call_tree(3, db=5.0)
             # trace 4 holds span ids of the other traces' spans, but not its parent's: an orphan, no edge
             + [span("POST /inventory/check", service="inventory-service", trace=4, span_id=9, parent=2,
                     duration=12)])
    got = dependency_map(spans)
    want = oracle_dependency_map(spans)
    expect(same(got, want), did="drew the dependency map of " + shown(spans),
           expected=f"{want} (three calls gateway -> order, one failed; trace 4's span names a parent id that "
                    "exists only in other traces, so it is a root there)", saw=got, spans=spans)


@check(extension="E4", todo="TODO 3", rules=("E4.4", "0.11", "0.12"))
def test_e4_latency_is_the_duration_of_the_callers_span():
    """dependency_map: p50 and p95 (nearest rank) of the caller's span durations, for 1, 2 and 20 calls"""
    for n in (1, 2, 20):
        spans = []
        for t in range(n):
            spans += call_tree(t + 1, gateway_ms=10.0 * (t + 1), order_ms=1.0 + t, db=100.0 + t)
        got = dependency_map(spans)
        want = oracle_dependency_map(spans)
        expect(same(got, want), did=f"drew the dependency map of {n} traces gateway -> order -> sqlite whose gateway "
               f"CLIENT spans last 10, 20, ... ms (the order-service spans under them 1, 2, ... ms)",
               expected=f"{want} (a call's latency is the caller's span: the gateway's CLIENT span for "
                        "gateway -> order, the childless CLIENT span itself for order -> sqlite)", saw=got)


@check(extension="E4", todo="TODO 3", rules=("E4.5",))
def test_e4_edges_sorted_by_caller_then_callee():
    """dependency_map: the edges sorted by caller, then callee"""
    callers = ("payment-service", "api-gateway", "order-service", "api-gateway")
    callees = ("stripe", "order-service", "sqlite", "auth-service")
    spans = [span("call", service=caller, kind="CLIENT", trace=i + 1, span_id=1, duration=5,
                  attributes={"peer.service": callee}) for i, (caller, callee) in enumerate(zip(callers, callees))]
    spans += [span("call", service="order-service", kind="CLIENT", trace=9, span_id=i, duration=5,
                   attributes={"db.system": "redis"}) for i in (1, 2, 3)]
    got = [(e["caller"], e["callee"]) for e in dependency_map(spans)]
    want = [(e["caller"], e["callee"]) for e in oracle_dependency_map(spans)]
    expect(same(got, want), did="drew the dependency map of childless CLIENT spans to five targets (one called three times)",
           expected=f"{want} (by caller, then callee; not by number of calls)", saw=got)


@check(extension="E4", todo="TODO 3", rules=("E4.2", "5.5"))
def test_e4_a_duplicated_span_is_counted_once():
    """dependency_map: a span given twice in its trace is one call, not two"""
    spans = call_tree(1, db=4.0)
    spans = spans + [spans[2], spans[3]]   # the order-service span and its database call, exported twice
    got = dependency_map(spans)
    want = oracle_dependency_map(spans)
    expect(same(got, want), did="drew the dependency map of " + shown(spans),
           expected=f"{want} (a duplicated span id is kept once)", saw=got)


# -- generated span sets against the oracle -----------------------------------------------------

SERVICES = ("api-gateway", "order-service", "inventory-service")
#: Never `peer.service` and `server.address` without `db.system`: rule 5.29 does not say which names the callee.
TARGETS = ({}, {"db.system": "sqlite"}, {"peer.service": "payments"}, {"server.address": "api.example"},
           {"db.system": "redis", "server.address": "cache.example"},
           {"db.system": "redis", "peer.service": "p", "server.address": "a"})


@st.composite
def traces(draw):
    spans = []
    for trace in range(1, draw(st.integers(1, 3)) + 1):
        ids: list[int] = []
        for i in range(1, draw(st.integers(0, 7)) + 1):
            parent = draw(st.one_of(st.none(), st.just(99), st.sampled_from(ids))) if ids else \
                draw(st.sampled_from((None, 99)))
            kind = draw(st.sampled_from(("SERVER", "CLIENT", "CLIENT", "INTERNAL")))
            spans.append(span("op", service=draw(st.sampled_from(SERVICES)), kind=kind, trace=trace, span_id=i,
                              parent=parent, start=float(i), duration=float(draw(st.integers(0, 30))),
                              status=draw(st.sampled_from(("UNSET", "OK", "ERROR"))),
                              attributes=draw(st.sampled_from(TARGETS)) if kind == "CLIENT" else {}))
            ids.append(i)
    if spans and draw(st.booleans()):
        spans.append(spans[draw(st.integers(0, len(spans) - 1))])   # one span exported twice
    return draw(st.permutations(spans))


@check(extension="E4", todo="TODO 3", rules=("E4.1", "E4.2", "E4.3", "E4.4", "E4.5", "0.12"))
def test_e4_dependency_map_matches_an_oracle_on_generated_traces():
    """dependency_map agrees with a plain oracle on generated traces (shared span ids, orphans, duplicates)"""
    dependency_map(call_tree(1))   # a stub fails here, at once

    @generated(traces())
    def agree(spans):
        got = dependency_map(spans)
        want = oracle_dependency_map(spans)
        if got != want:
            fail(did="drew the dependency map of " + shown(spans), expected=f"{want}", saw=f"{got}", spans=spans)

    agree()
