"""Step 2: carrying a trace across service boundaries in HTTP headers.

YOUR TASK. As shipped, every function here is a harmless no-op: nothing is extracted or
injected, so each service starts its own, unconnected trace. Work through the numbered TODOs;
each one names the success criterion it serves.

A trace only spans services if every hop *injects* the current span context into the headers
of its outgoing calls and every receiver *extracts* it and uses it as the parent of its own
spans. The formats to handle:

* **W3C Trace Context** - ``traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>`` and
  ``tracestate``. This is what we inject; it wins when present on the way in.
* **B3** (Zipkin) - the single ``b3: {trace id}-{span id}[-{1|0|d}[-{parent}]]`` header, else
  the ``X-B3-TraceId`` / ``X-B3-SpanId`` / ``X-B3-Sampled`` / ``X-B3-Flags`` multi headers
  (``opentelemetry-propagator-b3`` can parse them, or do it by hand). A B3 header without a
  sampling decision leaves the decision to the sampler (see ``sampling_decision_deferred``).
* **W3C Baggage** - read in every case, but only the keys in ``ALLOWED_BAGGAGE_KEYS`` or
  starting with ``ALLOWED_BAGGAGE_PREFIXES`` are kept: baggage from outside is untrusted.
* **X-Correlation-ID** - a sane incoming id (1-128 printable ASCII characters after trimming)
  is kept in the context under a private context key (``opentelemetry.context.create_key``).
* **X-Trace-Sampling** - ``always``/``1``/``true`` or ``never``/``0``/``false``, normalised
  and kept in the context for Step 6's sampler.

Header names are case-insensitive (a plain dict with any casing, or Starlette/httpx
``Headers``), and a malformed header yields a context with no remote parent: it never raises.
``WorkshopPropagator`` packages the same logic as a ``TextMapPropagator`` (Step 1 makes it the
process-wide propagator); it must use the getter/setter it is handed, because the FastAPI
instrumentation reads the ASGI scope with its own getter.

Usage::

    ctx = extract_context(request.headers)        # on the way in
    headers = inject_context({"Accept": "application/json"})   # on the way out
    ctx = set_baggage_items({"user.id": "u-1"})   # then context.attach(ctx)
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_setter,
)

CORRELATION_HEADER = "X-Correlation-ID"
SAMPLING_HEADER = "X-Trace-Sampling"

ALLOWED_BAGGAGE_KEYS = frozenset({"user.id", "session.id", "order.id"})
ALLOWED_BAGGAGE_PREFIXES = ("feature.", "experiment.")


class WorkshopPropagator(TextMapPropagator):
    """The process-wide propagator: W3C + B3 in, W3C out, filtered baggage, correlation id.

    ``extract`` and ``inject`` do what :func:`extract_context` and :func:`inject_context`
    (with ``b3=False``) do, through whatever getter/setter the caller hands in (the ASGI
    instrumentation reads the scope with its own getter).
    """

    def extract(self, carrier: CarrierT, context: Context | None = None,
                getter: Getter[CarrierT] | None = None) -> Context:
        # TODO 1 (context-propagates, traces-span-services; rules 2.1 to 2.8, 2.20, 2.23): do what
        #   extract_context does, reading headers through `getter` (case-insensitively).
        return context if context is not None else otel_context.get_current()

    def inject(self, carrier: CarrierT, context: Context | None = None,
               setter: Setter[CarrierT] = default_setter) -> None:
        # TODO 2 (context-propagates; rules 2.13, 2.18 to 2.22): do what inject_context does
        #   (b3=False), writing through `setter`.
        pass

    @property
    def fields(self) -> set[str]:
        # TODO 2 (context-propagates; rules 2.13, 2.18 to 2.22): the header names inject writes.
        return set()


def extract_context(headers: Mapping[str, str], context: Context | None = None) -> Context:
    """The context an incoming request continues: its remote parent, allowed baggage,
    correlation id and sampling override. Starts from ``context`` (default: an empty
    context, as OpenTelemetry's propagators do). Never raises."""
    # TODO 1 (context-propagates, traces-span-services; rules 2.1 to 2.8, 2.20, 2.23): W3C
    #   traceparent/tracestate win; else B3 single; else B3 multi; a malformed header gives no
    #   remote parent and never raises.
    # TODO 3 (context-propagates; rules 2.4, 2.14, 2.15, 2.24 to 2.26): read W3C baggage in every
    #   case and keep only allowed keys.
    # TODO 4 (context-propagates; rules 2.16, 2.17, 2.28 to 2.31): keep a sane X-Correlation-ID in
    #   the context (private key).
    # TODO 5 (context-propagates, sampling-works; rules 2.9, 2.32, 2.33): keep the normalised
    #   X-Trace-Sampling value in the context.
    return context if context is not None else otel_context.get_current()


def inject_context(headers: MutableMapping[str, str] | None = None,
                   context: Context | None = None, *, b3: bool = False) -> dict[str, str]:
    """Write ``traceparent`` (+ ``tracestate``), ``baggage`` and ``X-Correlation-ID`` for
    ``context`` (default: the current one) into ``headers``; ``b3=True`` adds ``b3``.
    Returns the mapping it wrote into (a new dict when ``headers`` is None)."""
    # TODO 2 (context-propagates; rules 2.13, 2.18 to 2.22): write traceparent (and tracestate when
    #   present) for the context's valid span; with b3=True also the single b3 header.
    # TODO 3 (context-propagates; rules 2.4, 2.14, 2.15, 2.24 to 2.26): write `baggage` with the
    #   allowed entries, only when there are any.
    # TODO 4 (context-propagates; rules 2.16, 2.17, 2.28 to 2.31): write X-Correlation-ID =
    #   correlation_id({}, context) when the context holds a correlation id or a valid span, never
    #   replacing one already in headers.
    if headers is None:
        headers = {}
    return headers  # type: ignore[return-value]


def set_baggage_items(items: Mapping[str, str], context: Context | None = None) -> Context:
    """A new context with ``items`` added to the baggage of ``context`` (default: current).
    Attach it (``context.attach``) for it to reach the spans and calls that follow."""
    # TODO 3 (context-propagates; rules 2.4, 2.14, 2.15, 2.24 to 2.26): baggage.set_baggage(key,
    #   value, ctx) for each item.
    return context if context is not None else otel_context.get_current()


def get_baggage_items(context: Context | None = None) -> dict[str, str]:
    """Every baggage entry of ``context`` (default: the current context)."""
    # TODO 3 (context-propagates; rules 2.4, 2.14, 2.15, 2.24 to 2.26): baggage.get_all(context) as
    #   a dict of strings.
    return {}


def correlation_id(headers: Mapping[str, str], context: Context | None = None) -> str:
    """The sane ``X-Correlation-ID`` in ``headers``; else the id kept in ``context``
    (default: current); else that context's trace id (32 hex); else a new random id."""
    # TODO 4 (context-propagates; rules 2.16, 2.17, 2.28 to 2.31): follow the rules above (the
    #   services echo this on every response, when it is not empty).
    return ""


def sampling_override(context: Context | None = None) -> str | None:
    """``"always"``, ``"never"`` or None: the ``X-Trace-Sampling`` wish kept in ``context``."""
    # TODO 5 (context-propagates, sampling-works; rules 2.9, 2.32, 2.33): read the value
    #   extract_context kept in the context.
    return None


def sampling_decision_deferred(context: Context | None = None) -> bool:
    """True when the parent in ``context`` is a remote span whose header carried no sampling
    decision (B3 may omit it): the sampler should then decide as for a new trace, keeping the
    trace id. Its ``sampled`` flag is off and means nothing."""
    # TODO 5 (context-propagates, sampling-works; rules 2.9, 2.32, 2.33): remember, in
    #   extract_context, which remote B3 parent came without a decision, and report it here.
    return False


def current_trace_ids() -> dict[str, str]:
    """``{"trace_id": <32 hex>, "span_id": <16 hex>}`` for the current span, else ``{}``."""
    # TODO 6 (context-propagates; rules 2.34, 2.35): format the current valid span's ids
    #   (trace.format_trace_id / format_span_id).
    return {}


def add_trace_ids(logger: Any, method_name: str, event_dict: dict) -> dict:
    """structlog processor: add the current ``trace_id`` and ``span_id`` to every event, so a
    log line can be found from its trace and the other way round."""
    # TODO 6 (context-propagates; rules 2.34, 2.35): add current_trace_ids() to event_dict.
    return event_dict
