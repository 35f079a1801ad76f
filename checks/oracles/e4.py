"""Extension E4's oracle (the dependency map across traces), for checks/test_ext_e4_dependency_map.py."""
from __future__ import annotations

from checks.oracles._shared import _percentile
from kit.harness.answers import oracle


@oracle
def oracle_dependency_map(spans):
    """Step 5's edges trace by trace (rules 5.27-5.30), summed (E4.2), with latencies (E4.4)."""
    calls: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    traces: dict[str, dict[str, object]] = {}
    for s in spans:                                     # rule 5.5: a duplicated id is kept once
        traces.setdefault(s.trace_id, {}).setdefault(s.span_id, s)
    for trace in traces.values():                       # rule E4.1: parents within their trace
        parents_with_children = set()
        for s in trace.values():
            parent = trace.get(s.parent_span_id) if s.parent_span_id else None
            if parent is None:
                continue
            parents_with_children.add(parent.span_id)
            if parent.service != s.service:             # rule 5.28
                calls.setdefault((parent.service, s.service), []).append((parent.duration_ms, s.status == "ERROR"))
        for s in trace.values():                        # rules 5.29, 5.30
            if s.kind != "CLIENT" or s.span_id in parents_with_children:
                continue
            a = s.attributes
            target = a.get("db.system") or a.get("peer.service") or a.get("server.address")
            if target:
                calls.setdefault((s.service, str(target)), []).append((s.duration_ms, s.status == "ERROR"))
    return [{"caller": caller, "callee": callee, "calls": len(found), "errors": sum(e for _, e in found),
             "p50_ms": _percentile([d for d, _ in found], 50), "p95_ms": _percentile([d for d, _ in found], 95)}
            for (caller, callee), found in sorted(calls.items())]   # rule E4.5
