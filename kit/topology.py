"""The workshop's topology: our five services, their host names, ports and packages, the
stand-in payment provider, and the order every picture and command uses. Everything in the kit
that needs one of these reads it here (the trees' own `services/shared/settings.py` says the
same for the services themselves; `tests/test_topology.py` proves the two agree).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    key: str          # the short name used in settings, ports and command lines
    name: str         # service.name, and the host name in the workshop's network
    package: str      # services.<package>.main:create_app
    port: int         # the workshop's port

    @property
    def url(self) -> str:
        return f"http://{self.name}:{self.port}"


#: Ours, in the workshop's order (callers before callees).
SERVICES: tuple[Service, ...] = (
    Service("gateway", "api-gateway", "api_gateway", 8000),
    Service("auth", "auth-service", "auth_service", 8001),
    Service("order", "order-service", "order_service", 8002),
    Service("inventory", "inventory-service", "inventory_service", 8004),
    Service("payment", "payment-service", "payment_service", 8005),
)
BY_KEY: dict[str, Service] = {s.key: s for s in SERVICES}
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)

#: The stand-in for the external payment API when the services run as processes (the checks
#: use a respx mock instead). A third party: not one of ours, no OpenTelemetry of its own.
PROVIDER = "provider"
PROVIDER_NAME = "payment-provider (stand-in)"
PROVIDER_PORT = 8009
PROVIDER_HOST = "api.payment-provider.example"

#: The order every client of the kit sends unless told otherwise.
DEFAULT_ITEMS: tuple[dict, ...] = (
    {"product_id": "prod-1", "quantity": 2, "price": 29.99},
    {"product_id": "prod-2", "quantity": 1, "price": 49.99},
)


def default_items() -> list[dict]:
    """A fresh copy of the default order's items (callers may change it)."""
    return [dict(item) for item in DEFAULT_ITEMS]
