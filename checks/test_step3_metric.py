"""Step 3, the business metric (success criterion 4, performance visible): `orders.processed`
counts every order by outcome, and its exemplar leads from the count to the order's trace.

As rule 3.29 promises, the metrics are read with a reader that keeps every collection
(`force_flush` collects too, and an exemplar belongs to the collection that took it). Orders
run one at a time, each followed by a collection, with no span around `process_order`: its
exemplar can only come from the spans the workflow itself makes."""
from __future__ import annotations

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kit.harness.expect import check, expect
from kit.harness.learner import attr
from kit.harness.spans import find, trace_id
from checks.test_step3_workflow import CASES, INVENTORY, ORDER, PAYMENT, Downstream

COUNTER = "orders.processed"
#: Each case's point: (order.status, order.failure_reason or None).
WANT = {"success": ("success", None), "no stock": ("failed", "inventory_unavailable"),
        "stock gone": ("failed", "inventory_unavailable"), "declined": ("failed", "payment_failed"),
        "payment 503": ("failed", "error"), "payment unreachable": ("failed", "error"),
        "check 500": ("failed", "error"), "reserve times out": ("failed", "error")}


class EveryCollection(MetricReader):
    """A metric reader that keeps every collection it is given (rule 3.29)."""

    def __init__(self) -> None:
        super().__init__()
        self.collections: list = []

    def _receive_metrics(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> None:
        if metrics_data is not None:
            self.collections.append(metrics_data)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass


def _metrics(collection, name: str) -> list:
    return [m for rm in collection.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name]


def _points(collection) -> dict:
    """{attributes as a sorted tuple: (value, [exemplars])} of the counter in one collection."""
    out: dict = {}
    for metric in _metrics(collection, COUNTER):
        for point in metric.data.data_points:
            key = tuple(sorted((point.attributes or {}).items()))
            value, exemplars = out.get(key, (0, []))
            out[key] = (value + point.value, exemplars + list(getattr(point, "exemplars", None) or []))
    return out


class Orders:
    """The learner's workflow on a telemetry with an EveryCollection reader: one order, one collection."""

    def __init__(self) -> None:
        self.reader, self.exporter = EveryCollection(), InMemorySpanExporter()
        self.telemetry = attr("services.shared.telemetry", "DistributedTelemetry")()
        self.telemetry.initialize("order-service", "1.0.0", "development", exporter=self.exporter, batch=False,
                                  metric_reader=self.reader)
        self.downstream = Downstream()
        self.workflow = attr("services.order_service.workflows", "OrderWorkflow")(
            self.telemetry, self.downstream, INVENTORY, PAYMENT)
        self.state: dict = {}

    async def run(self, case, order_id: str):
        """Play one order; (the counter's change {attributes: delta}, its new exemplars, its trace id, the unit
        and monotonicity seen, what happened)."""
        for key, value in {"available": True, "check": 200, "reserve": 200, "payment": 200, **case.downstream}.items():
            setattr(self.downstream, key, value)
        before = len(self.reader.collections)
        spans_before = len(self.exporter.get_finished_spans())
        try:
            await self.workflow.process_order({**ORDER, "id": order_id})
            outcome = "returned"
        except Exception as exc:  # noqa: BLE001
            outcome = f"raised {type(exc).__name__}"
        self.reader.collect()
        new = self.reader.collections[before:]
        now = _points(new[-1]) if new else {}
        delta = {k: v - self.state.get(k, (0, []))[0] for k, (v, _) in now.items() if v != self.state.get(k, (0, []))[0]}
        self.state = now
        exemplars = {}
        for collection in new:
            for key, (_, found) in _points(collection).items():
                exemplars.setdefault(key, []).extend(found)
        metrics = [m for c in new for m in _metrics(c, COUNTER)]
        spans = list(self.exporter.get_finished_spans())[spans_before:]
        roots = find(spans, name="process_order")
        return delta, exemplars, (trace_id(roots[0]) if roots else None), metrics, outcome, spans


def _want_key(case) -> tuple:
    status, reason = WANT[case.name]
    return status, reason


def _matches(key: tuple, status: str, reason: str | None) -> bool:
    attrs = dict(key)
    return attrs.get("order.status") == status and (reason is None or attrs.get("order.failure_reason") == reason)


def _shown(delta: dict) -> str:
    return "; ".join(f"{dict(k)}: +{v:g}" for k, v in delta.items()) or "no change at all"


@check(step=3, criterion="performance-visible", todo="TODO 7", rules=("3.24", "3.25", "3.26", "3.27", "3.29"))
async def test_orders_processed_counts_every_order_by_outcome():
    """orders.processed ({order}) adds 1 per order, with order.status and, when failed, order.failure_reason"""
    orders = Orders()
    for n, case in enumerate((*CASES, CASES[0]), start=1):
        delta, _, _, metrics, outcome, _ = await orders.run(case, f"ord-m-{n}")
        status, reason = _want_key(case)
        did = (f"ran {n} order(s) through OrderWorkflow, the last with {case.said} (process_order {outcome}), "
               "collecting the metrics after each")
        expect(metrics, did=did, expected=f"a counter named {COUNTER!r} made with telemetry.meter",
               saw="no such metric in the collection")
        bad = [m for m in metrics if m.unit != "{order}" or not getattr(m.data, "is_monotonic", False)]
        expect(not bad, did=did, expected=f"{COUNTER} to be a counter (a monotonic sum) with unit '{{order}}'",
               saw=f"unit {bad[0].unit!r}, {type(bad[0].data).__name__}"
                   f"{' (monotonic)' if getattr(bad[0].data, 'is_monotonic', False) else ''}" if bad else "")
        want = {"order.status": status, **({"order.failure_reason": reason} if reason else {})}
        expect(len(delta) == 1 and list(delta.values()) == [1] and _matches(next(iter(delta)), status, reason),
               did=did, expected=f"this order to add exactly 1, to the point with {want}", saw=_shown(delta))


@check(step=3, criterion="performance-visible", todo="TODO 7", rules=("3.28", "3.29"))
async def test_orders_processed_exemplar_points_at_the_orders_trace():
    """Each order's count carries an exemplar with the trace id of its process_order span"""
    orders = Orders()
    for n, case in enumerate((CASES[0], CASES[3], CASES[4], CASES[1], CASES[0]), start=1):
        delta, exemplars, order_trace, _, outcome, spans = await orders.run(case, f"ord-x-{n}")
        did = (f"ran {n} order(s) through OrderWorkflow with no span around it, the last with {case.said} "
               f"(process_order {outcome}), collecting the metrics after each")
        expect(order_trace, did=did, expected="a process_order span for that order", saw="none", spans=spans)
        status, reason = _want_key(case)
        keys = [k for k in delta if _matches(k, status, reason)]
        found = [f"{e.trace_id:032x}" if getattr(e, "trace_id", None) else None
                 for k in keys for e in exemplars.get(k, [])]
        expect(keys and order_trace in found, did=did,
               expected=f"the order's {COUNTER} point to carry an exemplar whose trace id is its process_order's "
                        f"trace, {order_trace} (count it while process_order is the current span)",
               saw=(f"exemplar trace ids {found}" if found else "no exemplar with a trace id")
               if keys else f"no count for this order ({_shown(delta)})", spans=spans)
