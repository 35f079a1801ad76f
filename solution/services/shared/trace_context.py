"""Step 2: carrying a trace across service boundaries in HTTP headers.

A trace only spans services if every hop *injects* the current span context into the headers
of its outgoing calls and every receiver *extracts* it and uses it as the parent of its own
spans. This module does both, for the formats a workshop meets in the wild:

* **W3C Trace Context** - ``traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>`` and
  ``tracestate`` (vendor data that must travel unchanged). This is what we inject.
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
exactly as these functions do. Header names are matched case-insensitively and a malformed
header is ignored, never raised.
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
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

CORRELATION_HEADER = "X-Correlation-ID"
SAMPLING_HEADER = "X-Trace-Sampling"

ALLOWED_BAGGAGE_KEYS = frozenset({"user.id", "session.id", "order.id"})
ALLOWED_BAGGAGE_PREFIXES = ("feature.", "experiment.")

# Private context keys: values that travel *inside* a service with the context, but that no
# other code should write.
_CORRELATION_KEY = create_key("workshop.correlation_id")
_SAMPLING_KEY = create_key("workshop.sampling_override")
_DEFERRED_KEY = create_key("workshop.sampling_deferred")

_W3C = TraceContextTextMapPropagator()
_BAGGAGE = W3CBaggagePropagator()

_SAMPLING_VALUES = {"always": "always", "1": "always", "true": "always",
                    "never": "never", "0": "never", "false": "never"}
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_TRACE_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32})$")


# -- reading headers, whatever their casing ---------------------------------------------------
class _CaseInsensitiveGetter(Getter[Any]):
    """Reads header values case-insensitively, from a given getter or a plain mapping."""

    def __init__(self, inner: Getter[Any] | None = None) -> None:
        # The SDK's default getter does a case-sensitive ``carrier.get``: use our own lookup.
        self._inner = None if inner is None or isinstance(inner, DefaultGetter) else inner

    def get(self, carrier: Any, key: str) -> list[str] | None:
        if self._inner is not None:
            values = self._inner.get(carrier, key)
            if values is None and key.lower() != key:
                values = self._inner.get(carrier, key.lower())
            if values is None:
                for name in self._inner.keys(carrier) or ():
                    if isinstance(name, str) and name.lower() == key.lower() and name != key:
                        values = self._inner.get(carrier, name)
                        break
        else:
            values = _mapping_get(carrier, key)
        return _as_strings(values)

    def keys(self, carrier: Any) -> list[str]:
        if self._inner is not None:
            return list(self._inner.keys(carrier))
        return list(carrier.keys()) if isinstance(carrier, Mapping) else []


def _mapping_get(carrier: Any, key: str) -> Any:
    if not isinstance(carrier, Mapping):
        return None
    value = carrier.get(key)  # Starlette/httpx Headers are case-insensitive already
    if value is None:
        lowered = key.lower()
        for name in list(carrier.keys()):
            if isinstance(name, str) and name.lower() == lowered:
                return carrier[name]
    return value


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
    w3c = _W3C.extract(carrier, ctx, getter)
    if trace.get_current_span(w3c).get_span_context().is_valid and w3c is not ctx:
        return w3c
    parsed = _parse_b3_single(_first(getter, carrier, "b3")) or _parse_b3_multi(getter, carrier)
    if parsed is None:
        return ctx
    span_context, has_decision = parsed
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context), ctx)
    if not has_decision:
        # B3 may leave the decision to us; remember which remote parent carried none.
        ctx = otel_context.set_value(_DEFERRED_KEY, span_context, ctx)
    return ctx


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
    if (has_id or span_context.is_valid) and _mapping_get(carrier, CORRELATION_HEADER) is None:
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
