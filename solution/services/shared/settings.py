"""Settings for every service, in one pydantic-settings class.

Each value can be set from the environment with the `WORKSHOP_` prefix
(`WORKSHOP_INVENTORY_URL=http://127.0.0.1:8004`), except the three that the wider
OpenTelemetry and Azure world already names: `REDIS_URL`, `OTEL_EXPORTER_OTLP_ENDPOINT` and
`APPLICATIONINSIGHTS_CONNECTION_STRING`.

The defaults are the workshop's: every service is reached by its host name on its own port
(`http://inventory-service:8004`), as in a container network. The kit's in-process mesh routes
those same host names to the apps; `kit.live` points them at 127.0.0.1 when the services run as
real processes.
"""
from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: `service.name` of every service of ours, by the key used in settings and ports.
SERVICE_NAMES: dict[str, str] = {
    "gateway": "api-gateway",
    "auth": "auth-service",
    "order": "order-service",
    "inventory": "inventory-service",
    "payment": "payment-service",
}

#: The workshop's ports.
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "auth": 8001,
    "order": 8002,
    "inventory": 8004,
    "payment": 8005,
}

#: The external payment API: a third party, not one of our services.
PAYMENT_PROVIDER_URL = "https://api.payment-provider.example"


def _url(key: str) -> str:
    return f"http://{SERVICE_NAMES[key]}:{DEFAULT_PORTS[key]}"


class Settings(BaseSettings):
    """Where the services are, and how they behave. Build one with `Settings()` (reads the
    environment) or `Settings(inventory_url=...)` (explicit values win)."""

    model_config = SettingsConfigDict(env_prefix="WORKSHOP_", extra="ignore")

    environment: str = "development"
    service_version: str = "1.0.0"

    gateway_url: str = _url("gateway")
    auth_url: str = _url("auth")
    order_url: str = _url("order")
    inventory_url: str = _url("inventory")
    payment_url: str = _url("payment")
    payment_provider_url: str = PAYMENT_PROVIDER_URL

    #: Timeout for one outgoing HTTP attempt, in seconds.
    http_timeout_s: float = 5.0

    #: The order service's product cache: a real Redis server when set, else in-process fakeredis.
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "WORKSHOP_REDIS_URL"))

    #: The inventory database: a SQLite file, or ":memory:" (fresh and seeded for every app).
    inventory_db: str = ":memory:"

    #: Extension E2: the A/B experiment the gateway assigns users to (`WORKSHOP_EXPERIMENT`);
    #: each order then carries `experiment.<name>` = the user's variant. None: no experiment.
    experiment: str | None = None
