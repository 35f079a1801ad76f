"""order-service: takes an order from the gateway and runs Step 3's `OrderWorkflow`.

`POST /orders` with `{"id", "user_id", "items", "total_amount"}` first reads the products
through the Redis cache (spans with `db.system` = `redis`), then runs the workflow, which calls
inventory-service and payment-service. Answers: 200 with the workflow's result on success; 409
(`inventory_unavailable`) or 402 (`payment_failed`) for a failed order; 502 when the workflow
raised (a downstream service or the network failed). A failed order sets this service's server
span to ERROR.
"""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.order_service.cache import ProductCache
from services.order_service.workflows import OrderWorkflow
from services.shared.service import create_service_app, mark_error

FAILURE_STATUS = {"inventory_unavailable": 409, "payment_failed": 402}


class Order(BaseModel):
    id: str
    user_id: str
    items: list[dict]
    total_amount: float


def create_app(settings=None, **options) -> FastAPI:
    """Build the order service (options as in `services.shared.service.create_service_app`)."""
    app = create_service_app("order", settings, title="Order Service", **options)
    settings = app.state.settings
    telemetry = app.state.telemetry
    cache = ProductCache(settings.redis_url, telemetry.tracer_provider)
    app.state.closers.append(cache.aclose)
    workflow = OrderWorkflow(telemetry, app.state.http_client,
                             settings.inventory_url, settings.payment_url)

    @app.post("/orders")
    async def process(order: Order):
        products = await cache.get_products([item.get("product_id", "") for item in order.items])
        order_data = order.model_dump()
        for item in order_data["items"]:
            if item.get("product_id") in products:
                item.setdefault("name", products[item["product_id"]]["name"])
        try:
            result = await workflow.process_order(order_data)
        except Exception as exc:
            mark_error(f"order processing failed: {type(exc).__name__}: {exc}")
            return JSONResponse({"status": "error", "detail": f"{type(exc).__name__}: {exc}"},
                                status_code=502)
        if result.get("status") != "success":
            mark_error(f"order failed: {result.get('reason')}")
            return JSONResponse(result, status_code=FAILURE_STATUS.get(result.get("reason"), 422))
        return result

    return app
