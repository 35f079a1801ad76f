"""Success criterion 4, performance visible: the gateway's `GET /monitoring/traces/{trace_id}`,
driven without the services. The learner's `router` is included as it is in a fresh FastAPI app,
and the provided span store in use (`set_span_store`) holds the contract's worked example; the
store that was in use is put back afterwards.
"""
from __future__ import annotations

import httpx
from fastapi import FastAPI

from kit.harness.expect import check, expect
from kit.harness.learner import attr, load

BASE = 1_700_000_000_000.0
TRACE = "0af7651916cd43dd8448eb211c80319c"
DASHED = f"{TRACE[:8]}-{TRACE[8:12]}-{TRACE[12:16]}-{TRACE[16:20]}-{TRACE[20:]}"


def _worked_example():
    """A [0,100] (api-gateway); B [10,40] and C [20,90] under A; D [30,60] under C (order-service)."""
    record = attr("services.shared.span_store", "SpanRecord")

    def r(name, start, stop, parent=None, service="api-gateway", kind="INTERNAL"):
        return record(trace_id=TRACE, span_id=name * 16, parent_span_id=parent * 16 if parent else None, name=name,
                      service=service, kind=kind, start_ms=BASE + start, duration_ms=stop - start)
    return [r("a", 0, 100, kind="SERVER"), r("b", 10, 40, "a"), r("c", 20, 90, "a", kind="CLIENT"),
            r("d", 30, 60, "c", service="order-service", kind="SERVER")]


async def _ask(paths: list[str]) -> dict[str, httpx.Response]:
    """GET each path from an app that includes the learner's router, with the worked example stored."""
    store_module = load("services.shared.span_store")
    router = attr("services.api_gateway.monitoring", "router")
    app = FastAPI()
    app.include_router(router)
    previous = store_module.get_span_store()
    store = store_module.InMemorySpanStore()
    store.add(_worked_example())
    store_module.set_span_store(store)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            return {path: await client.get(path) for path in paths}
    finally:
        store_module.set_span_store(previous)


@check(step=5, criterion="performance-visible", todo="TODO 7", rules=("5.1", "5.31", "5.32", "5.35"))
async def test_trace_endpoint_analyses_the_stored_worked_example():
    """GET /monitoring/traces/{id} answers 200 with every analysis of the trace in the span store"""
    path = f"/monitoring/traces/{TRACE}"
    response = (await _ask([path]))[path]
    did = (f"included the learner's router in a FastAPI app, stored the worked example (A [0,100] > B [10,40], "
           f"C [20,90] > D [30,60]) in the span store in use, and called GET {path}")
    expect(response.status_code == 200, did=did, expected="200 with the trace's analysis",
           saw=f"{response.status_code} {response.text[:200]}")
    body = response.json()
    keys = {"trace_id", "total_duration_ms", "service_count", "span_count", "critical_path", "bottlenecks",
            "timeline", "service_map"}
    expect(isinstance(body, dict) and keys <= body.keys(), did=did, expected=f"the keys {sorted(keys)}",
           saw=sorted(body) if isinstance(body, dict) else body)
    path_names = [(seg.get("name"), round(seg.get("start_ms", 0) - BASE, 6), round(seg.get("end_ms", 0) - BASE, 6))
                  for seg in body["critical_path"]]
    want_path = [("a", 0, 20), ("c", 20, 30), ("d", 30, 60), ("c", 60, 90), ("a", 90, 100)]
    got = {"trace_id": body["trace_id"], "total_duration_ms": body["total_duration_ms"],
           "service_count": body["service_count"], "span_count": body["span_count"], "critical_path": path_names,
           "timeline": [row.get("name") for row in body["timeline"]],
           "service_map": [(e.get("caller"), e.get("callee"), e.get("calls"), e.get("errors")) for e in body["service_map"]],
           "bottlenecks is a list": isinstance(body["bottlenecks"], list)}
    want = {"trace_id": TRACE, "total_duration_ms": 100, "service_count": 2, "span_count": 4, "critical_path": want_path,
            "timeline": ["a", "b", "c", "d"], "service_map": [("api-gateway", "order-service", 1, 0)],
            "bottlenecks is a list": True}
    wrong = {k: got[k] for k in want if got[k] != want[k]}
    expect(not wrong, did=did, expected=f"{ {k: want[k] for k in wrong} }", saw=f"{wrong}")


@check(step=5, criterion="performance-visible", todo="TODO 7", rules=("5.31", "5.33", "5.34"))
async def test_trace_endpoint_validates_the_trace_id():
    """The trace id: 32 hex digits (dashes and upper case tolerated), else 422; unknown, 404"""
    cases = {
        "lower case": (TRACE, 200), "UUID form (dashes)": (DASHED, 200), "upper case": (TRACE.upper(), 200),
        "unknown": ("f" * 32, 404), "31 hex digits": (TRACE[:31], 422), "33 hex digits": (TRACE + "0", 422),
        "32 digits, not hex": ("g" + TRACE[1:], 422), "only dashes": ("-" * 32, 422),
        "a span id (16)": (TRACE[:16], 422),
    }
    answers = await _ask([f"/monitoring/traces/{tid}" for tid, _ in cases.values()])
    got = {label: answers[f"/monitoring/traces/{tid}"].status_code for label, (tid, _) in cases.items()}
    want = {label: status for label, (_, status) in cases.items()}
    wrong = {label: f"{got[label]} (want {want[label]})" for label in want if got[label] != want[label]}
    expect(not wrong, did="stored the worked example's trace " + TRACE + " and asked GET /monitoring/traces/{id} for "
           + "; ".join(f"{label} {tid!r}" for label, (tid, _) in cases.items()),
           expected="200 for a stored trace's 32 hex digits (upper case are hex digits too; a UUID's dashes are "
                    "removed), 404 for a trace with no stored span, 422 for anything that is not 32 hex digits",
           saw=f"{wrong}")
