"""payment-service: charges the external payment API.

`POST /payments/process` `{"order_id", "user_id", "amount"}` (with an `Idempotency-Key` header,
passed on to the provider so a retried charge is never taken twice) calls the provider's
`POST /v1/charges` through the service's `TracedHttpClient`. Answers: 200
`{"status": "success", "transaction_id"}`; 402 `{"status": "declined", "reason"}` for a
declined card; 503 `{"status": "error", "reason": "payment_provider_unavailable"}` when the
provider cannot be reached or fails (after the client's retries). Never a crash: a decline or
an outage is an answer, with this service's server span marked ERROR.
"""
from __future__ import annotations

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.shared.service import create_service_app, mark_error


class PaymentRequest(BaseModel):
    order_id: str
    user_id: str
    amount: float


def create_app(settings=None, **options) -> FastAPI:
    """Build the payment service (options as in `services.shared.service.create_service_app`)."""
    app = create_service_app("payment", settings, title="Payment Service", **options)
    provider_url = app.state.settings.payment_provider_url
    http = app.state.http_client

    @app.post("/payments/process")
    async def process(body: PaymentRequest, idempotency_key: str = Header(default="")):
        headers = {"Idempotency-Key": idempotency_key or f"payment-{body.order_id}"}
        charge = {"amount": round(body.amount * 100), "currency": "usd", "reference": body.order_id}
        try:
            answer = await http.post(f"{provider_url}/v1/charges", json=charge, headers=headers)
        except Exception as exc:  # transport error, timeout or an open circuit
            return _unavailable(f"{type(exc).__name__}: {exc}")
        if answer.status_code == 200:
            return {"status": "success", "transaction_id": answer.json()["id"]}
        if answer.status_code == 402:
            reason = _error_code(answer)
            mark_error(f"payment declined: {reason}")
            return JSONResponse({"status": "declined", "reason": reason}, status_code=402)
        return _unavailable(f"provider answered {answer.status_code}")

    return app


def _unavailable(why: str) -> JSONResponse:
    mark_error(f"payment provider unavailable: {why}")
    return JSONResponse({"status": "error", "reason": "payment_provider_unavailable", "detail": why},
                        status_code=503)


def _error_code(answer) -> str:
    try:
        return answer.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "declined"
