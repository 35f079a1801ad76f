"""Extension E3's oracle (SLO monitoring), for checks/test_ext_e3_slo.py. The SLO comes as its
fields (not the learner's SLO object), so that the answers can be looked up by them."""
from __future__ import annotations

from kit.harness.answers import oracle


@oracle
def oracle_slo(name, service, operation, objective, latency_ms, spans, start_ms=None, end_ms=None):
    """Rules E3.1-E3.10: evaluate_slo's result for the SLO (name, service, operation, objective,
    latency_ms) over `spans` in the window [start_ms, end_ms)."""
    events = [s for s in spans if s.kind == "SERVER" and s.service == service
              and s.name == operation                                                   # rule E3.1
              and (start_ms is None or s.start_ms >= start_ms)                          # rules E3.2, E3.3
              and (end_ms is None or s.start_ms < end_ms)]
    good = [s for s in events if s.status != "ERROR"                                    # rule E3.4
            and (latency_ms is None or s.duration_ms <= latency_ms)]                    # rule E3.5
    sli = len(good) / len(events) if events else 1.0                                    # rule E3.7
    burn = (1 - sli) / (1 - objective)                                                  # rule E3.9
    return {"name": name, "total": len(events), "good": len(good), "sli": sli,
            "objective": objective, "met": sli >= objective,                            # rule E3.8
            "error_budget_remaining": 1 - burn, "burn_rate": burn}                      # rule E3.10
