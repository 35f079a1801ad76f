"""Step 7 of the workshop: test distributed tracing against the running system.

Sends one order to the gateway with a W3C `traceparent` (so we know the trace id before the
system does), has every service flush its spans, then asks the gateway's Step 5 endpoint
`GET /monitoring/traces/{trace_id}` for its analysis and prints the duration, the services,
the span count, the bottlenecks and the critical path.

    python -m kit.live --solution          # in one terminal (or: exercise, your code)
    python scripts/step7_trace_test.py     # in another

    python scripts/step7_trace_test.py --start --solution   # start, test, stop, in one go
    python scripts/step7_trace_test.py --orders 200         # traffic first, for Steps 8-10

`--orders N` first sends N orders (two users, one in `--bad-share` for a product that does not
exist, so some fail), a few at a time, then tests as usual: the viewer's search, performance,
metrics and insights pages then have something to show (with `python -m kit.live
--provider-latency-ms 300 --provider-failure-rate 0.2`, slow and failing payments too; add
`--stock prod-1=100000 --stock prod-2=100000`: the seeded stock lasts about 50 orders).

What was wrong in the workshop's version, and is fixed here:

- the items were written `{{...}}` (a set holding a dict: a TypeError before anything is sent);
- no `Authorization` header: the gateway answers 401 without a known bearer token;
- the parent span id was always `0000000000000001`; here it is random, as a client's would be;
- it slept 10 s and hoped; here every service is asked to flush (`POST /_live/flush`, which
  `kit.live` adds) and the endpoint is polled until the trace stops growing, within a limit;
- the endpoint's fields are `total_duration_ms`, and each bottleneck has `duration_ms` and
  `self_time_ms`; critical path entries are segments (service, span, duration), not strings;
- bottlenecks default to spans over 1 s, which a healthy local trace never has: this asks for
  the top three whatever their size (`threshold_ms=0&top=3`).

Exit code 0 when the analysis came back, 1 when it did not (the reason is printed), 2 when the
system is not running.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kit.topology import BY_KEY, DEFAULT_ITEMS, SERVICES  # noqa: E402

ORDER = {
    "items": [dict(item) for item in DEFAULT_ITEMS],
    "total_amount": round(sum(i["quantity"] * i["price"] for i in DEFAULT_ITEMS), 2),
}
#: Where the other services are, relative to the gateway's port (the workshop's layout).
PORT_OFFSETS = {s.key: s.port - BY_KEY["gateway"].port for s in SERVICES if s.key != "gateway"}


async def flush_all(client: httpx.AsyncClient, gateway: str) -> None:
    """Ask every service to export what it holds (best effort: `kit.live` serves the route)."""
    url = httpx.URL(gateway)
    targets = [gateway] + [str(url.copy_with(port=(url.port or 80) + off))
                           for off in PORT_OFFSETS.values()]
    for target in targets:
        try:
            await client.post(f"{target.rstrip('/')}/_live/flush", timeout=15)
        except httpx.HTTPError:
            pass


async def fetch_analysis(client: httpx.AsyncClient, gateway: str, trace_id: str,
                         timeout_s: float) -> httpx.Response:
    """Poll the endpoint until the trace is there and has stopped growing (or time is up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last, seen = None, -1
    while True:
        last = await client.get(f"{gateway}/monitoring/traces/{trace_id}",
                                params={"threshold_ms": 0, "top": 3})
        if last.status_code not in (200, 404):
            return last                              # an error that waiting will not mend
        try:
            count = last.json().get("span_count", -1) if last.status_code == 200 else -1
        except (ValueError, AttributeError):
            return last
        if count >= 0 and count == seen:
            return last                              # the same twice: it is complete
        seen = count
        if loop.time() > deadline:
            return last
        await asyncio.sleep(0.5)


def show(details: dict) -> None:
    print("\nTrace analysis:")
    print(f"  Trace id:          {details['trace_id']}")
    print(f"  Total duration:    {details['total_duration_ms']:.1f} ms")
    print(f"  Services involved: {details['service_count']}")
    print(f"  Total spans:       {details['span_count']}")

    print("\nBottlenecks (by self time):")
    for b in details.get("bottlenecks", [])[:3]:
        print(f"  - {b['operation']} ({b['service']}): self {b['self_time_ms']:.1f} ms of "
              f"{b['duration_ms']:.1f} ms, {b['percentage_of_total']:.0f}% of the trace")
    if not details.get("bottlenecks"):
        print("  (none reported)")

    print("\nCritical path:")
    for step in details.get("critical_path", []):
        print(f"  - {step['service']}: {step['name']}  {step['duration_ms']:.1f} ms")
    if not details.get("critical_path"):
        print("  (empty)")

    if details.get("service_map"):
        print("\nService map:")
        for e in details["service_map"]:
            failed = f", {e['errors']} failed" if e.get("errors") else ""
            print(f"  - {e['caller']} -> {e['callee']}: {e['calls']} call(s){failed}")


async def send_traffic(gateway: str, orders: int, *, concurrency: int = 4,
                       bad_share: float = 0.05, seed: int = 8) -> dict[int, int]:
    """Send `orders` orders, `concurrency` at a time; returns how many got each status."""
    import random

    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    unknown = {"items": [{"product_id": "prod-unknown", "quantity": 1, "price": 5.0}],
               "total_amount": 5.0}

    async def one(client: httpx.AsyncClient, n: int) -> None:
        body = unknown if rng.random() < bad_share else ORDER
        token = "token-alice" if n % 2 else "token-bob"
        try:
            answer = await client.post(f"{gateway}/api/orders", json=body,
                                       headers={"Authorization": f"Bearer {token}"})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        except httpx.HTTPError:
            statuses[0] = statuses.get(0, 0) + 1

    async with httpx.AsyncClient(timeout=30) as client:
        for start in range(0, orders, concurrency):
            await asyncio.gather(*(one(client, n) for n in range(start, min(start + concurrency, orders))))
    return statuses


async def test_distributed_trace(gateway: str, timeout_s: float = 20.0) -> int:
    """The workshop's Step 7 test, fixed. Returns the exit code."""
    trace_id = uuid.uuid4().hex                      # 32 hex digits
    parent_id = uuid.uuid4().hex[:16]
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01",
               "Authorization": "Bearer token-alice"}
    async with httpx.AsyncClient(timeout=15) as client:
        try:
            response = await client.post(f"{gateway}/api/orders", json=ORDER, headers=headers)
        except httpx.HTTPError as exc:
            print(f"Cannot reach the gateway at {gateway} ({type(exc).__name__}). Start the "
                  f"system first: python -m kit.live", file=sys.stderr)
            return 2
        print(f"Order answered {response.status_code}: {response.text}")
        print(f"Trace id sent in traceparent: {trace_id}")

        await flush_all(client, gateway)
        analysis = await fetch_analysis(client, gateway, trace_id, timeout_s)
        in_viewer = False
        if analysis.status_code != 200:              # does the kit's own viewer have it?
            try:
                in_viewer = (await client.get(f"{gateway}/viewer/api/traces/{trace_id}")).status_code == 200
            except httpx.HTTPError:
                pass

    if analysis.status_code == 404:
        print(f"\nNo span of trace {trace_id} reached the span store within {timeout_s:.0f} s. "
              "Is Step 1 exporting spans, and does Step 2 keep the incoming trace id?",
              file=sys.stderr)
        return 1
    if analysis.status_code != 200:
        hint = (f"meanwhile the kit's viewer shows the trace: {gateway}/viewer/traces/{trace_id}"
                if in_viewer else "no span of this trace reached the span store either, so "
                                  "Step 1 (exporting spans) comes first")
        print(f"\nGET /monitoring/traces/{trace_id} answered {analysis.status_code}: "
              f"{analysis.text[:500]}\nStep 5 builds this endpoint; {hint}.", file=sys.stderr)
        return 1
    try:
        show(analysis.json())
    except (KeyError, TypeError, ValueError) as exc:
        print(f"\nThe endpoint's answer is not shaped as the contract says ({exc!r}): "
              f"{analysis.text[:500]}", file=sys.stderr)
        return 1
    print(f"\nSee it in the viewer: {gateway}/viewer/traces/{trace_id}")
    print(f"Steps 8-10 in the viewer: {gateway}/viewer/ (transaction search), "
          f"{gateway}/viewer/performance, {gateway}/viewer/metrics, {gateway}/viewer/insights")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The workshop's Step 7 test against the running system.")
    parser.add_argument("--gateway", default="http://127.0.0.1:8000", help="the gateway's URL")
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="how long to wait for the trace to reach the store (s)")
    parser.add_argument("--start", action="store_true",
                        help="start the system on free ports first, and stop it afterwards")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--solution", action="store_true", help="with --start: run solution/")
    which.add_argument("--tree", type=Path, help="with --start: run this copy of exercise/")
    parser.add_argument("--orders", type=int, default=0,
                        help="send this many orders first (traffic for the viewer's pages)")
    parser.add_argument("--concurrency", type=int, default=4, help="with --orders: at a time")
    parser.add_argument("--bad-share", type=float, default=0.05,
                        help="with --orders: share of orders for an unknown product (they fail)")
    args = parser.parse_args(argv)

    def run(gateway: str) -> int:
        if args.orders > 0:
            statuses = asyncio.run(send_traffic(gateway, args.orders,
                                                concurrency=max(args.concurrency, 1),
                                                bad_share=args.bad_share))
            if statuses.get(0) == args.orders:
                print(f"Cannot reach the gateway at {gateway}. Start the system first: "
                      "python -m kit.live", file=sys.stderr)
                return 2
            print(f"Sent {args.orders} orders: " + ", ".join(
                f"{n} answered {code or 'nothing'}" for code, n in sorted(statuses.items())))
        return asyncio.run(test_distributed_trace(gateway, args.timeout))

    if not args.start:
        return run(args.gateway.rstrip("/"))

    import tempfile

    from kit.live.system import LiveConfig, LiveError, LiveSystem, free_base_port, ports_from_base

    tree = args.tree or ROOT / ("solution" if args.solution else "exercise")
    with tempfile.TemporaryDirectory(prefix="workshop-step7-") as run_dir:
        # The workshop's layout from a free base port, so the flush finds every service.
        ports = ports_from_base(free_base_port())
        system = LiveSystem(LiveConfig(tree=tree, ports=ports, run_dir=Path(run_dir),
                                       max_seconds=300))
        try:
            system.start()
        except LiveError as exc:
            print(f"step7: {exc}", file=sys.stderr)
            return 2
        try:
            return run(system.url("gateway"))
        finally:
            system.stop()


if __name__ == "__main__":
    sys.exit(main())
