"""Step 5's oracles: the contract's rules 5.2 to 5.30 written as plainly as possible, for
checks/test_step5_generated.py. Times are epoch ms; answers give them in ms from the checks'
epoch base, rounded to 6 places."""
from __future__ import annotations

from kit.harness.answers import oracle

#: The checks' epoch base (checks/test_step5_generated.py's BASE).
_BASE = 1_700_000_000_000.0


def _distinct(spans):
    """Rule 5.5: a duplicated span id is kept once, its first occurrence."""
    seen, out = set(), []
    for s in spans:
        if s.span_id not in seen:
            seen.add(s.span_id)
            out.append(s)
    return out


def _children_of(spans, span):
    return [s for s in spans if s.parent_span_id == span.span_id]


def _roots_of(spans):
    ids = {s.span_id for s in spans}
    return [s for s in spans if s.parent_span_id not in ids]


def _rel(x: float) -> float:
    return round(x - _BASE, 6)


def _end(s) -> float:
    return s.start_ms + s.duration_ms


@oracle
def oracle_total(spans) -> float:
    """Rule 5.6, on the distinct spans."""
    spans = _distinct(spans)
    return max(_end(s) for s in spans) - min(s.start_ms for s in spans) if spans else 0.0


@oracle
def oracle_tree(spans):
    """Rules 5.2-5.5, as nested (start, span_id, name, [children]) sorted by (start, span_id):
    spans that start together may come in either order."""
    spans = _distinct(spans)

    def shape(level):
        return sorted((_rel(s.start_ms), s.span_id, s.name, shape(_children_of(spans, s))) for s in level)
    return shape(_roots_of(spans))


@oracle
def oracle_node_tree(spans):
    """The tree of rules 5.2-5.5 as TraceNodes of the given records (roots and children in start
    order): what calculate_critical_path is given."""
    spans = _distinct(spans)

    def nodes(level):
        return [{"span": s, "children": nodes(_children_of(spans, s))} for s in sorted(level, key=lambda s: s.start_ms)]
    return nodes(_roots_of(spans))


class _Ambiguous(Exception):
    """Two children with the same clipped interval: the contract does not say which one is on the path."""


@oracle
def oracle_critical_path(spans):
    """Rules 5.7-5.15, walked exactly as rule 5.8 says, on the distinct spans: [(span_id, start,
    end)], or None when the contract does not decide (two children with the same clipped interval,
    two longest roots starting together)."""
    try:
        return _critical_path(_distinct(spans))
    except _Ambiguous:
        return None


def _critical_path(spans):
    roots = sorted(_roots_of(spans), key=lambda s: s.start_ms)
    if not roots:
        return []
    longest = max(s.duration_ms for s in roots)                      # rule 5.14
    tied = [s for s in roots if s.duration_ms == longest]
    if len(tied) > 1 and tied[0].start_ms == tied[1].start_ms:
        raise _Ambiguous
    pieces = []                                                      # (span, start, end), latest first

    def walk(span, start, stop):
        kids = []
        for c in _children_of(spans, span):                          # rule 5.7: clip, or ignore
            s, e = max(c.start_ms, start), min(_end(c), stop)
            if s <= e and not (c.start_ms > stop or _end(c) < start):
                kids.append((c, s, e))
        point = stop
        while True:
            ready = [k for k in kids if k[2] <= point]               # rule 5.9: ends no later than the point
            if not ready:
                break
            best = max(ready, key=lambda k: (k[2], k[1]))            # rules 5.8 and 5.10
            if sum(1 for k in ready if (k[2], k[1]) == (best[2], best[1])) > 1:
                raise _Ambiguous
            kids.remove(best)
            pieces.append((span, best[2], point))
            walk(best[0], best[1], best[2])
            point = best[1]
        pieces.append((span, start, point))

    root = tied[0]
    walk(root, root.start_ms, _end(root))
    path = []
    for span, s, e in reversed(pieces):                              # rule 5.11: time order, merged
        if e <= s:
            continue
        if path and path[-1][0] == span.span_id and path[-1][2] == _rel(s):
            path[-1] = (span.span_id, path[-1][1], _rel(e))
        else:
            path.append((span.span_id, _rel(s), _rel(e)))
    return path


def _self_time(spans, span) -> float:
    """Rule 5.16: duration minus the union of the children's intervals clipped to the span."""
    intervals = sorted((max(c.start_ms, span.start_ms), min(_end(c), _end(span))) for c in _children_of(spans, span))
    covered, run = 0.0, None
    for s, e in intervals:
        if e <= s:
            continue
        if run is None or s > run[1]:
            covered += run[1] - run[0] if run else 0.0
            run = [s, e]
        else:
            run[1] = max(run[1], e)
    covered += run[1] - run[0] if run else 0.0
    return span.duration_ms - covered


@oracle
def oracle_self_times(spans) -> list[float]:
    """Rule 5.16: the self time of each span given, in the order given."""
    return [_self_time(spans, s) for s in spans]


@oracle
def oracle_timeline(spans):
    """Rules 5.22-5.26: ([(span_id, parent_span_id, offset, duration, depth, status)], ordered);
    ordered is False when the rules contradict each other (a child given before an unrelated span
    given before the child's parent, all starting together): then any order with parents first
    passes."""
    spans = _distinct(spans)
    ids = {s.span_id: s for s in spans}
    first = min((s.start_ms for s in spans), default=0.0)

    def depth(s):
        d = 0
        while s.parent_span_id in ids:
            s, d = ids[s.parent_span_id], d + 1
        return d

    rows = {s.span_id: (s.span_id, s.parent_span_id, _rel(s.start_ms) - _rel(first), s.duration_ms, depth(s), s.status)
            for s in spans}
    position = {s.span_id: i for i, s in enumerate(spans)}

    def above(a, b):                   # a is an ancestor of b through spans that start with it
        while b.parent_span_id in ids and ids[b.parent_span_id].start_ms == a.start_ms:
            b = ids[b.parent_span_id]
            if b is a:
                return True
        return False

    def before(a, b):                  # rule 5.23
        if above(a, b):
            return True
        if above(b, a):
            return False
        return position[a.span_id] < position[b.span_id]

    order = []
    for start in sorted({s.start_ms for s in spans}):
        group = [s for s in spans if s.start_ms == start]
        ranked = sorted(group, key=lambda s: -sum(before(s, o) for o in group if o is not s))
        if any(not before(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:]):
            return [rows[s.span_id] for s in sorted(spans, key=lambda s: s.start_ms)], False
        order += ranked
    return [rows[s.span_id] for s in order], True


@oracle
def oracle_dependencies(spans):
    """Rules 5.27-5.30: sorted [(caller, callee, calls, errors)]."""
    spans = _distinct(spans)
    ids = {s.span_id: s for s in spans}
    edges = {}

    def add(caller, callee, error):
        calls, errors = edges.get((caller, callee), (0, 0))
        edges[(caller, callee)] = (calls + 1, errors + (1 if error else 0))

    for s in spans:
        parent = ids.get(s.parent_span_id)
        if parent is not None and parent.service != s.service:
            add(parent.service, s.service, s.status == "ERROR")
    for s in spans:
        if s.kind == "CLIENT" and not _children_of(spans, s):
            a = s.attributes
            target = a.get("db.system") or a.get("peer.service") or a.get("server.address")
            if target:
                add(s.service, target, s.status == "ERROR")
    return [(caller, callee, calls, errors) for (caller, callee), (calls, errors) in sorted(edges.items())]
