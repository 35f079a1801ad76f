"""auth-service: verifies the bearer tokens the gateway passes on.

`POST /auth/verify` with `Authorization: Bearer <token>` answers 200 `{"user_id": ...}` for a
known token and 401 for anything else. The tokens are fixed workshop accounts.
"""
from __future__ import annotations

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from opentelemetry import trace

from services.shared.service import create_service_app, mark_error

#: The workshop's accounts: bearer token -> user id.
KNOWN_TOKENS: dict[str, str] = {
    "token-alice": "user-123",
    "token-bob": "user-456",
}


def create_app(settings=None, **options) -> FastAPI:
    """Build the auth service (options as in `services.shared.service.create_service_app`)."""
    app = create_service_app("auth", settings, title="Auth Service", **options)

    @app.post("/auth/verify")
    async def verify(authorization: str = Header(default="")):
        scheme, _, token = authorization.partition(" ")
        user_id = KNOWN_TOKENS.get(token.strip()) if scheme.lower() == "bearer" else None
        if user_id is None:
            mark_error("invalid or missing bearer token")
            return JSONResponse({"detail": "invalid or missing bearer token"}, status_code=401)
        trace.get_current_span().set_attribute("enduser.id", user_id)
        return {"user_id": user_id}

    return app
