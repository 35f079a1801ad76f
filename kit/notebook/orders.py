"""Running orders through the tree's five services, in the notebook's own process.

`open_mesh()` builds the five services of the tree in use (`kit.harness.mesh.Mesh`): only
headers cross between services, the external payment API is simulated and HTTP retries do not
really sleep. `run_order()` sends one order through fresh services and returns an `OrderRun`
(answer, spans, logs, the calls between services); `run_orders()` sends several through one set
(`Orders`). Jupyter already runs an event loop, so these are awaited at the top level of a cell.
An error raised by the learner's code is kept in the run and shown, never a crashed cell.
"""
from __future__ import annotations

import contextlib
import html
import io
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from kit.notebook.display import _explain, _show_broken, _show_error
from kit.notebook.tree import _refresh_if_edited, current_tree


@contextlib.asynccontextmanager
async def open_mesh(**options: Any):
    """`async with open_mesh() as mesh:` the five services of the tree, as `kit.harness.mesh.Mesh`
    (options: `sampling=SamplingConfig(...)`, `settings={...}`); torn down at the end."""
    current_tree()
    _refresh_if_edited()
    from kit.harness.mesh import Mesh

    mesh = Mesh(**options)
    mesh.sleeps_by_caller = []                 # (service that slept, seconds), in order
    recorded_sleep = mesh._sleep

    async def sleep_of_a_caller(seconds: float) -> None:
        await recorded_sleep(seconds)
        mesh.sleeps_by_caller.append((_current_service(), seconds))

    mesh._sleep = sleep_of_a_caller            # what create_app hands the HTTP clients
    await mesh.__aenter__()
    try:
        yield mesh
    finally:
        await mesh.__aexit__(None, None, None)


def _import_failure(exc: BaseException) -> bool:
    """Whether the learner's code could not even be imported (a syntax or import error)."""
    from kit.harness.expect import CheckFailure

    if isinstance(exc, (SyntaxError, ImportError)):
        return True
    return isinstance(exc, CheckFailure) and "to import cleanly" in _explain(exc)


def _current_service() -> str:
    """The service whose code is running now: the `service.name` of the current span's resource
    (inside a retry loop, the caller's span), or "?" when no span is current."""
    from opentelemetry import trace

    resource = getattr(trace.get_current_span(), "resource", None)
    return str(getattr(resource, "attributes", {}).get("service.name", "?")) if resource is not None else "?"


@dataclass(repr=False)
class OrderRun:
    """What one order through the services produced."""

    status_code: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    spans: list = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    crossings: list = field(default_factory=list)      # each call between services: host, path, headers
    sleeps: list[float] = field(default_factory=list)  # what the HTTP clients' retries would have slept
    sleeps_by_caller: list[tuple[str, float]] = field(default_factory=list)  # (service, seconds)
    error: str | None = None
    exception: BaseException | None = None

    @property
    def retries(self) -> dict[str, list[float]]:
        """The backoff sleeps grouped by the service that retried, in order."""
        grouped: dict[str, list[float]] = {}
        for service, seconds in self.sleeps_by_caller:
            grouped.setdefault(service, []).append(seconds)
        return grouped

    @property
    def trace_ids(self) -> list[str]:
        return list(dict.fromkeys(f"{s.context.trace_id:032x}" for s in self.spans))

    def __repr__(self) -> str:
        if self.error:
            return f"OrderRun(error={self.error.splitlines()[0]!r})"
        return f"OrderRun({self.status_code}, {len(self.spans)} spans in {len(self.trace_ids)} traces)"

    def _repr_html_(self) -> str:
        if self.error:
            return f"<b style='color:#d62728'>The order did not get through:</b> <pre>{html.escape(self.error)}</pre>"
        traces = len(self.trace_ids)
        return (f"<b>{self.status_code}</b> <code>{html.escape(str(self.body))[:400]}</code><br>"
                f"{len(self.spans)} spans exported, in {traces} trace{'s' * (traces != 1)}")


class Orders(list):
    """The runs of `run_orders()`, in order; `.spans` holds every span they exported."""

    spans: list = []

    def _repr_html_(self) -> str:
        codes: dict[Any, int] = {}
        for run in self:
            codes[run.status_code] = codes.get(run.status_code, 0) + 1
        traces = len({f"{s.context.trace_id:032x}" for s in self.spans})
        return (f"{len(self)} orders, answers {', '.join(f'{c}×{n}' for c, n in codes.items())}; "
                f"{len(self.spans)} spans exported, in {traces} traces")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROVIDER = {"succeeds": "provider_succeeds", "declines": "provider_declines", "fails": "provider_fails",
             "times_out": "provider_times_out", "slow": "provider_slow"}


def _set_provider(mesh: Any, provider: str, delay_s: float) -> None:
    if provider not in _PROVIDER:
        raise ValueError(f"provider={provider!r}: use one of {', '.join(_PROVIDER)}")
    method = getattr(mesh, _PROVIDER[provider])
    method(delay_s) if provider == "slow" else method()


async def _one_order(mesh: Any, spec: dict, default_provider: str) -> OrderRun:
    run = OrderRun()
    _set_provider(mesh, spec.pop("provider", default_provider), spec.pop("delay_s", 0.2))
    before, crossings, sleeps = len(mesh.spans()), len(mesh.transport.crossings), len(mesh.sleeps)
    by_caller = len(getattr(mesh, "sleeps_by_caller", ()))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            response = await mesh.order(**spec)
        run.status_code, run.headers = response.status_code, dict(response.headers)
        try:
            run.body = response.json()
        except ValueError:
            run.body = response.text
    except Exception as exc:  # the learner's code raised: report it, keep the notebook going
        run.error, run.exception = _explain(exc), exc
    run.logs = [_ANSI.sub("", line) for line in out.getvalue().splitlines() if line.strip()]
    run.spans = mesh.spans()[before:]
    run.crossings = mesh.transport.crossings[crossings:]
    run.sleeps = mesh.sleeps[sleeps:]
    run.sleeps_by_caller = list(getattr(mesh, "sleeps_by_caller", ())[by_caller:])
    return run


async def run_order(provider: str = "succeeds", *, sampling: Any = None, delay_s: float = 0.2,
                    **order: Any) -> OrderRun:
    """Send one order through fresh services and return what happened (`OrderRun`).

    `provider`: how the external payment API answers: "succeeds", "declines" (402),
    "fails" (503), "times_out" or "slow" (`delay_s` seconds, really waited).
    `order`: `token`, `items`, `total_amount`, `headers`, `order_id`, as `Mesh.order` takes.
    """
    runs = await run_orders([{"provider": provider, "delay_s": delay_s, **order}], sampling=sampling)
    return runs[0]


async def run_orders(orders: int | Iterable[dict], *, sampling: Any = None,
                     provider: str = "succeeds", **common: Any) -> Orders:
    """Send several orders through one set of services: `orders` is a count, or one dict per
    order (keys as `run_order` takes, `provider` included). Returns the runs (`Orders`)."""
    specs = [dict(common) for _ in range(orders)] if isinstance(orders, int) else [{**common, **o} for o in orders]
    runs = Orders()
    runs.spans = []
    try:
        async with open_mesh(sampling=sampling) as mesh:
            for spec in specs:
                runs.append(await _one_order(mesh, spec, provider))
            runs.spans = mesh.spans()
    except Exception as exc:  # building or stopping the services failed: the learner's code
        message = _explain(exc)
        if _import_failure(exc):
            saw = message.split("Saw:", 1)[-1].strip().splitlines()[0] if "Saw:" in message else message
            _show_broken(f"Your code cannot be imported: {saw}")
        else:
            _show_error("The services could not run", message, exc)
        runs.extend(OrderRun(error=message) for _ in range(len(specs) - len(runs)))
        return runs
    failed = [run for run in runs if run.error]
    if failed:
        _show_error(f"{len(failed)} of {len(runs)} orders did not get through; the first one", failed[0].error, failed[0].exception)
    return runs
