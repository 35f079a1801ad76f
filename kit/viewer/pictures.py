"""The viewer's pictures: service colours, the waterfall rows and the service map (SVG).

Everything is plain HTML and inline SVG with no external assets (the viewer works offline).
`waterfall_html(analysis)` draws one row per span of `kit.analysis.analyse(...)`'s timeline: a
bar placed by offset and duration, coloured by service, the parts on the critical path marked
with a dark band, errors outlined in red with a marker. `service_map_svg(edges)` lays the
services out left to right by call depth, with one arrow per caller -> callee pair labelled
with its calls and errors.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

#: The workshop's services keep the same colour everywhere.
SERVICE_COLOURS: dict[str, str] = {
    "api-gateway": "#4e79a7",
    "auth-service": "#b07aa1",
    "order-service": "#59a14f",
    "inventory-service": "#f28e2b",
    "payment-service": "#76b7b2",
}
_OTHER_COLOURS = ("#edc948", "#9c755f", "#ff9da7", "#bab0ac", "#8cd17d", "#86bcb6")
ERROR_COLOUR = "#e15759"


def colour_of(service: str) -> str:
    """A service's colour: fixed for ours, stable (by name) for any other."""
    if service in SERVICE_COLOURS:
        return SERVICE_COLOURS[service]
    digest = hashlib.sha1(service.encode()).digest()[0]
    return _OTHER_COLOURS[digest % len(_OTHER_COLOURS)]


def fmt_ms(ms: float) -> str:
    """A duration for people: 0.42 ms, 12.3 ms, 1.25 s."""
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def legend_html(services: Iterable[str]) -> str:
    return "".join(f'<span class="chip" style="background:{colour_of(s)}">{escape(s)}</span>'
                   for s in services)


def _pct(value: float, total: float) -> float:
    return max(0.0, min(100.0, value / total * 100)) if total > 0 else 0.0


def waterfall_html(analysis: Mapping[str, Any]) -> str:
    """The waterfall: a time axis, then one clickable row per span (`data-span-id`)."""
    total = analysis["total_duration_ms"] or 1e-9
    ticks = "".join(f'<span class="tick" style="left:{p}%">{escape(fmt_ms(total * p / 100))}</span>'
                    for p in (0, 25, 50, 75, 100))
    rows = [f'<div class="axis"><div class="label"></div><div class="track">{ticks}</div></div>']
    for s in analysis["timeline"]:
        left = _pct(s["offset_ms"], total)
        width = max(_pct(s["duration_ms"], total), 0.15)
        error = s["status"] == "ERROR"
        crit = "".join(
            f'<span class="crit" style="left:{_pct(a - s["offset_ms"], s["duration_ms"] or 1e-9):.3f}%;'
            f'width:{max(_pct(b - a, s["duration_ms"] or 1e-9), 0.5):.3f}%"></span>'
            for a, b in s["critical"])
        marker = '<span class="err-mark" title="error">&#9888;</span>' if error else ""
        exc = ('<span class="exc-mark" title="exception event">&#9889;</span>'
               if any(e["name"] == "exception" for e in s["events"]) else "")
        classes = "row" + (" error" if error else "") + (" on-path" if s["critical"] else "")
        indent = 6 + 14 * min(s["depth"], 20)
        rows.append(
            f'<div class="{classes}" data-span-id="{escape(s["span_id"])}" '
            f'data-service="{escape(s["service"])}" title="{escape(s["service"])}: '
            f'{escape(s["name"])} ({escape(fmt_ms(s["duration_ms"]))})">'
            f'<div class="label" style="padding-left:{indent}px">'
            f'<span class="dot" style="background:{colour_of(s["service"])}"></span>'
            f'<span class="svc">{escape(s["service"])}</span> '
            f'<span class="name">{escape(s["name"])}</span>{marker}{exc}</div>'
            f'<div class="track"><div class="bar" style="left:{left:.3f}%;width:{width:.3f}%;'
            f'background:{colour_of(s["service"])}">{crit}</div>'
            f'<span class="dur" style="left:{min(left + width, 100):.3f}%">'
            f'{escape(fmt_ms(s["duration_ms"]))}</span></div></div>')
    return f'<div class="waterfall" id="waterfall">{"".join(rows)}</div>'


def _layout(edges: Sequence[Mapping[str, Any]], services: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Column (call depth from the entry points) and row for every node."""
    nodes: list[str] = []
    for name in services:
        if name not in nodes:
            nodes.append(name)
    for e in edges:
        for name in (e["caller"], e["callee"]):
            if name not in nodes:
                nodes.append(name)
    callers: dict[str, set[str]] = {n: set() for n in nodes}
    out: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        if e["caller"] != e["callee"]:
            callers[e["callee"]].add(e["caller"])
            out[e["caller"]].append(e["callee"])
    column = {n: 0 for n in nodes if not callers[n]}
    if nodes and not column:                         # every node is called: start anywhere
        column[nodes[0]] = 0
    queue = list(column)
    for n in queue:                                  # breadth first; the list grows
        for m in out[n]:
            if m not in column:
                column[m] = column[n] + 1
                queue.append(m)
    for n in nodes:                                  # anything in a cycle with no entry
        column.setdefault(n, 0)
    rows: dict[int, int] = {}
    place = {}
    for n in nodes:
        c = column[n]
        place[n] = (c, rows.get(c, 0))
        rows[c] = rows.get(c, 0) + 1
    return place


def _short(name: str, width: int = 30) -> str:
    return name if len(name) <= width else name[:width - 1] + "\u2026"


def service_map_svg(edges: Sequence[Mapping[str, Any]], services: Iterable[str] = ()) -> str:
    """The service map as inline SVG. Our services are filled boxes in their colour; anything
    they call that exports no spans (a database, a cache, an outside API) is a dashed box."""
    services = list(services)
    place = _layout(edges, services)
    if not place:
        return '<p class="muted">No calls between services in this trace.</p>'
    ours = set(services) | {e["caller"] for e in edges}
    box_w, box_h, gap_x, gap_y, pad = 196, 40, 90, 26, 16
    width = pad * 2 + (max(c for c, _ in place.values()) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + (max(r for _, r in place.values()) + 1) * (box_h + gap_y) - gap_y

    def xy(name: str) -> tuple[float, float]:
        c, r = place[name]
        return pad + c * (box_w + gap_x), pad + r * (box_h + gap_y)

    parts = [f'<svg class="service-map" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="service map">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
             'fill="#555"/></marker></defs>']
    for e in edges:
        if e["caller"] == e["callee"]:
            continue
        x1, y1 = xy(e["caller"])
        x2, y2 = xy(e["callee"])
        sx, sy = x1 + box_w, y1 + box_h / 2
        ex, ey = (x2, y2 + box_h / 2) if x2 > x1 else (x2 + box_w / 2, y2 if y2 > y1 else y2 + box_h)
        mx = (sx + ex) / 2
        colour = ERROR_COLOUR if e["errors"] else "#555"
        label = f'{e["calls"]} call{"s" if e["calls"] != 1 else ""}'
        if e["errors"]:
            label += f', {e["errors"]} failed'
        parts.append(f'<path class="edge{" edge-error" if e["errors"] else ""}" '
                     f'd="M {sx} {sy} C {mx} {sy}, {mx} {ey}, {ex} {ey}" fill="none" '
                     f'stroke="{colour}" stroke-width="1.6" marker-end="url(#arrow)"/>')
        parts.append(f'<text x="{mx}" y="{(sy + ey) / 2 - 4}" text-anchor="middle" '
                     f'font-size="11" fill="{colour}">{escape(label)}</text>')
    for name in place:
        x, y = xy(name)
        if name in ours:
            parts.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" '
                         f'fill="{colour_of(name)}"/>'
                         f'<text x="{x + box_w / 2}" y="{y + box_h / 2 + 4}" text-anchor="middle" '
                         f'font-size="13" fill="#fff" font-weight="600">{escape(name)}</text>')
        else:
            parts.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="14" '
                         f'fill="#fff" stroke="#777" stroke-dasharray="4 3"/>'
                         f'<text x="{x + box_w / 2}" y="{y + box_h / 2 + 4}" text-anchor="middle" '
                         f'font-size="12" fill="#333">{escape(_short(name))}</text>')
    parts.append("</svg>")
    return "".join(parts)
