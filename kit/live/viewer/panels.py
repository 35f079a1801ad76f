"""The viewer's investigation pages, as pure functions of the data they show (the stand-ins for
Application Insights' blades; `kit.live.viewer.index` computes the data):

- `search_page`: transaction search (time range, service, operation, errors only, minimum
  duration, trace id or operation_Id, paging);
- `logs_and_exceptions`: the part of a trace's page below the waterfall: its log lines in time
  order, each linked to its span, and its exceptions with their stack traces;
- `performance_page` / `samples_page`: operations and dependencies over a time range (count,
  failure rate, p50/p95/p99, distribution; sortable), each row drilling into sample traces;
- `metrics_page`: per service request rate, error rate and latency histogram from the metric
  points; a bucket lists the exemplar traces in it;
- `insights_page`: the extensions: E1's questions with their KQL, E2's variants, E3's SLOs and
  E4's dependency map.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from kit.live.viewer.tables import BUCKETS_MS, bucket_label
from kit.live.viewer.pages import _page, trace_table
from kit.traces.service_map import service_map_svg
from kit.traces.style import fmt_ms, legend_html

#: The time range presets (label, milliseconds; None: everything stored).
RANGES: dict[str, tuple[str, float | None]] = {
    "15m": ("last 15 minutes", 15 * 60_000), "30m": ("last 30 minutes", 30 * 60_000),
    "1h": ("last hour", 3600_000), "6h": ("last 6 hours", 6 * 3600_000),
    "24h": ("last 24 hours", 24 * 3600_000), "7d": ("last 7 days", 7 * 24 * 3600_000),
    "all": ("everything stored", None), "custom": ("from / to", None),
}
DEFAULT_RANGE = "24h"



def page(title: str, body: str, prefix: str, *, script: str = "") -> str:
    return _page(title, body, prefix, script=script)


def resolve_range(preset: str, start: str = "", end: str = "",
                  now_ms: float | None = None) -> tuple[float | None, float | None, str]:
    """(start_ms, end_ms, label) of a preset, or of `from`/`to` (ISO local times, e.g. what a
    `datetime-local` input sends) when the preset is `custom` or either is given."""
    now = time.time() * 1000 if now_ms is None else now_ms
    if start or end or preset == "custom":
        lo = _parse_time(start)
        hi = _parse_time(end)
        label = f"{start or '…'} → {end or 'now'}"
        return lo, hi, label
    label, width = RANGES.get(preset, RANGES[DEFAULT_RANGE])
    if preset == "all" or width is None:
        return None, None, label
    return now - width, None, label


def _parse_time(text: str) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp() * 1000
    except ValueError:
        return None


def range_form(action: str, *, preset: str, start: str, end: str, hidden: Mapping[str, Any] = {},
               extra: str = "") -> str:
    options = "".join(f'<option value="{k}"{" selected" if k == preset else ""}>{escape(v[0])}</option>'
                      for k, v in RANGES.items())
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(str(v))}">'
                     for k, v in hidden.items() if v not in (None, ""))
    return (f'<form class="filters card range" method="get" action="{action}" id="range-form">'
            f'<label>time range <select name="range" id="f-range">{options}</select></label>'
            f'<label>from <input type="datetime-local" step="1" name="from" id="f-from" value="{escape(start)}"></label>'
            f'<label>to <input type="datetime-local" step="1" name="to" id="f-to" value="{escape(end)}"></label>'
            f'{extra}{inputs}<button type="submit" id="f-apply">Apply</button></form>')


# -- transaction search ------------------------------------------------------------------------

def search_page(result: Mapping[str, Any], *, prefix: str, params: Mapping[str, Any],
                services: Mapping[str, Sequence[str]], range_label: str, source: str = "") -> str:
    """The transaction search: the filters, the matching traces newest first, paging."""
    p = dict(params)
    svc_options = '<option value="">any service</option>' + "".join(
        f'<option{" selected" if s == p.get("service") else ""}>{escape(s)}</option>' for s in services)
    ops = sorted({o for names in services.values() for o in names})
    datalist = "".join(f'<option value="{escape(o)}">' for o in ops)
    extra = (f'<label>service <select name="service" id="f-service">{svc_options}</select></label>'
             f'<label>operation <input list="ops" name="operation" id="f-operation" '
             f'value="{escape(p.get("operation") or "")}" placeholder="e.g. POST /api/orders">'
             f'<datalist id="ops">{datalist}</datalist></label>'
             f'<label><input type="checkbox" name="errors" value="1" id="f-errors"'
             f'{" checked" if p.get("errors") else ""}> errors only</label>'
             f'<label>min duration <input type="number" min="0" step="any" name="min_ms" '
             f'id="f-min" value="{float(p.get("min_ms") or 0):g}"> ms</label>'
             f'<label>trace id / operation_Id <input name="trace" id="f-trace" size="36" '
             f'value="{escape(p.get("trace") or "")}" placeholder="32 hex digits or a UUID"></label>'
             f'<label>show <input type="number" min="1" max="500" name="limit" value="{int(p.get("limit") or 50)}"> per page</label>')
    form = range_form(f"{prefix}/", preset=p.get("range") or DEFAULT_RANGE, start=p.get("from") or "",
                      end=p.get("to") or "", extra=extra).replace(
        '</form>', f'<span class="muted">{escape(source)}</span></form>')
    traces = result["traces"]
    total, offset, limit = result["total"], int(p.get("offset") or 0), int(p.get("limit") or 50)
    rows = trace_table(traces, prefix, _when_full, "widen the time range, then reload")
    base = {k: v for k, v in p.items() if v not in (None, "", 0, False) and k != "offset"}
    pager = [f'<span id="total-count">{total:,}</span> traces match · showing '
             f'{offset + 1 if traces else 0}–{offset + len(traces)}']
    if offset > 0:
        pager.append(f'<a id="prev" href="{prefix}/?{urlencode({**base, "offset": max(offset - limit, 0)})}">← newer</a>')
    if offset + len(traces) < total:
        pager.append(f'<a id="next" href="{prefix}/?{urlencode({**base, "offset": offset + limit})}">older →</a>')
    title = f"Transaction search · {escape(range_label)}"
    return page("Transaction search", form + f'<div class="card"><h2>{title}</h2>{rows}'
                f'<div class="pager">{" ".join(pager)}</div></div>', prefix)


def _when_full(start_ms: float) -> str:
    return datetime.fromtimestamp(start_ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# -- the trace page's logs and exceptions -------------------------------------------------------

def logs_and_exceptions(logs: Sequence[Mapping[str, Any]], analysis: Mapping[str, Any]) -> str:
    """Two cards: the trace's log lines in time order (each links to its span) and its
    exceptions with their stack traces."""
    names = {r["span_id"]: r for r in analysis.get("timeline", [])}
    t0 = analysis.get("start_ms") or 0
    if logs:
        rows = []
        for line in logs:
            sid = line.get("span_id") or ""
            span = names.get(sid)
            link = (f'<a href="#span={escape(sid)}" class="to-span" data-span-id="{escape(sid)}" '
                    f'onclick="window.selectSpan && window.selectSpan(\'{escape(sid)}\'); '
                    f'return true">{escape(span["name"])}</a>' if span
                    else f'<span class="mono muted">{escape(sid) or "—"}</span>')
            fields = " ".join(f'{escape(k)}={escape(str(v))}' for k, v in line["fields"].items()
                              if k != "exception")
            stack = (f'<pre class="stack">{escape(str(line["fields"]["exception"]))}</pre>'
                     if line["fields"].get("exception") else "")
            rows.append(f'<tr class="log-row {escape(line["level"])}" data-span-id="{escape(sid)}">'
                        f'<td class="mono">+{escape(fmt_ms(line["time_ms"] - t0))}</td>'
                        f'<td>{escape(line["level"])}</td><td>{escape(line["service"])}</td>'
                        f'<td><b>{escape(line["event"])}</b> <span class="mono muted">{fields}</span>{stack}</td>'
                        f'<td>{link}</td></tr>')
        log_html = ('<table><thead><tr><th>at</th><th>level</th><th>service</th><th>event</th>'
                    '<th>span</th></tr></thead><tbody>' + "".join(rows) + '</tbody></table>')
    else:
        log_html = ('<p class="muted" id="no-logs">No log line carries this trace id (the live '
                    'system captures the services\' structlog events; Step 2 puts the ids on '
                    'them).</p>')
    exceptions = []
    for r in analysis.get("timeline", []):
        for ev in r.get("events", []):
            if ev["name"] != "exception":
                continue
            a = ev["attributes"]
            exceptions.append(
                f'<div class="exception" data-span-id="{escape(r["span_id"])}"><b>'
                f'{escape(str(a.get("exception.type", "exception")))}</b>: '
                f'{escape(str(a.get("exception.message", "")))} <span class="muted">in '
                f'{escape(r["service"])} · <a href="#span={escape(r["span_id"])}" '
                f'onclick="window.selectSpan && window.selectSpan(\'{escape(r["span_id"])}\')">'
                f'{escape(r["name"])}</a></span>'
                f'<pre class="stack">{escape(str(a.get("exception.stacktrace", "(no stack trace recorded)")))}</pre></div>')
    exc_html = "".join(exceptions) or '<p class="muted">No exception was recorded.</p>'
    return (f'<div class="layout"><div class="card" style="flex:1;min-width:0" id="logs"><h2>Log lines '
            f'({len(logs)})</h2>{log_html}</div></div>'
            f'<div class="card" id="exceptions"><h2>Exceptions ({len(exceptions)})</h2>{exc_html}</div>')


# -- performance --------------------------------------------------------------------------------

COLUMNS = [("count", "count"), ("failure_rate", "failed"), ("p50_ms", "p50"), ("p95_ms", "p95"),
           ("p99_ms", "p99")]


def _dist(counts: Sequence[int]) -> str:
    top = max(counts or [0]) or 1
    bars = "".join(f'<i style="height:{max(c / top * 22, 1 if c else 0):.0f}px" '
                   f'title="{escape(bucket_label(i))}: {c}"></i>' for i, c in enumerate(counts))
    return f'<span class="dist">{bars}</span>'


def _sorted(rows: list[dict], sort: str, desc: bool) -> list[dict]:
    return sorted(rows, key=lambda r: (r.get(sort) is None, r.get(sort) or 0), reverse=desc)


def performance_page(operations: list[dict], dependencies: list[dict], *, prefix: str,
                     params: Mapping[str, Any], range_label: str) -> str:
    p = dict(params)
    sort, desc = p.get("sort") or "p95_ms", p.get("dir", "desc") != "asc"
    keep = {k: p.get(k) for k in ("range", "from", "to")}

    def head(table: str, first: str) -> str:
        cells = [f"<th>{first}</th>"]
        for key, label in COLUMNS:
            active = key == sort
            nxt = "asc" if active and desc else "desc"
            q = urlencode({k: v for k, v in {**keep, "sort": key, "dir": nxt}.items() if v})
            arrow = (" ↓" if desc else " ↑") if active else ""
            cells.append(f'<th><a href="{prefix}/performance?{q}#{table}" class="sort{" active" if active else ""}" '
                         f'data-sort="{key}">{label}{arrow}</a></th>')
        cells.append("<th>distribution</th><th>samples</th>")
        return "<thead><tr>" + "".join(cells) + "</tr></thead>"

    def figures(r: dict) -> str:
        rate = f'{r["failure_rate"] * 100:.1f}%'
        rate = f'<span class="missed">{rate}</span>' if r["failed"] else rate
        return (f'<td>{r["count"]:,}</td><td>{rate} <span class="muted">({r["failed"]})</span></td>'
                f'<td>{escape(fmt_ms(r["p50_ms"] or 0))}</td><td>{escape(fmt_ms(r["p95_ms"] or 0))}</td>'
                f'<td>{escape(fmt_ms(r["p99_ms"] or 0))}</td><td>{_dist(r["distribution"])}</td>')

    def drill(kind: str, service: str, key: str) -> str:
        q = urlencode({k: v for k, v in {**keep, "kind": kind, "service": service, "key": key}.items() if v})
        return f'<td><a class="drill" href="{prefix}/performance/samples?{q}">samples →</a></td>'

    op_rows = "".join(
        f'<tr class="op-row" data-service="{escape(r["service"])}" data-operation="{escape(r["operation"])}">'
        f'<td>{legend_html([r["service"]])} {escape(r["operation"])}</td>{figures(r)}'
        f'{drill("SERVER", r["service"], r["operation"])}</tr>' for r in _sorted(operations, sort, desc))
    dep_rows = "".join(
        f'<tr class="dep-row" data-target="{escape(r["target"])}" data-caller="{escape(r["caller"])}">'
        f'<td>{legend_html([r["caller"]])} → <b>{escape(r["target"])}</b> <span class="muted">'
        f'{escape(r["type"])}</span><div class="mono">{escape(r["name"])}</div></td>{figures(r)}'
        f'{drill("CLIENT", r["caller"], r["key"])}</tr>' for r in _sorted(dependencies, sort, desc))
    empty = '<tr><td colspan="8" class="muted" id="empty">Nothing in this time range.</td></tr>'
    buckets = ", ".join(bucket_label(i) for i in range(len(BUCKETS_MS) + 1))
    body = (range_form(f"{prefix}/performance", preset=p.get("range") or DEFAULT_RANGE,
                       start=p.get("from") or "", end=p.get("to") or "",
                       hidden={"sort": p.get("sort"), "dir": p.get("dir")})
            + f'<div class="card"><h2>Operations · {escape(range_label)}</h2><p class="muted">'
            f'Each service\'s requests (SERVER spans) by name. Percentiles are nearest-rank; '
            f'the distribution\'s buckets are {escape(buckets)}.</p>'
            f'<table class="sortable" id="operations">{head("operations", "operation")}<tbody>'
            f'{op_rows or empty}</tbody></table></div>'
            f'<div class="card"><h2>Dependencies · {escape(range_label)}</h2><p class="muted">'
            f'Calls out of a service (CLIENT spans): other services, the cache, the database, '
            f'the payment provider.</p>'
            f'<table class="sortable" id="dependencies">{head("dependencies", "dependency")}<tbody>'
            f'{dep_rows or empty}</tbody></table></div>')
    return page("Performance", body, prefix)


def samples_page(samples: Mapping[str, list[dict]], *, prefix: str, what: str,
                 range_label: str) -> str:
    def table(rows: list[dict], ident: str) -> str:
        if not rows:
            return f'<p class="muted" id="{ident}-empty">None in this time range.</p>'
        body = "".join(
            f'<tr class="sample-row" data-trace-id="{escape(r["trace_id"])}"><td class="mono">'
            f'{escape(_when_full(r["start_ms"]))}</td><td><a href="{prefix}/traces/{escape(r["trace_id"])}'
            f'#span={escape(r["span_id"])}">{escape(r["trace_id"])}</a></td>'
            f'<td>{escape(fmt_ms(r["duration_ms"]))}</td><td>{"<span class=badge-err>ERROR</span>" if r["status"] == "ERROR" else escape(r["status"])}</td></tr>'
            for r in rows)
        return (f'<table id="{ident}"><thead><tr><th>time</th><th>trace</th><th>duration</th>'
                f'<th>status</th></tr></thead><tbody>{body}</tbody></table>')
    body = (f'<div class="card"><h2>Sample traces of {escape(what)} · {escape(range_label)}</h2>'
            f'<a href="javascript:history.back()">← back</a></div>'
            f'<div class="layout"><div class="card" style="flex:1"><h2>Slowest</h2>'
            f'{table(samples["slowest"], "slowest")}</div><div class="card" style="flex:1">'
            f'<h2>Failed (latest)</h2>{table(samples["failed"], "failed")}</div></div>')
    return page("Sample traces", body, prefix)


# -- metrics ------------------------------------------------------------------------------------

def metrics_page(panels: list[dict], *, prefix: str, params: Mapping[str, Any], range_label: str,
                 exemplars: list[dict] | None, selected: tuple[str, int] | None,
                 orders: list[dict]) -> str:
    p = dict(params)
    keep = {k: p.get(k) for k in ("range", "from", "to") if p.get(k)}
    cards = []
    for m in panels:
        svc = m["service"]
        bounds, counts = m["bounds_ms"], m["counts"]
        top = max(counts or [0]) or 1
        bars, labels = [], []
        for i, c in enumerate(counts):
            lo = bounds[i - 1] if i > 0 else 0
            hi = bounds[i] if i < len(bounds) else None
            label = f"≤ {fmt_ms(hi)}" if hi is not None else f"> {fmt_ms(lo)}"
            chosen = selected == (svc, i)
            q = urlencode({**keep, "service": svc, "bucket": i})
            bars.append(f'<a class="bucket{" selected" if chosen else ""}" data-bucket="{i}" '
                        f'data-count="{c}" href="{prefix}/metrics?{q}#exemplars" '
                        f'title="{escape(label)}: {c} requests"><small>{c or ""}</small>'
                        f'<span class="bar" style="height:{c / top * 110:.0f}px"></span></a>')
            labels.append(f"<span>{escape(label)}</span>")
        series_top = max([a for a, _ in m["series"]] or [0]) or 1
        spark = "".join(f'<i style="height:{a / series_top * 38:.0f}px" class="{"err" if e else ""}" '
                        f'title="{a} requests, {e} 5xx"></i>' for a, e in m["series"])
        cards.append(
            f'<div class="card metric" data-service="{escape(svc)}"><h2>{legend_html([svc])}</h2>'
            f'<div class="stats"><div class="stat"><span class="muted">requests</span>'
            f'<b class="requests">{m["requests"]:,}</b></div><div class="stat"><span class="muted">'
            f'request rate</span><b class="rate">{_rate(m["rate_per_s"])}</b></div><div class="stat">'
            f'<span class="muted">error rate (5xx)</span><b class="error-rate">{m["error_rate"] * 100:.1f}%</b>'
            f'</div></div><div class="spark" title="requests over the range">{spark}</div>'
            f'<p class="muted" style="margin:6px 0 0">Latency (http.server.request.duration, /health left out): '
            f'click a bucket for the traces of its exemplars.</p>'
            f'<div class="hist">{"".join(bars)}</div><div class="hist-labels">{"".join(labels)}</div></div>')
    if not cards:
        cards.append('<div class="card"><p class="muted" id="empty">No metric point in this time '
                     'range. The live system writes them every 5 s (and at each flush) when the '
                     'services\' Step 1 takes a metric reader.</p></div>')
    ex_html = ""
    if selected is not None:
        svc, i = selected
        rows = "".join(
            f'<tr class="exemplar-row" data-trace-id="{escape(e["trace_id"])}"><td class="mono">'
            f'{escape(_when_full(e["time_ms"]))}</td><td>{escape(fmt_ms(e["value_ms"]))}</td>'
            f'<td>{escape(str(e.get("route") or ""))}</td><td>{e.get("status_code") or ""}</td>'
            f'<td><a href="{prefix}/traces/{escape(e["trace_id"])}{"#span=" + escape(e["span_id"]) if e.get("span_id") else ""}">'
            f'{escape(e["trace_id"])}</a></td></tr>' for e in exemplars or [])
        ex_html = (f'<div class="card" id="exemplars"><h2>Exemplars of {escape(svc)}, bucket '
                   f'{i}</h2>' + (f'<table><thead><tr><th>time</th><th>duration</th><th>route</th>'
                                  f'<th>status</th><th>trace</th></tr></thead><tbody>{rows}</tbody></table>'
                                  if rows else '<p class="muted" id="no-exemplars">No exemplar in this '
                                  'bucket (exemplars are kept for sampled requests, one per bucket '
                                  'per collection).</p>') + '</div>')
    order_rows = "".join(
        f'<tr><td>{escape(", ".join(f"{k}={v}" for k, v in o["attributes"].items()))}</td>'
        f'<td>{o["value"]:g}</td></tr>' for o in orders)
    orders_html = (f'<div class="card" id="orders-processed"><h2>orders.processed</h2><table><tbody>'
                   f'{order_rows}</tbody></table></div>' if orders else "")
    body = (range_form(f"{prefix}/metrics", preset=p.get("range") or DEFAULT_RANGE,
                       start=p.get("from") or "", end=p.get("to") or "")
            + f'<p class="muted">Metrics · {escape(range_label)}</p>' + ex_html + "".join(cards) + orders_html)
    return page("Metrics", body, prefix)


def _rate(per_s: float) -> str:
    if per_s >= 1:
        return f"{per_s:.1f}/s"
    if per_s * 60 >= 1:
        return f"{per_s * 60:.1f}/min"
    return f"{per_s * 3600:.1f}/h"


# -- the extensions -----------------------------------------------------------------------------

KQL = {
    "slowest": """// E1: the slowest operations (requests and internal spans), by p95
union requests, dependencies
| where timestamp > ago(1h) and (itemType == "request" or type == "InProc")
| summarize count = count(), p50 = percentile(duration, 50), p95 = percentile(duration, 95),
            p99 = percentile(duration, 99), max = max(duration) by cloud_RoleName, name
| top 10 by p95 desc""",
    "errors": """// E1: error rate per service (requests that failed)
requests
| where timestamp > ago(1h)
| summarize requests = count(), errors = countif(success == false) by cloud_RoleName
| extend error_rate = todouble(errors) / requests
| order by cloud_RoleName asc""",
    "variants": """// E2: orders per variant of an experiment (the gateway's span attribute)
requests
| where timestamp > ago(1h) and cloud_RoleName == "api-gateway" and name == "POST /api/orders"
| extend variant = tostring(customDimensions["experiment.{experiment}"])
| where isnotempty(variant)
| summarize orders = count(), errors = countif(success == false),
            p50 = percentile(duration, 50), p95 = percentile(duration, 95) by variant""",
    "slo": """// E3: one SLO's SLI and burn rate (good: not failed, and fast enough)
let objective = 0.99; let latency_ms = 500.0;
requests
| where timestamp > ago(1h) and cloud_RoleName == "api-gateway" and name == "POST /api/orders"
| summarize total = count(), good = countif(success == true and duration <= latency_ms)
| extend sli = todouble(good) / total, burn_rate = (1 - todouble(good) / total) / (1 - objective)""",
    "map": """// E4: the dependency map across traces, latency per edge
dependencies
| where timestamp > ago(1h)
| summarize calls = count(), errors = countif(success == false),
            p50 = percentile(duration, 50), p95 = percentile(duration, 95)
            by caller = cloud_RoleName, callee = target
| order by caller asc, callee asc""",
}


def _kql(key: str, **fmt: str) -> str:
    text = KQL[key]
    for k, v in fmt.items():
        text = text.replace("{" + k + "}", v)
    return f'<details><summary>KQL for Application Insights</summary><pre class="kql" id="kql-{key}">{escape(text)}</pre></details>'


def _stand_ins(nodes: Mapping[str, str]) -> list:
    """One span per node, so the map draws services and databases as such (not "outside")."""
    from kit.traces.model import Span

    out = []
    services = sorted(n for n, k in nodes.items() if k == "service")
    for i, (name, kind) in enumerate(sorted(nodes.items())):
        if kind == "database" and services:   # a call from a service that is drawn anyway
            out.append(Span(trace_id=f"{i:032x}", span_id=f"{i:016x}", name=name,
                            service=services[0],
                            kind="CLIENT", start_ms=0.0, duration_ms=0.0,
                            attributes={"db.system": name}))
        elif kind == "service":
            out.append(Span(trace_id=f"{i:032x}", span_id=f"{i:016x}", name=name, service=name,
                            kind="SERVER", start_ms=0.0, duration_ms=0.0))
    return out


def insights_page(*, prefix: str, params: Mapping[str, Any], range_label: str,
                  slowest: list[dict], error_rates: list[dict], experiment: str | None,
                  variants: Mapping[str, dict], slos: list[dict], edges: list[dict],
                  nodes: Mapping[str, str] | None = None) -> str:
    p = dict(params)
    slow_rows = "".join(
        f'<tr><td>{escape(r["service"])}</td><td>{escape(r["operation"])}</td><td>{r["count"]:,}</td>'
        f'<td>{escape(fmt_ms(r["p50_ms"]))}</td><td>{escape(fmt_ms(r["p95_ms"]))}</td>'
        f'<td>{escape(fmt_ms(r["p99_ms"]))}</td><td>{escape(fmt_ms(r["max_ms"]))}</td></tr>' for r in slowest)
    err_rows = "".join(
        f'<tr><td>{escape(r["service"])}</td><td>{r["requests"]:,}</td><td>{r["errors"]:,}</td>'
        f'<td>{r["error_rate"] * 100:.1f}%</td></tr>' for r in error_rates)
    e1 = (f'<div class="card" id="e1"><h2>E1 · Trace analytics</h2>'
          f'<h3>Which operations are slowest?</h3><table id="slowest"><thead><tr><th>service</th>'
          f'<th>operation</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>'
          f'</thead><tbody>{slow_rows}</tbody></table>{_kql("slowest")}'
          f'<h3>What share of each service\'s requests fail?</h3><table id="error-rates"><thead><tr>'
          f'<th>service</th><th>requests</th><th>errors</th><th>error rate</th></tr></thead>'
          f'<tbody>{err_rows}</tbody></table>{_kql("errors")}</div>')
    if experiment:
        var_rows = "".join(
            f'<tr class="variant-row" data-variant="{escape(v)}"><td><b>{escape(v)}</b></td>'
            f'<td>{r["orders"]:,}</td><td>{r["errors"]:,}</td><td>{r["error_rate"] * 100:.1f}%</td>'
            f'<td>{escape(fmt_ms(r["p50_ms"] or 0))}</td><td>{escape(fmt_ms(r["p95_ms"] or 0))}</td></tr>'
            for v, r in variants.items())
        e2 = (f'<div class="card" id="e2"><h2>E2 · Experiment <code>{escape(experiment)}</code></h2>'
              f'<p class="muted">The gateway\'s POST /api/orders requests per variant '
              f'(<code>experiment.{escape(experiment)}</code>).</p>'
              + (f'<table id="variants"><thead><tr><th>variant</th><th>orders</th><th>errors</th>'
                 f'<th>error rate</th><th>p50</th><th>p95</th></tr></thead><tbody>{var_rows}</tbody></table>'
                 if var_rows else '<p class="muted" id="no-variants">No tagged order in this range.</p>')
              + _kql("variants", experiment=experiment) + '</div>')
    else:
        e2 = ('<div class="card" id="e2"><h2>E2 · Experiments</h2><p class="muted" id="no-experiment">'
              'No experiment is configured: start the live system with <code>--experiment '
              'checkout-v2</code> (the gateway\'s <code>WORKSHOP_EXPERIMENT</code>).</p></div>')
    slo_rows = "".join(
        f'<tr class="slo-row" data-slo="{escape(s["name"])}"><td><b>{escape(s["name"])}</b><div class="muted">'
        f'{escape(s["service"])} · {escape(s["operation"])}'
        f'{" · ≤ " + escape(fmt_ms(s["latency_ms"])) if s.get("latency_ms") is not None else " · availability"}</div></td>'
        f'<td>{s["total"]:,}</td><td>{s["good"]:,}</td><td>{s["sli"] * 100:.2f}%</td>'
        f'<td>{s["objective"] * 100:g}%</td><td class="{"met" if s["met"] else "missed"}">{"met" if s["met"] else "missed"}</td>'
        f'<td>{s["error_budget_remaining"] * 100:.0f}%</td><td>{s["burn_rate"]:.2f}</td></tr>' for s in slos)
    e3 = (f'<div class="card" id="e3"><h2>E3 · SLOs</h2><p class="muted">Set them with '
          f'<code>WORKSHOP_LIVE_SLOS</code> (JSON: name, service, operation, objective, latency_ms).</p>'
          f'<table id="slos"><thead><tr><th>SLO</th><th>events</th><th>good</th><th>SLI</th>'
          f'<th>objective</th><th></th><th>error budget left</th><th>burn rate</th></tr></thead>'
          f'<tbody>{slo_rows}</tbody></table>{_kql("slo")}</div>')
    edge_rows = "".join(
        f'<tr class="edge-row" data-caller="{escape(e["caller"])}" data-callee="{escape(e["callee"])}">'
        f'<td>{escape(e["caller"])}</td><td>{escape(e["callee"])}</td><td>{e["calls"]:,}</td>'
        f'<td>{e["errors"]:,}</td><td>{escape(fmt_ms(e["p50_ms"] or 0))}</td>'
        f'<td>{escape(fmt_ms(e["p95_ms"] or 0))}</td></tr>' for e in edges)
    svg = service_map_svg(_stand_ins(nodes or {}), edges=[{"caller": e["caller"], "callee": e["callee"],
                                      "calls": e["calls"], "errors": e["errors"]} for e in edges],
                          title="Dependency map across traces") if edges else ""
    e4 = (f'<div class="card" id="e4"><h2>E4 · Dependency map across traces</h2>'
          f'<div id="dependency-map">{svg}</div><table id="edges"><thead><tr><th>caller</th>'
          f'<th>callee</th><th>calls</th><th>errors</th><th>p50</th><th>p95</th></tr></thead>'
          f'<tbody>{edge_rows}</tbody></table>{_kql("map")}</div>')
    body = (range_form(f"{prefix}/insights", preset=p.get("range") or DEFAULT_RANGE,
                       start=p.get("from") or "", end=p.get("to") or "")
            + f'<p class="muted">The extensions over the stored traces · {escape(range_label)} '
              f'(computed by the kit, whatever state your extension files are in).</p>'
            + e1 + e2 + e3 + e4)
    return page("Insights", body, prefix)
