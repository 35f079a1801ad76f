"""The viewer's HTML pages, as pure functions of the data they show.

- `list_page(summaries, ...)`: recent traces, newest first, with the filters (errors only,
  minimum duration, how many);
- `trace_page(analysis, ...)`: one trace: summary, waterfall (coloured by service, critical
  path marked, errors marked), the clicked span's attributes and events, the critical path,
  the bottlenecks and the service map;
- `map_page(edges, ...)`: the service map of the recent traces together.

The span details are filled in by a few lines of JavaScript from the trace's JSON, embedded in
the page; everything else is plain HTML that reads without JavaScript.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from kit.traces.style import FMT_MS_JS, colour_of, fmt_ms, legend_html
from kit.traces.service_map import service_map_svg
from kit.traces.waterfall import waterfall_svg

CSS = """
*{box-sizing:border-box} body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;
color:#222;background:#f6f7f9} header{background:#1f2d3d;color:#fff;padding:10px 20px;display:flex;
gap:20px;align-items:center} header a{color:#cfe3ff;text-decoration:none} header h1{font-size:17px;
margin:0;font-weight:600} main{padding:16px 20px} .muted{color:#777} .card{background:#fff;
border:1px solid #dde1e6;border-radius:6px;padding:12px 14px;margin-bottom:14px}
h2{font-size:15px;margin:0 0 8px} table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef1;vertical-align:top}
th{font-weight:600;color:#555;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
tr.trace-row:hover{background:#f0f5ff} a{color:#1f5fbf} code,.mono{font-family:ui-monospace,
SFMono-Regular,Menlo,monospace;font-size:12px} .chip{display:inline-block;color:#fff;
border-radius:10px;padding:1px 8px;margin:1px 3px 1px 0;font-size:12px} .badge-err{background:#e15759;
color:#fff;border-radius:10px;padding:1px 8px;font-size:12px} form.filters{display:flex;gap:16px;
align-items:center;flex-wrap:wrap} form.filters input[type=number]{width:90px}
.stats{display:flex;gap:26px;flex-wrap:wrap} .stat b{display:block;font-size:18px}
.layout{display:flex;gap:14px;align-items:flex-start} .layout>.wf{flex:1 1 auto;min-width:0}
.layout>#details{flex:0 0 380px;position:sticky;top:10px;max-height:92vh;overflow:auto}
.waterfall g.span{cursor:pointer} .waterfall g.span:hover rect.bar{opacity:.75}
.waterfall g.span.selected rect.bar{stroke:#1f5fbf;stroke-width:3} .waterfall g.span.selected text{
fill:#1f5fbf} .dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px}
#details table.kv th{text-transform:none;letter-spacing:0;font-size:12px;color:#444;
white-space:nowrap;width:1%} #details pre{white-space:pre-wrap;word-break:break-word;background:#f6f7f9;padding:6px;
font-size:11px;max-height:260px;overflow:auto} #details td{word-break:break-word}
#details .event{border-left:3px solid #b8860b;padding-left:8px;margin:8px 0}
#details .event.exception{border-color:#e15759} .button{display:inline-block;background:#1f5fbf;
color:#fff;border-radius:4px;padding:5px 12px;text-decoration:none} .service-map{max-width:100%}
"""

EXTRA_CSS = """
.range{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.pager{display:flex;gap:14px;align-items:center;margin-top:8px}
table.sortable th a{color:#555;text-decoration:none} table.sortable th a.active{color:#1f5fbf}
.dist{display:inline-flex;align-items:flex-end;gap:1px;height:22px;vertical-align:middle}
.dist i{display:inline-block;width:6px;background:#4e79a7}
.hist{display:flex;align-items:flex-end;gap:3px;height:140px;margin:8px 0 2px}
.hist a.bucket{display:flex;flex-direction:column;justify-content:flex-end;align-items:center;
flex:1;height:100%;text-decoration:none;color:#555;font-size:10px}
.hist a.bucket span.bar{display:block;width:100%;background:#4e79a7;min-height:1px}
.hist a.bucket.selected span.bar{background:#f28e2b} .hist a.bucket:hover span.bar{opacity:.75}
.hist-labels{display:flex;gap:3px} .hist-labels span{flex:1;font-size:10px;color:#777;
text-align:center;overflow:hidden;white-space:nowrap}
.log-row.error td,.log-row.critical td{background:#fdecec} .log-row.warning td{background:#fff7e6}
.kql{background:#f6f7f9;border-left:3px solid #1f5fbf;padding:6px 8px;font-size:12px;
white-space:pre-wrap;margin:4px 0 10px} .met{color:#2e7d32;font-weight:600}
.missed{color:#e15759;font-weight:600} pre.stack{white-space:pre-wrap;background:#fff3f3;
padding:8px;font-size:11px;border-left:3px solid #e15759;max-height:300px;overflow:auto}
.spark{display:flex;align-items:flex-end;gap:1px;height:40px}
.spark i{flex:1;background:#59a14f;min-height:1px} .spark i.err{background:#e15759}
"""
CSS += EXTRA_CSS

SCRIPT = """
(function(){
  const data = JSON.parse(document.getElementById('trace-data').textContent);
  const byId = {}; data.timeline.forEach(s => byId[s.span_id] = s);
  const panel = document.getElementById('details');
  const fmt = __FMT_MS__;
  function el(tag, attrs, text){ const e = document.createElement(tag);
    Object.entries(attrs||{}).forEach(([k,v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text; return e; }
  function table(pairs){ const t = el('table', {'class':'kv'});
    pairs.forEach(([k,v]) => { const tr = el('tr'); tr.appendChild(el('th', {}, k));
      const td = el('td', {'class':'mono'});
      if (typeof v === 'string' && v.indexOf('\\n') >= 0) td.appendChild(el('pre', {}, v));
      else td.textContent = Array.isArray(v) ? JSON.stringify(v) : String(v);
      tr.appendChild(td); t.appendChild(tr); }); return t; }
  function select(id){
    const s = byId[id]; if (!s) return;
    document.querySelectorAll('g.span.selected').forEach(r => r.classList.remove('selected'));
    const row = document.querySelector('g.span[data-span-id="'+id+'"]');
    if (row) row.classList.add('selected');
    panel.innerHTML = '';
    panel.setAttribute('data-span-id', id);
    panel.appendChild(el('h2', {'class':'span-title'}, s.name));
    const chips = el('div');
    const svc = el('span', {'class':'chip', 'style':'background:'+(data.colours[s.service]||'#888')}, s.service);
    chips.appendChild(svc); chips.appendChild(el('span', {'class':'chip', 'style':'background:#666'}, s.kind));
    if (s.status === 'ERROR') chips.appendChild(el('span', {'class':'badge-err'}, 'ERROR'));
    panel.appendChild(chips);
    const crit = s.critical.reduce((a, c) => a + (c[1]-c[0]), 0);
    const facts = [['span id', s.span_id], ['parent', s.parent_span_id || '(root)'],
      ['starts at', '+'+fmt(s.offset_ms)], ['duration', fmt(s.duration_ms)],
      ['self time', fmt(s.self_time_ms)], ['on critical path', crit > 0 ? fmt(crit) : 'no'],
      ['status', s.status + (s.status_description ? ': '+s.status_description : '')]];
    panel.appendChild(table(facts));
    panel.appendChild(el('h2', {}, 'Attributes'));
    const keys = Object.keys(s.attributes).sort();
    if (keys.length) panel.appendChild(table(keys.map(k => [k, s.attributes[k]])));
    else panel.appendChild(el('p', {'class':'muted'}, 'none'));
    panel.appendChild(el('h2', {}, 'Events'));
    if (!s.events.length) panel.appendChild(el('p', {'class':'muted'}, 'none'));
    s.events.forEach(ev => { const box = el('div', {'class':'event'+(ev.name==='exception'?' exception':'')});
      box.appendChild(el('b', {}, ev.name));
      const ks = Object.keys(ev.attributes);
      if (ks.length) box.appendChild(table(ks.map(k => [k, ev.attributes[k]])));
      panel.appendChild(box); });
    if (history.replaceState) history.replaceState(null, '', '#span='+id);
  }
  document.querySelectorAll('g.span[data-span-id]').forEach(r =>
    r.addEventListener('click', () => select(r.getAttribute('data-span-id'))));
  const m = location.hash.match(/^#span=([0-9a-f]+)/);
  if (m) select(m[1]);
  window.addEventListener('hashchange', () => {
    const h = location.hash.match(/^#span=([0-9a-f]+)/); if (h) select(h[1]); });
  window.selectSpan = select;
})();
""".replace("__FMT_MS__", FMT_MS_JS)


def _page(title: str, body: str, prefix: str, *, script: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)}</title><style>{CSS}</style></head><body>'
            f'<header><h1>Workshop trace viewer</h1><a href="{prefix}/">Traces</a>'
            f'<a href="{prefix}/map">Service map</a><a href="{prefix}/performance">Performance</a>'
            f'<a href="{prefix}/metrics">Metrics</a><a href="{prefix}/insights">Insights</a>'
            f'</header><main>{body}</main>'
            f'{script}</body></html>')


def _when(start_ms: float) -> str:
    return datetime.fromtimestamp(start_ms / 1000).strftime("%H:%M:%S.%f")[:-3]


def trace_table(summaries: Sequence[Mapping[str, Any]], prefix: str, when, advice: str) -> str:
    """A list of traces as a table (`trace_row` each), or a note saying how to get some."""
    if not summaries:
        return ('<p class="muted" id="empty">No traces match. Send an order '
                f'(<code>python scripts/step7_trace_test.py</code>), {advice}.</p>')
    return ('<table id="traces"><thead><tr><th>time</th><th>root span</th><th>duration</th>'
            '<th>spans</th><th>services</th><th>errors</th></tr></thead><tbody>'
            + "".join(trace_row(s, prefix, when) for s in summaries) + "</tbody></table>")


def trace_row(s: Mapping[str, Any], prefix: str, when) -> str:
    """One trace in a list of traces: its time (`when(start_ms)`), root span, duration, span count,
    services and errors, linked to its page."""
    tid = escape(s["trace_id"])
    errors = (f'<span class="badge-err">{s["error_count"]} error'
              f'{"s" if s["error_count"] != 1 else ""}</span>' if s["error_count"] else "")
    return (f'<tr class="trace-row" data-trace-id="{tid}">'
            f'<td class="mono">{escape(when(s["start_ms"]))}</td>'
            f'<td><a href="{prefix}/traces/{tid}">{escape(s["root_service"] or "")}: '
            f'{escape(s["root_name"] or "")}</a><div class="mono muted">{tid}</div></td>'
            f'<td>{escape(fmt_ms(s["duration_ms"]))}</td><td>{s["span_count"]}</td>'
            f'<td>{legend_html(s["services"])}</td><td>{errors}</td></tr>')


def list_page(summaries: Sequence[Mapping[str, Any]], *, prefix: str, errors_only: bool,
              min_duration_ms: float, limit: int, source: str = "") -> str:
    """Recent traces, newest first, with the filter form."""
    form = (f'<form class="filters card" method="get" action="{prefix}/">'
            f'<label><input type="checkbox" name="errors" value="1" id="f-errors"'
            f'{" checked" if errors_only else ""}> errors only</label>'
            f'<label>min duration <input type="number" min="0" step="any" name="min_ms" '
            f'id="f-min" value="{min_duration_ms:g}"> ms</label>'
            f'<label>show <input type="number" min="1" max="500" name="limit" value="{limit}"> '
            f'traces</label><button type="submit">Filter</button>'
            f'<span class="muted">{escape(source)}</span></form>')
    rows = trace_table(summaries, prefix, _when, "then reload")
    return _page("Traces", form + f'<div class="card"><h2>Recent traces</h2>{rows}</div>', prefix)


def trace_page(analysis: Mapping[str, Any], spans: Sequence[Any], *, prefix: str,
               extra: str = "") -> str:
    """One trace: summary, waterfall with span details on click, critical path, bottlenecks,
    service map."""
    tid = escape(analysis["trace_id"])
    errors = analysis["error_count"]
    stats = (f'<div class="card"><div class="stats">'
             f'<div class="stat"><span class="muted">trace</span><b class="mono" id="trace-id">{tid}</b></div>'
             f'<div class="stat"><span class="muted">duration</span><b id="total">{escape(fmt_ms(analysis["total_duration_ms"]))}</b></div>'
             f'<div class="stat"><span class="muted">services</span><b>{analysis["service_count"]}</b></div>'
             f'<div class="stat"><span class="muted">spans</span><b id="span-count">{analysis["span_count"]}</b></div>'
             f'<div class="stat"><span class="muted">errors</span><b style="color:{"#e15759" if errors else "inherit"}">{errors}</b></div>'
             f'<div class="stat"><a class="button" id="download" download="trace-{tid}.json" '
             f'href="{prefix}/traces/{tid}/otlp.json">Download OTLP JSON</a></div></div>'
             f'<div style="margin-top:8px">{legend_html(analysis["services"])}</div></div>')
    notes = list(analysis.get("notes") or ())
    if notes:      # the learner release's analysis, before Step 5 is done: what to finish
        stats += ('<div class="card" id="notes">'
                  + "".join(f'<p class="muted note">{escape(n)}</p>' for n in notes) + '</div>')
    details = '<aside class="card" id="details"><p class="muted">Click a span.</p></aside>'
    waterfall = (f'<div class="layout"><div class="card wf" id="waterfall"><p class="muted" style="margin:0 0 4px">Click a span for '
                 f'its attributes and events.</p>'
                 f'{waterfall_svg(spans, critical_path=analysis["critical_path"])}'
                 f'</div>{details}</div>')
    path_rows = "".join(
        f'<tr><td><span class="dot" style="background:{colour_of(p["service"], analysis["services"])}"></span>'
        f'{escape(p["service"])}</td><td>{escape(p["name"])}</td>'
        f'<td>+{escape(fmt_ms(p["start_ms"] - analysis["start_ms"]))}</td>'
        f'<td>{escape(fmt_ms(p["duration_ms"]))}</td></tr>' for p in analysis["critical_path"])
    bottleneck_rows = "".join(
        f'<tr><td>{escape(b["service"])}</td><td>{escape(b["operation"])}</td>'
        f'<td>{escape(fmt_ms(b["self_time_ms"]))}</td><td>{escape(fmt_ms(b["duration_ms"]))}</td>'
        f'<td>{b["percentage_of_total"]:.1f}%</td></tr>' for b in analysis["bottlenecks"])
    tables = (f'<div class="layout"><div class="card" style="flex:1" id="critical-path">'
              f'<h2>Critical path</h2><table><thead><tr><th>service</th><th>span</th>'
              f'<th>from</th><th>for</th></tr></thead><tbody>{path_rows}</tbody></table></div>'
              f'<div class="card" style="flex:1" id="bottlenecks"><h2>Bottlenecks (self time)</h2>'
              f'<table><thead><tr><th>service</th><th>span</th><th>self</th><th>duration</th>'
              f'<th>of total</th></tr></thead><tbody>{bottleneck_rows}</tbody></table></div></div>')
    svg = service_map_svg(spans, edges=analysis["service_map"])
    service_map = f'<div class="card" id="service-map">{svg}</div>'
    payload = dict(analysis)
    payload["colours"] = {s: colour_of(s, analysis["services"]) for s in analysis["services"]}
    data = json.dumps(payload, default=str).replace("</", "<\\/")
    script = (f'<script type="application/json" id="trace-data">{data}</script>'
              f'<script>{SCRIPT}</script>')
    return _page(f"Trace {analysis['trace_id']}", stats + waterfall + extra + tables + service_map,
                 prefix, script=script)


def not_found_page(trace_id: str, *, prefix: str) -> str:
    return _page("Trace not found", f'<div class="card"><h2>No span of trace '
                 f'<code>{escape(trace_id)}</code> is stored (yet).</h2><p class="muted">Spans '
                 f'are exported in batches, every few seconds: reload in a moment. '
                 f'<a href="{prefix}/">All traces</a></p></div>', prefix)


def map_page(edges: Sequence[Mapping[str, Any]], spans: Sequence[Any], *, prefix: str,
             traces: int, notes: Sequence[str] = ()) -> str:
    """The service map of the latest traces together (`notes`: what the analysis could not give)."""
    rows = "".join(f'<tr><td>{escape(e["caller"])}</td><td>{escape(e["callee"])}</td>'
                   f'<td>{e["calls"]}</td><td>{e["errors"]}</td></tr>' for e in edges)
    body = (f'<div class="card" id="service-map">'
            f'{service_map_svg(spans, edges=edges, title=f"Service map of the last {traces} traces", notes=notes)}</div><div class="card"><table><thead><tr>'
            f'<th>caller</th><th>callee</th><th>calls</th><th>errors</th></tr></thead>'
            f'<tbody>{rows}</tbody></table></div>')
    return _page("Service map", body, prefix)
