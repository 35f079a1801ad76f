"""inventory-service: stock and reservations.

`POST /inventory/check` `{"order_id", "items"}` -> `{"available": bool}`;
`POST /inventory/reserve` -> `{"reservation_id"}`, or 409 when the stock is gone;
`POST /inventory/release` `{"order_id", "reservation_id"}` -> 200.

An unknown product id is a bug the service does not handle: the exception escapes, the answer
is a 500, and the server span records it (status ERROR and an `exception` event).
"""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.inventory_service.db import InventoryDB, OutOfStockError
from services.shared.service import create_service_app, mark_error


class ItemsRequest(BaseModel):
    order_id: str
    items: list[dict]


class ReleaseRequest(BaseModel):
    order_id: str
    reservation_id: str


def create_app(settings=None, **options) -> FastAPI:
    """Build the inventory service (options as in `services.shared.service.create_service_app`)."""
    app = create_service_app("inventory", settings, title="Inventory Service", **options)
    db = InventoryDB(app.state.settings.inventory_db, app.state.telemetry.tracer_provider)
    app.state.closers.append(db.close)

    @app.post("/inventory/check")
    async def check(body: ItemsRequest):
        return {"available": db.available(body.items)}

    @app.post("/inventory/reserve")
    async def reserve(body: ItemsRequest):
        try:
            return {"reservation_id": db.reserve(body.order_id, body.items)}
        except OutOfStockError as exc:
            mark_error(f"out of stock: {exc}")
            return JSONResponse({"detail": f"out of stock: {exc}"}, status_code=409)

    @app.post("/inventory/release")
    async def release(body: ReleaseRequest):
        return {"released": db.release(body.reservation_id)}

    return app
