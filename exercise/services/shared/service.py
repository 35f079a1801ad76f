"""What every service app is built from: telemetry, one HTTP client, correlation ids, lifespan.

`create_service_app("inventory", ...)` returns a FastAPI app for one of our five services with

- its own `DistributedTelemetry` (Step 1), initialised with the service's name and instrumenting
  the app; kept as `app.state.telemetry`. A fresh instance per app, never the module-level
  default, so that five services can share one process without sharing a tracer provider (or a
  meter provider: `metric_reader`, when given, is this service's own, since a reader belongs
  to one meter provider);
- one `TracedHttpClient` (Step 4) for every outgoing call, kept as `app.state.http_client`;
- `X-Correlation-ID: correlation_id(request.headers)` (Step 2) on every response, error
  responses included, when Step 2 gives a non-empty id;
- a lifespan that, on shutdown, runs the app's closers, closes the HTTP client and flushes and
  shuts down telemetry, so nothing is lost when a service stops.

Each service's `main.py` adds its routes to the app this returns; nothing is module-level state.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Status, StatusCode

from services.shared.http_client import TracedHttpClient
from services.shared.sampling import SamplingConfig
from services.shared.settings import SERVICE_NAMES, Settings
from services.shared.telemetry import DistributedTelemetry
from services.shared.trace_context import CORRELATION_HEADER, correlation_id

Sleep = Callable[[float], Awaitable[None]]


def create_service_app(
    key: str,
    settings: Settings | None = None,
    *,
    exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    sampling: SamplingConfig | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    batch: bool = True,
    sleep: Sleep | None = None,
    title: str = "",
) -> FastAPI:
    """Build the app of service `key` (one of `SERVICE_NAMES`), ready for its routes."""
    settings = settings or Settings()
    name = SERVICE_NAMES[key]
    closers: list[Callable[[], Any]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            for close in reversed(closers):
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            await http_client.aclose()
            telemetry.force_flush()
            telemetry.shutdown()

    app = FastAPI(title=title or name, lifespan=lifespan)
    telemetry = DistributedTelemetry()
    # `metric_reader` is passed only when given, so a telemetry.py written before metrics were
    # added to Step 1 still runs every service (only the metrics themselves are then missing).
    metrics = {"metric_reader": metric_reader} if metric_reader is not None else {}
    telemetry.initialize(name, settings.service_version, settings.environment,
                         exporter=exporter, sampling=sampling, batch=batch, **metrics)
    http_client = TracedHttpClient(name, settings.service_version, telemetry=telemetry,
                                   transport=transport, timeout_s=settings.http_timeout_s,
                                   sleep=sleep or asyncio.sleep)
    app.state.settings = settings
    app.state.telemetry = telemetry
    app.state.http_client = http_client
    app.state.closers = closers

    app.add_middleware(CorrelationIdMiddleware)

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception):
        # Starlette answers an unhandled exception with a 500 from its outermost middleware,
        # which user middleware never sees: echo the correlation id here too.
        response = JSONResponse({"detail": "internal server error", "error": type(exc).__name__},
                                status_code=500)
        _set_correlation_header(request, response)
        return response

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": name}

    telemetry.instrument_app(app)
    return app


class CorrelationIdMiddleware:
    """Adds `X-Correlation-ID: correlation_id(request headers)` to every response that passes
    through it (a plain ASGI middleware: cheaper than Starlette's BaseHTTPMiddleware, and it
    leaves the request's context alone)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
                value = correlation_id(headers)
                if value and not any(k.lower() == b"x-correlation-id" for k, _ in message.get("headers", [])):
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (CORRELATION_HEADER.encode("latin-1"), value.encode("latin-1"))]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _set_correlation_header(request: Request, response) -> None:
    value = correlation_id(request.headers)
    if value:
        response.headers[CORRELATION_HEADER] = value


def mark_error(description: str) -> None:
    """Set this service's current span (its server span, in a route) to ERROR.

    The HTTP instrumentation only marks a server span ERROR for a 5xx answer; a failed order or
    a failed downstream call answered with a 4xx is an error of this request too, and making it
    visible at every hop is what lets tail sampling keep the whole failing path."""
    trace.get_current_span().set_status(Status(StatusCode.ERROR, description))


def forward(response: httpx.Response) -> JSONResponse:
    """Pass a downstream JSON answer on with its status code."""
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    return JSONResponse(body, status_code=response.status_code)
