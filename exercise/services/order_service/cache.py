"""The order service's product cache: redis-py in front of the product catalogue.

With `REDIS_URL` set it talks to a real Redis server; otherwise to an in-process fakeredis
server private to this app. Either way the client is instrumented with the order service's
tracer provider, so every cache call is a CLIENT span with `db.system` = `redis`.
"""
from __future__ import annotations

import json

import redis.asyncio as redis
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider

#: The catalogue behind the cache (what a product database would answer).
CATALOGUE: dict[str, dict] = {
    "prod-1": {"product_id": "prod-1", "name": "Trace Mug", "price": 29.99},
    "prod-2": {"product_id": "prod-2", "name": "Span Hoodie", "price": 49.99},
    "prod-3": {"product_id": "prod-3", "name": "Baggage Tag", "price": 9.99},
    "prod-empty": {"product_id": "prod-empty", "name": "Sold-out Sampler", "price": 99.0},
}

TTL_S = 300


class ProductCache:
    """Read-through cache of product data (`product:{id}` keys, JSON values)."""

    def __init__(self, redis_url: str | None, tracer_provider: TracerProvider | None) -> None:
        if redis_url:
            self.client = redis.Redis.from_url(redis_url)
        else:
            import fakeredis

            self.client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        if tracer_provider is not None:
            RedisInstrumentor().instrument_client(self.client, tracer_provider=tracer_provider)

    async def get_products(self, product_ids: list[str]) -> dict[str, dict]:
        """Product data for each known id: from the cache, else the catalogue (then cached)."""
        found: dict[str, dict] = {}
        for product_id in dict.fromkeys(product_ids):
            cached = await self.client.get(f"product:{product_id}")
            if cached is not None:
                found[product_id] = json.loads(cached)
            elif product_id in CATALOGUE:
                found[product_id] = CATALOGUE[product_id]
                await self.client.set(f"product:{product_id}", json.dumps(CATALOGUE[product_id]), ex=TTL_S)
        return found

    async def aclose(self) -> None:
        await self.client.aclose()
