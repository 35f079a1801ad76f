"""Success criterion 4, performance visible, on generated traces: every analysis of Step 5 is
compared, trace by trace, with a small and obviously correct oracle written from the
contract's rules (5.2 to 5.30) in checks/oracles/step5.py.

The traces are drawn by Hypothesis, deterministically (the same traces on every run): random
trees with several roots, orphans whose parent is absent, duplicated span ids, equal start times,
zero-length spans, children that poke out of their parent or lie wholly outside it, back-to-back
children, children that end together, every childless-CLIENT case of the service map, and spans
given out of start order. A failure shows the smallest trace found, drawn as a tree with its
times, the oracle's answer and the learner's.

Times are whole milliseconds from an epoch base, so every sum and difference is exact.
"""
from __future__ import annotations

from kit.harness.expect import check, expect, fail
from kit.harness.generated import Rejected, generated as replayed
from kit.harness.learner import attr
from kit.harness.strategies import st
from checks.helpers import call_learner, picture_records
from checks.oracles.step5 import (oracle_critical_path, oracle_dependencies, oracle_node_tree, oracle_self_times,
                                  oracle_timeline, oracle_total, oracle_tree)

BASE = 1_700_000_000_000.0
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
MONITORING = "services.api_gateway.monitoring"
SERVICES = ("api-gateway", "order-service", "payment-service")
#: Attributes a span may carry: every childless-CLIENT case of rules 5.29 and 5.30. Never
#: `peer.service` and `server.address` without `db.system`: rule 5.29 does not say which of the two
#: names the callee then, so either reading is right.
TARGETS = ({}, {"db.system": "redis"}, {"peer.service": "ledger"}, {"server.address": "api.example"},
           {"db.system": "sqlite", "peer.service": "ledger", "server.address": "10.0.0.9"}, {"http.route": "/x"})
EPS = 1e-6


def _record(**fields):
    return attr("services.shared.span_store", "SpanRecord")(**fields)


def _sid(i: int) -> str:
    return f"{i + 1:016x}"


@st.composite
def traces(draw, *, duplicates: bool = False, max_spans: int = 8):
    """A trace as SpanRecords, in a drawn (not start) order. Parents point to earlier-drawn spans,
    so parent links never loop; a child's start is drawn near its parent's, so it may start
    before, inside or after it."""
    n = draw(st.integers(0, max_spans))
    spans = []
    for i in range(n):
        parent = draw(st.integers(-2, i - 1))            # -1: a root, -2: an orphan
        if parent >= 0:
            start = spans[parent].start_ms - BASE + 5 * draw(st.integers(-2, 12))
            parent_id = spans[parent].span_id
        else:
            start = 5 * draw(st.integers(0, 12))
            parent_id = None if parent == -1 else f"{0xdead0000 + i:016x}"
        spans.append(_record(trace_id=TRACE, span_id=_sid(i), parent_span_id=parent_id, name=f"s{i}",
                             service=draw(st.sampled_from(SERVICES)),
                             kind=draw(st.sampled_from(("SERVER", "CLIENT", "CLIENT", "INTERNAL"))),
                             start_ms=BASE + start, duration_ms=5 * draw(st.integers(0, 12)),
                             status=draw(st.sampled_from(("UNSET", "OK", "ERROR"))),
                             attributes=dict(draw(st.sampled_from(TARGETS)))))
    order = draw(st.permutations(range(n)))
    given_spans = [spans[i] for i in order]
    if duplicates and n:
        # A copy comes after its original, with the same start and parent and no later end, so
        # that "its first occurrence" is the same span in input order and in start order.
        for i in draw(st.lists(st.integers(0, n - 1), max_size=2, unique=True)):
            original = spans[i]
            copy = _record(trace_id=TRACE, span_id=original.span_id, parent_span_id=original.parent_span_id,
                           name=original.name + "-copy", service=original.service, kind=original.kind,
                           start_ms=original.start_ms, duration_ms=5 * draw(st.integers(0, int(original.duration_ms) // 5)),
                           status=original.status, attributes=original.attributes)
            at = given_spans.index(original)
            given_spans.insert(draw(st.integers(at + 1, len(given_spans))), copy)
    return given_spans


def generated(strategy, examples=()):
    """Generated traces (`kit.harness.generated`, 40 of them), the hand-written `examples` first."""
    return replayed(strategy, examples=examples, max_examples=40)


def _r(name, start, stop, parent=None, *, service="api-gateway", kind="INTERNAL", status="UNSET", attributes=None,
       orphan=False):
    """A hand-written span: id from its name, times in ms from BASE."""
    def sid(n):
        return n.encode().hex().rjust(16, "0")[-16:]
    parent_id = sid("gone-" + name) if orphan else (sid(parent) if parent else None)
    return _record(trace_id=TRACE, span_id=sid(name), parent_span_id=parent_id, name=name, service=service, kind=kind,
                   start_ms=BASE + start, duration_ms=stop - start, status=status, attributes=attributes or {})


def scenarios(*, duplicates: bool = False):
    """The hand-written traces every generated check tries first: each case the contract names
    (a duplicated span id only where `duplicates` is set)."""
    worked = [_r("A", 0, 100), _r("B", 10, 40, "A"), _r("C", 20, 90, "A"), _r("D", 30, 60, "C")]
    parallel = [_r("R", 0, 100), _r("P1", 10, 80, "R"), _r("P3", 20, 90, "R"), _r("P2", 10, 90, "R"),
                _r("P4", 30, 70, "R")]
    back_to_back = [_r("S3", 60, 100, "R"), _r("S2", 30, 60, "R"), _r("S1", 0, 30, "R"), _r("R", 0, 100)]
    poking = [_r("R", 0, 100), _r("over", 70, 130, "R"), _r("early", -20, 10, "R"), _r("outside", 110, 150, "R"),
              _r("inner", 115, 140, "outside"), _r("before", -50, -10, "R"), _r("deep", 80, 120, "over")]
    zero = [_r("R", 0, 50), _r("Z", 20, 20, "R"), _r("K", 10, 20, "R"), _r("Z2", 60, 60), _r("E", 40, 40, "R")]
    roots = [_r("short", 0, 10), _r("long", 5, 60), _r("kid", 20, 30, "long"), _r("tie", 100, 155),
             _r("lost", 1, 56, orphan=True), _r("lostkid", 10, 40, "lost")]
    equal_starts = [_r("X", 10, 20, "P"), _r("K", 10, 15, "Y"), _r("Y", 10, 30, orphan=True), _r("P", 5, 50, "A"),
                    _r("A", 0, 100)]
    copies = [_r("A", 0, 100), _r("B", 10, 60, "A"), _r("C", 30, 50, "A")]
    copies.insert(2, _record(trace_id=TRACE, span_id=copies[1].span_id, parent_span_id=copies[1].parent_span_id,
                             name="B-copy", service="api-gateway", start_ms=BASE + 10, duration_ms=20.0))
    ties = [_r("late", 50, 80, "R"), _r("R", 0, 100), _r("early", 10, 40, "R"), _r("mid", 45, 50, "R")]
    services = [
        _r("g", 0, 100, service="api-gateway", kind="SERVER"),
        _r("gc1", 5, 20, "g", service="api-gateway", kind="CLIENT", attributes={"peer.service": "auth-service"}),
        _r("as", 6, 19, "gc1", service="auth-service", kind="SERVER"),
        _r("gc2", 25, 95, "g", service="api-gateway", kind="CLIENT"),
        _r("os", 26, 94, "gc2", service="order-service", kind="SERVER", status="ERROR"),
        _r("in", 27, 28, "os", service="order-service"),
        _r("db", 30, 35, "os", service="order-service", kind="CLIENT", attributes={"db.system": "redis", "server.address": "cache"}),
        _r("all", 36, 38, "os", service="order-service", kind="CLIENT", status="ERROR",
           attributes={"db.system": "sqlite", "peer.service": "ledger", "server.address": "10.0.0.9"}),
        _r("ext", 40, 60, "os", service="order-service", kind="CLIENT", status="ERROR",
           attributes={"server.address": "api.example"}),
        _r("peer", 60, 70, "os", service="order-service", kind="CLIENT", attributes={"peer.service": "ledger"}),
        _r("bare", 70, 72, "os", service="order-service", kind="CLIENT"),
        _r("notclient", 72, 74, "os", service="order-service", attributes={"db.system": "redis"}),
        _r("pay", 75, 90, "os", service="payment-service", kind="SERVER", status="ERROR"),
    ]
    return [worked, parallel, back_to_back, poking, zero, roots, equal_starts, ties, services] + ([copies] if duplicates else [])


def rel(x: float) -> float:
    return round(x - BASE, 6)


# -- calling the learner's functions ---------------------------------------------------------------

def call(name, *args, **kwargs):
    """Call a Step 5 function; a NotImplementedError or a crash fails the check plainly."""
    return call_learner(MONITORING, name, *args, **kwargs)


def _did(what: str, spans) -> str:
    return f"{what} of this trace (times in ms from its start; spans given in the order listed):\n{picture_records(spans, BASE)}\n"


def _read_tree(nodes, did):
    """The learner's tree in the oracle's shape, and the first sibling list not in start order."""
    unordered = []
    budget = [10_000]

    def shape(level):
        out = []
        for node in level:
            budget[0] -= 1
            if budget[0] < 0:
                fail(did=did, expected="a finite tree", saw="more nodes than spans (a loop of children?)")
            out.append((rel(node["span"].start_ms), node["span"].span_id, node["span"].name, shape(node["children"])))
        starts = [o[0] for o in out]
        if starts != sorted(starts) and not unordered:
            unordered.append([f"{o[2]}@{o[0]:g}" for o in out])
        return sorted(out)
    try:
        return shape(nodes), unordered
    except (KeyError, TypeError, AttributeError) as exc:
        fail(did=did, expected='nodes {"span": SpanRecord, "children": [...]}', saw=f"{nodes!r:.300} ({type(exc).__name__}: {exc})")


def _names(shape):
    return [(name, _names(kids)) for _, _, name, kids in shape]


# -- the checks ------------------------------------------------------------------------------------

@check(step=5, criterion="performance-visible", todo="TODO 1", rules=("5.2", "5.3", "5.4", "5.5"))
def test_generated_trees_match_the_oracle():
    """build_trace_tree on generated traces: one node per span, orphans as roots, start order, first copy kept"""
    call("build_trace_tree", [])

    @generated(traces(duplicates=True), scenarios(duplicates=True))
    def run(spans):
        did = _did("called build_trace_tree", spans)
        got, unordered = _read_tree(call("build_trace_tree", spans), did)
        want = oracle_tree(spans)
        expect(got == want, did=did,
               expected=f"the tree {_names(want)}: one node per span id (a duplicate kept once: its first "
                        "occurrence), a span whose parent is absent as a root",
               saw=f"the tree {_names(got)}")
        expect(not unordered, did=did, expected="roots and each node's children in start order",
               saw=lambda: f"siblings in this order: {unordered[0]} (name@start)")
    run()


@check(step=5, criterion="performance-visible", todo="TODO 2", rules=("5.6",))
def test_generated_total_durations_match_the_oracle():
    """calculate_total_duration on generated traces: latest end minus earliest start, 0 for none"""
    got = call("calculate_total_duration", [])
    expect(got == 0, did="called calculate_total_duration([])", expected="0", saw=got)

    @generated(traces(duplicates=True), scenarios(duplicates=True))
    def run(spans):
        got = call("calculate_total_duration", spans)
        want = oracle_total(spans)
        expect(isinstance(got, int | float) and abs(got - want) < EPS, did=_did("called calculate_total_duration", spans),
               expected=f"{want:g} (the latest end minus the earliest start)", saw=got)
    run()


def _read_path(segments, spans, did):
    names = {}
    for s in spans:
        names.setdefault(s.span_id, s)   # a duplicated id: its first occurrence (rule 5.5)
    try:
        rows = [(seg["span_id"], round(seg["start_ms"] - BASE, 6), round(seg["end_ms"] - BASE, 6)) for seg in segments]
        wrong = [seg for seg in segments
                 if seg["span_id"] not in names or seg["name"] != names[seg["span_id"]].name
                 or seg["service"] != names[seg["span_id"]].service
                 or abs(seg["duration_ms"] - (seg["end_ms"] - seg["start_ms"])) > EPS]
    except (KeyError, TypeError) as exc:
        fail(did=did, expected='segments {"span_id", "name", "service", "start_ms", "end_ms", "duration_ms"}',
             saw=f"{segments!r:.300} ({type(exc).__name__}: {exc})")
    expect(not wrong, did=did, expected="each segment's name and service those of its span_id, and duration_ms = "
           "end_ms - start_ms (times in epoch ms)", saw=lambda: f"{wrong[0]}")
    return rows


def _show_path(rows, spans):
    names = {s.span_id: s.name for s in spans}
    return "[" + ", ".join(f"{names.get(i, i)} {a:g}-{b:g}" for i, a, b in rows) + "]" if rows else "[]"


@check(step=5, criterion="performance-visible", todo="TODO 3",
       rules=("5.7", "5.8", "5.9", "5.10", "5.11", "5.12", "5.13", "5.14", "5.15"))
def test_generated_critical_paths_match_the_oracle():
    """calculate_critical_path on generated trees: clipping, walk back, ties, segments, longest root"""
    got = call("calculate_critical_path", [])
    expect(got == [], did="called calculate_critical_path([])", expected="[]", saw=got)

    @generated(traces(duplicates=True), scenarios(duplicates=True))
    def run(spans):
        want = oracle_critical_path(spans)
        if want is None:   # the contract does not decide this one
            raise Rejected
        did = _did("called calculate_critical_path on the tree", spans)
        got = _read_path(call("calculate_critical_path", oracle_node_tree(spans)), spans, did)
        expect(got == want, did=did,
               expected=f"{_show_path(want, spans)}: walking back from the longest root's end, each time the "
                        "child (clipped to its parent) that ends last no later than the point, the later start "
                        "on a tie; one segment per contiguous stretch of a span, in time order",
               saw=_show_path(got, spans))
    run()


def _read_bottlenecks(found, did):
    try:
        return [(b["span_id"], b["operation"], b["service"], b["duration_ms"], b["self_time_ms"],
                 b["percentage_of_total"]) for b in found]
    except (KeyError, TypeError) as exc:
        fail(did=did, expected='entries {"span_id", "operation", "service", "duration_ms", "self_time_ms", '
             '"percentage_of_total"}', saw=f"{found!r:.300} ({type(exc).__name__}: {exc})")


@st.composite
def bottleneck_cases(draw):
    """A trace, a threshold (0; some span's exact self time, a hair above or below it; or more than
    any span) and a top (usually at least the number of spans, sometimes fewer, sometimes 0)."""
    spans = draw(traces())
    selfs = oracle_self_times(spans) or [0.0]
    how = draw(st.sampled_from(("zero", "zero", "zero", "exact", "exact", "above", "below", "huge")))
    pick = draw(st.sampled_from(selfs))
    threshold = {"zero": 0.0, "exact": pick, "above": pick + 0.001, "below": max(pick - 0.001, 0.0),
                 "huge": 10_000.0}[how]
    top = draw(st.one_of(st.integers(len(spans), len(spans) + 1), st.integers(len(spans), len(spans) + 1),
                         st.integers(0, len(spans))))
    return spans, threshold, top


@check(step=5, criterion="performance-visible", todo="TODO 4", rules=("5.16", "5.17", "5.18", "5.19", "5.20", "5.21"))
def test_generated_bottlenecks_match_the_oracle():
    """identify_bottlenecks on generated traces: self time, threshold kept at equality, top, ties, percentage"""
    zero = [_record(trace_id=TRACE, span_id=_sid(i), name=f"z{i}", service="svc", start_ms=BASE, duration_ms=0.0)
            for i in range(2)]
    found = _read_bottlenecks(call("identify_bottlenecks", zero, threshold_ms=0.0, top=5), "identify_bottlenecks")
    expect([f[5] for f in found] == [0, 0], did="called identify_bottlenecks(threshold_ms=0, top=5) on two spans of "
           "0 ms that start together (a total duration of 0)", expected="two entries with percentage_of_total 0",
           saw=found)

    @generated(bottleneck_cases(), [(spans, threshold, top) for spans in scenarios()
                                    for threshold, top in ((0.0, 99), (30.0, 3), (30.001, 99), (29.999, 1))])
    def run(case):
        verify_bottlenecks(*case)
    run()


def verify_bottlenecks(spans, threshold, top):
    if True:
        did = _did(f"called identify_bottlenecks(threshold_ms={threshold:g}, top={top})", spans)
        got = _read_bottlenecks(call("identify_bottlenecks", spans, threshold_ms=threshold, top=top), did)
        by_id = {s.span_id: s for s in spans}
        total = oracle_total(spans)
        selfs = oracle_self_times(spans)
        ranked = sorted(((selfs[i], s) for i, s in sorted(enumerate(spans), key=lambda p: p[1].start_ms)),
                        key=lambda p: -p[0])
        want = [(s.span_id, t) for t, s in ranked if t >= threshold][:top]
        # Spans with the same self time and start may come in either order (or either be cut by top).
        key = {s.span_id: (t, s.start_ms) for t, s in ranked}
        names = {s.span_id: s.name for s in spans}
        show = lambda rows: "[" + ", ".join(f"{names.get(i, i)} {t:g}" for i, t in rows) + "]"  # noqa: E731
        got_ids = [(g[0], g[4]) for g in got]
        same = (len(got) == len(want) and len({g[0] for g in got}) == len(got)
                and all(g[0] in key and key[g[0]] == key[w[0]] for g, w in zip(got, want)))
        expect(same, did=did,
               expected=f"(name, self time) {show(want)}: self time = duration minus the union of the children's "
                        f"clipped intervals; self_time_ms >= {threshold:g} kept, largest first, equal self times "
                        f"in start order, at most {top}", saw=show(got_ids))
        for span_id, operation, service, duration, self_time, percentage in got:
            s = by_id[span_id]
            pct = key[span_id][0] / total * 100 if total else 0.0
            expect(operation == s.name and service == s.service and abs(duration - s.duration_ms) < EPS
                   and abs(self_time - key[span_id][0]) < EPS and abs(percentage - pct) < 1e-6, did=did,
                   expected=f"for {s.name}: operation {s.name!r}, service {s.service!r}, duration_ms "
                            f"{s.duration_ms:g}, self_time_ms {key[span_id][0]:g}, percentage_of_total {pct:g} "
                            f"(self time / total duration {total:g} * 100, 0 when the total is 0)",
                   saw=f"operation {operation!r}, service {service!r}, duration_ms {duration}, self_time_ms "
                       f"{self_time}, percentage_of_total {percentage}")


@check(step=5, criterion="performance-visible", todo="TODO 5", rules=("5.22", "5.23", "5.24", "5.25", "5.26"))
def test_generated_timelines_match_the_oracle():
    """build_timeline on generated traces: start order, parents first on equal starts, offsets, orphans at depth 0"""
    call("build_timeline", [])

    @generated(traces(), scenarios())
    def run(spans):
        did = _did("called build_timeline", spans)
        rows = call("build_timeline", spans)
        try:
            got = [(r["span_id"], r["parent_span_id"] or None, round(r["offset_ms"], 6), r["duration_ms"], r["depth"], r["status"])
                   for r in rows]
            named = all(r["name"] == s.name and r["service"] == s.service
                        for r in rows for s in spans if s.span_id == r["span_id"])
        except (KeyError, TypeError) as exc:
            fail(did=did, expected='entries {"span_id", "parent_span_id", "name", "service", "offset_ms", '
                 '"duration_ms", "depth", "status"}', saw=f"{rows!r:.300} ({type(exc).__name__}: {exc})")
        want, ordered = oracle_timeline(spans)
        names = {s.span_id: s.name for s in spans}
        show = lambda rs: [(names.get(r[0], r[0]), r[1] and names.get(r[1], r[1] + " (absent)"), r[2], r[4])  # noqa: E731
                           for r in rs]
        expected = (f"(name, parent, offset, depth) {show(want)}: one entry per span in start order, a parent before "
                    "a child that starts with it, otherwise the order given; offsets from the trace's start; an "
                    "orphan keeps the parent id it names, at depth 0")
        if ordered:
            expect(got == want and named, did=did, expected=expected, saw=show(got))
        else:                          # the rules contradict: any order with parents first passes
            expect(sorted(got) == sorted(want) and named and [g[2] for g in got] == sorted(g[2] for g in got)
                   and all(g[0] != w[1] for i, g in enumerate(got) for w in got[:i] if w[2] == g[2]),
                   did=did, expected=expected, saw=show(got))
    run()


@check(step=5, criterion="performance-visible", todo="TODO 6", rules=("5.27", "5.28", "5.29", "5.30"))
def test_generated_service_maps_match_the_oracle():
    """build_service_dependencies on generated traces: calls and errors between services, and childless CLIENT spans"""
    call("build_service_dependencies", [])

    @generated(traces(), scenarios())
    def run(spans):
        did = _did("called build_service_dependencies", spans)
        edges = call("build_service_dependencies", spans)
        try:
            got = [(e["caller"], e["callee"], e["calls"], e["errors"]) for e in edges]
        except (KeyError, TypeError) as exc:
            fail(did=did, expected='edges {"caller", "callee", "calls", "errors"}',
                 saw=f"{edges!r:.300} ({type(exc).__name__}: {exc})")
        want = oracle_dependencies(spans)
        expect(got == want, did=did,
               expected=f"(caller, callee, calls, errors) {want}: a parent and its child in another service is a "
                        "call (an error when the child is ERROR); a CLIENT span with no child calls its db.system, "
                        "else its peer.service, else its server.address (none: no edge); sorted by caller, callee",
               saw=got)
    run()
