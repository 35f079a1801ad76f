"""Step 4: a traced, retrying, circuit-breaking HTTP client for service-to-service calls.

Every call one of our services makes to another goes through one `TracedHttpClient`:

    client = TracedHttpClient("order-service", "1.0.0", telemetry=telemetry)
    response = await client.post("http://payment-service:8005/payments/process",
                                 json=body, headers={"Idempotency-Key": f"order-{order_id}"})

As shipped, this is a plain pooled httpx client handed to Step 1's auto-instrumentation
(`telemetry.instrument_client`): once Steps 1 and 2 are done, each call is one plain CLIENT span
carrying the trace context, so Steps 1 to 3 can be finished before this one. But a call is
never retried, never refused, and its span says nothing about attempts. Your job is to make
each call:

- **One span per attempt** (TODO 1, traces-span-services; rules 4.3, 4.5): each attempt (the first
  try and every retry) is its own `CLIENT` span, named after the HTTP method (`"POST"`), as the
  HTTP semantic conventions ask, made with `telemetry.tracer`.
- **Carry the trace** (TODO 2, traces-span-services, context-propagates and rich-attributes;
  rules 4.10 to 4.13): every attempt sends `traceparent` naming *that attempt's* span as the
  parent, `baggage` (when there is any) and `X-Correlation-ID` (Step 2's `inject_context` writes
  all three), plus `X-Service-Name` / `X-Service-Version`.
- **Describe the request** (TODO 3, rich-attributes; rule 4.4): `http.request.method`, `url.full`,
  `server.address`, `server.port`, and `http.response.status_code` once the answer came.
- **Retry** (TODO 4, traces-span-services; rules 4.1, 4.2, 4.14 to 4.17): connection errors,
  timeouts and the answers 429, 502, 503 and 504, at most `max_retries` times. The n-th retry first
  sleeps `backoff_base_s * 2**(n-1)` through the injected `sleep`, and its span carries
  `http.request.resend_count` = n. When the retries run out, return the last answer, or re-raise
  the last transport error.
- **Retry only what is safe to repeat** (TODO 5, traces-span-services; rules 4.18, 4.19): GET,
  HEAD, OPTIONS, PUT and DELETE are retried; POST and PATCH only when they carry an
  `Idempotency-Key` header.
- **Break the circuit** (TODO 6, traces-span-services; rules 4.20 to 4.30): per host (`host:port`),
  counting calls, not attempts. A call fails when its last attempt got a 5xx, a connection error or
  a timeout; any other answer is a success. After `failure_threshold` failed calls in a row, calls
  raise `CircuitOpenError` at once, send nothing, and leave an `ERROR` span with `error.type =
  "CircuitOpenError"`. After `reset_timeout_s` (on the injected `clock`) one trial call, a single
  attempt, goes through: success closes the circuit, failure reopens it.
- **Show errors** (TODO 7, errors-traced; rules 4.6 to 4.9): a response of 400 or more sets status
  `ERROR` and `error.type` to the status code (`"503"`); a transport error sets `ERROR`,
  `error.type` to the exception's class name (`"ConnectError"`) and records the `exception` event.

Once your `request()` makes its own spans, remove the auto-instrumentation from this client
(the `instrument_client` line in `__init__`): it would add a second span per request.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from services.shared.telemetry import DistributedTelemetry

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class CircuitOpenError(Exception):
    """Raised, without sending anything, while the circuit of the called host is open."""

    def __init__(self, host: str = "", retry_in_s: float = 0.0) -> None:
        super().__init__(f"circuit open for {host or 'this host'}: calls refused for another "
                         f"{retry_in_s:.1f}s")
        self.host = host
        self.retry_in_s = retry_in_s


class TracedHttpClient:
    """An httpx client that traces, retries and circuit-breaks every call (see module docs).

    `telemetry` is the service's `DistributedTelemetry`; spans come from `telemetry.tracer`.
    `transport` replaces the network (tests and the kit's mesh route calls in-process).
    `sleep` and `clock` are injected so that backoff and the breaker's timing are testable.
    `jitter`, when given, maps a backoff delay to the random extra to add to it (for example
    `lambda d: random.uniform(0, d)`); it is clamped to [0, delay]. The default adds none,
    so the waits are exactly the documented sequence.
    """

    def __init__(self, service_name: str, service_version: str = "1.0.0", *,
                 telemetry: DistributedTelemetry, base_url: str = "",
                 transport: httpx.AsyncBaseTransport | None = None, timeout_s: float = 5.0,
                 max_retries: int = 3, backoff_base_s: float = 0.1,
                 failure_threshold: int = 5, reset_timeout_s: float = 30.0,
                 sleep: Sleep = asyncio.sleep, clock: Clock = time.monotonic,
                 jitter: Callable[[float], float] | None = None) -> None:
        self.service_name = service_name
        self.service_version = service_version
        self.max_retries = max(0, max_retries)
        self.backoff_base_s = backoff_base_s
        self.failure_threshold = max(1, failure_threshold)
        self.reset_timeout_s = reset_timeout_s
        self._telemetry = telemetry
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        # TODO 6 (traces-span-services; rules 4.20 to 4.30): keep the circuit breaker's state here,
        #   one entry per "host:port": failed calls in a row, when the circuit opened, and whether
        #   the half-open trial call is under way.
        # One pooled client for the life of this object: connections are reused across calls.
        self._client = httpx.AsyncClient(base_url=base_url, transport=_own(transport),
                                         timeout=timeout_s)
        # Until you make your own spans, Step 1's auto-instrumentation traces these calls: one
        # plain CLIENT span per request and the propagation headers (once Steps 1 and 2 are
        # done), no retries, no circuit breaker.
        # TODO 1 (traces-span-services; rule 4.3): delete this line when your request()
        #   makes its own CLIENT span per attempt, or every attempt gets two spans.
        telemetry.instrument_client(self._client)

    async def __aenter__(self) -> TracedHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """`request("GET", url, **kwargs)`."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """`request("POST", url, **kwargs)`."""
        return await self.request("POST", url, **kwargs)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one call (one or more attempts) and return the final response.

        `kwargs` are those of `httpx.AsyncClient.request` (`json`, `params`, `headers`, ...).
        Raises `CircuitOpenError` while the host's circuit is open, and the last transport
        error when every attempt failed without an answer.
        """
        # TODO 6 (traces-span-services; rules 4.20 to 4.30): find the call's "host:port" (build the
        #   request once with self._client.build_request(...) to resolve base_url and params, then
        #   read its .url). If that host's circuit is open, raise CircuitOpenError without sending
        #   anything, but first make an ERROR span for the refusal (error.type =
        #   "CircuitOpenError", with the exception recorded). Once reset_timeout_s has passed on
        #   self._clock, let one trial call through as a single attempt. At the end, count the
        #   call: a failure (5xx, connection error or timeout on its last attempt) or a success
        #   (any other answer), which resets the count and closes the circuit.
        # TODO 4 (traces-span-services; rules 4.14 to 4.17): loop over the attempts. Retry
        #   connection errors, timeouts and 429/502/503/504, at most self.max_retries times,
        #   sleeping self.backoff_base_s * 2**(n-1) with `await self._sleep(...)` before the n-th
        #   retry, whose span carries http.request.resend_count = n. Close a response you will not
        #   return (`await response.aclose()`). Out of retries: return the last response, or
        #   re-raise the last transport error.
        # TODO 5 (traces-span-services; rules 4.18, 4.19): retry only GET, HEAD, OPTIONS, PUT and
        #   DELETE, and a POST or PATCH whose headers hold an Idempotency-Key (any casing).
        # TODO 1 (traces-span-services; rules 4.3, 4.5): make every attempt one CLIENT span,
        #   started with self._telemetry.tracer.start_span(method, kind=SpanKind.CLIENT, ...) under
        #   the current span, and ended when the attempt is over. Make it current while the request
        #   is sent (trace.use_span(span, end_on_exit=False)).
        # TODO 2 (traces-span-services, context-propagates, rich-attributes; rules 4.10 to
        #   4.13): give every attempt its own
        #   headers: the caller's, plus inject_context({}, context=trace.set_span_in_context(
        #   span)) from services.shared.trace_context (traceparent naming this attempt's span,
        #   baggage, X-Correlation-ID, but never replacing an X-Correlation-ID the caller
        #   set), plus X-Service-Name and X-Service-Version.
        # TODO 3 (rich-attributes; rule 4.4): put http.request.method, url.full, server.address and
        #   server.port on the span when it starts, and http.response.status_code once the
        #   answer came.
        # TODO 7 (errors-traced; rules 4.6 to 4.9): an answer of 400 or more: status ERROR and
        #   error.type = str(status code). A transport error: status ERROR, error.type = the
        #   exception's class name, span.record_exception(exc), then let it propagate.
        return await self._client.request(method, url, **kwargs)


class _OwnHandle(httpx.AsyncBaseTransport):
    """A transport seen through a handle of this client's own.

    The auto-instrumentation wraps the transport object it is given; several services may share
    one transport (the kit's mesh does), and each would then trace every other's calls too.
    Instrumenting this handle traces this client's calls only. You may drop it together with
    the `instrument_client` line."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _own(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport | None:
    return None if transport is None else _OwnHandle(transport)
