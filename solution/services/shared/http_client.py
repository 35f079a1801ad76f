"""Step 4: a traced, retrying, circuit-breaking HTTP client for service-to-service calls.

Every call one of our services makes to another goes through one `TracedHttpClient`:

    client = TracedHttpClient("order-service", "1.0.0", telemetry=telemetry)
    response = await client.post("http://payment-service:8005/payments/process",
                                 json=body, headers={"Idempotency-Key": f"order-{order_id}"})

What it does for each call, and why:

- **One span per attempt.** Each attempt (the first try and every retry) is its own `CLIENT`
  span, named after the HTTP method (`"POST"`), as the HTTP semantic conventions ask. A retry
  is a second request on the wire, and the server makes a second server span for it; giving
  each attempt its own client span keeps every server span under the attempt that caused it,
  and the trace shows exactly how many tries a call took and how long each one waited.
  The spans carry the stable semconv attributes `http.request.method`, `url.full`,
  `server.address`, `server.port`, `http.response.status_code` and, from the second attempt
  on, `http.request.resend_count`.
- **Errors on the span.** A response of 400 or more sets status `ERROR` and `error.type` to the
  status code (`"503"`); a transport error sets `ERROR`, `error.type` to the exception's class
  name (`"ConnectError"`) and records the `exception` event.
- **Context on the wire.** Every attempt sends `traceparent` naming *that attempt's* span as
  the parent, `baggage` (when there is any), `X-Correlation-ID` (Step 2's `inject_context`),
  and `X-Service-Name` / `X-Service-Version` so the callee knows who called.
- **Retries.** Connection errors, timeouts and the answers 429, 502, 503 and 504 are retried,
  at most `max_retries` times. The n-th retry first sleeps `backoff_base_s * 2**(n-1)` through
  the injected `sleep` (plus optional jitter of at most that much again). Only requests that
  are safe to repeat are retried: GET, HEAD, OPTIONS, PUT and DELETE always; POST and PATCH
  only when they carry an `Idempotency-Key` header (the server can then recognise a repeat).
  When the retries run out the last answer is returned, or the last transport error raised.
- **A circuit breaker per host** (`host:port`), counting calls, not attempts. A call fails
  when its last attempt got a 5xx, a connection error or a timeout; any other answer is a
  success. After `failure_threshold` failed calls in a row the circuit opens: calls raise
  `CircuitOpenError` at once and send nothing, but still leave an `ERROR` span
  (`error.type = "CircuitOpenError"`) so the refusal is visible in the trace. After
  `reset_timeout_s` (measured with the injected `clock`) one trial call, a single attempt,
  goes through: success closes the circuit, failure opens it again.

The client does not use the httpx auto-instrumentation: it makes its own spans, so the
instrumentation would only add a second, duplicate span per request.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import redact_url

from services.shared.trace_context import CORRELATION_HEADER, inject_context

if TYPE_CHECKING:
    from services.shared.telemetry import DistributedTelemetry

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

#: Methods that may be sent twice without changing the result (RFC 9110, section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Methods that are retried only when the caller made them idempotent with this header.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Answers that say "try again later": too many requests, and a gateway or the service down.
RETRYABLE_STATUS_CODES = frozenset({429, 502, 503, 504})
#: Transport errors worth a retry: every failure to get an answer (connect, read, write,
#: protocol, proxy, timeouts). The contract counts them all as "a connection error or timeout",
#: for the retries and for the circuit breaker alike.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,)
#: The HTTP semantic conventions' known methods; anything else is reported as `_OTHER`.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})


class CircuitOpenError(Exception):
    """Raised, without sending anything, while the circuit of the called host is open."""

    def __init__(self, host: str = "", retry_in_s: float = 0.0) -> None:
        super().__init__(f"circuit open for {host or 'this host'}: calls refused for another "
                         f"{retry_in_s:.1f}s")
        self.host = host
        self.retry_in_s = retry_in_s


@dataclass
class _Circuit:
    """The breaker state of one host: closed, open (since `opened_at`) or half-open."""

    failures: int = 0              # failed calls in a row
    opened_at: float | None = None  # None while closed
    trial_in_flight: bool = False   # half-open: the one trial call is under way


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
        self._circuits: dict[str, _Circuit] = {}
        # One pooled client for the life of this object: connections are reused across calls.
        self._client = httpx.AsyncClient(base_url=base_url, transport=transport,
                                         timeout=timeout_s)

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
        method = method.upper()
        send_kwargs = {k: kwargs.pop(k) for k in ("auth", "follow_redirects") if k in kwargs}
        caller_headers = httpx.Headers(kwargs.pop("headers", None))
        target = self._client.build_request(method, url, **kwargs).url  # base_url, params
        host = _host_key(target)

        admission = self._admit(host)
        if admission is None:
            self._refuse(method, target, host)  # raises CircuitOpenError
        if admission == "trial":
            attempts = 1  # the half-open trial: a single attempt, no retries
        elif method in IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in caller_headers:
            attempts = 1 + self.max_retries
        else:
            attempts = 1  # repeating it could, say, charge a card twice

        failed: bool | None = None  # the call's outcome for the breaker; None: not known
        try:
            for attempt in range(attempts):
                if attempt:
                    await self._sleep(self._backoff(attempt))
                last = attempt == attempts - 1
                try:
                    response = await self._attempt(method, url, kwargs, send_kwargs,
                                                   caller_headers, target, attempt)
                except RETRYABLE_ERRORS:
                    if last:
                        failed = True
                        raise
                    continue
                if response.status_code in RETRYABLE_STATUS_CODES and not last:
                    await response.aclose()  # give the connection back to the pool
                    continue
                failed = response.status_code >= 500
                return response
        finally:
            self._record(host, failed)
        raise AssertionError("unreachable")  # the loop always returns or raises

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(self, method: str, url: str, kwargs: dict[str, Any],
                       send_kwargs: dict[str, Any], caller_headers: httpx.Headers,
                       target: httpx.URL, attempt: int) -> httpx.Response:
        """One request on the wire, inside its own CLIENT span."""
        attributes = _request_attributes(method, target)
        if attempt:
            attributes["http.request.resend_count"] = attempt
        # The span's parent is the current span (e.g. the workflow's `process_payment`); the
        # current context also holds the baggage, which therefore travels on.
        span = self._telemetry.tracer.start_span(_span_name(method), kind=SpanKind.CLIENT,
                                                 attributes=attributes)
        try:
            # The context to propagate is the current one with *this attempt's* span in it, so
            # the callee's server span becomes a child of this attempt, not of its parent.
            headers = self._outgoing_headers(caller_headers, trace.set_span_in_context(span))
            request = self._client.build_request(method, url, headers=headers, **kwargs)
            with trace.use_span(span, end_on_exit=False, record_exception=False,
                                set_status_on_exception=False):
                response = await self._client.send(request, **send_kwargs)
        except Exception as exc:
            # No answer: the span says what went wrong, with the exception as an event.
            span.set_attribute("error.type", type(exc).__qualname__)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
            raise
        else:
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                # Semconv for client spans: every 4xx/5xx is an error of this request; the
                # status code is the error type and says enough, so no description is set.
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
            return response
        finally:
            span.end()

    def _outgoing_headers(self, caller_headers: httpx.Headers, context: Context) -> httpx.Headers:
        """The caller's headers plus the propagation and service-mesh headers."""
        headers = httpx.Headers(caller_headers)
        # `traceparent`, `tracestate`, `baggage` and `X-Correlation-ID` from Step 2. The trace
        # headers always name this attempt; a correlation id the caller chose is kept.
        for name, value in inject_context({}, context=context).items():
            if name.lower() == CORRELATION_HEADER.lower() and name in headers:
                continue
            headers[name] = value
        headers["X-Service-Name"] = self.service_name
        headers["X-Service-Version"] = self.service_version
        return headers

    def _backoff(self, retry: int) -> float:
        """The wait before the `retry`-th retry (1, 2, ...): exponential, optional jitter."""
        delay = self.backoff_base_s * 2 ** (retry - 1)
        if self._jitter is not None:
            delay += min(max(self._jitter(delay), 0.0), delay)
        return delay

    # -- circuit breaker ---------------------------------------------------------------------

    def _admit(self, host: str) -> str | None:
        """May a call to `host` go out now? `"closed"`: yes; `"trial"`: yes, as the half-open
        trial (an open circuit whose timeout has passed); `None`: no, the circuit is open."""
        circuit = self._circuits.setdefault(host, _Circuit())
        if circuit.opened_at is None:
            return "closed"
        if circuit.trial_in_flight:
            return None  # half-open: only the one trial call at a time
        if self._clock() - circuit.opened_at >= self.reset_timeout_s:
            circuit.trial_in_flight = True
            return "trial"
        return None

    def _record(self, host: str, failed: bool | None) -> None:
        """Count the outcome of a call that was let through (`None`: no verdict, e.g. the
        call was cancelled or the URL was unusable; a trial then leaves the next call to try)."""
        circuit = self._circuits[host]
        trial = circuit.trial_in_flight
        circuit.trial_in_flight = False
        if failed is None:
            return
        if not failed:
            circuit.failures = 0
            circuit.opened_at = None  # a success closes the circuit (half-open included)
            return
        circuit.failures += 1
        if trial or circuit.failures >= self.failure_threshold:
            circuit.opened_at = self._clock()  # (re)open for another reset_timeout_s

    def _refuse(self, method: str, target: httpx.URL, host: str) -> None:
        """Raise `CircuitOpenError`, leaving an ERROR span so the refusal shows in the trace."""
        circuit = self._circuits[host]
        if circuit.trial_in_flight:
            retry_in = 0.0
        else:
            retry_in = max(0.0, circuit.opened_at + self.reset_timeout_s - self._clock())
        error = CircuitOpenError(host, retry_in)
        # A CLIENT span like an attempt's (same name and request attributes, but no status
        # code: nothing was sent). The call the service wanted to make is still a failed call
        # to this dependency, and as a CLIENT span it shows up as one in a service map.
        with self._telemetry.tracer.start_as_current_span(
                _span_name(method), kind=SpanKind.CLIENT,
                attributes=_request_attributes(method, target),
                record_exception=False, set_status_on_exception=False) as span:
            span.set_attribute("error.type", "CircuitOpenError")
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        raise error


def _span_name(method: str) -> str:
    """Semconv client span name: the method alone (`"POST"`); `"HTTP"` for unknown methods."""
    return method if method in KNOWN_METHODS else "HTTP"


def _request_attributes(method: str, url: httpx.URL) -> dict[str, Any]:
    """The stable HTTP semconv attributes known before the request is sent."""
    attributes: dict[str, Any] = {
        "http.request.method": method if method in KNOWN_METHODS else "_OTHER",
        "url.full": redact_url(str(url)),  # credentials and signed query values removed
        "server.address": url.host,
        "server.port": _port(url),
    }
    if method not in KNOWN_METHODS:
        attributes["http.request.method_original"] = method
    return attributes


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _host_key(url: httpx.URL) -> str:
    """The circuit breaker's key: `host:port`."""
    return f"{url.host}:{_port(url)}"

