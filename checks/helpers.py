"""Small tools the checks share: fake clocks and sleeps, and learner objects built for a check.

Everything here reaches the learner's code only through the contract's names (via
`kit.harness.learner`), so a different correct implementation is treated exactly like the reference.
"""
from __future__ import annotations

import contextlib
from urllib.parse import unquote

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from kit.harness.expect import fail
from kit.harness.learner import attr, describe_exception


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """An async sleep that returns at once and remembers what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_telemetry(service_name: str, *, sampling=None, environment: str = "development"):
    """A fresh, initialised DistributedTelemetry exporting to its own InMemorySpanExporter
    (batch=False), returned with that exporter."""
    telemetry = attr("services.shared.telemetry", "DistributedTelemetry")()
    exporter = InMemorySpanExporter()
    telemetry.initialize(service_name, "1.0.0", environment, exporter=exporter, sampling=sampling, batch=False)
    return telemetry, exporter


def traced_client(telemetry, router, *, service_name: str = "checker-service", sleep=None, clock=None, **options):
    """A TracedHttpClient on a respx router; sleeps are recorded, never real."""
    client_cls = attr("services.shared.http_client", "TracedHttpClient")
    extra = {"clock": clock} if clock is not None else {}
    return client_cls(service_name, "1.0.0", telemetry=telemetry,
                      transport=httpx.MockTransport(router.async_handler),
                      sleep=sleep or RecordingSleep(), **extra, **options)


class ScriptedWire:
    """A fake network for a TracedHttpClient (pass it where a respx router goes): each request
    to a host:port gets that host's next scripted outcome, an int status code or an httpx
    exception class; the last outcome repeats. Every request that reached the wire is kept."""

    def __init__(self, outcomes=(200,), **by_host) -> None:
        self.default = list(outcomes)
        self.by_host = {host.replace("_", "-"): list(o) for host, o in by_host.items()}
        self.requests: list = []
        self.outcomes: list = []  # what each request in `requests` got
        self._sent: dict[str, int] = {}

    def script(self, host: str, outcomes) -> None:
        """From now on, `host` ("name:port") answers `outcomes` (its count starts again)."""
        self.by_host[host] = list(outcomes)
        self._sent[host] = 0

    def sent_to(self, host: str) -> list:
        return [r for r in self.requests if f"{r.url.host}:{r.url.port}" == host]

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host = f"{request.url.host}:{request.url.port}"
        script = self.by_host.get(host, self.default)
        n = self._sent.get(host, 0)
        self._sent[host] = n + 1
        outcome = script[min(n, len(script) - 1)]
        self.outcomes.append(outcome)
        if isinstance(outcome, type) and issubclass(outcome, Exception):
            raise outcome(f"scripted {outcome.__name__}", request=request)
        return httpx.Response(int(outcome), json={"attempt": n + 1})


def outcome_name(outcome) -> str:
    """How a scripted outcome reads in a check's message: `503`, `ConnectError`."""
    return outcome.__name__ if isinstance(outcome, type) else str(outcome)


def picture_records(records, base_ms: float = 0.0) -> str:
    """SpanRecord-shaped spans drawn as a tree with their times in ms from `base_ms`, each line
    numbered by its place in the list given (#1 first), so that a failing check can show the
    learner the exact input: parents, times, services, kinds, statuses and attributes."""
    records = list(records)
    if not records:
        return "  (no spans)"
    first: dict[str, int] = {}
    for i, r in enumerate(records):
        first.setdefault(r.span_id, i)
    ids = set(first)

    def line(i: int, r, prefix: str) -> str:
        extra = [r.kind, r.status] + [f"{k}={v}" for k, v in sorted((r.attributes or {}).items())]
        note = ""
        if first[r.span_id] != i:
            note = f"  (a second copy of span id {r.span_id}, given after #{first[r.span_id] + 1})"
        elif r.parent_span_id is not None and r.parent_span_id not in ids:
            note = f"  (orphan: its parent {r.parent_span_id} is absent)"
        start = r.start_ms - base_ms
        return (f"  {prefix}#{i + 1} {r.name} [{start:g}, {start + r.duration_ms:g}] {r.service} "
                f"{' '.join(str(e) for e in extra)}{note}")

    kids: dict[str | None, list[int]] = {}
    for i, r in enumerate(records):
        parent = r.parent_span_id if r.parent_span_id in ids and first[r.span_id] == i else None
        kids.setdefault(parent, []).append(i)
    lines: list[str] = []
    stack = [(i, "") for i in reversed(kids.get(None, []))]
    seen: set[int] = set()
    while stack and len(lines) < 80:
        i, prefix = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        lines.append(line(i, records[i], prefix))
        if first[records[i].span_id] == i:
            stack += [(k, prefix + "   ") for k in reversed(kids.get(records[i].span_id, []))]
    lines += [line(i, r, "? ") for i, r in enumerate(records) if i not in seen][:20]
    return "\n".join(lines)


@contextlib.contextmanager
def capture_log_events(logs_module=None, *, stdlib: bool = False):
    """Every structlog event logged inside the block, as the dict the configured processors made.

    `structlog.testing.capture_logs()` replaces the processors, so Step 2's `add_trace_ids` (which
    the provided `services/shared/logs.py` puts in the chain) never runs under it. This keeps the
    configured chain, set up by `logs_module.configure_logging()` when a module is given, and
    swaps only its final renderer for a capture; the previous configuration comes back after.
    With `stdlib`, records of the standard `logging` module are captured too (as
    `{"event": message, "log_level": ..., **extra}`), whatever their level: a rule that says only
    "logs" does not say through which library."""
    import logging

    import structlog

    previous = structlog.get_config()
    events: list[dict] = []
    plain = logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append({"event": record.getMessage(), "log_level": record.levelname.lower(),
                           **{k: v for k, v in record.__dict__.items() if k not in plain}})

    root, handler = logging.getLogger(), Capture(logging.DEBUG)
    level = root.level
    if stdlib:
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)

    def capture(logger, method_name, event_dict):
        events.append(dict(event_dict))
        raise structlog.DropEvent

    try:
        if logs_module is not None:
            logs_module.configure_logging()
        processors = list(structlog.get_config()["processors"])
        renderers = (structlog.processors.JSONRenderer, structlog.processors.KeyValueRenderer,
                     structlog.processors.LogfmtRenderer, structlog.dev.ConsoleRenderer)
        if processors and isinstance(processors[-1], renderers):
            processors.pop()
        structlog.configure(processors=[*processors, capture], cache_logger_on_first_use=False)
        yield events
    finally:
        structlog.configure(**previous)
        if stdlib:
            root.removeHandler(handler)
            root.setLevel(level)


def call_learner(module: str, name: str, *args, **kwargs):
    """Call a learner function by the contract's name; a NotImplementedError (a stub) or a crash
    fails the check, saying which."""
    return learner_function(module, name)(*args, **kwargs)


def learner_function(module: str, name: str):
    """The learner function `name` of `module`, looked up once (for a check that calls it
    thousands of times), failing the check as `call_learner` does when a call raises."""
    function = attr(module, name)

    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except NotImplementedError as exc:
            fail(did=f"called {name}(...)", expected="a result", saw=f"NotImplementedError: {exc} (still a stub)")
        except Exception as exc:  # noqa: BLE001 - the learner's function crashed: say so
            fail(did=f"called {name}(...)", expected="a result", saw=describe_exception(exc))
    return call


def baggage_entries(header: str | None) -> dict[str, str]:
    """The entries of a W3C `baggage` header as the format reads them: members separated by commas,
    optional whitespace around each member and around `=`, values percent-decoded, properties
    (after `;`) ignored. So `user.id=u-1`, `user.id = u-1` and `user.id=u%2D1` are one entry."""
    entries: dict[str, str] = {}
    for member in (header or "").split(","):
        key, sep, value = member.split(";", 1)[0].partition("=")
        if sep and key.strip():
            entries[key.strip()] = unquote(value.strip())
    return entries


class CountingIds(IdGenerator):
    """Trace and span ids that count up from fixed values (`base` apart for a second provider),
    so a check's traces are the same on every run."""

    def __init__(self, base: int = 0) -> None:
        self._trace, self._span = 0x0AF7651916CD43DD8448EB211C800000 + base, 0x00F067AA0BA90000 + base

    def generate_trace_id(self) -> int:
        self._trace += 1
        return self._trace

    def generate_span_id(self) -> int:
        self._span += 1
        return self._span
