"""Extension E1's oracles (trace analytics), for checks/test_ext_e1_trace_analytics.py: the rules
as plainly as they can be written."""
from __future__ import annotations

from checks.oracles._shared import _percentile
from kit.harness.answers import oracle


@oracle
def oracle_slowest(spans, top=10):
    """Rules E1.1-E1.4: slowest_operations' entries."""
    groups: dict[tuple[str, str], list[float]] = {}
    for s in spans:
        if s.kind in ("SERVER", "INTERNAL"):                          # rule E1.1
            groups.setdefault((s.service, s.name), []).append(s.duration_ms)  # rule 0.14
    entries = [{"service": service, "operation": name, "count": len(values),
                "p50_ms": _percentile(values, 50), "p95_ms": _percentile(values, 95),
                "p99_ms": _percentile(values, 99), "max_ms": max(values)}
               for (service, name), values in groups.items()]
    entries.sort(key=lambda e: (-e["p95_ms"], e["service"], e["operation"]))  # rule E1.3
    return entries[:top]                                               # rule E1.4


@oracle
def oracle_rates(spans):
    """Rules E1.5-E1.8: error_rates' entries."""
    found: dict[str, list[int]] = {}
    for s in spans:
        if s.kind == "SERVER":                                        # rule 0.13
            counts = found.setdefault(s.service, [0, 0])
            counts[0] += 1
            counts[1] += s.status == "ERROR"
    return [{"service": service, "requests": r, "errors": e, "error_rate": e / r}
            for service, (r, e) in sorted(found.items())]
