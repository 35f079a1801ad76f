"""A trace as a map: the services it went through, as an SVG picture.

    svg = service_map_svg(spans)      # services, databases and outside APIs, calls and errors

One node per service (coloured as in the waterfall), per database or cache (`db.system`) and
per outside host (`server.address` / `peer.service`), left to right in call order, and one
arrow per caller -> callee pair labelled with its calls and errors (the arrow is red when a
call failed). The edges are `kit.traces.analysis.service_map`'s (the contract's Step 5
definition), added up over every trace in the list: the kit's reference analysis, or in the
learner release the learner's own Step 5, and until Step 5 gives them the map says what to
finish instead (the answer's `note`).
"""
from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any, Iterable, Mapping

from kit.traces import analysis
from kit.traces.model import Span, by_trace, views
from kit.traces.waterfall import notes_of
from kit.traces.style import ERROR as _ERROR, FONT, MUTED as _MUTED, empty_svg, fit as _fit, service_colour, shade as _shade

__all__ = ["service_map_svg", "service_dependencies"]


def _dependencies(spans: list[Span]) -> tuple[list[dict], dict[str, str], list[str]]:
    """The caller -> callee edges of every trace, added up, each node's kind, and the notes of
    the answers the analysis could not give."""
    edges: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    answers = [analysis.service_map(*analysis.index(trace)) for trace in by_trace(spans)]
    for answer in answers:
        for e in answer:
            edge = edges[(e["caller"], e["callee"])]
            edge[0] += e["calls"]
            edge[1] += e["errors"]
    return ([{"caller": a, "callee": b, "calls": c, "errors": e}
             for (a, b), (c, e) in sorted(edges.items())], _kinds(spans), notes_of(*answers))


def _kinds(spans: list[Span]) -> dict[str, str]:
    """Each node's kind: a service, or a database (`db.system`); anything else is external."""
    kinds = {str(s.attributes["db.system"]): "database" for s in spans
             if s.kind == "CLIENT" and s.attributes.get("db.system")}
    kinds.update((s.service, "service") for s in spans)
    return kinds


def service_dependencies(spans: Iterable[Any]) -> list[dict]:
    """Caller -> callee edges `{"caller", "callee", "calls", "errors"}`, as the contract's
    Step 5 defines them, sorted by caller then callee."""
    return _dependencies(views(spans))[0]


_NODE_W, _NODE_H, _COL, _GAP = 200, 40, 290, 30


def service_map_svg(spans: Iterable[Any], *, edges: Iterable[Mapping[str, Any]] | None = None,
                    title: str | None = None, notes: Iterable[str] = ()) -> str:
    """The services the spans went through as an SVG map: nodes left to right in call order,
    one arrow per caller -> callee with its call and error counts.

    `edges`: `{"caller", "callee", "calls", "errors"}` dicts to draw instead of the kit's own
    (e.g. what the learner's `build_service_dependencies` returned).
    Nodes carry `class="node service|database|external"`, arrows `class="edge"` (plus `error`).
    `notes` (and the `note` of edges the analysis could not give) are written under the title
    (`class="note"`).
    """
    normal = views(spans)
    if edges is None:
        edge_list, kinds, missing = _dependencies(normal)
    else:
        edge_list, kinds, missing = [dict(e) for e in edges], _kinds(normal), notes_of(edges)
    said = list(dict.fromkeys([*notes, *missing]))
    nodes = list(dict.fromkeys([s.service for s in normal] +
                               [n for e in edge_list for n in (str(e["caller"]), str(e["callee"]))]))
    if not nodes:
        return empty_svg(title or "Service map", "No spans were exported: no services to draw yet.")
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
    top = 56 + 18 * len(said)
    height = top + tallest * (_NODE_H + _GAP) + 10
    width = max(30 + (max(columns) + 1) * _COL, 20 + 7 * max(map(len, said), default=0))
    for c in sorted(columns):
        def rank(n: str) -> float:
            callers = [position[str(e["caller"])][1] for e in edge_list
                       if str(e["callee"]) == n and str(e["caller"]) in position]
            return sum(callers) / len(callers) if callers else 0.0
        members = sorted(columns[c], key=lambda n: (rank(n), nodes.index(n)))
        block = len(members) * (_NODE_H + _GAP) - _GAP
        y0 = top + (tallest * (_NODE_H + _GAP) - _GAP - block) / 2
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
    out += [f'<text class="note" x="10" y="{56 + 18 * i}" fill="{_MUTED}">{escape(note)}</text>'
            for i, note in enumerate(said)]
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
