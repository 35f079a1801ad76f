"""One process of the live system: one service (or the stand-in payment provider) under uvicorn.

`kit.live` starts one of these per service, as `python -m kit.live.service SERVICE PORT`, and
configures it through the environment (learners never run this module themselves):

| variable | meaning |
| --- | --- |
| `WORKSHOP_LIVE_TREE` | the tree to run (`exercise/` or `solution/`): put first on `sys.path` |
| `WORKSHOP_LIVE_EXPORT` | where spans go: `store` (the SQLite span store), `env` (the tree's own Step 1 choice: Azure Monitor or OTLP from the environment), `both` (the store and that backend, chosen by the kit), `off` (tracing off: the SDK disabled) |
| `WORKSHOP_SPAN_DB` | the SQLite span file every service writes and the gateway reads |
| `WORKSHOP_*_URL`, `REDIS_URL`, ... | the provided `Settings` (the services' addresses on 127.0.0.1) |
| `WORKSHOP_LIVE_PROVIDER_LATENCY_MS`, `..._FAILURE_RATE`, `..._DECLINE_RATE`, `..._SEED` | the stand-in provider |
| `WORKSHOP_LIVE_PARENT_PID`, `WORKSHOP_LIVE_MAX_SECONDS` | stop by itself when the launcher is gone, or after that long |
| `WORKSHOP_LIVE_ALIASES` | JSON: address -> name for the viewer's service map |

What the kit adds around the service's own app (outside it, so never traced and never in the
learner's way):

- `POST /_live/flush` on every service: `telemetry.force_flush()` (spans and metrics) and
  the captured log lines, so a script can see its trace at once instead of waiting for the
  next batch;
- its log lines and metrics beside the spans (`kit.live.capture`): the structlog events with
  their trace id, and a metric reader passed to `create_app(..., metric_reader=...)` whose
  points and exemplars go into the span file (`WORKSHOP_LIVE_METRIC_INTERVAL_MS`, 5000);
- on the gateway's port: the trace viewer at `/viewer/` (and `/` redirects there).

Shutdown: SIGINT or SIGTERM makes uvicorn stop accepting, finish the requests in flight, then
run the app's lifespan shutdown, which flushes and shuts down the service's telemetry.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from typing import Any

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from kit.topology import BY_KEY  # noqa: E402

logger = logging.getLogger("kit.live")


class FanOutExporter:
    """Exports to the span store and to other backends; the store's result is the result
    (a backend that is down must not make the SDK retry the store), the others are logged."""

    def __init__(self, primary: Any, others: list[Any]) -> None:
        self.primary, self.others = primary, others
        self._warned: set[int] = set()

    def export(self, spans):
        for i, other in enumerate(self.others):
            try:
                result = other.export(spans)
                failed = getattr(result, "name", "") == "FAILURE"
            except Exception:  # noqa: BLE001 - a backend must never break the service
                failed = True
            if failed and i not in self._warned:
                self._warned.add(i)
                logger.warning("exporting spans to %s failed (warned once)", type(other).__name__)
        return self.primary.export(spans)

    def shutdown(self) -> None:
        for exporter in (self.primary, *self.others):
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001
                logger.exception("exporter shutdown failed")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(getattr(e, "force_flush", lambda *_: True)(timeout_millis)
                   for e in (self.primary, *self.others))


def backend_exporters() -> list[Any]:
    """The real backends the environment names, built by the kit: Azure Monitor
    (`APPLICATIONINSIGHTS_CONNECTION_STRING`, needs the `azure` extra) and OTLP over HTTP
    (`OTEL_EXPORTER_OTLP_ENDPOINT`)."""
    found: list[Any] = []
    if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        try:
            from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
        except ImportError:
            logger.warning("APPLICATIONINSIGHTS_CONNECTION_STRING is set but the Azure Monitor "
                           "exporter is not installed: pip install -e '.[azure]'")
        else:
            found.append(AzureMonitorTraceExporter(
                connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        found.append(OTLPSpanExporter())
    return found


def _exporter(mode: str, span_store: Any) -> Any:
    if mode in ("off", "env"):
        return None                      # off: no tracing; env: the tree's Step 1 chooses
    store = span_store.SpanStoreExporter(span_store.SqliteSpanStore(os.environ["WORKSHOP_SPAN_DB"]))
    return FanOutExporter(store, backend_exporters()) if mode == "both" else store


def _metric_reader(mode: str) -> Any:
    """The kit's metric reader (points and exemplars into the span file, and to OTLP or Azure
    Monitor in `both` mode); None when the tree's Step 1 chooses (`env`) or tracing is off."""
    if mode not in ("store", "both") or not os.environ.get("WORKSHOP_SPAN_DB"):
        return None
    from kit.live import capture

    others = capture.backend_metric_exporters() if mode == "both" else []
    interval = float(os.environ.get("WORKSHOP_LIVE_METRIC_INTERVAL_MS", "5000") or 5000)
    return capture.metric_reader(os.environ["WORKSHOP_SPAN_DB"], interval_ms=interval,
                                 others=others)


def build_service(key: str) -> Any:
    """The service `key`'s app from the tree on `sys.path`, exporting as configured."""
    import importlib

    span_store = importlib.import_module("services.shared.span_store")
    # The gateway's /monitoring/traces (and the viewer) read this store: KQL when a workspace
    # is configured, else the shared SQLite file.
    span_store.set_span_store(span_store.store_from_env())
    settings = importlib.import_module("services.shared.settings").Settings()
    create_app = importlib.import_module(f"services.{BY_KEY[key].package}.main").create_app
    mode = os.environ.get("WORKSHOP_LIVE_EXPORT", "store")
    if mode != "off" and os.environ.get("WORKSHOP_SPAN_DB"):
        from kit.live import capture

        try:                             # log lines beside the spans, for the trace page
            capture.capture_logs(os.environ["WORKSHOP_SPAN_DB"], BY_KEY[key].name)
        except Exception:  # noqa: BLE001 - the service runs without them
            logger.exception("could not capture this service's log lines")
    exporter = _exporter(mode, span_store)
    reader = _metric_reader(mode)
    if reader is None:
        return create_app(settings, exporter=exporter)
    try:
        return create_app(settings, exporter=exporter, metric_reader=reader)
    except TypeError as exc:             # a Step 1 written before metrics: spans only
        if "metric_reader" not in str(exc):
            raise
        logger.warning("this tree's telemetry takes no metric_reader: no metrics (%s)", exc)
        return create_app(settings, exporter=exporter)


def build_provider() -> Any:
    from services.payment_service.provider import create_provider_app

    env = os.environ
    seed = env.get("WORKSHOP_LIVE_PROVIDER_SEED")
    return create_provider_app(
        latency_ms=float(env.get("WORKSHOP_LIVE_PROVIDER_LATENCY_MS", "0") or 0),
        failure_rate=float(env.get("WORKSHOP_LIVE_PROVIDER_FAILURE_RATE", "0") or 0),
        decline_rate=float(env.get("WORKSHOP_LIVE_PROVIDER_DECLINE_RATE", "0") or 0),
        seed=int(seed) if seed not in (None, "") else None)


class LiveDispatch:
    """The ASGI app uvicorn serves: the kit's own routes, then the service's app."""

    def __init__(self, app: Any, *, viewer: Any = None) -> None:
        self.app = app
        self.viewer = viewer
        self.telemetry = getattr(getattr(app, "state", None), "telemetry", None)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/_live/flush" and scope["method"] == "POST":
                return await self._flush(send)
            if self.viewer is not None and (path == "/" or path.startswith("/viewer")):
                return await self.viewer(scope, receive, send)
            if self.viewer is not None and path == "/favicon.ico":
                # A browser on the viewer asks for it: answer here, not with a traced 404.
                await send({"type": "http.response.start", "status": 204, "headers": []})
                return await send({"type": "http.response.body", "body": b""})
        await self.app(scope, receive, send)

    async def _flush(self, send) -> None:
        ok = True
        if self.telemetry is not None:
            try:
                ok = bool(await asyncio.to_thread(self.telemetry.force_flush, 10_000))
            except Exception:  # noqa: BLE001 - an unfinished Step 1 must not crash the kit
                ok = False
        from kit.live import capture

        await asyncio.to_thread(capture.flush_all)      # log lines and metric points
        body = json.dumps({"flushed": ok}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def build(key: str) -> Any:
    """The whole ASGI app for `key`: the service (or provider) inside `LiveDispatch`."""
    if key == "provider":
        return build_provider()
    app = build_service(key)
    viewer = None
    if key == "gateway":
        from kit.live.viewer.server import create_viewer_app
        from services.shared.span_store import get_span_store

        store = get_span_store()
        aliases = json.loads(os.environ.get("WORKSHOP_LIVE_ALIASES", "{}") or "{}")
        viewer = create_viewer_app(store, aliases=aliases,
                                   source=f"spans from {type(store).__name__}"
                                          f" {getattr(store, 'path', '')}".rstrip())
    return LiveDispatch(app, viewer=viewer)


def _watchdog(server: Any, parent_pid: int, max_seconds: float | None) -> None:
    """Stop the server when the launcher is gone or the time is up; exit hard if stopping
    itself hangs."""
    started = time.monotonic()
    while not server.should_exit:
        time.sleep(0.3)
        if parent_pid and os.getppid() != parent_pid:
            logger.warning("the launcher is gone: stopping")
            server.should_exit = True
        elif max_seconds and time.monotonic() - started > max_seconds:
            logger.warning("ran for %.0f s (WORKSHOP_LIVE_MAX_SECONDS): stopping", max_seconds)
            server.should_exit = True
    time.sleep(30)
    os._exit(3)                          # graceful shutdown did not finish in 30 s


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        sys.stderr.write("usage: python -m kit.live.service SERVICE PORT (started by kit.live)\n")
        return 2
    key, port = argv[0], int(argv[1])
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {key} %(levelname)s %(message)s")
    tree = os.environ.get("WORKSHOP_LIVE_TREE")
    if tree:
        sys.path.insert(0, tree)
    import uvicorn

    app = build(key)
    config = uvicorn.Config(app, host=os.environ.get("WORKSHOP_LIVE_HOST", "127.0.0.1"),
                            port=port, lifespan="on" if key != "provider" else "auto",
                            log_level=os.environ.get("WORKSHOP_LIVE_LOG_LEVEL", "warning"),
                            access_log=os.environ.get("WORKSHOP_LIVE_ACCESS_LOG") == "1",
                            timeout_graceful_shutdown=10, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    max_seconds = float(os.environ.get("WORKSHOP_LIVE_MAX_SECONDS", "0") or 0) or None
    threading.Thread(target=_watchdog, daemon=True, name="live-watchdog",
                     args=(server, int(os.environ.get("WORKSHOP_LIVE_PARENT_PID", "0") or 0),
                           max_seconds)).start()
    try:
        server.run()
    except KeyboardInterrupt:            # uvicorn re-raises the signal after a clean stop
        pass
    from kit.live import capture

    capture.flush_all()                  # the last log lines and metric points
    if not server.started:
        return 1                         # e.g. the port was taken: uvicorn logged why
    logger.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
