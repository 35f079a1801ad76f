"""Trace analysis answered by the learner's own Step 5, in the shapes of `kit.traces.analysis`.

The learner release ships this module as `kit/traces/analysis.py` (`kit.instructor.release`),
so that the viewer, the pictures and notebook 05 draw the learner's answers and the release
holds no answer to Step 5. It has the same functions, arguments and return shapes as the kit's
reference analysis, and no rule of its own: each function asks
`services.api_gateway.monitoring` (whichever tree is on `sys.path`) through the contract's
names (`build_trace_tree`, `calculate_total_duration`, `calculate_critical_path`,
`identify_bottlenecks`, `build_service_dependencies`) and converts what comes back.

When the learner's module cannot be imported, or a function is still a stub, raises or returns
something the kit cannot read, the answer is the plain one: spans in start order with no parent
links, no critical path, no bottlenecks, an empty service map. Such an answer is an
`Unfinished` list whose `note` says what to finish ("critical path: finish Step 5
(calculate_critical_path) to see it here"); `analyse()` lists those notes under "notes", and the
pictures write them. Nothing here raises because of the learner's code.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from kit.traces.model import event_fields, span_label

__all__ = ["index", "children_lists", "total_duration", "self_times", "depths",
           "critical_path", "bottlenecks", "service_map", "analyse", "Unfinished", "FROM_LEARNER"]

#: Marks this module: its answers are the learner's (notebook 05 has no reference to compare with).
FROM_LEARNER = True

_TODO = {
    "build_trace_tree": "span tree: finish Step 5 (build_trace_tree) to see each span under its parent",
    "calculate_total_duration": "total duration: finish Step 5 (calculate_total_duration) to see it here",
    "calculate_critical_path": "critical path: finish Step 5 (calculate_critical_path) to see it here",
    "identify_bottlenecks": "bottlenecks and self times: finish Step 5 (identify_bottlenecks) to see them here",
    "build_service_dependencies": "service map: finish Step 5 (build_service_dependencies) to see it here",
}


class Unfinished(list):
    """An answer the learner's Step 5 could not give (empty, or the plain fallback), with `note`
    saying what to finish. It is a list, so it is drawn, compared and serialised as one."""

    def __init__(self, items: Any = (), note: str = "") -> None:
        super().__init__(items)
        self.note = note


class _NoAnswer(Exception):
    """The learner's function answered something the kit cannot read."""


def _ask(function: str, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's `function`. Whatever goes wrong (no tree on sys.path, a stub, a bug)
    raises, and the public functions below turn that into the plain answer."""
    return getattr(importlib.import_module("services.api_gateway.monitoring"), function)(*args, **kwargs)


def _records(spans: Sequence[Any]) -> list[Any]:
    """The spans as the tree's own `SpanRecord`s (what the learner's functions take); the spans
    themselves when that class cannot be had."""
    try:
        record = importlib.import_module("services.shared.span_store").SpanRecord
        return [record(trace_id=s.trace_id, span_id=s.span_id, parent_span_id=s.parent_span_id,
                       name=s.name, service=s.service, kind=s.kind, start_ms=s.start_ms,
                       duration_ms=s.duration_ms, status=s.status,
                       attributes=dict(getattr(s, "attributes", None) or {}))
                for s in spans]
    except Exception:
        return list(spans)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _NoAnswer("not a number")
    return float(value)


def _in_start_order(spans: Sequence[Any]) -> list[Any]:
    return sorted(spans, key=lambda s: s.start_ms)


def _tree_links(spans: Sequence[Any], records: list[Any]) -> tuple[list[Any], list[int]]:
    """The learner's tree as the kit's (spans in start order, parent positions)."""
    forest = _ask("build_trace_tree", records)
    first_seen: dict[str, int] = {}
    for n, s in enumerate(spans):
        first_seen.setdefault(s.span_id, n)
    above: dict[str, str | None] = {}
    todo = [(node, None) for node in reversed(list(forest))]
    while todo:
        node, up = todo.pop()
        if not isinstance(node, Mapping) or not isinstance(node.get("children"), list):
            raise _NoAnswer("not a TraceNode")
        sid = getattr(node.get("span"), "span_id", None)
        if sid not in first_seen or sid in above:
            raise _NoAnswer("a span the trace does not have, or twice")
        above[sid] = up
        todo.extend((child, sid) for child in reversed(node["children"]))
    if len(above) != len(first_seen):
        raise _NoAnswer("spans left out of the tree")
    kept = sorted(above, key=lambda sid: (spans[first_seen[sid]].start_ms, first_seen[sid]))
    where = {sid: n for n, sid in enumerate(kept)}
    return ([spans[first_seen[sid]] for sid in kept],
            [-1 if above[sid] is None else where[above[sid]] for sid in kept])


def index(spans: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The spans of the learner's tree in start order and each one's parent position (-1 for a
    root). Without a tree: every span in start order, each a root (`parent` is `Unfinished`)."""
    try:
        return _tree_links(spans, _records(spans))
    except Exception:
        listed = _in_start_order(spans)
        return listed, Unfinished([-1] * len(listed), _TODO["build_trace_tree"])


def children_lists(parent: list[int]) -> list[list[int]]:
    """For each position, its children's positions (in position order)."""
    out: list[list[int]] = [[] for _ in range(len(parent))]
    for position, up in enumerate(parent):
        if up != -1:
            out[up].append(position)
    return out


def depths(parent: list[int]) -> list[int]:
    """How many parent links lead from each position up to its root."""
    found: dict[int, int] = {}
    for start in range(len(parent)):
        chain = []
        at = start
        while at != -1 and at not in found and len(chain) <= len(parent):
            chain.append(at)
            at = parent[at]
        level = found.get(at, -1)
        for position in reversed(chain):
            level += 1
            found[position] = level
    return [found[n] for n in range(len(parent))]


def _total(records: list[Any]) -> float:
    return _number(_ask("calculate_total_duration", records))


def total_duration(spans: Sequence[Any]) -> float:
    """The learner's `calculate_total_duration` (0.0 without an answer)."""
    try:
        return _total(_records(spans))
    except Exception:       # the learner's answer is missing or unreadable
        return 0.0


def _self_times(uniq: list[Any], records: list[Any]) -> list[float]:
    ranked = _ask("identify_bottlenecks", records, threshold_ms=0.0, top=len(records))
    own = {str(row["span_id"]): _number(row["self_time_ms"]) for row in _rows(ranked)}
    return [own[s.span_id] for s in uniq]          # a span left out: KeyError, the plain answer


def self_times(uniq: list[Any], parent: list[int]) -> list[float]:
    """Each span's self time, read from the learner's `identify_bottlenecks` (threshold 0, every
    span); all 0.0 (`Unfinished`) without an answer."""
    try:
        return _self_times(uniq, _records(uniq))
    except Exception:       # the learner's answer is missing or unreadable
        return Unfinished([0.0] * len(uniq), _TODO["identify_bottlenecks"])


def _rows(answer: Any) -> list[Mapping[str, Any]]:
    if not isinstance(answer, (list, tuple)) or not all(isinstance(r, Mapping) for r in answer):
        raise _NoAnswer("not a list of dicts")
    return list(answer)


def _converted(answer: Any, fields: dict[str, Any]) -> list[dict]:
    """Each row of the learner's answer with exactly `fields` (name -> str, int or _number)."""
    return [{name: kind(row[name]) for name, kind in fields.items()} for row in _rows(answer)]


_SEGMENT = {"span_id": str, "name": str, "service": str, "start_ms": _number, "end_ms": _number,
            "duration_ms": _number}
_BOTTLENECK = {"span_id": str, "operation": str, "service": str, "duration_ms": _number,
               "self_time_ms": _number, "percentage_of_total": _number}
_EDGE = {"caller": str, "callee": str, "calls": int, "errors": int}


def _critical_path(records: list[Any]) -> list[dict]:
    return _converted(_ask("calculate_critical_path", _ask("build_trace_tree", records)), _SEGMENT)


def critical_path(uniq: list[Any], parent: list[int]) -> list[dict]:
    """The learner's `calculate_critical_path` of the learner's tree, as segments
    `{"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}`; `Unfinished` without."""
    try:
        return _critical_path(_records(uniq))
    except Exception:       # the learner's answer is missing or unreadable
        return Unfinished(note=_TODO["calculate_critical_path"])


def _bottlenecks(records: list[Any], threshold_ms: float, top: int) -> list[dict]:
    return _converted(_ask("identify_bottlenecks", records, threshold_ms=threshold_ms, top=top),
                      _BOTTLENECK)


def bottlenecks(uniq: list[Any], selfs: list[float], *, threshold_ms: float = 0.0,
                top: int = 5) -> list[dict]:
    """The learner's `identify_bottlenecks(uniq, threshold_ms=, top=)` (`selfs` is not needed);
    `Unfinished` without an answer."""
    try:
        return _bottlenecks(_records(uniq), threshold_ms, top)
    except Exception:       # the learner's answer is missing or unreadable
        return Unfinished(note=_TODO["identify_bottlenecks"])


def _renamed(records: list[Any], aliases: Mapping[str, str] | None) -> list[Any]:
    """The records with the addresses `aliases` names renamed in their attributes, so that the
    learner's service map uses the kit's names (an alias is keyed by `address:port` or
    `address`)."""
    if not aliases:
        return records
    out = []
    for r in records:
        attrs = dict(getattr(r, "attributes", None) or {})
        at_port = attrs.get("server.port")
        for key in ("db.system", "peer.service", "server.address"):
            if attrs.get(key):
                attrs[key] = aliases.get(f"{attrs[key]}:{at_port}", aliases.get(str(attrs[key]), attrs[key]))
        try:
            out.append(type(r)(**{**{f: getattr(r, f) for f in (
                "trace_id", "span_id", "parent_span_id", "name", "service", "kind", "start_ms",
                "duration_ms", "status")}, "attributes": attrs}))
        except TypeError:
            return records
    return out


def _service_map(records: list[Any], aliases: Mapping[str, str] | None) -> list[dict]:
    return _converted(_ask("build_service_dependencies", _renamed(records, aliases)), _EDGE)


def service_map(uniq: list[Any], parent: list[int], *,
                aliases: Mapping[str, str] | None = None) -> list[dict]:
    """The learner's `build_service_dependencies`, as `{"caller", "callee", "calls", "errors"}`
    edges (`aliases` renames addresses first); `Unfinished` without an answer."""
    try:
        return _service_map(_records(uniq), aliases)
    except Exception:       # the learner's answer is missing or unreadable
        return Unfinished(note=_TODO["build_service_dependencies"])


def _plain(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in (mapping or {}).items()}


def analyse(spans: Sequence[Any], *, threshold_ms: float = 0.0, top: int = 5,
            aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything `kit.traces.analysis.analyse` gives, from the learner's answers, plus
    `notes`: what to finish for the parts the learner's Step 5 could not answer."""
    notes: list[str] = []

    def answer(fallback: Any, function: str, compute, *args: Any) -> Any:
        try:
            return compute(*args)
        except Exception:
            notes.append(_TODO[function])
            return Unfinished(fallback, _TODO[function]) if isinstance(fallback, list) else fallback

    records = _records(spans)
    have_tree = True
    try:
        uniq, parent = _tree_links(spans, records)
    except Exception:
        have_tree = False
        uniq, parent = _in_start_order(spans), [-1] * len(spans)
        notes.append(_TODO["build_trace_tree"])
    if not uniq:
        return dict(trace_id=None, total_duration_ms=0.0, service_count=0, span_count=0,
                    error_count=0, services=[], critical_path=[], bottlenecks=[],
                    service_map=[], timeline=[], notes=notes)
    by_id: dict[str, Any] = {}
    for s, r in zip(spans, records):
        by_id.setdefault(s.span_id, r)
    mine = [by_id[s.span_id] for s in uniq]
    total = answer(0.0, "calculate_total_duration", _total, mine)
    path = answer([], "calculate_critical_path", _critical_path, mine)
    ranked = answer([], "identify_bottlenecks", _bottlenecks, mine, threshold_ms, top)
    selfs = answer([0.0] * len(uniq), "identify_bottlenecks", _self_times, uniq, mine)
    edges = answer([], "build_service_dependencies", _service_map, mine, aliases)

    pieces: dict[str, list[list[float]]] = {}
    for piece in path:
        pieces.setdefault(piece["span_id"], []).append([piece["start_ms"], piece["end_ms"]])
    position = {s.span_id: n for n, s in enumerate(uniq)}
    waiting: set[int] = set()               # on the path, or above a span that is
    for sid in pieces:
        at = position.get(sid, -1)
        while at != -1 and at not in waiting:
            waiting.add(at)
            at = parent[at]
    below, level, origin = children_lists(parent), depths(parent), uniq[0].start_ms
    shown: list[int] = []                   # each span under its parent, siblings in start order
    pending = [n for n in reversed(range(len(uniq))) if parent[n] == -1]
    while pending:
        n = pending.pop()
        shown.append(n)
        pending += below[n][::-1]
    rows = [_row(uniq[n], origin, depth=level[n], self_time=selfs[n],
                 pieces=pieces.get(uniq[n].span_id, []), waiting=n in waiting,
                 orphan=have_tree and parent[n] == -1 and n != shown[0])
            for n in shown]
    services = sorted({s.service for s in uniq})
    return dict(trace_id=uniq[0].trace_id, start_ms=origin, total_duration_ms=total,
                service_count=len(services), span_count=len(uniq),
                error_count=sum(1 for s in uniq if s.status == "ERROR"), services=services,
                critical_path=path, bottlenecks=ranked, service_map=edges, timeline=rows,
                notes=list(dict.fromkeys(notes)))


def _row(s: Any, origin: float, *, depth: int, self_time: float, pieces: list[list[float]],
         waiting: bool, orphan: bool) -> dict[str, Any]:
    """One timeline row, as `kit.traces.analysis.analyse` shapes it (times from `origin`)."""
    return dict(
        span_id=s.span_id, parent_span_id=s.parent_span_id, name=s.name, service=s.service,
        kind=s.kind, status=s.status, status_description=getattr(s, "status_description", None),
        offset_ms=s.start_ms - origin, duration_ms=s.duration_ms, depth=depth,
        self_time_ms=self_time, start_ms=s.start_ms, label=span_label(s),
        critical=[[lo - origin, hi - origin] for lo, hi in pieces], on_critical_path=waiting,
        orphan=orphan and bool(s.parent_span_id),
        attributes=_plain(getattr(s, "attributes", None)),
        events=[{"name": name, "attributes": _plain(attrs)}
                for name, _, attrs in (event_fields(e) for e in getattr(s, "events", ()) or ())])
