"""A trace as a picture: an SVG waterfall timeline (the service map is `kit.traces.service_map`).

    svg = waterfall_svg(spans)        # rows = spans in tree order, bars on a time axis (ms)

It is a pure function of a list of spans: the SDK's finished spans (`ReadableSpan`, as an
`InMemorySpanExporter` returns them) or anything shaped like the provided `SpanRecord`
(`trace_id`, `span_id`, `parent_span_id`, `name`, `service`, `kind`, `start_ms`,
`duration_ms`, `status`, `attributes`, `events`), the same duck-typing as `kit.traces.text`.
The critical path they draw is `kit.traces.analysis`'s: the kit's reference analysis, or in the
learner release (where that module asks the learner's own Step 5) the learner's, and until
Step 5 gives one the picture says what to finish instead (the answer's `note`). A learner's
critical path can also be passed in to compare.

How to read the waterfall:

- one row per span, children under their parent (indented), in start order; each trace in
  the list is its own group, on one shared time axis;
- the bar's colour is the span's service (legend at the top); its length is its duration;
- a red outline and a ✗ mark an `ERROR` span; a red diamond on the bar is an `exception`
  event (hover for its type and message); a span whose parent was not exported is marked ⤴;
- the dark stripe through the bars is the **critical path** (Jaeger's definition, as in the
  contract's Step 5): the chain of work the request was waiting for; every span on it is
  marked, parents included (a parent waiting for its child is on the path), names in bold;
- a CLIENT span of an HTTP call is labelled with its target (`POST inventory-service
  /inventory/check`, from `server.address` / `url.full`: `kit.traces.model.span_label`);
- every bar has a tooltip (hover) with the span's service, kind, duration and attributes.
"""
from __future__ import annotations

import math
from collections import defaultdict
from html import escape
from typing import Any, Iterable, Mapping, Sequence

from kit.traces import analysis
from kit.traces.model import Span, by_trace, views, walk
from kit.traces.style import (CRITICAL as _CRITICAL, ERROR as _ERROR, FONT, GRID as _GRID, MUTED as _MUTED,
                              empty_svg, fit as _fit, fmt_ms as _ms, service_colour, shade as _shade)

__all__ = ["waterfall_svg", "critical_path", "notes_of"]

# Waterfall geometry (px).
_WIDTH = 1100
_NAME_X = 128             # the span name column starts here (the service column before it)
_CHART_X = 500            # the time axis runs from here ...
_CHART_RIGHT = 1020       # ... to here; durations are written in the margin after it
_ROW = 22
_BAR = 12
_INDENT = 12
_MAX_ROWS = 200
_ORPHAN = "\n⤴ its parent span is not among these spans (it came from outside, or was not exported)"


# -- the analysis the pictures show: kit.traces.analysis (the reference, or the learner's in a release)

def _trace_critical_path(trace: list[Span]) -> list[dict]:
    return analysis.critical_path(*analysis.index(trace))


def notes_of(*answers: Any) -> list[str]:
    """What the answers say is missing: the `note` an answer carries when the analysis could
    not give it (the learner release's analysis before Step 5 is done), each note once."""
    return list(dict.fromkeys(getattr(a, "note", "") for a in answers if getattr(a, "note", "")))


def critical_path(spans: Iterable[Any]) -> list[dict]:
    """The critical path of each trace in `spans`, as the contract's Step 5 defines it: segments
    `{"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}` in time order."""
    return [seg for trace in by_trace(views(spans)) for seg in _trace_critical_path(trace)]


def _with_ancestors(spans: list[Span], path: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Span id -> its intervals on the critical path, merged. A span is on the path when a piece
    of it is, or when one of its descendants is (a parent waiting for its child is on the path
    too, even when its own pieces are all covered by the child): each segment's interval is
    added to the segment's span and to each of its ancestors (within their trace)."""
    parent = {(s.trace_id, s.span_id): s.parent_span_id for s in spans}
    trace_of: dict[str, list[str]] = defaultdict(list)
    for s in spans:
        trace_of[s.span_id].append(s.trace_id)
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for seg in path:
        span_id, interval = str(seg["span_id"]), (float(seg["start_ms"]), float(seg["end_ms"]))
        found[span_id].append(interval)
        for trace_id in trace_of.get(span_id, ()):
            seen, current = {span_id}, parent.get((trace_id, span_id))
            while current and current not in seen and (trace_id, current) in parent:
                seen.add(current)
                found[current].append(interval)
                current = parent[(trace_id, current)]
    merged: dict[str, list[tuple[float, float]]] = {}
    for span_id, intervals in found.items():
        out: list[tuple[float, float]] = []
        for lo, hi in sorted(intervals):
            if out and lo <= out[-1][1] + 1e-9:
                out[-1] = (out[-1][0], max(out[-1][1], hi))
            else:
                out.append((lo, hi))
        merged[span_id] = out
    return merged


# -- drawing helpers ---------------------------------------------------------------------------

def _ticks(total: float) -> tuple[float, list[float]]:
    total = max(total, 1e-3)
    raw = total / 6
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return step, [i * step for i in range(int(total / step + 1e-9) + 1)]


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f} ms"


def _detail(s: Span) -> str:
    """A short hint after the span name: a database call's statement (an HTTP call's target is
    in its label already)."""
    a = s.attributes
    if a.get("db.statement") or a.get("db.query.text"):
        return str(a.get("db.statement") or a.get("db.query.text"))
    return ""


def _tooltip(s: Span) -> str:
    lines = [f"{s.service}: {s.label} [{s.kind}]", f"duration {_ms(s.end_ms - s.start_ms)}",
             f"status {s.status}" + (f": {s.status_description}" if s.status_description else "")]
    lines += [f"{k} = {v}" for k, v in list(s.attributes.items())[:14]]
    return "\n".join(lines)


def _exception_text(attrs: Mapping[str, Any]) -> str:
    kind, message = attrs.get("exception.type", "exception"), attrs.get("exception.message", "")
    return f"exception {kind}: {message}" if message else f"exception {kind}"


# -- the waterfall -----------------------------------------------------------------------------

def waterfall_svg(spans: Iterable[Any], *, critical_path: Iterable[Mapping[str, Any]] | None = None,
                  title: str | None = None, max_rows: int = _MAX_ROWS, notes: Iterable[str] = ()) -> str:
    """The spans as an SVG waterfall timeline (a string holding one `<svg>` element).

    `critical_path`: segments to highlight instead of the kit's own (e.g. what the learner's
    `calculate_critical_path` returned: dicts with `span_id`, `start_ms`, `end_ms`).
    Rows carry `class="span"` plus `critical` (on the critical path), `error` (status ERROR) and
    `orphan` (parent not among the spans), and `data-span-id`, so tests can read the picture.
    `notes` (and the `note` of a critical path the analysis could not give) are written under
    the rows (`class="note"`).
    """
    all_spans = views(spans)
    if not all_spans:
        return empty_svg(title or "No spans", "No spans were exported: nothing to draw yet.")
    traces = by_trace(all_spans)
    if critical_path is None:
        answers = [_trace_critical_path(trace) for trace in traces]
        path = [seg for answer in answers for seg in answer]
    else:
        answers = [critical_path]
        path = [dict(seg) for seg in critical_path]
    said = list(dict.fromkeys([*notes, *notes_of(*answers)]))
    on_path = _with_ancestors(all_spans, path)
    services = list(dict.fromkeys(s.service for s in all_spans))
    t0 = min(s.start_ms for s in all_spans)
    total = max(s.end_ms for s in all_spans) - t0
    step, ticks = _ticks(total)
    scale_end = max(ticks[-1], total) or 1.0
    chart_w = _CHART_RIGHT - _CHART_X

    def x_of(t: float) -> float:
        return _CHART_X + (t - t0) / scale_end * chart_w

    rows: list[tuple[str, Any, int]] = []       # ("trace", trace, 0) or ("span", span, depth)
    for trace in traces:
        if len(traces) > 1:
            rows.append(("trace", trace, 0))
        rows.extend(("span", s, len(path) - 1) for s, path in walk(trace))
    hidden = max(len(rows) - max_rows, 0)
    rows = rows[:max_rows]

    top = 78                                       # title, legend, axis labels
    height = top + len(rows) * _ROW + (24 if hidden else 0) + 20 * len(said) + 14
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
                                 orphan=item.parent_span_id is not None and item.parent_span_id not in
                                 {s.span_id for s in all_spans if s.trace_id == item.trace_id}))
    if hidden:
        out.append(f'<text x="10" y="{rows_y1 + 16}" fill="{_MUTED}">… {hidden} more rows not drawn '
                   f'(max_rows={max_rows})</text>')
    for i, note in enumerate(said):
        out.append(f'<text class="note" x="10" y="{rows_y1 + (24 if hidden else 0) + 16 + 20 * i}" '
                   f'fill="{_MUTED}">{escape(note)}</text>')
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


def _trace_header(trace: list[Span], y: float, x_of) -> str:
    start, end = min(s.start_ms for s in trace), max(s.end_ms for s in trace)
    tid = trace[0].trace_id
    label = f"trace {tid[:16]}… · {len(trace)} span{'s' * (len(trace) != 1)} · {_ms(end - start)}"
    return (f'<g class="trace-header" data-trace-id="{tid}"><title>trace {tid}</title>'
            f'<text x="10" y="{y + 15}" font-weight="bold" fill="#333">{escape(_fit(label, _CHART_X - 20, 12.5))}</text>'
            f'<line x1="{x_of(start):.1f}" y1="{y + 11}" x2="{max(x_of(end), x_of(start) + 1):.1f}" '
            f'y2="{y + 11}" stroke="#999" stroke-width="2"/></g>')


def _span_row(s: Span, depth: int, y: float, x_of, segments: Sequence[tuple[float, float]],
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
    name = _fit(s.label, room - len(marks) * 8, 12)
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
    bx0, bx1 = x_of(s.start_ms), x_of(s.end_ms)
    width = max(bx1 - bx0, 2.0)
    stroke = f' stroke="{_ERROR}" stroke-width="2"' if error else ""
    parts.append(f'<rect class="bar" x="{bx0:.1f}" y="{mid - _BAR / 2:.1f}" width="{width:.1f}" height="{_BAR}" '
                 f'rx="2" fill="{colour}"{stroke}/>')
    for lo, hi in segments:
        sx0, sx1 = x_of(max(lo, s.start_ms)), x_of(min(hi, s.end_ms))
        parts.append(f'<rect class="critical-segment" x="{sx0:.1f}" y="{mid - 2:.1f}" '
                     f'width="{max(sx1 - sx0, 1.0):.1f}" height="4" fill="{_CRITICAL}"/>')
    for name_, at, attrs in s.events:
        if name_ != "exception":
            continue
        ex = x_of(at if at is not None else s.end_ms)
        parts.append(f'<path class="exception" d="M{ex:.1f},{mid - 7:.1f} l6,7 l-6,7 l-6,-7 z" '
                     f'fill="{_ERROR}" stroke="white"><title>{escape(_exception_text(attrs))}</title></path>')
    label = ("✗ " if error else "") + _ms(s.end_ms - s.start_ms)
    parts.append(f'<text x="{bx0 + width + 8:.1f}" y="{mid + 4}" font-size="10" '
                 f'fill="{_ERROR if error else _MUTED}">{escape(label)}</text>')
    parts.append('</g>')
    return "".join(parts)
