"""Success criterion 6, errors traced: the tail-sampling processor of Step 6 on its own.

Each check builds a `TracerProvider` whose spans go through the learner's `TailSamplingProcessor`
to a `SimpleSpanProcessor(InMemorySpanExporter())`, exactly as Step 1 wires it. Head decisions
come from a kit sampler that the check scripts (a local root whose name starts with "sampled" is
head-sampled, a local child follows its parent, every other span is RECORD_ONLY), span times are
given explicitly and ids count up: nothing depends on the clock or on chance. Remote parents are
`SpanContext(is_remote=True)`; an "unseen local parent" is a span of another provider that the
processor never saw start.
"""
from __future__ import annotations

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from kit.harness.expect import check, expect, fail
from kit.harness.learner import attr
from checks.helpers import CountingIds

MS = 1_000_000                      # nanoseconds in a millisecond
T0 = 1_700_000_000_000_000_000      # a fixed start time, in nanoseconds since the epoch
REMOTE_TRACE = 0x5B8EFFF798038103D269B633813FC60C


def _config(**options):
    return attr("services.shared.sampling", "SamplingConfig")(**options)


class _Scripted(Sampler):
    """Head decisions chosen by the check: a span with a local parent follows it; any other span
    (a local root) is head-sampled when its name starts with "sampled". Never DROP."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        parent = otel_trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid and not parent.is_remote:
            sampled = parent.trace_flags.sampled
        else:
            sampled = name.startswith("sampled")
        return SamplingResult(Decision.RECORD_AND_SAMPLE if sampled else Decision.RECORD_ONLY, attributes,
                              parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return "Scripted"


class Tail:
    """The learner's TailSamplingProcessor between a tracer and an in-memory exporter, with the
    story of what the check did to it (for the failure message)."""

    def __init__(self, *, max_buffered_traces: int | None = None, **config) -> None:
        tail_cls = attr("services.shared.sampling", "TailSamplingProcessor")
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=_Scripted(), id_generator=CountingIds(0),
                                       resource=Resource.create({"service.name": "report-service"}))
        options = {} if max_buffered_traces is None else {"max_buffered_traces": max_buffered_traces}
        settings = ", ".join(f"{k}={v}" for k, v in config.items())
        try:
            self.processor = tail_cls(SimpleSpanProcessor(self.exporter), _config(**config), **options)
        except Exception as exc:  # noqa: BLE001
            fail(did=f"built TailSamplingProcessor(SimpleSpanProcessor(exporter), SamplingConfig({settings}))",
                 expected="a processor", saw=f"{type(exc).__name__}: {exc}")
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("checks")
        extra = f", max_buffered_traces={max_buffered_traces}" if max_buffered_traces is not None else ""
        self.story = [f"TailSamplingProcessor(SimpleSpanProcessor(exporter), SamplingConfig({settings}){extra})"]
        self.spans = {}

    def start(self, name, at_ms, parent=None, *, remote=None, elsewhere=None):
        """Start `name` at `at_ms`: under a local span (`parent`), under a remote parent with the
        given span id (`remote`), or under a span the processor never saw (`elsewhere`)."""
        if remote is not None:
            context = otel_trace.set_span_in_context(NonRecordingSpan(SpanContext(
                REMOTE_TRACE, remote, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))))
            where = f" under remote parent {remote:x}"
        elif elsewhere is not None:
            context = otel_trace.set_span_in_context(elsewhere)
            where = " under a local span the processor never saw start"
        elif parent is not None:
            context = otel_trace.set_span_in_context(self.spans[parent])
            where = f" under {parent}"
        else:
            context, where = None, ""
        try:
            span = self.tracer.start_span(name, context=context, kind=SpanKind.SERVER if parent is None else SpanKind.INTERNAL,
                                          attributes={"step": name}, start_time=T0 + int(at_ms * MS))
        except Exception as exc:  # noqa: BLE001
            fail(did=self.did(f"started {name}{where}"), expected="the span to start",
                 saw=f"{type(exc).__name__}: {exc}")
        self.spans[name] = span
        self.story.append(f"{at_ms:g} ms: {name} starts{where}")
        return span

    def end(self, name, at_ms, *, error=False):
        span = self.spans[name]
        if error:
            span.set_status(Status(StatusCode.ERROR, "failed"))
            span.add_event("exception", {"exception.type": "RuntimeError", "exception.message": "failed"})
        try:
            span.end(end_time=T0 + int(at_ms * MS))
        except Exception as exc:  # noqa: BLE001
            fail(did=self.did(f"ended {name}"), expected="the span to end", saw=f"{type(exc).__name__}: {exc}")
        self.story.append(f"{at_ms:g} ms: {name} ends{' with status ERROR' if error else ''}")

    def run(self, name, start_ms, end_ms, parent=None, *, error=False, **where):
        self.start(name, start_ms, parent, **where)
        self.end(name, end_ms, error=error)

    def exported(self, *, flush: bool = False) -> set[str]:
        """The names of the spans exported so far; with `flush`, after the processor's
        force_flush() (rule 1.10: kept spans are exported by then, not necessarily before)."""
        if flush:
            try:
                self.processor.force_flush()
            except Exception as exc:  # noqa: BLE001
                fail(did=self.did("called force_flush()"), expected="force_flush() to work",
                     saw=f"{type(exc).__name__}: {exc}")
        return {s.name for s in self.exporter.get_finished_spans()}

    def did(self, last: str | None = None) -> str:
        lines = self.story + ([last] if last else [])
        return "ran spans through " + lines[0] + ":\n  " + "\n  ".join(lines[1:])

    def expect_exported(self, want: set[str], dropped: set[str], why: str) -> None:
        got = self.exported()
        expect(want <= got and not dropped & got, did=self.did(),
               expected=f"exported: {sorted(want)}; not exported: {sorted(dropped)} ({why})",
               saw=f"exported: {sorted(got) or 'nothing'}")


def _elsewhere():
    """A span of another provider, not sampled: a local parent the processor never saw start."""
    other = TracerProvider(sampler=_Scripted(), id_generator=CountingIds(0x5000))
    return other.get_tracer("elsewhere").start_span("elsewhere", start_time=T0)


@check(step=6, criterion="errors-traced", todo="TODO 8", rules=("6.17", "6.18"))
def test_each_local_root_starts_its_own_local_trace():
    """Remote, absent or unseen parents make local roots; a service called twice has two local traces"""
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0)
    tail.start("X1", 0, remote=0xA1)                  # first call of this service in the trace
    tail.start("X2", 5, remote=0xA2)                  # second call, same trace, another remote parent
    tail.run("x2-child", 6, 7, "X2")
    tail.end("X2", 8)                                 # fast, no error: its own local trace is dropped
    tail.run("x1-child", 1, 9, "X1", error=True)
    tail.end("X1", 10)                                # holds an error: kept
    tail.expect_exported({"X1", "x1-child"}, {"X2", "x2-child"},
                         "X1 and X2 each start a local trace (their parents are remote): X1's holds an error, "
                         "X2's is fast and fine, so only X1's is kept")
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0)
    away = _elsewhere()
    tail.start("U", 40, elsewhere=away)
    tail.run("u-child", 41, 42, "U", error=True)
    tail.end("U", 50)
    tail.run("V", 60, 61, elsewhere=away)
    tail.run("W", 70, 71)
    tail.expect_exported({"U", "u-child"}, {"V", "W"},
                         "a span whose local parent the processor never saw start is a local root: U's local "
                         "trace holds an error; V (same unseen parent) and W (no parent) are fast and fine")


@check(step=6, criterion="errors-traced", todo="TODO 9", rules=("6.18", "6.19"))
def test_tail_keeps_head_sampled_failed_and_slow_local_traces():
    """Kept: head-sampled, holding an ERROR span (keep_errors), root lasting >= slow_threshold_ms; else dropped"""
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0)
    tail.start("sampled-root", 0)
    tail.run("sampled-child", 1, 2, "sampled-root")
    tail.end("sampled-root", 3)
    tail.start("failing-root", 10)
    tail.run("before-error", 11, 12, "failing-root")
    tail.run("error", 12, 13, "failing-root", error=True)
    tail.run("after-error", 13, 14, "failing-root")
    tail.end("failing-root", 15)
    tail.start("exact-root", 100)
    tail.run("exact-child", 101, 102, "exact-root")
    tail.end("exact-root", 600)                       # exactly 500 ms
    tail.start("short-root", 1000)
    tail.run("short-child", 1001, 1002, "short-root")
    tail.end("short-root", 1000 + 499.999999)         # 1 ns short of 500 ms
    tail.start("fast-root", 2000)
    tail.start("slow-child", 2001, "fast-root")       # lasts long, but the root is what counts
    tail.end("fast-root", 2010)
    tail.end("slow-child", 2700)
    tail.expect_exported({"sampled-root", "sampled-child", "failing-root", "before-error", "error", "after-error",
                          "exact-root", "exact-child"}, {"short-root", "short-child", "fast-root", "slow-child"},
                         "a head-sampled trace is kept; one holding an ERROR span is kept whole; a root lasting "
                         "exactly slow_threshold_ms counts as slow, 1 ns less does not; a fast root with a slow "
                         "child is not slow (its late child follows the drop)")
    strict = Tail(ratio=0.0, slow_threshold_ms=500.0, keep_errors=False)
    strict.start("failing-root", 0)
    strict.run("error", 1, 2, "failing-root", error=True)
    strict.end("failing-root", 3)
    strict.start("slow-failing-root", 10)
    strict.run("slow-error", 11, 12, "slow-failing-root", error=True)
    strict.end("slow-failing-root", 600)
    strict.start("sampled-failing-root", 1000)
    strict.run("sampled-error", 1001, 1002, "sampled-failing-root", error=True)
    strict.end("sampled-failing-root", 1003)
    strict.expect_exported({"slow-failing-root", "slow-error", "sampled-failing-root", "sampled-error"},
                           {"failing-root", "error"},
                           "with keep_errors=False an error alone keeps nothing; slowness and head sampling still do")


@check(step=6, criterion="errors-traced", todo="TODO 10", rules=("6.20",))
def test_kept_spans_reach_the_exporter_as_sampled_copies():
    """Kept spans reach SimpleSpanProcessor marked sampled, with ids, parent, attributes, events and status"""
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0)
    tail.start("root", 0, remote=0xB1)
    tail.run("failing", 1, 2, "root", error=True)
    tail.end("root", 3)
    originals = {name: tail.spans[name] for name in ("root", "failing")}
    exported = {s.name: s for s in tail.exporter.get_finished_spans()}
    expect(set(originals) <= set(exported), did=tail.did(),
           expected="root and failing exported: the local trace holds an error. Neither span is marked sampled "
                    "(the head sampler said RECORD_ONLY), and SimpleSpanProcessor skips such spans: hand it a "
                    "copy marked sampled", saw=f"exported: {sorted(exported) or 'nothing'}")
    for name, original in originals.items():
        copy = exported[name]
        want = (original.context.trace_id, original.context.span_id, original.parent.span_id if original.parent else None,
                dict(original.attributes), [e.name for e in original.events], original.status.status_code,
                original.start_time, original.end_time, original.kind)
        got = (copy.context.trace_id, copy.context.span_id, copy.parent.span_id if copy.parent else None,
               dict(copy.attributes or {}), [e.name for e in copy.events], copy.status.status_code,
               copy.start_time, copy.end_time, copy.kind)
        expect(copy.context.trace_flags.sampled and got == want, did=tail.did(),
               expected=f"{name} exported marked sampled and otherwise as recorded: (trace id, span id, parent, "
                        f"attributes, events, status, start, end, kind) = {want}",
               saw=f"sampled={copy.context.trace_flags.sampled}, {got}")


@check(step=6, criterion="errors-traced", todo="TODO 11", rules=("6.21",))
def test_spans_ending_after_the_decision_follow_it():
    """A span that ends after its local trace was decided is exported if kept, dropped if not"""
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0)
    tail.start("kept-root", 0)
    tail.start("kept-late", 1, "kept-root")
    tail.run("kept-error", 2, 3, "kept-root", error=True)
    tail.end("kept-root", 4)
    tail.end("kept-late", 50)
    tail.start("dropped-root", 100)
    tail.start("dropped-late", 101, "dropped-root")
    tail.end("dropped-root", 102)
    tail.start("dropped-late-child", 103, "dropped-late")
    tail.end("dropped-late-child", 104, error=True)
    tail.end("dropped-late", 900)
    tail.start("sampled-root", 1000)
    tail.start("sampled-late", 1001, "sampled-root")
    tail.end("sampled-root", 1002)
    tail.end("sampled-late", 1003)
    tail.expect_exported({"kept-root", "kept-late", "kept-error", "sampled-root", "sampled-late"},
                         {"dropped-root", "dropped-late", "dropped-late-child"},
                         "spans that end after their local root follow the decision made when it ended, even an "
                         "ERROR or a long span: the decision is made once")


@check(step=6, criterion="errors-traced", todo="TODO 11", rules=("6.22", "6.23"))
def test_a_full_buffer_decides_the_oldest_undecided_trace_early():
    """max_buffered_traces: at most that many undecided; the oldest is decided early, kept only for an error"""
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0, max_buffered_traces=2)
    tail.start("A", 0)
    tail.run("a-child", 1, 2, "A")
    tail.start("B", 3)
    tail.run("b-child", 4, 5, "B")
    tail.end("A", 600)
    tail.end("B", 603)
    tail.expect_exported({"A", "a-child", "B", "b-child"}, set(),
                         "two undecided local traces fit in max_buffered_traces=2: both held until their slow "
                         "roots end, then kept")
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0, max_buffered_traces=2)
    tail.start("C", 0)
    tail.run("c-child", 1, 2, "C")
    tail.start("D", 3)
    tail.run("d-child", 4, 5, "D")
    tail.start("E", 6)                                # a third undecided trace: C, the oldest, is decided now
    tail.run("e-child", 7, 8, "E")
    tail.end("C", 700)
    tail.end("D", 703)
    tail.end("E", 706)
    tail.expect_exported({"D", "d-child", "E", "e-child"}, {"C", "c-child"},
                         "when E arrives the buffer is full: C, the oldest undecided, is decided as if its root "
                         "ended then (not head-sampled, no error so far: dropped, and its slow root follows that); "
                         "D and E are held to the end and kept (slow)")
    tail = Tail(ratio=0.0, slow_threshold_ms=500.0, max_buffered_traces=2)
    tail.start("F", 0)
    tail.run("f-error", 1, 2, "F", error=True)
    tail.start("G", 3)
    tail.start("H", 4)                                # F is decided early: it holds an error, so it is kept
    early = tail.exported(flush=True)
    tail.run("f-late", 5, 6, "F")
    tail.end("F", 7)
    tail.end("G", 8)
    tail.end("H", 9)
    expect("f-error" in early, did=tail.did(),
           expected="f-error exported once H arrived (at the latest by force_flush()): F, the oldest undecided "
                    "trace, was decided early and kept because it holds an ERROR span",
           saw=f"exported when H started, after force_flush(): {sorted(early) or 'nothing'}")
    tail.expect_exported({"F", "f-error", "f-late"}, {"G", "H"},
                         "F, kept early for its error, exports its later spans too; G and H are fast and fine")
