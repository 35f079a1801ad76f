"""Extension E3: service level objectives (SLOs) measured from spans.

An SLO is a promise about the requests of one operation, e.g. "99% of `POST /api/orders`
requests succeed" (availability) or "99% of them succeed within 500 ms" (latency). Every
request is an *event*; an event is *good* when it kept the promise. Then:

- the **SLI** (service level indicator) = good / total: the share of events that were good;
- the SLO is **met** when SLI >= objective;
- the **error budget** is the share of events allowed to be bad, 1 - objective (1% for 0.99).
  The **burn rate** = (1 - SLI) / (1 - objective) says how fast it is being spent: 1.0 spends
  exactly the budget over the window, 2.0 twice as fast, 0 not at all;
- the **error budget remaining** = 1 - burn rate: 1.0 untouched, 0 spent, negative overspent.

    slo = SLO(name="orders-available", service="api-gateway",
              operation="POST /api/orders", objective=0.99)
    evaluate_slo(slo, spans, start_ms=window_start, end_ms=window_end)

Why spans: the gateway's SERVER span of each request already holds what an SLO needs (its
duration and whether it failed), so the SLO is measured on what users lived, with no extra
instrumentation, and a breach leads straight to the traces of the bad events.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.shared.span_store import SpanRecord


@dataclass(frozen=True)
class SLO:
    """One objective for one operation's requests."""

    name: str
    service: str
    operation: str                   # a SERVER span name, e.g. "POST /api/orders"
    objective: float                 # the share of good events promised, e.g. 0.99
    latency_ms: float | None = None  # None: an availability SLO; else good means this fast too


def evaluate_slo(slo: SLO, spans: list[SpanRecord], *, start_ms: float | None = None,
                 end_ms: float | None = None) -> dict:
    """How `slo` fares over the events that start in [start_ms, end_ms) (None: no bound).

    Events: the `SERVER` spans of `slo.service` named `slo.operation`. Good: status not ERROR
    and, for a latency SLO, `duration_ms <= latency_ms`. Returns `{"name", "total", "good",
    "sli", "objective", "met", "error_budget_remaining", "burn_rate"}`; with no events the SLI
    is 1.0 (nothing broke the promise). An objective of 1.0 leaves no budget: the burn rate is
    0.0 while every event is good, infinite otherwise.
    """
    total = good = 0
    for span in spans:
        if span.kind != "SERVER" or span.service != slo.service or span.name != slo.operation:
            continue
        if (start_ms is not None and span.start_ms < start_ms) or \
                (end_ms is not None and span.start_ms >= end_ms):
            continue
        total += 1
        fast_enough = slo.latency_ms is None or span.duration_ms <= slo.latency_ms
        if span.status != "ERROR" and fast_enough:
            good += 1
    sli = good / total if total else 1.0
    budget = 1.0 - slo.objective
    if budget > 0:
        burn_rate = (1.0 - sli) / budget
    else:                                             # a 100% objective: no budget at all
        burn_rate = 0.0 if sli >= 1.0 else float("inf")
    return {"name": slo.name, "total": total, "good": good, "sli": sli,
            "objective": slo.objective, "met": sli >= slo.objective,
            "error_budget_remaining": 1.0 - burn_rate, "burn_rate": burn_rate}
