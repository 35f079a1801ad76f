"""The trace viewer as a small FastAPI app: the local stand-in for Application Insights'
transaction search and end-to-end transaction view.

    app = create_viewer_app(store)     # any object with get_trace() and recent_traces()

Routes (under `prefix`, "/viewer" by default):

| route | what |
| --- | --- |
| `GET /viewer/` | recent traces; `?errors=1`, `?min_ms=250`, `?limit=50` filter them |
| `GET /viewer/traces/{trace_id}` | one trace: waterfall, span details, critical path, service map |
| `GET /viewer/traces/{trace_id}/otlp.json` | the trace as OTLP/JSON (Jaeger UI opens it) |
| `GET /viewer/map` | the service map of the recent traces together |
| `GET /viewer/api/traces`, `GET /viewer/api/traces/{trace_id}` | the same data as JSON |

The analysis is the kit's own (`kit.traces.analysis`), never the learner's Step 5. The app is not
instrumented: looking at traces makes no traces. `kit.live` serves it from the gateway's port,
next to the gateway app; `python -m kit.live.viewer` serves it alone over a span database file.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from kit.traces.analysis import analyse, index, service_map
from kit.traces.otlp import to_otlp_json
from kit.live.viewer.pages import list_page, map_page, not_found_page, trace_page

_HEX = frozenset("0123456789abcdef")


def _trace_id(raw: str) -> str | None:
    tid = raw.replace("-", "").strip().lower()
    return tid if len(tid) == 32 and _HEX.issuperset(tid) else None


def create_viewer_app(store: Any, *, prefix: str = "/viewer", source: str = "",
                      aliases: Mapping[str, str] | None = None) -> FastAPI:
    """The viewer over `store` (`get_trace(trace_id)`, `recent_traces(limit, errors_only,
    min_duration_ms)`). `aliases` names addresses in the service map (e.g. the stand-in
    payment provider's `127.0.0.1:8009`); `source` is shown on the list page."""
    app = FastAPI(title="Workshop trace viewer", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.store = store

    def spans_of(raw: str) -> tuple[str, list]:
        tid = _trace_id(raw)
        if tid is None:
            raise HTTPException(422, detail=f"a trace id is 32 hex digits, got {raw!r}")
        return tid, store.get_trace(tid)

    def recent(limit: int, errors: bool, min_ms: float) -> list[dict]:
        return store.recent_traces(limit=limit, errors_only=errors, min_duration_ms=min_ms)

    @app.get(prefix or "/", include_in_schema=False)
    def to_list():
        return RedirectResponse(f"{prefix}/")

    if prefix:
        @app.get("/", include_in_schema=False)
        def root():
            return RedirectResponse(f"{prefix}/")

    @app.get(f"{prefix}/", response_class=HTMLResponse)
    def traces(errors: bool = False, min_ms: float = Query(0.0, ge=0),
               limit: int = Query(50, ge=1, le=500)):
        return list_page(recent(limit, errors, min_ms), prefix=prefix, errors_only=errors,
                         min_duration_ms=min_ms, limit=limit, source=source)

    @app.get(f"{prefix}/traces/{{trace_id}}", response_class=HTMLResponse)
    def trace(trace_id: str):
        tid, spans = spans_of(trace_id)
        if not spans:
            return HTMLResponse(not_found_page(tid, prefix=prefix), status_code=404)
        return trace_page(analyse(spans, aliases=aliases), spans, prefix=prefix)

    @app.get(f"{prefix}/traces/{{trace_id}}/otlp.json")
    def otlp(trace_id: str):
        tid, spans = spans_of(trace_id)
        if not spans:
            raise HTTPException(404, detail=f"no span of trace {tid} is stored")
        return JSONResponse(to_otlp_json(spans), headers={
            "Content-Disposition": f'attachment; filename="trace-{tid}.json"'})

    @app.get(f"{prefix}/map", response_class=HTMLResponse)
    def whole_map(limit: int = Query(50, ge=1, le=500)):
        edges, spans, count = _merged_map(store, recent(limit, False, 0.0), aliases)
        return map_page(edges, spans, prefix=prefix, traces=count)

    @app.get(f"{prefix}/api/traces")
    def api_traces(errors: bool = False, min_ms: float = Query(0.0, ge=0),
                   limit: int = Query(50, ge=1, le=500)):
        return recent(limit, errors, min_ms)

    @app.get(f"{prefix}/api/traces/{{trace_id}}")
    def api_trace(trace_id: str, threshold_ms: float = Query(0.0, ge=0),
                  top: int = Query(5, ge=0)):
        tid, spans = spans_of(trace_id)
        if not spans:
            raise HTTPException(404, detail=f"no span of trace {tid} is stored")
        return analyse(spans, threshold_ms=threshold_ms, top=top, aliases=aliases)

    return app


def _merged_map(store: Any, summaries: list[dict],
                aliases: Mapping[str, str] | None) -> tuple[list[dict], list, int]:
    """One service map for several traces (calls and errors added up per pair), and their
    spans."""
    total: dict[tuple[str, str], list[int]] = {}
    spans: list = []
    for summary in summaries:
        uniq, parent = index(store.get_trace(summary["trace_id"]))
        spans.extend(uniq)
        for edge in service_map(uniq, parent, aliases=aliases):
            pair = total.setdefault((edge["caller"], edge["callee"]), [0, 0])
            pair[0] += edge["calls"]
            pair[1] += edge["errors"]
    edges = [{"caller": a, "callee": b, "calls": c, "errors": e}
             for (a, b), (c, e) in sorted(total.items())]
    return edges, spans, len(summaries)
