"""Extension E3 (optional, outside the 100 points): service level objectives from spans.

An SLO is a promise about the requests of one operation, e.g. "99% of `POST /api/orders`
requests succeed" (availability) or "99% of them succeed within 500 ms" (latency). Every
request is an *event*; an event is *good* when it kept the promise. Then:

- the **SLI** = good / total (1.0 when there is no event);
- the SLO is **met** when SLI >= objective;
- the **burn rate** = (1 - SLI) / (1 - objective): how fast the error budget (1 - objective)
  is being spent; the **error budget remaining** = 1 - burn rate (negative once overspent).

What to build (docs/learner-api.md, section E3, says exactly what it returns):

    SLO                                            provided: the objective, a frozen dataclass
    evaluate_slo(slo, spans, start_ms=, end_ms=)   TODO 1 (rules E3.1-E3.5): events, good ones
                                                   TODO 2 (rules E3.6-E3.10): the figures

    slo = SLO(name="orders-available", service="api-gateway",
              operation="POST /api/orders", objective=0.99)
    evaluate_slo(slo, spans, start_ms=window_start, end_ms=window_end)

Keep it fast: one pass over the spans; 100,000 spans should take well under a second.
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
    """How `slo` fares over the events that start in [start_ms, end_ms) (None: no bound)."""
    # TODO 1 (extension E3; rules E3.1-E3.5): the events are the SERVER spans of slo.service
    # named slo.operation whose start_ms is in [start_ms, end_ms) (a None bound is open). Count
    # them (total) and the good ones: status not "ERROR" and, when slo.latency_ms is not None,
    # duration_ms <= slo.latency_ms.
    # TODO 2 (extension E3; rules E3.6-E3.10): return {"name", "total", "good", "sli",
    # "objective", "met", "error_budget_remaining", "burn_rate"} with sli = good / total (1.0
    # when total is 0), met = sli >= objective, burn_rate = (1 - sli) / (1 - objective) and
    # error_budget_remaining = 1 - burn_rate.
    raise NotImplementedError("Extension E3, TODO 1: find the SLO's events and the good ones")
