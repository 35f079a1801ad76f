"""What an order's trace should look like at each point of the workshop, next to what yours did.

`expect_order(run, step)` shows a checklist for an order run through the services (`run_order`)
when steps 1..`step` are done: each line says what we expect (from the contract, as the
reference answer does it), what your run produced, and, when they differ, "Not done yet: Step
N, TODO k". Only what steps 1..`step` promise is listed: nothing the learner cannot see yet.

Facts are read from the exported spans only (as the checks do), with the kit's span model.
"""
from __future__ import annotations

from typing import Any

from kit.notebook.display import expectations
from kit.topology import SERVICES

BUSINESS = ("process_order", "validate_inventory", "reserve_inventory", "process_payment", "confirm_order")


def facts(run: Any) -> dict[str, Any]:
    """The numbers the checklists compare, from a run's exported spans."""
    from kit.traces.model import views

    spans = views(getattr(run, "spans", run) or [])
    ids = {(s.trace_id, s.span_id) for s in spans}
    first: dict[str, Any] = {}
    for s in spans:                      # views() gives them in start order
        first.setdefault(s.trace_id, s)
    http_clients = [s for s in spans if s.kind == "CLIENT" and (s.attributes.get("url.full") or s.attributes.get("server.address"))
                    and not s.attributes.get("db.system")]
    return {
        "spans": len(spans),
        "services": sorted({s.service for s in spans}),
        "servers": sum(s.kind == "SERVER" for s in spans),
        "http clients": len(http_clients),
        "db systems": sorted({str(s.attributes["db.system"]) for s in spans if s.attributes.get("db.system")}),
        "traces": len({s.trace_id for s in spans}),
        # the first span of a trace may name a parent from outside (a traceparent sent with the order)
        "orphans": sum(1 for s in spans if s.parent_span_id and (s.trace_id, s.parent_span_id) not in ids
                       and s is not first.get(s.trace_id)),
        "business": [n for n in BUSINESS if any(s.name == n for s in spans)],
    }


def expect_order(run: Any, step: int, *, title: str | None = None) -> None:
    """The checklist of one successful order with steps 1..`step` done (see the module). Nothing
    when the order did not get through: the error shown above says why."""
    if getattr(run, "error", None):
        return
    f = facts(run)
    names = sorted(s.name for s in SERVICES)
    rows: list[tuple[str, Any, Any, str]] = [
        ("the answer", 200, getattr(run, "status_code", None), "the services themselves (read the error above)"),
        ("spans exported", _at_least(20), f["spans"], "Step 1, TODO 4 (the exporter)"),
        ("services that exported spans", _listed(names), ", ".join(f["services"]) or "none",
         "Step 1, TODO 1 (the resource's service.name) and TODO 4"),
        ("SERVER spans (one per request a service received)", 6, f["servers"], "Step 1, TODO 7 (instrument_app)"),
        ("HTTP CLIENT spans (5 calls between services, 1 to the payment API)", 6, f["http clients"],
         "Step 1, TODO 8 (instrument_client)"),
        ("databases seen (CLIENT spans with db.system)", _listed(["redis", "sqlite"]), ", ".join(f["db systems"]) or "none",
         "Step 1, TODO 4 (the services hand your tracer provider to Redis and SQLite)"),
    ]
    if step == 1:
        rows.append(("traces (one per request a service received, until Step 2)", f["servers"] or 6, f["traces"],
                     "Step 1, TODO 4 and TODO 7"))
    if step >= 2:
        rows += [("traces", 1, f["traces"], "Step 2, TODO 1 (extract) and TODO 2 (inject)"),
                 ("spans whose parent was not exported (the first one's may come from outside)", 0, f["orphans"], "Step 2, TODO 1 and TODO 2")]
    if step >= 3:
        rows.append(("business spans", _listed(list(BUSINESS)), ", ".join(f["business"]) or "none",
                     "Step 3, TODO 1 (one span per business step)"))
    expectations(rows, title=title or f"One order, with steps 1-{step} done: expected and yours"
                        if step > 1 else title or "One order, with Step 1 done: expected and yours")


def at_least(n: int):
    """An expected value for `expectations`: any number of `n` or more."""
    return _at_least(n)


def between(low: int, high: int):
    """An expected value for `expectations`: any number from `low` to `high`."""
    def check(value: Any) -> bool:
        return isinstance(value, int) and low <= value <= high
    check.__doc__ = f"{low} to {high}"
    return check


def _at_least(n: int):
    def check(value: Any) -> bool:
        return isinstance(value, int) and value >= n
    check.__doc__ = f"{n} or more"
    return check


def _listed(names: list[str]):
    wanted = ", ".join(sorted(names))

    def check(value: Any) -> bool:
        return str(value) == wanted or set(str(value).split(", ")) == set(names)
    check.__doc__ = wanted
    return check
