"""A stand-in for the external payment API, for running the system for real.

`create_provider_app(latency_ms=..., failure_rate=..., decline_rate=..., seed=...)` serves
`POST /v1/charges` like a card processor: 200 `{"id": "ch_...", "status": "succeeded"}`, 402
`{"error": {"code": "card_declined", ...}}` for a decline, 503 for an outage. A repeated
`Idempotency-Key` gets the first answer again, as real processors do. It is a third party: it
has no OpenTelemetry of its own. The checks use a respx mock instead; this app is what
`kit.live` starts.
"""
from __future__ import annotations

import asyncio
import random

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse


def create_provider_app(*, latency_ms: float = 0.0, failure_rate: float = 0.0,
                        decline_rate: float = 0.0, seed: int | None = None) -> FastAPI:
    """The stand-in provider: answers after `latency_ms`; fails and declines at the given rates."""
    app = FastAPI(title="External Payment API (stand-in)")
    rng = random.Random(seed)
    answered: dict[str, tuple[int, dict]] = {}

    @app.post("/v1/charges")
    async def charge(body: dict, idempotency_key: str = Header(default="")):
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if idempotency_key in answered:
            status, payload = answered[idempotency_key]
            return JSONResponse(payload, status_code=status)
        roll = rng.random()
        if roll < failure_rate:
            return JSONResponse({"error": {"code": "unavailable"}}, status_code=503)
        if roll < failure_rate + decline_rate:
            status, payload = 402, {"error": {"code": "card_declined", "message": "Your card was declined."}}
        else:
            status, payload = 200, {"id": f"ch_{rng.getrandbits(48):012x}", "status": "succeeded",
                                    "amount": body.get("amount")}
        if idempotency_key:
            answered[idempotency_key] = (status, payload)
        return JSONResponse(payload, status_code=status)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    return app
