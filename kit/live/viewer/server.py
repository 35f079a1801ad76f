"""The trace viewer as a small FastAPI app: the local stand-in for Application Insights'
transaction search and end-to-end transaction view.

    app = create_viewer_app(store)     # any object with get_trace() and recent_traces()

Routes (under `prefix`, "/viewer" by default):

| route | what |
| --- | --- |
| `GET /viewer/` | transaction search: `?range=30m` (or `from`/`to`), `service`, `operation`, `errors=1`, `min_ms`, `trace` (32 hex or a UUID), `limit`, `offset` |
| `GET /viewer/traces/{trace_id}` | one trace: waterfall, span details, its log lines and exceptions, critical path, service map |
| `GET /viewer/performance` | operations and dependencies over a time range (`sort`, `dir`); `/performance/samples` drills into a row |
| `GET /viewer/metrics` | per service request rate, error rate, latency histogram; `?service=&bucket=` lists a bucket's exemplars |
| `GET /viewer/insights` | the extensions: E1 with KQL, E2 variants, E3 SLOs, E4 dependency map |
| `GET /viewer/traces/{trace_id}/otlp.json` | the trace as OTLP/JSON (Jaeger UI opens it) |
| `GET /viewer/map` | the service map of the recent traces together |
| `GET /viewer/api/traces`, `GET /viewer/api/traces/{trace_id}` | the same data as JSON |

The analysis is `kit.traces.analysis`: the kit's reference analysis, or in the learner release
the learner's own Step 5 (imported from the tree on `sys.path`; where it cannot be imported or is
not finished, the page lists the spans and says what to finish). The app is not
instrumented: looking at traces makes no traces. `kit.live` serves it from the gateway's port,
next to the gateway app; `python -m kit.live.viewer` serves it alone over a span database file.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

import json
import os

from kit.traces import analysis
from kit.traces.otlp import to_otlp_json
from kit.traces.waterfall import notes_of
from kit.live.viewer import panels
from kit.live.viewer.index import Index, parse_trace_id
from kit.live.viewer.pages import list_page, map_page, not_found_page, trace_page

#: The SLOs the insights page evaluates unless `WORKSHOP_LIVE_SLOS` (a JSON list) names others.
DEFAULT_SLOS = (
    {"name": "orders available", "service": "api-gateway", "operation": "POST /api/orders",
     "objective": 0.99},
    {"name": "orders fast", "service": "api-gateway", "operation": "POST /api/orders",
     "objective": 0.95, "latency_ms": 500.0},
    {"name": "payments available", "service": "payment-service",
     "operation": "POST /payments/process", "objective": 0.99},
)


def configured_slos(environ: Mapping[str, str] | None = None) -> list[dict]:
    """The SLOs of `WORKSHOP_LIVE_SLOS` (JSON list of {name, service, operation, objective,
    latency_ms?}), else `DEFAULT_SLOS`."""
    raw = (os.environ if environ is None else environ).get("WORKSHOP_LIVE_SLOS", "")
    if raw.strip():
        try:
            items = json.loads(raw)
            return [{"name": str(i["name"]), "service": str(i["service"]),
                     "operation": str(i["operation"]), "objective": float(i["objective"]),
                     "latency_ms": (float(i["latency_ms"]) if i.get("latency_ms") is not None
                                    else None)} for i in items]
        except (ValueError, KeyError, TypeError):
            pass
    return [{"latency_ms": None, **s} for s in DEFAULT_SLOS]


def _span_file(store: Any) -> str | None:
    path = getattr(store, "path", None)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None

_HEX = frozenset("0123456789abcdef")


def _trace_id(raw: str) -> str | None:
    tid = raw.replace("-", "").strip().lower()
    return tid if len(tid) == 32 and _HEX.issuperset(tid) else None


def create_viewer_app(store: Any, *, prefix: str = "/viewer", source: str = "",
                      aliases: Mapping[str, str] | None = None, experiment: str | None = None,
                      slos: list[dict] | None = None) -> FastAPI:
    """The viewer over `store` (`get_trace(trace_id)`, `recent_traces(limit, errors_only,
    min_duration_ms)`). `aliases` names addresses in the service map (e.g. the stand-in
    payment provider's `127.0.0.1:8009`); `source` is shown on the list page.

    When the store is a SQLite span file (it has a `path`: the provided `SqliteSpanStore`, or
    `SpanDatabase`), the viewer indexes it (`kit.live.viewer.index`) and offers the search,
    performance, metrics and insights pages; over any other store, the list of recent traces.
    `experiment` (default `WORKSHOP_EXPERIMENT`, else found on the spans) and `slos` (default
    `configured_slos()`) feed the insights page."""
    app = FastAPI(title="Workshop trace viewer", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.store = store
    path = _span_file(store)
    idx = Index(path, aliases=aliases) if path else None
    app.state.index = idx
    slo_list = slos if slos is not None else configured_slos()
    experiment = experiment or os.environ.get("WORKSHOP_EXPERIMENT") or None

    def need_index() -> Index:
        if idx is None:
            raise HTTPException(501, detail="this page needs the SQLite span store (the live "
                                            "system's default, --export store)")
        return idx

    def time_range(range_: str, start: str, end: str) -> tuple[float | None, float | None, str]:
        return panels.resolve_range(range_ or panels.DEFAULT_RANGE, start, end)

    def spans_of(raw: str) -> tuple[str, list]:
        tid = _trace_id(raw)
        if tid is None:
            raise HTTPException(422, detail=f"a trace id is 32 hex digits or a UUID, got {raw!r}")
        return tid, store.get_trace(tid)

    def recent(limit: int, errors: bool, min_ms: float) -> list[dict]:
        if idx is not None:              # indexed: no scan of every span
            return idx.search(errors_only=errors, min_duration_ms=min_ms, limit=limit)["traces"]
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
               limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
               range: str = "", service: str = "", operation: str = "", trace: str = "",
               from_: str = Query("", alias="from"), to: str = ""):
        if idx is None:
            return list_page(recent(limit, errors, min_ms), prefix=prefix, errors_only=errors,
                             min_duration_ms=min_ms, limit=limit, source=source)
        lo, hi, label = time_range(range, from_, to)
        if trace and parse_trace_id(trace) is None:
            raise HTTPException(422, detail=f"a trace id is 32 hex digits or a UUID, got {trace!r}")
        result = idx.search(start_ms=lo, end_ms=hi, service=service, operation=operation,
                            errors_only=errors, min_duration_ms=min_ms, trace_id=trace,
                            limit=limit, offset=offset)
        params = {"range": range, "from": from_, "to": to, "service": service,
                  "operation": operation, "errors": 1 if errors else "", "min_ms": min_ms or "",
                  "trace": trace, "limit": limit if limit != 50 else "", "offset": offset}
        return panels.search_page(result, prefix=prefix, params=params,
                                  services=idx.services_and_operations(),
                                  range_label="trace " + trace if trace else label, source=source)

    @app.get(f"{prefix}/performance", response_class=HTMLResponse)
    def performance(range: str = "", from_: str = Query("", alias="from"), to: str = "",
                    sort: str = "p95_ms", dir: str = "desc", service: str = ""):
        ix = need_index()
        lo, hi, label = time_range(range, from_, to)
        if sort not in {k for k, _ in panels.COLUMNS}:
            sort = "p95_ms"
        return panels.performance_page(
            ix.operations(start_ms=lo, end_ms=hi, service=service),
            ix.dependencies(start_ms=lo, end_ms=hi, service=service), prefix=prefix,
            params={"range": range, "from": from_, "to": to, "sort": sort, "dir": dir},
            range_label=label)

    @app.get(f"{prefix}/performance/samples", response_class=HTMLResponse)
    def samples(kind: str = Query("SERVER", pattern="^(SERVER|CLIENT)$"), service: str = "",
                key: str = "", range: str = "", from_: str = Query("", alias="from"),
                to: str = ""):
        ix = need_index()
        lo, hi, label = time_range(range, from_, to)
        found = ix.samples(kind=kind, service=service, key=key, start_ms=lo, end_ms=hi)
        what = f"{service} {key.replace(chr(31), ' · ')}"
        return panels.samples_page(found, prefix=prefix, what=what, range_label=label)

    @app.get(f"{prefix}/metrics", response_class=HTMLResponse)
    def metrics(range: str = "", from_: str = Query("", alias="from"), to: str = "",
                service: str = "", bucket: int | None = Query(None, ge=0)):
        ix = need_index()
        lo, hi, label = time_range(range, from_, to)
        shown = ix.metric_services()
        panels_ = [ix.request_metrics(service=s, start_ms=lo, end_ms=hi) for s in shown]
        panels_ = [m for m in panels_ if m["requests"]]
        exemplars, selected = None, None
        if service and bucket is not None:
            chosen = next((m for m in panels_ if m["service"] == service), None)
            if chosen is not None:
                bounds = chosen["bounds_ms"]
                low = bounds[bucket - 1] if 0 < bucket <= len(bounds) else None
                high = bounds[bucket] if bucket < len(bounds) else None
                exemplars = ix.exemplars(service=service, low_ms=low, high_ms=high,
                                         start_ms=lo, end_ms=hi)
                selected = (service, bucket)
        return panels.metrics_page(panels_, prefix=prefix,
                                   params={"range": range, "from": from_, "to": to},
                                   range_label=label, exemplars=exemplars, selected=selected,
                                   orders=ix.counter_totals(start_ms=lo, end_ms=hi))

    @app.get(f"{prefix}/insights", response_class=HTMLResponse)
    def insights(range: str = "", from_: str = Query("", alias="from"), to: str = ""):
        ix = need_index()
        lo, hi, label = time_range(range, from_, to)
        exp = experiment or next(iter(ix.experiments()), None)
        evaluated = [{**s, **ix.slo(service=s["service"], operation=s["operation"],
                                     objective=s["objective"], latency_ms=s.get("latency_ms"),
                                     start_ms=lo, end_ms=hi)} for s in slo_list]
        return panels.insights_page(
            prefix=prefix, params={"range": range, "from": from_, "to": to}, range_label=label,
            slowest=ix.slowest_operations(start_ms=lo, end_ms=hi),
            error_rates=ix.error_rates(start_ms=lo, end_ms=hi), experiment=exp,
            variants=ix.compare_variants(exp, start_ms=lo, end_ms=hi) if exp else {},
            slos=evaluated, edges=ix.dependency_map(start_ms=lo, end_ms=hi),
            nodes=ix.node_kinds())

    @app.get(f"{prefix}/traces/{{trace_id}}", response_class=HTMLResponse)
    def trace(trace_id: str):
        tid, spans = spans_of(trace_id)
        if not spans:
            return HTMLResponse(not_found_page(tid, prefix=prefix), status_code=404)
        found = _analyse(spans, aliases=aliases)
        extra = ""
        if idx is not None:
            extra = panels.logs_and_exceptions(idx.logs_of(tid), found)
        return trace_page(found, spans, prefix=prefix, extra=extra)

    @app.get(f"{prefix}/traces/{{trace_id}}/otlp.json")
    def otlp(trace_id: str):
        tid, spans = spans_of(trace_id)
        if not spans:
            raise HTTPException(404, detail=f"no span of trace {tid} is stored")
        return JSONResponse(to_otlp_json(spans), headers={
            "Content-Disposition": f'attachment; filename="trace-{tid}.json"'})

    @app.get(f"{prefix}/map", response_class=HTMLResponse)
    def whole_map(limit: int = Query(50, ge=1, le=500)):
        edges, spans, count, notes = _merged_map(store, recent(limit, False, 0.0), aliases)
        return map_page(edges, spans, prefix=prefix, traces=count, notes=notes)

    @app.get(f"{prefix}/api/traces")
    def api_traces(errors: bool = False, min_ms: float = Query(0.0, ge=0),
                   limit: int = Query(50, ge=1, le=500)):
        return recent(limit, errors, min_ms)

    @app.get(f"{prefix}/api/traces/{{trace_id}}/logs")
    def api_logs(trace_id: str):
        tid, _ = spans_of(trace_id)
        return idx.logs_of(tid) if idx is not None else []

    @app.get(f"{prefix}/api/performance")
    def api_performance(range: str = "", from_: str = Query("", alias="from"), to: str = ""):
        ix = need_index()
        lo, hi, _ = time_range(range, from_, to)
        return {"operations": ix.operations(start_ms=lo, end_ms=hi),
                "dependencies": ix.dependencies(start_ms=lo, end_ms=hi)}

    @app.get(f"{prefix}/api/traces/{{trace_id}}")
    def api_trace(trace_id: str, threshold_ms: float = Query(0.0, ge=0),
                  top: int = Query(5, ge=0)):
        tid, spans = spans_of(trace_id)
        if not spans:
            raise HTTPException(404, detail=f"no span of trace {tid} is stored")
        return _analyse(spans, threshold_ms=threshold_ms, top=top, aliases=aliases)

    return app


def _analyse(spans: list, **options: Any) -> dict:
    return analysis.analyse(spans, **options)


def _merged_map(store: Any, summaries: list[dict],
                aliases: Mapping[str, str] | None) -> tuple[list[dict], list, int, list[str]]:
    """One service map for several traces (calls and errors added up per pair), their spans,
    how many traces, and the notes of the maps the analysis could not give."""
    total: dict[tuple[str, str], list[int]] = {}
    spans: list = []
    notes: list[str] = []
    for summary in summaries:
        uniq, parent = analysis.index(store.get_trace(summary["trace_id"]))
        spans.extend(uniq)
        answer = analysis.service_map(uniq, parent, aliases=aliases)
        notes += notes_of(answer)
        for edge in answer:
            pair = total.setdefault((edge["caller"], edge["callee"]), [0, 0])
            pair[0] += edge["calls"]
            pair[1] += edge["errors"]
    edges = [{"caller": a, "callee": b, "calls": c, "errors": e}
             for (a, b), (c, e) in sorted(total.items())]
    return edges, spans, len(summaries), list(dict.fromkeys(notes))
