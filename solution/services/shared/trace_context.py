"""Step 2: carrying a trace across service boundaries in HTTP headers.

A trace only spans services if every hop *injects* the current span context into the headers
of its outgoing calls and every receiver *extracts* it and uses it as the parent of its own
spans. This module does both, for the formats a workshop meets in the wild:

* **W3C Trace Context** - ``traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>`` and
  ``tracestate`` (vendor data that must travel unchanged). This is what we inject. We read it
  by the rules of the W3C recommendation (Level 2), which the official W3C test suite checks:
  see :func:`_parse_traceparent` and :func:`_parse_tracestate`.
* **B3** (Zipkin) - the single ``b3`` header or the ``X-B3-*`` multi headers. We read it so
  that callers instrumented with Zipkin-era tooling join our traces; on request
  (``b3=True``) we also write the single header.
* **W3C Baggage** - ``baggage: user.id=u-1,order.id=o-7``: business context that travels
  with the request. Baggage from outside is untrusted input, so only a few keys are accepted
  (:data:`ALLOWED_BAGGAGE_KEYS`, plus anything starting with ``feature.`` or ``experiment.``).
* **X-Correlation-ID** - a human-friendly id that the services echo on every response. An
  incoming sane value is kept in the context; otherwise the trace id serves as one.
* **X-Trace-Sampling** - ``always``/``never`` asks Step 6's sampler to override its ratio for
  this trace; the normalised value is kept in the context for the sampler to read
  (:func:`sampling_override`). A B3 header may also carry *no* decision at all; then
  :func:`sampling_decision_deferred` tells the sampler to decide as for a new trace.

Usage::

    ctx = extract_context(request.headers)        # on the way in
    token = context.attach(ctx)                   # (the FastAPI instrumentation does this)
    headers = inject_context({"Accept": "application/json"})   # on the way out
    ctx = set_baggage_items({"user.id": "u-1"})   # add business context ...
    context.attach(ctx)                           # ... for everything that follows

:class:`WorkshopPropagator` packages the same logic as a ``TextMapPropagator``; Step 1 makes it
the process-wide propagator, so the FastAPI and httpx instrumentations extract and inject
exactly as these functions do. Header names are matched case-insensitively, a header sent
several times is read in full (every occurrence counts) and a malformed header is ignored,
never raised.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from opentelemetry import baggage, context as otel_context, trace
from opentelemetry.context import Context, create_key
from opentelemetry.propagators.textmap import (
    CarrierT,
    DefaultGetter,
    DefaultSetter,
    Getter,
    Setter,
    TextMapPropagator,
    default_setter,
)
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    format_span_id,
    format_trace_id,
)

CORRELATION_HEADER = "X-Correlation-ID"
SAMPLING_HEADER = "X-Trace-Sampling"

ALLOWED_BAGGAGE_KEYS = frozenset({"user.id", "session.id", "order.id"})
ALLOWED_BAGGAGE_PREFIXES = ("feature.", "experiment.")

# Private context keys: values that travel *inside* a service with the context, but that no
# other code should write.
_CORRELATION_KEY = create_key("workshop.correlation_id")
_SAMPLING_KEY = create_key("workshop.sampling_override")
_DEFERRED_KEY = create_key("workshop.sampling_deferred")

_BAGGAGE = W3CBaggagePropagator()

_SAMPLING_VALUES = {"always": "always", "1": "always", "true": "always",
                    "never": "never", "0": "never", "false": "never"}
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_TRACE_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32})$")


# -- reading headers, whatever their casing ---------------------------------------------------
class _CaseInsensitiveGetter(Getter[Any]):
    """Reads every value of a header case-insensitively, from a given getter or a mapping."""

    def __init__(self, inner: Getter[Any] | None = None) -> None:
        # The SDK's default getter does a case-sensitive ``carrier.get``: use our own lookup.
        self._inner = None if inner is None or isinstance(inner, DefaultGetter) else inner

    def get(self, carrier: Any, key: str) -> list[str] | None:
        if self._inner is not None:
            values = self._inner.get(carrier, key)
            if values is None and key.lower() != key:
                values = self._inner.get(carrier, key.lower())
            if values is None:  # a getter that matches names exactly: try the other casings
                values = [value for name in self._inner.keys(carrier) or ()
                          if isinstance(name, str) and name.lower() == key.lower() and name != key
                          for value in _as_strings(self._inner.get(carrier, name)) or ()]
            return _as_strings(values)
        values = [value for raw in _mapping_values(carrier, key)
                  for value in _as_strings(raw) or ()]
        return values or None

    def keys(self, carrier: Any) -> list[str]:
        if self._inner is not None:
            return list(self._inner.keys(carrier))
        return list(carrier.keys()) if isinstance(carrier, Mapping) else []


def _mapping_values(carrier: Any, key: str) -> list[Any]:
    """Every value of header ``key`` in a mapping, whatever the casing of its name.

    A header may arrive several times (two ``tracestate`` lines, say). Starlette's and
    Werkzeug's ``Headers.getlist`` and httpx's ``Headers.get_list`` return each occurrence
    (their plain ``get`` only the first); a plain dict holds one value per name, but may hold
    the same header under two casings.
    """
    if not isinstance(carrier, Mapping):
        return []
    for method in ("getlist", "get_list"):
        get_all = getattr(carrier, method, None)
        if callable(get_all):
            return list(get_all(key))
    lowered = key.lower()
    return [value for name, value in list(carrier.items())
            if isinstance(name, str) and name.lower() == lowered]


def _as_strings(values: Any) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = [values]
    out = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    return out or None


def _first(getter: Getter[Any], carrier: Any, key: str) -> str | None:
    values = getter.get(carrier, key)
    return values[0].strip() if values else None


# -- extract ---------------------------------------------------------------------------------
def _extract(carrier: Any, context: Context | None, getter: Getter[Any]) -> Context:
    ctx = context if context is not None else Context()
    for step in (_extract_parent, _extract_baggage, _extract_correlation, _extract_sampling):
        try:
            ctx = step(carrier, ctx, getter)
        except Exception:  # noqa: BLE001 - a malformed header is ignored, never raised
            pass
    return ctx


def _extract_parent(carrier: Any, ctx: Context, getter: Getter[Any]) -> Context:
    # W3C wins when it carries a valid parent; else B3 single; else B3 multi.
    w3c = _parse_traceparent(getter.get(carrier, "traceparent"))
    if w3c is not None:
        trace_id, span_id, flags = w3c
        # Only a valid traceparent makes the tracestate worth reading (W3C).
        trace_state = _parse_tracestate(getter.get(carrier, "tracestate"))
        span_context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags,
                                   trace_state=trace_state)
        return trace.set_span_in_context(NonRecordingSpan(span_context), ctx)
    parsed = _parse_b3_single(_first(getter, carrier, "b3")) or _parse_b3_multi(getter, carrier)
    if parsed is None:
        return ctx
    span_context, has_decision = parsed
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context), ctx)
    if not has_decision:
        # B3 may leave the decision to us; remember which remote parent carried none.
        ctx = otel_context.set_value(_DEFERRED_KEY, span_context, ctx)
    return ctx


# -- W3C Trace Context -----------------------------------------------------------------------
# traceparent = version "-" trace-id "-" parent-id "-" trace-flags, in lowercase hex only.
_TRACEPARENT = re.compile(r"(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})"
                          r"-(?P<parent_id>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?")

# tracestate list members are key=value. A key is either simple, or tenant@system (a vendor
# hosting many tenants); lowercase letters, digits and _ - * / only.
_TRACESTATE_KEY = re.compile(r"[a-z][a-z0-9_\-*/]{0,255}"                          # simple
                             r"|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}")  # tenant
# A value: 1-256 printable ASCII characters (0x20-0x7E) except "," and "=", not ending in a space.
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_TRACESTATE_MAX_MEMBERS = 32
_TRACESTATE_MAX_CHARS = 8192  # untrusted input: a longer header is not even parsed (as in the SDK)


def _parse_traceparent(values: list[str] | None) -> tuple[int, int, TraceFlags] | None:
    """``(trace id, parent id, flags)`` of the remote parent that the ``traceparent`` header
    names, or None when there is no valid one.

    The W3C rules (each one a case of the official test suite):

    * There is exactly one ``traceparent``. Sent twice, it is invalid, whether it arrives as
      two values or as one value holding a comma (how HTTP stacks join a repeated header).
    * Spaces and tabs around the value are optional whitespace, not part of it.
    * Four fields separated by dashes, each exactly its size (2, 32, 16, 2 hex digits) and in
      lowercase hex only: ``00-0AF7...`` is invalid, not "the same id in capitals".
    * Version ``ff`` is forbidden. Version ``00`` has exactly these four fields, nothing after.
    * A later version (``01`` to ``fe``) is read leniently, so that today's services join
      tomorrow's traces: its first four fields as in version 00, and anything after them only
      when it starts with a dash (``...-01-more`` is fine, ``...-01.more`` is not). Of its
      flags, only the ``sampled`` bit is understood.
    * An all-zero trace id or parent id is invalid.

    Invalid means: ignore the header and start a new trace (never raise). The ``tracestate``
    is then ignored too.
    """
    if not values or len(values) != 1 or "," in values[0]:
        return None
    match = _TRACEPARENT.fullmatch(values[0].strip(" \t"))
    if match is None:
        return None
    version, rest = match["version"], match["rest"]
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(match["trace_id"], 16), int(match["parent_id"], 16)
    if trace_id == 0 or span_id == 0:
        return None
    flags = int(match["flags"], 16)
    if version != "00":
        flags &= TraceFlags.SAMPLED
    return trace_id, span_id, TraceFlags(flags)


def _parse_tracestate(values: list[str] | None) -> TraceState:
    """The vendor data of the ``tracestate`` header(s): kept whole, or dropped whole.

    The W3C rules (Level 2; each one a case of the official test suite):

    * Several ``tracestate`` headers form one list, in the order received (as if joined with
      commas). An empty header adds nothing.
    * Members are separated by commas, with optional spaces and tabs around them; an empty
      member (``a=1,,b=2``) is allowed and ignored.
    * Each member is ``key=value``. A key is simple (``[a-z][a-z0-9_-*/]``, at most 256
      characters) or multi-tenant, ``tenant@system``: tenant ``[a-z0-9][a-z0-9_-*/]``, at
      most 241 characters, and system ``[a-z][a-z0-9_-*/]``, at most 14. So ``FOO``,
      ``foo.bar``, ``@foo``, ``foo@`` and ``a@b@c`` are not keys.
    * A value is 1 to 256 printable ASCII characters (0x20-0x7E) except ``,`` and ``=``, and
      does not end with a space: ``foo=bar=baz`` and ``foo=`` are invalid.
    * A key appears at most once, and there are at most 32 members.

    One broken rule makes the whole tracestate invalid, and it is dropped (an empty
    ``TraceState``) rather than repaired member by member. The recommendation allows either;
    the official test suite, at its default (strict) level, expects the whole header gone.
    The ``traceparent`` still counts: the trace continues, without the vendor data.
    """
    if not values:
        return TraceState()
    header = ",".join(values)
    if len(header) > _TRACESTATE_MAX_CHARS:
        return TraceState()
    members: dict[str, str] = {}
    for member in header.split(","):
        member = member.strip(" \t")
        if not member:
            continue
        key, equals, value = member.partition("=")
        if (not equals or key in members or not _TRACESTATE_KEY.fullmatch(key)
                or not _TRACESTATE_VALUE.fullmatch(value)):
            return TraceState()
        members[key] = value
    if len(members) > _TRACESTATE_MAX_MEMBERS:
        return TraceState()
    return TraceState(list(members.items()))


# -- B3 --------------------------------------------------------------------------------------
def _remote_span_context(trace_id: str, span_id: str, sampled: bool) -> SpanContext | None:
    trace_id, span_id = trace_id.lower(), span_id.lower()
    if not _TRACE_ID.match(trace_id) or not _HEX16.match(span_id):
        return None
    tid, sid = int(trace_id, 16), int(span_id, 16)  # a 64-bit B3 trace id is left-padded
    if tid == 0 or sid == 0:
        return None
    return SpanContext(tid, sid, is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
                       trace_state=TraceState())


def _parse_b3_single(value: str | None) -> tuple[SpanContext, bool] | None:
    """``b3: {trace id}-{span id}[-{1|0|d}[-{parent span id}]]``."""
    if not value:
        return None
    parts = value.split("-")
    if len(parts) < 2 or len(parts) > 4:
        return None  # a lone sampling state ("0") carries no parent to continue
    state = parts[2].strip().lower() if len(parts) > 2 else ""
    if state not in ("", "0", "1", "d"):
        return None
    if len(parts) == 4 and not _HEX16.match(parts[3].strip().lower()):
        return None
    span_context = _remote_span_context(parts[0].strip(), parts[1].strip(), state in ("1", "d"))
    return (span_context, state != "") if span_context else None


def _parse_b3_multi(getter: Getter[Any], carrier: Any) -> tuple[SpanContext, bool] | None:
    """``X-B3-TraceId``, ``X-B3-SpanId``, optional ``X-B3-Sampled`` / ``X-B3-Flags``."""
    trace_id = _first(getter, carrier, "X-B3-TraceId")
    span_id = _first(getter, carrier, "X-B3-SpanId")
    if not trace_id or not span_id:
        return None
    sampled = (_first(getter, carrier, "X-B3-Sampled") or "").lower()
    debug = _first(getter, carrier, "X-B3-Flags") == "1"
    span_context = _remote_span_context(trace_id, span_id, debug or sampled in ("1", "true", "d"))
    if span_context is None:
        return None
    return span_context, debug or sampled in ("1", "true", "d", "0", "false")


def _extract_baggage(carrier: Any, ctx: Context, getter: Getter[Any]) -> Context:
    # Parse with the SDK (it knows the encoding and the size limits) into an empty context,
    # then keep only the allowed keys: baggage from outside is untrusted input.
    incoming = baggage.get_all(_BAGGAGE.extract(carrier, Context(), getter))
    for key, value in incoming.items():
        if _allowed(key):
            ctx = baggage.set_baggage(key, value, ctx)
    return ctx


def _extract_correlation(carrier: Any, ctx: Context, getter: Getter[Any]) -> Context:
    value = _sane_correlation(_first(getter, carrier, CORRELATION_HEADER))
    return otel_context.set_value(_CORRELATION_KEY, value, ctx) if value else ctx


def _extract_sampling(carrier: Any, ctx: Context, getter: Getter[Any]) -> Context:
    value = _SAMPLING_VALUES.get((_first(getter, carrier, SAMPLING_HEADER) or "").lower())
    return otel_context.set_value(_SAMPLING_KEY, value, ctx) if value else ctx


def _allowed(key: str) -> bool:
    return key in ALLOWED_BAGGAGE_KEYS or key.startswith(ALLOWED_BAGGAGE_PREFIXES)


def _sane_correlation(value: str | None) -> str | None:
    """1-128 printable ASCII characters after trimming, or None."""
    if value is None:
        return None
    value = value.strip()
    if 1 <= len(value) <= 128 and all(" " <= ch <= "~" for ch in value):
        return value
    return None


# -- inject ----------------------------------------------------------------------------------
def _inject(carrier: Any, context: Context | None, setter: Setter[Any], b3: bool) -> None:
    ctx = context if context is not None else otel_context.get_current()
    span_context = trace.get_current_span(ctx).get_span_context()

    if span_context.is_valid:
        ids = f"{format_trace_id(span_context.trace_id)}-{format_span_id(span_context.span_id)}"
        _put(carrier, "traceparent", f"00-{ids}-{span_context.trace_flags:02x}", setter)
        if span_context.trace_state:  # vendor data travels unchanged
            _put(carrier, "tracestate", span_context.trace_state.to_header(), setter)
        if b3:
            value = ids  # B3 single: {trace id}-{span id}-{sampling state}
            if not _is_deferred(ctx, span_context):
                value += "-1" if span_context.trace_flags.sampled else "-0"
            _put(carrier, "b3", value, setter)

    items = {k: v for k, v in baggage.get_all(ctx).items() if _allowed(k)}
    if items:
        only_allowed = Context()
        for key, value in items.items():
            only_allowed = baggage.set_baggage(key, value, only_allowed)
        scratch: dict[str, str] = {}
        _BAGGAGE.inject(scratch, only_allowed)  # the SDK's encoding and size limits
        if scratch.get("baggage"):
            _put(carrier, "baggage", scratch["baggage"], setter)

    has_id = otel_context.get_value(_CORRELATION_KEY, ctx) is not None
    if (has_id or span_context.is_valid) and not _mapping_values(carrier, CORRELATION_HEADER):
        setter.set(carrier, CORRELATION_HEADER, correlation_id({}, ctx))


def _put(carrier: Any, key: str, value: str, setter: Setter[Any]) -> None:
    # A plain dict may already hold the header with another casing: replace, do not duplicate.
    if isinstance(setter, DefaultSetter) and isinstance(carrier, MutableMapping):
        for name in [n for n in carrier.keys() if isinstance(n, str) and n.lower() == key]:
            del carrier[name]
    setter.set(carrier, key, value)


def _is_deferred(ctx: Context, span_context: SpanContext) -> bool:
    return otel_context.get_value(_DEFERRED_KEY, ctx) == span_context


# -- the public API --------------------------------------------------------------------------
class WorkshopPropagator(TextMapPropagator):
    """The process-wide propagator: W3C + B3 in, W3C out, filtered baggage, correlation id.

    ``extract`` and ``inject`` do what :func:`extract_context` and :func:`inject_context`
    (with ``b3=False``) do, through whatever getter/setter the caller hands in (the ASGI
    instrumentation reads the scope with its own getter).
    """

    def extract(self, carrier: CarrierT, context: Context | None = None,
                getter: Getter[CarrierT] | None = None) -> Context:
        return _extract(carrier, context, _CaseInsensitiveGetter(getter))

    def inject(self, carrier: CarrierT, context: Context | None = None,
               setter: Setter[CarrierT] = default_setter) -> None:
        try:
            _inject(carrier, context, setter, b3=False)
        except Exception:  # noqa: BLE001 - propagation must never break a request
            pass

    @property
    def fields(self) -> set[str]:
        return {"traceparent", "tracestate", "baggage", CORRELATION_HEADER}


def extract_context(headers: Mapping[str, str], context: Context | None = None) -> Context:
    """The context an incoming request continues: its remote parent, allowed baggage,
    correlation id and sampling override. Starts from ``context`` (default: an empty
    context, as OpenTelemetry's propagators do). Never raises."""
    return _extract(headers if headers is not None else {}, context, _CaseInsensitiveGetter())


def inject_context(headers: MutableMapping[str, str] | None = None,
                   context: Context | None = None, *, b3: bool = False) -> dict[str, str]:
    """Write ``traceparent`` (+ ``tracestate``), ``baggage`` and ``X-Correlation-ID`` for
    ``context`` (default: the current one) into ``headers``; ``b3=True`` adds ``b3``.
    Returns the mapping it wrote into (a new dict when ``headers`` is None)."""
    if headers is None:
        headers = {}
    try:
        _inject(headers, context, default_setter, b3)
    except Exception:  # noqa: BLE001
        pass
    return headers  # type: ignore[return-value]


def set_baggage_items(items: Mapping[str, str], context: Context | None = None) -> Context:
    """A new context with ``items`` added to the baggage of ``context`` (default: current).
    Attach it (``context.attach``) for it to reach the spans and calls that follow."""
    ctx = context if context is not None else otel_context.get_current()
    for key, value in items.items():
        ctx = baggage.set_baggage(key, str(value), ctx)
    return ctx


def get_baggage_items(context: Context | None = None) -> dict[str, str]:
    """Every baggage entry of ``context`` (default: the current context)."""
    return {key: str(value) for key, value in baggage.get_all(context).items()}


def correlation_id(headers: Mapping[str, str], context: Context | None = None) -> str:
    """The sane ``X-Correlation-ID`` in ``headers``; else the id kept in ``context``
    (default: current); else that context's trace id (32 hex); else a new random id."""
    try:
        header = _sane_correlation(_first(_CaseInsensitiveGetter(), headers or {},
                                          CORRELATION_HEADER))
    except Exception:  # noqa: BLE001
        header = None
    if header:
        return header
    ctx = context if context is not None else otel_context.get_current()
    kept = otel_context.get_value(_CORRELATION_KEY, ctx)
    if kept:
        return str(kept)
    span_context = trace.get_current_span(ctx).get_span_context()
    if span_context.is_valid:
        return format_trace_id(span_context.trace_id)
    return uuid.uuid4().hex


def sampling_override(context: Context | None = None) -> str | None:
    """``"always"``, ``"never"`` or None: the ``X-Trace-Sampling`` wish kept in ``context``."""
    return otel_context.get_value(_SAMPLING_KEY, context)  # type: ignore[return-value]


def sampling_decision_deferred(context: Context | None = None) -> bool:
    """True when the parent in ``context`` is a remote span whose header carried no sampling
    decision (B3 may omit it): the sampler should then decide as for a new trace, keeping the
    trace id. Its ``sampled`` flag is off and means nothing."""
    ctx = context if context is not None else otel_context.get_current()
    span_context = trace.get_current_span(ctx).get_span_context()
    return span_context.is_valid and _is_deferred(ctx, span_context)


def current_trace_ids() -> dict[str, str]:
    """``{"trace_id": <32 hex>, "span_id": <16 hex>}`` for the current span, else ``{}``."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {"trace_id": format_trace_id(span_context.trace_id),
            "span_id": format_span_id(span_context.span_id)}


def add_trace_ids(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: add the current ``trace_id`` and ``span_id`` to every event, so a
    log line can be found from its trace and the other way round."""
    for key, value in current_trace_ids().items():
        event_dict.setdefault(key, value)
    return event_dict
