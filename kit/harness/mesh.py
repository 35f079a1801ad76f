"""The five services in one process, for one check: routed by host name, only headers cross.

    async with Mesh() as mesh:
        response = await mesh.order()            # POST /api/orders through the gateway
        spans = mesh.spans()                     # every finished span, from all five services

Each service is built by its own `create_app(...)` from the target tree on `sys.path`, with a
fresh `DistributedTelemetry` exporting to one shared `InMemorySpanExporter` (`batch=False`, so
spans are exported as they end). Service URLs keep the workshop's host names
(`http://inventory-service:8004`); `MeshTransport` routes each host to its app.

**Only headers cross a boundary.** `httpx.ASGITransport` would run the callee in the caller's
`contextvars`, so the callee would inherit the caller's current span and a broken propagator
would still "pass". `MeshTransport` runs every callee in a task with a fresh, empty
`contextvars.Context()`: the trace reaches the callee through `traceparent` or not at all.

The external payment API is `PaymentApi` (`mesh.provider`), answering every charge with success
by default; `provider_declines()`, `provider_fails()`, `provider_times_out()` and
`provider_slow()` change its answer, and `mesh.charges` counts the charges it received. A request
to any other host is a connection error: the mesh holds only the five services and that API.
The HTTP clients' sleeps are recorded in `mesh.sleeps` and return at once.

**Metrics.** `Mesh(metric_readers=True)` gives every service its own `AccumulatingMetricReader`
(passed to `initialize(metric_reader=...)` through `create_app`); `mesh.metrics("order-service")`
flushes that service and returns its reader, which keeps every collection it was handed (a
`force_flush` collects, and an exemplar belongs to the collection that took it).
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

import httpx  # noqa: E402
from opentelemetry.sdk.metrics.export import MetricReader  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from kit.harness.learner import load  # noqa: E402
from kit.topology import SERVICES, default_items  # noqa: E402


class AccumulatingMetricReader(MetricReader):
    """A pull reader that keeps every collection it is handed, in order.

    `MeterProvider.force_flush` (and so a correct `DistributedTelemetry.force_flush`) collects
    every reader, and the SDK hands each exemplar to the collection that took it only: a reader
    that kept just the last collection would lose them. `collections` is every `MetricsData`;
    `metrics(name)` every metric of that name across them; `points(name)` their data points
    (with the resource each came with); `shut_down` says whether the meter provider shut it down.
    """

    def __init__(self) -> None:
        super().__init__()
        self.collections: list = []
        self.shut_down = False

    def _receive_metrics(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> None:
        if metrics_data is not None:
            self.collections.append(metrics_data)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self.shut_down = True

    def metrics(self, name: str | None = None) -> list[tuple[Any, Any]]:
        """(resource, metric) for every metric called `name` (every metric when None), in every
        collection."""
        return [(rm.resource, metric) for data in self.collections for rm in data.resource_metrics
                for sm in rm.scope_metrics for metric in sm.metrics if name is None or metric.name == name]

    def points(self, name: str) -> list[tuple[Any, Any]]:
        """(resource, data point) for every point of the metrics called `name`."""
        return [(resource, point) for resource, metric in self.metrics(name)
                for point in getattr(metric.data, "data_points", ())]

    def names(self) -> list[str]:
        return sorted({metric.name for _, metric in self.metrics()})



@dataclass
class Crossing:
    """One request that crossed a boundary in the mesh: who was called, with which headers."""

    host: str
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None


class MeshTransport(httpx.AsyncBaseTransport):
    """Routes requests by host name to ASGI apps, each run in a fresh `contextvars.Context`;
    any other host goes to `fallback` (the external world: `PaymentApi`)."""

    def __init__(self, fallback: httpx.AsyncBaseTransport, *, isolate: bool = True,
                 strip_headers: Iterable[str] = ()) -> None:
        self.apps: dict[str, Any] = {}
        self.fallback = fallback
        self.isolate = isolate
        self.strip_headers = tuple(h.lower() for h in strip_headers)
        self.crossings: list[Crossing] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.route(request, between_services=True)

    async def route(self, request: httpx.Request, *, between_services: bool) -> httpx.Response:
        if between_services:
            for name in self.strip_headers:
                request.headers.pop(name, None)
        crossing = Crossing(host=request.url.host, method=request.method, path=request.url.path,
                            headers={k.lower(): v for k, v in request.headers.items()})
        self.crossings.append(crossing)
        app = self.apps.get(request.url.host)
        if app is None:
            response = await self.fallback.handle_async_request(request)
        else:
            asgi = httpx.ASGITransport(app, raise_app_exceptions=False, client=("10.0.0.2", 40000))
            call = asgi.handle_async_request(request)
            if self.isolate:  # only headers cross: the callee starts from an empty context
                call = asyncio.get_running_loop().create_task(call, context=contextvars.Context())
            response = await call
        crossing.status = response.status_code
        return response


class _FromOutside(httpx.AsyncBaseTransport):
    """The client's way into the mesh: its own headers always arrive as sent."""

    def __init__(self, mesh_transport: MeshTransport) -> None:
        self.mesh_transport = mesh_transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.mesh_transport.route(request, between_services=False)


class PaymentApi(httpx.AsyncBaseTransport):
    """The external payment API: `POST <url>/v1/charges...` gets the answer set last (see
    `Mesh.provider_succeeds` and the others); `charges` counts those requests. Any other request
    is a connection error, as for a host that does not exist."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.charges = 0
        self._answer: Any = None

    def answer(self, answer: Any) -> None:
        """What every charge gets from now on: an async function of the request that returns the
        response (or raises)."""
        self._answer = answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not str(request.url).startswith(f"{self.url}/v1/charges"):
            raise httpx.ConnectError(f"no route to {request.url.host}: the mesh holds only the five services "
                                     f"and the payment API's POST {self.url}/v1/charges", request=request)
        self.charges += 1
        return await self._answer(request)


async def _time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("connection to the payment provider timed out", request=request)


def _answer(status: int, body: dict, delay_s: float = 0.0):
    async def respond(request: httpx.Request) -> httpx.Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        return httpx.Response(status, json=body, request=request)
    return respond


@dataclass
class Mesh:
    """The five services of the target tree for one check (an async context manager)."""

    sampling: Any = None
    isolate: bool = True
    strip_headers: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    metric_readers: bool = False

    def __post_init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = PaymentApi(self.provider_url)
        self.sleeps: list[float] = []
        self.transport = MeshTransport(self.provider, isolate=self.isolate, strip_headers=self.strip_headers)
        self.apps: dict[str, Any] = {}
        self.readers: dict[str, AccumulatingMetricReader] = {}
        self._stack = contextlib.AsyncExitStack()
        self._previous_store = None
        self.provider_succeeds()

    # -- the external payment API ---------------------------------------------------------
    @property
    def provider_url(self) -> str:
        return self._settings.payment_provider_url

    def provider_succeeds(self, transaction_id: str = "ch_workshop_0001") -> None:
        self.provider.answer(_answer(200, {"id": transaction_id, "status": "succeeded"}))

    def provider_declines(self, code: str = "card_declined") -> None:
        self.provider.answer(_answer(402, {"error": {"code": code, "message": "Your card was declined."}}))

    def provider_fails(self, status: int = 503) -> None:
        self.provider.answer(_answer(status, {"error": {"code": "unavailable"}}))

    def provider_times_out(self) -> None:
        self.provider.answer(_time_out)

    def provider_slow(self, delay_s: float, transaction_id: str = "ch_workshop_slow") -> None:
        self.provider.answer(_answer(200, {"id": transaction_id, "status": "succeeded"}, delay_s))

    @property
    def charges(self) -> int:
        """How many requests reached the external payment API."""
        return self.provider.charges

    # -- building and tearing down -------------------------------------------------------
    @property
    def _settings(self):
        if not hasattr(self, "_settings_obj"):
            settings_cls = load("services.shared.settings").Settings
            self._settings_obj = settings_cls(**self.settings)
        return self._settings_obj

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def __aenter__(self) -> "Mesh":
        span_store = load("services.shared.span_store")
        self._previous_store = span_store.get_span_store()
        span_store.set_span_store(span_store.ExporterBackedSpanStore(self.exporter))
        try:
            for service in SERVICES:
                key = service.key
                create_app = load(f"services.{service.package}.main").create_app
                extra: dict[str, Any] = {}
                if self.metric_readers:  # only when asked: a reader belongs to one meter provider
                    extra["metric_reader"] = self.readers.setdefault(service.name, AccumulatingMetricReader())
                app = create_app(self._settings, exporter=self.exporter, sampling=self.sampling,
                                 transport=self.transport, batch=False, sleep=self._sleep, **extra)
                await self._stack.enter_async_context(app.router.lifespan_context(app))
                self.apps[key] = app
                host = httpx.URL(getattr(self._settings, f"{key}_url")).host
                self.transport.apps[host] = app
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._previous_store is not None:
                load("services.shared.span_store").set_span_store(self._previous_store)

    # -- using it ---------------------------------------------------------------------------
    def client(self, **kwargs) -> httpx.AsyncClient:
        """A client outside the system (the workshop's "Client App"), talking to the gateway."""
        return httpx.AsyncClient(transport=_FromOutside(self.transport), base_url=self._settings.gateway_url, **kwargs)

    async def order(self, *, token: str = "token-alice", items: list[dict] | None = None,
                    total_amount: float | None = None, headers: dict[str, str] | None = None,
                    order_id: str | None = None) -> httpx.Response:
        """POST /api/orders through the gateway, as a client would."""
        items = default_items() if items is None else items
        body: dict[str, Any] = {"items": items, "total_amount": total_amount if total_amount is not None
                                else round(sum(i["quantity"] * i["price"] for i in items), 2)}
        if order_id:
            body["id"] = order_id
        async with self.client() as client:
            return await client.post("/api/orders", json=body,
                                     headers={"Authorization": f"Bearer {token}", **(headers or {})})

    async def get(self, service: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """GET a path of one of our services (by key: "gateway", "inventory", ...)."""
        async with httpx.AsyncClient(transport=_FromOutside(self.transport)) as client:
            return await client.get(f"{getattr(self._settings, f'{service}_url')}{path}", headers=headers)

    def telemetry(self, service: str):
        return self.apps[service].state.telemetry

    def spans(self) -> list:
        """Every finished span exported so far (all services flushed first)."""
        for app in self.apps.values():
            app.state.telemetry.force_flush()
        return list(self.exporter.get_finished_spans())

    def metrics(self, service: str) -> AccumulatingMetricReader:
        """The metric reader of one service (by name, "order-service", or key, "order"), after
        flushing that service (its `force_flush` collects). Needs `Mesh(metric_readers=True)`."""
        by_key = {s.key: s.name for s in SERVICES}
        name = by_key.get(service, service)
        if name not in self.readers:
            raise KeyError(f"no metric reader for {service!r}: build the mesh with metric_readers=True")
        key = next(s.key for s in SERVICES if s.name == name)
        if key in self.apps:
            self.apps[key].state.telemetry.force_flush()
        return self.readers[name]

    def crossings_to(self, host: str) -> list[Crossing]:
        return [c for c in self.transport.crossings if c.host == host]
