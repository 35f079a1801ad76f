"""Extension E3, SLO monitoring (optional, no points): `evaluate_slo` in
services/api_gateway/slo.py.

Hand-made spans with known answers: which spans are events, the window's closed start and open
end, what a good event is (a latency equal to the threshold is good), the figures at their
boundaries (an SLI equal to the objective meets it; a spent budget goes negative); then generated
spans and windows against the small oracle of checks/oracles/e3.py.
"""
from __future__ import annotations

from kit.harness.generated import generated
from checks.ext_helpers import BASE, call, cut_to, same, shown, span
from kit.harness.expect import check, expect, fail
from kit.harness.learner import attr
from kit.harness.strategies import st
from checks.oracles.e3 import oracle_slo

SLO_MODULE = "services.api_gateway.slo"
RESULT_KEYS = {"name", "total", "good", "sli", "objective", "met", "error_budget_remaining", "burn_rate"}
OP, SVC = "POST /api/orders", "api-gateway"


def slo(objective=0.99, latency_ms=None, name="orders"):
    return attr(SLO_MODULE, "SLO")(name=name, service=SVC, operation=OP, objective=objective, latency_ms=latency_ms)


def evaluate(objective_slo, spans, **window):
    result = call(SLO_MODULE, "evaluate_slo", objective_slo, spans, **window)
    return cut_to([result], RESULT_KEYS, "called evaluate_slo(...)")[0]


def oracle(objective_slo, spans, start_ms=None, end_ms=None):
    """The oracle's result for this SLO, given its fields."""
    return oracle_slo(objective_slo.name, objective_slo.service, objective_slo.operation, objective_slo.objective,
                      objective_slo.latency_ms, spans, start_ms, end_ms)


def counts(result):
    return {"total": result.get("total"), "good": result.get("good")}


def request(start=0.0, duration=10.0, status="UNSET", **kw):
    return span(kw.pop("name", OP), service=kw.pop("service", SVC), start=start, duration=duration,
                status=status, **kw)


# -- the events and the good ones ----------------------------------------------------------------

@check(extension="E3", todo="TODO 1", rules=("E3.1", "0.13"))
def test_e3_events_are_the_server_spans_of_the_operation():
    """evaluate_slo: the events are the SERVER spans of the SLO's service named its operation"""
    spans = [request(), request(status="ERROR"),
             request(kind="CLIENT", status="ERROR"), request(kind="INTERNAL", status="ERROR"),
             request(service="order-service", status="ERROR"), request(name="GET /health", status="ERROR"),
             request(name="POST /orders", service="order-service")]
    got = counts(evaluate(slo(), spans))
    want = {"total": 2, "good": 1}
    expect(got == want, did=f"evaluated an availability SLO of {SVC} {OP!r} over " + shown(spans),
           expected=f"{want} (only the first two spans are events)", saw=got)


@check(extension="E3", todo="TODO 1", rules=("E3.2", "E3.3"))
def test_e3_the_window_includes_its_start_and_excludes_its_end():
    """evaluate_slo: events start in [start_ms, end_ms); a None bound is open"""
    spans = [request(start=99.999), request(start=100), request(start=150, duration=500),
             request(start=199.999), request(start=200), request(start=-50), request(start=1000)]
    cases = [({"start_ms": BASE + 100, "end_ms": BASE + 200}, 3,
              "the spans starting at 100, 150 and 199.999 (100 is in, 200 is out; a span's end does not matter)"),
             ({"start_ms": BASE + 100}, 5, "every span starting at 100 or later"),
             ({"end_ms": BASE + 200}, 5, "every span starting before 200"),
             ({"start_ms": None, "end_ms": None}, 7, "every span"),
             ({}, 7, "every span"),
             ({"start_ms": BASE + 200, "end_ms": BASE + 200}, 0, "nothing: an empty window")]
    for window, total, why in cases:
        got = evaluate(slo(), spans, **window).get("total")
        shown_window = {k: (v if v is None else v - BASE) for k, v in window.items()}
        expect(got == total, did=f"evaluated an SLO with {shown_window or 'no window'} (ms from the base) over "
               + shown(spans), expected=f"total = {total}: {why}", saw=f"total = {got}")


@check(extension="E3", todo="TODO 1", rules=("E3.4",))
def test_e3_good_events_are_those_not_in_error():
    """evaluate_slo: an event is good unless its status is ERROR (UNSET and OK are good)"""
    spans = [request(status="UNSET"), request(status="OK"), request(status="ERROR"), request(status="UNSET")]
    got = counts(evaluate(slo(), spans))
    want = {"total": 4, "good": 3}
    expect(got == want, did="evaluated an availability SLO over " + shown(spans),
           expected=f"{want} (UNSET is the status of most successful spans: good)", saw=got)


@check(extension="E3", todo="TODO 1", rules=("E3.5", "0.11"))
def test_e3_a_latency_slo_counts_slow_events_as_bad():
    """evaluate_slo: for a latency SLO good also means duration_ms <= latency_ms (equal is good)"""
    spans = [request(duration=499.9), request(duration=500), request(duration=500.001),
             request(duration=10, status="ERROR"), request(duration=2000)]
    got = counts(evaluate(slo(latency_ms=500), spans))
    want = {"total": 5, "good": 2}
    expect(got == want, did="evaluated a latency SLO (latency_ms=500) over " + shown(spans),
           expected=f"{want} (499.9 and exactly 500 ms are good; a fast error is bad)", saw=got)
    got = counts(evaluate(slo(latency_ms=None), spans))
    want = {"total": 5, "good": 4}
    expect(got == want, did="evaluated an availability SLO (latency_ms=None) over the same spans",
           expected=f"{want} (latency does not matter)", saw=got)


# -- the figures ---------------------------------------------------------------------------------

@check(extension="E3", todo="TODO 2", rules=("E3.6", "E3.7", "E3.8", "E3.9", "E3.10"))
def test_e3_figures_at_their_boundaries():
    """evaluate_slo: sli, met, burn rate and budget left, at their boundaries (no events, sli == objective, overspent)"""
    cases = [  # (objective, good, bad, what it shows)
        (0.99, 0, 0, "no events: the SLI is 1.0, the budget untouched"),
        (0.75, 3, 1, "SLI equal to the objective: met, burn rate 1, nothing left"),
        (0.75, 2, 2, "SLI below the objective: not met, burn rate 2, budget overspent (-1)"),
        (0.5, 10, 0, "every event good: burn rate 0, the whole budget left"),
        (0.9, 19, 1, "one bad event in 20 at a 90% objective: met, half the budget burnt"),
        (0.99, 0, 3, "every event bad: SLI 0, burn rate 100"),
    ]
    for objective, good, bad, what in cases:
        spans = [request(start=i) for i in range(good)] + [request(start=100 + i, status="ERROR") for i in range(bad)]
        target = slo(objective=objective, name=f"orders-{objective}")
        got = evaluate(target, spans)
        want = oracle(target, spans)
        expect(same(got, want), did=f"evaluated an SLO with objective {objective} over {good} good and {bad} bad events",
               expected=f"{want} ({what})", saw=got)


@check(extension="E3", todo="TODO 2", rules=("E3.6", "E3.9", "E3.10"))
def test_e3_a_latency_slo_reports_its_name_and_objective():
    """evaluate_slo: the result names the SLO and its objective; a latency SLO's burn rate"""
    spans = [request(start=i, duration=100 * (i + 1)) for i in range(10)]
    target = slo(objective=0.8, latency_ms=850, name="orders-fast")
    got = evaluate(target, spans)
    want = oracle(target, spans)
    expect(same(got, want), did="evaluated a latency SLO 'orders-fast' (objective 0.8, 850 ms) over " + shown(spans),
           expected=f"{want}", saw=got)


# -- generated spans and windows against the oracle -------------------------------------------

@st.composite
def cases(draw):
    spans = [request(start=float(draw(st.integers(0, 20))), duration=float(draw(st.integers(0, 30))),
                     status=draw(st.sampled_from(("UNSET", "OK", "ERROR"))),
                     kind=draw(st.sampled_from(("SERVER", "SERVER", "CLIENT"))),
                     service=draw(st.sampled_from((SVC, SVC, "order-service"))),
                     name=draw(st.sampled_from((OP, OP, "GET /health"))), span_id=i + 1)
             for i in range(draw(st.integers(0, 12)))]
    bound = st.one_of(st.none(), st.integers(0, 21).map(lambda v: BASE + v))
    objective = draw(st.sampled_from((0.5, 0.75, 0.9, 0.99)))
    latency = draw(st.one_of(st.none(), st.integers(0, 30).map(float)))
    return spans, objective, latency, draw(bound), draw(bound)


@check(extension="E3", todo="TODO 1", rules=("E3.1", "E3.2", "E3.3", "E3.4", "E3.5", "E3.7", "E3.8", "E3.9", "E3.10"))
def test_e3_evaluate_slo_matches_an_oracle_on_generated_spans():
    """evaluate_slo agrees with a plain oracle on generated spans, windows and objectives"""
    evaluate(slo(), [request()])   # a stub fails here, at once

    @generated(cases())
    def agree(case):
        spans, objective, latency, start, end = case
        target = slo(objective=objective, latency_ms=latency)
        got = evaluate(target, spans, start_ms=start, end_ms=end)
        want = oracle(target, spans, start, end)
        if not same(got, want):
            window = tuple(None if b is None else b - BASE for b in (start, end))
            fail(did=f"evaluated an SLO (objective {objective}, latency_ms {latency}) over the window {window} "
                 f"(ms from the base) and " + shown(spans), expected=f"{want}", saw=f"{got}")

    agree()
