"""Extension E2's oracle (feature flags and A/B tests), for checks/test_ext_e2_experiments.py."""
from __future__ import annotations

from checks.oracles._shared import _percentile
from kit.harness.answers import oracle

_GATEWAY, _ORDERS = "api-gateway", "POST /api/orders"


@oracle
def oracle_variants(spans, experiment):
    """Rules E2.5 and E2.6: compare_variants' figures per variant."""
    key = f"experiment.{experiment}"
    groups: dict[str, list] = {}
    for s in spans:
        if s.kind == "SERVER" and s.service == _GATEWAY and s.name == _ORDERS and key in s.attributes:  # rule E2.5
            groups.setdefault(str(s.attributes[key]), []).append(s)
    return {variant: {"orders": len(found), "errors": sum(s.status == "ERROR" for s in found),   # rule E2.6
                      "error_rate": sum(s.status == "ERROR" for s in found) / len(found),
                      "p50_ms": _percentile([s.duration_ms for s in found], 50),
                      "p95_ms": _percentile([s.duration_ms for s in found], 95)}
            for variant, found in groups.items()}
