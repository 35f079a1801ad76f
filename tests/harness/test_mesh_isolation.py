"""The mesh lets only headers cross a service boundary.

`httpx.ASGITransport` runs the callee in the caller's contextvars, so a callee would see the
caller's current span even if no header carried it. These tests prove the hazard is real, that
the mesh removes it, and that the propagation checks fail for a client that injects no headers.
"""
from __future__ import annotations

import textwrap

from kit import ROOT
from kit.grading.runner import run_checks

PROBE = textwrap.dedent("""
    import asyncio, json, sys
    sys.path.insert(0, sys.argv[1])
    from kit.harness.mesh import Mesh
    from kit.harness.spans import trace_id

    async def main():
        results = {}
        for isolate in (True, False):
            async with Mesh(isolate=isolate, strip_headers=("traceparent", "tracestate", "b3")) as mesh:
                await mesh.order()
                results[str(isolate)] = len({trace_id(s) for s in mesh.spans()})
        print(json.dumps(results))

    asyncio.run(main())
""")


def test_without_headers_only_the_isolated_mesh_breaks_the_trace(run_with_solution):
    traces = run_with_solution(PROBE)
    assert traces["False"] == 1, "the shared-context transport should hide the missing headers (the hazard)"
    assert traces["True"] > 1, "the isolated mesh must split the trace when no header carries it"


def test_propagation_checks_fail_when_no_propagation_header_crosses(monkeypatch):
    monkeypatch.setenv("WORKSHOP_MESH_STRIP_HEADERS", "traceparent,tracestate,b3,baggage")
    report = run_checks(ROOT / "solution", only="context-propagates")
    failing = {c.id for c in report.checks if not c.passed}
    for expected in ("traceparent_and_tracestate_survive_end_to_end", "b3_single_header_is_accepted",
                     "client_baggage_reaches_every_service_allowed_keys_only",
                     "workflow_baggage_reaches_downstream_services"):
        assert expected in failing, (expected, sorted(failing))
