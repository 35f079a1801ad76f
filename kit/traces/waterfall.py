"""A trace as pictures: an SVG waterfall timeline and an SVG service map.

    svg = waterfall_svg(spans)        # rows = spans in tree order, bars on a time axis (ms)
    svg = service_map_svg(spans)      # services, databases and outside APIs, calls and errors

Both are pure functions of a list of spans: the SDK's finished spans (`ReadableSpan`, as an
`InMemorySpanExporter` returns them) or anything shaped like the provided `SpanRecord`
(`trace_id`, `span_id`, `parent_span_id`, `name`, `service`, `kind`, `start_ms`,
`duration_ms`, `status`, `attributes`, `events`), the same duck-typing as `kit.traces.text`.
They never import the learner's code: the pictures work before Step 5 is done, and show what
the kit itself computes (the learner's own critical path can be passed in to compare).

How to read the waterfall:

- one row per span, children under their parent (indented), in start order; each trace in
  the list is its own group, on one shared time axis;
- the bar's colour is the span's service (legend at the top); its length is its duration;
- a red outline and a ✗ mark an `ERROR` span; a red diamond on the bar is an `exception`
  event (hover for its type and message); a span whose parent was not exported is marked ⤴;
- the dark stripe through the bars is the **critical path** (Jaeger's definition, as in the
  contract's Step 5): the chain of work the request was waiting for; its spans' names are bold;
- every bar has a tooltip (hover) with the span's service, kind, duration and attributes.

The service map draws one node per service (coloured as in the waterfall), per database or
cache (`db.system`) and per outside host (`server.address` / `peer.service`), left to right
in call order, and one arrow per caller -> callee pair labelled with its calls and errors
(the arrow is red when a call failed).
"""
from __future__ import annotations

import math
from collections import defaultdict
from html import escape
from typing import Any, Iterable, Mapping, Sequence

from kit import analysis
from kit.traces.model import SpanView, views

__all__ = ["waterfall_svg", "service_map_svg", "critical_path", "service_dependencies",
           "service_colour", "FONT"]

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"

#: Fixed colours for our five services; anything else takes the next free one.
_KNOWN = {"api-gateway": "#4e79a7", "auth-service": "#f28e2b", "order-service": "#59a14f",
          "inventory-service": "#b07aa1", "payment-service": "#edc948"}
_SPARE = ("#76b7b2", "#9c755f", "#ff9da7", "#86bcb6", "#a0cbe8", "#bab0ac", "#d4a6c8", "#8cd17d")
_ERROR = "#d62728"
_CRITICAL = "#1f1f1f"
_GRID = "#e3e3e3"
_MUTED = "#6b6b6b"

# Waterfall geometry (px).
_WIDTH = 1000
_NAME_X = 128             # the span name column starts here (the service column before it)
_CHART_X = 400            # the time axis runs from here ...
_CHART_RIGHT = 920        # ... to here; durations are written in the margin after it
_ROW = 22
_BAR = 12
_INDENT = 12
_MAX_ROWS = 200
_ORPHAN = "\n⤴ its parent span is not among these spans (it came from outside, or was not exported)"


def _by_trace(spans: list[SpanView]) -> list[list[SpanView]]:
    groups: dict[str, list[SpanView]] = defaultdict(list)
    for s in spans:
        groups[s.trace_id].append(s)
    return sorted(groups.values(), key=lambda g: g[0].start)


def _children(trace: list[SpanView]) -> tuple[list[SpanView], dict[str, list[SpanView]]]:
    """Roots (parent not among the spans) and children by parent id, all in start order."""
    ids = {s.span_id for s in trace}
    kids: dict[str, list[SpanView]] = defaultdict(list)
    roots = []
    for s in trace:
        if s.parent_id in ids and s.parent_id != s.span_id:
            kids[s.parent_id].append(s)
        else:
            roots.append(s)
    return roots, kids


def _tree_order(trace: list[SpanView]) -> list[tuple[SpanView, int]]:
    """Every span with its depth, parents before children (a depth-first walk)."""
    roots, kids = _children(trace)
    out, seen = [], set()
    stack = [(r, 0) for r in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:        # a cycle of parent links: draw each span once
            continue
        seen.add(span.span_id)
        out.append((span, depth))
        stack.extend((k, depth + 1) for k in reversed(kids.get(span.span_id, ())))
    out.extend((s, 0) for s in trace if s.span_id not in seen)
    return out


# -- the analyses the pictures show: the kit's own (kit.traces.analysis), never the learner's --------

def _records(trace: list[SpanView]) -> list[analysis.Span]:
    return [analysis.Span(trace_id=s.trace_id, span_id=s.span_id, parent_span_id=s.parent_id, name=s.name,
                          service=s.service, kind=s.kind, status=s.status, start_ms=s.start,
                          duration_ms=s.end - s.start, attributes=s.attributes) for s in trace]


def _trace_critical_path(trace: list[SpanView]) -> list[dict]:
    return analysis.critical_path(*analysis.index(_records(trace)))


def critical_path(spans: Iterable[Any]) -> list[dict]:
    """The critical path of each trace in `spans`, as the contract's Step 5 defines it: segments
    `{"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}` in time order."""
    return [seg for trace in _by_trace(views(spans)) for seg in _trace_critical_path(trace)]


def _dependencies(spans: list[SpanView]) -> tuple[list[dict], dict[str, str]]:
    """The caller -> callee edges of every trace, added up, and each node's kind."""
    edges: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for trace in _by_trace(spans):
        for e in analysis.service_map(*analysis.index(_records(trace))):
            edge = edges[(e["caller"], e["callee"])]
            edge[0] += e["calls"]
            edge[1] += e["errors"]
    kinds = {str(s.attributes["db.system"]): "database" for s in spans
             if s.kind == "CLIENT" and s.attributes.get("db.system")}
    kinds.update((s.service, "service") for s in spans)
    return ([{"caller": a, "callee": b, "calls": c, "errors": e}
             for (a, b), (c, e) in sorted(edges.items())], kinds)


def service_dependencies(spans: Iterable[Any]) -> list[dict]:
    """Caller -> callee edges `{"caller", "callee", "calls", "errors"}`, as the contract's
    Step 5 defines them, sorted by caller then callee."""
    return _dependencies(views(spans))[0]


# -- drawing helpers ---------------------------------------------------------------------------

def service_colour(service: str, order: Sequence[str] = ()) -> str:
    """The colour of `service`: fixed for ours, the next spare one (by `order`) for others."""
    if service in _KNOWN:
        return _KNOWN[service]
    others = [s for s in order if s not in _KNOWN]
    index = others.index(service) if service in others else sum(map(ord, service))
    return _SPARE[index % len(_SPARE)]


def _shade(colour: str, factor: float) -> str:
    """Darker (factor < 1) or lighter (factor > 1, towards white) version of a #rrggbb colour."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    if factor <= 1:
        r, g, b = (int(c * factor) for c in (r, g, b))
    else:
        t = min(factor - 1, 1)
        r, g, b = (int(c + (255 - c) * t) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _fit(text: str, width_px: float, size: float) -> str:
    """Cut `text` with an ellipsis so it takes about `width_px` at font size `size`."""
    room = max(int(width_px / (size * 0.58)), 1)
    return text if len(text) <= room else text[:max(room - 1, 0)] + "…"


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def _ticks(total: float) -> tuple[float, list[float]]:
    total = max(total, 1e-3)
    raw = total / 6
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return step, [i * step for i in range(int(total / step + 1e-9) + 1)]


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f} ms"


def _detail(s: SpanView) -> str:
    """A short hint after the span name: what a CLIENT span called, or its statement."""
    a = s.attributes
    if a.get("db.statement") or a.get("db.query.text"):
        return str(a.get("db.statement") or a.get("db.query.text"))
    if s.kind == "CLIENT" and (a.get("url.full") or a.get("server.address")):
        url = str(a.get("url.full") or a.get("server.address"))
        return url.split("://", 1)[-1]
    return ""


def _tooltip(s: SpanView) -> str:
    lines = [f"{s.service}: {s.name} [{s.kind}]", f"duration {_ms(s.end - s.start)}",
             f"status {s.status}" + (f": {s.description}" if s.description else "")]
    lines += [f"{k} = {v}" for k, v in list(s.attributes.items())[:14]]
    return "\n".join(lines)


def _exception_text(attrs: Mapping[str, Any]) -> str:
    kind, message = attrs.get("exception.type", "exception"), attrs.get("exception.message", "")
    return f"exception {kind}: {message}" if message else f"exception {kind}"


# -- the waterfall -----------------------------------------------------------------------------

def waterfall_svg(spans: Iterable[Any], *, critical_path: Iterable[Mapping[str, Any]] | None = None,
                  title: str | None = None, max_rows: int = _MAX_ROWS) -> str:
    """The spans as an SVG waterfall timeline (a string holding one `<svg>` element).

    `critical_path`: segments to highlight instead of the kit's own (e.g. what the learner's
    `calculate_critical_path` returned: dicts with `span_id`, `start_ms`, `end_ms`).
    Rows carry `class="span"` plus `critical` (on the critical path), `error` (status ERROR) and
    `orphan` (parent not among the spans), and `data-span-id`, so tests can read the picture.
    """
    all_spans = views(spans)
    if not all_spans:
        return _empty_svg(title or "No spans", "No spans were exported: nothing to draw yet.")
    traces = _by_trace(all_spans)
    if critical_path is None:
        path = [seg for trace in traces for seg in _trace_critical_path(trace)]
    else:
        path = [dict(seg) for seg in critical_path]
    on_path: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for seg in path:
        on_path[str(seg["span_id"])].append((float(seg["start_ms"]), float(seg["end_ms"])))
    services = list(dict.fromkeys(s.service for s in all_spans))
    t0 = min(s.start for s in all_spans)
    total = max(s.end for s in all_spans) - t0
    step, ticks = _ticks(total)
    scale_end = max(ticks[-1], total) or 1.0
    chart_w = _CHART_RIGHT - _CHART_X

    def x_of(t: float) -> float:
        return _CHART_X + (t - t0) / scale_end * chart_w

    rows: list[tuple[str, Any, int]] = []       # ("trace", trace, 0) or ("span", span, depth)
    for trace in traces:
        if len(traces) > 1:
            rows.append(("trace", trace, 0))
        rows.extend(("span", s, d) for s, d in _tree_order(trace))
    hidden = max(len(rows) - max_rows, 0)
    rows = rows[:max_rows]

    top = 78                                       # title, legend, axis labels
    height = top + len(rows) * _ROW + (24 if hidden else 0) + 14
    errors = sum(s.status == "ERROR" for s in all_spans)
    heading = title or (f"{len(traces)} traces" if len(traces) > 1 else f"trace {traces[0][0].trace_id}")
    summary = (f"{len(all_spans)} spans · {len(services)} services · {_ms(total)}"
               + (f" · {errors} error{'s' * (errors != 1)}" if errors else ""))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="waterfall" width="{_WIDTH}" height="{height}" '
           f'viewBox="0 0 {_WIDTH} {height}" style="max-width:100%;height:auto" font-family="{FONT}" font-size="12">',
           f'<rect x="0" y="0" width="{_WIDTH}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(heading)}</text>',
           f'<text x="{_WIDTH - 10}" y="20" text-anchor="end" fill="{_MUTED}">{escape(summary)}</text>']
    out.append(_legend(services, y=40))
    # Time axis: labels above the rows, grid lines through them.
    axis_y, rows_y0, rows_y1 = top - 8, top, top + len(rows) * _ROW
    out.append('<g class="axis">')
    for tick in ticks:
        x = x_of(t0 + tick)
        out.append(f'<line x1="{x:.1f}" y1="{rows_y0 - 4}" x2="{x:.1f}" y2="{rows_y1}" stroke="{_GRID}"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle" font-size="10" fill="{_MUTED}">'
                   f'{_tick_label(tick, step)}</text>')
    out.append('</g>')
    for i, (what, item, depth) in enumerate(rows):
        y = rows_y0 + i * _ROW
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{_WIDTH}" height="{_ROW}" fill="#f7f7f7"/>')
        if what == "trace":
            out.append(_trace_header(item, y, x_of))
        else:
            out.append(_span_row(item, depth, y, x_of, on_path.get(item.span_id, ()), services,
                                 orphan=item.parent_id is not None and item.parent_id not in
                                 {s.span_id for s in all_spans if s.trace_id == item.trace_id}))
    if hidden:
        out.append(f'<text x="10" y="{rows_y1 + 16}" fill="{_MUTED}">… {hidden} more rows not drawn '
                   f'(max_rows={max_rows})</text>')
    out.append('</svg>')
    return "\n".join(out)


def _legend(services: list[str], y: int) -> str:
    parts, x = [f'<g class="legend" transform="translate(0,{y})">'], 10
    for service in services:
        colour = service_colour(service, services)
        parts.append(f'<rect x="{x}" y="0" width="12" height="12" rx="2" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="10">{escape(service)}</text>')
        x += 16 + int(len(service) * 7.0) + 14
    x = max(x, _WIDTH - 330)
    parts.append(f'<rect x="{x}" y="0" width="22" height="12" rx="2" fill="#cfcfcf"/>'
                 f'<rect x="{x}" y="4" width="22" height="4" fill="{_CRITICAL}"/>'
                 f'<text x="{x + 27}" y="10">critical path</text>')
    x += 120
    parts.append(f'<rect x="{x}" y="0" width="22" height="12" rx="2" fill="#cfcfcf" stroke="{_ERROR}" '
                 f'stroke-width="2"/><text x="{x + 27}" y="10" fill="{_ERROR}">✗ error</text>')
    x += 90
    parts.append(f'<path d="M{x + 6},0 l6,6 l-6,6 l-6,-6 z" fill="{_ERROR}" stroke="white"/>'
                 f'<text x="{x + 16}" y="10">exception</text></g>')
    return "".join(parts)


def _trace_header(trace: list[SpanView], y: float, x_of) -> str:
    start, end = min(s.start for s in trace), max(s.end for s in trace)
    tid = trace[0].trace_id
    label = f"trace {tid[:16]}… · {len(trace)} span{'s' * (len(trace) != 1)} · {_ms(end - start)}"
    return (f'<g class="trace-header" data-trace-id="{tid}"><title>trace {tid}</title>'
            f'<text x="10" y="{y + 15}" font-weight="bold" fill="#333">{escape(_fit(label, _CHART_X - 20, 12.5))}</text>'
            f'<line x1="{x_of(start):.1f}" y1="{y + 11}" x2="{max(x_of(end), x_of(start) + 1):.1f}" '
            f'y2="{y + 11}" stroke="#999" stroke-width="2"/></g>')


def _span_row(s: SpanView, depth: int, y: float, x_of, segments: Sequence[tuple[float, float]],
              services: list[str], *, orphan: bool) -> str:
    colour = service_colour(s.service, services)
    error = s.status == "ERROR"
    classes = "span" + (" critical" if segments else "") + (" error" if error else "") + (" orphan" if orphan else "")
    mid = y + _ROW / 2
    parts = [f'<g class="{classes}" data-span-id="{s.span_id}" data-service="{escape(s.service)}">',
             f'<title>{escape(_tooltip(s) + (_ORPHAN if orphan else ""))}</title>',
             f'<text x="10" y="{mid + 4}" fill="{_shade(colour, 0.62)}" font-size="11">'
             f'{escape(_fit(s.service, _NAME_X - 16, 11))}</text>']
    x = _NAME_X + depth * _INDENT
    room = _CHART_X - 12 - x
    marks = ("⤴ " if orphan else "") + ("✗ " if error else "")
    name = _fit(s.name, room - len(marks) * 8, 12)
    weight = ' font-weight="bold"' if segments else ""
    detail = _detail(s)
    left = room - len(marks) * 8 - len(name) * 12 * (0.66 if segments else 0.6) - 8
    parts.append(f'<text x="{x}" y="{mid + 4}"{weight}>'
                 + (f'<tspan fill="{_MUTED}">⤴</tspan><tspan dx="4">' if orphan else "<tspan>")
                 + (f'<tspan fill="{_ERROR}" font-weight="bold">✗</tspan><tspan dx="4">' if error else "<tspan>")
                 + escape(name) + "</tspan></tspan>"
                 + (f'<tspan dx="6" fill="{_MUTED}" font-weight="normal" font-size="10">{escape(_fit(detail, left, 10))}</tspan>'
                    if detail and left > 30 else "")
                 + '</text>')
    bx0, bx1 = x_of(s.start), x_of(s.end)
    width = max(bx1 - bx0, 2.0)
    stroke = f' stroke="{_ERROR}" stroke-width="2"' if error else ""
    parts.append(f'<rect class="bar" x="{bx0:.1f}" y="{mid - _BAR / 2:.1f}" width="{width:.1f}" height="{_BAR}" '
                 f'rx="2" fill="{colour}"{stroke}/>')
    for lo, hi in segments:
        sx0, sx1 = x_of(max(lo, s.start)), x_of(min(hi, s.end))
        parts.append(f'<rect class="critical-segment" x="{sx0:.1f}" y="{mid - 2:.1f}" '
                     f'width="{max(sx1 - sx0, 1.0):.1f}" height="4" fill="{_CRITICAL}"/>')
    for name_, at, attrs in s.events:
        if name_ != "exception":
            continue
        ex = x_of(at if at is not None else s.end)
        parts.append(f'<path class="exception" d="M{ex:.1f},{mid - 7:.1f} l6,7 l-6,7 l-6,-7 z" '
                     f'fill="{_ERROR}" stroke="white"><title>{escape(_exception_text(attrs))}</title></path>')
    label = ("✗ " if error else "") + _ms(s.end - s.start)
    parts.append(f'<text x="{bx0 + width + 8:.1f}" y="{mid + 4}" font-size="10" '
                 f'fill="{_ERROR if error else _MUTED}">{escape(label)}</text>')
    parts.append('</g>')
    return "".join(parts)


def _empty_svg(title: str, message: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="waterfall empty" width="{_WIDTH}" height="60" '
            f'viewBox="0 0 {_WIDTH} 60" font-family="{FONT}" font-size="12">'
            f'<rect x="0" y="0" width="{_WIDTH}" height="60" fill="white" stroke="{_GRID}"/>'
            f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(title)}</text>'
            f'<text x="10" y="44" fill="{_MUTED}">{escape(message)}</text></svg>')


# -- the service map ---------------------------------------------------------------------------

_NODE_W, _NODE_H, _COL, _GAP = 200, 40, 290, 30


def service_map_svg(spans: Iterable[Any], *, edges: Iterable[Mapping[str, Any]] | None = None,
                    title: str | None = None) -> str:
    """The services the spans went through as an SVG map: nodes left to right in call order,
    one arrow per caller -> callee with its call and error counts.

    `edges`: `{"caller", "callee", "calls", "errors"}` dicts to draw instead of the kit's own
    (e.g. what the learner's `build_service_dependencies` returned).
    Nodes carry `class="node service|database|external"`, arrows `class="edge"` (plus `error`).
    """
    normal = views(spans)
    mine, kinds = _dependencies(normal)
    edge_list = [dict(e) for e in edges] if edges is not None else mine
    nodes = list(dict.fromkeys([s.service for s in normal] +
                               [n for e in edge_list for n in (str(e["caller"]), str(e["callee"]))]))
    if not nodes:
        return _empty_svg(title or "Service map", "No spans were exported: no services to draw yet.")
    services = [n for n in nodes if kinds.get(n) == "service"]
    # Columns: the longest chain of calls that leads to a node (loops are cut).
    column = {n: 0 for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for e in edge_list:
            a, b = str(e["caller"]), str(e["callee"])
            if a != b and column[b] < column[a] + 1 <= len(nodes):
                column[b], changed = column[a] + 1, True
        if not changed:
            break
    columns: dict[int, list[str]] = defaultdict(list)
    for n in nodes:
        columns[column[n]].append(n)
    # Within a column, keep callers' order so arrows cross less.
    position: dict[str, tuple[float, float]] = {}
    tallest = max(len(c) for c in columns.values())
    height = 56 + tallest * (_NODE_H + _GAP) + 10
    width = 30 + (max(columns) + 1) * _COL
    for c in sorted(columns):
        def rank(n: str) -> float:
            callers = [position[str(e["caller"])][1] for e in edge_list
                       if str(e["callee"]) == n and str(e["caller"]) in position]
            return sum(callers) / len(callers) if callers else 0.0
        members = sorted(columns[c], key=lambda n: (rank(n), nodes.index(n)))
        block = len(members) * (_NODE_H + _GAP) - _GAP
        y0 = 56 + (tallest * (_NODE_H + _GAP) - _GAP - block) / 2
        for i, n in enumerate(members):
            position[n] = (20 + c * _COL, y0 + i * (_NODE_H + _GAP))
    total_calls = sum(int(e["calls"]) for e in edge_list)
    total_errors = sum(int(e["errors"]) for e in edge_list)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="service-map" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto" font-family="{FONT}" font-size="12">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker>'
           f'<marker id="arrow-error" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{_ERROR}"/></marker></defs>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title or "Service map")}</text>',
           f'<text x="10" y="38" fill="{_MUTED}">{len(nodes)} nodes · {total_calls} calls'
           + (f' · <tspan fill="{_ERROR}">{total_errors} failed</tspan>' if total_errors else "") + '</text>']
    incoming: dict[str, list[str]] = defaultdict(list)
    for e in edge_list:
        if position[str(e["callee"])][0] > position[str(e["caller"])][0]:
            incoming[str(e["callee"])].append(str(e["caller"]))
    for e in edge_list:
        callers = sorted(incoming.get(str(e["callee"]), ()), key=lambda n: position[n][1])
        a = str(e["caller"])
        slot = callers.index(a) - (len(callers) - 1) / 2 if a in callers else 0.0
        out.append(_edge(e, position, slot))
    for n in nodes:
        kind = kinds.get(n, "external")
        out.append(_node(n, kind, position[n], services))
    out.append('</svg>')
    return "\n".join(out)


def _edge(e: Mapping[str, Any], position: Mapping[str, tuple[float, float]], slot: float = 0.0) -> str:
    a, b = str(e["caller"]), str(e["callee"])
    (ax, ay), (bx, by) = position[a], position[b]
    calls, errors = int(e["calls"]), int(e["errors"])
    colour, marker = (_ERROR, "arrow-error") if errors else ("#777", "arrow")
    if a == b:
        return ""
    if bx > ax:                                   # forward: right side to left side
        x1, y1, x2, y2 = ax + _NODE_W, ay + _NODE_H / 2, bx, by + _NODE_H / 2 + slot * 14
        bend = (x2 - x1) / 2
        d = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    else:                                         # same column or backwards: loop under
        x1, y1, x2, y2 = ax + _NODE_W / 2, ay + _NODE_H, bx + _NODE_W / 2 + 10, by + _NODE_H
        d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + 40:.1f} {x2:.1f},{y2 + 40:.1f} {x2:.1f},{y2:.1f}"
    label = f"{calls} call{'s' * (calls != 1)}"
    # The label sits just above the arrow's head, where the curve runs level, so labels of
    # arrows from one caller never meet (arrows into one callee are spread by `slot`).
    lx, ly, anchor = (x2 - 12, y2 - 5, "end") if bx > ax else ((x1 + x2) / 2, max(y1, y2) + 42, "middle")
    text = (f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" font-size="11" '
            f'stroke="white" stroke-width="3" paint-order="stroke">{label}'
            + (f'<tspan fill="{_ERROR}" font-weight="bold">, {errors} failed</tspan>' if errors else "")
            + '</text>')
    return (f'<g class="edge{" error" if errors else ""}" data-caller="{escape(a)}" data-callee="{escape(b)}">'
            f'<title>{escape(a)} → {escape(b)}: {calls} calls, {errors} errors</title>'
            f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{2 if errors else 1.5}" '
            f'marker-end="url(#{marker})"/>{text}</g>')


def _node(name: str, kind: str, at: tuple[float, float], services: list[str]) -> str:
    x, y = at
    size = 12 if len(name) * 12 * 0.62 <= _NODE_W - 12 else 11
    label = escape(_fit(name, _NODE_W - 12, size))
    if kind == "service":
        colour = service_colour(name, services)
        shape = (f'<rect x="{x}" y="{y}" width="{_NODE_W}" height="{_NODE_H}" rx="8" '
                 f'fill="{_shade(colour, 1.7)}" stroke="{colour}" stroke-width="2"/>')
        sub = "service"
    elif kind == "database":
        top = 7
        shape = (f'<path d="M{x},{y + top} v{_NODE_H - 2 * top} a{_NODE_W / 2},{top} 0 0 0 {_NODE_W},0 '
                 f'v{-(_NODE_H - 2 * top)}" fill="#eeeeee" stroke="#888" stroke-width="1.5"/>'
                 f'<ellipse cx="{x + _NODE_W / 2}" cy="{y + top}" rx="{_NODE_W / 2}" ry="{top}" '
                 f'fill="#f7f7f7" stroke="#888" stroke-width="1.5"/>')
        sub = "database / cache"
    else:
        shape = (f'<rect x="{x}" y="{y}" width="{_NODE_W}" height="{_NODE_H}" rx="8" fill="#fbfbfb" '
                 f'stroke="#888" stroke-width="1.5" stroke-dasharray="5,3"/>')
        sub = "outside our system"
    return (f'<g class="node {kind}" data-name="{escape(name)}">{shape}'
            f'<text x="{x + _NODE_W / 2}" y="{y + 18}" text-anchor="middle" font-weight="bold" '
            f'font-size="{size}">{label}</text>'
            f'<text x="{x + _NODE_W / 2}" y="{y + 32}" text-anchor="middle" font-size="10" '
            f'fill="{_MUTED}">{sub}</text></g>')
