"""The reference Step 2 (`solution/services/shared/trace_context.py`) passes the W3C Trace Context
test suite.

The official suite (github.com/w3c/trace-context, `test/test.py`, run at its default
STRICT_LEVEL 2) is a harness: it POSTs a request carrying chosen `traceparent`/`tracestate`
headers to a service under test, the service calls the harness back (once, or several times),
and the harness checks the `traceparent`/`tracestate` the service forwarded on those callbacks.
Every case of that suite is reproduced below under the suite's own test name, in our own
words; nothing of the suite's code is used.

The service under test is modelled three ways (the `service` fixture), each receiving the
headers exactly as the harness sends them, as a list of (name, value) pairs in which a name
may repeat:

* ``dict``: the headers folded into a plain dict, as a proxy or a framework may do: names keep
  the casing sent, and a header sent several times becomes one value joined with commas
  (RFC 9110, section 5.3). ``extract_context(headers)``, then a SERVER span started as a child
  of the extracted context, then per callback a CLIENT span and ``inject_context({}, ...)``.
* ``headers``: the same, but the handler hands over Starlette's multi-valued ``Headers``
  (``request.headers``, names lowercased as every ASGI server does).
* ``app``: a tiny FastAPI app instrumented by OpenTelemetry with ``WorkshopPropagator`` as the
  process-wide propagator (as Step 1 sets it), called through Starlette's ``TestClient``; the
  instrumentation extracts from the ASGI scope and the handler injects, once per callback,
  under a CLIENT span (what the httpx instrumentation does for each outgoing call).

The harness reads what comes back strictly, and so do we (`Callback`): exactly one
`traceparent`, in the version 00 format with non-zero ids; every `tracestate` member in the
W3C grammar (a member the harness cannot read fails the test), several `tracestate` headers
read as one list, a repeated key keeping its first value.

The reference is loaded from its file under a private module name, as tests/test_span_store.py
does: the test process never imports `services` (both trees define it), and trace_context.py
needs nothing else of the tree.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

MODULE_PATH = Path(__file__).resolve().parents[2] / "solution/services/shared/trace_context.py"

TRACE_ID = "12345678901234567890123456789012"
PARENT_ID = "1234567890123456"
SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-01"
NOT_SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-00"

Headers = list[tuple[str, str]]


def load_trace_context():
    """The reference trace_context module, loaded once per process from its file."""
    name = "_kit_tests_w3c_trace_context"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, MODULE_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# -- what the harness reads back --------------------------------------------------------------
_OUT_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_OUT_KEY = r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
_OUT_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_OUT_MEMBER = re.compile(f"({_OUT_KEY})=({_OUT_VALUE})")


@dataclass
class Callback:
    """What the service forwarded on one callback, read as strictly as the harness reads it."""

    trace_id: str
    parent_id: str
    flags: str
    tracestate: dict[str, str]      # in the order forwarded; a repeated key keeps its first value
    tracestate_headers: list[str]   # the raw tracestate values, to see that none is empty

    @classmethod
    def read(cls, headers: dict[str, str]) -> Callback:
        parents = [value for name, value in headers.items() if name.lower() == "traceparent"]
        assert len(parents) == 1, f"expected exactly one forwarded traceparent, got {parents!r}"
        match = _OUT_TRACEPARENT.fullmatch(parents[0])
        assert match, f"forwarded traceparent {parents[0]!r} is not in the version 00 format"
        trace_id, parent_id, flags = match.groups()
        assert trace_id != "0" * 32 and parent_id != "0" * 16, parents[0]

        raw = [value for name, value in headers.items() if name.lower() == "tracestate"]
        state: dict[str, str] = {}
        for value in raw:
            for member in re.split(r"[ \t]*,[ \t]*", value):
                if not member:
                    continue
                parsed = _OUT_MEMBER.fullmatch(member)
                assert parsed, f"forwarded tracestate member {member!r} breaks the W3C grammar"
                state.setdefault(parsed.group(1), parsed.group(2))
        return cls(trace_id, parent_id, flags, state, raw)


# -- the service under test -------------------------------------------------------------------
Forward = Callable[..., list[Callback]]


@pytest.fixture(scope="module")
def tc():
    return load_trace_context()


@pytest.fixture(scope="module")
def provider():
    # The SDK's default sampler (parent-based, else always on); nothing is exported.
    return TracerProvider()


@pytest.fixture(scope="module")
def tracer(provider):
    return provider.get_tracer("w3c-trace-context-suite")


def _fold(headers: Headers) -> dict[str, str]:
    """A plain dict: a repeated header (names compared case-insensitively) joined with commas."""
    folded: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, value in headers:
        first = names.setdefault(name.lower(), name)
        folded[first] = f"{folded[first]},{value}" if first in folded else value
    return folded


def _in_process(tc, tracer, carrier, calls: int) -> list[Callback]:
    """Receive `carrier`, then call back `calls` times, each under its own CLIENT span."""
    incoming = tc.extract_context(carrier)
    server = tracer.start_span("POST /test", context=incoming, kind=SpanKind.SERVER)
    handling = trace.set_span_in_context(server, incoming)
    callbacks = []
    for index in range(calls):
        client = tracer.start_span(f"POST /callback/{index}", context=handling,
                                   kind=SpanKind.CLIENT)
        forwarded = tc.inject_context({}, trace.set_span_in_context(client, handling))
        callbacks.append(Callback.read(forwarded))
        client.end()
    server.end()
    return callbacks


@pytest.fixture(scope="module")
def app_client(tc, provider, tracer):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = FastAPI()

    @app.post("/test")
    async def handle(calls: int = 1) -> list[dict[str, str]]:
        forwarded = []
        for index in range(calls):
            with tracer.start_as_current_span(f"POST /callback/{index}", kind=SpanKind.CLIENT):
                forwarded.append(tc.inject_context({}))
        return forwarded

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(tc.WorkshopPropagator())
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
        propagate.set_global_textmap(previous)


@pytest.fixture(params=["dict", "headers", "app"])
def service(request, tc, tracer) -> Forward:
    """`service(headers, calls=1)`: the callbacks the service made, read back by the harness."""
    style = request.param

    def forward(headers: Headers, calls: int = 1) -> list[Callback]:
        if style == "dict":
            return _in_process(tc, tracer, _fold(headers), calls)
        if style == "headers":
            from starlette.datastructures import Headers as StarletteHeaders
            raw = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers]
            return _in_process(tc, tracer, StarletteHeaders(raw=raw), calls)
        client = request.getfixturevalue("app_client")
        response = client.post("/test", params={"calls": calls}, headers=headers)
        assert response.status_code == 200, response.text
        return [Callback.read(forwarded) for forwarded in response.json()]

    return forward


def once(service: Forward, headers: Headers) -> Callback:
    (callback,) = service(headers)
    return callback


def continues(callback: Callback) -> bool:
    """The forwarded traceparent continues the harness's trace (same trace id)."""
    return callback.trace_id == TRACE_ID


# == TraceContextTest: traceparent ==============================================================

def test_both_traceparent_and_tracestate_missing(service):
    """No trace context at all: the service starts a trace and forwards a valid traceparent."""
    callback = once(service, [])
    assert callback.tracestate == {}


def test_traceparent_included_tracestate_missing(service):
    """A valid traceparent alone: same trace id, the service's own span as the new parent."""
    callback = once(service, [("traceparent", SAMPLED)])
    assert continues(callback)
    assert callback.parent_id != PARENT_ID


def test_traceparent_duplicated(service):
    """Two traceparent headers make an invalid traceparent: neither trace is continued."""
    callback = once(service, [("traceparent", f"00-{TRACE_ID[:-1]}1-{PARENT_ID}-01"),
                              ("traceparent", SAMPLED)])
    assert callback.trace_id not in (f"{TRACE_ID[:-1]}1", TRACE_ID)


@pytest.mark.parametrize("name", ["trace-parent", "trace.parent"])
def test_traceparent_header_name(service, name):
    """A header that is merely *like* traceparent is not read."""
    assert not continues(once(service, [(name, SAMPLED)]))


@pytest.mark.parametrize("name", ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"])
def test_traceparent_header_name_valid_casing(service, name):
    """Header names are case-insensitive."""
    assert continues(once(service, [(name, SAMPLED)]))


@pytest.mark.parametrize("value", [
    f"00-{TRACE_ID}-{PARENT_ID}-01.",                                   # a trailing character
    f"00-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like",       # fields after the flags
])
def test_traceparent_version_0x00(service, value):
    """Version 00 has exactly four fields and nothing after them."""
    assert not continues(once(service, [("traceparent", value)]))


@pytest.mark.parametrize("value, read", [
    (f"cc-{TRACE_ID}-{PARENT_ID}-01", True),
    (f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like", True),   # extra fields: fine
    (f"cc-{TRACE_ID}-{PARENT_ID}-01.what-the-future-will-be-like", False),  # no dash after flags
])
def test_traceparent_version_0xcc(service, value, read):
    """A future version is read leniently: its first four fields, extra fields after a dash."""
    assert continues(once(service, [("traceparent", value)])) is read


def test_traceparent_version_0xff(service):
    """Version ff is forbidden."""
    assert not continues(once(service, [("traceparent", f"ff-{TRACE_ID}-{PARENT_ID}-01")]))


@pytest.mark.parametrize("version", [".0", "0."])
def test_traceparent_version_illegal_characters(service, version):
    assert not continues(once(service, [("traceparent", f"{version}-{TRACE_ID}-{PARENT_ID}-01")]))


@pytest.mark.parametrize("version", ["000", "0000"])
def test_traceparent_version_too_long(service, version):
    assert not continues(once(service, [("traceparent", f"{version}-{TRACE_ID}-{PARENT_ID}-01")]))


def test_traceparent_version_too_short(service):
    assert not continues(once(service, [("traceparent", f"0-{TRACE_ID}-{PARENT_ID}-01")]))


def test_traceparent_trace_id_all_zero(service):
    """An all-zero trace id is invalid: a new trace starts (with a non-zero id)."""
    callback = once(service, [("traceparent", f"00-{'0' * 32}-{PARENT_ID}-01")])
    assert callback.trace_id != "0" * 32


@pytest.mark.parametrize("trace_id", ["." + TRACE_ID[1:], TRACE_ID[:-1] + "."])
def test_traceparent_trace_id_illegal_characters(service, trace_id):
    callback = once(service, [("traceparent", f"00-{trace_id}-{PARENT_ID}-01")])
    assert callback.trace_id != trace_id
    assert not continues(callback)   # stronger than the suite: the id is not salvaged either


def test_traceparent_trace_id_too_long(service):
    callback = once(service, [("traceparent", f"00-{TRACE_ID}3-{PARENT_ID}-01")])
    assert callback.trace_id not in (TRACE_ID, TRACE_ID[1:] + "3")


def test_traceparent_trace_id_too_short(service):
    callback = once(service, [("traceparent", f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01")])
    assert callback.trace_id != TRACE_ID[:-1] and not continues(callback)


def test_traceparent_parent_id_all_zero(service):
    """An all-zero parent id is invalid too: the whole traceparent is ignored."""
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{'0' * 16}-01")]))


@pytest.mark.parametrize("parent_id", ["." + PARENT_ID[1:], PARENT_ID[:-1] + "."])
def test_traceparent_parent_id_illegal_characters(service, parent_id):
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{parent_id}-01")]))


def test_traceparent_parent_id_too_long(service):
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}7-01")]))


def test_traceparent_parent_id_too_short(service):
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{PARENT_ID[:-1]}-01")]))


@pytest.mark.parametrize("flags", [".0", "0."])
def test_traceparent_trace_flags_illegal_characters(service, flags):
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-{flags}")]))


def test_traceparent_trace_flags_too_long(service):
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-001")]))


def test_traceparent_trace_flags_too_short(service):
    assert not continues(once(service, [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-1")]))


@pytest.mark.parametrize("value", [
    " " + SAMPLED, "\t" + SAMPLED, SAMPLED + " ", SAMPLED + "\t", "\t " + SAMPLED + " \t",
])
def test_traceparent_ows_handling(service, value):
    """Spaces and tabs around the value (optional whitespace) are not part of it."""
    assert continues(once(service, [("traceparent", value)]))


# == TraceContextTest: tracestate ===============================================================

def test_tracestate_included_traceparent_missing(service):
    """Without a traceparent the tracestate is not read: it does not matter what it held."""
    one = once(service, [("tracestate", "foo=1")])
    two = once(service, [("tracestate", "foo=1,bar=2")])
    assert len(one.tracestate) == len(two.tracestate)
    assert one.tracestate == two.tracestate == {}   # stronger: discarded, as the suite says


def test_tracestate_included_traceparent_included(service):
    """Both headers valid: the trace continues and the vendor data travels on unchanged."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", "foo=1,bar=2")])
    assert continues(callback)
    assert callback.tracestate == {"foo": "1", "bar": "2"}


@pytest.mark.parametrize("name", ["trace-state", "trace.state"])
def test_tracestate_header_name(service, name):
    callback = once(service, [("traceparent", NOT_SAMPLED), (name, "foo=1")])
    assert "foo" not in callback.tracestate


@pytest.mark.parametrize("name", ["TraceState", "TrAcEsTaTe", "TRACESTATE"])
def test_tracestate_header_name_valid_casing(service, name):
    callback = once(service, [("traceparent", NOT_SAMPLED), (name, "foo=1")])
    assert callback.tracestate == {"foo": "1"}


@pytest.mark.parametrize("tracestates, expected", [
    ([""], {}),
    (["foo=1", ""], {"foo": "1"}),
    (["", "foo=1"], {"foo": "1"}),
])
def test_tracestate_empty_header(service, tracestates, expected):
    """An empty tracestate header adds nothing, and is never forwarded as an empty header."""
    callback = once(service, [("traceparent", NOT_SAMPLED)]
                    + [("tracestate", value) for value in tracestates])
    assert continues(callback)
    assert callback.tracestate == expected
    assert "" not in callback.tracestate_headers


def test_tracestate_multiple_headers_different_keys(service):
    """Several tracestate headers are one list, in the order received."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", "foo=1,bar=2"),
                              ("tracestate", "rojo=1,congo=2"), ("tracestate", "baz=3")])
    assert continues(callback)
    assert list(callback.tracestate.items()) == [
        ("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")]


@pytest.mark.parametrize("tracestates", [
    ["foo=1,foo=1"], ["foo=1,foo=2"],          # within one header
    ["foo=1", "foo=1"], ["foo=1", "foo=2"],    # across two headers
])
def test_tracestate_duplicated_keys(service, tracestates):
    """A key listed twice makes the whole tracestate invalid; the traceparent still counts."""
    callback = once(service, [("traceparent", NOT_SAMPLED)]
                    + [("tracestate", value) for value in tracestates])
    assert continues(callback)
    assert "foo" not in callback.tracestate


_EVERY_KEY_CHAR = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
_EVERY_VALUE_CHAR = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


@pytest.mark.parametrize("key", [_EVERY_KEY_CHAR, _EVERY_KEY_CHAR + "@a-z0-9_-*/"])
def test_tracestate_all_allowed_characters(service, key):
    """Every character the grammar allows, in a simple and in a multi-tenant key and a value."""
    callback = once(service, [("traceparent", NOT_SAMPLED),
                              ("tracestate", f"{key}={_EVERY_VALUE_CHAR}")])
    assert callback.tracestate == {key: _EVERY_VALUE_CHAR}


@pytest.mark.parametrize("value, expected", [
    ("foo=1 \t , \t bar=2, \t baz=3", {"foo": "1", "bar": "2", "baz": "3"}),
    ("foo=1\t \t,\t \tbar=2,\t \tbaz=3", {"foo": "1", "bar": "2", "baz": "3"}),
    (" foo=1", {"foo": "1"}),
    ("\tfoo=1", {"foo": "1"}),
    ("foo=1 ", {"foo": "1"}),
    ("foo=1\t", {"foo": "1"}),
    ("\t foo=1 \t", {"foo": "1"}),
])
def test_tracestate_ows_handling(service, value, expected):
    """Spaces and tabs around members and around the commas are not part of them."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", value)])
    assert continues(callback)
    assert callback.tracestate == expected


@pytest.mark.parametrize("value, key", [
    ("foo =1", "foo "), ("FOO=1", "FOO"), ("foo.bar=1", "foo.bar"),
])
def test_tracestate_key_illegal_characters(service, value, key):
    """A key with a space, an upper-case letter or a dot: the tracestate is dropped."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", value)])
    assert key not in callback.tracestate
    assert continues(callback) and callback.tracestate == {}


@pytest.mark.parametrize("bad_key", ["foo@", "@foo", "foo@@bar", "foo@bar@baz"])
def test_tracestate_key_illegal_vendor_format(service, bad_key):
    """One malformed tenant@system key drops the whole list, valid members included."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", f"{bad_key}=1,bar=2")])
    assert "bar" not in callback.tracestate
    assert continues(callback)


def _members(first: int, last: int) -> str:
    return ",".join(f"bar{n:02d}={n:02d}" for n in range(first, last + 1))


@pytest.mark.parametrize("count, kept", [(32, True), (33, False)])
def test_tracestate_member_count_limit(service, count, kept):
    """At most 32 list members (here spread over four headers); 33 drops them all."""
    headers = [("traceparent", NOT_SAMPLED), ("tracestate", _members(1, 10)),
               ("tracestate", _members(11, 20)), ("tracestate", _members(21, 30)),
               ("tracestate", _members(31, count))]
    callback = once(service, headers)
    if kept:
        assert callback.tracestate["bar01"] == "01"
        assert len(callback.tracestate) == 32
    else:
        assert "bar01" not in callback.tracestate
    assert continues(callback)


@pytest.mark.parametrize("long_key, kept", [
    ("z" * 256, True), ("z" * 257, False),                      # a simple key: up to 256
    ("t" * 241 + "@" + "v" * 14, True),                         # tenant up to 241, system 14
    ("t" * 242 + "@v", False), ("t@" + "v" * 15, False),
], ids=["key-256", "key-257", "tenant-241-system-14", "tenant-242", "system-15"])
def test_tracestate_key_length_limit(service, long_key, kept):
    """A key one character too long invalidates the whole tracestate, `foo` included."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", "foo=1"),
                              ("tracestate", f"{long_key}=1")])
    if kept:
        assert callback.tracestate["foo"] == "1"
        assert callback.tracestate[long_key] == "1"   # stronger: the long key travels too
    else:
        assert "foo" not in callback.tracestate
    assert continues(callback)


@pytest.mark.parametrize("value, keys", [("foo=bar=baz", ["foo"]), ("foo=,bar=3", ["foo", "bar"])])
def test_tracestate_value_illegal_characters(service, value, keys):
    """A value holding `=`, or an empty value, drops the whole tracestate."""
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", value)])
    for key in keys:
        assert key not in callback.tracestate
    assert continues(callback)


# == AdvancedTest: several callbacks for one request ============================================

def test_multiple_requests_with_valid_traceparent(service):
    """Every callback continues the harness's trace, each from a parent of its own."""
    callbacks = service([("traceparent", SAMPLED)], calls=3)
    assert {c.trace_id for c in callbacks} == {TRACE_ID}
    assert len({c.parent_id for c in callbacks}) == 3


def test_multiple_requests_without_traceparent(service):
    callbacks = service([], calls=3)
    assert len({c.parent_id for c in callbacks}) == 3
    assert len({c.trace_id for c in callbacks}) == 1   # stronger: one new trace, not three


def test_multiple_requests_with_illegal_traceparent(service):
    callbacks = service([("traceparent", f"00-{'0' * 32}-{PARENT_ID}-01")], calls=3)
    assert "0" * 32 not in {c.trace_id for c in callbacks}
    assert len({c.parent_id for c in callbacks}) == 3


# == Beyond the suite: W3C rules it does not exercise ===========================================

def test_upper_case_hex_is_not_hex(service):
    assert not continues(once(service, [("traceparent", f"00-{'AB' * 16}-{PARENT_ID}-01")]))


@pytest.mark.parametrize("length, kept", [(256, True), (257, False)])
def test_tracestate_value_length_limit(service, length, kept):
    callback = once(service, [("traceparent", NOT_SAMPLED),
                              ("tracestate", f"foo=1,bar={'v' * length}")])
    assert ("foo" in callback.tracestate) is kept
    assert continues(callback)


def test_tracestate_empty_members_are_ignored(service):
    callback = once(service, [("traceparent", NOT_SAMPLED), ("tracestate", ",foo=1,, ,\tbar=2,")])
    assert callback.tracestate == {"foo": "1", "bar": "2"}


def test_a_future_version_keeps_only_the_sampled_flag(tc):
    ctx = tc.extract_context({"traceparent": f"cc-{TRACE_ID}-{PARENT_ID}-ff-more"})
    assert trace.get_current_span(ctx).get_span_context().trace_flags == 0x01


def test_the_same_header_under_two_casings_counts_twice(tc):
    """A plain dict may hold one header under two casings: that is the header sent twice."""
    def parent(headers):
        return trace.get_current_span(tc.extract_context(headers)).get_span_context()

    assert not parent({"traceparent": SAMPLED, "TraceParent": SAMPLED}).is_valid
    both = parent({"traceparent": SAMPLED, "tracestate": "foo=1", "TraceState": "bar=2"})
    assert dict(both.trace_state) == {"foo": "1", "bar": "2"}
